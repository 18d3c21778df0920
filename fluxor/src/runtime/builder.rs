//! The builder: how many reactors, timeouts, the worker pool, and the rest of a runtime's
//! settings.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::handle::{Fluxor, Inner, WeakFluxor};
use super::reactor::Reactor;
use super::shared::{EscalationCtl, Services};
use super::table::Table;
use crate::bus::EventBus;
use crate::error::BuildError;
use crate::health::Thresholds;
use crate::supervision::Escalation;
use crate::util::Named;
use crate::wake::Wakeups;
use crate::watchdog::Watchdog;
use crate::worker::WorkerPool;

/// Configures and builds a [`Fluxor`] runtime.
#[derive(Debug, Clone)]
pub struct Builder {
    reactors: Option<usize>,
    mailbox_capacity: usize,
    request_timeout: Duration,
    shutdown_timeout: Duration,
    thread_name: String,
    worker_threads: Option<usize>,
    worker_queue: usize,
    blocked_threshold: Duration,
    paused: bool,
    escalation: Escalation,
    spin_before_park: Duration,
    probes: Thresholds,
    extensions: Vec<Arc<dyn Extension>>,
}

/// Something a feature adds to a runtime once it is built (the cluster connection).
pub(crate) trait Extension: Send + Sync + std::fmt::Debug + 'static {
    /// Attaches itself to the new runtime.
    fn install(&self, runtime: &Fluxor) -> Result<(), BuildError>;
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            reactors: None,
            mailbox_capacity: 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            thread_name: "fluxor".into(),
            worker_threads: None,
            worker_queue: 1024,
            blocked_threshold: Duration::from_secs(2),
            paused: false,
            escalation: Escalation::default(),
            spin_before_park: Duration::from_micros(50),
            probes: Thresholds::default(),
            extensions: Vec::new(),
        }
    }
}

