//! The deploy pipeline: plan (check options, parse config, make mailboxes), launch (create
//! and start every instance on its reactor), then register the deployment's topics.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::actor_loop::InstanceTask;
use super::handle::Fluxor;
use super::options::DeployOptions;
use super::reports::{ReportGuard, Reports};
use super::shared::{publish_event, Shared};
use super::table::{Deployment, Plan};
use crate::bus::Owner;
use crate::component::{Bindings, Component};
use crate::error::DeployError;
use crate::ids::DeploymentId;
use crate::mailbox::Mailbox;
use crate::supervision::{InstanceState, LifecycleKind, Supervisor};
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
/// a trip the returned future makes (`false` if the reactor has stopped). Boxed, so a deploy
/// that starts its instances where it runs carries no room for it.
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
        let supervisor = Supervisor::new(options.supervision.unwrap_or_else(C::supervision), peers);
        let watch = inner.watchdog.shared.register();
        let shared = Arc::new(Shared {
            reports: Reports::new(C::name(), instances),
            factory: Box::new(factory),
            config: std::sync::Mutex::new(config),
            config_generation: std::sync::atomic::AtomicU32::new(0),
            deployment: id,
            watch_key: watch.key(0),
            bus: inner.bus.clone(),
            supervisor,
            quiet: options.quiet,
            stamps: inner.stamps.clone(),
            services: inner.services.clone(),
        });
        Ok(Plan {
            shared,
            watch,
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
            watch,
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
        let mut deployment = Deployment {
            id,
            order: 0,
            component: C::name(),
            type_id: std::any::TypeId::of::<C>(),
            reactors,
            mailbox_capacity,
            worker: worker.is_some(),
            config_keys,
            watch: None,
            bound: false,
            shared: shared.clone(),
        };
        async move {
            let inner = &this.inner;
            if inner.shutting_down.load(Ordering::Acquire) {
                return Err(DeployError::ShuttingDown);
            }
            let watch = deployment.watch.insert(watch);
            let mut failure: Option<(usize, String)> = None;
            let reactors = &deployment.reactors;
            let first = reactors[0] as usize;
            let one_reactor = reactors.iter().all(|&r| r as usize == first);
            // Every instance starts on the reactor this deploy runs on.
            let here = one_reactor && inner.wakeups[first].is_current();
            let at_once = C::START_AT_ONCE && worker.is_none() && here;
            if !at_once {
                // Its handlers may run before it is in the table: the blocked-reactor checker
                // still names them.
                watch.remember(crate::watchdog::Label {
                    component: C::name(),
                    deployment: id,
                });
            }
            let tasks = channels.into_iter().enumerate().map(|(index, channel)| {
                let reactor = reactors[index];
                let task = InstanceTask::new(
                    reactor,
                    channel,
                    ReportGuard::new(shared.clone(), index as u32),
                );
                (reactor as usize, task)
            });
            let stopped = || "its reactor has stopped".to_string();
            if instances <= SPAWN_BATCH && one_reactor {
                // The common case (one instance, or a deployment pinned to a reactor): one
                // batch, no sorting.
                let batch: Few<InstanceTask<C>> = tasks.map(|(_, task)| task).collect();
                if !arrived(spawn_on(inner, first, batch, worker)).await {
                    failure = Some((instances - 1, stopped()));
                }
            } else {
                // Instances go to their reactors in batches: one job per reactor and batch.
                let mut per_reactor = vec![0usize; inner.reactors.len()];
                for &r in reactors {
                    per_reactor[r as usize] += 1;
                }
                let mut batches: Vec<Vec<InstanceTask<C>>> = per_reactor
                    .iter()
                    .map(|&n| Vec::with_capacity(n.min(SPAWN_BATCH)))
                    .collect();
                for (index, (reactor, task)) in tasks.enumerate() {
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
                    if !batch.is_empty()
                        && !arrived(spawn_on(inner, reactor, batch.into(), worker)).await
                    {
                        failure.get_or_insert((instances - 1, stopped()));
                    }
                }
            }
            if failure.is_none() {
                let deadline = Instant::now() + start_timeout;
                if let Err(failed) = shared.reports.started.wait(deadline, here).await {
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
                let rollback = Box::pin(shared.reports.stop_all(
                    deployment.instances(),
                    deadline,
                    here,
                ))
                .await;
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
    fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    fn reports(&self) -> &Reports {
        &self.reports
    }

    /// Swaps the deployment's config for a new value, once it parsed.
    fn reconfigure(&self, value: serde_json::Value) -> Result<(), DeployError> {
        let config = parse_config::<C>(Some(Ok(value)))?;
        self.set_config(config);
        Ok(())
    }
}
