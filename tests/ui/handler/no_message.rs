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
    #[handler("counter.tick")]
    fn tick(&mut self) {}
}
fn main() {}
