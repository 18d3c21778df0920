#![doc = include_str!("../../../docs/testing.md")]

mod options;
mod probe;
mod runtime;

pub use options::TestOptions;
pub use probe::Probe;
pub use runtime::TestRuntime;

use std::fmt;

/// What a `#[fluxor::test]` body may return: `()` or `Result<(), E>` (an `Err` fails the test).
pub trait TestResult {
    /// Panics on failure.
    fn check(self);
}

impl TestResult for () {
    fn check(self) {}
}

impl<E: fmt::Debug> TestResult for Result<(), E> {
    fn check(self) {
        if let Err(e) = self {
            panic!("the test returned an error: {e:?}");
        }
    }
}

/// Runs a `#[fluxor::test]` body: a current-thread tokio runtime for the body, a fresh
/// [`TestRuntime`], then the shutdown checks.
#[doc(hidden)]
pub fn __run<F, Fut>(options: TestOptions, body: F)
where
    F: FnOnce(TestRuntime) -> Fut,
    Fut: std::future::Future,
    Fut::Output: TestResult,
{
    let driver = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start the test's tokio runtime: {e}"));
    driver.block_on(async move {
        let rt = options
            .build()
            .await
            .unwrap_or_else(|e| panic!("cannot build the test runtime: {e}"));
        body(rt.clone()).await.check();
        rt.shutdown().await;
    });
}
