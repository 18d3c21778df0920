//! The receiving side: batches taken from the lane and the shared queue, signals first.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Poll, Waker};

use super::queue::{Chan, Next, State, KEEP_SLOTS};
use super::signals::StopRequest;
use super::stats::InstanceStats;
#[cfg(loom)]
use crate::loom::atomic::fence;
use crate::loom::atomic::{AtomicUsize, Ordering};

/// Within a batch, a waiting sender is woken once per this many freed slots.
const NOTIFY_EVERY: usize = 16;

/// The receiving side of a mailbox. Dropping it closes the mailbox.
///
/// It takes messages a batch at a time: the lane's without the lock, the shared queue's by
/// swapping buffers under one lock, so a busy receiver locks once per batch at most.
pub(crate) struct Receiver<T> {
    pub(super) chan: Arc<Chan<T>>,
    pub(super) local: VecDeque<T>,
}

/// Why `try_recv` returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TryRecvError {
    Empty,
    Closed,
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
            if self.chan.shared_len.load(Ordering::Acquire) == 0 {
                // Only the lane has messages (a pipeline on one reactor): no lock.
                if self.take_lane() {
                    if let Some(v) = self.take_local() {
                        return Poll::Ready(Next::Message(v));
                    }
                }
                // Nothing queued, and no push or signal took this task's waker since it was
                // registered: the next one will take and wake it, so waiting needs no lock.
                if self.wait_unlocked(cx) {
                    return Poll::Pending;
                }
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
            if chan.closed.load(Ordering::Relaxed) {
                return Poll::Ready(Next::Stop(StopRequest::now()));
            }
            wait_for_messages(chan, &mut st, cx.waker());
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
            // Not necessarily the waker `next` waits with.
            self.chan.armed.store(false, Ordering::Relaxed);
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
            if self.chan.closed.load(Ordering::Relaxed) {
                return Poll::Ready(None);
            }
            wait_for_messages(&self.chan, &mut st, cx.waker());
            Poll::Pending
        })
        .await
    }

    /// The next message, if one is waiting.
    #[inline]
    pub(crate) fn try_recv(&mut self) -> Result<T, TryRecvError> {
        match self.take_local() {
            Some(v) => Ok(v),
            None => self.try_refill(),
        }
    }

    /// Whether no message is waiting. Those that are move into the receiver's batch, where
    /// [`try_recv`](Self::try_recv) takes them next.
    pub(crate) fn is_drained(&mut self) -> bool {
        self.local.is_empty() && !self.fill()
    }

    /// [`try_recv`](Self::try_recv) once the batch is used up: the next batch, if any.
    #[inline(never)]
    fn try_refill(&mut self) -> Result<T, TryRecvError> {
        if self.fill() {
            return self.take_local().ok_or(TryRecvError::Empty);
        }
        if self.chan.closed.load(Ordering::Relaxed) {
            Err(TryRecvError::Closed)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Moves the waiting messages into the (empty) batch: the lane's alone while the shared
    /// queue is empty, without its lock; whether there were any.
    fn fill(&mut self) -> bool {
        if self.chan.shared_len.load(Ordering::Acquire) == 0 {
            return self.take_lane();
        }
        let mut st = self.chan.lock();
        refill(&mut self.local, &self.chan, &mut st)
    }

    /// The next message of the receiver's batch, with the bookkeeping of a freed slot. The
    /// message is taken last, so that it goes straight to where the caller wants it (a copy
    /// kept across the bookkeeping made the next read of it wait for the copy).
    #[inline]
    fn take_local(&mut self) -> Option<T> {
        match self.local.len() {
            0 => None,
            1 => self.take_last(),
            _ => {
                // Within a batch the freed slot is published with a plain store, and a sender
                // seen waiting is woken (not for every slot: see `Chan::freed`); one that
                // starts waiting meanwhile and is not seen here is seen when the batch ends,
                // in `take_last` (a sender only sleeps while slots are taken, so the batch's
                // end comes). Only this thread writes `taken` (the lane's pushes run on it
                // too).
                let chan = &*self.chan;
                let owned = chan.taken.load(Ordering::Relaxed) - 1;
                chan.taken.store(owned, Ordering::Release);
                if chan.waiting.load(Ordering::Relaxed) > 0 {
                    chan.freed_for_waiting();
                }
                self.local.pop_front()
            }
        }
    }

    /// The batch's last message (see [`take_local`](Self::take_local)).
    #[inline(never)]
    fn take_last(&mut self) -> Option<T> {
        let chan = &*self.chan;
        let owned = chan.taken.load(Ordering::Relaxed) - 1;
        // The batch's end. This store and the `waiting` read below are ordered like a
        // sender's `waiting` increment and its `taken` read (sequentially consistent on both
        // sides): either a waiting sender sees the freed slots, or this side sees the sender
        // waiting and wakes it.
        publish(&chan.taken, owned);
        chan.freed.store(0, Ordering::Relaxed);
        if chan.waiting.load(Ordering::SeqCst) > 0 {
            // Slots reserved for the lane and not used go back to the waiting senders (one
            // that starts waiting after this look finds them at the next batch's end: it only
            // waits while the mailbox holds messages besides them).
            let spare = chan.return_credit();
            if spare > 0 {
                chan.taken.store(owned - spare, Ordering::Release);
            }
            if let Some(room) = chan.room() {
                room.notify_one();
            }
        }
        if self.local.capacity() > KEEP_SLOTS {
            let last = self.local.pop_front();
            self.local = VecDeque::new();
            return last;
        }
        self.local.pop_front()
    }

    /// Waits without the lock if it may (see `Chan::armed`): on the owner thread, the mailbox
    /// open, and the waker the same as at the last registration.
    fn wait_unlocked(&self, cx: &std::task::Context<'_>) -> bool {
        let chan = &*self.chan;
        chan.armed.load(Ordering::Acquire)
            && !chan.closed.load(Ordering::Relaxed)
            && chan.lane.owner().is_some_and(|lane| lane.rearm(cx.waker()))
    }

    /// Takes the lane's messages as the next batch, without the lock; `false` if there are
    /// none or this is not the owner thread. They were counted in `taken` when pushed.
    fn take_lane(&mut self) -> bool {
        self.chan
            .lane
            .owner()
            .is_some_and(|lane| lane.take_into(&mut self.local))
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
        {
            let _st = self.chan.lock();
            self.chan.closed.store(true, Ordering::Release);
        }
        if let Some(room) = self.chan.room() {
            room.notify_waiters();
        }
    }
}

impl<T> Chan<T> {
    /// A slot was freed within a batch while a sender waits: the first such slot wakes one,
    /// and then every [`NOTIFY_EVERY`]th.
    fn freed_for_waiting(&self) {
        let freed = self.freed.load(Ordering::Relaxed);
        if freed == 0 {
            let Some(room) = self.room() else {
                // The waiting sender's signal is not visible here yet: the next freed slot
                // tries again (and the batch's end wakes one in any case).
                return;
            };
            room.notify_one();
        }
        self.freed
            .store((freed + 1) % NOTIFY_EVERY, Ordering::Relaxed);
    }
}

/// Moves every queued message to the receiver's (empty) local buffer: on the owner thread
/// the lane's first (which keeps the order: see `lane.rs`), then the shared queue's; `false`
/// if there were none. Buffers swap where they can, so neither side allocates in steady state.
fn refill<T>(local: &mut VecDeque<T>, chan: &Chan<T>, st: &mut State<T>) -> bool {
    let lane = chan.lane.owner().is_some_and(|lane| lane.take_into(local));
    if st.queue.is_empty() {
        return lane;
    }
    let shared = st.queue.len();
    if local.is_empty() {
        std::mem::swap(local, &mut st.queue);
    } else {
        local.extend(st.queue.drain(..));
    }
    // Counted as the owner thread's before the shared count drops (a pusher reading the two
    // sees them at least once).
    let owned = chan.taken.load(Ordering::Relaxed) + shared;
    chan.taken.store(owned, Ordering::SeqCst);
    chan.shared_len.store(0, Ordering::Release);
    if st.queue.capacity() > KEEP_SLOTS {
        st.queue = VecDeque::new();
    }
    true
}

/// The receiver is about to wait for a message (under the lock): the next push or signal
/// wakes `waker`, and on the owner thread so does the lane's next push. The two hold the same
/// waker, so the receiver may wait again without the lock until a push or signal takes it
/// (`Chan::armed`).
fn wait_for_messages<T>(chan: &Chan<T>, st: &mut State<T>, waker: &Waker) {
    st.register(waker);
    chan.armed.store(true, Ordering::Relaxed);
    if let Some(lane) = chan.lane.owner() {
        lane.register(waker);
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
    }
}

/// Stores `value`, ordered before the loads that follow it (sequentially consistent): one
/// `xchg` on x86. loom reads a SeqCst store as a release store only, so its models check the
/// equivalent fence form.
#[inline]
fn publish(count: &AtomicUsize, value: usize) {
    #[cfg(not(loom))]
    count.store(value, Ordering::SeqCst);
    #[cfg(loom)]
    {
        count.store(value, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }
}
