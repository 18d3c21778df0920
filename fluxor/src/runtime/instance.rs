//! One component instance: its task on a reactor and the handle the runtime keeps.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::bus::{EventBus, Owner};
use crate::component::{ActorRef, Component, Context, Outcome};
use crate::error::StopError;
use crate::mailbox::{Control, InstanceStats, Mailbox, Next, Signals};
use crate::supervision::{
    Escalation, InstanceState, LifecycleEvent, LifecycleKind, Supervisor, Verdict,
};
use crate::timer::Timers;
use crate::util::Either;
use crate::util::{catch_unwind, panic_message};
use crate::watchdog::Stamp;
use crate::worker::{Lane, WorkerPool};

use crate::ids::DeploymentId;

/// Messages handled back to back before the instance yields to its reactor's other tasks.
const BATCH: usize = 64;

/// Extra time a stopper waits, past the deadline, for an instance to report on itself.
const REPORT_GRACE: Duration = Duration::from_millis(100);

/// What every instance of a deployment shares.
pub(crate) struct Shared<C: Component> {
    /// Where the deployment's instances report their start and stop.
    pub(crate) reports: Arc<Reports>,
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
    /// The runtime's cancellation token, parent of each instance's.
    pub(crate) cancel: CancellationToken,
    /// Each reactor's tokio runtime, by index: where instances' timers run.
    pub(crate) reactors: Arc<[tokio::runtime::Handle]>,
    /// Each reactor's mark for the blocked-reactor checker, by index.
    pub(crate) stamps: Arc<[Stamp]>,
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

/// Counts reports down to zero; waiters are woken by the last one.
#[derive(Debug, Default)]
struct Countdown {
    remaining: std::sync::atomic::AtomicUsize,
    zero: tokio::sync::Notify,
}

impl Countdown {
    fn new(n: usize) -> Self {
        Countdown {
            remaining: std::sync::atomic::AtomicUsize::new(n),
            zero: tokio::sync::Notify::new(),
        }
    }

    fn count_down(&self) {
        if self
            .remaining
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.zero.notify_waiters();
        }
    }

    fn is_zero(&self) -> bool {
        self.remaining.load(std::sync::atomic::Ordering::Acquire) == 0
    }

    /// Waits until the count is zero or `deadline` passes; `true` if it reached zero.
    async fn wait(&self, deadline: Instant) -> bool {
        loop {
            let zero = self.zero.notified();
            tokio::pin!(zero);
            zero.as_mut().enable();
            if self.is_zero() {
                return true;
            }
            if tokio::time::timeout_at(deadline, zero).await.is_err() {
                return self.is_zero();
            }
        }
    }
}

/// Where a deployment's instances report how their start went: one counter and one wake-up
/// for the whole deployment, rather than a channel per instance.
#[derive(Debug, Default)]
pub(crate) struct StartLatch {
    /// Instances that have not reported yet.
    count: Countdown,
    /// The first failure: instance and reason.
    failure: std::sync::Mutex<Option<(usize, String)>>,
    /// The deployment gave up (a failure or its start timeout): instances that start after
    /// this stop again at once.
    abandoned: std::sync::atomic::AtomicBool,
}

