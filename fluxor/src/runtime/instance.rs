//! One component instance: its task on a reactor and the handle the runtime keeps.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::bus::EventBus;
use crate::component::{catch_unwind, panic_message, ActorRef, Component, Context, Outcome};
use crate::error::StopError;
use crate::mailbox::{InstanceStats, Mailbox};
use crate::timer::Timers;
use crate::watchdog::Stamp;
use crate::worker::{Lane, WorkerPool};

use super::DeploymentId;

/// Messages handled back to back before the instance yields to its reactor's other tasks.
const BATCH: usize = 64;

/// Extra time a stopper waits, past the deadline, for an instance to report on itself.
const REPORT_GRACE: Duration = Duration::from_millis(100);

/// What every instance of a deployment shares.
pub(crate) struct Shared<C: Component> {
    pub(crate) factory: Box<dyn Fn() -> C + Send + Sync>,
    pub(crate) config: Arc<C::Config>,
    pub(crate) deployment: DeploymentId,
    pub(crate) bus: EventBus,
    pub(crate) workers: WorkerPool,
}

/// The runtime's side of one instance.
pub(crate) struct InstanceHandle {
    pub(crate) index: usize,
    pub(crate) key: u64,
    pub(crate) reactor: usize,
    pub(crate) component: &'static str,
    stop: Option<oneshot::Sender<Instant>>,
    done: oneshot::Receiver<Vec<StopError>>,
    cancel: CancellationToken,
    queued: Box<dyn Fn() -> usize + Send + Sync>,
    pub(crate) stats: Arc<InstanceStats>,
}

/// The channels an instance task is started with.
pub(crate) struct Launch<C: Component> {
    pub(crate) task: InstanceTask<C>,
    pub(crate) handle: InstanceHandle,
    pub(crate) started: oneshot::Receiver<Result<(), String>>,
    pub(crate) mailbox: Mailbox<C::Msg>,
}

pub(crate) struct InstanceTask<C: Component> {
    shared: Arc<Shared<C>>,
    index: usize,
    reactor: usize,
    stamp: Stamp,
    key: u64,
    mailbox: Mailbox<C::Msg>,
    rx: mpsc::Receiver<C::Msg>,
    cancel: CancellationToken,
    started: oneshot::Sender<Result<(), String>>,
    stop: oneshot::Receiver<Instant>,
    done: oneshot::Sender<Vec<StopError>>,
}

impl<C: Component> Launch<C> {
    pub(crate) fn new(
        shared: Arc<Shared<C>>,
        index: usize,
        (reactor, stamp, key): (usize, Stamp, u64),
        capacity: usize,
        parent: &CancellationToken,
    ) -> Self {
        let (mailbox, rx) = Mailbox::bounded(capacity);
        let (started_tx, started) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        let cancel = parent.child_token();
        let probe = mailbox.clone();
        let handle = InstanceHandle {
            index,
            key,
            reactor,
            component: C::name(),
            stop: Some(stop_tx),
            done,
            cancel: cancel.clone(),
            queued: Box::new(move || probe.len()),
            stats: mailbox.stats.clone(),
        };
        let task = InstanceTask {
            shared,
            index,
            reactor,
            stamp,
            key,
            mailbox: mailbox.clone(),
            rx,
            cancel,
            started: started_tx,
            stop: stop_rx,
            done: done_tx,
        };
        Launch {
            task,
            handle,
            started,
            mailbox,
        }
    }
}

impl InstanceHandle {
    /// Asks the instance to drain and stop by `deadline`; returns at once.
    pub(crate) fn request_stop(&mut self, deadline: Instant) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(deadline);
        }
    }

    /// Asks the instance to stop (if not yet asked) and collects what went wrong.
    pub(crate) async fn stop(mut self, deadline: Instant) -> Vec<StopError> {
        self.request_stop(deadline);
        match tokio::time::timeout_at(deadline + REPORT_GRACE, &mut self.done).await {
            Ok(Ok(errors)) => errors,
            Ok(Err(_gone)) => vec![StopError::ReactorLost {
                component: self.component,
                instance: self.index,
            }],
            Err(_elapsed) => {
                // A handler still holds the instance past the deadline: cancel its work.
                self.cancel.cancel();
                vec![StopError::DeadlineExceeded {
                    component: self.component,
                    instance: self.index,
                    undelivered: (self.queued)(),
                }]
            }
        }
    }
}

