#[fluxor::test]
async fn runs(_rt: fluxor::testing::TestRuntime, _n: u64) {}
fn main() {}
