//! [`Context`]: what a handler sees of the runtime.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{ActorRef, Component, Handles, Responder};
use crate::address::Destination;
use crate::bus::{EventBus, RequestOptions, Requester};
use crate::error::{BusError, PublishError, SendError};
use crate::ids::DeploymentId;
use crate::message::{Envelope, Headers, IntoReply, Message, Meta, ReplyTo};
use crate::timer::{TimerId, Timers};
use crate::watchdog::Stamp;
use crate::worker::{BlockingTask, Lane, WorkerPool};

/// What a handler sees of the runtime: the bus, its deployment, config, cancellation and the
/// message being handled.
///
/// `send`, `publish` and `request` on the context carry the request id of the message being
/// handled, so a chain of messages can be followed across components.
pub struct Context<C: Component> {
    /// What the deployment's instances share: bus, config, ids, pools, the runtime.
    pub(crate) shared: Arc<crate::runtime::Shared<C>>,
    pub(crate) instance: u32,
    pub(crate) reactor: u32,
    pub(crate) myself: ActorRef<C>,
    /// The metadata of the message being handled, when `handling` (a flag, not an `Option`,
    /// so that it shares the small fields' word: every instance's task holds a context).
    pub(crate) current: Meta,
    pub(crate) handling: bool,
    pub(crate) lane: Lane,
    pub(crate) timers: Timers,
    /// The config this instance runs with (`None`: the deployment's initial one, kept in its
    /// shared state), and the generation it was swapped in at.
    pub(crate) config: Option<Arc<C::Config>>,
    pub(crate) config_generation: u32,
    /// A new config was adopted and the `#[on_config]` hook has not seen it yet.
    pub(crate) config_changed: bool,
}

/// A message a generated plain handler has accepted and not run yet (see
/// [`Context::__accept_now`]).
#[doc(hidden)]
pub struct Accepted<M: Message> {
    msg: M,
    reply: ReplyTo<M::Reply>,
}

impl<M: Message> fmt::Debug for Accepted<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted")
            .field("expects_reply", &self.reply.expected())
            .finish_non_exhaustive()
    }
}

impl<C: Component> fmt::Debug for Context<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("component", &C::name())
            .field("deployment", &self.shared.deployment)
            .field("instance", &self.instance)
            .field("reactor", &self.reactor)
            .field("request_id", &self.request_id())
            .finish()
    }
}

impl<C: Component> Context<C> {
    /// The event bus.
    pub fn bus(&self) -> &EventBus {
        &self.shared.bus
    }

    /// The deployment this instance belongs to.
    pub fn deployment_id(&self) -> DeploymentId {
        self.shared.deployment
    }

    /// This instance's index within its deployment (0-based).
    pub fn instance(&self) -> usize {
        self.instance as usize
    }

    /// The reactor this instance is pinned to.
    pub fn reactor(&self) -> usize {
        self.reactor as usize
    }

    /// The deployment's typed config. After [`Fluxor::reconfigure`](crate::Fluxor::reconfigure),
    /// an instance sees the new value from its next message on (never in the middle of a
    /// handler).
    pub fn config(&self) -> &C::Config {
        match &self.config {
            Some(swapped) => swapped,
            None => &self.shared.initial,
        }
    }

    /// Adopts a config swapped in since this instance last looked, between two messages, and
    /// says so on `fluxor.lifecycle.reconfigured`.
    #[inline]
    fn adopt_config(&mut self) {
        let generation = self
            .shared
            .config_generation
            .load(std::sync::atomic::Ordering::Acquire);
        if generation != self.config_generation {
            self.adopt_swapped();
        }
    }

    /// Takes the deployment's config swapped in since the last message.
    #[cold]
    #[inline(never)]
    fn adopt_swapped(&mut self) {
        (self.config_generation, self.config) = self.shared.config();
        self.config_changed = true;
        crate::runtime::publish_event(
            &self.shared,
            crate::supervision::LifecycleKind::Reconfigured,
            self.instance as usize,
            None,
        );
    }

    /// Cancelled when this instance is being stopped and its deadline has passed, or the runtime
    /// is dropped. Long-running handler work should watch it.
    pub fn cancellation(&self) -> &CancellationToken {
        self.myself
            .mailbox
            .cancellation(&self.shared.services.cancel)
    }

    /// A handle to this instance, e.g. to hand to another component or a spawned task.
    pub fn myself(&self) -> &ActorRef<C> {
        &self.myself
    }

    /// The request id of the message being handled (`None` in `start` / `stop`).
    pub fn request_id(&self) -> Option<Uuid> {
        self.handling.then_some(self.current.request_id)
    }

