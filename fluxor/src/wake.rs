//! Waking a reactor without the cost of a parked thread.
//!
//! A reactor that runs out of work would park its thread; waking a parked thread costs tens of
//! microseconds on some machines (a virtual CPU that halted must be rescheduled). So before
//! parking, a reactor spins for a short, configurable time, watching its [`WakeFlag`]; code
//! that hands it work from another thread (a mailbox push, a reply) raises the flag, and the
//! reactor goes straight back to work instead of sleeping.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Raised when work for a reactor arrives.
#[derive(Debug, Default)]
pub(crate) struct WakeFlag(AtomicBool);

impl WakeFlag {
    /// Work arrived.
    #[inline]
    pub(crate) fn raise(&self) {
        // A load first: raising a raised flag does not take the cache line away.
        if !self.0.load(Ordering::Relaxed) {
            self.0.store(true, Ordering::Release);
        }
    }

    /// Spins up to `spin`, returning as soon as the flag is raised.
    pub(crate) fn spin(&self, spin: Duration) {
        self.0.store(false, Ordering::Relaxed);
        if spin.is_zero() {
            return;
        }
        let until = Instant::now() + spin;
        loop {
            for _ in 0..64 {
                if self.0.load(Ordering::Acquire) {
                    return;
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= until {
                return;
            }
        }
    }
}

thread_local! {
    /// The flag of the reactor running on this thread, if any.
    static CURRENT: RefCell<Option<Arc<WakeFlag>>> = const { RefCell::new(None) };
}

/// Marks this thread as the reactor owning `flag`.
pub(crate) fn enter(flag: Arc<WakeFlag>) {
    CURRENT.with(|c| *c.borrow_mut() = Some(flag));
}

/// The flag of the reactor running on this thread.
pub(crate) fn current() -> Option<Arc<WakeFlag>> {
    CURRENT.with(|c| c.borrow().clone())
}
