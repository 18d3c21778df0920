use fluxor::prelude::*;

#[component]
struct Counter;

#[component]
impl Counter {
    #[on_stop]
    fn end(&mut self) {}
}
fn main() {}
