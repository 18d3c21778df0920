//! Components (the actors), their context, handles and handler plumbing.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::address::{validate_pattern, Destination};
use crate::bus::{Consumer, Entry, EventBus, MailboxConsumer, Owner, RequestOptions};
use crate::error::{BoxError, BusError, PublishError, SendError};
use crate::mailbox::{Mailbox, PushError};
use crate::message::{Envelope, Headers, IntoReply, Message, Meta, ReplyTo};
use crate::runtime::{DeploymentId, InstanceTask};
use crate::supervision::Supervision;
use crate::timer::{TimerId, Timers};
use crate::watchdog::Stamp;
use crate::worker::{BlockingTask, Lane, WorkerPool};

/// An actor: state plus handlers, run one message at a time on `&mut self`.
///
/// `#[component]` implements this trait for you. Writing it by hand means choosing a message
/// enum (one variant per handler, each holding an [`Envelope`]), binding topics to variants in
/// [`bindings`](Self::bindings), and matching on the enum in [`handle`](Self::handle):
///
/// ```
/// use fluxor::{Bindings, Component, Context, Envelope, Message, Outcome};
///
/// struct Add(u64);
/// impl Message for Add { type Reply = u64; }
///
/// #[derive(Default)]
/// struct Counter { total: u64 }
///
/// enum CounterMsg { Add(Envelope<Add>) }
///
/// impl Component for Counter {
///     type Msg = CounterMsg;
///     type Config = ();
///
///     fn bindings(b: &mut Bindings<'_, Self>) {
///         b.bind("counter.add", CounterMsg::Add);
///     }
///
///     async fn handle(&mut self, msg: CounterMsg, ctx: &mut Context<Self>) -> Outcome {
///         match msg {
///             CounterMsg::Add(env) => {
///                 let (Add(n), responder) = ctx.accept(env);
///                 responder.run(async { self.total += n; self.total }).await
///             }
///         }
///     }
/// }
/// ```
///
/// A component is created by its factory on the reactor it lives on and never moves between
/// threads, so it need not be `Send`: `Rc` and `RefCell` in its state are fine. Only messages
/// and replies cross threads.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a fluxor component",
    label = "this type does not implement `fluxor::Component`",
    note = "add `#[component]` to both the struct `{Self}` and its `impl` block"
)]
pub trait Component: Sized + 'static {
    /// The mailbox message type: one variant per handler.
    type Msg: Send + 'static;
    /// The typed config, deserialized from [`DeployOptions::config`](crate::DeployOptions::config)
    /// at deploy time. Use `()` for none.
    type Config: DeserializeOwned + Send + Sync + 'static;

    /// The name shown in logs, spans and errors.
    fn name() -> &'static str {
        std::any::type_name::<Self>()
    }

    /// Whether instances run as *worker components* by default: their handlers run on the
    /// worker pool, where blocking is allowed, one call at a time. `#[component(worker)]`
    /// returns `Some(WorkerMode::new())`, which requires the component to be `Send` (it moves
    /// between threads). [`DeployOptions::worker`](crate::DeployOptions::worker) overrides the
    /// default per deployment.
    fn worker_mode() -> Option<WorkerMode<Self>> {
        None
    }

    /// What the runtime does when a handler of this component panics. `#[component(supervise
    /// = expr)]` sets it; [`DeployOptions::supervision`](crate::DeployOptions::supervision)
    /// overrides it per deployment. Default: [`Supervision::default`].
    fn supervision() -> Supervision {
        Supervision::default()
    }

    /// Declares the topics this component consumes. They are registered when every instance of
    /// a deployment has started and removed when it stops.
    fn bindings(bindings: &mut Bindings<'_, Self>) {
        let _ = bindings;
    }

    /// Runs on the component's reactor before any message. An error fails the deployment.
    fn start(&mut self, ctx: &mut Context<Self>) -> impl Future<Output = Result<(), BoxError>> {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Runs after the mailbox has been drained, when the component is undeployed or the runtime
    /// shuts down. An error is reported by `undeploy` / `shutdown`.
    fn stop(&mut self, ctx: &mut Context<Self>) -> impl Future<Output = Result<(), BoxError>> {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Handles one message. Use [`Context::accept`] and [`Responder::run`] per variant.
    fn handle(&mut self, msg: Self::Msg, ctx: &mut Context<Self>) -> impl Future<Output = Outcome>;

    /// Handles `msg` in place, without a future, when its handler is a plain (not `async`)
    /// method, exactly as [`handle`](Self::handle) would; hands the message back otherwise.
    /// The runtime tries this first, so plain handlers cost no future per message.
    /// `#[component]` implements it (with [`Responder::run_now`]); the default hands every
    /// message back.
    fn handle_now(
        &mut self,
        msg: Self::Msg,
        ctx: &mut Context<Self>,
    ) -> Result<Outcome, Self::Msg> {
        let _ = ctx;
        Err(msg)
    }
}

/// Creates a worker component's instance from its `InstanceTask` and returns the rest of its
/// life (`None` if its factory panicked).
pub(crate) type RunErased = fn(Box<dyn Any>) -> Option<Pin<Box<dyn Future<Output = ()>>>>;

/// Marks a component able to run on the worker pool; see [`Component::worker_mode`].
pub struct WorkerMode<C: ?Sized> {
    /// Runs an `InstanceTask<C>` (passed as `Any`, so this type needs no bound on `C`).
    pub(crate) run: RunErased,
    _component: PhantomData<fn(&C)>,
}

impl<C: Component + Send> WorkerMode<C> {
    /// Worker mode for `C`; `C` must be `Send`, since it moves to a worker thread for each call.
    pub fn new() -> Self {
        WorkerMode {
            run: |task| match task.downcast::<InstanceTask<C>>() {
                Ok(task) => task
                    .run_on_workers()
                    .map(|life| Box::pin(life) as Pin<Box<dyn Future<Output = ()>>>),
                // Deploy passes the task of this very component type.
                Err(_) => None,
            },
            _component: PhantomData,
        }
    }
}

impl<C: Component + Send> Default for WorkerMode<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: ?Sized> fmt::Debug for WorkerMode<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WorkerMode")
    }
}

