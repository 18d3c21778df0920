//! What the runtime shows of itself: a serializable [`Snapshot`] of reactors, deployments,
//! mailboxes, bus subscriptions and the worker pool, from
//! [`Fluxor::inspect`](crate::Fluxor::inspect) or [`Context::inspect`](crate::Context::inspect).
//!
//! These types are plain data: taking a snapshot stops nothing, and every field is public to
//! read (the structs are `#[non_exhaustive]`, so new fields can come in minor releases).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ids::DeploymentId;
pub use crate::supervision::InstanceState;
pub use crate::worker::WorkerStats;

/// A snapshot of the runtime, from [`Fluxor::inspect`](crate::Fluxor::inspect) or
/// [`Context::inspect`](crate::Context::inspect).
///
/// Taking it stops nothing: every counter is read with relaxed atomic loads while the system
/// runs, so two numbers in one snapshot may be a few messages apart, and `busy_ms` is sampled.
/// Each list is consistent on its own (deployments and bus topics are each read from one
/// consistent view).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// Per reactor.
    pub reactors: Vec<ReactorInfo>,
    /// Live deployments in deploy order, with their instances and mailboxes.
    pub deployments: Vec<DeploymentInfo>,
    /// Topics and patterns with their consumer counts.
    pub bus: BusInfo,
    /// The worker pool.
    pub workers: WorkerStats,
    /// Sections added by adapters, by name (e.g. `http`).
    pub extras: BTreeMap<String, serde_json::Value>,
}

/// The bus's subscriptions.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct BusInfo {
    /// Exact topics, sorted.
    pub topics: Vec<TopicInfo>,
    /// Wildcard patterns, sorted.
    pub patterns: Vec<TopicInfo>,
}

/// One topic or pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TopicInfo {
    /// The topic or pattern.
    pub topic: String,
    /// How many consumers (component instances) bind it.
    pub consumers: usize,
}

/// What the runtime knows about one live deployment.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct DeploymentInfo {
    /// The id.
    pub id: DeploymentId,
    /// The component type's name.
    pub component: &'static str,
    /// Running, or failed (restart intensity exceeded).
    pub state: DeploymentState,
    /// Restarts of its instances so far.
    pub restarts: u64,
    /// Whether its handlers run on the worker pool.
    pub worker: bool,
    /// The top-level keys of its config (values are not shown: they may be secrets).
    pub config_keys: Vec<String>,
    /// One entry per instance.
    pub instances: Vec<InstanceInfo>,
}

/// The state of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum DeploymentState {
    /// Serving.
    Running,
    /// Its restart intensity was exceeded; its instances stopped.
    Failed,
}

/// What the runtime knows about one instance.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct InstanceInfo {
    /// Index within the deployment.
    pub index: usize,
    /// The reactor it is pinned to.
    pub reactor: usize,
    /// Where it is in its life.
    pub state: InstanceState,
    /// Times it was restarted.
    pub restarts: u64,
    /// Messages waiting in its mailbox.
    pub mailbox_len: usize,
    /// Its mailbox's bound.
    pub mailbox_capacity: usize,
    /// Messages handled successfully.
    pub handled: u64,
    /// Messages whose handler returned an error.
    pub failed: u64,
    /// Messages whose handler panicked.
    pub panicked: u64,
    /// Requests not handled because their requester had gone (dropped its request or stopped
    /// waiting at its deadline) before their handler ran.
    pub abandoned: u64,
    /// Accepted messages dropped unhandled when the instance stopped: its stop deadline passed
    /// first, or its supervision policy stopped it (their requesters are told `Closed`).
    pub undelivered: u64,
    /// Messages whose handler was cut short at a stop deadline.
    pub interrupted: u64,
    /// Messages refused because this mailbox was full. A message that every instance it could
    /// go to refused counts once, at the instance chosen first; a published copy counts at the
    /// instance that refused it.
    pub rejected: u64,
}

/// What the runtime knows about one reactor.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ReactorInfo {
    /// The reactor's index.
    pub index: usize,
    /// Component instances pinned to it (live deployments).
    pub components: usize,
    /// Handler invocations run on it.
    pub handled: u64,
    /// Time spent in handlers, estimated by sampling at the blocked-reactor checker's tick
    /// (a tenth of the threshold, between 1 and 100 ms): approximate.
    pub busy_ms: u64,
    /// Times a handler held it longer than the blocked threshold.
    pub blocked_episodes: u64,
}
