//! Per-instance counters, kept beside the mailbox they describe.

use std::sync::atomic::{AtomicU64, Ordering};

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
    /// Requests skipped because their requester had gone.
    pub(crate) abandoned: AtomicU64,
    /// Accepted messages dropped unhandled at a stop (deadline passed, or stopped by the
    /// supervision policy). Narrow, like `interrupted`, so both fit beside `state` and `busy`
    /// and an idle instance is no larger for them; they count once per stop and saturate.
    pub(crate) undelivered: std::sync::atomic::AtomicU32,
    /// Messages whose handler was cut at a stop deadline.
    pub(crate) interrupted: std::sync::atomic::AtomicU16,
    pub(crate) rejected: AtomicU64,
}

impl InstanceStats {
    /// Counts for a counter many threads write (e.g. `rejected`, bumped by senders).
    #[inline]
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to a narrow counter, saturating.
    pub(crate) fn add_saturating(counter: &std::sync::atomic::AtomicU32, n: usize) {
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_add(u32::try_from(n).unwrap_or(u32::MAX)))
        });
    }

    /// Counts for a counter only the instance itself writes: a load and a store, no
    /// read-modify-write on the hot path.
    #[inline]
    pub(crate) fn bump_own(counter: &AtomicU64) {
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}
