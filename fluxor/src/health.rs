//! Health and readiness reports, for an orchestrator's probes: [`Fluxor::liveness`] (is every
//! reactor turning?) and [`Fluxor::readiness`] (can the service take work now?). The HTTP
//! adapter serves them on `/health` and `/ready` when asked to
//! ([`HttpServerBuilder::health`](crate::http::HttpServerBuilder::health), feature `http`).
//!
//! [`Fluxor::liveness`]: crate::Fluxor::liveness
//! [`Fluxor::readiness`]: crate::Fluxor::readiness

use std::time::Duration;

use serde::Serialize;

/// A probe's answer: `ok` when every check passed, and each check with what it found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Health {
    /// Every check passed.
    pub ok: bool,
    /// The checks, in a fixed order.
    pub checks: Vec<Check>,
}

/// One check of a [`Health`] report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Check {
    /// What was checked, e.g. `reactors`, `mailboxes`, or the name of a check added with
    /// [`Fluxor::add_readiness_check`](crate::Fluxor::add_readiness_check).
    pub name: std::borrow::Cow<'static, str>,
    /// Whether it passed.
    pub ok: bool,
    /// What failed, in words (`None` when it passed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Health {
    pub(crate) fn new(checks: Vec<Check>) -> Self {
        Health {
            ok: checks.iter().all(|c| c.ok),
            checks,
        }
    }
}

impl Check {
    pub(crate) fn new(
        name: impl Into<std::borrow::Cow<'static, str>>,
        failures: Vec<String>,
    ) -> Self {
        Check {
            name: name.into(),
            ok: failures.is_empty(),
            detail: (!failures.is_empty()).then(|| failures.join("; ")),
        }
    }
}

/// When the probes fail, set with [`Builder::probes`](crate::Builder::probes).
///
/// ```
/// use std::time::Duration;
/// use fluxor::health::Thresholds;
///
/// let t = Thresholds::new()
///     .stuck_after(Duration::from_secs(30))
///     .mailbox_fill(0.8)
///     .worker_queue_fill(0.8);
/// # let _ = t;
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub(crate) check_timeout: Duration,
    pub(crate) stuck_after: Duration,
    pub(crate) mailbox_fill: f64,
    pub(crate) worker_queue_fill: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            check_timeout: Duration::from_secs(1),
            stuck_after: Duration::from_secs(30),
            mailbox_fill: 0.9,
            worker_queue_fill: 0.9,
        }
    }
}

impl Thresholds {
    /// The defaults: a reactor is stuck after one handler held it 30 s; not ready when a
    /// mailbox or the worker queue is 90% full; an added check may take 1 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a check added with
    /// [`Fluxor::add_readiness_check`](crate::Fluxor::add_readiness_check) may take before it
    /// counts as failed ("timed out"). Default 1 s.
    pub fn check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// Liveness fails when one handler has held its reactor this long.
    pub fn stuck_after(mut self, after: Duration) -> Self {
        self.stuck_after = after;
        self
    }

    /// Readiness fails when some mailbox holds more than this share of its capacity
    /// (0.0 to 1.0).
    pub fn mailbox_fill(mut self, share: f64) -> Self {
        self.mailbox_fill = share.clamp(0.0, 1.0);
        self
    }

    /// Readiness fails when the worker pool's queue holds more than this share of its
    /// capacity (0.0 to 1.0).
    pub fn worker_queue_fill(mut self, share: f64) -> Self {
        self.worker_queue_fill = share.clamp(0.0, 1.0);
        self
    }
}

/// A readiness check added by the program: resolves to `Ok(())` when what it checks is usable.
pub(crate) type ReadinessCheck = Box<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;
