//! Shutdown and `run`: stopping every deployment, in reverse deploy order.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::handle::Fluxor;
use super::reports::Stopping;
use super::undeploy::StopWait;
use crate::error::{ShutdownError, ShutdownIssue};

impl Fluxor {
    /// Shuts the runtime down: refuses new deployments, undeploys every deployment in reverse
    /// deploy order (each drains its mailbox and runs `stop`, all by `deadline` from now),
    /// closes the bus and stops the reactor threads. Calling it again does nothing.
    ///
    /// # Errors
    /// A [`ShutdownError`] listing every problem met; shutdown always runs to the end.
    pub async fn shutdown(&self, deadline: Duration) -> Result<(), ShutdownError> {
        self.shutdown_then(deadline, || {}).await
    }

    /// [`shutdown`](Self::shutdown), running `before_reactors_stop` once every deployment has
    /// stopped and the worker pool has drained, just before the reactor threads are stopped.
    pub(crate) async fn shutdown_then(
        &self,
        deadline: Duration,
        before_reactors_stop: impl FnOnce(),
    ) -> Result<(), ShutdownError> {
        if self.inner.shutting_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let deadline = Instant::now() + deadline;
        let mut errors = Vec::new();
        // A deployment stays in the table, where others can still reach it, until its turn;
        // one whose deploy finishes meanwhile is stopped in another round.
        loop {
            let ids = self.lock().latest_first();
            if ids.is_empty() {
                break;
            }
            for id in ids {
                let next = self.lock().remove(id);
                let Some(deployment) = next else { continue };
                let mut wait = StopWait::begin(self, deployment, Stopping::by(deadline));
                errors.extend(
                    std::future::poll_fn(|cx| wait.poll(cx))
                        .await
                        .into_iter()
                        .map(|error| ShutdownIssue::Stop {
                            deployment: id,
                            error,
                        }),
                );
            }
        }
        self.inner.bus.close();
        self.inner.services.cancel.cancel();
        let busy = self.inner.services.workers.shutdown(deadline).await;
        if busy > 0 {
            errors.push(ShutdownIssue::WorkersBusy(busy));
        }
        before_reactors_stop();
        for r in &self.inner.reactors {
            r.signal_stop();
        }
        for r in &self.inner.reactors {
            match r
                .join_until(deadline.max(Instant::now() + Duration::from_millis(100)))
                .await
            {
                Ok(true) => {}
                Ok(false) => errors.push(ShutdownIssue::ReactorPanicked(r.index)),
                Err(()) => errors.push(ShutdownIssue::ReactorStuck {
                    reactor: r.index,
                    running: self.inner.watchdog.running(r.index),
                }),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ShutdownError { errors })
        }
    }

    /// Resolves when a deployment has failed under [`Escalation::Shutdown`](crate::Escalation::Shutdown), with the reason.
    /// [`run`](Self::run) waits for it too; programs with their own main loop can select on
    /// it and call [`shutdown`](Self::shutdown).
    pub async fn escalated(&self) -> String {
        self.inner.services.escalation.raised.cancelled().await;
        self.inner
            .services
            .escalation
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default()
    }

    /// Runs until SIGINT (Ctrl-C) or SIGTERM, or a failed deployment under
    /// [`Escalation::Shutdown`](crate::Escalation::Shutdown), then shuts down with the builder's
    /// [`shutdown_timeout`](crate::Builder::shutdown_timeout). A second signal during shutdown exits
    /// the process at once with status 130.
    ///
    /// # Errors
    /// As [`shutdown`](Self::shutdown).
    ///
    /// # Panics
    /// Must be awaited inside a tokio runtime with I/O and time enabled (e.g. `#[tokio::main]`).
    pub async fn run(&self) -> Result<(), ShutdownError> {
        tokio::select! {
            () = wait_for_signal() => {
                tracing::info!("signal received, shutting down (send it again to exit at once)");
            }
            reason = self.escalated() => {
                tracing::error!(%reason, "a deployment failed and the escalation policy is `Shutdown`: shutting down");
            }
        }
        let force = tokio::spawn(async {
            wait_for_signal().await;
            eprintln!("second signal: exiting without waiting for shutdown");
            std::process::exit(130);
        });
        let result = self.shutdown(self.inner.shutdown_timeout).await;
        force.abort();
        result
    }
}

pub(super) async fn wait_for_signal() {
    // tokio has no signal handling in a model-checking build (which runs no runtime).
    #[cfg(loom)]
    std::future::pending::<()>().await;
    #[cfg(all(unix, not(loom)))]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; waiting for Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(any(unix, loom)))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
