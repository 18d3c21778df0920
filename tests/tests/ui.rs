//! Compile-fail tests: each misuse of the macros gives one clear error on the offending token.
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p fluxor-tests --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*/*.rs");
}