/// Lets a component receive `M` sent directly to it (not through a topic), through
/// [`ActorRef::send`] / [`ActorRef::request`]. `#[component]` implements it for each
/// topic-less `#[handler]`.
#[diagnostic::on_unimplemented(
    message = "component `{Self}` cannot receive `{M}` directly",
    label = "no topic-less handler for `{M}`",
    note = "add a method `#[handler] fn ..(&mut self, msg: {M})` to the component's `#[component]` impl"
)]
pub trait Handles<M: Message>: Component {
    /// Wraps an envelope into the component's message enum.
    fn wrap(envelope: Envelope<M>) -> Self::Msg;
}

/// What handling one message came to. Returned by [`Responder::run`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The handler returned normally.
    Handled,
    /// The handler returned an `Err`; its text went to the requester, if any.
    Failed(String),
    /// The handler panicked; the panic message went to the requester, if any.
    Panicked(String),
}

/// The topic bindings of a deployment, filled by [`Component::bindings`] once per deployment,
/// with the deployment's config at hand (so topics may depend on it).
pub struct Bindings<'a, C: Component> {
    pub(crate) entries: Vec<Binding<C>>,
    pub(crate) errors: Vec<String>,
    config: &'a C::Config,
}

type MakeConsumer<C> =
    Box<dyn Fn(&Mailbox<<C as Component>::Msg>) -> Arc<dyn Consumer> + Send + Sync>;

pub(crate) struct Binding<C: Component> {
    pub(crate) pattern: Arc<str>,
    pub(crate) make: MakeConsumer<C>,
}

impl<C: Component> fmt::Debug for Bindings<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|b| &b.pattern))
            .finish()
    }
}

impl<'a, C: Component> Bindings<'a, C> {
    pub(crate) fn collect(config: &'a C::Config) -> Self {
        let mut b = Bindings {
            entries: Vec::new(),
            errors: Vec::new(),
            config,
        };
        C::bindings(&mut b);
        b
    }

