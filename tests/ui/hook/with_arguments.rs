use fluxor::prelude::*;

#[component]
struct Counter;

#[component]
impl Counter {
    #[on_start(delay = 5)]
    fn begin(&mut self, _ctx: &mut Context<Self>) {}
}
fn main() {}