impl StartLatch {
    /// Records instance `index`'s start; `false` if the deployment no longer wants it.
    fn report(&self, index: usize, result: Result<(), String>) -> bool {
        if let Err(reason) = result {
            self.failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert((index, reason));
        }
        self.count.count_down();
        !self.abandoned.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The deployment gives up: instances that start from now on stop again at once.
    pub(crate) fn abandon(&self) {
        self.abandoned
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Waits until every instance has reported or `deadline` passes. `Err(Some(..))` holds the
    /// first failure, `Err(None)` means some instance did not report in time.
    pub(crate) async fn wait(&self, deadline: Instant) -> Result<(), Option<(usize, String)>> {
        let all_reported = self.count.wait(deadline).await;
        let failure = self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if all_reported && failure.is_none() {
            return Ok(());
        }
        self.abandon();
        Err(failure)
    }
}

/// Where a deployment's instances report that they stopped, and what went wrong: one counter,
/// one wake-up and one bit per instance, rather than a channel per instance.
#[derive(Debug)]
pub(crate) struct StopLatch {
    /// Instances that have not reported yet.
    count: Countdown,
    /// One bit per instance: it has reported.
    reported: Box<[std::sync::atomic::AtomicU64]>,
    errors: std::sync::Mutex<Vec<StopError>>,
}

impl StopLatch {
    fn report(&self, index: usize, errors: Vec<StopError>) {
        if !errors.is_empty() {
            self.errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(errors);
        }
        self.reported[index / 64].fetch_or(1 << (index % 64), std::sync::atomic::Ordering::AcqRel);
        self.count.count_down();
    }

    fn has_reported(&self, index: usize) -> bool {
        self.reported[index / 64].load(std::sync::atomic::Ordering::Acquire) & (1 << (index % 64))
            != 0
    }
}

/// A deployment's start and stop reports.
#[derive(Debug)]
pub(crate) struct Reports {
    component: &'static str,
    pub(crate) started: StartLatch,
    stopped: StopLatch,
}

impl Reports {
    pub(crate) fn new(component: &'static str, instances: usize) -> Self {
        Reports {
            component,
            started: StartLatch {
                count: Countdown::new(instances),
                ..StartLatch::default()
            },
            stopped: StopLatch {
                count: Countdown::new(instances),
                reported: (0..instances.div_ceil(64))
                    .map(|_| std::sync::atomic::AtomicU64::new(0))
                    .collect(),
                errors: std::sync::Mutex::new(Vec::new()),
            },
        }
    }

    /// Asks each instance (`peers`, by index) to drain and stop by `deadline` and collects
    /// what went wrong, ordered by instance. An instance that has not reported shortly after
    /// the deadline has its work cancelled and is reported as late.
    pub(crate) async fn stop_all(
        &self,
        peers: &[Arc<dyn Signals>],
        deadline: Instant,
    ) -> Vec<StopError> {
        for peer in peers {
            peer.stop(deadline);
        }
        let all = self.stopped.count.wait(deadline + REPORT_GRACE).await;
        let mut errors = std::mem::take(
            &mut *self
                .stopped
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        if !all {
            for (instance, peer) in peers.iter().enumerate() {
                if !self.stopped.has_reported(instance) {
                    // A handler still holds the instance past the deadline: cancel its work.
                    peer.cancel_work();
                    errors.push(StopError::DeadlineExceeded {
                        component: self.component,
                        instance,
                        undelivered: peer.queued(),
                    });
                }
            }
        }
        errors.sort_by_key(StopError::instance);
        errors
    }
}

/// An instance's duty to report its start and its stop; reports that its reactor went away
/// for whatever it has not reported when dropped.
pub(crate) struct Duty<O: Reporting> {
    /// What holds the deployment's reports: its shared state (or, in tests, the reports).
    owner: Arc<O>,
    index: u32,
    start_pending: bool,
    stop_pending: bool,
}

/// Holds a deployment's [`Reports`].
pub(crate) trait Reporting {
    fn reports(&self) -> &Reports;
}

impl Reporting for Reports {
    fn reports(&self) -> &Reports {
        self
    }
}

impl<C: Component> Reporting for Shared<C> {
    fn reports(&self) -> &Reports {
        &self.reports
    }
}

impl<O: Reporting> Duty<O> {
    pub(crate) fn new(owner: Arc<O>, index: u32) -> Self {
        Duty {
            owner,
            index,
            start_pending: true,
            stop_pending: true,
        }
    }

    fn index(&self) -> usize {
        self.index as usize
    }

    /// Reports the start once; `false` if the deployment no longer wants the instance.
    fn started(&mut self, result: Result<(), String>) -> bool {
        if !std::mem::take(&mut self.start_pending) {
            return false;
        }
        self.owner.reports().started.report(self.index(), result)
    }

    /// Reports the stop once, with what went wrong.
    fn stopped(&mut self, errors: Vec<StopError>) {
        if std::mem::take(&mut self.stop_pending) {
            self.owner.reports().stopped.report(self.index(), errors);
        }
    }
}

impl<O: Reporting> Drop for Duty<O> {
    fn drop(&mut self) {
        if self.start_pending {
            self.started(Err("its reactor stopped during start".into()));
        }
        if self.stop_pending {
            self.stopped(vec![StopError::ReactorLost {
                component: self.owner.reports().component,
                instance: self.index(),
            }]);
        }
    }
}

/// What a new instance starts with; it runs on its reactor.
pub(crate) struct InstanceTask<C: Component> {
    reactor: u32,
    key: u64,
    mailbox: Mailbox<C::Msg>,
    rx: crate::mailbox::Receiver<C::Msg>,
    /// Also says which instance this is, and holds the deployment's shared state.
    duty: Duty<Shared<C>>,
}

impl<C: Component> InstanceTask<C> {
    pub(crate) fn new(
        (reactor, key): (u32, u64),
        (mailbox, rx): (Mailbox<C::Msg>, crate::mailbox::Receiver<C::Msg>),
        duty: Duty<Shared<C>>,
    ) -> Self {
        InstanceTask {
            reactor,
            key,
            mailbox,
            rx,
            duty,
        }
    }
}

/// Where an instance's lifecycle calls run: inline on its reactor, or shipped to the worker
/// pool (worker components, where handlers may block).
trait Exec<C: Component> {
    async fn start(&mut self) -> Result<(), String>;
    /// Handles one message; `None` if the instance was lost with its worker job. A plain
    /// future, not an `async fn`, so the message is held once: by the handler's future.
    fn dispatch(&mut self, msg: C::Msg) -> impl Future<Output = Option<Outcome>>;
    /// Handles one message in place when its handler is a plain method (no future, no
    /// allocation); hands it back otherwise, for [`dispatch`](Self::dispatch).
    fn dispatch_now(&mut self, msg: C::Msg) -> Result<Outcome, C::Msg>;
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
        self.ctx.stamp().begin(self.ctx.key);
        Guarded {
            inner: catch_unwind(self.component.handle(msg, &mut self.ctx)),
        }
    }

    fn dispatch_now(&mut self, msg: C::Msg) -> Result<Outcome, C::Msg> {
        self.ctx.stamp().begin(self.ctx.key);
        let (component, ctx) = (&mut self.component, &mut self.ctx);
        // `Responder::run_now` catches handler panics; this catches panics in hand-written
        // dispatch code around it.
        std::panic::catch_unwind(AssertUnwindSafe(|| component.handle_now(msg, ctx)))
            .unwrap_or_else(|panic| Ok(Outcome::Panicked(panic_message(&*panic))))
    }

    fn settle(&mut self, outcome: &Outcome, stats: &InstanceStats) {
        self.ctx.stamp().end();
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

    fn dispatch_now(&mut self, msg: C::Msg) -> Result<Outcome, C::Msg> {
        // Every call of a worker component runs on the worker pool.
        Err(msg)
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
    r: Result<Result<(), crate::error::BoxError>, Box<dyn std::any::Any + Send>>,
) -> Result<(), String> {
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(format!("start {}", panic_message(&*panic))),
    }
}

fn stop_outcome(
    r: Result<Result<(), crate::error::BoxError>, Box<dyn std::any::Any + Send>>,
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
            reactor,
            key,
            mailbox,
            rx,
            mut duty,
        } = self;
        let shared = duty.owner.clone();
        let component = match std::panic::catch_unwind(AssertUnwindSafe(|| (shared.factory)())) {
            Ok(c) => c,
            Err(panic) => {
                duty.started(Err(format!("the factory {}", panic_message(&*panic))));
                duty.stopped(Vec::new());
                return None;
            }
        };
        let ctx = Context {
            shared: shared.clone(),
            instance: duty.index,
            reactor,
            myself: ActorRef {
                mailbox: mailbox.clone(),
                bus: shared.bus.clone(),
            },
            current: None,
            lane: Lane::default(),
            timers: Timers::default(),
            key,
        };
        Some((component, ctx, Rest { rx, duty }))
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
        let pool = ctx.shared.workers.clone();
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
    rx: crate::mailbox::Receiver<C::Msg>,
    /// Also holds the deployment's shared state.
    duty: Duty<Shared<C>>,
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
    let Rest { mut rx, mut duty } = rest;
    async move {
        // Rare, one-off and large steps are boxed, and so is each batch of messages (which holds
        // the handler's future), so an idle instance's task stays small.
        let (ok, delivered) = {
            let start = Box::pin(exec.start()).await;
            let ok = start.is_ok();
            (ok, duty.started(start))
        };
        if !ok || !delivered {
            // The deployment gave up on this instance (timed out) or it failed to start.
            if ok {
                let _ = Box::pin(exec.stop()).await;
            }
            duty.stopped(Vec::new());
            return;
        }
        InstanceState::Running.store(&rx.stats().state);

        let end = loop {
            // Between messages: signals first, then the next message. A plain handler runs
            // in place; anything that must wait is turned into boxed work before it is
            // awaited, so the idle task keeps no room for a message or a handler's future.
            // Nothing is awaited inside the match (its scrutinee, a message, would be kept in
            // the task across the wait): each arm says what to await after it.
            let work = match rx.next().await {
                Next::Stop(deadline) => break End::Stop(Some(deadline)),
                Next::Control(Control::Group { delay }) => {
                    if duty
                        .owner
                        .supervisor
                        .failed
                        .load(std::sync::atomic::Ordering::Acquire)
                    {
                        break End::Halt { failed: true };
                    }
                    // A peer crashed and the strategy is all-for-one.
                    let life = Life::new(&duty.owner, duty.index());
                    let (exec, rx) = (&mut exec, &mut rx);
                    boxed(async move { life.restart(exec, delay, rx).await.err() })
                }
                Next::Control(Control::Inspect(read)) => {
                    if let Some(component) = exec.component() {
                        read(component);
                    }
                    continue;
                }
                Next::Message(msg) => {
                    let life = Life::new(&duty.owner, duty.index());
                    match handle_now(&mut exec, msg, &rx) {
                        // Handled in place: counts against the task's budget, so an instance
                        // that always has a message still hands its reactor over now and then.
                        Ok(None) => Either::Left {
                            future: async {
                                tokio::task::consume_budget().await;
                                None
                            },
                        },
                        Ok(Some(reason)) => boxed(crashed(&mut exec, reason, &mut rx, life)),
                        Err(msg) => boxed(batch(&mut exec, msg, &mut rx, life)),
                    }
                }
            };
            if let Some(end) = work.await {
                break end;
            }
        };

        let life = Life::new(&duty.owner, duty.index());
        let errors = Box::pin(finish(&mut exec, &mut rx, end, life)).await;
        duty.stopped(errors);
    }
}

/// Work an instance awaits between two messages: boxed, so the idle task keeps no room for it.
fn boxed<'a, L>(
    work: impl Future<Output = Option<End>> + 'a,
) -> Either<L, Pin<Box<dyn Future<Output = Option<End>> + 'a>>> {
    Either::Right {
        future: Box::pin(work),
    }
}