    /// The deployment's config.
    pub fn config(&self) -> &'a C::Config {
        self.config
    }

    /// Routes envelopes of `M` published or sent to `pattern` into the variant built by `wrap`.
    /// `pattern` is a topic (`orders.create`) or a NATS-style pattern (`orders.*`, `orders.>`).
    /// An invalid pattern fails the deployment with [`DeployError::InvalidTopic`](crate::DeployError::InvalidTopic).
    pub fn bind<M: Message>(
        &mut self,
        pattern: &str,
        wrap: fn(Envelope<M>) -> C::Msg,
    ) -> &mut Self {
        match validate_pattern(pattern) {
            Ok(()) => self.entries.push(Binding {
                pattern: Arc::from(pattern),
                make: Box::new(move |mailbox| {
                    Arc::new(MailboxConsumer {
                        mailbox: mailbox.clone(),
                        wrap,
                        _msg: PhantomData,
                    })
                }),
            }),
            Err(e) => self.errors.push(format!("`{}`: {}", e.topic(), e.kind())),
        }
        self
    }
}

impl<C: Component> Binding<C> {
    /// The registry entry of this binding for one instance.
    pub(crate) fn entry(&self, owner: Owner, mailbox: &Mailbox<C::Msg>) -> Entry {
        Entry {
            owner,
            pattern: self.pattern.clone(),
            consumer: (self.make)(mailbox),
        }
    }
}

/// A handle to one component instance, to send it messages directly (not through a topic).
///
/// Cheap to clone, `Send + Sync`. Get your own with [`Context::myself`].
pub struct ActorRef<C: Component> {
    pub(crate) mailbox: Mailbox<C::Msg>,
    pub(crate) bus: EventBus,
}

impl<C: Component> Clone for ActorRef<C> {
    fn clone(&self) -> Self {
        ActorRef {
            mailbox: self.mailbox.clone(),
            bus: self.bus.clone(),
        }
    }
}

impl<C: Component> fmt::Debug for ActorRef<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorRef")
            .field("component", &C::name())
            .field("queued", &self.mailbox.len())
            .finish()
    }
}

impl<C: Component> ActorRef<C> {
    /// Puts `msg` in the instance's mailbox without waiting.
    ///
    /// # Errors
    /// `MailboxFull` or `Closed` (the instance stopped), with the message handed back.
    pub fn send<M: Message>(&self, msg: M) -> Result<(), SendError<M>>
    where
        C: Handles<M>,
    {
        self.send_meta(msg, self.bus.root_meta())
    }

    /// Like [`send`](Self::send), but waits up to `timeout` for room in a full mailbox.
    ///
    /// # Errors
    /// `MailboxFull` (no room in time) or `Closed`, with the message handed back.
    ///
    /// # Cancel safety
    /// Dropping the future before it completes drops the message undelivered.
    pub async fn send_timeout<M: Message>(
        &self,
        msg: M,
        timeout: std::time::Duration,
    ) -> Result<(), SendError<M>>
    where
        C: Handles<M>,
    {
        let meta = self.bus.root_meta();
        let mut slot = Some(msg);
        match self
            .mailbox
            .push_within(timeout, || {
                C::wrap(Envelope::new(slot.take().expect("filled"), None, meta))
            })
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => Err(SendError {
                error: direct_error::<C>(e),
                message: slot.expect("a refused message is not consumed"),
            }),
        }
    }

    /// Sends `msg` and awaits the reply, up to the runtime's default request timeout.
    ///
    /// # Errors
    /// As [`EventBus::request`].
    pub async fn request<M: Message>(&self, msg: M) -> Result<M::Reply, BusError>
    where
        C: Handles<M>,
    {
        self.request_meta(msg, self.bus.root_meta(), None).await
    }

    /// Messages waiting in the instance's mailbox.
    pub fn queued(&self) -> usize {
        self.mailbox.len()
    }

    pub(crate) fn send_meta<M: Message>(&self, msg: M, meta: Meta) -> Result<(), SendError<M>>
    where
        C: Handles<M>,
    {
        let mut slot = Some(msg);
        match self
            .mailbox
            .try_push(|| C::wrap(Envelope::new(slot.take().expect("filled"), None, meta)))
        {
            Ok(()) => Ok(()),
            Err(e) => Err(SendError {
                error: direct_error::<C>(e),
                message: slot.expect("a refused message is not consumed"),
            }),
        }
    }

    pub(crate) async fn request_meta<M: Message>(
        &self,
        msg: M,
        meta: Meta,
        timeout: Option<std::time::Duration>,
    ) -> Result<M::Reply, BusError>
    where
        C: Handles<M>,
    {
        let (reply, rx) = ReplyTo::channel();
        self.mailbox
            .try_push(|| C::wrap(Envelope::new(msg, Some(reply), meta)))
            .map_err(direct_error::<C>)?;
        self.bus
            .await_reply(rx, timeout, || C::name().to_owned())
            .await
    }
}

