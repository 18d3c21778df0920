//! Error types. Each says what went wrong and, where a value was not delivered, hands it back.

use std::fmt;
use std::time::Duration;

use crate::ids::DeploymentId;

/// A boxed error, as returned by a component's `start` and `stop`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a bus operation did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// No consumer is registered for the topic.
    #[error(
        "no handler is registered for topic `{topic}`; deploy a component that handles it first"
    )]
    NoHandlers {
        /// The topic.
        topic: String,
    },
    /// No reply arrived within the request's timeout.
    #[error("no reply on topic `{topic}` within {after:?}; raise the timeout with `.timeout(..)` or check the handler")]
    Timeout {
        /// The topic.
        topic: String,
        /// How long the requester waited.
        after: Duration,
    },
    /// Every eligible consumer's mailbox is full.
    #[error("the mailbox of every consumer of `{topic}` is full; retry later, wait for capacity with `send_timeout`, or raise the mailbox capacity")]
    MailboxFull {
        /// The topic (or the component name, for direct messages).
        topic: String,
    },
    /// A handler requested something only its own instance serves: the instance handles one
    /// message at a time, so it would wait for itself until the request timed out.
    #[error("`{component}` requested `{topic}`, which only it serves, from one of its own handlers: it would wait for itself until the timeout; send without waiting (`ctx.send`), call the method directly, or deploy more instances")]
    AskCycle {
        /// The topic (or the component name, for direct messages).
        topic: String,
        /// The component that asked itself.
        component: &'static str,
    },
    /// The handler returned an error or panicked.
    #[error("the handler of `{topic}` failed: {reason}")]
    RecipientFailed {
        /// The topic (or the component name, for direct messages).
        topic: String,
        /// The handler's error text or panic message.
        reason: String,
    },
    /// Consumers exist for the topic, but none takes this message type.
    #[error("consumers of `{topic}` take `{expected}`, not `{found}`")]
    TypeMismatch {
        /// The topic.
        topic: String,
        /// The message type the consumers accept.
        expected: &'static str,
        /// The message type that was sent.
        found: &'static str,
    },
    /// The topic is malformed (empty, whitespace, or a wildcard where a concrete topic is needed).
    #[error("invalid topic `{topic}`: {reason}")]
    InvalidTopic {
        /// The topic.
        topic: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The recipient stopped, or the runtime is shutting down.
    #[error("the recipient stopped or the runtime shut down before the message was handled")]
    Closed,
    /// A message or reply from another node could not be decoded: an unknown wire name, bytes
    /// that are not a valid encoding of the type, or a codec of another format.
    #[error("a message on `{topic}` could not be decoded: {reason}")]
    Undecodable {
        /// The topic.
        topic: String,
        /// What did not decode.
        reason: String,
    },
    /// The cluster cannot take the message now: the connection to the broker is down, or its
    /// outgoing queue is full. Answered at once, never after a timeout.
    #[error("`{topic}` is served on other nodes, which cannot be reached now: {reason}")]
    Unreachable {
        /// The topic.
        topic: String,
        /// Why (disconnected, outgoing queue full).
        reason: String,
    },
}

/// A message that could not be delivered, handed back with the reason.
#[derive(thiserror::Error)]
#[error("{error}")]
#[non_exhaustive]
pub struct SendError<M> {
    /// Why it was not delivered.
    pub error: BusError,
    /// The message, untouched.
    pub message: M,
}

impl<M> SendError<M> {
    /// The undelivered message.
    pub fn into_inner(self) -> M {
        self.message
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("error", &self.error)
            .field("message", &std::any::type_name::<M>())
            .finish()
    }
}

impl<M> From<SendError<M>> for BusError {
    fn from(e: SendError<M>) -> Self {
        e.error
    }
}

/// A publish that did not reach every consumer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("publish on `{topic}` reached {delivered} consumer(s) but failed for {}: {}", failures.len(), failures.first().map(|e| e.to_string()).unwrap_or_default())]
#[non_exhaustive]
pub struct PublishError {
    /// The topic.
    pub topic: String,
    /// How many consumers received the message.
    pub delivered: usize,
    /// One error per consumer that did not.
    pub failures: Vec<BusError>,
}

/// Why a [`BootPlan`](crate::BootPlan) did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootError {
    /// Two deployments of the plan have one name.
    #[error("two deployments of the plan are named `{name}`; give each its own name")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// A deployment needs one the plan does not have.
    #[error("`{name}` needs `{needs}`, which the plan does not deploy; add it or drop the need")]
    UnknownNeed {
        /// The deployment.
        name: String,
        /// What it needs.
        needs: String,
    },
    /// Deployments need each other in a cycle; nothing was started.
    #[error("deployments need each other in a cycle: {}; nothing was started", cycle.join(" -> "))]
    Cycle {
        /// The cycle, its first name repeated at the end.
        cycle: Vec<String>,
    },
    /// A deployment failed to start; what needed it was not started.
    #[error("`{name}` failed to start ({error}); not started because of it: {}", if skipped.is_empty() { "none".to_owned() } else { skipped.join(", ") })]
    Failed {
        /// The deployment that failed.
        name: String,
        /// Why.
        error: Box<DeployError>,
        /// What was started before (still deployed), by name.
        started: std::collections::BTreeMap<String, DeploymentId>,
        /// What was not started: the later levels of the plan.
        skipped: Vec<String>,
    },
}

