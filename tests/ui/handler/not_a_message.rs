use fluxor::prelude::*;

#[derive(Message)]
#[message(reply = u64)]
struct Add(u64);

#[derive(Message)]
struct Reset;

struct Plain(u64);

#[component]
struct Counter;

#[component]
impl Counter {
    #[handler("counter.plain")]
    fn plain(&mut self, msg: Plain) -> u64 { msg.0 }
}
fn main() {}
