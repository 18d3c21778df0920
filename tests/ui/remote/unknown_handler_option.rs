use fluxor::prelude::*;

#[derive(Message)]
struct Ping;

#[component]
struct Pinger;

#[component]
impl Pinger {
    #[handler("ping", remotely)]
    fn ping(&mut self, _: Ping) {}
}

fn main() {}
