//! One component instance: its task on a reactor and the handle the runtime keeps.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::bus::{EventBus, Owner};
use crate::component::{catch_unwind, panic_message, ActorRef, Component, Context, Outcome};
use crate::error::StopError;
use crate::mailbox::{InstanceStats, Mailbox, Next, Signals};
use crate::supervision::{
    Control, Escalation, InstanceState, LifecycleEvent, LifecycleKind, Supervisor, Verdict,
};
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
    pub(crate) supervisor: Arc<Supervisor>,
    pub(crate) escalation: Arc<EscalationCtl>,
    /// Publishes no lifecycle events.
    pub(crate) quiet: bool,
    /// The runtime, for `Context::inspect` (weak: the runtime owns its deployments).
    pub(crate) runtime: std::sync::Weak<super::Inner>,
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

    fn note_crash(&self, component: &str, reason: &str) {
        self.crashes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut first = self.first_crashes.lock().unwrap_or_else(|e| e.into_inner());
        if first.len() < 16 {
            first.push(format!("`{component}`: {reason}"));
        }
    }

    fn escalate(&self, component: &str, deployment: DeploymentId, reason: &str) {
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

/// Where a deployment's instances report how their start went: one counter and one wake-up
/// for the whole deployment, rather than a channel per instance.
#[derive(Debug, Default)]
pub(crate) struct StartLatch {
    /// Instances that have not reported yet.
    remaining: std::sync::atomic::AtomicUsize,
    /// The first failure: instance and reason.
    failure: std::sync::Mutex<Option<(usize, String)>>,
    /// The deployment gave up (a failure or its start timeout): instances that start after
    /// this stop again at once.
    abandoned: std::sync::atomic::AtomicBool,
    reported: tokio::sync::Notify,
}

impl StartLatch {
    pub(crate) fn new(instances: usize) -> Self {
        StartLatch {
            remaining: std::sync::atomic::AtomicUsize::new(instances),
            ..Self::default()
        }
    }

    /// Records instance `index`'s start; `false` if the deployment no longer wants it.
    fn report(&self, index: usize, result: Result<(), String>) -> bool {
        use std::sync::atomic::Ordering::AcqRel;
        if let Err(reason) = result {
            self.failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert((index, reason));
        }
        let last = self.remaining.fetch_sub(1, AcqRel) == 1;
        if last {
            self.reported.notify_waiters();
        }
        !self.abandoned.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits until every instance has reported or `deadline` passes. `Err(Some(..))` holds the
    /// first failure, `Err(None)` means some instance did not report in time.
    pub(crate) async fn wait(&self, deadline: Instant) -> Result<(), Option<(usize, String)>> {
        use std::sync::atomic::Ordering::Acquire;
        let all_reported = loop {
            let reported = self.reported.notified();
            tokio::pin!(reported);
            reported.as_mut().enable();
            if self.remaining.load(Acquire) == 0 {
                break true;
            }
            if tokio::time::timeout_at(deadline, reported).await.is_err() {
                break self.remaining.load(Acquire) == 0;
            }
        };
        let failure = self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if all_reported && failure.is_none() {
            return Ok(());
        }
        self.abandoned
            .store(true, std::sync::atomic::Ordering::Release);
        Err(failure)
    }
}

/// An instance's duty to report its start; reports that its reactor went away if dropped
/// before it did.
struct StartReport {
    latch: Option<Arc<StartLatch>>,
    index: usize,
}

impl StartReport {
    /// Reports once; `false` if the deployment no longer wants the instance.
    fn report(&mut self, result: Result<(), String>) -> bool {
        match self.latch.take() {
            Some(latch) => latch.report(self.index, result),
            None => false,
        }
    }
}

impl Drop for StartReport {
    fn drop(&mut self) {
        self.report(Err("its reactor stopped during start".into()));
    }
}

/// The runtime's side of one instance.
pub(crate) struct InstanceHandle {
    pub(crate) index: usize,
    pub(crate) reactor: usize,
    pub(crate) component: &'static str,
    /// The instance's mailbox, as the carrier of stop requests and control signals.
    pub(crate) signals: Arc<dyn Signals>,
    stop_requested: bool,
    done: oneshot::Receiver<Vec<StopError>>,
    pub(crate) capacity: usize,
}

/// The channels an instance task is started with.
pub(crate) struct Launch<C: Component> {
    pub(crate) task: InstanceTask<C>,
    pub(crate) handle: InstanceHandle,
    pub(crate) mailbox: Mailbox<C::Msg>,
}

pub(crate) struct InstanceTask<C: Component> {
    shared: Arc<Shared<C>>,
    index: usize,
    reactor: usize,
    stamp: Stamp,
    key: u64,
    mailbox: Mailbox<C::Msg>,
    rx: crate::mailbox::Receiver<C::Msg>,
    cancel: CancellationToken,
    started: StartReport,
    done: oneshot::Sender<Vec<StopError>>,
}

impl<C: Component> Launch<C> {
    pub(crate) fn new(
        shared: Arc<Shared<C>>,
        index: usize,
        (reactor, stamp, key, wake): (usize, Stamp, u64, Arc<crate::wake::WakeFlag>),
        capacity: usize,
        parent: &CancellationToken,
        latch: &Arc<StartLatch>,
    ) -> Self {
        let (mailbox, rx) = Mailbox::bounded_on(capacity, Some(wake));
        let (done_tx, done) = oneshot::channel();
        let cancel = parent.clone();
        let signals = mailbox.signals();
        shared.supervisor.add_peer(index, signals.clone());
        let handle = InstanceHandle {
            index,
            reactor,
            component: C::name(),
            signals,
            stop_requested: false,
            done,
            capacity,
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
            started: StartReport {
                latch: Some(latch.clone()),
                index,
            },
            done: done_tx,
        };
        Launch {
            task,
            handle,
            mailbox,
        }
    }
}

impl InstanceHandle {
    /// Messages waiting in the mailbox.
    pub(crate) fn queued(&self) -> usize {
        self.signals.queued()
    }

    /// The instance's counters.
    pub(crate) fn stats(&self) -> &InstanceStats {
        self.signals.stats()
    }

    /// Asks the instance to drain and stop by `deadline`; returns at once.
    pub(crate) fn request_stop(&mut self, deadline: Instant) {
        if !self.stop_requested {
            self.stop_requested = true;
            self.signals.stop(deadline);
        }
    }

    /// Asks the instance to stop (if not yet asked) and collects what went wrong.
    pub(crate) async fn stop(mut self, deadline: Instant) -> Vec<StopError> {
        self.request_stop(deadline);
        // Most instances of a deployment being stopped have reported by the time their turn
        // comes: no timer for those.
        match within(deadline + REPORT_GRACE, &mut self.done).await {
            Ok(Ok(errors)) => errors,
            Ok(Err(_gone)) => vec![StopError::ReactorLost {
                component: self.component,
                instance: self.index,
            }],
            Err(_elapsed) => {
                // A handler still holds the instance past the deadline: cancel its work.
                self.signals.cancel_work();
                vec![StopError::DeadlineExceeded {
                    component: self.component,
                    instance: self.index,
                    undelivered: self.queued(),
                }]
            }
        }
    }
}

impl Drop for InstanceHandle {
    /// An instance whose handle goes without a stop request stops at once.
    fn drop(&mut self) {
        self.request_stop(Instant::now());
    }
}

/// Where an instance's lifecycle calls run: inline on its reactor, or shipped to the worker
/// pool (worker components, where handlers may block).
trait Exec<C: Component> {
    async fn start(&mut self) -> Result<(), String>;
    /// Handles one message; `None` if the instance was lost with its worker job. A plain
    /// future, not an `async fn`, so the message is held once: by the handler's future.
    fn dispatch(&mut self, msg: C::Msg) -> impl Future<Output = Option<Outcome>>;
    /// Bookkeeping after a message was handled: counters, logs, the context reset.
    fn settle(&mut self, outcome: &Outcome, stats: &InstanceStats);
    async fn stop(&mut self) -> Result<(), String>;
    /// The context, between calls; `None` if the instance was lost.
    fn ctx(&mut self) -> Option<&mut Context<C>>;
    /// Puts a fresh component in place of the crashed one; `false` if the instance was lost.
    fn replace(&mut self, component: C) -> bool;
    /// The component, between calls.
    fn component(&self) -> Option<&C>;
}

struct Inline<C: Component> {
    component: C,
    ctx: Context<C>,
}

impl<C: Component> Exec<C> for Inline<C> {
    async fn start(&mut self) -> Result<(), String> {
        start_outcome(catch_unwind(self.component.start(&mut self.ctx)).await)
    }

    fn dispatch(&mut self, msg: C::Msg) -> impl Future<Output = Option<Outcome>> {
        self.ctx.stamp.begin(self.ctx.key);
        Guarded {
            inner: catch_unwind(self.component.handle(msg, &mut self.ctx)),
        }
    }

    fn settle(&mut self, outcome: &Outcome, stats: &InstanceStats) {
        self.ctx.stamp.end();
        settle(&mut self.ctx, outcome, stats);
    }

    async fn stop(&mut self) -> Result<(), String> {
        self.ctx.current = None;
        stop_outcome(catch_unwind(self.component.stop(&mut self.ctx)).await)
    }

    fn ctx(&mut self) -> Option<&mut Context<C>> {
        Some(&mut self.ctx)
    }

    fn replace(&mut self, component: C) -> bool {
        self.component = component;
        self.ctx.reset();
        true
    }

    fn component(&self) -> Option<&C> {
        Some(&self.component)
    }
}

type Op<C, R> = Box<
    dyn for<'a> FnOnce(&'a mut C, &'a mut Context<C>) -> Pin<Box<dyn Future<Output = R> + 'a>>
        + Send,
>;

/// A worker component: the component and its context travel to a worker thread for each
/// call and come back after it, so handlers may block without holding a reactor.
struct OnWorkers<C: Component> {
    slot: Option<(C, Context<C>)>,
    pool: WorkerPool,
    reactor: tokio::runtime::Handle,
}

impl<C: Component + Send> OnWorkers<C> {
    async fn ship<R: Send + 'static>(&mut self, op: Op<C, R>) -> Option<R> {
        let (mut component, mut ctx) = self.slot.take()?;
        let reactor = self.reactor.clone();
        let task = self
            .pool
            .submit_wait(move |_| {
                // The reactor thread drives the timer and I/O drivers meanwhile.
                let r = reactor.block_on(op(&mut component, &mut ctx));
                (component, ctx, r)
            })
            .await
            .ok()?;
        let (component, ctx, r) = task.await.ok()?;
        self.slot = Some((component, ctx));
        Some(r)
    }
}

impl<C: Component + Send> Exec<C> for OnWorkers<C> {
    async fn start(&mut self) -> Result<(), String> {
        self.ship(Box::new(|c, ctx| {
            Box::pin(async move { start_outcome(catch_unwind(c.start(ctx)).await) })
        }))
        .await
        .unwrap_or_else(|| Err("the worker pool shut down before start ran".into()))
    }

    fn dispatch(&mut self, msg: C::Msg) -> impl Future<Output = Option<Outcome>> {
        let shipped = self.ship(Box::new(move |c, ctx| {
            Box::pin(Guarded {
                inner: catch_unwind(c.handle(msg, ctx)),
            })
        }));
        async move { shipped.await.flatten() }
    }

    fn settle(&mut self, outcome: &Outcome, stats: &InstanceStats) {
        if let Some((_, ctx)) = &mut self.slot {
            settle(ctx, outcome, stats);
        }
    }

    async fn stop(&mut self) -> Result<(), String> {
        self.ship(Box::new(|c, ctx| {
            Box::pin(async move {
                ctx.current = None;
                stop_outcome(catch_unwind(c.stop(ctx)).await)
            })
        }))
        .await
        .unwrap_or_else(|| Err("the worker pool shut down before stop ran".into()))
    }

    fn ctx(&mut self) -> Option<&mut Context<C>> {
        self.slot.as_mut().map(|(_, ctx)| ctx)
    }

    fn replace(&mut self, component: C) -> bool {
        match &mut self.slot {
            Some((c, ctx)) => {
                *c = component;
                ctx.reset();
                true
            }
            None => false,
        }
    }

    fn component(&self) -> Option<&C> {
        self.slot.as_ref().map(|(c, _)| c)
    }
}

fn start_outcome(
    r: Result<Result<(), crate::BoxError>, Box<dyn std::any::Any + Send>>,
) -> Result<(), String> {
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(format!("start {}", panic_message(&*panic))),
    }
}

