//! The event bus: publish / send / request over topics, with typed addresses.

mod registry;

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use crate::address::{validate_topic, Destination};
use crate::error::{BusError, PublishError, SendError};
use crate::message::{Envelope, Headers, IdGen, Message, Meta, ReplyTo};
use crate::runtime::DeploymentId;

pub(crate) use registry::{Consumer, Delivery, Entry, MailboxConsumer, Owner, Registry};

/// The event bus: every component's way to reach every other.
///
/// Cheap to clone (a reference count); every clone is the same bus. Get it from
/// [`Fluxor::bus`](crate::Fluxor::bus) or, inside a handler, from
/// [`Context::bus`](crate::Context::bus) — though a handler should prefer the `Context`'s own
/// `send` / `request` / `publish`, which carry the request id of the message being handled.
///
/// * [`publish`](Self::publish): every consumer of the topic receives a clone.
/// * [`send`](Self::send): exactly one consumer receives it, round-robin.
/// * [`request`](Self::request): one consumer receives it; its reply is awaited with a timeout.
///
/// Nothing blocks: a full mailbox answers [`BusError::MailboxFull`] at once and hands the
/// message back; [`send_timeout`](Self::send_timeout) waits for room up to a deadline instead.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

struct BusInner {
    registry: Registry,
    ids: IdGen,
    default_timeout: Duration,
    closed: AtomicBool,
    /// Round-robin cursor for topics served only by pattern subscribers.
    pattern_cursor: AtomicUsize,
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.inner.registry.load();
        f.debug_struct("EventBus")
            .field("topics", &snap.exact.len())
            .field("patterns", &snap.patterns.len())
            .field("default_timeout", &self.inner.default_timeout)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

/// Per-request options: timeout and headers.
///
/// ```
/// use std::time::Duration;
/// use fluxor::RequestOptions;
///
/// let opts = RequestOptions::new()
///     .timeout(Duration::from_millis(250))
///     .header("tenant", "acme");
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    timeout: Option<Duration>,
    headers: Headers,
    request_id: Option<Uuid>,
}

impl RequestOptions {
    /// The defaults: the runtime's request timeout, no headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits at most `timeout` for the reply.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Adds a header to the envelope.
    pub fn header(
        mut self,
        key: impl Into<std::borrow::Cow<'static, str>>,
        value: impl Into<String>,
    ) -> Self {
        self.headers.insert(key, value);
        self
    }

    /// Makes the request part of an existing chain (e.g. an incoming HTTP request's id)
    /// instead of starting a new one: handlers see it as [`Context::request_id`](crate::Context::request_id).
    pub fn request_id(mut self, id: Uuid) -> Self {
        self.request_id = Some(id);
        self
    }

    /// Puts the headers and request id into `meta`; returns the timeout.
    pub(crate) fn apply(self, meta: &mut Meta) -> Option<Duration> {
        meta.headers = self.headers;
        if let Some(id) = self.request_id {
            meta.request_id = id;
        }
        self.timeout
    }

    /// Replaces all headers.
    pub fn headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }
}

impl EventBus {
    pub(crate) fn new(default_timeout: Duration) -> Self {
        EventBus {
            inner: Arc::new(BusInner {
                registry: Registry::new(),
                ids: IdGen::new(),
                default_timeout,
                closed: AtomicBool::new(false),
                pattern_cursor: AtomicUsize::new(0),
            }),
        }
    }

    /// Sends `msg` to one consumer of the topic (round-robin), without waiting.
    ///
    /// # Errors
    /// [`BusError::NoHandlers`], [`BusError::MailboxFull`] (every consumer is full),
    /// [`BusError::TypeMismatch`], [`BusError::Closed`]; the message is handed back in the
    /// [`SendError`].
    pub fn send<M: Message, D: Destination<M>>(&self, to: D, msg: M) -> Result<(), SendError<M>> {
        self.send_meta(to.topic(), msg, self.root_meta())
    }

