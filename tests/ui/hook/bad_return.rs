use fluxor::prelude::*;

#[component]
struct Counter;

#[component]
impl Counter {
    #[on_start]
    fn begin(&mut self, _ctx: &mut Context<Self>) -> u64 { 0 }
}
fn main() {}
