//! Which reactor's wake-up queue belongs to the running thread.

use std::cell::RefCell;
use std::sync::Arc;

use super::Wakeups;

#[cfg(not(loom))]
thread_local! {
    /// The wake-up queue of the reactor running on this thread, if any.
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
    /// The address of `CURRENT`'s queue while `CURRENT` holds it (zero: none).
    static CURRENT_ADDR: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// loom runs its threads on one thread of the process: each needs its own slot.
#[cfg(loom)]
loom::thread_local! {
    static CURRENT: RefCell<Option<Current>> = RefCell::new(None);
    static CURRENT_ADDR: std::cell::Cell<usize> = std::cell::Cell::new(0);
}

/// The reactor's queue held by its thread; the address goes with it, so a queue made later
/// at the same address is never taken for this thread's.
struct Current(Arc<Wakeups>);

impl Drop for Current {
    fn drop(&mut self) {
        let _ = CURRENT_ADDR.try_with(|a| a.set(0));
    }
}

/// Marks this thread as the reactor owning `wakeups`.
pub(crate) fn enter(wakeups: Arc<Wakeups>) {
    let addr = Arc::as_ptr(&wakeups) as usize;
    // The one replaced (if any) clears the address first.
    CURRENT.with(|c| *c.borrow_mut() = Some(Current(wakeups)));
    CURRENT_ADDR.with(|a| a.set(addr));
}

/// Whether this thread is a reactor's.
pub(crate) fn on_reactor() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

/// The wake-up queue of the reactor running on this thread.
pub(crate) fn current() -> Option<Arc<Wakeups>> {
    CURRENT.with(|c| c.borrow().as_ref().map(|c| c.0.clone()))
}

/// Whether `wakeups` is the running thread's queue.
#[inline]
pub(super) fn is(wakeups: &Wakeups) -> bool {
    CURRENT_ADDR.with(|a| a.get() == std::ptr::from_ref(wakeups) as usize)
}
