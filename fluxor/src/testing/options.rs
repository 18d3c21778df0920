//! [`TestOptions`]: how a test runtime is set up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::runtime::{hold, Holds, Inner};
use super::TestRuntime;
use crate::runtime::Fluxor;

/// Options of a [`TestRuntime`]; also what `#[fluxor::test(...)]` sets.
#[derive(Debug, Clone)]
pub struct TestOptions {
    pub(super) reactors: usize,
    pub(super) paused: bool,
    pub(super) allow_crashes: bool,
    pub(super) request_timeout: Duration,
    pub(super) shutdown_timeout: Duration,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            reactors: 1,
            paused: true,
            allow_crashes: false,
            request_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

impl TestOptions {
    /// One reactor, paused clock, crashes fail the test, 5 s request and shutdown timeouts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of reactors. Default 1.
    pub fn reactors(mut self, n: usize) -> Self {
        self.reactors = n;
        self
    }

    /// Real time instead of the paused clock: timers fire on their own and
    /// [`TestRuntime::advance`] sleeps.
    pub fn real_time(mut self) -> Self {
        self.paused = false;
        self
    }

    /// Handler panics do not fail the test (for tests of supervision).
    pub fn allow_crashes(mut self) -> Self {
        self.allow_crashes = true;
        self
    }

    /// Default timeout of requests. Default 5 s (of real time).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Builds the runtime. Must be called inside a tokio runtime (the `#[fluxor::test]`
    /// attribute provides one).
    ///
    /// # Errors
    /// As [`Builder::build`](crate::Builder::build), or when the paused clock cannot be held.
    pub async fn build(self) -> Result<TestRuntime, crate::error::BuildError> {
        let rt = Fluxor::builder()
            .reactors(self.reactors)
            .request_timeout(self.request_timeout)
            .shutdown_timeout(self.shutdown_timeout)
            .worker_threads(2)
            .start_paused(self.paused)
            .thread_name("fluxor-test")
            .build()?;
        let holds: Holds = Arc::new((0..self.reactors).map(|_| Mutex::new(None)).collect());
        if self.paused {
            // A pending blocking task keeps a reactor's paused clock from auto-advancing, so
            // that virtual time moves only through `advance`.
            let h = holds.clone();
            let held = rt
                .on_every_reactor(move |i| {
                    let h = h.clone();
                    async move { hold(&h, i) }
                })
                .await;
            if !held {
                return Err(crate::error::BuildError::InvalidOption(
                    "a reactor stopped while the test runtime was being built".into(),
                ));
            }
        }
        Ok(TestRuntime {
            inner: Arc::new(Inner {
                rt,
                options: self,
                holds,
            }),
        })
    }
}
