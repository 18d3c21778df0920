//! What every instance of a deployment shares, and the lifecycle events they publish.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::reports::Reports;
use crate::bus::EventBus;
use crate::component::Component;
use crate::ids::DeploymentId;
use crate::supervision::{Escalation, LifecycleEvent, LifecycleKind, Supervisor};
use crate::watchdog::Stamp;
use crate::worker::WorkerPool;

/// What every instance of a deployment shares.
pub(crate) struct Shared<C: Component> {
    /// Where the deployment's instances report their start and stop.
    pub(crate) reports: Reports,
    pub(crate) factory: Box<dyn Fn() -> C + Send + Sync>,
    /// The config the deployment was made with, kept in place: a deployment whose config is
    /// never swapped makes no allocation for it.
    pub(crate) initial: C::Config,
    /// The config [`Fluxor::reconfigure`](crate::Fluxor::reconfigure) swapped in last, if any.
    /// Read after a swap (a context keeps its own `Arc`), so a lock is enough.
    pub(super) swapped: std::sync::Mutex<Option<Arc<C::Config>>>,
    /// Grows with every swap (wrapping, and never 0 again after the first): an instance
    /// compares it with the one it adopted last. 32 bits, so that a context keeps it beside
    /// its other small fields.
    pub(crate) config_generation: std::sync::atomic::AtomicU32,
    pub(crate) deployment: DeploymentId,
    /// What the runtime's deployment table keeps of it (its key with the blocked-reactor
    /// checker among it).
    pub(crate) listing: super::table::Listing,
    pub(crate) bus: EventBus,
    pub(crate) supervisor: Supervisor,
    /// Publishes no lifecycle events.
    pub(crate) quiet: bool,
    /// Each reactor's mark for the blocked-reactor checker, by index (read for every
    /// message, so kept here rather than behind `services`).
    pub(crate) stamps: Arc<[Stamp]>,
    /// What every deployment of the runtime uses.
    pub(crate) services: Arc<Services>,
}

/// What every deployment of a runtime uses of it, shared by all of them: one pointer in each
/// deployment instead of a handle to each.
pub(crate) struct Services {
    pub(crate) workers: WorkerPool,
    pub(crate) escalation: EscalationCtl,
    /// The runtime, for `Context::inspect` (weak: the runtime owns its deployments).
    pub(crate) runtime: super::WeakFluxor,
    /// The runtime's cancellation token, parent of each instance's.
    pub(crate) cancel: CancellationToken,
    /// Each reactor's tokio runtime, by index: where instances' timers run.
    pub(crate) reactors: Box<[tokio::runtime::Handle]>,
    /// A copy of every lifecycle event, for in-process watchers (the HTTP adapter's
    /// dashboard).
    pub(crate) lifecycle: Lifecycle,
}

/// Lifecycle events for in-process watchers: a bounded ring, where a slow receiver skips
/// what it missed, and the number of watchers beside it. An instance's start and stop look at
/// that number, one atomic, rather than at the ring's receiver count, which takes the ring's
/// lock: one lock shared by every reactor, twice per instance, while nobody watches.
pub(crate) struct Lifecycle {
    ring: tokio::sync::broadcast::Sender<LifecycleEvent>,
    watchers: Arc<std::sync::atomic::AtomicUsize>,
}

impl Lifecycle {
    pub(crate) fn new(capacity: usize) -> Self {
        Lifecycle {
            ring: tokio::sync::broadcast::Sender::new(capacity),
            watchers: Arc::default(),
        }
    }

    /// A new watcher: it receives the events sent from now on.
    pub(crate) fn watch(&self) -> LifecycleWatch {
        self.watchers
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        LifecycleWatch {
            events: self.ring.subscribe(),
            watchers: self.watchers.clone(),
        }
    }

    /// Whether anyone watches.
    pub(crate) fn watched(&self) -> bool {
        self.watchers.load(std::sync::atomic::Ordering::Acquire) > 0
    }

    fn send(&self, event: LifecycleEvent) {
        // Fails only when every watcher has gone since: nothing to do then.
        let _ = self.ring.send(event);
    }
}

/// A watcher of lifecycle events, counted while it lives.
pub(crate) struct LifecycleWatch {
    events: tokio::sync::broadcast::Receiver<LifecycleEvent>,
    watchers: Arc<std::sync::atomic::AtomicUsize>,
}

impl LifecycleWatch {
    /// The next event; `Lagged(n)` when this watcher fell `n` events behind the ring.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) async fn recv(
        &mut self,
    ) -> Result<LifecycleEvent, tokio::sync::broadcast::error::RecvError> {
        self.events.recv().await
    }
}

