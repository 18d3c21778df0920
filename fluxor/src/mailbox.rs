//! The bounded mailbox of a component instance.
//!
//! A mailbox is a bounded multi-producer, single-consumer queue whose storage grows on demand:
//! an idle mailbox holds no slots, a busy one grows up to its bound (and gives large storage
//! back once drained). Senders never block a reactor: [`Mailbox::try_push`] fails at once when
//! the mailbox is full, and async senders may wait for room up to a deadline with
//! [`Mailbox::push_until`]. The message is only built once there is room, so a refused message
//! is never consumed.
//!
//! The core is a `VecDeque` behind one mutex, held only to push one item or to take the whole
//! queue (never across an `.await` or user code), with the receiver's waker stored under the
//! same lock: a push that finds a registered waker takes it and wakes the receiver after
//! unlocking, and a receiver that finds the queue empty registers its waker before unlocking,
//! so no wake-up can fall between the check and the registration. The receiver takes the whole
//! queue at once into a local buffer; messages taken but not handled still count against the
//! bound (a counter only the receiver writes; a sender may see a slot as taken a moment longer
//! than it is). A sender about to wait counts itself before its last look, and the receiver
//! checks that count after each slot it frees, both sequentially consistent, so one of them
//! always sees the other: no waiting sender misses the room. Senders waiting for room count themselves and
//! wait on a `Notify`; each pop signals one of them while any wait, and `close` signals all. Its tests below cover full, closed,
//! waiting and order; the lock makes every transition atomic, so there is no lock-free
//! protocol to model-check.
//!
//! The mailbox also carries its instance's signals ([`Signals`]): a stop request and a short,
//! bounded queue of control signals, both seen by the receiver before its next message, and the
//! instance's cancellation token, made on first use. An instance thus needs no channel besides
//! its mailbox, which keeps an idle one small.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::supervision::{Control, CONTROL_CAPACITY};
use crate::wake::{wake_on, Wakeups};

/// Counters of one component instance, updated with relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct InstanceStats {
    /// An `InstanceState` as a number.
    pub(crate) state: std::sync::atomic::AtomicU8,
    pub(crate) restarts: AtomicU64,
    /// A message is being handled.
    pub(crate) busy: std::sync::atomic::AtomicBool,
    pub(crate) handled: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) panicked: AtomicU64,
    pub(crate) rejected: AtomicU64,
}

impl InstanceStats {
    /// Counts for a counter many threads write (e.g. `rejected`, bumped by senders).
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts for a counter only the instance itself writes: a load and a store, no
    /// read-modify-write on the hot path.
    pub(crate) fn bump_own(counter: &AtomicU64) {
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

/// Why a push did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    Full,
    Closed,
}

/// Storage above this many slots is given back when the queue drains.
const KEEP_SLOTS: usize = 64;

struct State<T> {
    queue: VecDeque<T>,
    closed: bool,
    receiver: Option<Waker>,
    /// The runtime asked the instance to stop by this deadline (not yet seen by it).
    stop: Option<Instant>,
    /// Control signals for the instance, seen before the next message.
    /// Made when the first signal comes (most instances never get one); boxed so that an
    /// idle mailbox's shared state keeps one pointer for it, not a whole `VecDeque`.
    #[allow(clippy::box_collection)]
    control: Option<Box<VecDeque<Control>>>,
}

struct Chan<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    /// Signalled when a pop makes room while senders wait, and on close.
    room: Notify,
    /// Senders waiting for room.
    waiting: AtomicUsize,
    /// Messages the receiver has taken but not handled yet (they still count against the
    /// bound); written by the receiver only.
    taken: AtomicUsize,
    /// Messages in the shared queue, written under the lock: lets the receiver skip the lock
    /// when there is nothing to take (a stale zero only sends it the slower way, through
    /// `recv`, which looks under the lock).
    shared_len: AtomicUsize,
    /// A stop request or a control signal is waiting (written under the lock): lets the
    /// receiver hand out buffered messages without the lock while there is none.
    signalled: AtomicBool,
    /// The instance's cancellation token, made on first use (most instances never need one).
    token: std::sync::OnceLock<CancellationToken>,
    /// The instance's work is cancelled (its token, made or not, counts as cancelled).
    cancelled: AtomicBool,
    /// The instance's counters.
    stats: InstanceStats,
    /// The receiving reactor's wake-up queue: wakes from other threads go through it.
    wake: Option<Arc<Wakeups>>,
}

