//! The inspector: a serializable snapshot of a running system.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use serde::Serialize;

use super::{DeploymentInfo, Fluxor, Inner, ReactorInfo};
use crate::worker::WorkerStats;

/// Produces the JSON of an extra section of the snapshot (e.g. the HTTP adapter's counters).
pub(crate) type Extra = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

/// A snapshot of the runtime, from [`Fluxor::inspect`] or
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

impl Fluxor {
    /// A snapshot of the whole system: reactors, deployments and their mailboxes, bus topics,
    /// the worker pool, and adapters' sections. Serializable (e.g. as JSON); see [`Snapshot`]
    /// for what is approximate.
    pub fn inspect(&self) -> Snapshot {
        snapshot(&self.inner)
    }
}

/// Adds a named section to every snapshot (replacing one of the same name).
#[cfg(feature = "http")]
pub(crate) fn register_extra(inner: &Inner, name: &str, extra: Extra) {
    let mut extras = inner.extras.lock().unwrap_or_else(|e| e.into_inner());
    extras.retain(|(n, _)| n != name);
    extras.push((name.to_owned(), extra));
}

#[cfg(feature = "http")]
pub(crate) fn unregister_extra(inner: &Inner, name: &str) {
    inner
        .extras
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(n, _)| n != name);
}

/// A snapshot through a weak handle (from a component's context).
pub(crate) fn inspect_weak(runtime: &Weak<Inner>) -> Option<Snapshot> {
    runtime.upgrade().map(|inner| snapshot(&inner))
}

fn snapshot(inner: &Arc<Inner>) -> Snapshot {
    let rt = Fluxor {
        inner: inner.clone(),
    };
    let (topics, patterns) = inner.bus.subscriptions();
    let to_info = |v: Vec<(String, usize)>| {
        v.into_iter()
            .map(|(topic, consumers)| TopicInfo { topic, consumers })
            .collect()
    };
    let extras = inner
        .extras
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(name, f)| (name.clone(), f()))
        .collect();
    Snapshot {
        reactors: rt.reactor_stats(),
        deployments: rt.deployments(),
        bus: BusInfo {
            topics: to_info(topics),
            patterns: to_info(patterns),
        },
        workers: inner.workers.stats(),
        extras,
    }
}