impl<C: Component> InstanceTask<C> {
    /// The instance's whole life, run on its reactor.
    pub(crate) async fn run(self) {
        let InstanceTask {
            shared,
            index,
            reactor,
            stamp,
            key,
            mailbox,
            mut rx,
            cancel,
            started,
            mut stop,
            done,
        } = self;
        let name = C::name();
        let mut component = match std::panic::catch_unwind(AssertUnwindSafe(|| (shared.factory)()))
        {
            Ok(c) => c,
            Err(panic) => {
                let _ = started.send(Err(format!("the factory {}", panic_message(&*panic))));
                let _ = done.send(Vec::new());
                return;
            }
        };
        let mut ctx = Context {
            bus: shared.bus.clone(),
            deployment: shared.deployment,
            instance: index,
            reactor,
            config: shared.config.clone(),
            cancel,
            myself: ActorRef {
                mailbox,
                bus: shared.bus.clone(),
            },
            current: None,
            workers: shared.workers.clone(),
            lane: Lane::default(),
            timers: Timers::default(),
            stamp,
            key,
        };
        let start = match catch_unwind(component.start(&mut ctx)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(panic) => Err(format!("start {}", panic_message(&*panic))),
        };
        let failed = start.is_err();
        if started.send(start).is_err() || failed {
            // The deployment gave up on this instance (timed out) or it failed to start.
            if !failed {
                let _ = catch_unwind(component.stop(&mut ctx)).await;
            }
            let _ = done.send(Vec::new());
            return;
        }

        let stats = ctx.myself.mailbox.stats.clone();
        let mut budget = BATCH;
        let deadline = loop {
            let msg = tokio::select! {
                biased;
                d = &mut stop => break d.ok(),
                m = rx.recv() => m,
            };
            let Some(msg) = msg else { break None };
            dispatch(&mut component, &mut ctx, msg, &stats).await;
            budget -= 1;
            if budget == 0 {
                budget = BATCH;
                tokio::task::yield_now().await;
            }
        };

        // No timer fires into a stopping instance; drain what was accepted before the stop,
        // until the deadline.
        ctx.timers.cancel_all();
        rx.close();
        let deadline = deadline.unwrap_or_else(Instant::now);
        let mut errors = Vec::new();
        let mut undelivered = 0;
        while let Ok(msg) = rx.try_recv() {
            if Instant::now() >= deadline {
                undelivered += 1;
                continue;
            }
            let handled =
                tokio::time::timeout_at(deadline, dispatch(&mut component, &mut ctx, msg, &stats))
                    .await;
            if handled.is_err() {
                undelivered += 1;
            }
        }
        if undelivered > 0 {
            errors.push(StopError::DeadlineExceeded {
                component: name,
                instance: index,
                undelivered,
            });
        }
        ctx.current = None;
        match tokio::time::timeout_at(
            deadline.max(Instant::now()) + REPORT_GRACE / 2,
            catch_unwind(component.stop(&mut ctx)),
        )
        .await
        {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => errors.push(StopError::Failed {
                component: name,
                instance: index,
                reason: e.to_string(),
            }),
            Ok(Err(panic)) => errors.push(StopError::Failed {
                component: name,
                instance: index,
                reason: format!("stop {}", panic_message(&*panic)),
            }),
            Err(_elapsed) => errors.push(StopError::Failed {
                component: name,
                instance: index,
                reason: "stop did not finish before the deadline".into(),
            }),
        }
        ctx.cancel.cancel();
        let _ = done.send(errors);
    }
}

async fn dispatch<C: Component>(
    component: &mut C,
    ctx: &mut Context<C>,
    msg: C::Msg,
    stats: &InstanceStats,
) {
    // `Responder::run` already catches handler panics; this catches panics in hand-written
    // dispatch code around it, so the instance survives them too.
    ctx.stamp.begin(ctx.key);
    let outcome = catch_unwind(component.handle(msg, ctx))
        .await
        .unwrap_or_else(|panic| Outcome::Panicked(panic_message(&*panic)));
    ctx.stamp.end();
    ctx.current = None;
    match outcome {
        Outcome::Handled => InstanceStats::bump(&stats.handled),
        Outcome::Failed(reason) => {
            InstanceStats::bump(&stats.failed);
            tracing::warn!(component = C::name(), deployment = %ctx.deployment, instance = ctx.instance, %reason, "handler returned an error");
        }
        Outcome::Panicked(reason) => {
            InstanceStats::bump(&stats.panicked);
            tracing::error!(component = C::name(), deployment = %ctx.deployment, instance = ctx.instance, %reason, "handler panicked; the instance keeps its state and goes on");
        }
    }
}
