//! The queue core: a bounded, growable MPSC queue behind one lock (and, for senders on the
//! receiver's thread, the lane beside it), with batched receives.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::lane::{Lane, Owner};
use super::receiver::Receiver;
use super::signals::{Control, Signals, StopRequest};
use super::stats::InstanceStats;
use crate::loom::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use crate::loom::{Mutex, MutexGuard, Notify, OnceLock};
use crate::wake::{wake_on, Wakeups};

/// Why a push did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    Full,
    Closed,
}

/// Storage above this many slots is given back when the queue drains.
pub(super) const KEEP_SLOTS: usize = 64;

pub(super) struct State<T> {
    pub(super) queue: VecDeque<T>,
    pub(super) receiver: Option<Waker>,
    /// The runtime asked the instance to stop by this deadline (not yet seen by it).
    pub(super) stop: Option<StopRequest>,
    /// Control signals for the instance, seen before the next message.
    /// Made when the first signal comes (most instances never get one); boxed so that an
    /// idle mailbox's shared state keeps one pointer for it, not a whole `VecDeque`.
    #[allow(clippy::box_collection)]
    pub(super) control: Option<Box<VecDeque<Control>>>,
}

/// The fields are laid out in this order (`repr(C)`): first what other threads' pushes write
/// (the locked state, the shared count), last what the receiver writes for every message
/// (`taken`, the counters), so the two sides do not write one cache line.
#[repr(C)]
pub(super) struct Chan<T> {
    pub(super) state: Mutex<State<T>>,
    /// Messages in the shared queue, written under the lock. Besides the bound (see
    /// `lane.rs`), it lets the receiver skip the lock when there is nothing to take (a stale
    /// zero only sends it the slower way, which looks under the lock).
    pub(super) shared_len: AtomicUsize,
    /// Senders waiting for room.
    pub(super) waiting: AtomicUsize,
    pub(super) capacity: usize,
    /// The mailbox refuses further messages. Set under the lock (so pushes there see it in
    /// order) and read without it by pushes into the lane.
    pub(super) closed: AtomicBool,
    /// `State::receiver` holds the waker the receiver registered when it last waited in
    /// `next` (set with it, cleared when a push or a signal takes it): the receiver may then
    /// wait again without the lock, as the next push or signal will take and wake that waker.
    pub(super) armed: AtomicBool,
    /// A stop request or a control signal is waiting (written under the lock): lets the
    /// receiver hand out buffered messages without the lock while there is none.
    pub(super) signalled: AtomicBool,
    /// The instance's work is cancelled (its token, made or not, counts as cancelled).
    pub(super) cancelled: AtomicBool,
    /// Messages pushed on the receiver's own thread, outside the lock; it also knows the
    /// receiving reactor's wake-up queue, through which wakes from other threads go.
    pub(super) lane: Lane<T>,
    /// What few instances need, made when first needed: see [`Extras`].
    pub(super) extras: OnceLock<Box<Extras>>,
    /// Messages the receiver's thread holds: taken by the receiver but not handled yet, or
    /// queued in the lane (both count against the bound). Written on that thread only.
    pub(super) taken: AtomicUsize,
    /// Slots counted in `taken` for the lane's next pushes and not used yet: a sender on the
    /// receiver's thread reserves several at once under the lock (see `credit_chunk`), so
    /// most of its pushes take no lock and write no shared count. Given back when the
    /// receiver's batch ends while a sender waits for room; written on the receiver's thread
    /// only.
    pub(super) credit: AtomicUsize,
    /// Slots freed since a waiting sender was last woken, within the receiver's batch: the
    /// first freed slot wakes one, and then every 16th (a woken sender takes all the room it
    /// finds; the batch's end wakes one in any case). Written on the receiver's thread only;
    /// kept here rather than in the `Receiver`, which every instance's task holds.
    pub(super) freed: AtomicUsize,
    /// The instance's counters.
    pub(super) stats: InstanceStats,
}

