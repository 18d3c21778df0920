//! Where an instance's lifecycle calls run: inline on its reactor, or on the worker pool.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::Poll;

use crate::component::{Component, Context, Outcome};
use crate::mailbox::InstanceStats;
use crate::util::{catch_unwind, panic_message};
use crate::worker::WorkerPool;

/// Where an instance's lifecycle calls run: inline on its reactor, or shipped to the worker
/// pool (worker components, where handlers may block).
pub(super) trait Exec<C: Component> {
    async fn start(&mut self) -> Result<(), String>;
    /// Handles one message; `None` if the instance was lost with its worker job. A plain
    /// future, not an `async fn`, so the message is held once: by the handler's future.
    fn dispatch(&mut self, msg: C::Msg) -> impl Future<Output = Option<Outcome>>;
    /// Handles one message in place when its handler is a plain method (no future, no
    /// allocation); hands it back otherwise, for [`dispatch`](Self::dispatch).
    fn dispatch_now(&mut self, msg: C::Msg) -> Result<Outcome, C::Msg>;
    /// Bookkeeping after a message was handled: counters, logs, the context reset.
    fn settle(&mut self, outcome: &Outcome, stats: &InstanceStats);
    async fn stop(&mut self) -> Result<(), String>;
    /// Whether [`stop_now`](Self::stop_now) runs the stop.
    const STOPS_AT_ONCE: bool;
    /// Runs the stop within the caller's turn when it finishes at once (a component whose
    /// stop says so, run inline); `None` otherwise, for [`stop`](Self::stop).
    fn stop_now(&mut self) -> Option<Result<(), String>>;
    /// The context, between calls; `None` if the instance was lost.
    fn ctx(&mut self) -> Option<&mut Context<C>>;
    /// Puts a fresh component in place of the crashed one; `false` if the instance was lost.
    fn replace(&mut self, component: C) -> bool;
    /// The component, between calls.
    fn component(&self) -> Option<&C>;
}

pub(super) struct Inline<C: Component> {
    pub(super) component: C,
    pub(super) ctx: Context<C>,
}

impl<C: Component> Exec<C> for Inline<C> {
    async fn start(&mut self) -> Result<(), String> {
        start_outcome(catch_unwind(self.component.start(&mut self.ctx)).await)
    }

    fn dispatch(&mut self, msg: C::Msg) -> impl Future<Output = Option<Outcome>> {
        self.ctx.stamp().begin(self.ctx.key());
        Guarded {
            inner: catch_unwind(self.component.handle(msg, &mut self.ctx)),
        }
    }

    #[inline]
    fn dispatch_now(&mut self, msg: C::Msg) -> Result<Outcome, C::Msg> {
        self.ctx.stamp().begin(self.ctx.key());
        let (component, ctx) = (&mut self.component, &mut self.ctx);
        // The handler's own panics are caught where it runs (`Context::__run_accepted`,
        // `Responder::run_now`); this catches panics around it: hand-written dispatch code, an
        // `#[on_config]` hook.
        std::panic::catch_unwind(AssertUnwindSafe(|| component.handle_now(msg, ctx)))
            .unwrap_or_else(|panic| Ok(Outcome::Panicked(panic_message(&*panic))))
    }

    #[inline]
    fn settle(&mut self, outcome: &Outcome, stats: &InstanceStats) {
        self.ctx.stamp().end();
        settle(&mut self.ctx, outcome, stats);
    }

    async fn stop(&mut self) -> Result<(), String> {
        self.ctx.forget_message();
        stop_outcome(catch_unwind(self.component.stop(&mut self.ctx)).await)
    }

    const STOPS_AT_ONCE: bool = C::STOP_AT_ONCE;

    fn stop_now(&mut self) -> Option<Result<(), String>> {
        if !C::STOP_AT_ONCE {
            return None;
        }
        Some(match super::actor_loop::poll_once(self.stop()) {
            Poll::Ready(result) => result,
            Poll::Pending => {
                Err("its stop did not finish at once, as its component says it does".into())
            }
        })
    }

    fn ctx(&mut self) -> Option<&mut Context<C>> {
        Some(&mut self.ctx)
    }

    fn replace(&mut self, component: C) -> bool {
        self.component = component;
        self.ctx.reset();
        true
    }

    fn component(&self) -> Option<&C> {
        Some(&self.component)
    }
}

pub(super) type Op<C, R> = Box<
    dyn for<'a> FnOnce(&'a mut C, &'a mut Context<C>) -> Pin<Box<dyn Future<Output = R> + 'a>>
        + Send,
>;

/// A worker component: the component and its context travel to a worker thread for each
/// call and come back after it, so handlers may block without holding a reactor.
pub(super) struct OnWorkers<C: Component> {
    pub(super) slot: Option<(C, Context<C>)>,
    pub(super) pool: WorkerPool,
    pub(super) reactor: tokio::runtime::Handle,
}

