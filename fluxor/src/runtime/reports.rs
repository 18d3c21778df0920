//! How a deployment's instances report their start and their stop: latches shared by the
//! deployment, and the guard each instance holds until it has reported.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use super::shared::Shared;
use crate::component::Component;
use crate::error::StopError;
use crate::mailbox::{Signals, StopRequest};
use crate::wake::Wakeups;

/// Extra time a stopper waits, past the deadline, for an instance to report on itself.
pub(super) const REPORT_GRACE: Duration = Duration::from_millis(100);

/// A stop request for a deployment's instances, and its deadline on the stopper's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stopping {
    request: StopRequest,
    /// The deadline the stopper was given, if it was given one; otherwise the request's own.
    by: Option<Instant>,
}

impl Stopping {
    /// Stop within `left` from now (one read of the clock).
    pub(crate) fn within(left: Duration) -> Self {
        Stopping {
            request: StopRequest::within(left),
            by: None,
        }
    }

    /// Stop by `deadline`: a stopper whose deadline has passed still waits for late reports
    /// until `deadline` plus [`REPORT_GRACE`], not from now.
    pub(crate) fn by(deadline: Instant) -> Self {
        Stopping {
            request: StopRequest::by(deadline),
            by: Some(deadline),
        }
    }

    /// The deadline on the stopper's clock.
    fn deadline(self) -> Instant {
        self.by.unwrap_or_else(|| self.request.deadline())
    }

    /// When a stopper stops waiting for its instances' reports: [`REPORT_GRACE`] past the
    /// deadline.
    pub(super) fn report_by(self) -> Instant {
        self.deadline() + REPORT_GRACE
    }
}

/// Counts reports down to zero; its one waiter (the deploy, or the undeploy) is woken by the
/// last report, through its reactor's wake-up queue when it runs on one (no system call when
/// that reactor is about to look for work anyway).
#[derive(Debug, Default)]
pub(super) struct Countdown {
    remaining: std::sync::atomic::AtomicUsize,
    /// The waiter's waker and its reactor's wake-up queue, while it waits.
    waiter: std::sync::Mutex<Option<(Waker, Option<Arc<Wakeups>>)>>,
}

impl Countdown {
    pub(super) fn new(n: usize) -> Self {
        Countdown {
            remaining: std::sync::atomic::AtomicUsize::new(n),
            waiter: std::sync::Mutex::new(None),
        }
    }

