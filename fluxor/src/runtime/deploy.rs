//! The deploy pipeline: plan (check options, parse config, make mailboxes), launch (create
//! and start every instance on its reactor), then register the deployment's topics.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use super::actor_loop::InstanceTask;
use super::handle::Fluxor;
use super::options::DeployOptions;
use super::reports::{ReportGuard, Reports, Stopping};
use super::shared::{publish_event, Shared};
use super::table::{Channel, Deployment, Listing, Plan};
use crate::bus::Owner;
use crate::component::{Bindings, Component};
use crate::error::DeployError;
use crate::ids::DeploymentId;
use crate::mailbox::Mailbox;
use crate::supervision::{InstanceState, LifecycleKind, Policy, Supervisor};
use crate::util::Few;

/// Creates each instance of a batch (so its component is made on its reactor) and spawns
/// its life there; runs on the instances' reactor.
fn start_here<C: Component>(
    tasks: Few<InstanceTask<C>>,
    worker: Option<crate::component::RunErased>,
) {
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
}

/// Starts a batch of instances on reactor `index`: at once when the caller runs on that
/// reactor (a handler deploying next to itself, `None`), or through the reactor's job queue,
/// a trip the returned future makes (`false` if the reactor has stopped; boxed, and only for
/// a deploy that has to wait anyway).
fn spawn_on<'a, C: Component>(
    inner: &'a super::handle::Inner,
    index: usize,
    tasks: Few<InstanceTask<C>>,
    worker: Option<crate::component::RunErased>,
) -> Trip<'a> {
    if inner.wakeups[index].is_current() {
        start_here(tasks, worker);
        return None;
    }
    let job = move || start_here(tasks, worker);
    Some(Box::pin(inner.reactors[index].run(Box::new(job))))
}

/// A trip through a reactor's job queue, if [`spawn_on`] needed one.
type Trip<'a> = Option<std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>>>;

/// Whether the instances [`spawn_on`] sent reached their reactor (at once when no trip was
/// needed); `false` if the reactor has stopped.
async fn arrived(trip: Trip<'_>) -> bool {
    match trip {
        Some(trip) => trip.await,
        None => true,
    }
}

/// Instances sent to a reactor in one job when a deployment starts: large deployments start
/// without a job per instance, and no reactor is held up for long by one job.
pub(super) const SPAWN_BATCH: usize = 256;

impl Fluxor {
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
                future: Deploying {
                    stage: Stage::Planned(self.clone(), plan),
                },
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
            Some(Ok(value)) => config_keys(value),
            _ => Vec::new(),
        };
        let config = parse_config::<C>(options.config)?;
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

        // Numbered in sequence: the table keeps deployments made together close together.
        let id = DeploymentId(inner.deployment_ids.next_in_sequence());
        // The mailboxes come first: the supervisor signals them, the runtime stops them.
        let reactors: Few<u32> = (0..instances)
            .map(|_| {
                let reactor = options.reactor.unwrap_or_else(|| {
                    inner.next_reactor.fetch_add(1, Ordering::Relaxed) % inner.reactors.len()
                });
                reactor as u32
            })
            .collect();
        let channels: Few<_> = reactors
            .iter()
            .map(|&r| Mailbox::bounded_on(capacity, Some(inner.wakeups[r as usize].clone())))
            .collect();
        let peers = channels.iter().map(|(mb, _)| mb.signals()).collect();
        let policy = match options.supervision {
            Some(given) => Policy::Given(Box::new(given)),
            None => Policy::Declared(C::supervision),
        };
        let supervisor = Supervisor::new(policy, peers);
        let watch = inner.watchdog.shared.register();
        let shared = Arc::new(Shared {
            reports: Reports::new(C::name(), instances),
            factory: Box::new(factory),
            initial: config,
            swapped: std::sync::Mutex::new(None),
            config_generation: std::sync::atomic::AtomicU32::new(0),
            deployment: id,
            listing: Listing::new(worker.is_some(), config_keys, watch),
            bus: inner.bus.clone(),
            supervisor,
            quiet: options.quiet,
            stamps: inner.stamps.clone(),
            services: inner.services.clone(),
        });
        Ok(Plan {
            shared,
            bindings,
            channels,
            reactors,
            worker,
            start_timeout: options.start_timeout.unwrap_or(Duration::from_secs(30)),
        })
    }

    /// Launches a planned deployment (at the deploy future's first poll): makes its table
    /// entry and sends its instances to their reactors. Done at once when every instance
    /// started here; otherwise the rest (start reports to wait for, or a rollback) is boxed.
    fn launch<C: Component>(&self, plan: Plan<C>) -> Launch {
        let inner = &self.inner;
        if inner.shutting_down.load(Ordering::Acquire) {
            return Launch::Done(Err(DeployError::ShuttingDown));
        }
        let Plan {
            shared,
            bindings,
            channels,
            reactors,
            worker,
            start_timeout,
        } = plan;
        let id = shared.deployment;
        let instances = channels.len();
        let first = reactors[0] as usize;
        let one_reactor = reactors.iter().all(|&r| r as usize == first);
        // Every instance starts on the reactor this deploy runs on.
        let here = one_reactor && inner.wakeups[first].is_current();
        let at_once = C::START_AT_ONCE && worker.is_none() && here && instances <= SPAWN_BATCH;
        if !at_once {
            // Its handlers may run before it is in the table: the blocked-reactor checker
            // still names them.
            shared.listing.watch.remember(crate::watchdog::Label {
                component: C::name(),
                deployment: id,
            });
        }
        let launching = Launching {
            runtime: self.clone(),
            reactors,
            deployment: Deployment::new(shared.clone()),
            shared,
            bindings,
            here,
            start_timeout,
        };
        if !at_once {
            return Launch::Waiting(Box::pin(async move {
                let failure = launching.spawn(channels, worker).await;
                launching.conclude(failure).await
            }));
        }
        // Each instance is made and started right here, its start reported.
        start_here(
            launching.tasks(channels).map(|(_, task)| task).collect(),
            None,
        );
        let all_started = launching.shared.reports.started.count.is_zero();
        let failed = launching.shared.reports.started.has_failed();
        if all_started && !failed && !inner.shutting_down.load(Ordering::Acquire) {
            Launch::Done(Ok(launching.register()))
        } else {
            Launch::Waiting(Box::pin(launching.conclude(None)))
        }
    }
}

