//! The reply channel of one request: a slot the handler's side fills once and the requester's
//! side awaits, with the wake-up going through the requester's reactor.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};

use crate::error::BusError;
use crate::loom::atomic::AtomicBool;
use crate::loom::{Mutex, MutexGuard};
use crate::wake::{wake_on, Wakeups};

/// The failure a handler reports to its requester.
pub(crate) type ReplyResult<R> = Result<R, BusError>;

/// The sending half of a request's reply channel (empty when nobody waits for a reply).
///
/// Dropping it without a reply tells the requester [`BusError::Closed`].
pub(crate) struct ReplyTo<R> {
    /// Taken by `send` (or by `drop`, which then reports that no reply comes). One pointer,
    /// so an envelope carries its reply channel in 8 bytes.
    slot: Option<Arc<Slot<R>>>,
}

/// The receiving half of a request's reply channel: resolves to the reply, or to `None` when
/// the replying side went away without one.
pub(crate) struct Reply<R> {
    pub(super) slot: Arc<Slot<R>>,
}

/// Where a reply waits for its requester.
pub(super) struct Slot<R> {
    state: Mutex<Exchange<R>>,
    /// The requester's reactor, when it asked from one: the reply's wake-up goes through it.
    wake: Option<Arc<Wakeups>>,
    /// The request has waited long enough to get a timer of its own (see [`Within`]).
    pub(super) armed: AtomicBool,
}

pub(super) enum Exchange<R> {
    /// No reply yet; the requester's waker once it has looked.
    Waiting(Option<Waker>),
    Sent(ReplyResult<R>),
    /// The reply was taken, or the replying side went away without one.
    Done,
}

impl<R> Slot<R> {
    pub(super) fn lock(&self) -> MutexGuard<'_, Exchange<R>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<R> ReplyTo<R> {
    /// A reply channel nobody waits on (a send, a publish).
    pub(crate) fn none() -> Self {
        ReplyTo { slot: None }
    }

    pub(crate) fn channel() -> (Self, Reply<R>) {
        let slot = Arc::new(Slot {
            state: Mutex::new(Exchange::Waiting(None)),
            wake: crate::wake::current(),
            armed: AtomicBool::new(false),
        });
        (
            ReplyTo {
                slot: Some(slot.clone()),
            },
            Reply { slot },
        )
    }

    /// Whether a requester waits for a reply.
    pub(crate) fn expected(&self) -> bool {
        self.slot.is_some()
    }

    /// A reply is expected but nobody waits for it any more: the requester dropped its request
    /// (a client that gave up) or stopped waiting at its deadline. Only this side holds the
    /// slot then; a stale read only lets one such message through to its handler.
    pub(crate) fn abandoned(&self) -> bool {
        self.slot
            .as_ref()
            .is_some_and(|s| Arc::strong_count(s) == 1)
    }

    /// Sends the reply; a requester that gave up (or none at all) is not an error.
    pub(crate) fn send(mut self, reply: ReplyResult<R>) {
        self.settle(Exchange::Sent(reply));
    }

    fn settle(&mut self, to: Exchange<R>) {
        let Some(slot) = self.slot.take() else { return };
        let waker = {
            let mut st = slot.lock();
            match &mut *st {
                Exchange::Waiting(waker) => {
                    let waker = waker.take();
                    *st = to;
                    waker
                }
                Exchange::Sent(_) | Exchange::Done => None,
            }
        };
        if let Some(waker) = waker {
            wake_on(slot.wake.as_deref(), waker);
        }
    }
}

impl<R> Drop for ReplyTo<R> {
    #[inline]
    fn drop(&mut self) {
        // Most messages expect no reply: nothing to settle, and no call.
        if self.slot.is_some() {
            self.settle(Exchange::Done);
        }
    }
}

impl<R> Future for Reply<R> {
    type Output = Option<ReplyResult<R>>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut st = self.slot.lock();
        if let Exchange::Waiting(waker) = &mut *st {
            match waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        match std::mem::replace(&mut *st, Exchange::Done) {
            Exchange::Sent(reply) => Poll::Ready(Some(reply)),
            Exchange::Waiting(_) | Exchange::Done => Poll::Ready(None),
        }
    }
}
