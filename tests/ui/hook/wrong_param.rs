use fluxor::prelude::*;

#[component]
struct Counter;

#[component]
impl Counter {
    #[on_start]
    fn begin(&mut self, _delay: u64) {}
}
fn main() {}