fn stop_outcome(
    r: Result<Result<(), crate::BoxError>, Box<dyn std::any::Any + Send>>,
) -> Result<(), String> {
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(format!("stop {}", panic_message(&*panic))),
    }
}

impl<C: Component> InstanceTask<C> {
    /// Creates the component with its factory and its context; `None` (after reporting) if
    /// the factory panicked.
    fn create(self) -> Option<(C, Context<C>, Rest<C>)> {
        let InstanceTask {
            shared,
            index,
            reactor,
            stamp,
            key,
            mailbox,
            rx,
            cancel,
            mut started,
            done,
        } = self;
        let component = match std::panic::catch_unwind(AssertUnwindSafe(|| (shared.factory)())) {
            Ok(c) => c,
            Err(panic) => {
                started.report(Err(format!("the factory {}", panic_message(&*panic))));
                let _ = done.send(Vec::new());
                return None;
            }
        };
        let ctx = Context {
            bus: shared.bus.clone(),
            deployment: shared.deployment,
            instance: index,
            reactor,
            config: shared.config.clone(),
            root_cancel: cancel,
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
            rt: tokio::runtime::Handle::current(),
            runtime: shared.runtime.clone(),
        };
        let stats = ctx.myself.mailbox.signals();
        Some((
            component,
            ctx,
            Rest {
                shared,
                index,
                rx,
                started,
                done,
                stats,
            },
        ))
    }