    /// Like [`send`](Self::send), but when the chosen consumer's mailbox is full, waits up to
    /// `timeout` for room instead of failing at once.
    ///
    /// # Errors
    /// As [`send`](Self::send); `MailboxFull` means no room appeared in time.
    ///
    /// # Cancel safety
    /// Dropping the future before it completes drops the message undelivered.
    pub async fn send_timeout<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
        timeout: Duration,
    ) -> Result<(), SendError<M>> {
        self.send_wait_meta(to.topic(), msg, self.root_meta(), timeout)
            .await
    }

    /// Delivers a clone of `msg` to every consumer of the topic, exact and wildcard. Returns
    /// how many consumers received it (0 when nobody subscribes).
    ///
    /// # Errors
    /// A [`PublishError`] listing the consumers that were full, stopped or of another type;
    /// the others received the message.
    pub fn publish<M: Message + Clone, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
    ) -> Result<usize, PublishError> {
        self.publish_meta(to.topic(), msg, self.root_meta())
    }

    /// Sends `msg` to one consumer and waits for its reply, up to the runtime's default
    /// request timeout (30 s unless configured).
    ///
    /// ```no_run
    /// # use fluxor::{Address, EventBus, Message};
    /// # struct Add(u64);
    /// # impl Message for Add { type Reply = u64; }
    /// # const ADD: Address<Add> = Address::new("counter.add");
    /// # async fn demo(bus: EventBus) -> Result<(), fluxor::BusError> {
    /// let total: u64 = bus.request(ADD, Add(2)).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Every [`BusError`]: delivery errors as for [`send`](Self::send), then `Timeout`,
    /// `RecipientFailed` (the handler returned an error or panicked), `Closed` (the recipient
    /// stopped before answering).
    ///
    /// # Panics
    /// Must be awaited inside a tokio runtime with the time driver enabled (every reactor is
    /// one, as is `#[tokio::main]`).
    pub async fn request<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
    ) -> Result<M::Reply, BusError> {
        self.request_meta(to.topic(), msg, self.root_meta(), None)
            .await
    }

    /// [`request`](Self::request) with a timeout and headers of its own.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn request_with<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
        options: RequestOptions,
    ) -> Result<M::Reply, BusError> {
        let mut meta = self.root_meta();
        let timeout = options.apply(&mut meta);
        self.request_meta(to.topic(), msg, meta, timeout).await
    }

    /// How many consumers (exact and wildcard) would receive a publish on `topic`.
    pub fn consumer_count(&self, topic: &str) -> usize {
        self.inner.registry.load().resolve(topic).len()
    }

    /// Exact topics and wildcard patterns with their consumer counts, each sorted.
    pub(crate) fn subscriptions(&self) -> (Counts, Counts) {
        let snap = self.inner.registry.load();
        let mut topics: Vec<(String, usize)> = snap
            .exact
            .iter()
            .map(|(t, r)| (t.to_string(), r.consumers.len()))
            .collect();
        topics.sort();
        let mut patterns: std::collections::BTreeMap<String, usize> =
            std::collections::BTreeMap::new();
        for e in snap.patterns.iter() {
            *patterns.entry(e.pattern.to_string()).or_default() += 1;
        }
        (topics, patterns.into_iter().collect())
    }

    /// The default request timeout.
    pub fn default_timeout(&self) -> Duration {
        self.inner.default_timeout
    }

    /// Whether the runtime has shut the bus down.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    // ----- crate-internal core, shared by the bus, `Context` and `ActorRef` -----

    pub(crate) fn root_meta(&self) -> Meta {
        Meta::root(&self.inner.ids)
    }

    pub(crate) fn child_meta(&self, request_id: Uuid) -> Meta {
        Meta::child(&self.inner.ids, request_id)
    }

    pub(crate) fn register(&self, entries: Vec<Entry>) {
        self.inner.registry.add(entries);
    }

    /// Removes the bindings of a whole deployment.
    pub(crate) fn unregister(&self, deployment: DeploymentId) -> usize {
        self.inner
            .registry
            .remove_owners(|o| o.deployment == deployment)
    }

    /// Removes the bindings of one instance.
    pub(crate) fn unregister_instance(&self, owner: Owner) -> usize {
        self.inner.registry.remove_owners(|o| *o == owner)
    }

    pub(crate) fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.registry.clear();
    }

    /// Refuses user messages on the reserved `fluxor.` prefix.
    fn guard(topic: &str) -> Result<(), BusError> {
        if topic.starts_with(RESERVED) {
            return Err(BusError::InvalidTopic {
                topic: topic.to_owned(),
                reason: format!("topics under `{RESERVED}` are reserved for the runtime's own events; subscribe to them, but send your messages elsewhere"),
            });
        }
        Ok(())
    }

    /// The consumers of `topic`. A topic found among the exact routes is valid by
    /// construction; any other is checked, so a malformed topic is reported as such rather
    /// than as `NoHandlers`.
    fn lookup<'a>(
        &self,
        snap: &'a registry::Snapshot,
        topic: &str,
    ) -> Result<registry::Resolved<'a>, BusError> {
        if self.is_closed() {
            return Err(BusError::Closed);
        }
        let resolved = snap.resolve(topic);
        // The runtime's own topics (users cannot send there) are valid by construction.
        if !matches!(resolved, registry::Resolved::Route(_)) && !topic.starts_with(RESERVED) {
            validate_topic(topic).map_err(|e| BusError::InvalidTopic {
                topic: topic.to_owned(),
                reason: e.kind().to_string(),
            })?;
        }
        Ok(resolved)
    }

    pub(crate) fn send_meta<M: Message>(
        &self,
        topic: &str,
        msg: M,
        meta: Meta,
    ) -> Result<(), SendError<M>> {
        self.send_envelope(topic, Envelope::new(msg, None, meta))
            .map_err(|(error, env)| SendError {
                error,
                message: env.msg,
            })
    }

    /// Delivers to one consumer, trying the others when the chosen one is full. The envelope
    /// comes back by value on failure, so the caller can hand the message back unboxed.
    #[allow(clippy::result_large_err)]
    fn send_envelope<M: Message>(
        &self,
        topic: &str,
        mut env: Envelope<M>,
    ) -> Result<(), (BusError, Envelope<M>)> {
        let snap = self.inner.registry.load();
        let resolved = match self.lookup(&snap, topic) {
            Ok(r) => r,
            Err(e) => return Err((e, env)),
        };
        let n = resolved.len();
        if n == 0 {
            return Err((no_handlers(topic), env));
        }
        env.meta.topic = Some(topic_arc(resolved.route(), topic));
        let start = self
            .cursor(resolved.route())
            .fetch_add(1, Ordering::Relaxed);
        let mut slot = Some(env);
        let mut outcome = Outcome::default();
        for i in 0..n {
            let entry = resolved.get((start + i) % n);
            match entry.consumer.try_deliver(&mut slot as &mut dyn Any) {
                Delivery::Delivered => return Ok(()),
                other => outcome.note(other, entry.consumer.message_type()),
            }
        }
        let env = slot.expect("an undelivered envelope stays in its slot");
        Err((outcome.error::<M>(topic), env))
    }

    pub(crate) async fn send_wait_meta<M: Message>(
        &self,
        topic: &str,
        msg: M,
        meta: Meta,
        timeout: Duration,
    ) -> Result<(), SendError<M>> {
        let env = Envelope::new(msg, None, meta);
        let mut slot = match self.send_envelope(topic, env) {
            Ok(()) => return Ok(()),
            Err((BusError::MailboxFull { .. }, env)) => Some(env),
            Err((error, env)) => {
                return Err(SendError {
                    error,
                    message: env.msg,
                })
            }
        };
        // Every consumer was full: wait for room at the next one in round-robin order. The
        // snapshot guard is not held across the wait.
        let deadline = Instant::now() + timeout;
        let entry = {
            let snap = self.inner.registry.load();
            let resolved = snap.resolve(topic);
            let n = resolved.len();
            (n > 0).then(|| {
                let i = self
                    .cursor(resolved.route())
                    .fetch_add(1, Ordering::Relaxed)
                    % n;
                resolved.get(i).consumer.clone()
            })
        };
        let Some(consumer) = entry else {
            let env = slot
                .take()
                .expect("an undelivered envelope stays in its slot");
            return Err(SendError {
                error: no_handlers(topic),
                message: env.msg,
            });
        };
        let result = consumer.deliver_until(&mut slot, deadline).await;
        match slot {
            None => Ok(()),
            Some(env) => {
                let mut outcome = Outcome::default();
                outcome.note(result, consumer.message_type());
                Err(SendError {
                    error: outcome.error::<M>(topic),
                    message: env.msg,
                })
            }
        }
    }

    pub(crate) fn publish_meta<M: Message + Clone>(
        &self,
        topic: &str,
        msg: M,
        meta: Meta,
    ) -> Result<usize, PublishError> {
        Self::guard(topic).map_err(|e| PublishError {
            topic: topic.to_owned(),
            delivered: 0,
            failures: vec![e],
        })?;
        self.publish_unguarded(topic, msg, meta)
    }

    /// Publishes on any topic, the reserved ones included (the runtime's own events).
    pub(crate) fn publish_unguarded<M: Message + Clone>(
        &self,
        topic: &str,
        msg: M,
        mut meta: Meta,
    ) -> Result<usize, PublishError> {
        let fail = |e: BusError| PublishError {
            topic: topic.to_owned(),
            delivered: 0,
            failures: vec![e],
        };
        let snap = self.inner.registry.load();
        let resolved = self.lookup(&snap, topic).map_err(fail)?;
        let n = resolved.len();
        if n == 0 {
            return Ok(0);
        }
        meta.topic = Some(topic_arc(resolved.route(), topic));
        let mut delivered = 0;
        let mut failures = Vec::new();
        let mut last = Some(msg);
        for i in 0..n {
            let entry = resolved.get(i);
            let copy = if i + 1 == n {
                last.take()
                    .expect("the original is used for the last consumer")
            } else {
                last.as_ref()
                    .expect("the original is kept until the last consumer")
                    .clone()
            };
            let mut slot = Some(Envelope::new(copy, None, meta.clone()));
            match entry.consumer.try_deliver(&mut slot as &mut dyn Any) {
                Delivery::Delivered => delivered += 1,
                other => {
                    let mut outcome = Outcome::default();
                    outcome.note(other, entry.consumer.message_type());
                    failures.push(outcome.error::<M>(topic));
                }
            }
        }
        if failures.is_empty() {
            Ok(delivered)
        } else {
            Err(PublishError {
                topic: topic.to_owned(),
                delivered,
                failures,
            })
        }
    }

    pub(crate) async fn request_meta<M: Message>(
        &self,
        topic: &str,
        msg: M,
        meta: Meta,
        timeout: Option<Duration>,
    ) -> Result<M::Reply, BusError> {
        let (reply, rx) = ReplyTo::channel();
        self.send_envelope(topic, Envelope::new(msg, Some(reply), meta))
            .map_err(|(e, _)| e)?;
        self.await_reply(rx, timeout, || topic.to_owned()).await
    }

    pub(crate) async fn await_reply<R: 'static>(
        &self,
        rx: crate::message::Reply<R>,
        timeout: Option<Duration>,
        topic: impl FnOnce() -> String,
    ) -> Result<R, BusError> {
        let after = timeout.unwrap_or(self.inner.default_timeout);
        match rx.within(after).await {
            Ok(Some(reply)) => reply,
            Ok(None) => Err(BusError::Closed),
            Err(crate::message::Elapsed) => Err(BusError::Timeout {
                topic: topic(),
                after,
            }),
        }
    }

    fn cursor<'a>(&'a self, route: Option<&'a registry::Route>) -> &'a AtomicUsize {
        route.map_or(&self.inner.pattern_cursor, |r| &r.cursor)
    }
}

