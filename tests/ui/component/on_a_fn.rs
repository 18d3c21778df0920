use fluxor::prelude::*;

#[component]
fn counter() {}
fn main() {}
