#[fluxor::test]
async fn runs(self) {}
fn main() {}