    /// Creates the component (on its reactor) and returns the rest of its life there;
    /// `None` if the factory panicked (reported as a failed start).
    pub(crate) fn run(self) -> Option<impl Future<Output = ()>> {
        let (component, ctx, rest) = self.create()?;
        Some(drive(Inline { component, ctx }, rest))
    }

    /// The instance's whole life as a worker component: it waits for messages on its reactor
    /// and runs every call on the worker pool.
    pub(crate) fn run_on_workers(self) -> Option<impl Future<Output = ()>>
    where
        C: Send,
    {
        let (component, ctx, rest) = self.create()?;
        let pool = ctx.workers.clone();
        let exec = OnWorkers {
            slot: Some((component, ctx)),
            pool,
            reactor: tokio::runtime::Handle::current(),
        };
        Some(drive(exec, rest))
    }
}

/// What the lifecycle loop needs besides the component.
struct Rest<C: Component> {
    shared: Arc<Shared<C>>,
    index: usize,
    rx: crate::mailbox::Receiver<C::Msg>,
    started: StartReport,
    done: oneshot::Sender<Vec<StopError>>,
    /// The instance's mailbox, for its counters.
    stats: Arc<dyn Signals>,
}

/// Why the message loop ended.
enum End {
    /// Undeploy or shutdown: drain until the deadline, then stop.
    Stop(Option<Instant>),
    /// The supervision policy stopped the instance (or its deployment failed).
    Halt { failed: bool },
    /// The instance went down with its worker job.
    Lost,
}

