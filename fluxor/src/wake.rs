//! Waking tasks on a reactor from other threads without a system call per wake-up.
//!
//! A tokio task woken from another thread is queued on its runtime, whose thread is then
//! unparked through the I/O driver: an `eventfd` write by the waking thread and an `epoll` turn
//! on the woken one, even when the woken reactor was about to look for work anyway. Fluxor's
//! own cross-thread wake-ups (a mailbox push, a reply) go through the target reactor's
//! [`Wakeups`] instead: the waker is queued there and the reactor wakes it on its own thread,
//! where waking a task is a push onto its run queue.
//!
//! * A reactor that runs out of work runs its [`Spinner`] for a short while
//!   (`Builder::spin_before_park`): a task that keeps coming back after whatever else is ready,
//!   each time waking what the queue holds. A wake-up queued meanwhile costs its sender no
//!   system call, and the reactor neither parks nor turns its driver to pick it up (waking a
//!   parked thread costs tens of microseconds on some machines: a virtual CPU that halted must
//!   be rescheduled). How long it spins adapts to the traffic (see [`Spinner`]): a reactor whose
//!   wake-ups come further apart than the spin burns a sixteenth of it each time, not all.
//! * Otherwise the sender rings the reactor's doorbell (its main future's waker), once until the
//!   reactor answers: a busy reactor takes a whole batch of wake-ups for one ring.
//!
//! The two sides follow the store, fence, load pattern: the sender queues, then reads whether
//! the reactor watches; the reactor stops watching, then empties the queue. One of them always
//! sees the other, so no wake-up is left in the queue while its reactor sleeps.

