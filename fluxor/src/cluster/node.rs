//! One node's connection to the cluster: its thread, its subscriptions, and the transport the
//! bus sends through.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::header::HeaderMap;
use async_nats::{Client, ConnectOptions, Event, Request, RequestErrorKind};
use bytes::Bytes;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::options::{Auth, NatsCluster};
use super::protocol::{self, Kind, Subjects};
use super::stats::{ClusterStats, Counters};
use super::transport::ClusterTransport;
use crate::bus::{Parcel, WeakBus};
use crate::error::{BuildError, BusError};
use crate::runtime::{Extension, Fluxor};

/// A message waiting for the connection.
pub(super) struct Outgoing {
    pub(super) subject: String,
    /// The user's headers, if any.
    pub(super) headers: Option<HeaderMap>,
    pub(super) payload: Bytes,
}

/// One node of the cluster.
pub(crate) struct Node {
    pub(super) id: String,
    pub(super) config: NatsCluster,
    pub(super) subjects: Subjects,
    pub(super) client: Client,
    /// The runtime of the reactor the connection lives on: where requests made outside any
    /// runtime wait for their answer.
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) bus: WeakBus,
    pub(super) counters: Arc<Counters>,
    pub(super) outgoing: mpsc::Sender<Outgoing>,
    pub(super) in_flight: Arc<Semaphore>,
    /// The patterns to serve, with a generation that grows with every change.
    pub(super) desired: Mutex<(u64, BTreeSet<Arc<str>>)>,
    pub(super) changed: Notify,
    /// The generation the server is known to have all subscriptions of.
    synced: AtomicU64,
    pub(super) stop: CancellationToken,
    last_warning: Mutex<Option<std::time::Instant>>,
    /// The number of the last publication queued per topic (see `protocol::SEQ`).
    pub(super) publish_seq: Mutex<HashMap<String, u64>>,
}

/// Topics whose publication numbers a node keeps; past it, the numbering starts over (a
/// receiver takes a number that does not grow as a restart, not as a loss).
pub(super) const MAX_NUMBERED_TOPICS: usize = 65_536;

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("cluster", &self.config.name)
            .finish_non_exhaustive()
    }
}

