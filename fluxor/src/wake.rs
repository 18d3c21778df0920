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
//!   After a few polls without a wake-up it yields its thread at every poll: a thread the
//!   system placed on the same CPU (often the very reactor it waits for, woken by its request)
//!   runs at once instead of after the spin.
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
use crate::loom::{ArrayQueue, OnceLock};
use crate::util::{monotonic_nanos, monotonic_nanos_at};

mod awaited;
mod current;
pub(crate) use awaited::AwaitedReply;
pub(crate) use current::{current, enter, on_reactor};

/// Wake-ups a reactor's queue holds at most. One more, while it is full, goes through tokio's
/// own path (a push onto the runtime's queue for remote wake-ups and, if the reactor sleeps,
/// a system call to wake it): slower, never lost. The queue holds a task once per wake-up
/// made for it (a mailbox's receiver and a requester are each woken once per wait), so only
/// more than this many tasks woken from other threads within one of the reactor's turns fill it.
pub(crate) const WAKE_QUEUE: usize = 1024;

/// One reactor's queue of wake-ups handed to it by other threads.
#[derive(Debug)]
pub(crate) struct Wakeups {
    /// Bounded, and allocated once: an unbounded queue allocates a block on some pushes and
    /// frees it on another thread.
    queue: ArrayQueue<Waker>,
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
///
/// A spinner that has caught nothing for [`YIELD_AFTER`] polls yields its thread to the
/// system at every poll (`sched_yield`): the system may run a thread it woke on the spinner's
/// CPU, the thread this reactor waits for among them, when it could have woken an idle CPU
/// instead (a virtual machine, where waking a halted CPU is slow, does so). Without the yield
/// that thread waits until the spin gives up, and its reply waits behind its own spin in
/// turn. A yield with nothing else to run returns at once.
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
    /// When the queue last held a wake-up (or the spinner started), give or take a poll or
    /// two: see `caught`.
    last: Instant,
    /// Polls since `last` was read, or since the last wake-up; the clock is read every
    /// `CLOCK_EVERY` polls (each poll watches the queue for a while, see
    /// [`Wakeups::watch_briefly`]).
    turns: u32,
    /// A wake-up was caught since `last` was read: the next reading of the clock stands for
    /// it. A hand-off reads no clock then, only the first check after the traffic stops.
    caught: bool,
    active: bool,
    /// It gave up, and has not started again since: its `last` then ([`monotonic_nanos`]).
    gave_up: Option<NonZeroU64>,
    /// Lets another thread run on this CPU (`std::thread::yield_now`; a counter in tests).
    relax: fn(),
}

// Every poll in a model-checking build, where a few polls must be enough to see it rest.
const CLOCK_EVERY: u32 = if cfg!(loom) { 1 } else { 2 };

/// How many times a spinner's poll looks at the queue before it lets the reactor's other work
/// run (once in a model-checking build).
const WATCH_TURNS: u32 = if cfg!(loom) { 1 } else { 16 };

/// Polls without a wake-up (each watches the queue for sixteen pause instructions) after
/// which the spinner yields its thread at every poll: a few microseconds, depending on the
/// processor, so a hand-off between two busy reactors is caught before the first yield.
pub(crate) const YIELD_AFTER: u32 = 4;

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
            caught: false,
            active: false,
            gave_up: None,
            relax: relax_thread,
        }
    }
}

/// Lets the system run another thread on this CPU; nothing in a model-checking build, whose
/// threads are the checker's own.
fn relax_thread() {
    #[cfg(not(loom))]
    std::thread::yield_now();
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
            this.caught = false;
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
            this.caught = true;
            this.turns = 0;
        } else {
            this.turns += 1;
            let check = this.turns % CLOCK_EVERY == 0;
            if check && std::mem::take(&mut this.caught) {
                // The last wake-up came within the last few polls: now stands for it.
                this.last = Instant::now();
            } else if check && this.last.elapsed() >= this.limit() {
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
            if this.turns >= YIELD_AFTER {
                (this.relax)();
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Default for Wakeups {
    fn default() -> Self {
        Wakeups {
            queue: ArrayQueue::new(WAKE_QUEUE),
            watching: AtomicBool::new(false),
            rung: AtomicBool::new(false),
            doorbell: OnceLock::default(),
            spinner: OnceLock::default(),
            rested: AtomicBool::new(false),
            rang_at: AtomicU64::new(0),
        }
    }
}

impl Wakeups {
    /// Wakes `waker`, a task of this reactor: directly on the reactor's own thread, through
    /// the queue from any other (through tokio when the queue is full).
    pub(crate) fn wake(&self, waker: Waker) {
        if self.is_current() {
            waker.wake();
            return;
        }
        if let Err(waker) = self.queue.push(waker) {
            waker.wake();
            return;
        }
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
mod tests;
