//! Request timing: a reply awaited with a deadline, and the timers only requests that wait
//! get.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use super::reply::{Exchange, Reply, ReplyResult, Slot};
use crate::wake::AwaitedReply;

impl<R: 'static> Reply<R> {
    /// The reply, or `Err(Elapsed)` once `after` has passed.
    pub(crate) fn within(self, after: Duration) -> Within<R> {
        Within {
            deadline: tokio::time::Instant::now() + after,
            // A timeout about as short as the sweep's period gets its timer at once.
            stage: if after < 2 * TIMER_AFTER {
                Stage::Timer
            } else {
                Stage::Fresh
            },
            reply: self,
            sleep: None,
            awaited: None,
        }
    }
}

/// How long a request on a reactor waits before it gets a timer of its own.
///
/// Most requests are answered within microseconds; registering a tokio timer for each and
/// removing it again was about a fifth of a same-reactor ask. So a request made on a reactor
/// first joins that reactor's list of untimed requests; a sweep every `TIMER_AFTER` (only while
/// the list is not empty) arms those still waiting, and only they register a timer for their
/// deadline. The deadline is fixed when the request is made, so the timeout is exact either
/// way.
const TIMER_AFTER: Duration = Duration::from_millis(10);

/// The request's time ran out.
pub(crate) struct Elapsed;

/// A reply with a deadline; see [`TIMER_AFTER`].
pub(crate) struct Within<R> {
    reply: Reply<R>,
    deadline: tokio::time::Instant,
    stage: Stage,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Keeps this reactor's spinner going while the reply is on its way (until it is in, or
    /// this wait is dropped).
    awaited: Option<AwaitedReply>,
}

enum Stage {
    /// Not polled yet.
    Fresh,
    /// On its reactor's untimed list, without a timer until the sweep arms it.
    Untimed,
    /// Waits with a timer for its deadline.
    Timer,
}

impl<R: 'static> Future for Within<R> {
    type Output = Result<Option<ReplyResult<R>>, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(reply) = Pin::new(&mut this.reply).poll(cx) {
            this.awaited = None;
            return Poll::Ready(Ok(reply));
        }
        match this.stage {
            Stage::Fresh => {
                this.awaited = Some(AwaitedReply::new());
                let slot: Weak<dyn Arm> = Arc::downgrade(&this.reply.slot) as Weak<dyn Arm>;
                if untimed::join(slot) {
                    this.stage = Stage::Untimed;
                    return Poll::Pending;
                }
                this.stage = Stage::Timer;
            }
            // Woken before the sweep reached it.
            Stage::Untimed if !this.reply.slot.armed.load(Ordering::Acquire) => {
                return Poll::Pending;
            }
            Stage::Untimed => this.stage = Stage::Timer,
            Stage::Timer => {}
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.awaited = None;
                Poll::Ready(Err(Elapsed))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A waiting request the sweep can arm.
trait Arm {
    fn arm(&self);
}

impl<R> Arm for Slot<R> {
    fn arm(&self) {
        self.armed.store(true, Ordering::Release);
        if let Exchange::Waiting(Some(waker)) = &*self.lock() {
            waker.wake_by_ref();
        }
    }
}

/// Each reactor's requests that have no timer yet, and the sweep that arms them.
mod untimed {
    use super::{Arm, TIMER_AFTER};
    use std::cell::{Cell, RefCell};
    use std::sync::Weak;

    thread_local! {
        static UNTIMED: RefCell<Vec<Weak<dyn Arm>>> = const { RefCell::new(Vec::new()) };
        static SWEEPING: Cell<bool> = const { Cell::new(false) };
    }

    /// Adds a request to this reactor's untimed list; `false` off a reactor (the request
    /// then gets its timer at once).
    pub(super) fn join(slot: Weak<dyn Arm>) -> bool {
        if !crate::wake::on_reactor() {
            return false;
        }
        UNTIMED.with(|y| y.borrow_mut().push(slot));
        if !SWEEPING.with(|s| s.replace(true)) {
            tokio::task::spawn_local(sweep());
        }
        true
    }

    async fn sweep() {
        loop {
            tokio::time::sleep(TIMER_AFTER).await;
            let untimed = UNTIMED.with(|y| std::mem::take(&mut *y.borrow_mut()));
            for slot in untimed {
                if let Some(slot) = slot.upgrade() {
                    slot.arm();
                }
            }
            if UNTIMED.with(|y| y.borrow().is_empty()) {
                SWEEPING.with(|s| s.set(false));
                return;
            }
        }
    }
}
