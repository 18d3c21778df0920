//! Liveness and readiness, computed from counters the runtime keeps anyway: no snapshot, and
//! nothing allocated but the report.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::handle::Fluxor;
use super::table::in_deploy_order;
use crate::health::{Check, Health, ReadinessCheck};
use crate::ids::DeploymentId;
use crate::util::{catch_unwind, panic_message};

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
        // Each finding with its deployment's place, sorted once the table is let go.
        let (mut failed, mut full) = (Vec::new(), Vec::new());
        for d in self.lock().iter() {
            if d.supervisor().failed.load(Ordering::Acquire) {
                failed.push((
                    d.order(),
                    format!("`{}` ({}) has failed", d.component(), d.id()),
                ));
            }
            let capacity = d.mailbox_capacity().max(1);
            for (index, instance) in d.instances().iter().enumerate() {
                let queued = instance.queued();
                if queued as f64 > thresholds.mailbox_fill * capacity as f64 {
                    full.push((
                        (d.order(), index),
                        format!(
                            "`{}` instance {index}: {queued} of {capacity} queued",
                            d.component()
                        ),
                    ));
                }
            }
        }
        let failed = in_deploy_order(failed);
        let full = in_deploy_order(full);
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
        let w = inner.services.workers.stats();
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

    /// Adds a readiness check of the program's own (a database connection, a downstream
    /// service), replacing one of the same name. [`ready`](Self::ready) runs it, with
    /// [`Thresholds::check_timeout`](crate::health::Thresholds::check_timeout) (1 s by default):
    /// one that takes longer fails as "timed out", it does not hold the probe.
    ///
    /// ```
    /// # async fn demo(runtime: fluxor::Fluxor) {
    /// runtime.add_readiness_check("database", || async {
    ///     // e.g. a `SELECT 1` on the pool
    ///     Ok::<(), String>(())
    /// });
    /// assert!(runtime.ready().await.ok);
    /// # }
    /// ```
    pub fn add_readiness_check<F, Fut>(&self, name: impl Into<String>, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.add_check(name.into(), None, check);
    }

    /// Adds a readiness check owned by deployment `owner` (removed with it), or by the program.
    pub(crate) fn add_check<F, Fut>(&self, name: String, owner: Option<DeploymentId>, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check: ReadinessCheck = Box::new(move || Box::pin(check()));
        self.inner.checks.insert(name, (owner, Arc::new(check)));
    }

    /// Removes the readiness check `name`; `false` if there was none.
    pub fn remove_readiness_check(&self, name: &str) -> bool {
        self.inner.checks.remove(name)
    }

    /// [`readiness`](Self::readiness) and then every check added with
    /// [`add_readiness_check`](Self::add_readiness_check), run at once, each bounded by
    /// [`Thresholds::check_timeout`](crate::health::Thresholds::check_timeout). What the HTTP
    /// adapter's `/ready` answers.
    ///
    /// # Panics
    /// Must be awaited inside a tokio runtime with the time driver enabled.
    pub async fn ready(&self) -> Health {
        let builtin = self.readiness();
        let checks = self
            .inner
            .checks
            .map(|name, (_, check)| (name.to_owned(), check.clone()));
        if checks.is_empty() {
            return builtin;
        }
        let timeout = self.inner.probes.check_timeout;
        let mut runs = tokio::task::JoinSet::new();
        for (index, (name, check)) in checks.into_iter().enumerate() {
            runs.spawn(async move {
                let failures = match tokio::time::timeout(timeout, catch_unwind(check())).await {
                    Ok(Ok(Ok(()))) => Vec::new(),
                    Ok(Ok(Err(reason))) => vec![reason],
                    Ok(Err(panic)) => vec![panic_message(&*panic)],
                    Err(_) => vec![format!("timed out after {timeout:?}")],
                };
                (index, Check::new(name, failures))
            });
        }
        let mut added = Vec::new();
        while let Some(done) = runs.join_next().await {
            match done {
                Ok(run) => added.push(run),
                // Panics are caught inside the task: only a runtime shutting down cancels one.
                Err(e) => added.push((usize::MAX, Check::new("checks", vec![format!("{e}")]))),
            }
        }
        added.sort_by_key(|(index, _)| *index);
        let mut all = builtin.checks;
        all.extend(added.into_iter().map(|(_, check)| check));
        Health::new(all)
    }
}
