//! The queue core: a bounded, growable MPSC queue behind one lock, with batched receives.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Poll, Waker};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::signals::{Control, Signals, StopRequest};
use super::stats::InstanceStats;
use crate::loom::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use crate::loom::{Mutex, MutexGuard, Notify};
use crate::wake::{wake_on, Wakeups};

/// Why a push did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    Full,
    Closed,
}

/// Storage above this many slots is given back when the queue drains.
const KEEP_SLOTS: usize = 64;

pub(super) struct State<T> {
    pub(super) queue: VecDeque<T>,
    pub(super) closed: bool,
    pub(super) receiver: Option<Waker>,
    /// The runtime asked the instance to stop by this deadline (not yet seen by it).
    pub(super) stop: Option<StopRequest>,
    /// Control signals for the instance, seen before the next message.
    /// Made when the first signal comes (most instances never get one); boxed so that an
    /// idle mailbox's shared state keeps one pointer for it, not a whole `VecDeque`.
    #[allow(clippy::box_collection)]
    pub(super) control: Option<Box<VecDeque<Control>>>,
}

pub(super) struct Chan<T> {
    pub(super) state: Mutex<State<T>>,
    pub(super) capacity: usize,
    /// Signalled when a pop makes room while senders wait, and on close.
    pub(super) room: Notify,
    /// Senders waiting for room.
    pub(super) waiting: AtomicUsize,
    /// Messages the receiver has taken but not handled yet (they still count against the
    /// bound); written by the receiver only.
    pub(super) taken: AtomicUsize,
    /// Messages in the shared queue, written under the lock: lets the receiver skip the lock
    /// when there is nothing to take (a stale zero only sends it the slower way, through
    /// `recv`, which looks under the lock).
    pub(super) shared_len: AtomicUsize,
    /// A stop request or a control signal is waiting (written under the lock): lets the
    /// receiver hand out buffered messages without the lock while there is none.
    pub(super) signalled: AtomicBool,
    /// The instance's cancellation token, made on first use (most instances never need one).
    pub(super) token: std::sync::OnceLock<CancellationToken>,
    /// The instance's work is cancelled (its token, made or not, counts as cancelled).
    pub(super) cancelled: AtomicBool,
    /// The instance's counters.
    pub(super) stats: InstanceStats,
    /// The receiving reactor's wake-up queue: wakes from other threads go through it.
    pub(super) wake: Option<Arc<Wakeups>>,
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

impl<T> Chan<T> {
    pub(super) fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn len(&self) -> usize {
        self.lock().queue.len() + self.taken.load(Ordering::Relaxed)
    }

    fn token(&self, parent: &CancellationToken) -> &CancellationToken {
        let token = self.token.get_or_init(|| parent.child_token());
        // SeqCst with `cancel_work`: a cancel that found no token yet is seen here.
        if self.cancelled.load(Ordering::SeqCst) {
            token.cancel();
        }
        token
    }

