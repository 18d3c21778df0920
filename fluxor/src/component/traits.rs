//! The [`Component`] trait and what it declares: worker mode, direct messages, outcomes.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use serde::de::DeserializeOwned;

use super::{Bindings, Context};
use crate::error::BoxError;
use crate::message::{Envelope, Message};
use crate::runtime::InstanceTask;
use crate::supervision::Supervision;

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
    /// The typed config, deserialized from [`DeployOptions::config`](crate::runtime::DeployOptions::config)
    /// at deploy time. Use `()` for none.
    type Config: DeserializeOwned + Send + Sync + 'static;

    /// The name shown in logs, spans and errors.
    fn name() -> &'static str {
        std::any::type_name::<Self>()
    }

    /// Whether instances run as *worker components* by default: their handlers run on the
    /// worker pool, where blocking is allowed, one call at a time. `#[component(worker)]`
    /// returns `Some(WorkerMode::new())`, which requires the component to be `Send` (it moves
    /// between threads). [`DeployOptions::worker`](crate::runtime::DeployOptions::worker) overrides the
    /// default per deployment.
    fn worker_mode() -> Option<WorkerMode<Self>> {
        None
    }

    /// What the runtime does when a handler of this component panics. `#[component(supervise
    /// = expr)]` sets it; [`DeployOptions::supervision`](crate::runtime::DeployOptions::supervision)
    /// overrides it per deployment. Default: [`Supervision::default`]. Called when an
    /// instance crashes (a deployment keeps this function, not the policy it makes), so it
    /// should make the same plain value every time (as an expression like
    /// `Supervision::restart().max_restarts(3)` does).
    fn supervision() -> Supervision {
        Supervision::default()
    }

    /// The names of the components a deployment of this one needs running first, when it is
    /// started by a [`BootPlan`](crate::BootPlan). `#[component(after = [Ledger, Inventory])]`
    /// sets it. Default: none.
    fn after() -> &'static [&'static str] {
        &[]
    }

    /// Declares the topics this component consumes. They are registered when every instance of
    /// a deployment has started and removed when it stops.
    fn bindings(bindings: &mut Bindings<'_, Self>) {
        let _ = bindings;
    }

    /// Whether [`start`](Self::start) finishes at its first poll (no `#[on_start]`, or a plain
    /// method): the runtime then runs it while it makes the instance (for a deploy from a
    /// handler on the instance's reactor, inside that handler's turn), and the deploy need not
    /// wait for the instance's first turn on its reactor. Worker components start on the
    /// worker pool whatever it says. `#[component]` sets it; an implementation by hand keeps
    /// the default.
    #[doc(hidden)]
    const START_AT_ONCE: bool = false;

    /// Whether [`stop`](Self::stop) finishes at its first poll (no `#[on_stop]`, or a plain
    /// method): an instance with nothing left to drain then stops within its last turn,
    /// without a future for its stop sequence. Worker components stop on the worker pool
    /// whatever it says. `#[component]` sets it; an implementation by hand keeps the default.
    #[doc(hidden)]
    const STOP_AT_ONCE: bool = false;

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

    /// Handles one message. Use [`Context::accept`] and [`Responder::run`](crate::Responder::run) per variant.
    fn handle(&mut self, msg: Self::Msg, ctx: &mut Context<Self>) -> impl Future<Output = Outcome>;

    /// Handles `msg` in place, without a future, when its handler is a plain (not `async`)
    /// method, exactly as [`handle`](Self::handle) would; hands the message back otherwise.
    /// The runtime tries this first, so plain handlers cost no future per message.
    /// `#[component]` implements it (with [`Responder::run_now`](crate::Responder::run_now)); the default hands every
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
/// [`ActorRef::send`](crate::ActorRef::send) / [`ActorRef::request`](crate::ActorRef::request). `#[component]` implements it for each
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

/// What handling one message came to. Returned by [`Responder::run`](crate::Responder::run).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The handler returned normally.
    Handled,
    /// The handler returned an `Err`; its text went to the requester, if any.
    Failed(String),
    /// The handler panicked; the panic message went to the requester, if any.
    Panicked(String),
    /// The requester had gone before the handler ran (it dropped its request, e.g. an HTTP
    /// client that gave up, or stopped waiting at its deadline): the handler was skipped.
    Abandoned,
}