/// What a mailbox needs only once a sender waits for room, or someone asks for the instance's
/// cancellation token (most mailboxes never do either): one pointer in every mailbox instead
/// of 48 bytes.
pub(super) struct Extras {
    /// Signalled when a pop makes room while senders wait, and on close. Made by the first
    /// sender about to wait, before it counts itself in `Chan::waiting`: a receiver that sees
    /// a waiting sender finds it.
    pub(super) room: Notify,
    /// The instance's cancellation token, made on first use.
    pub(super) token: std::sync::OnceLock<CancellationToken>,
}

/// Counts a waiting sender until dropped (also when its future is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        // Before the sender's next look at `taken`: see `Receiver::take_local`.
        fence(Ordering::SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How many slots a sender on the receiver's thread reserves at once: a 32nd of the bound, so
/// other threads' pushes may find at most that many slots reserved and not yet used (a small
/// mailbox reserves one at a time). Model builds reserve the whole bound, so that their small
/// mailboxes go through the reservation.
const fn credit_chunk(capacity: usize) -> usize {
    if cfg!(loom) {
        capacity
    } else if capacity >= 64 {
        capacity / 32
    } else {
        1
    }
}

impl<T> Chan<T> {
    pub(super) fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the receiver's waker, to wake it after unlocking.
    pub(super) fn take_receiver(&self, st: &mut State<T>) -> Option<Waker> {
        self.armed.store(false, Ordering::Relaxed);
        st.receiver.take()
    }

    /// The receiving reactor's wake-up queue.
    pub(super) fn wakeups(&self) -> Option<&Wakeups> {
        self.lane.wakeups()
    }

    /// Pushes `make()` into the lane if there is room.
    fn push_lane<F: FnOnce() -> T>(
        &self,
        lane: Owner<'_, T>,
        make: F,
    ) -> Result<(), (PushError, F)> {
        if self.closed.load(Ordering::Acquire) {
            return Err((PushError::Closed, make));
        }
        // Only this thread writes `taken` and `credit`.
        let mut credit = self.credit.load(Ordering::Relaxed);
        if credit == 0 {
            // Slots are reserved under the lock, where the other threads' pushes count them.
            let st = self.lock();
            if self.closed.load(Ordering::Relaxed) {
                return Err((PushError::Closed, make));
            }
            let owned = self.taken.load(Ordering::Relaxed);
            let free = self.capacity.saturating_sub(st.queue.len() + owned);
            if free == 0 {
                return Err((PushError::Full, make));
            }
            credit = free.min(credit_chunk(self.capacity));
            self.taken.store(owned + credit, Ordering::Relaxed);
        }
        self.credit.store(credit - 1, Ordering::Relaxed);
        lane.push(make());
        Ok(())
    }

    /// Gives back the slots reserved for the lane and not used (when the receiver's batch
    /// ends while a sender waits for room); returns how many.
    pub(super) fn return_credit(&self) -> usize {
        let credit = self.credit.load(Ordering::Relaxed);
        if credit > 0 {
            self.credit.store(0, Ordering::Relaxed);
        }
        credit
    }

    pub(super) fn len(&self) -> usize {
        let owned = self
            .taken
            .load(Ordering::Relaxed)
            .saturating_sub(self.credit.load(Ordering::Relaxed));
        self.lock().queue.len() + owned
    }

    /// The mailbox's [`Extras`], made now if they were not.
    pub(super) fn extras(&self) -> &Extras {
        self.extras.get_or_init(|| {
            Box::new(Extras {
                room: Notify::new(),
                token: std::sync::OnceLock::new(),
            })
        })
    }

    /// The waiting senders' signal, if a sender ever waited (or anyone asked for the token).
    pub(super) fn room(&self) -> Option<&Notify> {
        self.extras.get().map(|extras| &extras.room)
    }

    fn token(&self, parent: &CancellationToken) -> &CancellationToken {
        let token = self.extras().token.get_or_init(|| parent.child_token());
        // Between making the token and looking at `cancelled`, as `cancel_work` has one between
        // setting `cancelled` and looking for the token: at least one side sees the other, so
        // a cancel that found no token yet is seen here.
        fence(Ordering::SeqCst);
        if self.cancelled.load(Ordering::SeqCst) {
            token.cancel();
        }
        token
    }

    pub(super) fn cancel_work(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if let Some(token) = self.extras.get().and_then(|extras| extras.token.get()) {
            token.cancel();
        }
    }
}

impl<T> State<T> {
    /// The receiver waits: the next push or signal wakes `waker`.
    pub(super) fn register(&mut self, waker: &Waker) {
        match &self.receiver {
            Some(w) if w.will_wake(waker) => {}
            _ => self.receiver = Some(waker.clone()),
        }
    }

    pub(super) fn flag(&self, chan: &Chan<T>) {
        chan.signalled.store(
            self.stop.is_some() || self.control.as_ref().is_some_and(|c| !c.is_empty()),
            Ordering::Release,
        );
    }
}

/// What the receiver gets next.
pub(crate) enum Next<T> {
    /// The runtime asked the instance to stop by this deadline.
    Stop(StopRequest),
    /// A control signal.
    Control(Control),
    /// A message.
    Message(T),
}

/// The sending side of a mailbox: one pointer.
pub(crate) struct Mailbox<T> {
    pub(super) chan: Arc<Chan<T>>,
}

impl<T> std::fmt::Debug for Mailbox<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("len", &self.len())
            .field("capacity", &self.chan.capacity)
            .finish()
    }
}

