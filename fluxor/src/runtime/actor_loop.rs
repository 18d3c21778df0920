//! The actor loop: an instance's supervised on its reactor, from its factory to its stop.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::Poll;

use super::exec::{Exec, Inline, OnWorkers};
use super::finish::ending;
use super::reports::ReportGuard;
use super::restart::Supervised;
use super::shared::Shared;
use crate::component::{ActorRef, Component, Context, Outcome};
use crate::mailbox::{Control, Mailbox, Next, Receiver, StopRequest};
use crate::supervision::{InstanceState, LifecycleKind};
use crate::timer::Timers;
use crate::util::{panic_message, Either};
use crate::worker::Lane;

/// Messages handled back to back before the instance yields to its reactor's other tasks.
pub(super) const BATCH: usize = 64;

/// What a new instance starts with; it runs on its reactor.
pub(crate) struct InstanceTask<C: Component> {
    reactor: u32,
    mailbox: Mailbox<C::Msg>,
    rx: Receiver<C::Msg>,
    /// Also says which instance this is, and holds the deployment's shared state.
    duty: ReportGuard<Shared<C>>,
}

impl<C: Component> InstanceTask<C> {
    pub(crate) fn new(
        reactor: u32,
        (mailbox, rx): (Mailbox<C::Msg>, Receiver<C::Msg>),
        duty: ReportGuard<Shared<C>>,
    ) -> Self {
        InstanceTask {
            reactor,
            mailbox,
            rx,
            duty,
        }
    }
}

impl<C: Component> InstanceTask<C> {
    /// Creates the component with its factory and its context; `None` (after reporting) if
    /// the factory panicked.
    fn create(self) -> Option<(C, Context<C>, LoopInputs<C>)> {
        let InstanceTask {
            reactor,
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
        let (config_generation, config) = shared.config();
        let ctx = Context {
            shared: shared.clone(),
            instance: duty.index,
            reactor,
            myself: ActorRef {
                mailbox: mailbox.clone(),
                bus: shared.bus.clone(),
            },
            current: crate::message::Meta::NONE,
            handling: false,
            lane: Lane::default(),
            timers: Timers::default(),
            config_generation,
            config,
            config_changed: false,
        };
        Some((component, ctx, LoopInputs { rx, duty }))
    }

    /// Creates the component (on its reactor) and returns the rest of its supervised there;
    /// `None` if the factory panicked (reported as a failed start).
    pub(crate) fn run(self) -> Option<impl Future<Output = ()>> {
        let (component, ctx, mut rest) = self.create()?;
        let mut exec = Inline { component, ctx };
        if C::START_AT_ONCE {
            // Started here, so the deploy finds the report made and does not wait for the
            // instance's first turn.
            let result = match poll_once(exec.start()) {
                Poll::Ready(result) => result,
                Poll::Pending => {
                    Err("its start did not finish at once, as its component says it does".into())
                }
            };
            let ok = result.is_ok();
            let delivered = rest.duty.started(result);
            if ok && delivered {
                InstanceState::Running.store(&rest.rx.stats().state);
            }
            rest.duty.started_early = Some((ok, delivered));
        }
        Some(actor_loop(exec, rest))
    }

    /// The instance's whole supervised as a worker component: it waits for messages on its reactor
    /// and runs every call on the worker pool.
    pub(crate) fn run_on_workers(self) -> Option<impl Future<Output = ()>>
    where
        C: Send,
    {
        let (component, ctx, rest) = self.create()?;
        let pool = ctx.shared.services.workers.clone();
        let exec = OnWorkers {
            slot: Some((component, ctx)),
            pool,
            reactor: tokio::runtime::Handle::current(),
        };
        Some(actor_loop(exec, rest))
    }
}

/// What the lifecycle loop needs besides the component.
pub(super) struct LoopInputs<C: Component> {
    rx: Receiver<C::Msg>,
    /// Also holds the deployment's shared state, and how the start went if it already ran.
    duty: ReportGuard<Shared<C>>,
}

/// Polls `fut` once, with a waker that does nothing.
pub(super) fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
    let fut = std::pin::pin!(fut);
    fut.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
}

/// Why the message loop ended.
pub(super) enum LoopExit {
    /// Undeploy or shutdown: drain until the deadline, then stop.
    Stop(StopRequest),
    /// The supervision policy stopped the instance (or its deployment failed).
    Halt { failed: bool },
    /// The instance went down with its worker job.
    Lost,
}