/// Counts a waiting sender until dropped (also when its future is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<T> Chan<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn len(&self) -> usize {
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

    fn cancel_work(&self) {
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

    fn flag(&self, chan: &Chan<T>) {
        chan.signalled.store(
            self.stop.is_some() || self.control.as_ref().is_some_and(|c| !c.is_empty()),
            Ordering::Release,
        );
    }
}

/// What the runtime (and an instance's supervision peers) may ask of an instance, outside its
/// message order: a signal is seen before the next message, at the latest after the current
/// batch. The mailbox carries these, so an instance needs no channel of its own for them.
pub(crate) trait Signals: Send + Sync {
    /// Asks the instance to drain and stop by `deadline` (the first request counts).
    fn stop(&self, deadline: Instant);
    /// Queues a control signal; handed back if the instance has stopped or already has
    /// `CONTROL_CAPACITY` signals waiting.
    fn control(&self, signal: Control) -> Result<(), Control>;
    /// Messages waiting in the mailbox.
    fn queued(&self) -> usize;
    /// The instance's counters.
    fn stats(&self) -> &InstanceStats;
    /// Cancels the instance's work (its cancellation token).
    fn cancel_work(&self);
    /// The mailbox itself, to be turned back into a `Mailbox` of its message type.
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync>;
}

/// The mailbox behind `signals`, if its messages are `T`s.
pub(crate) fn mailbox_of<T: Send + 'static>(signals: &Arc<dyn Signals>) -> Option<Mailbox<T>> {
    let chan = signals.clone().into_any().downcast::<Chan<T>>().ok()?;
    Some(Mailbox { chan })
}

impl std::fmt::Debug for dyn Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals")
            .field("queued", &self.queued())
            .finish()
    }
}

