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
    #[handler]
    fn reset(&mut self, _: Reset) {}

    #[handler]
    fn reset_too(&mut self, _: Reset) {}
}
fn main() {}