/// Why a deployment failed. Nothing of a failed deployment stays registered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// The options are inconsistent.
    #[error("invalid deploy options: {0}")]
    InvalidOptions(String),
    /// The config could not be turned into the component's config type.
    #[error("the config for `{component}` does not fit its config type: {source}")]
    Config {
        /// The component type.
        component: &'static str,
        /// The deserialization error.
        source: serde_json::Error,
    },
    /// A handler topic is not a valid topic pattern.
    #[error("component `{component}` binds an invalid topic: {reason}")]
    InvalidTopic {
        /// The component type.
        component: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An instance's factory or `start` failed, panicked or timed out; the instances that had
    /// started were stopped again.
    #[error("instance {instance} of `{component}` failed to start: {reason}")]
    StartFailed {
        /// The component type.
        component: &'static str,
        /// Which instance.
        instance: usize,
        /// The error, panic message or timeout.
        reason: String,
        /// Errors met while stopping the instances that had started.
        rollback: Vec<StopError>,
    },
    /// The runtime is shutting down or has shut down.
    #[error("the runtime is shutting down; no new deployments are accepted")]
    ShuttingDown,
}

/// Why [`Fluxor::reconfigure`](crate::Fluxor::reconfigure) changed nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconfigureError {
    /// No live deployment has this id.
    #[error("no live deployment has id {0}; it was never deployed or is already undeployed")]
    Unknown(DeploymentId),
    /// The new config does not fit the component's config type (or could not be serialized);
    /// the old config stays.
    #[error("the new config was refused, the old one stays: {0}")]
    Invalid(DeployError),
}

/// Why undeploying failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UndeployError {
    /// No live deployment has this id (it never existed or was already undeployed).
    #[error("no live deployment has id {0}; it was never deployed or is already undeployed")]
    Unknown(DeploymentId),
    /// The deployment was removed, but stopping some instances went wrong.
    #[error("deployment {id} was undeployed with {} error(s): {}", errors.len(), join(errors))]
    Stop {
        /// The deployment.
        id: DeploymentId,
        /// One entry per problem.
        errors: Vec<StopError>,
    },
    /// A handler asked to undeploy its own deployment and wait for it: it would wait for
    /// itself. Undeploy it from another component (e.g. the one that deployed it) or from
    /// outside the runtime.
    #[error("deployment {0} is the caller's own: a handler cannot wait for its own deployment to stop; call `ctx.stop()` to stop it once the handler returns")]
    OwnDeployment(DeploymentId),
}

/// Something that went wrong while stopping one component instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StopError {
    /// The component's `stop` returned an error or panicked.
    #[error("`{component}` instance {instance}: stop failed: {reason}")]
    Failed {
        /// The component type.
        component: &'static str,
        /// Which instance.
        instance: usize,
        /// The error or panic message.
        reason: String,
    },
    /// The deadline passed before the instance finished draining and stopping.
    #[error("`{component}` instance {instance}: the stop deadline passed with {undelivered} message(s) unhandled and {interrupted} handler(s) still running (cancelled); their requesters were told `Closed`")]
    DeadlineExceeded {
        /// The component type.
        component: &'static str,
        /// Which instance.
        instance: usize,
        /// Messages that were dropped unhandled.
        undelivered: usize,
        /// Messages whose handler was still running at the deadline (0 or 1): its work was
        /// cancelled and it is not counted as handled.
        interrupted: usize,
    },
    /// The instance's reactor is gone.
    #[error("`{component}` instance {instance}: its reactor stopped unexpectedly")]
    ReactorLost {
        /// The component type.
        component: &'static str,
        /// Which instance.
        instance: usize,
    },
}

impl StopError {
    /// The instance the error is about.
    pub fn instance(&self) -> usize {
        match self {
            StopError::Failed { instance, .. }
            | StopError::DeadlineExceeded { instance, .. }
            | StopError::ReactorLost { instance, .. } => *instance,
        }
    }
}

/// Everything that went wrong during [`Fluxor::shutdown`](crate::Fluxor::shutdown).
#[derive(Debug, thiserror::Error)]
#[error("shutdown finished with {} error(s): {}", errors.len(), join(errors))]
#[non_exhaustive]
pub struct ShutdownError {
    /// One entry per problem, in the order they happened.
    pub errors: Vec<ShutdownIssue>,
}

/// One problem met during shutdown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownIssue {
    /// Stopping a component instance went wrong.
    #[error("deployment {deployment}: {error}")]
    Stop {
        /// The deployment.
        deployment: DeploymentId,
        /// The problem.
        error: StopError,
    },
    /// A reactor thread did not exit before the deadline, most often because a handler holds
    /// it (blocking code on a reactor).
    #[error("reactor {reactor} did not exit before the deadline{}", running.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    ReactorStuck {
        /// Which reactor.
        reactor: usize,
        /// The handler running on it, in words, if one was.
        running: Option<String>,
    },
    /// Worker threads were still running blocking tasks at the deadline.
    #[error("{0} worker thread(s) were still running blocking tasks at the deadline")]
    WorkersBusy(usize),
    /// A reactor thread panicked.
    #[error("reactor {0} panicked")]
    ReactorPanicked(usize),
}

/// Why the runtime could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// An option is out of range.
    #[error("invalid runtime option: {0}")]
    InvalidOption(String),
    /// A worker thread could not be started.
    #[error("could not start the worker pool: {0}")]
    Workers(std::io::Error),
    /// A reactor thread or its tokio runtime could not be created.
    #[error("could not start reactor {index}: {source}")]
    Reactor {
        /// Which reactor.
        index: usize,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The cluster transport could not be set up (feature `cluster`): a bad option, an
    /// unreadable credentials file, or its thread could not start.
    #[error("could not set up the cluster: {0}")]
    Cluster(String),
}

fn join<E: fmt::Display>(errors: &[E]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}