impl Drop for LifecycleWatch {
    fn drop(&mut self) {
        self.watchers
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl<C: Component> Shared<C> {
    /// The deployment's current config (`None`: the initial one) and its generation. The
    /// generation is read first: a swap in between is adopted again at the next message.
    pub(crate) fn config(&self) -> (u32, Option<Arc<C::Config>>) {
        let generation = self
            .config_generation
            .load(std::sync::atomic::Ordering::Acquire);
        if generation == 0 {
            // Never swapped: no lock.
            return (0, None);
        }
        let swapped = self
            .swapped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        (generation, swapped)
    }

    /// Instance `instance`'s key with the blocked-reactor checker.
    #[inline]
    pub(crate) fn watch_key(&self, instance: u32) -> u64 {
        self.listing.watch.key(instance as usize)
    }

    /// Swaps in a new config; instances adopt it by its generation.
    pub(crate) fn set_config(&self, config: C::Config, keys: Vec<String>) {
        let (old, old_keys) = {
            let mut swapped = self.swapped.lock().unwrap_or_else(|e| e.into_inner());
            let old = swapped.replace(Arc::new(config));
            // Under the same lock: two swaps at once leave one config with its own keys.
            let old_keys = self.listing.set_config_keys(keys);
            next_generation(&self.config_generation);
            (old, old_keys)
        };
        // Dropped once the lock is let go: readers of the config do not wait for it.
        drop((old, old_keys));
    }
}

/// Counts a config swap. Generation 0 means "never swapped", so a count that wraps around
/// steps over it, in one atomic step.
fn next_generation(generation: &std::sync::atomic::AtomicU32) {
    use std::sync::atomic::Ordering;
    // The closure always returns `Some`: the update cannot fail.
    let _ = generation.fetch_update(Ordering::Release, Ordering::Relaxed, |g| {
        Some(g.wrapping_add(1).max(1))
    });
}

/// The runtime's escalation policy and the signal it raises, and a record of crashes.
pub(crate) struct EscalationCtl {
    pub(crate) policy: Escalation,
    pub(crate) raised: CancellationToken,
    pub(crate) reason: std::sync::Mutex<Option<String>>,
    pub(crate) crashes: std::sync::atomic::AtomicU64,
    /// The first few crashes, for reports.
    pub(crate) first_crashes: std::sync::Mutex<Vec<String>>,
}

impl EscalationCtl {
    pub(crate) fn new(policy: Escalation) -> Self {
        EscalationCtl {
            policy,
            raised: CancellationToken::new(),
            reason: std::sync::Mutex::new(None),
            crashes: std::sync::atomic::AtomicU64::new(0),
            first_crashes: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub(super) fn note_crash(&self, component: &str, reason: &str) {
        self.crashes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut first = self.first_crashes.lock().unwrap_or_else(|e| e.into_inner());
        if first.len() < 16 {
            first.push(format!("`{component}`: {reason}"));
        }
    }

    pub(super) fn escalate(&self, component: &str, deployment: DeploymentId, reason: &str) {
        tracing::error!(component, %deployment, %reason, policy = ?self.policy, "deployment failed: its restart intensity was exceeded");
        if self.policy == Escalation::Shutdown {
            let mut slot = self.reason.lock().unwrap_or_else(|e| e.into_inner());
            slot.get_or_insert_with(|| {
                format!("deployment {deployment} of `{component}` failed: {reason}")
            });
            self.raised.cancel();
        }
    }
}

/// Publishes a lifecycle event of an instance on `fluxor.lifecycle.<kind>`.
pub(crate) fn publish_event<C: Component>(
    shared: &Shared<C>,
    kind: LifecycleKind,
    instance: usize,
    reason: Option<String>,
) {
    if shared.quiet {
        return;
    }
    let to_bus = shared.bus.reserved_consumers();
    let to_watchers = shared.services.lifecycle.watched();
    if !(to_bus || to_watchers) {
        return;
    }
    let event = LifecycleEvent {
        kind,
        deployment: shared.deployment,
        component: C::name(),
        instance,
        reason,
        restarts: shared
            .supervisor
            .restarts
            .load(std::sync::atomic::Ordering::Relaxed),
    };
    if to_watchers {
        shared.services.lifecycle.send(event.clone());
    }
    if !to_bus {
        return;
    }
    if let Err(e) = shared
        .bus
        .publish_unguarded(kind.topic(), event, shared.bus.root_meta())
    {
        tracing::debug!(error = %e, "a lifecycle event did not reach every subscriber");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::Lifecycle;
    use crate::ids::DeploymentId;
    use crate::supervision::{LifecycleEvent, LifecycleKind};

    #[test]
    fn lifecycle_watchers_are_counted_while_they_live() {
        let lifecycle = Lifecycle::new(4);
        assert!(!lifecycle.watched());
        let mut first = lifecycle.watch();
        let second = lifecycle.watch();
        assert!(lifecycle.watched());
        lifecycle.send(LifecycleEvent {
            kind: LifecycleKind::Started,
            deployment: DeploymentId(uuid::Uuid::from_u128(7)),
            component: "Probe",
            instance: 0,
            reason: None,
            restarts: 0,
        });
        let event = first.events.try_recv().expect("the watcher got the event");
        assert_eq!(event.deployment, DeploymentId(uuid::Uuid::from_u128(7)));
        drop(second);
        assert!(lifecycle.watched(), "one watcher is left");
        drop(first);
        assert!(!lifecycle.watched());
    }

    #[test]
    fn a_swap_count_never_comes_back_to_never_swapped() {
        let generation = AtomicU32::new(0);
        super::next_generation(&generation);
        assert_eq!(generation.load(Ordering::Relaxed), 1);
        generation.store(u32::MAX - 1, Ordering::Relaxed);
        super::next_generation(&generation);
        assert_eq!(generation.load(Ordering::Relaxed), u32::MAX);
        super::next_generation(&generation);
        assert_eq!(generation.load(Ordering::Relaxed), 1);
    }
}
