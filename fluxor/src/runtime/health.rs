//! Liveness and readiness, computed from counters the runtime keeps anyway: no snapshot, and
//! nothing allocated but the report.

use std::sync::atomic::Ordering;

use super::handle::Fluxor;
use crate::health::{Check, Health};

impl Fluxor {
    /// Is every reactor turning? Fails for a reactor whose thread has ended while the runtime
    /// runs, or that one handler has held longer than
    /// [`Thresholds::stuck_after`](crate::health::Thresholds::stuck_after) (30 s by default).
    /// Cheap enough to be probed every second.
    pub fn liveness(&self) -> Health {
        let inner = &self.inner;
        let running = !inner.shutting_down.load(Ordering::Acquire);
        let mut failures = Vec::new();
        for r in &inner.reactors {
            if running && r.is_finished() {
                failures.push(format!("reactor {} has stopped", r.index));
            } else if let Some(held) = inner.watchdog.held_for(r.index) {
                if held >= inner.probes.stuck_after {
                    failures.push(format!(
                        "reactor {} is stuck: {}",
                        r.index,
                        inner
                            .watchdog
                            .running(r.index)
                            .unwrap_or_else(|| format!("a handler has held it {held:?}"))
                    ));
                }
            }
        }
        Health::new(vec![Check::new("reactors", failures)])
    }

    /// Can the service take work now? Checks, in order:
    /// * `running`: the runtime is not shutting down;
    /// * `deployments`: no deployment has failed (restart intensity exceeded);
    /// * `reactors`: no handler holds its reactor longer than the blocked-reactor threshold
    ///   ([`Builder::blocked_threshold`](crate::Builder::blocked_threshold));
    /// * `mailboxes`: no mailbox is fuller than
    ///   [`Thresholds::mailbox_fill`](crate::health::Thresholds::mailbox_fill);
    /// * `workers`: the worker queue is no fuller than
    ///   [`Thresholds::worker_queue_fill`](crate::health::Thresholds::worker_queue_fill).
    ///
    /// Cheap enough to be probed every second.
    pub fn readiness(&self) -> Health {
        let inner = &self.inner;
        let thresholds = inner.probes;
        let shutting_down = if inner.shutting_down.load(Ordering::Acquire) {
            vec!["the runtime is shutting down".to_owned()]
        } else {
            Vec::new()
        };
        let (mut failed, mut full) = (Vec::new(), Vec::new());
        for d in self.lock().iter() {
            if d.supervisor.failed.load(Ordering::Acquire) {
                failed.push(format!("`{}` ({}) has failed", d.component, d.id));
            }
            let capacity = d.mailbox_capacity.max(1);
            for (index, instance) in d.instances().iter().enumerate() {
                let queued = instance.queued();
                if queued as f64 > thresholds.mailbox_fill * capacity as f64 {
                    full.push(format!(
                        "`{}` instance {index}: {queued} of {capacity} queued",
                        d.component
                    ));
                }
            }
        }
        let blocked = inner
            .reactors
            .iter()
            .filter(|r| {
                inner
                    .watchdog
                    .held_for(r.index)
                    .is_some_and(|held| held >= inner.blocked_threshold)
            })
            .map(|r| {
                inner.watchdog.running(r.index).map_or_else(
                    || format!("reactor {} is blocked", r.index),
                    |what| format!("reactor {} is blocked: {what}", r.index),
                )
            })
            .collect();
        let w = inner.workers.stats();
        let workers = if w.queued as f64 > thresholds.worker_queue_fill * w.capacity.max(1) as f64 {
            vec![format!(
                "{} of {} worker queue slots taken",
                w.queued, w.capacity
            )]
        } else {
            Vec::new()
        };
        Health::new(vec![
            Check::new("running", shutting_down),
            Check::new("deployments", failed),
            Check::new("reactors", blocked),
            Check::new("mailboxes", full),
            Check::new("workers", workers),
        ])
    }
}
