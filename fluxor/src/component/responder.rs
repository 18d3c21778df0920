//! [`Responder`] and [`Run`]: answering a message's requester with what its handler returns.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;

use tracing::Instrument;
use uuid::Uuid;

use super::Outcome;
use crate::error::BusError;
use crate::ids::DeploymentId;
use crate::message::{IntoReply, ReplyTo};
use crate::util::{catch_unwind, panic_message, CatchUnwind};

/// Answers one message's requester with what its handler returns.
///
/// Obtained from [`Context::accept`](crate::Context::accept); [`run`](Self::run) drives the handler inside a tracing
/// span and catches its panics, so a failing handler never takes its reactor down.
pub struct Responder<R> {
    pub(super) reply: ReplyTo<R>,
    pub(super) component: &'static str,
    pub(super) deployment: DeploymentId,
    pub(super) topic: Option<Arc<str>>,
    pub(super) correlation_id: Uuid,
    pub(super) request_id: Uuid,
    /// The trace context the envelope carried: the parent of the handler's span.
    #[cfg(feature = "otel")]
    pub(super) parent: Option<opentelemetry::Context>,
}

/// Handler spans are `INFO` when traces are exported (feature `otel`), so that an `info`
/// filter keeps a trace whole, and `DEBUG` otherwise.
const HANDLER_SPAN: tracing::Level = if cfg!(feature = "otel") {
    tracing::Level::INFO
} else {
    tracing::Level::DEBUG
};

impl<R> fmt::Debug for Responder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("component", &self.component)
            .field("topic", &self.topic)
            .field("expects_reply", &self.reply.expected())
            .finish()
    }
}

impl<R: Send + 'static> Responder<R> {
    /// Runs the handler future, sends its result to the requester (an `Err` or a panic
    /// becomes [`BusError::RecipientFailed`]) and reports the [`Outcome`].
    ///
    /// The returned future holds the handler's future once (it is a plain struct, not an
    /// `async fn` that would keep its argument besides the future it awaits).
    ///
    /// A request whose requester has gone by the first poll is not handled: the handler
    /// future is dropped unpolled and the outcome is [`Outcome::Abandoned`].
    pub fn run<F, T>(self, handler: F) -> Run<F, R>
    where
        F: Future<Output = T>,
        T: IntoReply<R>,
    {
        Run {
            handler: catch_unwind(handler).instrument(self.span()),
            responder: Some(self),
            started: false,
            answer: Responder::answer::<T>,
        }
    }

    /// Runs a plain (not `async`) handler at once, inside the same span as [`run`](Self::run),
    /// answers the requester and reports the [`Outcome`]; a panic is caught as `run` catches it.
    ///
    /// A request whose requester has gone is not handled: the handler is not called and the
    /// outcome is [`Outcome::Abandoned`].
    #[inline]
    pub fn run_now<T: IntoReply<R>>(self, handler: impl FnOnce() -> T) -> Outcome {
        if self.reply.abandoned() {
            return Outcome::Abandoned;
        }
        let result = {
            let span = self.span();
            let _entered = span.enter();
            std::panic::catch_unwind(AssertUnwindSafe(handler))
        };
        self.answer(result)
    }

    /// The span a handler runs in.
    #[inline]
    fn span(&self) -> tracing::Span {
        let span = handler_span(
            self.component,
            self.topic.as_deref(),
            self.deployment,
            self.correlation_id,
            self.request_id,
        );
        #[cfg(feature = "otel")]
        if let Some(parent) = &self.parent {
            crate::otel::set_parent(&span, parent.clone());
        }
        span
    }

    /// Answers the requester with what the handler produced, and says how it went.
    #[inline]
    fn answer<T: IntoReply<R>>(self, result: Result<T, Box<dyn Any + Send>>) -> Outcome {
        let (topic, component) = (self.topic, self.component);
        answer(self.reply, result, || {
            topic.as_deref().unwrap_or(component).to_owned()
        })
    }
}

/// The span a handler runs in (made only when its level is enabled).
#[inline]
pub(super) fn handler_span(
    component: &'static str,
    topic: Option<&str>,
    deployment: DeploymentId,
    correlation_id: Uuid,
    request_id: Uuid,
) -> tracing::Span {
    tracing::span!(
        HANDLER_SPAN,
        "fluxor.handle",
        component,
        topic = topic.unwrap_or(""),
        deployment = %deployment,
        correlation_id = %correlation_id,
        request_id = %request_id,
    )
}

/// Answers `reply` with what a handler produced (an `Err` or a panic as
/// [`BusError::RecipientFailed`] naming `topic`), and says how it went.
#[inline]
pub(super) fn answer<R, T: IntoReply<R>>(
    reply: ReplyTo<R>,
    result: Result<T, Box<dyn Any + Send>>,
    topic: impl FnOnce() -> String,
) -> Outcome {
    let (value, outcome) = match result {
        Ok(value) => match value.into_reply() {
            Ok(v) => (Ok(v), Outcome::Handled),
            Err(reason) => (Err(reason.clone()), Outcome::Failed(reason)),
        },
        Err(panic) => {
            let reason = panic_message(&*panic);
            (Err(reason.clone()), Outcome::Panicked(reason))
        }
    };
    if reply.expected() {
        reply.send(value.map_err(|reason| BusError::RecipientFailed {
            topic: topic(),
            reason,
        }));
    }
    outcome
}

pin_project_lite::pin_project! {
    /// A handler run by [`Responder::run`]: resolves to the handler's [`Outcome`] once its
    /// requester has been answered.
    #[must_use = "a handler does nothing unless its run is awaited"]
    pub struct Run<F: Future, R> {
        #[pin]
        handler: tracing::instrument::Instrumented<CatchUnwind<F>>,
        responder: Option<Responder<R>>,
        // The handler has been polled: from then on it runs to the end, requester or not.
        started: bool,
        // Chosen where the handler's reply type is checked (`Responder::run`), so a reply type
        // that does not fit is reported there, once.
        answer: fn(Responder<R>, Result<F::Output, Box<dyn Any + Send>>) -> Outcome,
    }
}

impl<F: Future, R> fmt::Debug for Run<F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("responder", &self.responder)
            .finish_non_exhaustive()
    }
}

impl<F: Future, R> Future for Run<F, R> {
    type Output = Outcome;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Outcome> {
        let this = self.project();
        if !std::mem::replace(this.started, true)
            && this.responder.as_ref().is_some_and(|r| r.reply.abandoned())
        {
            // Nobody waits for the answer: the handler never starts.
            *this.responder = None;
            return Poll::Ready(Outcome::Abandoned);
        }
        let result = std::task::ready!(this.handler.poll(cx));
        match this.responder.take() {
            Some(responder) => Poll::Ready((this.answer)(responder, result)),
            // Polled again after it finished: the answer has gone already.
            None => Poll::Ready(Outcome::Handled),
        }
    }
}