fn direct_error<C: Component>(e: PushError) -> BusError {
    match e {
        PushError::Full => BusError::MailboxFull {
            topic: C::name().to_owned(),
        },
        PushError::Closed => BusError::Closed,
    }
}

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
    pub(crate) current: Option<Meta>,
    pub(crate) lane: Lane,
    pub(crate) timers: Timers,
    /// This instance's key with the blocked-reactor checker.
    pub(crate) key: u64,
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

    /// The deployment's typed config.
    pub fn config(&self) -> &C::Config {
        &self.shared.config
    }

    /// Cancelled when this instance is being stopped and its deadline has passed, or the runtime
    /// is dropped. Long-running handler work should watch it.
    pub fn cancellation(&self) -> &CancellationToken {
        self.myself.mailbox.cancellation(&self.shared.cancel)
    }

    /// A handle to this instance, e.g. to hand to another component or a spawned task.
    pub fn myself(&self) -> &ActorRef<C> {
        &self.myself
    }

    /// The request id of the message being handled (`None` in `start` / `stop`).
    pub fn request_id(&self) -> Option<Uuid> {
        self.current.as_ref().map(|m| m.request_id)
    }

    /// The correlation id of the envelope being handled.
    pub fn correlation_id(&self) -> Option<Uuid> {
        self.current.as_ref().map(|m| m.correlation_id)
    }

    /// The topic the message being handled was sent to (`None` for a direct message).
    pub fn topic(&self) -> Option<&str> {
        self.current.as_ref().and_then(|m| m.topic.as_deref())
    }

    /// The headers of the envelope being handled.
    pub fn headers(&self) -> &Headers {
        const EMPTY: &Headers = &Headers::new();
        self.current.as_ref().map_or(EMPTY, |m| &m.headers)
    }

    fn meta(&self) -> Meta {
        match &self.current {
            Some(m) => self.shared.bus.child_meta(m.request_id),
            None => self.shared.bus.root_meta(),
        }
    }

    /// [`EventBus::send`], carrying the current request id.
    ///
    /// # Errors
    /// As [`EventBus::send`].
    pub fn send<M: Message, D: Destination<M>>(&self, to: D, msg: M) -> Result<(), SendError<M>> {
        self.shared.bus.send_meta(to.topic(), msg, self.meta())
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

    /// [`EventBus::request`], carrying the current request id.
    ///
    /// # Errors
    /// As [`EventBus::request`].
    pub async fn request<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
    ) -> Result<M::Reply, BusError> {
        self.shared
            .bus
            .request_meta(to.topic(), msg, self.meta(), None)
            .await
    }

    /// [`EventBus::request_with`], carrying the current request id.
    ///
    /// # Errors
    /// As [`EventBus::request`].
    pub async fn request_with<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
        options: RequestOptions,
    ) -> Result<M::Reply, BusError> {
        let mut meta = self.meta();
        let timeout = options.apply(&mut meta);
        self.shared
            .bus
            .request_meta(to.topic(), msg, meta, timeout)
            .await
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
        to.send_meta(msg, self.meta())
    }

    /// Requests directly from another instance, carrying the current request id.
    ///
    /// # Errors
    /// As [`ActorRef::request`].
    pub async fn request_from<T: Handles<M>, M: Message>(
        &self,
        to: &ActorRef<T>,
        msg: M,
    ) -> Result<M::Reply, BusError> {
        to.request_meta(msg, self.meta(), None).await
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
    fn reactor_handle(&self) -> &tokio::runtime::Handle {
        &self.shared.reactors[self.reactor as usize]
    }

    /// Forgets what belonged to the previous component, before a restarted one starts.
    pub(crate) fn reset(&mut self) {
        self.timers.cancel_all();
        self.lane = Lane::default();
        self.current = None;
    }

    /// A snapshot of the whole runtime, as [`Fluxor::inspect`](crate::Fluxor::inspect) takes
    /// it; `None` only while the runtime is being torn down.
    pub fn inspect(&self) -> Option<crate::Snapshot> {
        crate::runtime::inspect_weak(&self.shared.runtime)
    }

    /// Deploys a component from inside a handler (or `start`), exactly as
    /// [`Fluxor::deploy`](crate::Fluxor::deploy) does: the new instances are running when it
    /// returns. A component that deploys others is responsible for undeploying them (e.g. in
    /// its `stop`). [`DeployError::ShuttingDown`](crate::DeployError::ShuttingDown) once the
    /// runtime is going away.
    ///
    /// ```
    /// use fluxor::prelude::*;
    ///
    /// #[derive(Message)]
    /// #[message(reply = u64)]
    /// struct Sum(u64);
    ///
    /// #[component]
    /// #[derive(Default)]
    /// struct Leaf;
    ///
    /// #[component]
    /// impl Leaf {
    ///     #[handler]
    ///     fn sum(&mut self, Sum(n): Sum) -> u64 {
    ///         n
    ///     }
    /// }
    ///
    /// #[component]
    /// #[derive(Default)]
    /// struct Parent;
    ///
    /// #[component]
    /// impl Parent {
    ///     #[handler("tree.sum")]
    ///     async fn sum(&mut self, Sum(n): Sum, ctx: &mut Context<Self>) -> u64 {
    ///         let Ok(children) = ctx.deploy(Leaf::default, DeployOptions::new().instances(2)).await else {
    ///             return 0;
    ///         };
    ///         let mut total = 0;
    ///         for i in 0..2 {
    ///             if let Some(leaf) = ctx.actor_ref::<Leaf>(children, i) {
    ///                 total += leaf.request(Sum(n)).await.unwrap_or(0);
    ///             }
    ///         }
    ///         let _ = ctx.undeploy(children).await;
    ///         total
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let runtime = Fluxor::builder().reactors(1).build().unwrap();
    /// runtime.deploy(Parent::default, DeployOptions::new()).await.unwrap();
    /// assert_eq!(runtime.bus().request("tree.sum", Sum(21)).await.unwrap(), 42);
    /// runtime.shutdown(std::time::Duration::from_secs(5)).await.unwrap();
    /// # }
    /// ```
    pub fn deploy<D, F>(
        &self,
        factory: F,
        options: crate::DeployOptions,
    ) -> impl Future<Output = Result<crate::DeploymentId, crate::DeployError>> + Send + 'static
    where
        D: Component,
        F: Fn() -> D + Send + Sync + 'static,
    {
        // Boxed: a handler that deploys keeps a pointer in its future, not the whole deploy.
        let deploy = crate::runtime::upgrade(&self.shared.runtime)
            .map(|runtime| Box::pin(runtime.deploy(factory, options)));
        async move {
            match deploy {
                Some(deploy) => deploy.await,
                None => Err(crate::DeployError::ShuttingDown),
            }
        }
    }

    /// Undeploys a deployment from inside a handler, as
    /// [`Fluxor::undeploy`](crate::Fluxor::undeploy) does (its instances drain until the
    /// runtime's shutdown timeout, then stop). A handler cannot undeploy its own deployment
    /// this way: [`UndeployError::OwnDeployment`](crate::UndeployError::OwnDeployment).
    pub async fn undeploy(&self, id: crate::DeploymentId) -> Result<(), crate::UndeployError> {
        if id == self.shared.deployment {
            return Err(crate::UndeployError::OwnDeployment(id));
        }
        match crate::runtime::upgrade(&self.shared.runtime) {
            Some(runtime) => Box::pin(runtime.undeploy(id)).await,
            None => Err(crate::UndeployError::Unknown(id)),
        }
    }

    /// An [`ActorRef`] to instance `instance` of deployment `id`, if it runs a `D`; see
    /// [`Fluxor::actor_ref`](crate::Fluxor::actor_ref).
    pub fn actor_ref<D: Component>(
        &self,
        id: crate::DeploymentId,
        instance: usize,
    ) -> Option<ActorRef<D>> {
        crate::runtime::upgrade(&self.shared.runtime)?.actor_ref(id, instance)
    }

    /// The runtime's worker pool.
    pub fn workers(&self) -> &WorkerPool {
        &self.shared.workers
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
            .workers
            .try_submit_with(self.cancellation().clone(), Some(&self.lane), move |_| f())
            .unwrap_or_else(BlockingTask::failed)
    }

    /// Unpacks an envelope for its handler: records its ids and headers in the context and
    /// returns the message with the [`Responder`] that answers its requester.
    pub fn accept<M: Message>(&mut self, envelope: Envelope<M>) -> (M, Responder<M::Reply>) {
        let Envelope { msg, reply, meta } = envelope;
        let responder = Responder {
            reply,
            component: C::name(),
            deployment: self.shared.deployment,
            topic: meta.topic.clone(),
            correlation_id: meta.correlation_id,
            request_id: meta.request_id,
        };
        self.stamp().topic(meta.topic.as_ref());
        self.current = Some(meta);
        (msg, responder)
    }
}