    pub(super) fn cancel_work(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        if let Some(token) = self.token.get() {
            token.cancel();
        }
    }
}

impl<T> State<T> {
    /// The receiver waits: the next push or signal wakes `waker`.
    fn register(&mut self, waker: &Waker) {
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

/// The receiving side of a mailbox. Dropping it closes the mailbox.
///
/// It takes messages from the shared queue a batch at a time (swapping buffers under one
/// lock), so a busy receiver locks once per batch rather than once per message.
pub(crate) struct Receiver<T> {
    chan: Arc<Chan<T>>,
    pub(super) local: VecDeque<T>,
}

/// Why `try_recv` returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TryRecvError {
    Empty,
    Closed,
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
                closed: false,
                receiver: None,
                stop: None,
                control: None,
            }),
            capacity: capacity.max(1),
            room: Notify::new(),
            waiting: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
            shared_len: AtomicUsize::new(0),
            signalled: AtomicBool::new(false),
            token: std::sync::OnceLock::new(),
            cancelled: AtomicBool::new(false),
            stats: InstanceStats::default(),
            wake,
        });
        (
            Mailbox { chan: chan.clone() },
            Receiver {
                chan,
                local: VecDeque::new(),
            },
        )
    }

    /// Pushes `make()` if there is room; `make` is not called otherwise.
    fn push_now<F: FnOnce() -> T>(&self, make: F) -> Result<(), (PushError, F)> {
        let waker = {
            let mut st = self.chan.lock();
            if st.closed {
                return Err((PushError::Closed, make));
            }
            if st.queue.len() + self.chan.taken.load(Ordering::SeqCst) >= self.chan.capacity {
                return Err((PushError::Full, make));
            }
            if st.queue.capacity() == 0 {
                // Most mailboxes see one message at a time: start with one slot, not the
                // four a `VecDeque` would make (the next push grows it as usual).
                st.queue.reserve_exact(1);
            }
            st.queue.push_back(make());
            self.chan
                .shared_len
                .store(st.queue.len(), Ordering::Release);
            st.receiver.take()
        };
        if let Some(w) = waker {
            wake_on(self.chan.wake.as_deref(), w);
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
        let _waiting = Waiting::new(&self.chan.waiting);
        loop {
            // Register for a wake-up before looking, so a pop in between is not missed.
            let room = self.chan.room.notified();
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

    /// Like [`push_waiting`](Self::push_waiting) with a relative timeout; when there is room at
    /// once it reads no clock and arms no timer.
    pub(crate) async fn push_within(
        &self,
        timeout: std::time::Duration,
        make: impl FnOnce() -> T,
    ) -> Result<(), PushError> {
        self.push_or_wait(|| Some(Instant::now() + timeout), make)
            .await
    }

    /// Waits for a free slot as long as it takes, then fills it with `make()`; when there is
    /// room at once it registers no waiter.
    pub(crate) async fn push_wait(&self, make: impl FnOnce() -> T) -> Result<(), PushError> {
        self.push_or_wait(|| None, make).await
    }

    /// Pushes at once when there is room; otherwise waits until `deadline()`.
    async fn push_or_wait(
        &self,
        deadline: impl FnOnce() -> Option<Instant>,
        make: impl FnOnce() -> T,
    ) -> Result<(), PushError> {
        match self.push_now(make) {
            Ok(()) => Ok(()),
            Err((PushError::Closed, _)) => Err(PushError::Closed),
            Err((PushError::Full, make)) => self.push_waiting(deadline(), make).await,
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

impl<T> Receiver<T> {
    /// The next signal or message, signals first; waits for one. A closed mailbox with
    /// nothing queued reads as a stop due now (only the instance closes its own mailbox).
    /// A plain future holding only the receiver, so an idle instance waiting on it stays small.
    pub(crate) fn next(&mut self) -> impl std::future::Future<Output = Next<T>> + '_ {
        poll_fn(move |cx| self.poll_next(cx))
    }

    fn poll_next(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Next<T>> {
        if !self.chan.signalled.load(Ordering::Acquire) {
            if let Some(v) = self.take_local() {
                return Poll::Ready(Next::Message(v));
            }
        }
        let chan = &*self.chan;
        let mut st = chan.lock();
        if let Some(stop) = st.stop.take() {
            st.flag(chan);
            return Poll::Ready(Next::Stop(stop));
        }
        if let Some(signal) = st.control.as_mut().and_then(|c| c.pop_front()) {
            st.flag(chan);
            return Poll::Ready(Next::Control(signal));
        }
        if self.local.is_empty() && !refill(&mut self.local, chan, &mut st) {
            if st.closed {
                return Poll::Ready(Next::Stop(StopRequest::now()));
            }
            st.register(cx.waker());
            return Poll::Pending;
        }
        drop(st);
        match self.take_local() {
            Some(v) => Poll::Ready(Next::Message(v)),
            None => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    /// Waits until the runtime asks the instance to stop; returns the deadline.
    pub(crate) async fn stop_requested(&mut self) -> StopRequest {
        poll_fn(|cx| {
            let mut st = self.chan.lock();
            if let Some(stop) = st.stop.take() {
                st.flag(&self.chan);
                return Poll::Ready(stop);
            }
            st.register(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// The next message; `None` once the mailbox is closed and empty.
    #[cfg(test)]
    pub(crate) async fn recv(&mut self) -> Option<T> {
        if let Some(v) = self.take_local() {
            return Some(v);
        }
        poll_fn(|cx| {
            let mut st = self.chan.lock();
            if refill(&mut self.local, &self.chan, &mut st) {
                drop(st);
                return Poll::Ready(self.take_local());
            }
            if st.closed {
                return Poll::Ready(None);
            }
            st.register(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// The next message, if one is waiting.
    pub(crate) fn try_recv(&mut self) -> Result<T, TryRecvError> {
        if let Some(v) = self.take_local() {
            return Ok(v);
        }
        if self.chan.shared_len.load(Ordering::Acquire) == 0 {
            return Err(TryRecvError::Empty);
        }
        let mut st = self.chan.lock();
        if refill(&mut self.local, &self.chan, &mut st) {
            drop(st);
            return self.take_local().ok_or(TryRecvError::Empty);
        }
        if st.closed {
            Err(TryRecvError::Closed)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    fn take_local(&mut self) -> Option<T> {
        let v = self.local.pop_front()?;
        let left = self.local.len();
        if left > 0 {
            // Within a batch the freed slot is published with a plain store, and a sender
            // seen waiting is woken; one that starts waiting meanwhile and is not seen here is
            // seen when the batch ends, below (a sender only sleeps while slots are taken, so
            // the batch's end comes).
            self.chan.taken.store(left, Ordering::Release);
            if self.chan.waiting.load(Ordering::Relaxed) > 0 {
                self.chan.room.notify_one();
            }
            return Some(v);
        }
        // The batch's end. This store and the `waiting` read below are ordered like a
        // sender's `waiting` increment and its `taken` read (sequentially consistent on both
        // sides): either a waiting sender sees the freed slots, or this side sees the sender
        // waiting and wakes it. A SeqCst store does it in one `xchg` on x86; loom reads a
        // SeqCst store as a release store only, so its models check the equivalent fence form.
        #[cfg(not(loom))]
        self.chan.taken.store(0, Ordering::SeqCst);
        #[cfg(loom)]
        {
            self.chan.taken.store(0, Ordering::Relaxed);
            fence(Ordering::SeqCst);
        }
        if self.local.capacity() > KEEP_SLOTS {
            self.local = VecDeque::new();
        }
        if self.chan.waiting.load(Ordering::SeqCst) > 0 {
            self.chan.room.notify_one();
        }
        Some(v)
    }

    /// Cancels the instance's work (its cancellation token).
    pub(crate) fn cancel_work(&self) {
        self.chan.cancel_work();
    }

    /// The instance's counters.
    pub(crate) fn stats(&self) -> &InstanceStats {
        &self.chan.stats
    }

    /// Refuses further messages; those already queued can still be received.
    pub(crate) fn close(&mut self) {
        self.chan.lock().closed = true;
        self.chan.room.notify_waiters();
    }
}

/// Moves every queued message to the receiver's (empty) local buffer; `false` if there were
/// none. The buffers swap, so neither side allocates in steady state.
fn refill<T>(local: &mut VecDeque<T>, chan: &Chan<T>, st: &mut State<T>) -> bool {
    if st.queue.is_empty() {
        return false;
    }
    std::mem::swap(local, &mut st.queue);
    chan.shared_len.store(0, Ordering::Release);
    chan.taken.store(local.len(), Ordering::SeqCst);
    if st.queue.capacity() > KEEP_SLOTS {
        st.queue = VecDeque::new();
    }
    true
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
    }
}
