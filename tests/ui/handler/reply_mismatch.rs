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
    fn add(&mut self, msg: Add) -> String { msg.0.to_string() }
}
fn main() {}
