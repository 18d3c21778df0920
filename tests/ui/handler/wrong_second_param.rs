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
    fn add(&mut self, msg: Add, factor: u64) -> u64 { msg.0 * factor }
}
fn main() {}
