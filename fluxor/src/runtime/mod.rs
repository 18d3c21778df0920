//! The runtime: reactors, deployments and shutdown.

mod inspect;
mod instance;
mod reactor;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::bus::EventBus;
use crate::bus::Owner;
use crate::component::{Bindings, Component};
use crate::error::{
    BuildError, DeployError, ShutdownError, ShutdownIssue, StopError, UndeployError,
};
use crate::ids::DeploymentId;
use crate::mailbox::{Mailbox, Signals};
use crate::supervision::{Escalation, InstanceState, LifecycleKind, Supervision, Supervisor};
use crate::wake::Wakeups;
use crate::watchdog::{Label, Watchdog};
use crate::worker::WorkerPool;

pub(crate) use inspect::inspect_weak;
#[cfg(feature = "http")]
pub(crate) use inspect::{register_extra, unregister_extra};

/// Sends a batch of instances to `reactor`, which creates each (so its component is made on
/// its reactor) and spawns its life there; `false` if the reactor has stopped.
async fn spawn_on<C: Component>(
    reactor: &Reactor,
    tasks: Vec<InstanceTask<C>>,
    worker: Option<crate::component::RunErased>,
) -> bool {
    reactor
        .run(Box::new(move || {
            // A factory that panicked has reported so and leaves nothing to run.
            for task in tasks {
                match worker {
                    Some(run) => {
                        if let Some(life) = run(Box::new(task)) {
                            tokio::task::spawn_local(life);
                        }
                    }
                    None => {
                        if let Some(life) = task.run() {
                            tokio::task::spawn_local(life);
                        }
                    }
                }
            }
        }))
        .await
}

/// The runtime, if it is still there (components hold it weakly: the runtime owns them).
pub(crate) fn upgrade(runtime: &std::sync::Weak<Inner>) -> Option<Fluxor> {
    runtime.upgrade().map(|inner| Fluxor { inner })
}
pub use inspect::{BusInfo, Snapshot, TopicInfo};
pub(crate) use instance::InstanceTask;
pub(crate) use instance::Shared;
use instance::{publish_event, Duty, EscalationCtl, Reports};

/// Instances sent to a reactor in one job when a deployment starts: large deployments start
/// without a job per instance, and no reactor is held up for long by one job.
const SPAWN_BATCH: usize = 256;
use reactor::Reactor;

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
    instances: Option<usize>,
    mailbox_capacity: Option<usize>,
    config: Option<Result<serde_json::Value, String>>,
    reactor: Option<usize>,
    start_timeout: Option<Duration>,
    worker: Option<bool>,
    supervision: Option<Supervision>,
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
    /// [`Builder::mailbox_capacity`].
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        self.mailbox_capacity = Some(capacity);
        self
    }

    /// The deployment's config, serialized now and deserialized into the component's
    /// `Config` type at deploy time (a mismatch fails the deploy with
    /// [`DeployError::Config`]). Without it, the config is deserialized from `null`, then `{}`.
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
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = Some(timeout);
        self
    }
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
    /// Messages refused because the mailbox was full.
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
        }
    }
}

impl Builder {
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
    /// each time a reactor runs out of work. Zero turns it off; reactors whose clock starts
    /// paused never spin. Default 50 µs.
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
        let reactor_handles = reactors.iter().map(|r| r.handle.clone()).collect();
        let stamps = (0..n).map(|i| watchdog.stamp(i)).collect();
        Ok(Fluxor {
            inner: Arc::new(Inner {
                bus: EventBus::new(self.request_timeout),
                extras: Mutex::new(Vec::new()),
                workers,
                wakeups,
                reactor_handles,
                stamps,
                watchdog,
                escalation: Arc::new(EscalationCtl::new(self.escalation)),
                reactors,
                deployments: Mutex::default(),
                deployment_ids: crate::ids::IdGen::new(),
                shutting_down: AtomicBool::new(false),
                next_reactor: AtomicUsize::new(0),
                cancel: CancellationToken::new(),
                mailbox_capacity: self.mailbox_capacity,
                shutdown_timeout: self.shutdown_timeout,
            }),
        })
    }
}

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
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    bus: EventBus,
    /// Deployment ids: a random per-runtime prefix and a counter (no system call per deploy).
    deployment_ids: crate::ids::IdGen,
    extras: Mutex<Vec<(String, inspect::Extra)>>,
    workers: WorkerPool,
    /// Per reactor: the queue through which other threads wake its tasks.
    wakeups: Vec<Arc<Wakeups>>,
    /// Per reactor: its tokio runtime.
    reactor_handles: Arc<[tokio::runtime::Handle]>,
    /// Per reactor: its mark for the blocked-reactor checker.
    stamps: Arc<[crate::watchdog::Stamp]>,
    watchdog: Watchdog,
    escalation: Arc<EscalationCtl>,
    reactors: Vec<Reactor>,
    deployments: Mutex<Table>,
    shutting_down: AtomicBool,
    next_reactor: AtomicUsize,
    cancel: CancellationToken,
    mailbox_capacity: usize,
    shutdown_timeout: Duration,
}