    /// The correlation id of the envelope being handled.
    pub fn correlation_id(&self) -> Option<Uuid> {
        self.handling.then_some(self.current.correlation_id)
    }

    /// The topic the message being handled was sent to (`None` for a direct message).
    pub fn topic(&self) -> Option<&str> {
        // Cleared between messages.
        self.current.topic.as_deref()
    }

    /// The headers of the envelope being handled.
    pub fn headers(&self) -> &Headers {
        // Cleared between messages.
        &self.current.headers
    }

    /// This instance, as the maker of a request from its handler.
    fn requester(&self) -> Requester {
        Requester {
            mailbox: self.myself.mailbox.id(),
            component: C::name(),
        }
    }

    /// [`meta`](Self::meta), made where the envelope is stored (see `bus::meta_later`).
    fn meta_later(&self) -> impl FnOnce() -> Meta + '_ {
        crate::bus::meta_later(move || self.meta())
    }

    fn meta(&self) -> Meta {
        if self.handling {
            self.shared.bus.child_meta(self.current.request_id)
        } else {
            self.shared.bus.root_meta()
        }
    }

    /// [`EventBus::send`], carrying the current request id.
    ///
    /// # Errors
    /// As [`EventBus::send`].
    pub fn send<M: Message, D: Destination<M>>(&self, to: D, msg: M) -> Result<(), SendError<M>> {
        self.shared.bus.send_meta(to.topic(), msg, self.meta())
    }

    /// [`EventBus::send_wait`], carrying the current request id: waits for room in a full
    /// mailbox as long as it takes. The instance handles nothing else meanwhile.
    ///
    /// # Errors
    /// As [`EventBus::send_wait`].
    pub async fn send_wait<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
    ) -> Result<(), SendError<M>> {
        self.shared
            .bus
            .send_wait_meta(to.topic(), msg, self.meta(), None)
            .await
    }

    /// [`EventBus::publish`], carrying the current request id.
    ///
    /// # Errors
    /// As [`EventBus::publish`].
    pub fn publish<M: Message + Clone, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
    ) -> Result<usize, PublishError> {
        self.shared.bus.publish_meta(to.topic(), msg, self.meta())
    }

    /// [`EventBus::request`], carrying the current request id. The request never goes to this
    /// instance itself: it handles one message at a time, so it could not answer while it
    /// waits.
    ///
    /// # Errors
    /// As [`EventBus::request`]; [`BusError::AskCycle`] at once when only this instance serves
    /// the topic.
    pub fn request<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
    ) -> impl Future<Output = Result<M::Reply, BusError>> + use<'_, C, M, D> {
        self.shared
            .bus
            .asking(to, msg, || self.meta(), None, Some(self.requester()))
    }

    /// [`EventBus::request_with`], carrying the current request id.
    ///
    /// # Errors
    /// As [`EventBus::request`]; [`BusError::AskCycle`] at once when only this instance serves
    /// the topic (it would wait for itself; other instances of the topic are chosen instead).
    pub fn request_with<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
        options: RequestOptions,
    ) -> impl Future<Output = Result<M::Reply, BusError>> + use<'_, C, M, D> {
        let (timeout, meta) = options.into_parts(|| self.meta());
        self.shared
            .bus
            .asking(to, msg, meta, timeout, Some(self.requester()))
    }

    /// Sends `msg` directly to another instance, carrying the current request id.
    ///
    /// # Errors
    /// As [`ActorRef::send`].
    pub fn send_to<T: Handles<M>, M: Message>(
        &self,
        to: &ActorRef<T>,
        msg: M,
    ) -> Result<(), SendError<M>> {
        to.send_meta(msg, self.meta_later())
    }

    /// Requests directly from another instance, carrying the current request id.
    ///
    /// # Errors
    /// As [`ActorRef::request`](crate::ActorRef::request); [`BusError::AskCycle`] at once when
    /// `to` is this very instance (it would wait for itself).
    pub async fn request_from<T: Handles<M>, M: Message>(
        &self,
        to: &ActorRef<T>,
        msg: M,
    ) -> Result<M::Reply, BusError> {
        if to.mailbox.id() == self.myself.mailbox.id() {
            return Err(BusError::AskCycle {
                topic: C::name().to_owned(),
                component: C::name(),
            });
        }
        to.request_meta(msg, || self.meta(), None).await
    }

    /// Delivers `msg` to this instance once, after `delay`, through its topic-less
    /// `#[handler]` for `M`. If the mailbox is full then, the timer waits for room.
    ///
    /// Timers are cancelled when the instance stops.
    pub fn set_timer<M: Message>(&mut self, delay: Duration, msg: M) -> TimerId
    where
        C: Handles<M>,
    {
        let me = self.myself.clone();
        let task = self.reactor_handle().spawn(async move {
            tokio::time::sleep(delay).await;
            let meta = me.bus.root_meta();
            let _stopped = me
                .mailbox
                .push_wait(|| C::wrap(Envelope::new(msg, None, meta)))
                .await;
        });
        self.timers.insert(task)
    }

    /// Delivers a clone of `msg` to this instance every `period` (the first after one period),
    /// through its topic-less `#[handler]` for `M`.
    ///
    /// Ticks do not pile up: one tick is in flight at a time. When the handler takes longer
    /// than the period, the tick that fell due meanwhile is delivered as soon as the handler
    /// finishes and the other missed ticks are skipped, so a slow handler sees one tick per
    /// handling rather than a backlog. Timers are cancelled when the instance stops.
    ///
    /// # Panics
    /// If `period` is zero.
    pub fn set_periodic<M: Message + Clone>(&mut self, period: Duration, msg: M) -> TimerId
    where
        C: Handles<M>,
    {
        assert!(
            !period.is_zero(),
            "a periodic timer needs a period longer than zero"
        );
        let me = self.myself.clone();
        let task = self.reactor_handle().spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticks.tick().await;
                let (reply, handled) = ReplyTo::channel();
                let meta = me.bus.root_meta();
                let tick = msg.clone();
                if me
                    .mailbox
                    .push_wait(|| C::wrap(Envelope::new(tick, Some(reply), meta)))
                    .await
                    .is_err()
                {
                    break;
                }
                // Whatever the handler did, it is done with this tick.
                let _ = handled.await;
            }
        });
        self.timers.insert(task)
    }

    /// Cancels a timer. Returns `false` if it had already fired (one-shot) or was cancelled.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.timers.cancel(id)
    }

    /// This instance's reactor's mark for the blocked-reactor checker.
    pub(crate) fn stamp(&self) -> &Stamp {
        &self.shared.stamps[self.reactor as usize]
    }

    /// The runtime of this instance's reactor, where its timers run.
    pub(super) fn reactor_handle(&self) -> &tokio::runtime::Handle {
        &self.shared.services.reactors[self.reactor as usize]
    }

    /// Forgets what belonged to the previous component, before a restarted one starts.
    pub(crate) fn reset(&mut self) {
        self.timers.cancel_all();
        self.lane = Lane::default();
        self.forget_message();
    }

    /// Forgets the metadata of the message that was handled.
    #[inline]
    pub(crate) fn forget_message(&mut self) {
        self.handling = false;
        // Most messages have neither: then nothing is dropped (no call).
        if self.current.topic.is_some() {
            self.current.topic = None;
        }
        if !self.current.headers.is_empty() {
            self.current.headers = Headers::new();
        }
    }

    /// This instance's key with the blocked-reactor checker.
    #[inline]
    pub(crate) fn key(&self) -> u64 {
        self.shared.watch_key(self.instance)
    }

    /// The runtime's worker pool.
    pub fn workers(&self) -> &WorkerPool {
        &self.shared.services.workers
    }

    /// Runs blocking `f` on the worker pool and resolves to its result, while this reactor goes
    /// on serving other components. Tasks run in parallel; see
    /// [`execute_blocking_ordered`](Self::execute_blocking_ordered) for submission order.
    ///
    /// When the worker queue is full, the task resolves at once to
    /// [`BlockingError::Rejected`](crate::BlockingError::Rejected). A task not yet started when
    /// this instance stops, or whose `BlockingTask` is dropped, never runs.
    ///
    /// ```no_run
    /// # use fluxor::prelude::*;
    /// # #[derive(Message)] #[message(reply = Result<String, fluxor::BlockingError>)] struct Hash(String);
    /// # #[component] struct Auth;
    /// #[component]
    /// impl Auth {
    ///     #[handler("auth.hash")]
    ///     async fn hash(&mut self, Hash(pw): Hash, ctx: &mut Context<Self>) -> Result<String, fluxor::BlockingError> {
    ///         ctx.execute_blocking(move || format!("{:x}", pw.len() * 31)).await
    ///     }
    /// }
    /// ```
    pub fn execute_blocking<T, F>(&self, f: F) -> BlockingTask<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.shared
            .services
            .workers
            .try_submit_with(self.cancellation().clone(), None, move |_| f())
            .unwrap_or_else(BlockingTask::failed)
    }

    /// Like [`execute_blocking`](Self::execute_blocking), but `f` receives a cancellation token
    /// (cancelled when this instance stops or the runtime shuts down) to check in long loops.
    pub fn execute_blocking_cancellable<T, F>(&self, f: F) -> BlockingTask<T>
    where
        T: Send + 'static,
        F: FnOnce(&CancellationToken) -> T + Send + 'static,
    {
        self.shared
            .services
            .workers
            .try_submit_with(self.cancellation().clone(), None, f)
            .unwrap_or_else(BlockingTask::failed)
    }

    /// Like [`execute_blocking`](Self::execute_blocking), but the tasks this instance submits
    /// through this method run one after another, in submission order.
    pub fn execute_blocking_ordered<T, F>(&self, f: F) -> BlockingTask<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.shared
            .services
            .workers
            .try_submit_with(self.cancellation().clone(), Some(&self.lane), move |_| f())
            .unwrap_or_else(BlockingTask::failed)
    }

    /// Whether a new config was adopted since the last call (for `#[on_config]`).
    #[doc(hidden)]
    pub fn __config_changed(&mut self) -> bool {
        std::mem::take(&mut self.config_changed)
    }

    /// The `#[on_config]` hook refused the new config: logged; the config stays.
    #[doc(hidden)]
    pub fn __config_refused(&self, error: crate::error::BoxError) {
        tracing::warn!(
            component = C::name(),
            deployment = %self.shared.deployment,
            instance = self.instance,
            %error,
            "the `#[on_config]` hook failed; the new config stays"
        );
    }

    /// [`accept`](Self::accept) for the plain handlers `#[component]` generates, which then
    /// run their `#[on_config]` hook, if any, and [`__run_accepted`](Self::__run_accepted):
    /// the config adopted and the envelope's metadata recorded as the message being handled.
    #[doc(hidden)]
    #[inline(always)]
    pub fn __accept_now<M: Message>(&mut self, envelope: Envelope<M>) -> Accepted<M> {
        self.adopt_config();
        let Envelope { msg, reply, meta } = envelope;
        self.stamp().topic(meta.topic.as_ref());
        self.hold(meta);
        Accepted { msg, reply }
    }

    /// [`Responder::run_now`] for a message taken by [`__accept_now`](Self::__accept_now):
    /// the handler's span and answer are made from the context's record of the message, with
    /// no responder in between.
    #[doc(hidden)]
    #[inline(always)]
    pub fn __run_accepted<M: Message, T: IntoReply<M::Reply>>(
        &mut self,
        accepted: Accepted<M>,
        handler: impl FnOnce(M, &mut Self) -> T,
    ) -> crate::component::Outcome {
        let Accepted { msg, reply } = accepted;
        if reply.abandoned() {
            return crate::component::Outcome::Abandoned;
        }
        let result = {
            let span = self.handler_span();
            let _entered = span.enter();
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(msg, self)))
        };
        super::responder::answer(reply, result, || {
            self.current
                .topic
                .as_deref()
                .unwrap_or(C::name())
                .to_owned()
        })
    }

    /// The span of a handler of the message the context holds.
    #[inline(always)]
    fn handler_span(&self) -> tracing::Span {
        let span = super::responder::handler_span(
            C::name(),
            self.current.topic.as_deref(),
            self.shared.deployment,
            self.current.correlation_id,
            self.current.request_id,
        );
        #[cfg(feature = "otel")]
        if let Some(parent) = crate::otel::extract(&self.current.headers) {
            crate::otel::set_parent(&span, parent);
        }
        span
    }

    /// Records `meta` as the message being handled.
    #[inline(always)]
    fn hold(&mut self, meta: Meta) {
        // Between messages the context holds no topic and no headers (see `forget_message`),
        // so the metadata it replaces has nothing to drop: its topic and headers are the only
        // parts of a `Meta` that own anything (the ids are plain values).
        let previous = std::mem::replace(&mut self.current, meta);
        if previous.topic.is_some() || !previous.headers.is_empty() {
            drop(previous);
        } else {
            std::mem::forget(previous);
        }
        self.handling = true;
    }

    /// Unpacks an envelope for its handler: records its ids and headers in the context and
    /// returns the message with the [`Responder`] that answers its requester.
    #[inline]
    pub fn accept<M: Message>(&mut self, envelope: Envelope<M>) -> (M, Responder<M::Reply>) {
        let Accepted { msg, reply } = self.__accept_now(envelope);
        let current = &self.current;
        let responder = Responder {
            reply,
            component: C::name(),
            deployment: self.shared.deployment,
            topic: current.topic.clone(),
            correlation_id: current.correlation_id,
            request_id: current.request_id,
            #[cfg(feature = "otel")]
            parent: crate::otel::extract(&current.headers),
        };
        (msg, responder)
    }
}