/// Answers one message's requester with what its handler returns.
///
/// Obtained from [`Context::accept`]; [`run`](Self::run) drives the handler inside a tracing
/// span and catches its panics, so a failing handler never takes its reactor down.
pub struct Responder<R> {
    reply: ReplyTo<R>,
    component: &'static str,
    deployment: DeploymentId,
    topic: Option<Arc<str>>,
    correlation_id: Uuid,
    request_id: Uuid,
}

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
    pub fn run<F, T>(self, handler: F) -> Run<F, R>
    where
        F: Future<Output = T>,
        T: IntoReply<R>,
    {
        Run {
            handler: catch_unwind(handler).instrument(self.span()),
            responder: Some(self),
            answer: Responder::answer::<T>,
        }
    }

    /// Runs a plain (not `async`) handler at once, inside the same span as [`run`](Self::run),
    /// answers the requester and reports the [`Outcome`]; a panic is caught as `run` catches it.
    pub fn run_now<T: IntoReply<R>>(self, handler: impl FnOnce() -> T) -> Outcome {
        let result = {
            let span = self.span();
            let _entered = span.enter();
            std::panic::catch_unwind(AssertUnwindSafe(handler))
        };
        self.answer(result)
    }

    /// The span a handler runs in.
    fn span(&self) -> tracing::Span {
        tracing::debug_span!(
            "fluxor.handle",
            component = self.component,
            topic = self.topic.as_deref().unwrap_or(""),
            deployment = %self.deployment,
            correlation_id = %self.correlation_id,
            request_id = %self.request_id,
        )
    }

    /// Answers the requester with what the handler produced, and says how it went.
    fn answer<T: IntoReply<R>>(self, result: Result<T, Box<dyn Any + Send>>) -> Outcome {
        let (reply, outcome) = match result {
            Ok(value) => match value.into_reply() {
                Ok(v) => (Ok(v), Outcome::Handled),
                Err(reason) => (Err(reason.clone()), Outcome::Failed(reason)),
            },
            Err(panic) => {
                let reason = panic_message(&*panic);
                (Err(reason.clone()), Outcome::Panicked(reason))
            }
        };
        if self.reply.expected() {
            self.reply
                .send(reply.map_err(|reason| BusError::RecipientFailed {
                    topic: self.topic.as_deref().unwrap_or(self.component).to_owned(),
                    reason,
                }));
        }
        outcome
    }
}

pin_project_lite::pin_project! {
    /// A handler run by [`Responder::run`]: resolves to the handler's [`Outcome`] once its
    /// requester has been answered.
    #[must_use = "a handler does nothing unless its run is awaited"]
    pub struct Run<F: Future, R> {
        #[pin]
        handler: tracing::instrument::Instrumented<CatchUnwind<F>>,
        responder: Option<Responder<R>>,
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
        let result = std::task::ready!(this.handler.poll(cx));
        match this.responder.take() {
            Some(responder) => Poll::Ready((this.answer)(responder, result)),
            // Polled again after it finished: the answer has gone already.
            None => Poll::Ready(Outcome::Handled),
        }
    }
}

pin_project_lite::pin_project! {
    /// Polls a future, turning a panic during any poll into an `Err` with the panic payload.
    pub(crate) struct CatchUnwind<F> {
        #[pin]
        inner: F,
    }
}

/// Catches the panics of `fut`'s polls (see [`CatchUnwind`]).
pub(crate) fn catch_unwind<F: Future>(fut: F) -> CatchUnwind<F> {
    CatchUnwind { inner: fut }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        format!("panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked with a non-string payload".to_owned()
    }
}