impl<T> Clone for Mailbox<T> {
    fn clone(&self) -> Self {
        Mailbox {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Mailbox<T> {
    /// A mailbox of `capacity` messages and its receiving side.
    #[cfg(test)]
    pub(crate) fn bounded(capacity: usize) -> (Self, Receiver<T>) {
        Self::bounded_on(capacity, None)
    }

    /// A mailbox whose receiver runs on the reactor owning `wake`.
    pub(crate) fn bounded_on(capacity: usize, wake: Option<Arc<Wakeups>>) -> (Self, Receiver<T>) {
        let chan = Arc::new(Chan {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                receiver: None,
                stop: None,
                control: None,
            }),
            capacity: capacity.max(1),
            waiting: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
            shared_len: AtomicUsize::new(0),
            credit: AtomicUsize::new(0),
            freed: AtomicUsize::new(0),
            lane: Lane::new(wake),
            closed: AtomicBool::new(false),
            armed: AtomicBool::new(false),
            signalled: AtomicBool::new(false),
            extras: OnceLock::default(),
            cancelled: AtomicBool::new(false),
            stats: InstanceStats::default(),
        });
        (
            Mailbox { chan: chan.clone() },
            Receiver {
                chan,
                local: VecDeque::new(),
            },
        )
    }

    /// Pushes `make()` if there is room, uncounted; `make` is not called otherwise and is
    /// handed back with the refusal (for a sender that then waits with
    /// [`push_waiting`](Self::push_waiting)). On the receiver's own thread the message goes
    /// into the lane while the shared queue is empty, otherwise into the shared queue.
    pub(crate) fn push_now<F: FnOnce() -> T>(&self, make: F) -> Result<(), (PushError, F)> {
        let chan = &*self.chan;
        if let Some(lane) = chan.lane.owner() {
            // Only while the shared queue is empty, which keeps the order (see `lane.rs`).
            if chan.shared_len.load(Ordering::Relaxed) == 0 {
                return chan.push_lane(lane, make);
            }
        }
        let waker = {
            let mut st = chan.lock();
            if chan.closed.load(Ordering::Relaxed) {
                return Err((PushError::Closed, make));
            }
            if st.queue.len() + chan.taken.load(Ordering::SeqCst) >= chan.capacity {
                return Err((PushError::Full, make));
            }
            if st.queue.capacity() == 0 {
                // Most mailboxes see one message at a time: start with one slot, not the
                // four a `VecDeque` would make (the next push grows it as usual).
                st.queue.reserve_exact(1);
            }
            st.queue.push_back(make());
            chan.shared_len.store(st.queue.len(), Ordering::Release);
            chan.take_receiver(&mut st)
        };
        if let Some(w) = waker {
            wake_on(chan.wakeups(), w);
        }
        Ok(())
    }

    /// Tells this mailbox from every other live one: the address of its shared state.
    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.chan) as *const () as usize
    }

    /// Like [`try_push`](Self::try_push), but a refusal is not counted: for a sender that may
    /// still find room elsewhere, and counts the message once if it does not.
    pub(crate) fn try_push_uncounted(&self, make: impl FnOnce() -> T) -> Result<(), PushError> {
        self.push_now(make).map_err(|(e, _)| e)
    }

    /// Counts one message refused by this mailbox.
    pub(crate) fn count_refusal(&self) {
        InstanceStats::bump(&self.chan.stats.rejected);
    }

    /// Pushes `make()` if there is room; `make` is not called when there is none.
    pub(crate) fn try_push(&self, make: impl FnOnce() -> T) -> Result<(), PushError> {
        match self.push_now(make) {
            Ok(()) => Ok(()),
            Err((PushError::Full, _)) => {
                InstanceStats::bump(&self.chan.stats.rejected);
                Err(PushError::Full)
            }
            Err((e, _)) => Err(e),
        }
    }

    /// Waits for room until `deadline` (forever with `None`), then pushes `make()`.
    ///
    /// # Cancel safety
    /// Dropping the future before it completes never calls `make`.
    pub(crate) async fn push_waiting<F: FnOnce() -> T>(
        &self,
        deadline: Option<Instant>,
        make: F,
    ) -> Result<(), PushError> {
        let mut make = make;
        // Made before this sender counts itself: a receiver that sees it waiting finds it.
        let signal = &self.chan.extras().room;
        let _waiting = Waiting::new(&self.chan.waiting);
        loop {
            // Register for a wake-up before looking, so a pop in between is not missed.
            let room = signal.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.push_now(make) {
                Ok(()) => return Ok(()),
                Err((PushError::Closed, _)) => return Err(PushError::Closed),
                Err((PushError::Full, back)) => make = back,
            }
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, room).await.is_err() {
                        InstanceStats::bump(&self.chan.stats.rejected);
                        return Err(PushError::Full);
                    }
                }
                None => room.await,
            }
        }
    }

    /// Waits for a free slot as long as it takes, then fills it with `make()`; when there is
    /// room at once it registers no waiter.
    pub(crate) async fn push_wait(&self, make: impl FnOnce() -> T) -> Result<(), PushError> {
        match self.push_now(make) {
            Ok(()) => Ok(()),
            Err((PushError::Closed, _)) => Err(PushError::Closed),
            Err((PushError::Full, make)) => self.push_waiting(None, make).await,
        }
    }

    /// Messages waiting in the mailbox.
    pub(crate) fn len(&self) -> usize {
        self.chan.len()
    }

    /// The instance's counters.
    #[cfg(test)]
    pub(crate) fn stats(&self) -> &InstanceStats {
        &self.chan.stats
    }

    /// The instance's cancellation token (a child of `parent`), made on first use.
    pub(crate) fn cancellation(&self, parent: &CancellationToken) -> &CancellationToken {
        self.chan.token(parent)
    }

    /// The mailbox as the carrier of its instance's signals.
    pub(crate) fn signals(&self) -> Arc<dyn Signals>
    where
        T: Send + 'static,
    {
        self.chan.clone()
    }
}
