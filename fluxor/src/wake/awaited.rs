//! Replies awaited on a reactor's thread, which keep its spinner going (see
//! [`Spinner`](super::Spinner)). The count is per thread, by round: a round ends when the
//! thread's spinner gives up.

use std::cell::Cell;

/// A reply that a task on this thread waits for, counted from when it is asked for until it
/// is in (or the wait is dropped), unless the thread's spinner gives up in between; see
/// [`Spinner`](super::Spinner). Off a reactor it is counted too, and nothing reads the count.
/// A wait that ends on another thread than the one it began on (a task moved between the
/// workers of a multi-threaded runtime; a reactor's tasks stay on it) leaves the other
/// thread's count alone; its own thread forgets it when its round ends.
pub(crate) struct AwaitedReply {
    round: u32,
    /// The thread whose count has it (the address of that thread's count).
    home: usize,
}

impl AwaitedReply {
    pub(crate) fn new() -> Self {
        let (round, home) = asked();
        AwaitedReply { round, home }
    }
}

impl Drop for AwaitedReply {
    fn drop(&mut self) {
        answered(self.round, self.home);
    }
}

#[derive(Default)]
struct Awaited {
    round: Cell<u32>,
    count: Cell<u32>,
}

#[cfg(not(loom))]
thread_local! {
    static AWAITED: Awaited = const { Awaited { round: Cell::new(0), count: Cell::new(0) } };
}

#[cfg(loom)]
loom::thread_local! {
    static AWAITED: Awaited = Awaited::default();
}

/// Counts a reply asked for; returns the round it counts in and the thread's count's address.
fn asked() -> (u32, usize) {
    AWAITED.with(|a| {
        a.count.set(a.count.get().saturating_add(1));
        (a.round.get(), std::ptr::from_ref(a) as usize)
    })
}

/// A reply counted in `round` on the thread of `home` is in, or no longer awaited.
fn answered(round: u32, home: usize) {
    AWAITED.with(|a| {
        if std::ptr::from_ref(a) as usize == home && a.round.get() == round {
            a.count.set(a.count.get().saturating_sub(1));
        }
    });
}

/// Whether a reply counted in this round is still awaited.
pub(super) fn any() -> bool {
    AWAITED.with(|a| a.count.get() > 0)
}

/// The spinner gave up: the replies awaited so far no longer count.
pub(super) fn gave_up() {
    AWAITED.with(|a| {
        a.round.set(a.round.get().wrapping_add(1));
        a.count.set(0);
    });
}
