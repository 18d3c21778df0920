#[fluxor::test(reactors = 0)]
async fn runs() {}
fn main() {}
