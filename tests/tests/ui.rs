//! Compile-fail tests: each misuse of the macros gives one clear error on the offending token.
//! `ui` checks the expected output; `one_error_per_case` checks that each expected output is
//! one error and nothing else, so a second error or a warning cannot slip in with an update.
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p fluxor-tests --test ui`.

use std::path::Path;

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*/*.rs");
}

#[test]
fn one_error_per_case() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let mut cases = 0;
    for topic in std::fs::read_dir(&root).unwrap() {
        for file in std::fs::read_dir(topic.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            cases += 1;
            let stderr = path.with_extension("stderr");
            let text = std::fs::read_to_string(&stderr)
                .unwrap_or_else(|e| panic!("{}: {e}", stderr.display()));
            let errors = text.lines().filter(|l| l.starts_with("error")).count();
            let warnings = text.lines().filter(|l| l.starts_with("warning")).count();
            assert_eq!(
                (errors, warnings),
                (1, 0),
                "{} should expect one error and no warning",
                stderr.display()
            );
        }
    }
    assert!(cases > 0, "no UI case found under {}", root.display());
}
