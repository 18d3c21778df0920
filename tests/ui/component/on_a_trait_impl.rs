use fluxor::prelude::*;

#[derive(Message)]
#[message(reply = u64)]
struct Add(u64);

#[derive(Message)]
struct Reset;

#[component]
struct Counter;

#[component]
impl Default for Counter {
    fn default() -> Self { Counter }
}
fn main() {}
