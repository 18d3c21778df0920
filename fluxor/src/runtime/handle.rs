//! The runtime handle, [`Fluxor`], and the state it shares with its components.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::builder::Builder;
use super::reactor::Reactor;
use super::table::Table;
use crate::bus::EventBus;
use crate::component::Component;
use crate::ids::DeploymentId;
use crate::wake::Wakeups;
use crate::watchdog::Watchdog;
use crate::worker::WorkerPool;

/// The Fluxor runtime: reactor threads, the event bus, the deployments.
///
/// ```no_run
/// use std::time::Duration;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let runtime = fluxor::Fluxor::builder().reactors(2).build()?;
/// // runtime.deploy(MyComponent::default, DeployOptions::new()).await?;
/// runtime.run().await?; // until Ctrl-C or SIGTERM
/// # Ok(()) }
/// ```
///
/// Cheap to clone; every clone is the same runtime. Dropping the last clone without
/// [`shutdown`](Self::shutdown) stops the reactors without draining or running `stop`.
#[derive(Clone)]
pub struct Fluxor {
    pub(super) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(super) bus: EventBus,
    /// Deployment ids: a random per-runtime prefix and a counter (no system call per deploy).
    pub(super) deployment_ids: crate::ids::IdGen,
    pub(super) extras: crate::util::Named<super::snapshot::Extra>,
    /// What deployments use of the runtime (worker pool, reactors' runtimes, cancellation,
    /// escalation, lifecycle watchers), one pointer in each.
    pub(super) services: Arc<super::shared::Services>,
    /// Per reactor: the queue through which other threads wake its tasks.
    pub(super) wakeups: Vec<Arc<Wakeups>>,
    /// Per reactor: its mark for the blocked-reactor checker.
    pub(super) stamps: Arc<[crate::watchdog::Stamp]>,
    pub(super) watchdog: Watchdog,
    pub(super) reactors: Vec<Reactor>,
    /// Shared with the blocked-reactor checker, which looks up labels there (weakly).
    pub(super) deployments: Arc<Mutex<Table>>,
    pub(super) shutting_down: AtomicBool,
    pub(super) next_reactor: AtomicUsize,
    pub(super) mailbox_capacity: usize,
    pub(super) shutdown_timeout: Duration,
    /// When the probes fail.
    pub(super) probes: crate::health::Thresholds,
    /// Readiness checks added by the program or by a deployment (which owns it then), by name.
    pub(super) checks:
        crate::util::Named<(Option<DeploymentId>, Arc<crate::health::ReadinessCheck>)>,
    /// How long one handler may hold a reactor before it counts as blocking it.
    pub(super) blocked_threshold: Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.services.cancel.cancel();
        self.bus.close();
        for r in &self.reactors {
            r.signal_stop();
        }
    }
}

impl fmt::Debug for Fluxor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fluxor")
            .field("reactors", &self.inner.reactors.len())
            .field("deployments", &self.lock().len())
            .field(
                "shutting_down",
                &self.inner.shutting_down.load(Ordering::Relaxed),
            )
            .finish()
    }
}

impl Fluxor {
    /// A builder with the defaults.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The event bus.
    pub fn bus(&self) -> &EventBus {
        &self.inner.bus
    }

    /// The worker pool for blocking work.
    pub fn workers(&self) -> &WorkerPool {
        &self.inner.services.workers
    }

    /// The tokio runtime of reactor `index`, for features that run tasks of their own there.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn reactor_handle(&self, index: usize) -> Option<tokio::runtime::Handle> {
        self.inner.services.reactors.get(index).cloned()
    }

    /// Number of reactor threads.
    pub fn reactors(&self) -> usize {
        self.inner.reactors.len()
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner
            .deployments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The index of the reactor an instance runs on (0 for a mailbox without one).
    pub(super) fn reactor_of(&self, instance: &dyn crate::mailbox::Signals) -> usize {
        instance
            .reactor()
            .and_then(|queue| {
                self.inner
                    .wakeups
                    .iter()
                    .position(|w| std::ptr::eq(&**w, queue))
            })
            .unwrap_or(0)
    }

    /// A handle to instance `instance` of a deployment, to send it messages directly (through
    /// its topic-less handlers) without a topic lookup. `None` if the deployment is unknown,
    /// has no such instance, or runs another component type than `C`.
    pub fn actor_ref<C: Component>(
        &self,
        id: DeploymentId,
        instance: usize,
    ) -> Option<crate::component::ActorRef<C>> {
        let table = self.lock();
        let d = table.get(id)?;
        if d.component_type() != std::any::TypeId::of::<C>() {
            return None;
        }
        let signals = d.instances().get(instance)?;
        Some(crate::component::ActorRef {
            mailbox: crate::mailbox::mailbox_of::<C::Msg>(signals)?,
            bus: self.inner.bus.clone(),
        })
    }
}

/// A handle that does not keep the runtime alive, from [`Fluxor::downgrade`] or
/// [`Context::runtime`](crate::Context::runtime): what a component (or an HTTP route the
/// runtime serves) holds to reach its runtime, since the runtime owns it and a strong handle
/// would keep both alive forever.
#[derive(Clone)]
pub struct WeakFluxor(pub(super) std::sync::Weak<Inner>);

impl WeakFluxor {
    /// The runtime, if it is still there.
    pub fn upgrade(&self) -> Option<Fluxor> {
        self.0.upgrade().map(|inner| Fluxor { inner })
    }
}

impl std::fmt::Debug for WeakFluxor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakFluxor")
            .field("alive", &(self.0.strong_count() > 0))
            .finish()
    }
}

impl Fluxor {
    /// A handle to this runtime that does not keep it alive.
    pub fn downgrade(&self) -> WeakFluxor {
        WeakFluxor(std::sync::Arc::downgrade(&self.inner))
    }
}