impl<T: Send + 'static> Signals for Chan<T> {
    fn stop(&self, deadline: Instant) {
        let waker = {
            let mut st = self.lock();
            if st.stop.is_some() {
                return;
            }
            st.stop = Some(deadline);
            st.flag(self);
            st.receiver.take()
        };
        if let Some(w) = waker {
            wake_on(self.wake.as_deref(), w);
        }
    }

    fn control(&self, signal: Control) -> Result<(), Control> {
        let waker = {
            let mut st = self.lock();
            if st.closed {
                return Err(signal);
            }
            let control = st.control.get_or_insert_with(Box::default);
            if control.len() >= CONTROL_CAPACITY {
                return Err(signal);
            }
            control.push_back(signal);
            st.flag(self);
            st.receiver.take()
        };
        if let Some(w) = waker {
            wake_on(self.wake.as_deref(), w);
        }
        Ok(())
    }

    fn queued(&self) -> usize {
        self.len()
    }

    fn cancel_work(&self) {
        Chan::cancel_work(self);
    }

    fn stats(&self) -> &InstanceStats {
        &self.stats
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

/// What the receiver gets next.
pub(crate) enum Next<T> {
    /// The runtime asked the instance to stop by this deadline.
    Stop(Instant),
    /// A control signal.
    Control(Control),
    /// A message.
    Message(T),
}

/// The sending side of a mailbox: one pointer.
pub(crate) struct Mailbox<T> {
    chan: Arc<Chan<T>>,
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
    local: VecDeque<T>,
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
    async fn push_waiting<F: FnOnce() -> T>(
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

    /// Waits for a free slot until `deadline`, then fills it with `make()`.
    ///
    /// # Cancel safety
    /// Dropping the future before it completes never calls `make`.
    pub(crate) async fn push_until(
        &self,
        deadline: Instant,
        make: impl FnOnce() -> T,
    ) -> Result<(), PushError> {
        self.push_waiting(Some(deadline), make).await
    }

    /// Like [`push_until`](Self::push_until) with a relative timeout; when there is room at
    /// once it reads no clock and arms no timer.
    pub(crate) async fn push_within(
        &self,
        timeout: std::time::Duration,
        make: impl FnOnce() -> T,
    ) -> Result<(), PushError> {
        match self.push_now(make) {
            Ok(()) => Ok(()),
            Err((PushError::Closed, _)) => Err(PushError::Closed),
            Err((PushError::Full, make)) => {
                self.push_waiting(Some(Instant::now() + timeout), make)
                    .await
            }
        }
    }

    /// Waits for a free slot as long as it takes, then fills it with `make()`.
    pub(crate) async fn push_wait(&self, make: impl FnOnce() -> T) -> Result<(), PushError> {
        self.push_waiting(None, make).await
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
        if let Some(deadline) = st.stop.take() {
            st.flag(chan);
            return Poll::Ready(Next::Stop(deadline));
        }
        if let Some(signal) = st.control.as_mut().and_then(|c| c.pop_front()) {
            st.flag(chan);
            return Poll::Ready(Next::Control(signal));
        }
        if self.local.is_empty() && !refill(&mut self.local, chan, &mut st) {
            if st.closed {
                return Poll::Ready(Next::Stop(Instant::now()));
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
    pub(crate) async fn stop_requested(&mut self) -> Instant {
        poll_fn(|cx| {
            let mut st = self.chan.lock();
            if let Some(deadline) = st.stop.take() {
                st.flag(&self.chan);
                return Poll::Ready(deadline);
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
        // SeqCst with the senders' `waiting` increment and `taken` read: either a waiting
        // sender sees the freed slot, or this side sees the sender waiting and wakes it.
        self.chan.taken.store(self.local.len(), Ordering::SeqCst);
        if self.local.is_empty() && self.local.capacity() > KEEP_SLOTS {
            self.local = VecDeque::new();
        }
        // Each freed slot wakes one waiting sender.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_mailbox_refuses_without_consuming() {
        let (mb, mut rx) = Mailbox::<u32>::bounded(2);
        assert_eq!(mb.try_push(|| 1), Ok(()));
        assert_eq!(mb.try_push(|| 2), Ok(()));
        let mut called = false;
        assert_eq!(
            mb.try_push(|| {
                called = true;
                3
            }),
            Err(PushError::Full)
        );
        assert!(!called);
        assert_eq!(mb.len(), 2);
        assert_eq!(mb.stats().rejected.load(Ordering::Relaxed), 1);
        assert_eq!(rx.try_recv().ok(), Some(1));
        assert_eq!(mb.try_push(|| 4), Ok(()));
        rx.close();
        assert_eq!(mb.try_push(|| 5), Err(PushError::Closed));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_waiting_senders_all_get_through_in_their_order() {
        let (mb, mut rx) = Mailbox::<(u32, u32)>::bounded(2);
        let mut senders = Vec::new();
        for s in 0..4u32 {
            let mb = mb.clone();
            senders.push(tokio::spawn(async move {
                for i in 0..500u32 {
                    mb.push_wait(|| (s, i)).await.unwrap();
                }
            }));
        }
        let mut next = [0u32; 4];
        for _ in 0..2000 {
            let (s, i) = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
                .await
                .expect("no sender is left waiting")
                .unwrap();
            assert_eq!(i, next[s as usize], "per-sender order");
            next[s as usize] += 1;
            assert!(mb.len() <= 2, "the bound holds");
        }
        for s in senders {
            s.await.unwrap();
        }
        assert!(rx.try_recv().is_err());
        assert_eq!(mb.stats().rejected.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn an_idle_mailbox_holds_no_slots() {
        let (mb, mut rx) = Mailbox::<[u8; 64]>::bounded(1024);
        assert_eq!(mb.chan.lock().queue.capacity(), 0);
        for _ in 0..1000 {
            mb.try_push(|| [0; 64]).unwrap();
        }
        while rx.try_recv().is_ok() {}
        assert_eq!(
            mb.chan.lock().queue.capacity(),
            0,
            "large storage is given back"
        );
        assert_eq!(rx.local.capacity(), 0);
        rx.close();
        assert_eq!(mb.try_push(|| [0; 64]), Err(PushError::Closed));
    }

    #[test]
    fn a_first_message_takes_one_slot() {
        let (mb, mut rx) = Mailbox::<[u8; 64]>::bounded(1024);
        mb.try_push(|| [1; 64]).unwrap();
        assert_eq!(mb.chan.lock().queue.capacity(), 1);
        mb.try_push(|| [2; 64]).unwrap();
        assert!(mb.chan.lock().queue.capacity() >= 2);
        assert_eq!(rx.try_recv().map(|m| m[0]), Ok(1));
        assert_eq!(rx.try_recv().map(|m| m[0]), Ok(2));
    }

    #[tokio::test]
    async fn signals_come_before_queued_messages() {
        let (mb, mut rx) = Mailbox::<u32>::bounded(8);
        let signals = mb.signals();
        mb.try_push(|| 1).unwrap();
        mb.try_push(|| 2).unwrap();
        assert!(matches!(rx.next().await, Next::Message(1)));
        signals
            .control(Control::Group {
                delay: std::time::Duration::from_millis(5),
            })
            .map_err(|_| "refused")
            .unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(1);
        signals.stop(deadline);
        signals.stop(Instant::now());
        // The stop request first (the first one counts), then the control signal, then the
        // message that was already taken into the receiver's buffer.
        assert!(matches!(rx.next().await, Next::Stop(d) if d == deadline));
        assert!(matches!(
            rx.next().await,
            Next::Control(Control::Group { .. })
        ));
        assert!(matches!(rx.next().await, Next::Message(2)));
        assert_eq!(signals.queued(), 0);
        for _ in 0..CONTROL_CAPACITY {
            assert!(signals
                .control(Control::Group {
                    delay: std::time::Duration::ZERO
                })
                .is_ok());
        }
        assert!(
            signals
                .control(Control::Group {
                    delay: std::time::Duration::ZERO
                })
                .is_err(),
            "the control queue is bounded"
        );
        rx.close();
        while let Ok(Next::Control(_)) =
            tokio::time::timeout(std::time::Duration::from_millis(10), rx.next()).await
        {}
        assert!(
            signals
                .control(Control::Group {
                    delay: std::time::Duration::ZERO
                })
                .is_err(),
            "a stopped instance takes no signals"
        );
        assert!(
            matches!(rx.next().await, Next::Stop(_)),
            "closed and empty reads as a stop"
        );
    }

    #[tokio::test]
    async fn a_stop_request_wakes_a_waiting_receiver() {
        let (mb, mut rx) = Mailbox::<u32>::bounded(8);
        let signals = mb.signals();
        let waiter = tokio::spawn(async move { matches!(rx.next().await, Next::Stop(_)) });
        tokio::task::yield_now().await;
        signals.stop(Instant::now());
        assert!(waiter.await.unwrap());
    }

    #[test]
    fn the_cancellation_token_is_made_on_demand_and_honours_an_earlier_cancel() {
        let root = CancellationToken::new();
        let (mb, rx) = Mailbox::<u32>::bounded(8);
        assert!(mb.chan.token.get().is_none(), "no token until asked for");
        let token = mb.cancellation(&root).clone();
        assert!(!token.is_cancelled());
        rx.cancel_work();
        assert!(token.is_cancelled());

        let (mb, rx) = Mailbox::<u32>::bounded(8);
        rx.cancel_work();
        assert!(
            mb.cancellation(&root).is_cancelled(),
            "made after the cancel"
        );

        let (mb, _rx) = Mailbox::<u32>::bounded(8);
        let token = mb.cancellation(&root).clone();
        root.cancel();
        assert!(token.is_cancelled(), "a child of the runtime's token");
    }

    #[tokio::test(start_paused = true)]
    async fn push_until_waits_for_room_or_deadline() {
        let (mb, mut rx) = Mailbox::<u32>::bounded(1);
        mb.try_push(|| 1).unwrap();
        let deadline = Instant::now() + std::time::Duration::from_millis(50);
        assert_eq!(mb.push_until(deadline, || 2).await, Err(PushError::Full));
        let waiter = {
            let mb = mb.clone();
            tokio::spawn(async move {
                mb.push_until(Instant::now() + std::time::Duration::from_secs(1), || 3)
                    .await
            })
        };
        tokio::task::yield_now().await;
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(rx.recv().await, Some(3));
    }
}
