use fluxor::prelude::*;

struct Plain;

#[component(after = [Plain])]
struct Late;

#[component]
impl Late {}

fn main() {}
