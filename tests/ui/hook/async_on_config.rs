use fluxor::prelude::*;

#[component]
struct Gate;

#[component]
impl Gate {
    #[on_config]
    async fn adopt(&mut self, _ctx: &mut Context<Self>) {}
}

fn main() {}
