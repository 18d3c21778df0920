use fluxor::prelude::*;

#[derive(Message)]
#[message(reply = u64)]
struct Add(u64);

#[derive(Message)]
struct Reset;

#[derive(Message)]
#[message(reply = std::rc::Rc<u64>)]
struct Shared;
fn main() {}