/// Start, handle messages (supervising crashes) until asked to stop, drain until the deadline,
/// stop.
pub(super) fn actor_loop<C: Component, E: Exec<C>>(
    mut exec: E,
    rest: LoopInputs<C>,
) -> impl Future<Output = ()> {
    // Taken apart here, not in the async block, so the task holds each part once.
    let LoopInputs { mut rx, mut duty } = rest;
    async move {
        // Rare, one-off and large steps are boxed, and so is each batch of messages (which holds
        // the handler's future), so an idle instance's task stays small.
        let (ok, delivered) = match duty.started_early {
            Some(reported) => reported,
            None => Box::pin(start(&mut exec, &mut rx, &mut duty)).await,
        };
        if !ok || !delivered {
            // The deployment gave up on this instance (timed out, or its start was cut short)
            // or it failed to start.
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
                Next::Stop(request) => break LoopExit::Stop(request),
                Next::Control(Control::Group { delay }) => {
                    if duty
                        .owner
                        .supervisor
                        .failed
                        .load(std::sync::atomic::Ordering::Acquire)
                    {
                        break LoopExit::Halt { failed: true };
                    }
                    // A peer crashed and the strategy is all-for-one.
                    let supervised = Supervised::new(&duty.owner, duty.index());
                    let (exec, rx) = (&mut exec, &mut rx);
                    boxed(async move { supervised.restart(exec, delay, rx).await.err() })
                }
                Next::Control(Control::Inspect(read)) => {
                    if let Some(component) = exec.component() {
                        read(component);
                    }
                    continue;
                }
                Next::Message(msg) => {
                    let supervised = Supervised::new(&duty.owner, duty.index());
                    match in_place(&mut exec, msg, &mut rx) {
                        // Messages handled in place count against the task's budget, so an
                        // instance that always has a message still hands its reactor over now
                        // and then (and its timers and I/O get a turn), as tokio's own
                        // resources do.
                        InPlace::Handled(handled) => Either::Left {
                            future: Budget {
                                units: handled.div_ceil(MESSAGES_PER_UNIT),
                            },
                        },
                        InPlace::Crashed(reason) => {
                            boxed(crashed(&mut exec, reason, &mut rx, supervised))
                        }
                        InPlace::Async(msg) => boxed(batch(&mut exec, msg, &mut rx, supervised)),
                    }
                }
            };
            if let Some(end) = work.await {
                break end;
            }
        };

        // The usual stop (nothing left to drain, a stop that finishes at once) ends in this
        // turn; a stop that may wait is boxed.
        let supervised = Supervised::new(&duty.owner, duty.index());
        let errors = match ending(&mut exec, &mut rx, end, supervised) {
            None => Vec::new(),
            Some(rest) => rest.await,
        };
        duty.stopped(errors);
    }
}

/// Runs the instance's start and reports it: whether it started, and whether the deployment
/// still wants it. A stop request during the start (its deploy timed out, failed elsewhere or
/// was dropped) cuts the start short: the deploy does not wait for it. The caller boxes it,
/// so the idle task keeps no room for the start or the watch on stop requests.
async fn start<C: Component, E: Exec<C>>(
    exec: &mut E,
    rx: &mut Receiver<C::Msg>,
    duty: &mut ReportGuard<Shared<C>>,
) -> (bool, bool) {
    let started = tokio::select! {
        biased;
        result = exec.start() => Some(result),
        _ = rx.stop_requested() => None,
    };
    match started {
        Some(start) => {
            let ok = start.is_ok();
            (ok, duty.started(start))
        }
        None => {
            duty.started(Err("its start was cut short by a stop request".into()));
            // Like a start that finished too late: the stop hook runs.
            (true, false)
        }
    }
}

/// Work an instance awaits between two messages: boxed, so the idle task keeps no room for it.
pub(super) fn boxed<'a, L>(
    work: impl Future<Output = Option<LoopExit>> + 'a,
) -> Either<L, Pin<Box<dyn Future<Output = Option<LoopExit>> + 'a>>> {
    Either::Right {
        future: Box::pin(work),
    }
}