/// Start, handle messages (supervising crashes) until asked to stop, drain until the deadline,
/// stop.
fn drive<C: Component, E: Exec<C>>(mut exec: E, rest: Rest<C>) -> impl Future<Output = ()> {
    // Taken apart here, not in the async block, so the task holds each part once.
    let Rest {
        shared,
        index,
        mut rx,
        mut started,
        done,
        stats,
    } = rest;
    async move {
        let life = Life {
            shared: &shared,
            index,
            stats: stats.stats(),
        };
        // Rare, one-off and large steps are boxed, and so is each batch of messages (which holds
        // the handler's future), so an idle instance's task stays small.
        let (ok, delivered) = {
            let start = Box::pin(exec.start()).await;
            let ok = start.is_ok();
            (ok, started.report(start))
        };
        if !ok || !delivered {
            // The deployment gave up on this instance (timed out) or it failed to start.
            if ok {
                let _ = Box::pin(exec.stop()).await;
            }
            let _ = done.send(Vec::new());
            return;
        }
        InstanceState::Running.store(&life.stats.state);

        let end = loop {
            // Between batches: signals first, then the next message. What comes is turned
            // into boxed work before it is awaited, so the idle task keeps no room for a
            // message or a handler's future.
            let work: std::pin::Pin<Box<dyn Future<Output = Option<End>> + '_>> =
                match rx.next().await {
                    Next::Stop(deadline) => break End::Stop(Some(deadline)),
                    Next::Control(Control::Group { delay }) => {
                        if shared
                            .supervisor
                            .failed
                            .load(std::sync::atomic::Ordering::Acquire)
                        {
                            break End::Halt { failed: true };
                        }
                        // A peer crashed and the strategy is all-for-one.
                        let restart = life.restart(&mut exec, delay, &mut rx);
                        Box::pin(async move { restart.await.err() })
                    }
                    Next::Control(Control::Inspect(read)) => {
                        if let Some(component) = exec.component() {
                            read(component);
                        }
                        continue;
                    }
                    Next::Message(msg) => Box::pin(batch(&mut exec, msg, &mut rx, &life)),
                };
            if let Some(end) = work.await {
                break end;
            }
        };

        Box::pin(finish(
            &mut exec, &mut rx, end, life.stats, &life, done, index,
        ))
        .await;
    }
}

