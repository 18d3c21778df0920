//! [`EventBus`]: the routing policy. What a user may send where (the reserved prefix), what a
//! request waits for and how long, and which error a caller sees; delivery itself is the
//! transport's.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use uuid::Uuid;

use super::asking::{Asking, ByTopic};
use super::inbound::Inbound;
use super::local::LocalTransport;
use super::options::RequestOptions;
use super::registry::{Entry, Owner};
use super::transport::{Delivery, How, Parcel, Publication, Published, Requester, Transport};
use super::RESERVED;
use crate::address::Destination;
use crate::error::{BusError, PublishError, SendError};
use crate::ids::{DeploymentId, IdGen};
use crate::message::{Envelope, Message, Meta, ReplyTo};

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
    pub(super) inner: Arc<BusInner>,
}

pub(super) struct BusInner {
    /// The embedded transport: this process's consumers.
    pub(super) local: LocalTransport,
    ids: IdGen,
    default_timeout: Duration,
    closed: AtomicBool,
    /// The transport to other nodes, when a cluster is configured.
    remote: OnceLock<Remote>,
}

/// The transport to other nodes and how the bus uses it.
struct Remote {
    transport: Arc<dyn Transport>,
    /// Sends and requests of remote-capable messages go through the cluster even when a local
    /// consumer exists.
    balance: bool,
}

/// A handle on the bus that does not keep it alive (held by a transport the bus holds).
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
#[derive(Clone)]
pub(crate) struct WeakBus(Weak<BusInner>);

impl WeakBus {
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn upgrade(&self) -> Option<EventBus> {
        self.0.upgrade().map(|inner| EventBus { inner })
    }
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.inner.local.snapshot();
        f.debug_struct("EventBus")
            .field("topics", &snap.exact.len())
            .field("patterns", &snap.patterns.len())
            .field("default_timeout", &self.inner.default_timeout)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl EventBus {
    pub(crate) fn new(default_timeout: Duration) -> Self {
        EventBus {
            inner: Arc::new(BusInner {
                local: LocalTransport::new(),
                ids: IdGen::new(),
                default_timeout,
                closed: AtomicBool::new(false),
                remote: OnceLock::new(),
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

    /// Like [`send`](Self::send), but when the consumer is on another node, waits until that
    /// node confirmed the message is in a mailbox, or said why not (`NoHandlers`,
    /// `MailboxFull`, `Undecodable`). A plain `send` to another node is fire-and-forget: it
    /// only learns that the message was handed to the connection. Locally both are the same.
    ///
    /// # Errors
    /// As [`send`](Self::send), plus [`BusError::Unreachable`] when the cluster connection is
    /// down and [`BusError::Timeout`] when the other node did not confirm within the default
    /// request timeout; the message is handed back.
    pub async fn send_acked<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
    ) -> Result<(), SendError<M>> {
        self.send_acked_meta(to.topic(), msg, self.root_meta())
            .await
    }

    pub(crate) async fn send_acked_meta<M: Message>(
        &self,
        topic: &str,
        msg: M,
        meta: Meta,
    ) -> Result<(), SendError<M>> {
        if let Err(error) = Self::guard(topic) {
            return Err(SendError {
                error,
                message: msg,
            });
        }
        let remote = match self.inner.remote.get() {
            Some(remote) if M::__wire().is_some() => remote,
            _ => return self.send_meta(topic, msg, meta),
        };
        if self.is_closed() {
            return Err(SendError {
                error: BusError::Closed,
                message: msg,
            });
        }
        let mut parcel = Some(Envelope::new(msg, None, meta));
        let mut sent = Err(BusError::NoHandlers {
            topic: topic.to_owned(),
        });
        if !remote.balance {
            sent = self.inner.local.send(topic, &mut parcel, How::default());
        }
        if let Err(BusError::NoHandlers { .. }) = sent {
            sent = remote.transport.send_acked(topic, &mut parcel).await;
        }
        match sent {
            Ok(()) => Ok(()),
            Err(error) => Err(SendError {
                error,
                message: parcel
                    .expect("an undelivered envelope stays in its parcel")
                    .msg,
            }),
        }
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
    /// request timeout (30 s unless configured). Nothing is sent until the returned future is
    /// first polled; the timeout runs from then.
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
    pub fn request<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
    ) -> impl Future<Output = Result<M::Reply, BusError>> + use<'_, M, D> {
        self.asking(to, msg, || self.root_meta(), None, None)
    }

    /// [`request`](Self::request) with a timeout and headers of its own.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub fn request_with<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
        options: RequestOptions,
    ) -> impl Future<Output = Result<M::Reply, BusError>> + use<'_, M, D> {
        let (timeout, meta) = options.into_parts(|| self.root_meta());
        self.asking(to, msg, meta, timeout, None)
    }

    /// How many consumers (exact and wildcard) would receive a publish on `topic`.
    pub fn consumer_count(&self, topic: &str) -> usize {
        self.inner.local.consumer_count(topic)
    }

    /// Exact topics and wildcard patterns with their consumer counts, each sorted.
    pub(crate) fn subscriptions(&self) -> (Counts, Counts) {
        let snap = self.inner.local.snapshot();
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

    /// Whether some consumer on this node may take a runtime event (a topic under
    /// `fluxor.`); when none can, the runtime does not build its events.
    pub(crate) fn reserved_consumers(&self) -> bool {
        self.inner.local.registry.reserved_consumers()
    }

    /// The metadata of an envelope that starts a request chain; with feature `otel` its
    /// headers carry the trace context of the span it is made in.
    /// A fresh id from the bus's generator (no system call: a prefix and a counter).
    #[cfg(feature = "http")]
    pub(crate) fn next_id(&self) -> Uuid {
        self.inner.ids.next()
    }

    #[inline]
    pub(crate) fn root_meta(&self) -> Meta {
        super::traced(Meta::root(&self.inner.ids))
    }

    /// [`root_meta`](Self::root_meta), made where the envelope is stored (see
    /// `bus::meta_later`).
    #[inline]
    pub(crate) fn root_meta_later(&self) -> impl FnOnce() -> Meta + '_ {
        super::meta_later(move || self.root_meta())
    }

    /// The metadata of an envelope sent while handling request `request_id`.
    #[inline]
    pub(crate) fn child_meta(&self, request_id: Uuid) -> Meta {
        super::traced(Meta::child(&self.inner.ids, request_id))
    }

    pub(crate) fn register(&self, entries: Vec<Entry>) {
        if self.inner.local.register(entries) {
            self.remote_patterns_changed();
        }
    }

    /// Removes the bindings of a whole deployment.
    pub(crate) fn unregister(&self, deployment: DeploymentId) -> usize {
        let (n, changed) = self.inner.local.unregister(deployment, None);
        if changed {
            self.remote_patterns_changed();
        }
        n
    }

    /// Removes the bindings of one instance.
    pub(crate) fn unregister_instance(&self, owner: Owner) -> usize {
        let (n, changed) = self
            .inner
            .local
            .unregister(owner.deployment, Some(owner.instance));
        if changed {
            self.remote_patterns_changed();
        }
        n
    }

    pub(crate) fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.local.clear();
        if let Some(remote) = self.inner.remote.get() {
            remote.transport.close();
        }
    }