    pub(super) fn count_down(&self) {
        if self
            .remaining
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            let waiter = self.waiter.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some((waker, reactor)) = waiter {
                crate::wake::wake_on(reactor.as_deref(), waker);
            }
        }
    }

    pub(super) fn is_zero(&self) -> bool {
        self.remaining.load(std::sync::atomic::Ordering::Acquire) == 0
    }

    /// Waits until the count is zero or `deadline` passes; `true` if it reached zero. One
    /// waiter at a time. `nearby`: every instance that may report has its task on the
    /// waiter's reactor.
    /// `deadline` is read only when the wait needs a timer.
    pub(super) async fn wait(&self, deadline: impl FnOnce() -> Instant, nearby: bool) -> bool {
        // A waiter that gives up (or is dropped) leaves no waker behind.
        let mut waiting = Forget {
            count: self,
            wait: CountdownWait::default(),
        };
        let mut deadline = Some(deadline);
        std::future::poll_fn(|cx| {
            waiting.wait.poll(self, cx, nearby, || {
                deadline.take().expect("a wait's deadline is read once")()
            })
        })
        .await
    }

    /// Registers the waiter's waker; `true` if the count is zero (no waker is needed).
    fn register(&self, cx: &mut std::task::Context<'_>) -> bool {
        if self.is_zero() {
            return true;
        }
        let mut waiter = self.waiter.lock().unwrap_or_else(|e| e.into_inner());
        // Looked at again under the lock: the last report takes the waker after its count,
        // so either it finds this waker or this look finds the count at zero.
        if self.is_zero() {
            return true;
        }
        match &mut *waiter {
            Some((known, _)) if known.will_wake(cx.waker()) => {}
            slot => *slot = Some((cx.waker().clone(), crate::wake::current())),
        }
        false
    }

    /// Takes the waiter's waker out (a waiter that gives up leaves none behind).
    fn forget(&self) {
        self.waiter.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Where a wait on a [`Countdown`] stands, as plain state: a future that reaches its countdown
/// through something it owns (an undeploy, through its deployment) polls it with the
/// countdown each time. Its owner takes its waker out of the countdown when it is dropped
/// ([`forget`](Self::forget)).
#[derive(Debug, Default)]
pub(super) struct CountdownWait {
    /// The one turn of the reactor given to nearby instances has been given.
    turned: bool,
    /// A waker was registered with the countdown (and may still be there).
    registered: bool,
    /// The deadline's timer, once the wait needs one. Boxed: waiting on a timer is the rare
    /// case, and every deploy and undeploy (and a handler awaiting one) would otherwise carry
    /// room for it.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl CountdownWait {
    /// Takes this wait's waker out of `count`, if it registered one (no lock otherwise).
    pub(super) fn forget(&self, count: &Countdown) {
        if self.registered {
            count.forget();
        }
    }

    /// `Ready(true)` once the count is zero, `Ready(false)` once `deadline` (read only when a
    /// timer is needed) has passed with the count above zero.
    pub(super) fn poll(
        &mut self,
        count: &Countdown,
        cx: &mut std::task::Context<'_>,
        nearby: bool,
        deadline: impl FnOnce() -> Instant,
    ) -> Poll<bool> {
        if count.is_zero() {
            // Every report is in (an instance that started at once): no timer, no waker.
            return Poll::Ready(true);
        }
        // Nearby instances get one turn of the reactor first, without a timer: those that
        // were just signalled run before this task comes back, and most report then.
        // Registering a timer and removing it again was a sixth of an undeploy's own work.
        // (Instances on other reactors are rarely that quick: their waiter gets its timer at
        // once.)
        if nearby && !std::mem::replace(&mut self.turned, true) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if count.register(cx) {
            // The count was zero: no waker was left there.
            return Poll::Ready(true);
        }
        self.registered = true;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline())));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(count.is_zero()),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A wait on a countdown that takes its waker out of the countdown when dropped.
struct Forget<'a> {
    count: &'a Countdown,
    wait: CountdownWait,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.wait.forget(self.count);
    }
}

/// Where a deployment's instances report how their start went: one counter and one wake-up
/// for the whole deployment, rather than a channel per instance.
#[derive(Debug, Default)]
pub(crate) struct StartLatch {
    /// Instances that have not reported yet.
    pub(super) count: Countdown,
    /// The first failure: instance and reason (boxed: most deployments never have one, and
    /// every deployment's shared state holds this slot).
    pub(super) failure: std::sync::Mutex<Option<Box<(usize, String)>>>,
    /// The deployment gave up (a failure or its start timeout): instances that start after
    /// this stop again at once.
    pub(super) abandoned: std::sync::atomic::AtomicBool,
}