/// Handles `msg` and what is already queued behind it, back to back (without looking at
/// signals for every message), up to a batch; then the reactor gets a turn. `Some` ends the
/// message loop.
async fn batch<C: Component, E: Exec<C>>(
    exec: &mut E,
    mut msg: C::Msg,
    rx: &mut crate::mailbox::Receiver<C::Msg>,
    life: &Life<'_, C>,
) -> Option<End> {
    let stats = life.stats;
    let mut left = BATCH;
    loop {
        stats.busy.store(true, std::sync::atomic::Ordering::Relaxed);
        let outcome = exec.dispatch(msg).await;
        if let Some(outcome) = &outcome {
            exec.settle(outcome, stats);
        }
        stats
            .busy
            .store(false, std::sync::atomic::Ordering::Relaxed);
        match outcome {
            None => return Some(End::Lost),
            Some(Outcome::Panicked(reason)) => {
                life.shared.escalation.note_crash(C::name(), &reason);
                life.event(LifecycleKind::Crashed, Some(reason.clone()));
                if let Err(end) = life.supervise(exec, &reason, rx).await {
                    return Some(end);
                }
            }
            Some(_) => {}
        }
        left -= 1;
        if left == 0 {
            tokio::task::yield_now().await;
            return None;
        }
        match rx.try_recv() {
            Ok(next) => msg = next,
            Err(_) => return None,
        }
    }
}