/// The live deployments, by id and in deploy order.
#[derive(Default)]
struct Table {
    order: std::collections::BTreeMap<u64, Deployment>,
    by_id: std::collections::HashMap<DeploymentId, u64>,
    next: u64,
}

impl Table {
    fn push(&mut self, d: Deployment) {
        self.next += 1;
        self.by_id.insert(d.id, self.next);
        self.order.insert(self.next, d);
    }

    fn get(&self, id: DeploymentId) -> Option<&Deployment> {
        self.order.get(self.by_id.get(&id)?)
    }

    fn remove(&mut self, id: DeploymentId) -> Option<Deployment> {
        self.order.remove(&self.by_id.remove(&id)?)
    }

    /// The latest deployment, taken out.
    fn pop(&mut self) -> Option<Deployment> {
        let (_, d) = self.order.pop_last()?;
        self.by_id.remove(&d.id);
        Some(d)
    }

    fn iter(&self) -> impl Iterator<Item = &Deployment> {
        self.order.values()
    }

    fn len(&self) -> usize {
        self.order.len()
    }
}

type Channel<T> = (Mailbox<T>, crate::mailbox::Receiver<T>);

/// A deployment checked and built, not started yet.
struct Plan<C: Component> {
    shared: Arc<Shared<C>>,
    bindings: Vec<crate::component::Binding<C>>,
    /// Each instance's mailbox and its receiving side.
    channels: Vec<Channel<C::Msg>>,
    reactors: Vec<u32>,
    worker: Option<crate::component::RunErased>,
    config_keys: Vec<String>,
    mailbox_capacity: usize,
    start_timeout: Duration,
}

struct Deployment {
    id: DeploymentId,
    component: &'static str,
    type_id: std::any::TypeId,
    /// Its supervision state, and its instances' mailboxes (`peers`, by index).
    supervisor: Arc<Supervisor>,
    /// Where its instances report their start and stop.
    reports: Arc<Reports>,
    /// Each instance's reactor, by index.
    reactors: Box<[u32]>,
    mailbox_capacity: usize,
    worker: bool,
    config_keys: Vec<String>,
    /// The deployment's label with the blocked-reactor checker (from the start of its launch).
    watch: Option<crate::watchdog::Registration>,
    /// It has bindings on the bus.
    bound: bool,
}

impl Deployment {
    /// Its instances' mailboxes, by index.
    fn instances(&self) -> &[Arc<dyn Signals>] {
        &self.supervisor.peers
    }
}