impl StartLatch {
    /// Records instance `index`'s start; `false` if the deployment no longer wants it.
    pub(super) fn report(&self, index: usize, result: Result<(), String>) -> bool {
        if let Err(reason) = result {
            self.failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(|| Box::new((index, reason)));
        }
        self.count.count_down();
        !self.abandoned.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether an instance has reported a failed start.
    pub(super) fn has_failed(&self) -> bool {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// The deployment gives up: instances that start from now on stop again at once.
    pub(crate) fn abandon(&self) {
        self.abandoned
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Waits until every instance has reported or `deadline` passes. `Err(Some(..))` holds the
    /// first failure, `Err(None)` means some instance did not report in time.
    pub(crate) async fn wait(
        &self,
        deadline: Instant,
        nearby: bool,
    ) -> Result<(), Option<(usize, String)>> {
        let all_reported = self.count.wait(|| deadline, nearby).await;
        let failure = self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .map(|failure| *failure);
        if all_reported && failure.is_none() {
            return Ok(());
        }
        self.abandon();
        Err(failure)
    }
}

/// Where a deployment's instances report that they stopped, and what went wrong: one counter,
/// one wake-up and one bit per instance, rather than a channel per instance.
#[derive(Debug)]
pub(crate) struct StopLatch {
    /// Instances that have not reported yet.
    pub(super) count: Countdown,
    /// One bit per instance: it has reported.
    pub(super) reported: crate::util::Few<std::sync::atomic::AtomicU64>,
    /// What the instances reported going wrong, made at the first error (most stops have
    /// none; boxed so that every deployment's shared state keeps one pointer for it).
    #[allow(clippy::box_collection)]
    pub(super) errors: std::sync::Mutex<Option<Box<Vec<StopError>>>>,
}

impl StopLatch {
    pub(super) fn report(&self, index: usize, errors: Vec<StopError>) {
        if !errors.is_empty() {
            self.errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(Box::default)
                .extend(errors);
        }
        self.reported[index / 64].fetch_or(1 << (index % 64), std::sync::atomic::Ordering::AcqRel);
        self.count.count_down();
    }

    pub(super) fn has_reported(&self, index: usize) -> bool {
        self.reported[index / 64].load(std::sync::atomic::Ordering::Acquire) & (1 << (index % 64))
            != 0
    }
}

/// A deployment's start and stop reports.
#[derive(Debug)]
pub(crate) struct Reports {
    pub(super) component: &'static str,
    pub(crate) started: StartLatch,
    pub(super) stopped: StopLatch,
}

impl Reports {
    pub(crate) fn new(component: &'static str, instances: usize) -> Self {
        Reports {
            component,
            started: StartLatch {
                count: Countdown::new(instances),
                ..StartLatch::default()
            },
            stopped: StopLatch {
                count: Countdown::new(instances),
                reported: (0..instances.div_ceil(64))
                    .map(|_| std::sync::atomic::AtomicU64::new(0))
                    .collect(),
                errors: std::sync::Mutex::new(None),
            },
        }
    }

    /// Asks each instance (`peers`, by index) to drain and stop as `stop` says and collects
    /// what went wrong, ordered by instance. An instance that has not reported
    /// [`REPORT_GRACE`] after the deadline (read only if the stop has to be waited for on a
    /// timer) has its work cancelled and is reported as late. `nearby`: every instance has
    /// its task on the caller's reactor.
    pub(crate) async fn stop_all(
        &self,
        peers: &[Arc<dyn Signals>],
        stop: Stopping,
        nearby: bool,
    ) -> Vec<StopError> {
        Self::signal_stop(peers, stop);
        let all = self.stopped.count.wait(|| stop.report_by(), nearby).await;
        self.stop_outcome(peers, all)
    }

    /// Asks each instance to drain and stop as `stop` says.
    pub(super) fn signal_stop(peers: &[Arc<dyn Signals>], stop: Stopping) {
        for peer in peers {
            peer.stop(stop.request);
        }
    }

    /// What went wrong in a stop, ordered by instance, once every instance has reported
    /// (`all`) or the wait for them is over: the errors they reported, and each instance that
    /// has not reported, whose work is cancelled.
    pub(super) fn stop_outcome(&self, peers: &[Arc<dyn Signals>], all: bool) -> Vec<StopError> {
        let mut errors = self
            .stopped
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .map_or_else(Vec::new, |errors| *errors);
        if !all {
            for (instance, peer) in peers.iter().enumerate() {
                if !self.stopped.has_reported(instance) {
                    // A handler still holds the instance past the deadline: cancel its work.
                    peer.cancel_work();
                    let running = peer.stats().busy.load(std::sync::atomic::Ordering::Relaxed);
                    errors.push(StopError::DeadlineExceeded {
                        component: self.component,
                        instance,
                        undelivered: peer.queued(),
                        interrupted: usize::from(running),
                    });
                }
            }
        }
        errors.sort_by_key(StopError::instance);
        errors
    }
}

/// An instance's duty to report its start and its stop; reports that its reactor went away
/// for whatever it has not reported when dropped.
pub(crate) struct ReportGuard<O: HoldsReports> {
    /// What holds the deployment's reports: its shared state (or, in tests, the reports).
    pub(super) owner: Arc<O>,
    pub(super) index: u32,
    pub(super) start_pending: bool,
    pub(super) stop_pending: bool,
    /// How the start went (it started, the deployment still wants it), when it ran before
    /// the instance's loop (kept here, in the guard's spare bytes, rather than beside it in
    /// every instance's task).
    pub(super) started_early: Option<(bool, bool)>,
}

/// Holds a deployment's [`Reports`].
pub(crate) trait HoldsReports {
    fn reports(&self) -> &Reports;
}

impl HoldsReports for Reports {
    fn reports(&self) -> &Reports {
        self
    }
}

impl<C: Component> HoldsReports for Shared<C> {
    fn reports(&self) -> &Reports {
        &self.reports
    }
}

impl<O: HoldsReports> ReportGuard<O> {
    pub(crate) fn new(owner: Arc<O>, index: u32) -> Self {
        ReportGuard {
            owner,
            index,
            start_pending: true,
            stop_pending: true,
            started_early: None,
        }
    }

    pub(super) fn index(&self) -> usize {
        self.index as usize
    }

    /// Reports the start once; `false` if the deployment no longer wants the instance.
    pub(super) fn started(&mut self, result: Result<(), String>) -> bool {
        if !std::mem::take(&mut self.start_pending) {
            return false;
        }
        self.owner.reports().started.report(self.index(), result)
    }

    /// Reports the stop once, with what went wrong.
    pub(super) fn stopped(&mut self, errors: Vec<StopError>) {
        if std::mem::take(&mut self.stop_pending) {
            self.owner.reports().stopped.report(self.index(), errors);
        }
    }
}

impl<O: HoldsReports> Drop for ReportGuard<O> {
    fn drop(&mut self) {
        if self.start_pending {
            self.started(Err("its reactor stopped during start".into()));
        }
        if self.stop_pending {
            self.stopped(vec![StopError::ReactorLost {
                component: self.owner.reports().component,
                instance: self.index(),
            }]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Mailbox;

    fn peers(n: usize) -> Vec<Arc<dyn Signals>> {
        (0..n)
            .map(|_| Mailbox::<u64>::bounded_on(4, None).0.signals())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn stop_reports_are_collected_in_instance_order() {
        let reports = Arc::new(Reports::new("Tested", 130));
        let peers = peers(130);
        for index in (0..130).rev() {
            let mut duty = ReportGuard::new(reports.clone(), index);
            let errors = match index {
                7 | 129 => vec![StopError::Failed {
                    component: "Tested",
                    instance: index as usize,
                    reason: "stop hook failed".into(),
                }],
                _ => Vec::new(),
            };
            duty.started(Ok(()));
            duty.stopped(errors);
        }
        let started = Instant::now();
        let errors = reports
            .stop_all(&peers, Stopping::by(Instant::now()), false)
            .await;
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "no wait once all reported"
        );
        let instances: Vec<usize> = errors.iter().map(StopError::instance).collect();
        assert_eq!(instances, vec![7, 129]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_instance_and_a_late_one_are_reported() {
        let reports = Arc::new(Reports::new("Tested", 3));
        let peers = peers(3);
        // Instance 0 stops cleanly, instance 1's task is dropped (its reactor went away),
        // instance 2 never reports.
        let mut clean = ReportGuard::new(reports.clone(), 0);
        clean.started(Ok(()));
        clean.stopped(Vec::new());
        drop(ReportGuard::new(reports.clone(), 1));
        let _late = ReportGuard::new(reports.clone(), 2);
        assert_eq!(
            reports
                .started
                .wait(Instant::now() + Duration::from_secs(1), false)
                .await
                .unwrap_err()
                .map(|(i, reason)| (i, reason.contains("reactor"))),
            Some((1, true))
        );
        let deadline = Instant::now() + Duration::from_secs(1);
        let errors = reports
            .stop_all(&peers, Stopping::by(deadline), false)
            .await;
        assert!(Instant::now() >= deadline + REPORT_GRACE);
        assert!(
            matches!(
                errors.as_slice(),
                [
                    StopError::ReactorLost { instance: 1, .. },
                    StopError::DeadlineExceeded {
                        instance: 2,
                        undelivered: 0,
                        ..
                    }
                ]
            ),
            "{errors:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_nearby_wait_takes_a_report_made_in_its_turn_and_still_keeps_its_deadline() {
        let count = Arc::new(Countdown::new(1));
        let reporter = count.clone();
        // Runs when the waiting task lets this thread's scheduler run something else.
        tokio::spawn(async move { reporter.count_down() });
        let deadline = Instant::now() + Duration::from_secs(1);
        assert!(count.wait(|| deadline, true).await);
        // Nobody reports: after the turn, the deadline ends the wait.
        let count = Countdown::new(1);
        let start = Instant::now();
        assert!(!count.wait(|| start + Duration::from_secs(1), true).await);
        assert!(start.elapsed() >= Duration::from_secs(1));
    }
}
