//! Taking a snapshot of a running system (see [`crate::inspect`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::handle::{Fluxor, Inner};
use crate::inspect::{
    BusInfo, DeploymentInfo, DeploymentState, InstanceInfo, ReactorInfo, Snapshot, TopicInfo,
};
use crate::supervision::InstanceState;

/// Produces the JSON of an extra section of the snapshot (e.g. the HTTP adapter's counters).
pub(crate) type Extra = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

impl Fluxor {
    /// A snapshot of the whole system: reactors, deployments and their mailboxes, bus topics,
    /// the worker pool, and adapters' sections. Serializable (e.g. as JSON); see [`Snapshot`]
    /// for what is approximate.
    pub fn inspect(&self) -> Snapshot {
        snapshot(&self.inner)
    }

    /// Adds a named section to every [`Snapshot`] from now on, in
    /// [`Snapshot::extras`], replacing a section of the same name. `section` runs each time a
    /// snapshot is taken, on the caller's thread: keep it quick (read counters, do not wait).
    /// The HTTP adapter adds its counters as `http` this way.
    ///
    /// ```
    /// # fn demo(runtime: &fluxor::Fluxor) {
    /// runtime.add_inspect_section("cache", || serde_json::json!({ "entries": 42 }));
    /// assert_eq!(runtime.inspect().extras["cache"]["entries"], 42);
    /// # }
    /// ```
    pub fn add_inspect_section(
        &self,
        name: impl Into<String>,
        section: impl Fn() -> serde_json::Value + Send + Sync + 'static,
    ) {
        self.inner.extras.insert(name.into(), Box::new(section));
    }

    /// Removes the snapshot section `name`; `false` if there was none.
    pub fn remove_inspect_section(&self, name: &str) -> bool {
        self.inner.extras.remove(name)
    }

    /// A receiver of every lifecycle event from now on (those also published on
    /// `fluxor.lifecycle.*`), without deploying a subscriber. The ring holds
    /// [`LIFECYCLE_RING`](super::LIFECYCLE_RING) events: a receiver that falls further behind
    /// is told how many it skipped.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn lifecycle_events(&self) -> super::shared::LifecycleWatch {
        self.inner.services.lifecycle.watch()
    }
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
        .map(|name, section| (name.to_owned(), section()))
        .into_iter()
        .collect();
    Snapshot {
        reactors: rt.reactor_stats(),
        deployments: rt.deployments(),
        bus: BusInfo {
            topics: to_info(topics),
            patterns: to_info(patterns),
        },
        workers: inner.services.workers.stats(),
        extras,
    }
}

impl Fluxor {
    /// Per reactor: messages handled and blocked episodes seen by the blocked-reactor checker.
    pub fn reactor_stats(&self) -> Vec<ReactorInfo> {
        let mut pinned = vec![0usize; self.inner.reactors.len()];
        for d in self.lock().iter() {
            for instance in d.instances() {
                if let Some(n) = pinned.get_mut(self.reactor_of(&**instance)) {
                    *n += 1;
                }
            }
        }
        self.inner
            .watchdog
            .gauges
            .iter()
            .enumerate()
            .map(|(index, p)| ReactorInfo {
                index,
                components: pinned[index],
                handled: p.handled.load(Ordering::Relaxed),
                busy_ms: p.busy_ms.load(Ordering::Relaxed),
                blocked_episodes: p.blocked.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// The live deployments, in deploy order, with per-instance counters.
    pub fn deployments(&self) -> Vec<DeploymentInfo> {
        let found: Vec<(u64, DeploymentInfo)> = self
            .lock()
            .iter()
            .map(|d| {
                (
                    d.order(),
                    DeploymentInfo {
                        id: d.id(),
                        component: d.component(),
                        state: if d.supervisor().failed.load(Ordering::Acquire) {
                            DeploymentState::Failed
                        } else {
                            DeploymentState::Running
                        },
                        restarts: d.supervisor().restarts.load(Ordering::Relaxed),
                        worker: d.listing().worker,
                        config_keys: d.listing().config_keys(),
                        instances: d
                            .instances()
                            .iter()
                            .enumerate()
                            .map(|(index, h)| InstanceInfo {
                                index,
                                reactor: self.reactor_of(&**h),
                                state: InstanceState::load(&h.stats().state),
                                restarts: h.stats().restarts.load(Ordering::Relaxed),
                                mailbox_len: h.queued(),
                                mailbox_capacity: d.mailbox_capacity(),
                                handled: h.stats().handled.load(Ordering::Relaxed),
                                failed: h.stats().failed.load(Ordering::Relaxed),
                                panicked: h.stats().panicked.load(Ordering::Relaxed),
                                abandoned: h.stats().abandoned.load(Ordering::Relaxed),
                                undelivered: h.stats().undelivered.load(Ordering::Relaxed).into(),
                                interrupted: h.stats().interrupted.load(Ordering::Relaxed).into(),
                                rejected: h.stats().rejected.load(Ordering::Relaxed),
                            })
                            .collect(),
                    },
                )
            })
            .collect();
        super::table::in_deploy_order(found)
    }
}
