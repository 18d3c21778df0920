use fluxor::prelude::*;

#[derive(Message)]
struct OrderEvent;

#[component]
#[derive(Default)]
struct Audit;

#[component]
impl Audit {
    #[handler("orders.*")]
    fn any_order(&mut self, _: OrderEvent) {}
}

// `Audit::ANY_ORDER` is a pattern: it names many topics, so nothing can be sent to it.
fn send(bus: EventBus) {
    let _ = bus.send(Audit::ANY_ORDER, OrderEvent);
}

fn main() {}
