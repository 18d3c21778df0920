use fluxor::prelude::*;

#[derive(Message)]
#[message(reply = u64)]
struct Add(u64);

#[component(worker)]
struct Counter {
    total: std::rc::Rc<u64>,
}

#[component]
impl Counter {
    #[handler("counter.add")]
    fn add(&mut self, msg: Add) -> u64 {
        *self.total + msg.0
    }
}

fn main() {}