/// After the message loop: drain until the deadline and stop (undeploy, shutdown), or stop
/// for the supervision policy, and report.
async fn finish<C: Component, E: Exec<C>>(
    exec: &mut E,
    rx: &mut crate::mailbox::Receiver<C::Msg>,
    end: End,
    stats: &InstanceStats,
    life: &Life<'_, C>,
    done: oneshot::Sender<Vec<StopError>>,
    index: usize,
) {
    let name = C::name();
    let lost = || StopError::Failed {
        component: name,
        instance: index,
        reason: "the instance was lost with its worker job".into(),
    };
    let deadline = match end {
        End::Stop(deadline) => deadline.unwrap_or_else(Instant::now),
        End::Lost => {
            let _ = done.send(vec![lost()]);
            return;
        }
        End::Halt { failed } => {
            life.halt(exec, rx, failed).await;
            let _ = done.send(Vec::new());
            return;
        }
    };

    // No timer fires into a stopping instance; drain what was accepted before the stop,
    // until the deadline.
    if let Some(ctx) = exec.ctx() {
        ctx.timers.cancel_all();
    }
    rx.close();
    let mut errors = Vec::new();
    let mut undelivered = 0;
    while let Ok(msg) = rx.try_recv() {
        if Instant::now() >= deadline {
            undelivered += 1;
            continue;
        }
        match within(deadline, exec.dispatch(msg)).await {
            Ok(Some(outcome)) => exec.settle(&outcome, stats),
            Ok(None) => {
                let _ = done.send(vec![lost()]);
                return;
            }
            Err(_elapsed) => undelivered += 1,
        }
    }
    if undelivered > 0 {
        errors.push(StopError::DeadlineExceeded {
            component: name,
            instance: index,
            undelivered,
        });
    }
    let stopped = within(deadline.max(Instant::now()) + REPORT_GRACE / 2, exec.stop()).await;
    let failure = match stopped {
        Ok(Ok(())) => None,
        Ok(Err(reason)) => Some(reason),
        Err(_elapsed) => Some("stop did not finish before the deadline".into()),
    };
    if let Some(reason) = failure {
        errors.push(StopError::Failed {
            component: name,
            instance: index,
            reason,
        });
    }
    rx.cancel_work();
    InstanceState::Stopped.store(&stats.state);
    life.event(LifecycleKind::Stopped, None);
    let _ = done.send(errors);
}

/// Like `tokio::time::timeout_at`, but a future that is ready at its first poll arms no
/// timer (most of what a stopping instance does finishes at once).
async fn within<F: Future>(deadline: Instant, fut: F) -> Result<F::Output, ()> {
    let mut fut = std::pin::pin!(fut);
    let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(out) => Ok(out),
        Poll::Pending => tokio::time::timeout_at(deadline, fut).await.map_err(|_| ()),
    }
}

/// Supervision steps of one instance.
struct Life<'a, C: Component> {
    shared: &'a Shared<C>,
    index: usize,
    stats: &'a InstanceStats,
}

