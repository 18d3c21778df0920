use fluxor::prelude::*;

#[derive(Message)]
#[message(reply = u64, reply = u32)]
struct Add(u64);
fn main() {}