impl<C: Component + Send> OnWorkers<C> {
    async fn ship<R: Send + 'static>(&mut self, op: Op<C, R>) -> Option<R> {
        let (mut component, mut ctx) = self.slot.take()?;
        let reactor = self.reactor.clone();
        let task = self
            .pool
            .submit_wait(move |_| {
                // The reactor thread drives the timer and I/O drivers meanwhile.
                let r = reactor.block_on(op(&mut component, &mut ctx));
                (component, ctx, r)
            })
            .await
            .ok()?;
        let (component, ctx, r) = task.await.ok()?;
        self.slot = Some((component, ctx));
        Some(r)
    }
}

impl<C: Component + Send> Exec<C> for OnWorkers<C> {
    async fn start(&mut self) -> Result<(), String> {
        self.ship(Box::new(|c, ctx| {
            Box::pin(async move { start_outcome(catch_unwind(c.start(ctx)).await) })
        }))
        .await
        .unwrap_or_else(|| Err("the worker pool shut down before start ran".into()))
    }

    fn dispatch(&mut self, msg: C::Msg) -> impl Future<Output = Option<Outcome>> {
        let shipped = self.ship(Box::new(move |c, ctx| {
            Box::pin(Guarded {
                inner: catch_unwind(c.handle(msg, ctx)),
            })
        }));
        async move { shipped.await.flatten() }
    }

    fn dispatch_now(&mut self, msg: C::Msg) -> Result<Outcome, C::Msg> {
        // Every call of a worker component runs on the worker pool.
        Err(msg)
    }

    fn settle(&mut self, outcome: &Outcome, stats: &InstanceStats) {
        if let Some((_, ctx)) = &mut self.slot {
            settle(ctx, outcome, stats);
        }
    }

    async fn stop(&mut self) -> Result<(), String> {
        self.ship(Box::new(|c, ctx| {
            Box::pin(async move {
                ctx.forget_message();
                stop_outcome(catch_unwind(c.stop(ctx)).await)
            })
        }))
        .await
        .unwrap_or_else(|| Err("the worker pool shut down before stop ran".into()))
    }

    /// A worker component stops on the worker pool.
    const STOPS_AT_ONCE: bool = false;

    fn stop_now(&mut self) -> Option<Result<(), String>> {
        None
    }

    fn ctx(&mut self) -> Option<&mut Context<C>> {
        self.slot.as_mut().map(|(_, ctx)| ctx)
    }

    fn replace(&mut self, component: C) -> bool {
        match &mut self.slot {
            Some((c, ctx)) => {
                *c = component;
                ctx.reset();
                true
            }
            None => false,
        }
    }

    fn component(&self) -> Option<&C> {
        self.slot.as_ref().map(|(c, _)| c)
    }
}

pub(super) fn start_outcome(
    r: Result<Result<(), crate::error::BoxError>, Box<dyn std::any::Any + Send>>,
) -> Result<(), String> {
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(format!("start {}", panic_message(&*panic))),
    }
}

pub(super) fn stop_outcome(
    r: Result<Result<(), crate::error::BoxError>, Box<dyn std::any::Any + Send>>,
) -> Result<(), String> {
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(format!("stop {}", panic_message(&*panic))),
    }
}

pin_project_lite::pin_project! {
    /// A component's `handle` future with its panics caught. `Responder::run` already catches
    /// handler panics; this catches panics in hand-written dispatch code around it, so the
    /// instance survives them too.
    struct Guarded<F> {
        #[pin]
        inner: crate::util::CatchUnwind<F>,
    }
}

impl<F: Future<Output = Outcome>> Future for Guarded<F> {
    type Output = Option<Outcome>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Outcome>> {
        self.project()
            .inner
            .poll(cx)
            .map(|r| Some(r.unwrap_or_else(|panic| Outcome::Panicked(panic_message(&*panic)))))
    }
}

/// Counts and logs how a message went, and forgets the message's metadata.
#[inline]
pub(super) fn settle<C: Component>(ctx: &mut Context<C>, outcome: &Outcome, stats: &InstanceStats) {
    ctx.forget_message();
    match outcome {
        Outcome::Handled => InstanceStats::bump_own(&stats.handled),
        _ => settle_unhandled(ctx, outcome, stats),
    }
}

/// [`settle`] for a message that was not handled to the end: counted and logged.
#[cold]
#[inline(never)]
fn settle_unhandled<C: Component>(ctx: &Context<C>, outcome: &Outcome, stats: &InstanceStats) {
    match outcome {
        Outcome::Handled => InstanceStats::bump_own(&stats.handled),
        Outcome::Failed(reason) => {
            InstanceStats::bump(&stats.failed);
            tracing::warn!(component = C::name(), deployment = %ctx.shared.deployment, instance = ctx.instance, %reason, "handler returned an error");
        }
        Outcome::Panicked(reason) => {
            InstanceStats::bump(&stats.panicked);
            tracing::error!(component = C::name(), deployment = %ctx.shared.deployment, instance = ctx.instance, %reason, "handler panicked");
        }
        Outcome::Abandoned => {
            InstanceStats::bump_own(&stats.abandoned);
            tracing::debug!(component = C::name(), deployment = %ctx.shared.deployment, instance = ctx.instance, "request skipped: its requester had gone");
        }
    }
}
