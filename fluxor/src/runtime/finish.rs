//! The end of an instance's life after its message loop: drain what was accepted before the
//! stop (until the deadline), run `stop`, and report. The usual case, nothing left to drain
//! and a stop that finishes at once, runs within the instance's last turn.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::Poll;

use tokio::time::Instant;

use super::actor_loop::LoopExit;
use super::exec::Exec;
use super::reports::REPORT_GRACE;
use super::restart::Supervised;
use crate::component::Component;
use crate::error::StopError;
use crate::mailbox::{InstanceStats, Receiver};
use crate::supervision::{InstanceState, LifecycleKind};
use crate::util::Either;

/// What is left of an instance after its message loop ended with `end`. An instance asked
/// to stop (undeploy, shutdown) with nothing left to drain, whose stop finishes at once, stops
/// right here: `None` if all went well. Otherwise the rest, boxed ([`finish`], or what went
/// wrong), so the instance's task keeps one pointer for it and no room for its outcome.
#[allow(clippy::type_complexity)]
pub(super) fn ending<'a, C: Component, E: Exec<C>>(
    exec: &'a mut E,
    rx: &'a mut Receiver<C::Msg>,
    end: LoopExit,
    supervised: Supervised<'a, C>,
) -> Option<
    Pin<
        Box<
            Either<
                std::future::Ready<Vec<StopError>>,
                impl Future<Output = Vec<StopError>> + use<'a, C, E>,
            >,
        >,
    >,
> {
    if E::STOPS_AT_ONCE && matches!(end, LoopExit::Stop(_)) {
        close(exec, rx);
        if rx.is_drained() {
            if let Some(result) = exec.stop_now() {
                let errors = stopped(rx, &supervised, Vec::new(), result);
                if errors.is_empty() {
                    return None;
                }
                return Some(Box::pin(Either::Left {
                    future: std::future::ready(errors),
                }));
            }
        }
    }
    Some(Box::pin(Either::Right {
        future: finish(exec, rx, end, supervised),
    }))
}

/// After the message loop: drain until the deadline and stop (undeploy, shutdown), or stop
/// for the supervision policy; returns what went wrong.
pub(super) async fn finish<C: Component, E: Exec<C>>(
    exec: &mut E,
    rx: &mut Receiver<C::Msg>,
    end: LoopExit,
    supervised: Supervised<'_, C>,
) -> Vec<StopError> {
    let (name, index) = (C::name(), supervised.index);
    let lost = || StopError::Failed {
        component: name,
        instance: index,
        reason: "the instance was lost with its worker job".into(),
    };
    let request = match end {
        LoopExit::Stop(request) => request,
        LoopExit::Lost => return vec![lost()],
        LoopExit::Halt { failed } => {
            supervised.halt(exec, rx, failed).await;
            return Vec::new();
        }
    };

    close(exec, rx);
    // The deadline is read off the clock only when something has to wait for it.
    let mut known = None;
    let mut deadline = || *known.get_or_insert_with(|| request.deadline());
    let mut errors = Vec::new();
    let (mut undelivered, mut interrupted) = (0, 0);
    while let Ok(msg) = rx.try_recv() {
        let deadline = deadline();
        if Instant::now() >= deadline {
            undelivered += 1;
            continue;
        }
        // Messages left at a stop are rare: boxed, so the stop sequence stays small.
        match Box::pin(within(|| deadline, exec.dispatch(msg))).await {
            Ok(Some(outcome)) => exec.settle(&outcome, rx.stats()),
            Ok(None) => return vec![lost()],
            // Its handler was cut at the deadline.
            Err(_elapsed) => interrupted += 1,
        }
    }
    if undelivered + interrupted > 0 {
        let stats = rx.stats();
        InstanceStats::add_saturating(&stats.undelivered, undelivered);
        let _ = stats.interrupted.fetch_update(Relaxed, Relaxed, |v| {
            Some(v.saturating_add(u16::try_from(interrupted).unwrap_or(u16::MAX)))
        });
        errors.push(StopError::DeadlineExceeded {
            component: name,
            instance: index,
            undelivered,
            interrupted,
        });
    }
    let result = within(
        || deadline().max(Instant::now()) + REPORT_GRACE / 2,
        exec.stop(),
    )
    .await
    .unwrap_or_else(|_elapsed| Err("stop did not finish before the deadline".into()));
    stopped(rx, &supervised, errors, result)
}

/// No timer fires into a stopping instance, and its mailbox takes no more messages (those
/// accepted before the stop can still be received).
fn close<C: Component, E: Exec<C>>(exec: &mut E, rx: &mut Receiver<C::Msg>) {
    if let Some(ctx) = exec.ctx() {
        ctx.timers.cancel_all();
    }
    rx.close();
}

/// The instance has run its stop (`result`): its work is cancelled, it counts as stopped and
/// says so; returns what went wrong.
fn stopped<C: Component>(
    rx: &Receiver<C::Msg>,
    supervised: &Supervised<'_, C>,
    mut errors: Vec<StopError>,
    result: Result<(), String>,
) -> Vec<StopError> {
    if let Err(reason) = result {
        errors.push(StopError::Failed {
            component: C::name(),
            instance: supervised.index,
            reason,
        });
    }
    rx.cancel_work();
    InstanceState::Stopped.store(&rx.stats().state);
    supervised.event(LifecycleKind::Stopped, None);
    errors
}

/// Like `tokio::time::timeout_at`, but a future that is ready at its first poll arms no
/// timer and does not even read the deadline (most of what a stopping instance does finishes
/// at once).
pub(super) async fn within<F: Future>(
    deadline: impl FnOnce() -> Instant,
    fut: F,
) -> Result<F::Output, ()> {
    let mut fut = std::pin::pin!(fut);
    let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(out) => Ok(out),
        Poll::Pending => tokio::time::timeout_at(deadline(), fut)
            .await
            .map_err(|_| ()),
    }
}
