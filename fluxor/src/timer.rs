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

/// The live timers of one instance. Dropping it cancels them all. One pointer until the
/// instance sets its first timer.
#[derive(Default)]
pub(crate) struct Timers {
    set: Option<Box<TimerSet>>,
}

#[derive(Default)]
struct TimerSet {
    next: u64,
    live: HashMap<u64, JoinHandle<()>>,
    sweep_at: usize,
}

impl Timers {
    pub(crate) fn insert(&mut self, task: JoinHandle<()>) -> TimerId {
        let set = self.set.get_or_insert_with(Box::default);
        // Forget fired one-shot timers now and then, so the map stays as small as the live set.
        if set.live.len() >= set.sweep_at.max(32) {
            set.live.retain(|_, t| !t.is_finished());
            set.sweep_at = 2 * set.live.len();
        }
        set.next += 1;
        set.live.insert(set.next, task);
        TimerId(set.next)
    }

    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        let Some(set) = &mut self.set else {
            return false;
        };
        match set.live.remove(&id.0) {
            Some(t) => {
                let pending = !t.is_finished();
                t.abort();
                pending
            }
            None => false,
        }
    }

    pub(crate) fn cancel_all(&mut self) {
        if let Some(set) = &mut self.set {
            for (_, t) in set.live.drain() {
                t.abort();
            }
        }
    }
}

impl Drop for Timers {
    fn drop(&mut self) {
        self.cancel_all();
    }
}
