use fluxor::prelude::*;

#[derive(Message)]
#[message(reply = u64)]
struct Add(u64);

#[derive(Message)]
struct Reset;

#[component]
#[derive(Default)]
struct Counter;

#[component]
impl Counter {
    #[handler("counter.add")]
    fn add(&mut self, msg: Add) -> u64 { msg.0 }
}

async fn call(bus: EventBus) {
    let _ = bus.request(Counter::ADD, Reset).await;
}
fn main() {}
