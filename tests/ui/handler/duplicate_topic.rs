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
    fn add(&mut self, _: Add) -> u64 { 0 }

    #[handler("counter.add")]
    fn add_again(&mut self, _: Add) -> u64 { 1 }
}
fn main() {}
