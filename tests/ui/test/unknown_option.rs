#[fluxor::test(paused)]
async fn runs() {}
fn main() {}
