//! The bounded mailbox of a component instance.
//!
//! A mailbox is a bounded multi-producer, single-consumer queue: `tokio::sync::mpsc`, whose
//! storage grows in blocks on demand up to its bound (an idle mailbox reserves no slots).
//! Senders never block a reactor: [`Mailbox::try_push`] fails at once when the mailbox is full,
//! and async senders may wait for capacity up to a deadline with [`Mailbox::push_until`]. The
//! message is only built once a slot is reserved, so a refused message is never consumed.
//!
//! The concurrency core is tokio's channel, which tokio model-checks with loom; this wrapper adds
//! no shared state of its own beyond relaxed statistics counters, so it has no loom model here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::wake::WakeFlag;

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

/// The sending side of a mailbox.
#[derive(Debug)]
pub(crate) struct Mailbox<T> {
    tx: mpsc::Sender<T>,
    pub(crate) stats: Arc<InstanceStats>,
    /// The receiving reactor's wake flag.
    wake: Option<Arc<WakeFlag>>,
}

impl<T> Clone for Mailbox<T> {
    fn clone(&self) -> Self {
        Mailbox {
            tx: self.tx.clone(),
            stats: self.stats.clone(),
            wake: self.wake.clone(),
        }
    }
}

impl<T> Mailbox<T> {
    /// A mailbox of `capacity` messages and its receiving side.
    #[cfg(test)]
    pub(crate) fn bounded(capacity: usize) -> (Self, mpsc::Receiver<T>) {
        Self::bounded_on(capacity, None)
    }

    /// A mailbox whose receiver runs on the reactor owning `wake`.
    pub(crate) fn bounded_on(
        capacity: usize,
        wake: Option<Arc<WakeFlag>>,
    ) -> (Self, mpsc::Receiver<T>) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            Mailbox {
                tx,
                stats: Arc::default(),
                wake,
            },
            rx,
        )
    }

    #[inline]
    fn sent(&self) {
        if let Some(w) = &self.wake {
            w.raise();
        }
    }

    /// Reserves a slot and fills it with `make()`; `make` is not called when there is no room.
    pub(crate) fn try_push(&self, make: impl FnOnce() -> T) -> Result<(), PushError> {
        match self.tx.try_reserve() {
            Ok(permit) => {
                permit.send(make());
                self.sent();
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(())) => {
                InstanceStats::bump(&self.stats.rejected);
                Err(PushError::Full)
            }
            Err(mpsc::error::TrySendError::Closed(())) => Err(PushError::Closed),
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
        match tokio::time::timeout_at(deadline, self.tx.reserve()).await {
            Ok(Ok(permit)) => {
                permit.send(make());
                self.sent();
                Ok(())
            }
            Ok(Err(_closed)) => Err(PushError::Closed),
            Err(_elapsed) => {
                InstanceStats::bump(&self.stats.rejected);
                Err(PushError::Full)
            }
        }
    }

    /// Like [`push_until`](Self::push_until) with a relative timeout; when there is room at
    /// once it reads no clock and arms no timer.
    pub(crate) async fn push_within(
        &self,
        timeout: std::time::Duration,
        make: impl FnOnce() -> T,
    ) -> Result<(), PushError> {
        match self.tx.try_reserve() {
            Ok(permit) => {
                permit.send(make());
                self.sent();
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(())) => Err(PushError::Closed),
            Err(mpsc::error::TrySendError::Full(())) => {
                self.push_until(Instant::now() + timeout, make).await
            }
        }
    }

    /// Waits for a free slot as long as it takes, then fills it with `make()`.
    pub(crate) async fn push_wait(&self, make: impl FnOnce() -> T) -> Result<(), PushError> {
        match self.tx.reserve().await {
            Ok(permit) => {
                permit.send(make());
                self.sent();
                Ok(())
            }
            Err(_closed) => Err(PushError::Closed),
        }
    }

    /// Messages waiting in the mailbox.
    pub(crate) fn len(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
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
        assert_eq!(mb.stats.rejected.load(Ordering::Relaxed), 1);
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(mb.try_push(|| 4), Ok(()));
        rx.close();
        assert_eq!(mb.try_push(|| 5), Err(PushError::Closed));
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
