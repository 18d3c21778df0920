use fluxor::prelude::*;

#[derive(Message)]
#[message(reply = u64)]
struct Add(u64);

#[derive(Message)]
struct Reset;

#[component]
struct Counter;

#[component]
impl Counter {
    #[handler("counter.add")]
    fn add(&mut self, msg: Add, _ctx: &mut Context<Self>, _extra: u8) -> u64 { msg.0 }
}
fn main() {}