impl Builder {
    /// Adds an extension, installed by [`build`](Self::build).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn extend(mut self, extension: Arc<dyn Extension>) -> Self {
        self.extensions.push(extension);
        self
    }

    /// When [`Fluxor::liveness`] and [`Fluxor::readiness`] fail. Default: [`Thresholds::new`].
    pub fn probes(mut self, thresholds: Thresholds) -> Self {
        self.probes = thresholds;
        self
    }

    /// Number of reactor threads. Default: the available cores.
    pub fn reactors(mut self, n: usize) -> Self {
        self.reactors = Some(n);
        self
    }

    /// Default mailbox bound for deployments that do not set one. Default 1024.
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        self.mailbox_capacity = capacity;
        self
    }

    /// Default timeout of [`EventBus::request`]. Default 30 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long [`Fluxor::run`] lets components drain and stop after a signal. Default 10 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Threads of the worker pool for blocking work. Default: twice the available cores.
    pub fn worker_threads(mut self, n: usize) -> Self {
        self.worker_threads = Some(n);
        self
    }

    /// How long one handler may hold its reactor before the blocked-reactor checker warns
    /// (a `tracing` warning naming the reactor, component and topic, and a counter in
    /// [`Fluxor::reactor_stats`]). Default 2 s.
    pub fn blocked_threshold(mut self, threshold: Duration) -> Self {
        self.blocked_threshold = threshold;
        self
    }

    /// Starts every reactor with tokio's clock paused: time advances only when a reactor has
    /// nothing else to do, straight to its next timer. Timers and timeouts on reactors then run
    /// in virtual time, so tests of them finish in milliseconds and measure exact intervals.
    #[cfg(feature = "test-util")]
    pub fn start_paused(mut self, paused: bool) -> Self {
        self.paused = paused;
        self
    }

    /// How long an idle reactor spins, watching for work handed to it from another thread,
    /// before it parks its thread. Waking a parked thread costs from a few to tens of
    /// microseconds (more on virtual machines); spinning trades that latency for a little CPU
    /// each time a reactor runs out of work. This is the longest spin: a reactor whose
    /// wake-ups from other threads come further apart than that (or that wakes only for its
    /// own timers and I/O) spins less, down to a sixteenth of it, and spins the whole again
    /// once another thread's wake-up comes within it. While one of its tasks waits for a
    /// reply it asked for, a reactor spins the whole of it (once per request; less while
    /// replies keep coming later than that). A spinner that has caught nothing for four of its
    /// turns (a few microseconds) yields its thread at every turn after, so a thread the
    /// system runs on the same CPU (the reactor it waits for, woken there) is not held up by
    /// the spin. Zero turns it off; reactors whose clock starts paused never spin. Default
    /// 50 µs.
    pub fn spin_before_park(mut self, spin: Duration) -> Self {
        self.spin_before_park = spin;
        self
    }

    /// What the runtime does when a deployment fails (exceeds its restart intensity).
    /// Default [`Escalation::Log`].
    pub fn escalation(mut self, escalation: Escalation) -> Self {
        self.escalation = escalation;
        self
    }

    /// Bound of the worker pool's queue. Default 1024.
    pub fn worker_queue(mut self, capacity: usize) -> Self {
        self.worker_queue = capacity;
        self
    }

    /// Prefix of the runtime's thread names (`NAME-reactor-0`, `NAME-worker-0`, ...).
    /// Default `fluxor`.
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Starts the reactor threads.
    ///
    /// # Errors
    /// [`BuildError::InvalidOption`] for a zero reactor count or mailbox capacity, or a zero
    /// request timeout; [`BuildError::Reactor`] if a thread cannot be started.
    pub fn build(self) -> Result<Fluxor, BuildError> {
        let n = match self.reactors {
            Some(0) => {
                return Err(BuildError::InvalidOption(
                    "`reactors` must be at least 1".into(),
                ))
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if self.mailbox_capacity == 0 {
            return Err(BuildError::InvalidOption(
                "`mailbox_capacity` must be at least 1".into(),
            ));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let worker_threads = self.worker_threads.unwrap_or(2 * cores);
        if worker_threads == 0 || self.worker_queue == 0 {
            return Err(BuildError::InvalidOption(
                "`worker_threads` and `worker_queue` must be at least 1".into(),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(BuildError::InvalidOption(
                "`request_timeout` must be longer than zero".into(),
            ));
        }
        let workers = WorkerPool::new(worker_threads, self.worker_queue, &self.thread_name)
            .map_err(BuildError::Workers)?;
        let watchdog = Watchdog::start(n, self.blocked_threshold, &self.thread_name)
            .map_err(BuildError::Workers)?;
        let reactor_name = format!("{}-reactor", self.thread_name);
        let mut wakeups = Vec::with_capacity(n);
        let reactors = (0..n)
            .map(|i| {
                let w = Arc::new(Wakeups::default());
                wakeups.push(w.clone());
                Reactor::spawn(i, &reactor_name, self.paused, w, self.spin_before_park)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let stamps = (0..n).map(|i| watchdog.stamp(i)).collect();
        let runtime = Fluxor {
            inner: Arc::new_cyclic(|inner| Inner {
                bus: EventBus::new(self.request_timeout),
                extras: Named::default(),
                services: Arc::new(Services {
                    workers,
                    escalation: EscalationCtl::new(self.escalation),
                    runtime: WeakFluxor(inner.clone()),
                    cancel: CancellationToken::new(),
                    reactors: reactors.iter().map(|r| r.handle.clone()).collect(),
                    lifecycle: super::shared::Lifecycle::new(super::LIFECYCLE_RING),
                }),
                wakeups,
                stamps,
                watchdog,
                reactors,
                deployments: Arc::default(),
                deployment_ids: crate::ids::IdGen::new(),
                shutting_down: AtomicBool::new(false),
                next_reactor: AtomicUsize::new(0),
                mailbox_capacity: self.mailbox_capacity,
                shutdown_timeout: self.shutdown_timeout,
                probes: self.probes,
                checks: Named::default(),
                blocked_threshold: self.blocked_threshold,
            }),
        };
        runtime
            .inner
            .watchdog
            .shared
            .resolve_with(Table::resolver(&runtime.inner.deployments));
        for extension in &self.extensions {
            extension.install(&runtime)?;
        }
        Ok(runtime)
    }
}