/// What a deploy future's first poll leaves: the outcome, or what still has to be waited for.
enum Launch {
    Done(Result<DeploymentId, DeployError>),
    Waiting(Pin<Box<dyn Future<Output = Result<DeploymentId, DeployError>> + Send>>),
}

/// A deploy's future: the planned deployment until its first poll, which launches it. A
/// deployment whose instances all start at once on the caller's reactor is done within that
/// poll, without a future of its own; the rest continue in a boxed one. A handler awaiting a
/// deploy thus carries the plan, not room for every stage of the wait.
pub(super) struct Deploying<C: Component> {
    stage: Stage<C>,
}

enum Stage<C: Component> {
    Planned(Fluxor, Plan<C>),
    Waiting(Pin<Box<dyn Future<Output = Result<DeploymentId, DeployError>> + Send>>),
    Done,
}

// No field is ever pinned: the plan is moved out to be launched, and the wait is boxed.
impl<C: Component> Unpin for Deploying<C> {}

impl<C: Component> Future for Deploying<C> {
    type Output = Result<DeploymentId, DeployError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Stage::Planned(..) = this.stage {
            let Stage::Planned(runtime, plan) = std::mem::replace(&mut this.stage, Stage::Done)
            else {
                unreachable!("the stage was just matched")
            };
            match runtime.launch(plan) {
                Launch::Done(result) => return Poll::Ready(result),
                Launch::Waiting(rest) => this.stage = Stage::Waiting(rest),
            }
        }
        let Stage::Waiting(rest) = &mut this.stage else {
            panic!("a deploy polled after it completed")
        };
        let result = ready!(rest.as_mut().poll(cx));
        this.stage = Stage::Done;
        Poll::Ready(result)
    }
}

/// A deployment being launched: its table entry (not in the table yet), and what its launch
/// needs until it is registered or rolled back.
struct Launching<C: Component> {
    /// A handle to the runtime: the launch may outlive the caller's borrow.
    runtime: Fluxor,
    /// Each instance's reactor, by index.
    reactors: Few<u32>,
    deployment: Deployment,
    shared: Arc<Shared<C>>,
    bindings: Vec<crate::component::Binding<C>>,
    /// Every instance runs on the reactor the deploy runs on.
    here: bool,
    start_timeout: Duration,
}

