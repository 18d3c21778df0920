use fluxor::prelude::*;

#[derive(Message)]
#[message(reply = u64)]
struct Add(u64);

#[derive(Message)]
struct Reset;

#[derive(Message)]
struct Shared(std::rc::Rc<u64>);
fn main() {}