use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use crate::loom::atomic::{fence, AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use crate::loom::{OnceLock, SegQueue};
use crate::util::{monotonic_nanos, monotonic_nanos_at};

mod awaited;
mod current;
pub(crate) use awaited::AwaitedReply;
pub(crate) use current::{current, enter, on_reactor};

/// One reactor's queue of wake-ups handed to it by other threads.
#[derive(Debug, Default)]
pub(crate) struct Wakeups {
    queue: SegQueue<Waker>,
    /// The reactor's spinner runs, watching `queue`: senders need not ring.
    watching: AtomicBool,
    /// The doorbell was rung and the reactor has not answered yet.
    rung: AtomicBool,
    /// Wakes the reactor's main future, which empties the queue when polled.
    doorbell: OnceLock<Waker>,
    /// Wakes the reactor's spinner task.
    spinner: OnceLock<Waker>,
    /// The spinner gave up since the reactor last ran out of work.
    rested: AtomicBool,
    /// When a sender first rang the doorbell since the spinner last gave up
    /// ([`monotonic_nanos`]; zero: none has): how long after the last wake-up it saw the
    /// spinner would have had to keep going to catch the next.
    rang_at: AtomicU64,
}

/// A reactor's spinner: a task that, while its reactor has had wake-ups from other threads
/// lately, runs again after whatever else is ready, each time waking what the queue holds.
/// Other threads need not ring a reactor whose spinner runs, and the reactor never parks (and
/// so never turns its driver) between two hand-offs. It gives up after its budget passes
/// without a wake-up; the reactor starts it again the next time it runs out of work.
///
/// The budget adapts, so that spinning is paid for only where it saves a park: it starts at
/// `spin` (the most), goes back to `spin` when, once it gave up, another thread rang for a
/// wake-up within `spin` after the last one (the whole spin would have caught it), and halves,
/// down to a sixteenth of `spin`, when nothing came within `spin`. Hand-offs that follow each other
/// closely keep the spinner going whatever its budget; a reactor whose wake-ups come further
/// apart than `spin` (a request every millisecond, a timer) spins a sixteenth of `spin` each
/// time it runs out of work, where a fixed spin would burn all of it.
///
/// A reply is the one wake-up a reactor knows is coming: while one of its tasks waits for a
/// reply it asked for (an [`AwaitedReply`] lives), the spinner keeps going up to its budget
/// for replies, whatever its other budget, so a request answered within the spin costs its
/// requester no park; once the reply is in, the other budget applies again, so the reactor
/// does not spin on after it for longer than its traffic pays for. A request waits so at
/// most once: when the spinner gives up, the replies awaited until then no longer count. The
/// budget for replies adapts like the other one, by what came after the spinner gave up
/// with a reply still awaited: whole again when a wake-up came within `spin` of the last one
/// (or was caught while a reply was awaited), halved, down to a sixteenth, when none did. A
/// reactor whose requests go to something slow (another node, a database behind a worker)
/// does not burn a whole spin for each.
pub(crate) struct Spinner {
    wakeups: Arc<Wakeups>,
    /// The longest budget (`Builder::spin_before_park`).
    spin: Duration,
    /// How long it spins now without a wake-up before it gives up.
    budget: Duration,
    /// How long it spins without a wake-up while a reply is awaited.
    for_replies: Duration,
    /// It gave up with a reply still awaited.
    missed_reply: bool,
    /// When the queue last held a wake-up (or the spinner started).
    last: Instant,
    /// Polls since `last` was read; the clock is read every `CLOCK_EVERY` polls (each poll
    /// watches the queue for a while, see [`Wakeups::watch_briefly`]).
    turns: u32,
    active: bool,
    /// It gave up, and has not started again since: its `last` then ([`monotonic_nanos`]).
    gave_up: Option<NonZeroU64>,
}

// Every poll in a model-checking build, where a few polls must be enough to see it rest.
const CLOCK_EVERY: u32 = if cfg!(loom) { 1 } else { 2 };

/// How many times a spinner's poll looks at the queue before it lets the reactor's other work
/// run (once in a model-checking build).
const WATCH_TURNS: u32 = if cfg!(loom) { 1 } else { 16 };

/// The shortest budget is `spin` divided by this.
const SHORTEST: u32 = 16;

/// The next budget, after the spinner gave up at `budget`: `late` is how long after the last
/// wake-up it saw another thread rang for the next one (`None`: none rang before the reactor
/// ran out of work again).
fn adapt(budget: Duration, spin: Duration, late: Option<Duration>) -> Duration {
    match late {
        Some(late) if late < spin => spin,
        _ => (budget / 2).max(spin / SHORTEST),
    }
}

impl Spinner {
    pub(crate) fn new(wakeups: Arc<Wakeups>, spin: Duration) -> Self {
        Spinner {
            wakeups,
            spin,
            budget: spin,
            for_replies: spin,
            missed_reply: false,
            last: Instant::now(),
            turns: 0,
            active: false,
            gave_up: None,
        }
    }
}

impl Spinner {
    /// How long it spins without a wake-up: while a task of this reactor waits for a reply it
    /// asked for since the spinner last gave up, its budget for replies (if longer), its
    /// budget otherwise.
    fn limit(&self) -> Duration {
        if awaited::any() {
            self.for_replies.max(self.budget)
        } else {
            self.budget
        }
    }
}

impl Future for Spinner {
    type Output = ();

    #[cfg_attr(loom, allow(clippy::modulo_one))]
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = &mut *self;
        let w = &*this.wakeups;
        if w.spinner.get().is_none() {
            let _ = w.spinner.set(cx.waker().clone());
        }
        if !this.active {
            this.active = true;
            this.last = Instant::now();
            this.turns = 0;
            if let Some(gave_up) = this.gave_up.take() {
                // Whether another thread's wake-up came since it gave up, and how long after
                // the last one it saw.
                let rang = w.rang_at.swap(0, Relaxed);
                let late =
                    (rang != 0).then(|| Duration::from_nanos(rang.saturating_sub(gave_up.get())));
                this.budget = adapt(this.budget, this.spin, late);
                if std::mem::take(&mut this.missed_reply) {
                    this.for_replies = adapt(this.for_replies, this.spin, late);
                }
            }
            w.watching.store(true, SeqCst);
        }
        if w.wake_queued() > 0 || w.watch_briefly() {
            if awaited::any() {
                // Caught while a reply is on its way: the whole spin pays for replies.
                this.for_replies = this.spin;
            }
            this.last = Instant::now();
            this.turns = 0;
        } else {
            this.turns += 1;
            if this.turns % CLOCK_EVERY == 0 && this.last.elapsed() >= this.limit() {
                // Cleared before senders may ring: a ring from now on is stamped.
                w.rang_at.store(0, Relaxed);
                w.watching.store(false, SeqCst);
                fence(SeqCst);
                if w.wake_queued() == 0 {
                    this.active = false;
                    // A reply did not come within the spin: how late it comes says how long
                    // to wait for the next.
                    this.missed_reply = awaited::any();
                    awaited::gave_up();
                    this.gave_up = Some(monotonic_nanos_at(this.last));
                    w.rested.store(true, SeqCst);
                    return Poll::Pending;
                }
                // A wake-up slipped in: keep spinning.
                w.watching.store(true, SeqCst);
                this.last = Instant::now();
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Wakeups {
    /// Wakes `waker`, a task of this reactor: directly on the reactor's own thread, through
    /// the queue from any other.
    pub(crate) fn wake(&self, waker: Waker) {
        if self.is_current() {
            waker.wake();
            return;
        }
        self.queue.push(waker);
        fence(SeqCst);
        // A load first: a rung doorbell is not rung again, and its cache line is left alone.
        if !self.watching.load(SeqCst) && !self.rung.load(SeqCst) && !self.rung.swap(true, SeqCst) {
            // A system call is on its way: a clock reading is cheap beside it. The first ring
            // since the spinner gave up is the one a longer spin would have caught.
            if self.rang_at.load(Relaxed) == 0 {
                let now = monotonic_nanos().get();
                let _ = self.rang_at.compare_exchange(0, now, Relaxed, Relaxed);
            }
            // No doorbell yet means the reactor has not polled its main future: its first poll
            // hangs the doorbell, clears `rung` and then empties the queue.
            if let Some(doorbell) = self.doorbell.get() {
                doorbell.wake_by_ref();
            }
        }
    }

    /// Called by the reactor when it runs out of work, before it parks: wakes what the queue
    /// holds, and starts the spinner again unless it has just given up (then the reactor parks).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn before_park(&self) {
        self.wake_queued();
        if self.rested.swap(false, SeqCst) {
            return;
        }
        if let Some(spinner) = self.spinner.get() {
            if !self.watching.swap(true, SeqCst) {
                spinner.wake_by_ref();
            }
        }
    }

    /// Called by the reactor's main future each time it is polled: answers the doorbell (and
    /// hangs it, the first time) and wakes what the queue holds.
    pub(crate) fn answer(&self, doorbell: &Waker) {
        if self.doorbell.get().is_none() {
            let _ = self.doorbell.set(doorbell.clone());
        }
        // A swap, not a store: the same instruction on x86 (a SeqCst store is an exchange), and
        // loom (0.7) keeps it ordered against the senders' swap, where a plain store can slip
        // between the read and the write of their swap and raise a false alarm.
        let _ = self.rung.swap(false, SeqCst);
        fence(SeqCst);
        self.wake_queued();
    }

    /// Watches the queue for sixteen pause instructions (about a thousand cycles or more)
    /// without leaving the spinner's poll, and wakes
    /// what comes meanwhile: a wake-up that comes while the spinner is being polled is taken
    /// at once, not a scheduler turn later. Whether one came.
    fn watch_briefly(&self) -> bool {
        for _ in 0..WATCH_TURNS {
            std::hint::spin_loop();
            if !self.queue.is_empty() {
                return self.wake_queued() > 0;
            }
        }
        false
    }

    /// Wakes what the queue holds; how many.
    fn wake_queued(&self) -> usize {
        let mut n = 0;
        while let Some(waker) = self.queue.pop() {
            waker.wake();
            n += 1;
        }
        n
    }

    /// Whether this thread is the reactor owning this queue.
    #[inline]
    pub(crate) fn is_current(&self) -> bool {
        // The address alone: a plain thread-local read, without the borrow of `CURRENT` (every
        // push and wake-up asks this).
        current::is(self)
    }
}

/// Wakes `waker` through `wakeups` when its task lives on a reactor, directly otherwise.
pub(crate) fn wake_on(wakeups: Option<&Wakeups>, waker: Waker) {
    match wakeups {
        Some(w) => w.wake(waker),
        None => waker.wake(),
    }
}

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn a_wake_from_another_thread_rings_once_until_answered() {
        let w = Wakeups::default();
        let (bell, doorbell) = counter();
        w.answer(&doorbell);
        let (task, waker) = counter();
        w.wake(waker.clone());
        w.wake(waker.clone());
        assert_eq!(bell.0.load(SeqCst), 1, "one ring for a batch");
        assert_eq!(task.0.load(SeqCst), 0, "the task waits for its reactor");
        w.answer(&doorbell);
        assert_eq!(task.0.load(SeqCst), 2, "answering wakes what was queued");
        w.wake(waker);
        assert_eq!(
            bell.0.load(SeqCst),
            2,
            "after an answer the next wake rings again"
        );
    }

    #[test]
    fn a_watching_reactor_is_not_rung() {
        let w = Wakeups::default();
        let (bell, doorbell) = counter();
        w.answer(&doorbell);
        let (task, waker) = counter();
        w.watching.store(true, SeqCst);
        w.wake(waker);
        assert_eq!(bell.0.load(SeqCst), 0);
        w.before_park();
        assert_eq!(
            task.0.load(SeqCst),
            1,
            "running out of work wakes what was queued"
        );
    }

    #[test]
    fn the_spinner_wakes_queued_tasks_then_rests_and_is_restarted_when_work_runs_out() {
        let (w, bell, _doorbell, mut spinner) = reactor(Duration::from_millis(1));
        let (again, spinner_waker) = counter();
        let mut cx = TaskContext::from_waker(&spinner_waker);
        assert!(Pin::new(&mut spinner).poll(&mut cx).is_pending());
        assert!(
            w.watching.load(SeqCst),
            "a running spinner watches the queue"
        );
        assert_eq!(
            again.0.load(SeqCst),
            1,
            "and comes back after what is ready"
        );
        let (task, waker) = counter();
        w.wake(waker);
        assert_eq!(bell.0.load(SeqCst), 0, "no ring while the spinner runs");
        assert!(Pin::new(&mut spinner).poll(&mut cx).is_pending());
        assert_eq!(task.0.load(SeqCst), 1);
        // Nothing more arrives: it rests once `spin` has passed.
        spin_until_it_rests(&mut spinner, &mut cx, &again);
        assert!(!w.watching.load(SeqCst));
        // Out of work right after it rested: the reactor parks.
        let woken = again.0.load(SeqCst);
        w.before_park();
        assert_eq!(again.0.load(SeqCst), woken);
        // The next time it runs out of work, the spinner starts again.
        w.before_park();
        assert_eq!(again.0.load(SeqCst), woken + 1);
        assert!(w.watching.load(SeqCst));
    }

    #[test]
    fn the_budget_is_whole_again_after_a_near_miss_and_halves_when_nothing_comes() {
        let spin = Duration::from_micros(64);
        let us = Duration::from_micros;
        assert_eq!(adapt(us(8), spin, Some(us(20))), spin);
        assert_eq!(adapt(us(48), spin, Some(us(60))), spin);
        assert_eq!(adapt(us(16), spin, None), us(8));
        assert_eq!(
            adapt(us(16), spin, Some(us(64))),
            us(8),
            "too late to catch"
        );
        assert_eq!(adapt(us(4), spin, None), us(4), "never below a sixteenth");
    }

    /// Polls `spinner` until it gives up.
    fn spin_until_it_rests(spinner: &mut Spinner, cx: &mut TaskContext<'_>, again: &Count) {
        let rested = (0..100_000_000).any(|_| {
            let before = again.0.load(SeqCst);
            let _ = Pin::new(&mut *spinner).poll(cx);
            again.0.load(SeqCst) == before
        });
        assert!(
            rested,
            "the spinner rests after its budget without wake-ups"
        );
    }

    #[test]
    fn the_spinner_spins_less_when_nothing_comes_and_more_when_it_would_have_caught_it() {
        // Long enough that a preempted test thread still rings "right away".
        let spin = Duration::from_millis(40);
        let (w, _bell, doorbell, mut spinner) = reactor(spin);
        let (again, spinner_waker) = counter();
        let mut cx = TaskContext::from_waker(&spinner_waker);
        spin_until_it_rests(&mut spinner, &mut cx, &again);
        assert_eq!(spinner.budget, spin, "it starts with the whole spin");
        // The reactor parks, wakes for something of its own and runs out of work again.
        w.before_park();
        w.before_park();
        spin_until_it_rests(&mut spinner, &mut cx, &again);
        assert_eq!(spinner.budget, spin / 2, "nothing came from another thread");
        // It parks; another thread rings for a wake-up right away.
        w.before_park();
        let (task, waker) = counter();
        w.wake(waker);
        w.answer(&doorbell);
        assert_eq!(task.0.load(SeqCst), 1);
        w.before_park();
        let _ = Pin::new(&mut spinner).poll(&mut cx);
        assert_eq!(spinner.budget, spin, "a longer spin would have caught it");
        // It gives up again; a ring comes only after twice the whole spin.
        spin_until_it_rests(&mut spinner, &mut cx, &again);
        w.before_park();
        std::thread::sleep(2 * spin);
        let (_, waker) = counter();
        w.wake(waker);
        w.answer(&doorbell);
        w.before_park();
        let _ = Pin::new(&mut spinner).poll(&mut cx);
        assert_eq!(spinner.budget, spin / 2, "no spin would have caught it");
    }

    /// A reactor's wake-up queue with its doorbell hung (and what counts its rings), and a
    /// spinner of `spin` for it.
    fn reactor(spin: Duration) -> (Arc<Wakeups>, Arc<Count>, Waker, Spinner) {
        let w = Arc::new(Wakeups::default());
        let (bell, doorbell) = counter();
        w.answer(&doorbell);
        let spinner = Spinner::new(w.clone(), spin);
        (w, bell, doorbell, spinner)
    }

    /// A reactor's spinner whose budget is at its shortest.
    fn short_spinner(spin: Duration) -> (Arc<Wakeups>, Spinner) {
        let (w, _, _, mut spinner) = reactor(spin);
        spinner.budget = spin / SHORTEST;
        (w, spinner)
    }

    #[test]
    fn an_awaited_reply_keeps_the_spinner_going_for_the_whole_spin_once() {
        let spin = Duration::from_millis(2);
        let (w, mut spinner) = short_spinner(spin);
        assert_eq!(spinner.limit(), spin / SHORTEST);
        let awaited = AwaitedReply::new();
        assert_eq!(spinner.limit(), spin, "a reply is on its way");
        drop(awaited);
        assert_eq!(spinner.limit(), spin / SHORTEST, "the reply is in");

        let (again, spinner_waker) = counter();
        let mut cx = TaskContext::from_waker(&spinner_waker);
        let awaited = AwaitedReply::new();
        let started = Instant::now();
        spin_until_it_rests(&mut spinner, &mut cx, &again);
        assert!(
            started.elapsed() >= spin,
            "it spun the whole spin for the reply"
        );
        assert_eq!(
            spinner.limit(),
            spinner.budget,
            "a reply keeps it going once: after it gave up, the budget applies"
        );
        // The reply comes late: its wait belonged to the round that ended.
        drop(awaited);
        let next = AwaitedReply::new();
        assert_eq!(spinner.limit(), spin, "a reply asked for since counts");
        drop(next);
        assert_eq!(spinner.limit(), spinner.budget);
        // It starts again with nothing rung since: the missed reply halves the budget for
        // replies.
        w.before_park();
        w.before_park();
        assert!(Pin::new(&mut spinner).poll(&mut cx).is_pending());
        let later = AwaitedReply::new();
        assert_eq!(
            spinner.limit(),
            spin / 2,
            "the last reply did not come within the spin"
        );
        drop(later);
    }

    #[test]
    fn the_budget_for_replies_is_whole_again_when_a_wake_up_comes_while_one_is_awaited() {
        let spin = Duration::from_millis(2);
        let (w, mut spinner) = short_spinner(spin);
        spinner.for_replies = spin / SHORTEST;
        let awaited = AwaitedReply::new();
        assert_eq!(spinner.limit(), spin / SHORTEST);
        let (again, spinner_waker) = counter();
        let mut cx = TaskContext::from_waker(&spinner_waker);
        assert!(Pin::new(&mut spinner).poll(&mut cx).is_pending());
        // Another thread's wake-up (the reply, say) comes while it spins.
        let (task, waker) = counter();
        std::thread::scope(|s| {
            s.spawn(|| w.wake(waker));
        });
        assert!(Pin::new(&mut spinner).poll(&mut cx).is_pending());
        assert_eq!(task.0.load(SeqCst), 1);
        assert_eq!(spinner.limit(), spin, "replies come within the spin");
        drop(awaited);
        assert_eq!(again.0.load(SeqCst), 2);
    }

    #[test]
    fn on_its_own_thread_a_wake_is_direct() {
        let w = Arc::new(Wakeups::default());
        let (task, waker) = counter();
        std::thread::spawn({
            let w = w.clone();
            move || {
                enter(w.clone());
                w.wake(waker);
            }
        })
        .join()
        .unwrap();
        assert_eq!(task.0.load(SeqCst), 1);
        assert!(w.queue.is_empty());
    }
}