impl<C: Component> Launching<C> {
    /// Each instance's reactor and the task that makes and runs it there.
    fn tasks(
        &self,
        channels: Few<Channel<C::Msg>>,
    ) -> impl Iterator<Item = (usize, InstanceTask<C>)> + '_ {
        let reactors = &self.reactors;
        channels.into_iter().enumerate().map(|(index, channel)| {
            let reactor = reactors[index];
            let task = InstanceTask::new(
                reactor,
                channel,
                ReportGuard::new(self.shared.clone(), index as u32),
            );
            (reactor as usize, task)
        })
    }

    /// Sends the instances to their reactors in batches; the first instance that could not
    /// be sent (its reactor has stopped), if any.
    async fn spawn(
        &self,
        channels: Few<Channel<C::Msg>>,
        worker: Option<crate::component::RunErased>,
    ) -> Option<(usize, String)> {
        let inner = &self.runtime.inner;
        let instances = channels.len();
        let reactors = &self.reactors;
        let first = reactors[0] as usize;
        let stopped = || "its reactor has stopped".to_string();
        let mut failure = None;
        if instances <= SPAWN_BATCH && reactors.iter().all(|&r| r as usize == first) {
            // The common case (one instance, or a deployment pinned to a reactor): one batch,
            // no sorting.
            let batch: Few<InstanceTask<C>> = self.tasks(channels).map(|(_, task)| task).collect();
            if !arrived(spawn_on(inner, first, batch, worker)).await {
                failure = Some((instances - 1, stopped()));
            }
            return failure;
        }
        // Instances go to their reactors in batches: one job per reactor and batch.
        let mut per_reactor = vec![0usize; inner.reactors.len()];
        for &r in reactors {
            per_reactor[r as usize] += 1;
        }
        let mut batches: Vec<Vec<InstanceTask<C>>> = per_reactor
            .iter()
            .map(|&n| Vec::with_capacity(n.min(SPAWN_BATCH)))
            .collect();
        for (index, (reactor, task)) in self.tasks(channels).enumerate() {
            let batch = &mut batches[reactor];
            batch.push(task);
            if batch.len() == SPAWN_BATCH {
                let full = std::mem::replace(batch, Vec::with_capacity(SPAWN_BATCH));
                if !arrived(spawn_on(inner, reactor, full.into(), worker)).await {
                    failure.get_or_insert((index, stopped()));
                }
            }
        }
        for (reactor, batch) in batches.into_iter().enumerate() {
            if !batch.is_empty() && !arrived(spawn_on(inner, reactor, batch.into(), worker)).await {
                failure.get_or_insert((instances - 1, stopped()));
            }
        }
        failure
    }

    /// Waits for the instances' start reports (unless `failure` already says one did not
    /// make it), then registers the deployment, or stops the started instances again.
    async fn conclude(
        self,
        mut failure: Option<(usize, String)>,
    ) -> Result<DeploymentId, DeployError> {
        let inner = &self.runtime.inner;
        let start_timeout = self.start_timeout;
        if failure.is_none() {
            let deadline = Instant::now() + start_timeout;
            if let Err(failed) = self.shared.reports.started.wait(deadline, self.here).await {
                failure = Some(failed.unwrap_or_else(|| {
                    let index = self
                        .deployment
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
        let Some((instance, reason)) = failure else {
            return Ok(self.register());
        };
        self.shared.reports.started.abandon();
        let rollback = self
            .shared
            .reports
            .stop_all(
                self.deployment.instances(),
                Stopping::within(inner.shutdown_timeout),
                self.here,
            )
            .await;
        Err(DeployError::StartFailed {
            component: C::name(),
            instance,
            reason,
            rollback,
        })
    }

    /// Registers the started deployment: its consumers on the bus, its entry in the table.
    fn register(self) -> DeploymentId {
        let id = self.deployment.id();
        let instances = self.deployment.instances().len();
        // Each binding's consumer for each instance, on the mailboxes the supervisor holds.
        let mut entries = Vec::new();
        if !self.bindings.is_empty() {
            for (instance, signals) in self.deployment.instances().iter().enumerate() {
                if let Some(mailbox) = crate::mailbox::mailbox_of::<C::Msg>(signals) {
                    let owner = Owner {
                        deployment: id,
                        instance,
                    };
                    entries.extend(self.bindings.iter().map(|b| b.entry(owner, &mailbox)));
                }
            }
        }
        {
            let mut table = self.runtime.lock();
            self.deployment.listing().set_bound(!entries.is_empty());
            self.runtime.inner.bus.register(entries);
            table.push(self.deployment);
        }
        for instance in 0..instances {
            publish_event(&self.shared, LifecycleKind::Started, instance, None);
        }
        tracing::debug!(component = C::name(), deployment = %id, instances, "deployed");
        id
    }
}

/// The top-level keys of a config, as the runtime lists them.
fn config_keys(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::Object(map) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

pub(super) fn parse_config<C: Component>(
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

impl<C: Component> super::table::Live for Shared<C> {
    fn id(&self) -> DeploymentId {
        self.deployment
    }

    fn listing(&self) -> &Listing {
        &self.listing
    }

    fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    fn reports(&self) -> &Reports {
        &self.reports
    }

    /// Swaps the deployment's config for a new value, once it parsed.
    fn reconfigure(&self, value: serde_json::Value) -> Result<(), DeployError> {
        let keys = config_keys(&value);
        let config = parse_config::<C>(Some(Ok(value)))?;
        self.set_config(config, keys);
        Ok(())
    }

    fn component_type(&self) -> std::any::TypeId {
        std::any::TypeId::of::<C>()
    }
}
