use fluxor::prelude::*;

#[derive(Message)]
#[message(reply = u64)]
struct Add(u64);

#[component]
struct Counter;

#[component]
impl Counter {
    #[handler("counter.add")]
    #[on_start]
    fn add(&mut self, msg: Add) -> u64 { msg.0 }
}
fn main() {}
