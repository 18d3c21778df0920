#[fluxor::test]
fn runs() {}
fn main() {}