/// Handles `msg` and what is already queued behind it, back to back (without looking at
/// signals for every message), up to a batch; then the reactor gets a turn. `Some` ends the
/// message loop.
pub(super) async fn batch<C: Component, E: Exec<C>>(
    exec: &mut E,
    mut msg: C::Msg,
    rx: &mut Receiver<C::Msg>,
    supervised: Supervised<'_, C>,
) -> Option<LoopExit> {
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
                    None => return Some(LoopExit::Lost),
                    Some(Outcome::Panicked(reason)) => Some(reason),
                    Some(_) => None,
                }
            }
        };
        if let Some(reason) = crash {
            if let Some(end) = crashed(exec, reason, rx, supervised).await {
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

/// How a run of messages handled in place ended.
enum InPlace<M> {
    /// This many were handled (a whole batch, or until the mailbox had nothing more).
    Handled(u8),
    /// A handler panicked, for this reason.
    Crashed(String),
    /// This message's handler is `async`: it was not handled.
    Async(M),
}

/// Handles `msg` and what is already queued behind it in place, back to back, up to a batch,
/// while their handlers are plain methods. Like [`batch`], it does not look at signals between
/// the messages of a run.
#[inline]
fn in_place<C: Component, E: Exec<C>>(
    exec: &mut E,
    mut msg: C::Msg,
    rx: &mut Receiver<C::Msg>,
) -> InPlace<C::Msg> {
    let mut handled = 0;
    loop {
        match handle_now(exec, msg, rx) {
            Ok(None) => {}
            Ok(Some(reason)) => return InPlace::Crashed(reason),
            Err(msg) => return InPlace::Async(msg),
        }
        handled += 1;
        if usize::from(handled) == BATCH {
            return InPlace::Handled(handled);
        }
        match rx.try_recv() {
            Ok(next) => msg = next,
            Err(_) => return InPlace::Handled(handled),
        }
    }
}

/// Messages handled in place per unit of the task's coop budget. A unit stands for one
/// operation of a tokio resource (a channel's receive, a socket's read), which costs several
/// times a plain handler's message; at four, a task that is never out of messages hands its
/// reactor over after 512 of them (tokio's budget is 128 units), about 25 µs of work.
const MESSAGES_PER_UNIT: u8 = 4;

/// After a run of messages handled in place: `units` of the task's budget (tokio's
/// `consume_budget` for each), which hands the reactor over when the budget is used up. One
/// byte, so the idle task stays small.
struct Budget {
    units: u8,
}

impl Future for Budget {
    type Output = Option<LoopExit>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        while self.units > 0 {
            let progress = std::task::ready!(tokio::task::coop::poll_proceed(cx));
            progress.made_progress();
            self.units -= 1;
        }
        Poll::Ready(None)
    }
}

/// Handles `msg` in place if its handler is a plain method (see [`Exec::dispatch_now`]),
/// with the counters and logs of a handled message: `Ok(Some(reason))` if it panicked.
/// Hands the message back otherwise.
#[inline]
pub(super) fn handle_now<C: Component, E: Exec<C>>(
    exec: &mut E,
    msg: C::Msg,
    rx: &Receiver<C::Msg>,
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
pub(super) async fn crashed<C: Component, E: Exec<C>>(
    exec: &mut E,
    reason: String,
    rx: &mut Receiver<C::Msg>,
    supervised: Supervised<'_, C>,
) -> Option<LoopExit> {
    supervised
        .shared
        .services
        .escalation
        .note_crash(C::name(), &reason);
    supervised.event(LifecycleKind::Crashed, Some(reason.clone()));
    supervised.supervise(exec, &reason, rx).await.err()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::Outcome;

    /// A component with 64 bytes of state.
    struct Small {
        _state: [u64; 8],
    }

    impl Component for Small {
        type Msg = u64;
        type Config = ();

        async fn handle(&mut self, _: u64, _: &mut Context<Self>) -> Outcome {
            Outcome::Handled
        }
    }

    /// The size of what `f` returns.
    fn returned<A, B, R>(_: fn(A, B) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    #[test]
    fn an_idle_instance_of_a_small_component_fits_a_384_byte_task() {
        // tokio keeps a task in a 128-byte aligned cell of 104 bytes besides the future (and
        // its stage's tag): a future of up to 280 bytes makes a 384-byte cell, 288 a 512-byte one.
        // Measured in the test build (272 bytes); the release build lays out the same future in
        // 280 (`-Zprint-type-sizes` of the benches, for the 64-byte skynet node), so 272 here
        // is the most that keeps the 384-byte cell (8 more took the skynet nodes' tasks to 512).
        // The layout depends on the compiler and on tokio: a failure here after an upgrade
        // means the instance's task grew a size class, not that the runtime is wrong.
        let size = returned(actor_loop::<Small, Inline<Small>>);
        println!("actor loop of a 64-byte component: {size} bytes");
        assert!(size <= 272, "the actor loop's future grew to {size} bytes");
    }
}
