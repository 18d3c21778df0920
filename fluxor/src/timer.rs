//! Timers owned by a component instance, delivered to it as messages on its reactor.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;
use tokio::task::JoinHandle;

/// Identifies a timer of one component instance. Returned by
/// [`Context::set_timer`](crate::Context::set_timer) and
/// [`Context::set_periodic`](crate::Context::set_periodic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TimerId(u64);

impl fmt::Display for TimerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timer-{}", self.0)
    }
}

/// The live timers of one instance. Dropping it cancels them all.
#[derive(Default)]
pub(crate) struct Timers {
    next: u64,
    live: HashMap<u64, JoinHandle<()>>,
    sweep_at: usize,
}

impl Timers {
    pub(crate) fn insert(&mut self, task: JoinHandle<()>) -> TimerId {
        // Forget fired one-shot timers now and then, so the map stays as small as the live set.
        if self.live.len() >= self.sweep_at.max(32) {
            self.live.retain(|_, t| !t.is_finished());
            self.sweep_at = 2 * self.live.len();
        }
        self.next += 1;
        self.live.insert(self.next, task);
        TimerId(self.next)
    }

    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        match self.live.remove(&id.0) {
            Some(t) => {
                let pending = !t.is_finished();
                t.abort();
                pending
            }
            None => false,
        }
    }

    pub(crate) fn cancel_all(&mut self) {
        for (_, t) in self.live.drain() {
            t.abort();
        }
    }
}

impl Drop for Timers {
    fn drop(&mut self) {
        self.cancel_all();
    }
}
