//! The synchronization primitives of Fluxor's lock-free protocols, imported from one place so
//! that a model-checking build swaps them for loom's.
//!
//! A normal build re-exports `std`'s atomics, mutex and `OnceLock`, tokio's `Notify` and
//! crossbeam's `ArrayQueue`. A build with `--cfg loom` (run by `cargo xtask loom`) re-exports
//! loom's atomics and mutex instead, whose every operation is a point where loom may switch
//! threads, and loom-aware stand-ins for the types whose own atomics loom cannot see: `Notify`
//! (the mailbox's senders waiting for room), `ArrayQueue` (a reactor's wake-up queue) and
//! `OnceLock` (where a reactor hangs its doorbell and its spinner's waker, and a mailbox the
//! signal its waiting senders wait on). `cell::UnsafeCell`
//! (the mailbox's lane) is loom's in a model build, which fails a model where two threads
//! reach its contents at once, and a thin wrapper of `std`'s otherwise. The models
//! themselves live beside the code they check, in `loom_tests.rs` files.
//!
//! Reference counts are no part of these protocols, so `Arc` stays `std`'s (loom's cannot
//! become a trait object, which the mailbox's signals need).
//!
//! The bus registry (`bus/local.rs`) has no model: its readers and writers meet in an
//! `ArcSwap`, whose atomics and per-thread debt lists loom cannot see (loom runs its threads
//! on one OS thread, so they would even share those lists), and what is left, the writers'
//! mutex around load, copy and store, has no step inside it where loom could switch threads.

#[cfg(loom)]
mod array_queue;
#[cfg(loom)]
mod notify;
#[cfg(loom)]
mod once_lock;

#[cfg(not(loom))]
pub(crate) use std::sync::{atomic, Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use ::loom::sync::{atomic, Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use tokio::sync::Notify;

#[cfg(loom)]
pub(crate) use notify::Notify;

#[cfg(not(loom))]
pub(crate) use std::sync::OnceLock;

#[cfg(loom)]
pub(crate) use once_lock::OnceLock;

#[cfg(not(loom))]
pub(crate) use crossbeam_queue::ArrayQueue;

#[cfg(loom)]
pub(crate) use ::loom::cell;

/// `std`'s `UnsafeCell` behind loom's interface, whose model build checks that no two threads
/// reach the contents at once.
#[cfg(not(loom))]
pub(crate) mod cell {
    #[derive(Debug, Default)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }

        /// Runs `f` with a pointer to the contents.
        #[inline]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(loom)]
pub(crate) use array_queue::ArrayQueue;