/// Topics or patterns with their consumer counts.
pub(crate) type Counts = Vec<(String, usize)>;

/// The prefix of the runtime's own topics.
pub(crate) const RESERVED: &str = "fluxor.";

fn no_handlers(topic: &str) -> BusError {
    BusError::NoHandlers {
        topic: topic.to_owned(),
    }
}

fn topic_arc(route: Option<&registry::Route>, topic: &str) -> Arc<str> {
    route.map_or_else(|| Arc::from(topic), |r| r.topic.clone())
}

/// The worst thing that happened across delivery attempts, reported in this order:
/// full, closed, type mismatch.
#[derive(Default)]
struct Outcome {
    full: bool,
    closed: bool,
    mismatch: Option<&'static str>,
}

impl Outcome {
    fn note(&mut self, d: Delivery, consumer_type: &'static str) {
        match d {
            Delivery::Delivered => {}
            Delivery::Full => self.full = true,
            Delivery::Closed => self.closed = true,
            Delivery::TypeMismatch => self.mismatch = Some(consumer_type),
        }
    }

    fn error<M>(&self, topic: &str) -> BusError {
        if self.full {
            BusError::MailboxFull {
                topic: topic.to_owned(),
            }
        } else if self.closed {
            BusError::Closed
        } else {
            BusError::TypeMismatch {
                topic: topic.to_owned(),
                expected: self.mismatch.unwrap_or("?"),
                found: std::any::type_name::<M>(),
            }
        }
    }
}