impl<C: Component> Life<'_, C> {
    fn event(&self, kind: LifecycleKind, reason: Option<String>) {
        publish_event(self.shared, kind, self.index, reason);
    }

    /// Applies the policy to a crash; `Err` ends the message loop.
    async fn supervise<E: Exec<C>>(
        &self,
        exec: &mut E,
        reason: &str,
        rx: &mut crate::mailbox::Receiver<C::Msg>,
    ) -> Result<(), End> {
        match self.shared.supervisor.on_crash(self.index) {
            Verdict::Resume => Ok(()),
            Verdict::Stop => Err(End::Halt { failed: false }),
            Verdict::Fail => {
                self.fail(reason);
                Err(End::Halt { failed: true })
            }
            // Under all-for-one the supervisor has signalled the peers already.
            Verdict::Restart { delay } => Box::pin(self.restart(exec, delay, rx)).await,
        }
    }

    fn fail(&self, reason: &str) {
        let sup = &self.shared.supervisor;
        sup.fail_group();
        self.event(LifecycleKind::Failed, Some(reason.to_owned()));
        self.shared
            .escalation
            .escalate(C::name(), self.shared.deployment, reason);
    }

    /// Re-creates the instance after `delay`, keeping its mailbox. A failing restart counts as
    /// a crash and is supervised in turn.
    async fn restart<E: Exec<C>>(
        &self,
        exec: &mut E,
        mut delay: Duration,
        rx: &mut crate::mailbox::Receiver<C::Msg>,
    ) -> Result<(), End> {
        InstanceState::Restarting.store(&self.stats.state);
        // The old instance: its timers end and its stop hook runs, best effort.
        if let Some(ctx) = exec.ctx() {
            ctx.timers.cancel_all();
        }
        if let Err(reason) = exec.stop().await {
            tracing::warn!(component = C::name(), %reason, "stop of a crashed instance failed");
        }
        loop {
            tokio::select! {
                biased;
                d = rx.stop_requested() => return Err(End::Stop(Some(d))),
                () = tokio::time::sleep(delay) => {}
            }
            let reason =
                match std::panic::catch_unwind(AssertUnwindSafe(|| (self.shared.factory)())) {
                    Ok(component) => {
                        if !exec.replace(component) {
                            return Err(End::Lost);
                        }
                        match exec.start().await {
                            Ok(()) => {
                                self.stats
                                    .restarts
                                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                InstanceState::Running.store(&self.stats.state);
                                self.event(LifecycleKind::Restarted, None);
                                return Ok(());
                            }
                            Err(reason) => reason,
                        }
                    }
                    Err(panic) => format!("the factory {}", panic_message(&*panic)),
                };
            self.shared.escalation.note_crash(C::name(), &reason);
            self.event(LifecycleKind::Crashed, Some(reason.clone()));
            match self.shared.supervisor.on_crash(self.index) {
                Verdict::Restart { delay: next } => {
                    delay = next;
                }
                Verdict::Fail => {
                    self.fail(&reason);
                    return Err(End::Halt { failed: true });
                }
                Verdict::Resume | Verdict::Stop => return Err(End::Halt { failed: false }),
            }
        }
    }

    /// Stops the instance for its policy: its bindings go, queued messages are dropped (their
    /// requesters are told `Closed`), its stop hook runs.
    async fn halt<E: Exec<C>>(
        &self,
        exec: &mut E,
        rx: &mut crate::mailbox::Receiver<C::Msg>,
        failed: bool,
    ) {
        self.shared.bus.unregister_instance(Owner {
            deployment: self.shared.deployment,
            instance: self.index,
        });
        rx.close();
        let mut dropped = 0usize;
        while rx.try_recv().is_ok() {
            dropped += 1;
        }
        if dropped > 0 {
            tracing::warn!(component = C::name(), deployment = %self.shared.deployment, instance = self.index, dropped, "instance stopped by its supervision policy; queued messages were dropped");
        }
        if let Some(ctx) = exec.ctx() {
            ctx.timers.cancel_all();
        }
        rx.cancel_work();
        if InstanceState::load(&self.stats.state) != InstanceState::Restarting {
            let _ = exec.stop().await;
        }
        let state = if failed {
            InstanceState::Failed
        } else {
            InstanceState::Stopped
        };
        state.store(&self.stats.state);
        self.event(LifecycleKind::Stopped, None);
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
    if let Err(e) = shared
        .bus
        .publish_unguarded(kind.topic(), event, shared.bus.root_meta())
    {
        tracing::debug!(error = %e, "a lifecycle event did not reach every subscriber");
    }
}

pin_project_lite::pin_project! {
    /// A component's `handle` future with its panics caught. `Responder::run` already catches
    /// handler panics; this catches panics in hand-written dispatch code around it, so the
    /// instance survives them too.
    struct Guarded<F> {
        #[pin]
        inner: crate::component::CatchUnwind<F>,
    }
}

impl<F: Future<Output = Outcome>> Future for Guarded<F> {
    type Output = Option<Outcome>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Outcome>> {
        self.project()
            .inner
            .poll(cx)
            .map(|r| Some(r.unwrap_or_else(|panic| Outcome::Panicked(panic_message(&*panic)))))
    }
}

/// Counts and logs how a message went, and forgets the message's metadata.
fn settle<C: Component>(ctx: &mut Context<C>, outcome: &Outcome, stats: &InstanceStats) {
    ctx.current = None;
    match outcome {
        Outcome::Handled => InstanceStats::bump_own(&stats.handled),
        Outcome::Failed(reason) => {
            InstanceStats::bump(&stats.failed);
            tracing::warn!(component = C::name(), deployment = %ctx.deployment, instance = ctx.instance, %reason, "handler returned an error");
        }
        Outcome::Panicked(reason) => {
            InstanceStats::bump(&stats.panicked);
            tracing::error!(component = C::name(), deployment = %ctx.deployment, instance = ctx.instance, %reason, "handler panicked");
        }
    }
}
