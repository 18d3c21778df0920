use fluxor::prelude::*;

#[derive(Message)]
#[message(reply = u64)]
struct Add(u64);

#[derive(Message)]
struct Reset;

#[derive(Message)]
#[message(response = u64)]
struct Query;
fn main() {}
