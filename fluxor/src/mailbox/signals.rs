//! Signals to an instance outside its message order: stop requests and control signals.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::queue::{Chan, Mailbox};
use super::stats::InstanceStats;
use crate::wake::wake_on;

/// What the runtime (and an instance's supervision peers) may ask of an instance, outside its
/// message order: a signal is seen before the next message, at the latest after the current
/// batch. The mailbox carries these, so an instance needs no channel of its own for them.
pub(crate) trait Signals: Send + Sync {
    /// Asks the instance to drain and stop by the request's deadline (the first request
    /// counts).
    fn stop(&self, request: StopRequest);
    /// Queues a control signal; handed back if the instance has stopped or already has
    /// `CONTROL_CAPACITY` signals waiting.
    fn control(&self, signal: Control) -> Result<(), Control>;
    /// Messages waiting in the mailbox.
    fn queued(&self) -> usize;
    /// The most messages the mailbox holds.
    fn capacity(&self) -> usize;
    /// The instance's counters.
    fn stats(&self) -> &InstanceStats;
    /// Cancels the instance's work (its cancellation token).
    fn cancel_work(&self);
    /// The mailbox itself, to be turned back into a `Mailbox` of its message type.
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync>;
    /// The wake-up queue of the reactor the instance runs on (`None` for a mailbox made
    /// without one, in unit tests): which reactor that is, without a copy of its index.
    fn reactor(&self) -> Option<&crate::wake::Wakeups>;
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

/// A stop deadline on its way from the stopper to the instance. The two may run on different
/// clocks (a test reactor's clock is paused and jumps ahead while the stopper's runs in real
/// time), so the request carries the time left and when it was made, in real time, and the
/// instance turns it back into a deadline on its own clock. Where both clocks are real, the
/// deadline comes out as the stopper set it. Made once for all the instances a stopper stops;
/// 16 bytes, like the deadline it stands for, so a mailbox is no larger for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StopRequest {
    /// Nanoseconds left when the request was made.
    remaining: u64,
    /// When it was made: nanoseconds since the process's first stop request, plus one.
    made: NonZeroU64,
}

impl StopRequest {
    /// A request to stop by `deadline` (on the caller's clock).
    pub(crate) fn by(deadline: Instant) -> Self {
        let left = deadline.saturating_duration_since(Instant::now());
        StopRequest {
            remaining: u64::try_from(left.as_nanos()).unwrap_or(u64::MAX),
            made: crate::util::monotonic_nanos(),
        }
    }

    /// A request to stop within `left` from now: one read of the clock.
    pub(crate) fn within(left: Duration) -> Self {
        StopRequest {
            remaining: u64::try_from(left.as_nanos()).unwrap_or(u64::MAX),
            made: crate::util::monotonic_nanos(),
        }
    }

    /// A request to stop at once.
    pub(crate) fn now() -> Self {
        StopRequest {
            remaining: 0,
            made: NonZeroU64::MIN,
        }
    }

    /// The deadline on the calling thread's clock.
    pub(crate) fn deadline(self) -> Instant {
        if self.remaining == 0 {
            return Instant::now();
        }
        let passed = crate::util::monotonic_nanos()
            .get()
            .saturating_sub(self.made.get());
        Instant::now() + Duration::from_nanos(self.remaining.saturating_sub(passed))
    }
}

impl<T: Send + 'static> Signals for Chan<T> {
    fn stop(&self, request: StopRequest) {
        let waker = {
            let mut st = self.lock();
            if st.stop.is_some() {
                return;
            }
            st.stop = Some(request);
            st.flag(self);
            self.take_receiver(&mut st)
        };
        if let Some(w) = waker {
            wake_on(self.wakeups(), w);
        }
    }

    fn control(&self, signal: Control) -> Result<(), Control> {
        let waker = {
            let mut st = self.lock();
            if self.closed.load(crate::loom::atomic::Ordering::Relaxed) {
                return Err(signal);
            }
            let control = st.control.get_or_insert_with(Box::default);
            if control.len() >= CONTROL_CAPACITY {
                return Err(signal);
            }
            control.push_back(signal);
            st.flag(self);
            self.take_receiver(&mut st)
        };
        if let Some(w) = waker {
            wake_on(self.wakeups(), w);
        }
        Ok(())
    }

    fn queued(&self) -> usize {
        self.len()
    }

    fn capacity(&self) -> usize {
        self.capacity
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

    fn reactor(&self) -> Option<&crate::wake::Wakeups> {
        self.wakeups()
    }
}

/// What the runtime asks of an instance outside its message order (carried by its mailbox,
/// seen before the next message).
pub(crate) enum Control {
    /// A peer crashed under all-for-one (restart after the delay), or the deployment failed
    /// (the instance sees `Supervisor::failed`).
    Group { delay: Duration },
    /// Read the component's state between two messages (the test kit's `with_state`).
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    Inspect(Read),
}

/// A read of a component's state, given as `&dyn Any`.
pub(crate) type Read = Box<dyn FnOnce(&dyn std::any::Any) + Send>;

/// Control signals an instance may have queued; a full queue already holds a signal the
/// instance will act on, so group signals are dropped rather than waited for.
pub(crate) const CONTROL_CAPACITY: usize = 4;