impl Extension for NatsCluster {
    fn install(&self, runtime: &Fluxor) -> Result<(), BuildError> {
        self.validate().map_err(BuildError::Cluster)?;
        let bus = runtime.bus().downgrade();
        let config = self.clone();
        // The connection lives on a reactor, like any component: a message from another node
        // reaches a handler on the same reactor without a thread hop.
        let reactor = runtime.reactor_handle(self.reactor).ok_or_else(|| {
            BuildError::Cluster(format!(
                "`reactor({})` is out of range: the runtime has {} reactor(s)",
                self.reactor,
                runtime.reactors()
            ))
        })?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        reactor.spawn(async move {
            match Node::start(config, bus).await {
                Ok((node, outgoing)) => {
                    let _ = tx.send(Ok(node.clone()));
                    node.run(outgoing).await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
        let node = rx
            .recv()
            .map_err(|_| BuildError::Cluster("its reactor stopped while it started".into()))?
            .map_err(BuildError::Cluster)?;
        runtime
            .bus()
            .attach_remote(Arc::new(ClusterTransport(node.clone())), self.balance);
        let section = node.clone();
        runtime.add_inspect_section("cluster", move || {
            serde_json::to_value(section.stats()).unwrap_or_default()
        });
        let check = node;
        runtime.add_readiness_check("cluster", move || {
            let ready = check.readiness();
            async move { ready }
        });
        Ok(())
    }
}

impl Node {
    /// Connects (in the background: the client retries until the server answers) and
    /// returns the node with the receiving end of its outgoing queue.
    async fn start(
        config: NatsCluster,
        bus: WeakBus,
    ) -> Result<(Arc<Node>, mpsc::Receiver<Outgoing>), String> {
        let id = Uuid::new_v4().simple().to_string();
        let counters = Arc::new(Counters::default());
        let events = counters.clone();
        let delay = config.reconnect_delay;
        let mut options = ConnectOptions::new()
            .name(
                config
                    .connection_name
                    .clone()
                    .unwrap_or_else(|| format!("fluxor-{id}")),
            )
            .subscription_capacity(config.subscription_capacity)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(move |_| delay)
            .require_tls(config.require_tls)
            .event_callback(move |event| {
                let c = events.clone();
                async move {
                    match event {
                        Event::Connected => {
                            c.set_last_error(None);
                            if c.connects.fetch_add(1, Relaxed) > 0 {
                                Counters::bump(&c.reconnects);
                            }
                        }
                        Event::ServerError(e) => c.set_last_error(Some(e.to_string())),
                        Event::ClientError(e) => c.set_last_error(Some(e.to_string())),
                        Event::SlowConsumer(_) => Counters::bump(&c.slow_consumer_events),
                        _ => {}
                    }
                }
            });
        options = match &config.auth {
            Auth::None => options,
            Auth::UserPassword(u, p) => options.user_and_password(u.clone(), p.clone()),
            Auth::Token(t) => options.token(t.clone()),
            Auth::Nkey(seed) => options.nkey(seed.clone()),
            Auth::CredentialsFile(path) => options
                .credentials_file(path)
                .await
                .map_err(|e| format!("cannot read the credentials file {}: {e}", path.display()))?,
        };
        for root in &config.root_certificates {
            options = options.add_root_certificates(root.clone());
        }
        if let Some((cert, key)) = &config.client_certificate {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        let client = options
            .connect(config.servers.clone())
            .await
            .map_err(|e| format!("cannot connect to {:?}: {e}", config.servers))?;
        let (tx, rx) = mpsc::channel(config.outgoing_capacity);
        let node = Arc::new(Node {
            id,
            subjects: Subjects::new(&config.name),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            config,
            client,
            runtime: tokio::runtime::Handle::current(),
            bus,
            counters,
            outgoing: tx,
            desired: Mutex::new((0, BTreeSet::new())),
            changed: Notify::new(),
            synced: AtomicU64::new(0),
            stop: CancellationToken::new(),
            last_warning: Mutex::new(None),
            publish_seq: Mutex::new(HashMap::new()),
        });
        Ok((node, rx))
    }

    /// The connection's work until the bus closes: writes outgoing messages and keeps the
    /// subscriptions in line with the served patterns.
    async fn run(self: Arc<Self>, mut outgoing: mpsc::Receiver<Outgoing>) {
        let writer = self.clone();
        tokio::spawn(async move {
            while let Some(out) = outgoing.recv().await {
                let sent = match out.headers {
                    Some(headers) => {
                        writer
                            .client
                            .publish_with_headers(out.subject, headers, out.payload)
                            .await
                    }
                    None => writer.client.publish(out.subject, out.payload).await,
                };
                match sent {
                    Ok(()) => Counters::bump(&writer.counters.messages_out),
                    Err(e) => {
                        Counters::bump(&writer.counters.refused);
                        writer.warn(format_args!(
                            "a message could not be handed to the connection: {e}"
                        ));
                    }
                }
            }
        });
        let mut subscriptions: HashMap<Arc<str>, CancellationToken> = HashMap::new();
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = self.changed.notified() => {}
                // Retries a reconciliation that could not finish (the server was away).
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            if self.changed_since_sync() {
                self.reconcile(&mut subscriptions).await;
            }
        }
        for token in subscriptions.values() {
            token.cancel();
        }
    }

    fn changed_since_sync(&self) -> bool {
        let generation = self.desired.lock().unwrap_or_else(|e| e.into_inner()).0;
        self.synced.load(Relaxed) != generation
    }

    fn desired(&self) -> (u64, BTreeSet<Arc<str>>) {
        self.desired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Subscribes to new patterns, drops the old, and proves the server registered them.
    async fn reconcile(self: &Arc<Self>, subscriptions: &mut HashMap<Arc<str>, CancellationToken>) {
        let (generation, desired) = self.desired();
        subscriptions.retain(|pattern, token| {
            let keep = desired.contains(pattern);
            if !keep {
                token.cancel();
            }
            keep
        });
        let mut complete = true;
        for pattern in desired {
            if subscriptions.contains_key(&pattern) {
                continue;
            }
            match self.subscribe(&pattern).await {
                Ok(token) => {
                    subscriptions.insert(pattern, token);
                }
                Err(e) => {
                    complete = false;
                    self.warn(format_args!("cannot subscribe to `{pattern}`: {e}"));
                }
            }
        }
        self.counters
            .subscriptions
            .store(subscriptions.len(), Relaxed);
        if complete && self.confirm_subscriptions().await {
            self.synced.store(generation, Relaxed);
        }
    }

    /// Whether the server has processed every subscription sent so far: a request to a
    /// subject nobody serves, answered "no responders", comes back only after the server read
    /// everything the connection sent before it (`flush` proves less: that the bytes left).
    async fn confirm_subscriptions(&self) -> bool {
        if !self.connected() {
            return false;
        }
        let probe = format!("_FX_SYNC.{}", self.id);
        let request = Request::new().timeout(Some(Duration::from_secs(2)));
        match self.client.send_request(probe, request).await {
            Err(e) => e.kind() == RequestErrorKind::NoResponders,
            Ok(_) => true,
        }
    }

    async fn subscribe(self: &Arc<Self>, pattern: &Arc<str>) -> Result<CancellationToken, String> {
        let token = self.stop.child_token();
        let sends = self
            .client
            .queue_subscribe(
                self.subjects.send(pattern),
                self.subjects.queue().to_owned(),
            )
            .await
            .map_err(|e| e.to_string())?;
        let publications = self
            .client
            .subscribe(self.subjects.publish(pattern))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(super::serve::sends(self.clone(), sends, token.clone()));
        tokio::spawn(super::serve::publications(
            self.clone(),
            pattern.clone(),
            publications,
            token.clone(),
        ));
        Ok(token)
    }

    pub(super) fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    pub(crate) fn stats(&self) -> ClusterStats {
        self.counters
            .snapshot(&self.id, &self.config.name, self.connected())
    }

    /// Ready when connected and the server has every subscription.
    fn readiness(&self) -> Result<(), String> {
        if !self.connected() {
            return Err(format!(
                "not connected to the NATS server at {}{}",
                self.config.servers.join(", "),
                self.counters.last_error_note()
            ));
        }
        if self.changed_since_sync() {
            return Err("subscriptions are not yet confirmed by the server".into());
        }
        Ok(())
    }

    /// Logs at most one warning a second; the counters count every case.
    pub(super) fn warn(&self, what: fmt::Arguments<'_>) {
        let now = std::time::Instant::now();
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            return;
        }
        *last = Some(now);
        tracing::warn!(node = %self.id, cluster = %self.config.name, "{what}");
    }

    /// Queues a message for the connection without waiting.
    pub(super) fn queue(&self, out: Outgoing) -> Result<(), String> {
        self.outgoing.try_send(out).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => format!(
                "the outgoing queue is full ({} messages); the connection is slower than the senders",
                self.config.outgoing_capacity
            ),
            mpsc::error::TrySendError::Closed(_) => "the cluster connection is closed".into(),
        })
    }

    pub(super) fn unreachable(&self, topic: &str, reason: impl Into<String>) -> BusError {
        Counters::bump(&self.counters.refused);
        BusError::Unreachable {
            topic: topic.to_owned(),
            reason: reason.into(),
        }
    }

    pub(super) fn disconnected(&self, topic: &str) -> BusError {
        self.unreachable(
            topic,
            format!(
                "not connected to the NATS server at {} (reconnecting){}",
                self.config.servers.join(", "),
                self.counters.last_error_note()
            ),
        )
    }

    /// Encodes the parcel's envelope: subject, headers and payload.
    pub(super) fn encode(
        &self,
        topic: &str,
        kind: Kind,
        parcel: &dyn Parcel,
        timeout: Option<Duration>,
    ) -> Result<Outgoing, BusError> {
        let n = timeout.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        let encoded =
            parcel
                .encode(self.config.codec.as_ref())
                .ok_or_else(|| BusError::NoHandlers {
                    topic: topic.to_owned(),
                })?;
        self.outgoing(topic, kind, encoded, n)
    }

    pub(super) fn outgoing(
        &self,
        topic: &str,
        kind: Kind,
        encoded: crate::bus::Encoded<'_>,
        n: u64,
    ) -> Result<Outgoing, BusError> {
        let fail = |reason: String| BusError::Undecodable {
            topic: topic.to_owned(),
            reason,
        };
        let payload = encoded
            .payload
            .map_err(|e| fail(format!("`{}` could not be encoded: {e}", encoded.wire)))?;
        let head = protocol::Head {
            kind,
            codec: self.config.codec.name(),
            wire: encoded.wire,
            origin: &self.id,
            meta: encoded.meta,
            n,
        };
        let framed = protocol::frame(&head, &payload).map_err(fail)?;
        let headers = protocol::user_headers(encoded.meta).map_err(fail)?;
        let subject = match kind {
            Kind::Publish => self.subjects.publish(topic),
            _ => self.subjects.send(topic),
        };
        Ok(Outgoing {
            subject,
            headers,
            payload: Bytes::from(framed),
        })
    }

    /// Sends a request (or an acknowledged send) and waits for the answer, up to `within`.
    pub(super) async fn ask(
        &self,
        topic: &str,
        out: Outgoing,
        within: Duration,
    ) -> Result<Bytes, BusError> {
        let mut request = Request::new().payload(out.payload).timeout(Some(within));
        if let Some(headers) = out.headers {
            request = request.headers(headers);
        }
        Counters::bump(&self.counters.messages_out);
        let started = Instant::now();
        // The client's own timeout does not cover its queue: bound the whole wait.
        let answer =
            tokio::time::timeout(within, self.client.send_request(out.subject, request)).await;
        let timeout = || BusError::Timeout {
            topic: topic.to_owned(),
            after: started.elapsed(),
        };
        let msg = match answer {
            Err(_) => return Err(timeout()),
            Ok(Err(e)) => {
                return Err(match e.kind() {
                    RequestErrorKind::NoResponders => BusError::NoHandlers {
                        topic: topic.to_owned(),
                    },
                    RequestErrorKind::TimedOut => timeout(),
                    _ => self.unreachable(topic, e.to_string()),
                })
            }
            Ok(Ok(msg)) => msg,
        };
        protocol::read_answer(&msg.payload, topic, started.elapsed())
    }
}
