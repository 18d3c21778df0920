//! Undeploy: a deployment taken out of the table, off the bus and its health checks, its
//! instances asked to stop, and the wait for their reports, in one small future.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::time::Instant;

use super::handle::Fluxor;
use super::reports::{CountdownWait, Reports, Stopping};
use super::table::Deployment;
use crate::error::{StopError, UndeployError};
use crate::ids::DeploymentId;
use crate::wake::Wakeups;

impl Fluxor {
    /// Stops every instance of a deployment: removes its topics from the bus, lets each instance
    /// drain its mailbox until the runtime's shutdown timeout, then runs its `stop`.
    ///
    /// Nothing happens until the returned future is polled. Once it has been, the deployment is
    /// out of the table and its instances have been asked to stop: dropping the future then
    /// stops waiting for them, and they still stop by the deadline (what went wrong is not
    /// reported).
    ///
    /// # Errors
    /// [`UndeployError::Unknown`] for an id that is not live; [`UndeployError::Stop`] when the
    /// deployment was removed but draining or `stop` went wrong.
    pub fn undeploy(
        &self,
        id: DeploymentId,
    ) -> impl Future<Output = Result<(), UndeployError>> + Send + '_ {
        Undeploying::new(self, id, None)
    }

    /// [`undeploy`](Self::undeploy) with an explicit deadline for draining and `stop`.
    ///
    /// # Errors
    /// As [`undeploy`](Self::undeploy).
    pub fn undeploy_until(
        &self,
        id: DeploymentId,
        deadline: Instant,
    ) -> impl Future<Output = Result<(), UndeployError>> + Send + '_ {
        Undeploying::new(self, id, Some(deadline))
    }
}

/// The stop of a deployment out of the table: its instances asked to stop, and what the wait
/// for their reports needs. Holds the deployment until they have reported (dropping it stops
/// the instances that have not at once), and takes its waker out of the deployment's countdown
/// if dropped while waiting.
pub(super) struct StopWait {
    deployment: Deployment,
    stop: Stopping,
    /// Every instance runs on the stopper's reactor.
    nearby: bool,
    wait: CountdownWait,
}

impl StopWait {
    /// Takes `deployment` (out of the table) off the bus and its health checks, and asks its
    /// instances to stop as `stop` says: all at once, when called.
    pub(super) fn begin(runtime: &Fluxor, deployment: Deployment, stop: Stopping) -> Self {
        // Out of the table from now on: the blocked-reactor checker still names its handlers.
        let id = deployment.id();
        deployment.listing().watch.remember(deployment.label());
        if deployment.listing().bound() {
            runtime.inner.bus.unregister(id);
        }
        runtime.inner.checks.retain(|(owner, _)| *owner != Some(id));
        let nearby = deployment
            .instances()
            .iter()
            .all(|instance| instance.reactor().is_some_and(Wakeups::is_current));
        Reports::signal_stop(deployment.instances(), stop);
        StopWait {
            deployment,
            stop,
            nearby,
            wait: CountdownWait::default(),
        }
    }

    /// What went wrong, once every instance has reported or the deadline (plus the report
    /// grace) has passed.
    pub(super) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Vec<StopError>> {
        let reports = self.deployment.reports();
        let stop = self.stop;
        let all = ready!(self
            .wait
            .poll(&reports.stopped.count, cx, self.nearby, || stop.report_by()));
        let errors = reports.stop_outcome(self.deployment.instances(), all);
        tracing::debug!(component = self.deployment.component(), deployment = %self.deployment.id(), errors = errors.len(), "undeployed");
        Poll::Ready(errors)
    }
}

impl Drop for StopWait {
    fn drop(&mut self) {
        self.wait.forget(&self.deployment.reports().stopped.count);
    }
}

/// An undeploy's future: the id until its first poll, which takes the deployment out of the
/// table and asks its instances to stop; then the wait for them.
struct Undeploying<'a> {
    stage: Stage<'a>,
}

enum Stage<'a> {
    Start {
        runtime: &'a Fluxor,
        id: DeploymentId,
        /// The deadline, if the caller gave one; otherwise the runtime's shutdown timeout from
        /// the first poll.
        by: Option<Instant>,
    },
    Waiting(StopWait),
    Done,
}

impl<'a> Undeploying<'a> {
    fn new(runtime: &'a Fluxor, id: DeploymentId, by: Option<Instant>) -> Self {
        Undeploying {
            stage: Stage::Start { runtime, id, by },
        }
    }
}

impl Future for Undeploying<'_> {
    type Output = Result<(), UndeployError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Stage::Start { runtime, id, by } = this.stage {
            this.stage = Stage::Done;
            let Some(deployment) = runtime.lock().remove(id) else {
                return Poll::Ready(Err(UndeployError::Unknown(id)));
            };
            let stop = match by {
                Some(deadline) => Stopping::by(deadline),
                None => Stopping::within(runtime.inner.shutdown_timeout),
            };
            this.stage = Stage::Waiting(StopWait::begin(runtime, deployment, stop));
        }
        let Stage::Waiting(wait) = &mut this.stage else {
            panic!("an undeploy polled after it completed")
        };
        let errors = ready!(wait.poll(cx));
        let id = wait.deployment.id();
        this.stage = Stage::Done;
        Poll::Ready(if errors.is_empty() {
            Ok(())
        } else {
            Err(UndeployError::Stop { id, errors })
        })
    }
}
