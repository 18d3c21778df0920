//! Deploy options: instances, mailbox capacity, config, placement, supervision.

use std::time::Duration;

use serde::Serialize;

use crate::supervision::Supervision;

/// How to deploy a component: instances, mailbox capacity, config, placement.
///
/// ```
/// use fluxor::DeployOptions;
///
/// let opts = DeployOptions::new()
///     .instances(3)
///     .mailbox_capacity(256)
///     .config(serde_json::json!({ "greeting": "hello" }));
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    pub(super) instances: Option<usize>,
    pub(super) mailbox_capacity: Option<usize>,
    pub(super) config: Option<Result<serde_json::Value, String>>,
    pub(super) reactor: Option<usize>,
    pub(super) start_timeout: Option<Duration>,
    pub(super) worker: Option<bool>,
    pub(super) supervision: Option<Supervision>,
    /// No lifecycle events (the test kit's probes).
    pub(crate) quiet: bool,
}

impl DeployOptions {
    /// One instance, the runtime's default mailbox capacity, no config, spread placement.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many instances to run; bus `send` and `request` round-robin over them. Default 1.
    pub fn instances(mut self, n: usize) -> Self {
        self.instances = Some(n);
        self
    }

    /// The bound of each instance's mailbox. Default: the runtime's
    /// [`Builder::mailbox_capacity`](crate::Builder::mailbox_capacity).
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        self.mailbox_capacity = Some(capacity);
        self
    }

    /// The deployment's config, serialized now and deserialized into the component's
    /// `Config` type at deploy time (a mismatch fails the deploy with
    /// [`DeployError::Config`](crate::DeployError::Config)). Without it, the config is deserialized from `null`, then `{}`.
    pub fn config(mut self, config: impl Serialize) -> Self {
        self.config = Some(serde_json::to_value(config).map_err(|e| e.to_string()));
        self
    }

    /// Pins every instance to reactor `index` instead of spreading them over all reactors.
    pub fn reactor(mut self, index: usize) -> Self {
        self.reactor = Some(index);
        self
    }

    /// Runs the instances as worker components (`true`: handlers on the worker pool, where
    /// blocking is allowed) or on their reactors (`false`). Default: the component's
    /// declaration (`#[component(worker)]`). `true` needs a component declared worker-capable,
    /// since it must be `Send`.
    pub fn worker(mut self, worker: bool) -> Self {
        self.worker = Some(worker);
        self
    }

    /// What happens when a handler panics. Default: the component's declaration
    /// (`#[component(supervise = ...)]`), else [`Supervision::default`].
    pub fn supervision(mut self, supervision: Supervision) -> Self {
        self.supervision = Some(supervision);
        self
    }

    /// How long each instance's `start` may take before the deploy fails. Default 30 s.
    ///
    /// A start still running then is cut short (its future is dropped at its next `.await`)
    /// and the instance's stop hook runs, so the deploy returns soon after the timeout. A start
    /// that blocks its thread cannot be cut: see the blocked-reactor checker.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = Some(timeout);
        self
    }
}
