#[fluxor::test]
async fn runs<T>() {}
fn main() {}