    // ----- the seam to other nodes -----

    /// Connects the bus to other nodes through `transport`; `false` when one is attached
    /// already.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn attach_remote(&self, transport: Arc<dyn Transport>, balance: bool) -> bool {
        let attached = self.inner.remote.set(Remote { transport, balance }).is_ok();
        if attached {
            self.remote_patterns_changed();
        }
        attached
    }

    /// The transport to other nodes, if one is attached.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn remote(&self) -> Option<&Arc<dyn Transport>> {
        self.inner.remote.get().map(|r| &r.transport)
    }

    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn downgrade(&self) -> WeakBus {
        WeakBus(Arc::downgrade(&self.inner))
    }

    /// Tells the remote transport which patterns this node's remote-enabled consumers use.
    fn remote_patterns_changed(&self) {
        if let Some(remote) = self.inner.remote.get() {
            let patterns: BTreeSet<Arc<str>> = self.inner.local.remote_patterns();
            remote.transport.serve_patterns(patterns);
        }
    }

    /// Delivers a message from another node to one of this node's remote-enabled consumers
    /// (see `LocalTransport::serve_remote`).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn serve_remote<X>(
        &self,
        topic: &str,
        wire: &str,
        decode: impl FnOnce(&dyn Inbound) -> Result<(Box<dyn Parcel>, X), BusError>,
    ) -> Result<X, BusError> {
        if self.is_closed() {
            return Err(BusError::Closed);
        }
        self.inner.local.serve_remote(topic, wire, decode)
    }

    /// Delivers a publication from another node (see `LocalTransport::publish_remote`).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn publish_remote(
        &self,
        key: &str,
        topic: &str,
        offer: impl FnMut(&super::registry::Entry, &dyn Inbound) -> Delivery,
    ) -> Published {
        if self.is_closed() {
            return Published::default();
        }
        self.inner.local.publish_remote(key, topic, offer)
    }

    /// Refuses user messages on the reserved `fluxor.` prefix: sent, requested or published.
    fn guard(topic: &str) -> Result<(), BusError> {
        if topic.starts_with(RESERVED) {
            return Err(BusError::InvalidTopic {
                topic: topic.to_owned(),
                reason: format!("topics under `{RESERVED}` are reserved for the runtime's own events; subscribe to them, but send your messages elsewhere"),
            });
        }
        Ok(())
    }

    pub(crate) fn send_meta<M: Message>(
        &self,
        topic: &str,
        msg: M,
        meta: Meta,
    ) -> Result<(), SendError<M>> {
        self.deliver(topic, Envelope::new(msg, None, meta), How::default())
            .map_err(|(error, env)| SendError {
                error,
                message: env.msg,
            })
    }

    /// Hands the envelope to a transport (see [`How`]). The envelope comes back by value on
    /// failure, so the caller can hand the message back unboxed.
    #[allow(clippy::result_large_err)]
    pub(super) fn deliver<M: Message>(
        &self,
        topic: &str,
        env: Envelope<M>,
        how: How,
    ) -> Result<(), (BusError, Envelope<M>)> {
        // Every user path (send, send_timeout, request, from the bus, a context or the HTTP
        // adapter) comes through here: nobody may forge the runtime's own events.
        if let Err(e) = Self::guard(topic) {
            return Err((e, env));
        }
        if self.is_closed() {
            return Err((BusError::Closed, env));
        }
        let mut parcel = Some(env);
        let sent = match self.inner.remote.get() {
            Some(remote) if M::__wire().is_some() => self.route(remote, topic, &mut parcel, how),
            _ => self.inner.local.send(topic, &mut parcel, how),
        };
        match sent {
            Ok(()) => Ok(()),
            Err(e) => Err((
                e,
                parcel.expect("an undelivered envelope stays in its parcel"),
            )),
        }
    }

    /// Local first: another node serves the message only when no local consumer exists. With
    /// `balance`, the cluster chooses among all nodes, this one included.
    fn route(
        &self,
        remote: &Remote,
        topic: &str,
        parcel: &mut dyn Parcel,
        how: How,
    ) -> Result<(), BusError> {
        if remote.balance {
            return remote.transport.send(topic, parcel, how);
        }
        match self.inner.local.send(topic, parcel, how) {
            Err(BusError::NoHandlers { .. }) => remote.transport.send(topic, parcel, how),
            other => other,
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
        meta: Meta,
    ) -> Result<usize, PublishError> {
        let fail = |e: BusError| PublishError {
            topic: topic.to_owned(),
            delivered: 0,
            failures: vec![e],
        };
        if self.is_closed() {
            return Err(fail(BusError::Closed));
        }
        let mut copies = Publication {
            msg: Some(msg),
            meta,
        };
        // Other nodes first: the encoding reads the message, which the last local copy takes.
        let mut remote_failures = Vec::new();
        if let Some(remote) = self.inner.remote.get() {
            if M::__wire().is_some() && !topic.starts_with(RESERVED) {
                match remote.transport.publish(topic, &mut copies) {
                    Ok(p) => remote_failures = p.failures,
                    Err(e) => remote_failures.push(e),
                }
            }
        }
        let mut published = self.inner.local.publish(topic, &mut copies).map_err(fail)?;
        published.failures.append(&mut remote_failures);
        if published.failures.is_empty() {
            Ok(published.delivered)
        } else {
            Err(PublishError {
                topic: topic.to_owned(),
                delivered: published.delivered,
                failures: published.failures,
            })
        }
    }

    /// A request to `to`, sent when first polled with the metadata `meta` makes then (inside
    /// the caller's span, which the trace context is taken from), its reply awaited up to
    /// `timeout` (the bus's default without one).
    pub(crate) fn asking<M: Message, D: Destination<M>, F: FnOnce() -> Meta>(
        &self,
        to: D,
        msg: M,
        meta: F,
        timeout: Option<Duration>,
        requester: Option<Requester>,
    ) -> impl Future<Output = Result<M::Reply, BusError>> + use<'_, M, D, F> {
        let after = self.reply_within(timeout);
        let send = move |topic: &str| {
            let (reply, rx) = ReplyTo::channel();
            let how = How {
                requester,
                reply_within: Some(after),
                ..How::default()
            };
            self.deliver(topic, Envelope::new(msg, Some(reply), meta()), how)
                .map_err(|(e, _)| e)?;
            Ok(rx)
        };
        Asking::new(ByTopic(to, PhantomData), send, after)
    }

    /// How long a request waits for its reply: `timeout`, or the bus's default.
    pub(crate) fn reply_within(&self, timeout: Option<Duration>) -> Duration {
        timeout.unwrap_or(self.inner.default_timeout)
    }
}

/// Topics or patterns with their consumer counts.
pub(crate) type Counts = Vec<(String, usize)>;