/// Handles `msg` and what is already queued behind it, back to back (without looking at
/// signals for every message), up to a batch; then the reactor gets a turn. `Some` ends the
/// message loop.
async fn batch<C: Component, E: Exec<C>>(
    exec: &mut E,
    mut msg: C::Msg,
    rx: &mut crate::mailbox::Receiver<C::Msg>,
    life: Life<'_, C>,
) -> Option<End> {
    let mut left = BATCH;
    // The first message came here because its handler is `async`.
    let mut first = true;
    loop {
        let now = if std::mem::take(&mut first) {
            Err(msg)
        } else {
            handle_now(exec, msg, rx)
        };
        let crash = match now {
            Ok(crash) => crash,
            Err(msg) => {
                rx.stats()
                    .busy
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                let outcome = exec.dispatch(msg).await;
                if let Some(outcome) = &outcome {
                    exec.settle(outcome, rx.stats());
                }
                rx.stats()
                    .busy
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                match outcome {
                    None => return Some(End::Lost),
                    Some(Outcome::Panicked(reason)) => Some(reason),
                    Some(_) => None,
                }
            }
        };
        if let Some(reason) = crash {
            if let Some(end) = crashed(exec, reason, rx, life).await {
                return Some(end);
            }
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

/// Handles `msg` in place if its handler is a plain method (see [`Exec::dispatch_now`]),
/// with the counters and logs of a handled message: `Ok(Some(reason))` if it panicked.
/// Hands the message back otherwise.
fn handle_now<C: Component, E: Exec<C>>(
    exec: &mut E,
    msg: C::Msg,
    rx: &crate::mailbox::Receiver<C::Msg>,
) -> Result<Option<String>, C::Msg> {
    let stats = rx.stats();
    stats.busy.store(true, std::sync::atomic::Ordering::Relaxed);
    let outcome = exec.dispatch_now(msg);
    if let Ok(outcome) = &outcome {
        exec.settle(outcome, stats);
    }
    stats
        .busy
        .store(false, std::sync::atomic::Ordering::Relaxed);
    outcome.map(|outcome| match outcome {
        Outcome::Panicked(reason) => Some(reason),
        _ => None,
    })
}

/// Records a crash and applies the supervision policy; `Some` ends the message loop.
async fn crashed<C: Component, E: Exec<C>>(
    exec: &mut E,
    reason: String,
    rx: &mut crate::mailbox::Receiver<C::Msg>,
    life: Life<'_, C>,
) -> Option<End> {
    life.shared.escalation.note_crash(C::name(), &reason);
    life.event(LifecycleKind::Crashed, Some(reason.clone()));
    life.supervise(exec, &reason, rx).await.err()
}

/// After the message loop: drain until the deadline and stop (undeploy, shutdown), or stop
/// for the supervision policy; returns what went wrong.
async fn finish<C: Component, E: Exec<C>>(
    exec: &mut E,
    rx: &mut crate::mailbox::Receiver<C::Msg>,
    end: End,
    life: Life<'_, C>,
) -> Vec<StopError> {
    let (name, index) = (C::name(), life.index);
    let lost = || StopError::Failed {
        component: name,
        instance: index,
        reason: "the instance was lost with its worker job".into(),
    };
    let deadline = match end {
        End::Stop(deadline) => deadline.unwrap_or_else(Instant::now),
        End::Lost => return vec![lost()],
        End::Halt { failed } => {
            life.halt(exec, rx, failed).await;
            return Vec::new();
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
        // Messages left at a stop are rare: boxed, so the stop sequence stays small.
        match Box::pin(within(deadline, exec.dispatch(msg))).await {
            Ok(Some(outcome)) => exec.settle(&outcome, rx.stats()),
            Ok(None) => return vec![lost()],
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
    InstanceState::Stopped.store(&rx.stats().state);
    life.event(LifecycleKind::Stopped, None);
    errors
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
}

impl<C: Component> Clone for Life<'_, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C: Component> Copy for Life<'_, C> {}

impl<'a, C: Component> Life<'a, C> {
    fn new(shared: &'a Shared<C>, index: usize) -> Self {
        Life { shared, index }
    }
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
        InstanceState::Restarting.store(&rx.stats().state);
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
                                rx.stats()
                                    .restarts
                                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                InstanceState::Running.store(&rx.stats().state);
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
        if InstanceState::load(&rx.stats().state) != InstanceState::Restarting {
            let _ = exec.stop().await;
        }
        let state = if failed {
            InstanceState::Failed
        } else {
            InstanceState::Stopped
        };
        state.store(&rx.stats().state);
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
        inner: crate::util::CatchUnwind<F>,
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
            tracing::warn!(component = C::name(), deployment = %ctx.shared.deployment, instance = ctx.instance, %reason, "handler returned an error");
        }
        Outcome::Panicked(reason) => {
            InstanceStats::bump(&stats.panicked);
            tracing::error!(component = C::name(), deployment = %ctx.shared.deployment, instance = ctx.instance, %reason, "handler panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: usize) -> Vec<Arc<dyn Signals>> {
        (0..n)
            .map(|_| Mailbox::<u64>::bounded_on(4, None).0.signals())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn stop_reports_are_collected_in_instance_order() {
        let reports = Arc::new(Reports::new("Probe", 130));
        let peers = peers(130);
        for index in (0..130).rev() {
            let mut duty = Duty::new(reports.clone(), index);
            let errors = match index {
                7 | 129 => vec![StopError::Failed {
                    component: "Probe",
                    instance: index as usize,
                    reason: "stop hook failed".into(),
                }],
                _ => Vec::new(),
            };
            duty.started(Ok(()));
            duty.stopped(errors);
        }
        let started = Instant::now();
        let errors = reports.stop_all(&peers, Instant::now()).await;
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "no wait once all reported"
        );
        let instances: Vec<usize> = errors.iter().map(StopError::instance).collect();
        assert_eq!(instances, vec![7, 129]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_instance_and_a_late_one_are_reported() {
        let reports = Arc::new(Reports::new("Probe", 3));
        let peers = peers(3);
        // Instance 0 stops cleanly, instance 1's task is dropped (its reactor went away),
        // instance 2 never reports.
        let mut clean = Duty::new(reports.clone(), 0);
        clean.started(Ok(()));
        clean.stopped(Vec::new());
        drop(Duty::new(reports.clone(), 1));
        let _late = Duty::new(reports.clone(), 2);
        assert_eq!(
            reports
                .started
                .wait(Instant::now() + Duration::from_secs(1))
                .await
                .unwrap_err()
                .map(|(i, reason)| (i, reason.contains("reactor"))),
            Some((1, true))
        );
        let deadline = Instant::now() + Duration::from_secs(1);
        let errors = reports.stop_all(&peers, deadline).await;
        assert!(Instant::now() >= deadline + REPORT_GRACE);
        assert!(
            matches!(
                errors.as_slice(),
                [
                    StopError::ReactorLost { instance: 1, .. },
                    StopError::DeadlineExceeded {
                        instance: 2,
                        undelivered: 0,
                        ..
                    }
                ]
            ),
            "{errors:?}"
        );
    }
}
