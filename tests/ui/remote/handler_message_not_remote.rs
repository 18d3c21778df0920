use fluxor::prelude::*;

#[derive(Message)]
#[message(reply = u64)]
struct Add(u64);

#[component]
struct Counter;

#[component]
impl Counter {
    #[handler("counter.add", remote)]
    fn add(&mut self, Add(n): Add) -> u64 {
        n
    }
}

fn main() {}
