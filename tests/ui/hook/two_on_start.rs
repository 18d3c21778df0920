use fluxor::prelude::*;

#[component]
struct Counter;

#[component]
impl Counter {
    #[on_start]
    fn begin(&mut self, _ctx: &mut Context<Self>) {}

    #[on_start]
    fn begin_again(&mut self, _ctx: &mut Context<Self>) {}
}
fn main() {}
