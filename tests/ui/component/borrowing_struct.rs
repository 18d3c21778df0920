use fluxor::prelude::*;

#[derive(Message)]
#[message(reply = u64)]
struct Add(u64);

#[component]
struct Counter<'a> {
    total: &'a u64,
}

#[component]
impl<'a> Counter<'a> {
    #[handler("counter.add")]
    fn add(&mut self, msg: Add) -> u64 { *self.total + msg.0 }
}
fn main() {}