impl Drop for Deployment {
    /// Instances whose deployment goes without a stop request stop at once (a request made
    /// earlier stands); so do instances still starting, e.g. when a deploy is cancelled.
    fn drop(&mut self) {
        self.reports.started.abandon();
        let now = Instant::now();
        for instance in self.instances() {
            instance.stop(now);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cancel.cancel();
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
        &self.inner.workers
    }

    /// Number of reactor threads.
    pub fn reactors(&self) -> usize {
        self.inner.reactors.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner
            .deployments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Deploys a component: creates `instances` of it with `factory`, each on its reactor, runs
    /// their `start`, and then registers their topics on the bus, all at once.
    ///
    /// If any instance fails to start (error, panic or timeout), the ones already started are
    /// stopped again, nothing is registered, and the error says which instance failed and why.
    ///
    /// The deployment is planned (options checked, config parsed, mailboxes made) when this is
    /// called; its instances start when the returned future is awaited.
    ///
    /// # Errors
    /// [`DeployError`]: invalid options, config that does not fit, an invalid topic, a start
    /// failure, or a runtime that is shutting down.
    pub fn deploy<C, F>(
        &self,
        factory: F,
        options: DeployOptions,
    ) -> impl std::future::Future<Output = Result<DeploymentId, DeployError>>
    where
        C: Component,
        F: Fn() -> C + Send + Sync + 'static,
    {
        // Planned at once, so the future that starts the instances does not carry the options
        // and the factory besides the plan made of them.
        use crate::util::Either;
        match self.plan(factory, options) {
            Ok(plan) => Either::Left {
                future: self.launch(plan),
            },
            Err(error) => Either::Right {
                future: std::future::ready(Err(error)),
            },
        }
    }

    /// Checks a deployment's options and builds what its instances share, their mailboxes and
    /// their supervision state.
    fn plan<C, F>(&self, factory: F, options: DeployOptions) -> Result<Plan<C>, DeployError>
    where
        C: Component,
        F: Fn() -> C + Send + Sync + 'static,
    {
        let inner = &self.inner;
        if inner.shutting_down.load(Ordering::Acquire) {
            return Err(DeployError::ShuttingDown);
        }
        let instances = options.instances.unwrap_or(1);
        if instances == 0 {
            return Err(DeployError::InvalidOptions(
                "`instances` must be at least 1".into(),
            ));
        }
        if u32::try_from(instances - 1).is_err() {
            return Err(DeployError::InvalidOptions(format!(
                "`instances` must be at most {}",
                u64::from(u32::MAX) + 1
            )));
        }
        let capacity = options.mailbox_capacity.unwrap_or(inner.mailbox_capacity);
        if capacity == 0 {
            return Err(DeployError::InvalidOptions(
                "`mailbox_capacity` must be at least 1".into(),
            ));
        }
        if let Some(r) = options.reactor {
            if r >= inner.reactors.len() {
                return Err(DeployError::InvalidOptions(format!(
                    "reactor {r} does not exist; this runtime has reactors 0..{}",
                    inner.reactors.len()
                )));
            }
        }
        let worker = match (options.worker, C::worker_mode()) {
            (Some(false), _) => None,
            (Some(true), None) => {
                return Err(DeployError::InvalidOptions(format!(
                    "`{}` cannot run as a worker component: declare it with `#[component(worker)]` (it must be `Send`)",
                    C::name()
                )))
            }
            (_, mode) => mode.map(|m| m.run),
        };
        let config_keys = match &options.config {
            Some(Ok(serde_json::Value::Object(map))) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let config = Arc::new(parse_config::<C>(options.config)?);
        let Bindings {
            entries: bindings,
            errors,
            ..
        } = Bindings::<C>::collect(&config);
        if let Some(reason) = errors.into_iter().next() {
            return Err(DeployError::InvalidTopic {
                component: C::name(),
                reason,
            });
        }

        let id = DeploymentId(inner.deployment_ids.next());
        // The mailboxes come first: the supervisor signals them, the runtime stops them.
        let mut reactors = Vec::with_capacity(instances);
        let mut channels = Vec::with_capacity(instances);
        for _ in 0..instances {
            let reactor = options.reactor.unwrap_or_else(|| {
                inner.next_reactor.fetch_add(1, Ordering::Relaxed) % inner.reactors.len()
            });
            reactors.push(reactor as u32);
            channels.push(Mailbox::bounded_on(
                capacity,
                Some(inner.wakeups[reactor].clone()),
            ));
        }
        let peers = channels.iter().map(|(mb, _)| mb.signals()).collect();
        let supervisor = Arc::new(Supervisor::new(
            options.supervision.unwrap_or_else(C::supervision),
            peers,
        ));
        let shared = Arc::new(Shared {
            reports: Arc::new(Reports::new(C::name(), instances)),
            factory: Box::new(factory),
            config,
            deployment: id,
            bus: inner.bus.clone(),
            workers: inner.workers.clone(),
            supervisor,
            escalation: inner.escalation.clone(),
            quiet: options.quiet,
            runtime: Arc::downgrade(&self.inner),
            cancel: inner.cancel.clone(),
            reactors: inner.reactor_handles.clone(),
            stamps: inner.stamps.clone(),
        });
        Ok(Plan {
            shared,
            bindings,
            channels,
            reactors,
            worker,
            config_keys,
            mailbox_capacity: capacity,
            start_timeout: options.start_timeout.unwrap_or(Duration::from_secs(30)),
        })
    }

    /// Sends a planned deployment's instances to their reactors, waits for their start and
    /// registers their topics; stops them again if any fails to start.
    fn launch<C: Component>(
        &self,
        plan: Plan<C>,
    ) -> impl std::future::Future<Output = Result<DeploymentId, DeployError>> {
        // The future owns a handle to the runtime: it may outlive the caller's borrow.
        let this = self.clone();
        // Taken apart here, not in the async block, so its future holds each part once.
        let Plan {
            shared,
            bindings,
            channels,
            reactors,
            worker,
            config_keys,
            mailbox_capacity,
            start_timeout,
        } = plan;
        let id = shared.deployment;
        let instances = channels.len();
        let reports = shared.reports.clone();
        let mut deployment = Deployment {
            id,
            component: C::name(),
            type_id: std::any::TypeId::of::<C>(),
            supervisor: shared.supervisor.clone(),
            reports: reports.clone(),
            reactors: reactors.into_boxed_slice(),
            mailbox_capacity,
            worker: worker.is_some(),
            config_keys,
            watch: None,
            bound: false,
        };
        async move {
            let inner = &this.inner;
            if inner.shutting_down.load(Ordering::Acquire) {
                return Err(DeployError::ShuttingDown);
            }
            let watch = inner.watchdog.shared.register(Label {
                component: C::name(),
                deployment: id,
            });
            let watch = deployment.watch.insert(watch);
            let mut failure: Option<(usize, String)> = None;
            // Instances go to their reactors in batches: one job per reactor and batch.
            let mut per_reactor = vec![0usize; inner.reactors.len()];
            for &r in &deployment.reactors {
                per_reactor[r as usize] += 1;
            }
            let mut batches: Vec<Vec<InstanceTask<C>>> = per_reactor
                .iter()
                .map(|&n| Vec::with_capacity(n.min(SPAWN_BATCH)))
                .collect();
            for (index, (mailbox, rx)) in channels.into_iter().enumerate() {
                let reactor = deployment.reactors[index];
                let key = watch.key(index);
                let task = InstanceTask::new(
                    (reactor, key),
                    (mailbox, rx),
                    Duty::new(shared.clone(), index as u32),
                );
                let batch = &mut batches[reactor as usize];
                batch.push(task);
                if batch.len() == SPAWN_BATCH {
                    let tasks = std::mem::replace(batch, Vec::with_capacity(SPAWN_BATCH));
                    if !spawn_on(&inner.reactors[reactor as usize], tasks, worker).await {
                        failure.get_or_insert((index, "its reactor has stopped".into()));
                    }
                }
            }
            for (reactor, tasks) in batches.into_iter().enumerate() {
                if !tasks.is_empty() && !spawn_on(&inner.reactors[reactor], tasks, worker).await {
                    failure.get_or_insert((instances - 1, "its reactor has stopped".into()));
                }
            }
            if failure.is_none() {
                let deadline = Instant::now() + start_timeout;
                if let Err(failed) = reports.started.wait(deadline).await {
                    failure = Some(failed.unwrap_or_else(|| {
                        let index = deployment
                            .instances()
                            .iter()
                            .position(|h| {
                                InstanceState::load(&h.stats().state) == InstanceState::Starting
                            })
                            .unwrap_or(0);
                        (
                            index,
                            format!("start did not finish within {start_timeout:?}"),
                        )
                    }));
                }
            }
            if failure.is_none() && inner.shutting_down.load(Ordering::Acquire) {
                failure = Some((
                    0,
                    "the runtime began shutting down during the deploy".into(),
                ));
            }
            if let Some((instance, reason)) = failure {
                let deadline = Instant::now() + inner.shutdown_timeout;
                // Rare: boxed, so the deploy future keeps no room for it.
                let rollback = Box::pin(reports.stop_all(deployment.instances(), deadline)).await;
                return Err(DeployError::StartFailed {
                    component: C::name(),
                    instance,
                    reason,
                    rollback,
                });
            }

            // Each binding's consumer for each instance, on the mailboxes the supervisor holds.
            let mut entries = Vec::new();
            if !bindings.is_empty() {
                for (instance, signals) in deployment.instances().iter().enumerate() {
                    if let Some(mailbox) = crate::mailbox::mailbox_of::<C::Msg>(signals) {
                        let owner = Owner {
                            deployment: id,
                            instance,
                        };
                        entries.extend(bindings.iter().map(|b| b.entry(owner, &mailbox)));
                    }
                }
            }
            {
                let mut table = this.lock();
                deployment.bound = !entries.is_empty();
                inner.bus.register(entries);
                table.push(deployment);
            }
            for instance in 0..instances {
                publish_event(&shared, LifecycleKind::Started, instance, None);
            }
            tracing::debug!(component = C::name(), deployment = %id, instances, "deployed");
            Ok(id)
        }
    }

    /// Stops every instance of a deployment: removes its topics from the bus, lets each instance
    /// drain its mailbox until the runtime's shutdown timeout, then runs its `stop`.
    ///
    /// # Errors
    /// [`UndeployError::Unknown`] for an id that is not live; [`UndeployError::Stop`] when the
    /// deployment was removed but draining or `stop` went wrong.
    pub async fn undeploy(&self, id: DeploymentId) -> Result<(), UndeployError> {
        self.undeploy_until(id, Instant::now() + self.inner.shutdown_timeout)
            .await
    }

    /// [`undeploy`](Self::undeploy) with an explicit deadline for draining and `stop`.
    ///
    /// # Errors
    /// As [`undeploy`](Self::undeploy).
    pub async fn undeploy_until(
        &self,
        id: DeploymentId,
        deadline: Instant,
    ) -> Result<(), UndeployError> {
        let deployment = {
            let mut table = self.lock();
            table.remove(id).ok_or(UndeployError::Unknown(id))?
        };
        let errors = self.stop_deployment(deployment, deadline).await;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(UndeployError::Stop { id, errors })
        }
    }

    async fn stop_deployment(&self, deployment: Deployment, deadline: Instant) -> Vec<StopError> {
        if deployment.bound {
            self.inner.bus.unregister(deployment.id);
        }
        let errors = deployment
            .reports
            .stop_all(deployment.instances(), deadline)
            .await;
        tracing::debug!(component = deployment.component, deployment = %deployment.id, errors = errors.len(), "undeployed");
        errors
    }

    /// Per reactor: messages handled and blocked episodes seen by the blocked-reactor checker.
    pub fn reactor_stats(&self) -> Vec<ReactorInfo> {
        let mut pinned = vec![0usize; self.inner.reactors.len()];
        for d in self.lock().iter() {
            for &reactor in &d.reactors {
                if let Some(n) = pinned.get_mut(reactor as usize) {
                    *n += 1;
                }
            }
        }
        self.inner
            .watchdog
            .probes
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

    /// Reads the state of a live instance between two of its messages.
    #[cfg(feature = "test-util")]
    pub(crate) async fn with_state<C, R, F>(
        &self,
        id: DeploymentId,
        instance: usize,
        read: F,
    ) -> Result<R, String>
    where
        C: Component,
        R: Send + 'static,
        F: FnOnce(&C) -> R + Send + 'static,
    {
        let sender = {
            let table = self.lock();
            let d = table
                .get(id)
                .ok_or_else(|| format!("no live deployment has id {id}"))?;
            let h = d.instances().get(instance).ok_or_else(|| {
                format!(
                    "deployment {id} has {} instance(s); there is no instance {instance}",
                    d.instances().len()
                )
            })?;
            if d.type_id != std::any::TypeId::of::<C>() {
                return Err(format!(
                    "deployment {id} runs `{}`, not `{}`",
                    d.component,
                    C::name()
                ));
            }
            h.clone()
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let read = Box::new(move |c: &dyn std::any::Any| {
            if let Some(c) = c.downcast_ref::<C>() {
                let _ = tx.send(read(c));
            }
        });
        sender
            .control(crate::mailbox::Control::Inspect(read))
            .map_err(|_| {
                format!("instance {instance} of deployment {id} has stopped or has too many signals waiting")
            })?;
        rx.await
            .map_err(|_| format!("instance {instance} of deployment {id} stopped (or is restarting) before it could be read"))
    }

    /// `None` when every mailbox is empty, no handler runs and the worker pool is idle;
    /// otherwise what is still busy.
    #[cfg(feature = "test-util")]
    pub(crate) fn busy_report(&self) -> Option<String> {
        let mut busy = Vec::new();
        for d in self.lock().iter() {
            for (index, h) in d.instances().iter().enumerate() {
                let queued = h.queued();
                if queued > 0 || h.stats().busy.load(Ordering::Relaxed) {
                    busy.push(format!(
                        "`{}` instance {} ({} queued, handling: {})",
                        d.component,
                        index,
                        queued,
                        h.stats().busy.load(Ordering::Relaxed)
                    ));
                }
            }
        }
        let w = self.inner.workers.stats();
        if w.busy > 0 || w.queued > 0 {
            busy.push(format!(
                "worker pool ({} running, {} queued)",
                w.busy, w.queued
            ));
        }
        (!busy.is_empty()).then(|| busy.join(", "))
    }

    /// Runs `job(reactor index)` on every reactor (on its thread, inside its runtime) and waits for all of
    /// them.
    #[cfg(feature = "test-util")]
    pub(crate) async fn on_every_reactor<F, Fut>(&self, job: F) -> bool
    where
        F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let mut waits = Vec::new();
        for r in &self.inner.reactors {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let job = job.clone();
            let index = r.index;
            if !r
                .run(Box::new(move || {
                    tokio::task::spawn_local(async move {
                        job(index).await;
                        let _ = tx.send(());
                    });
                }))
                .await
            {
                return false;
            }
            waits.push(rx);
        }
        for w in waits {
            if w.await.is_err() {
                return false;
            }
        }
        true
    }

    /// How many handler panics and failed restarts happened, and the first few of them.
    #[cfg(feature = "test-util")]
    pub(crate) fn crash_report(&self) -> (u64, Vec<String>) {
        let e = &self.inner.escalation;
        (
            e.crashes.load(Ordering::Relaxed),
            e.first_crashes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
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
        if d.type_id != std::any::TypeId::of::<C>() {
            return None;
        }
        let signals = d.instances().get(instance)?;
        Some(crate::component::ActorRef {
            mailbox: crate::mailbox::mailbox_of::<C::Msg>(signals)?,
            bus: self.inner.bus.clone(),
        })
    }

    /// The live deployments, in deploy order, with per-instance counters.
    pub fn deployments(&self) -> Vec<DeploymentInfo> {
        self.lock()
            .iter()
            .map(|d| DeploymentInfo {
                id: d.id,
                component: d.component,
                state: if d.supervisor.failed.load(Ordering::Acquire) {
                    DeploymentState::Failed
                } else {
                    DeploymentState::Running
                },
                restarts: d.supervisor.restarts.load(Ordering::Relaxed),
                worker: d.worker,
                config_keys: d.config_keys.clone(),
                instances: d
                    .instances()
                    .iter()
                    .zip(d.reactors.iter())
                    .enumerate()
                    .map(|(index, (h, &reactor))| InstanceInfo {
                        index,
                        reactor: reactor as usize,
                        state: InstanceState::load(&h.stats().state),
                        restarts: h.stats().restarts.load(Ordering::Relaxed),
                        mailbox_len: h.queued(),
                        mailbox_capacity: d.mailbox_capacity,
                        handled: h.stats().handled.load(Ordering::Relaxed),
                        failed: h.stats().failed.load(Ordering::Relaxed),
                        panicked: h.stats().panicked.load(Ordering::Relaxed),
                        rejected: h.stats().rejected.load(Ordering::Relaxed),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Shuts the runtime down: refuses new deployments, undeploys every deployment in reverse
    /// deploy order (each drains its mailbox and runs `stop`, all by `deadline` from now),
    /// closes the bus and stops the reactor threads. Calling it again does nothing.
    ///
    /// # Errors
    /// A [`ShutdownError`] listing every problem met; shutdown always runs to the end.
    pub async fn shutdown(&self, deadline: Duration) -> Result<(), ShutdownError> {
        self.shutdown_then(deadline, || {}).await
    }

    /// [`shutdown`](Self::shutdown), running `before_reactors_stop` once every deployment has
    /// stopped and the worker pool has drained, just before the reactor threads are stopped.
    pub(crate) async fn shutdown_then(
        &self,
        deadline: Duration,
        before_reactors_stop: impl FnOnce(),
    ) -> Result<(), ShutdownError> {
        if self.inner.shutting_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let deadline = Instant::now() + deadline;
        let mut errors = Vec::new();
        loop {
            let next = self.lock().pop();
            let Some(deployment) = next else { break };
            let id = deployment.id;
            errors.extend(
                self.stop_deployment(deployment, deadline)
                    .await
                    .into_iter()
                    .map(|error| ShutdownIssue::Stop {
                        deployment: id,
                        error,
                    }),
            );
        }
        self.inner.bus.close();
        self.inner.cancel.cancel();
        let busy = self.inner.workers.shutdown(deadline).await;
        if busy > 0 {
            errors.push(ShutdownIssue::WorkersBusy(busy));
        }
        before_reactors_stop();
        for r in &self.inner.reactors {
            r.signal_stop();
        }
        for r in &self.inner.reactors {
            match r
                .join_until(deadline.max(Instant::now() + Duration::from_millis(100)))
                .await
            {
                Ok(true) => {}
                Ok(false) => errors.push(ShutdownIssue::ReactorPanicked(r.index)),
                Err(()) => errors.push(ShutdownIssue::ReactorStuck(r.index)),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ShutdownError { errors })
        }
    }

    /// Resolves when a deployment has failed under [`Escalation::Shutdown`], with the reason.
    /// [`run`](Self::run) waits for it too; programs with their own main loop can select on
    /// it and call [`shutdown`](Self::shutdown).
    pub async fn escalated(&self) -> String {
        self.inner.escalation.raised.cancelled().await;
        self.inner
            .escalation
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default()
    }

    /// Runs until SIGINT (Ctrl-C) or SIGTERM, or a failed deployment under
    /// [`Escalation::Shutdown`], then shuts down with the builder's
    /// [`shutdown_timeout`](Builder::shutdown_timeout). A second signal during shutdown exits
    /// the process at once with status 130.
    ///
    /// # Errors
    /// As [`shutdown`](Self::shutdown).
    ///
    /// # Panics
    /// Must be awaited inside a tokio runtime with I/O and time enabled (e.g. `#[tokio::main]`).
    pub async fn run(&self) -> Result<(), ShutdownError> {
        tokio::select! {
            () = wait_for_signal() => {
                tracing::info!("signal received, shutting down (send it again to exit at once)");
            }
            reason = self.escalated() => {
                tracing::error!(%reason, "a deployment failed and the escalation policy is `Shutdown`: shutting down");
            }
        }
        let force = tokio::spawn(async {
            wait_for_signal().await;
            eprintln!("second signal: exiting without waiting for shutdown");
            std::process::exit(130);
        });
        let result = self.shutdown(self.inner.shutdown_timeout).await;
        force.abort();
        result
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; waiting for Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn parse_config<C: Component>(
    config: Option<Result<serde_json::Value, String>>,
) -> Result<C::Config, DeployError> {
    let to_err = |source| DeployError::Config {
        component: C::name(),
        source,
    };
    match config {
        Some(Ok(value)) => serde_json::from_value(value).map_err(to_err),
        Some(Err(reason)) => Err(DeployError::InvalidOptions(format!(
            "the config could not be serialized: {reason}"
        ))),
        None => serde_json::from_value(serde_json::Value::Null)
            .or_else(|_| serde_json::from_value(serde_json::json!({})))
            .map_err(to_err),
    }
}
