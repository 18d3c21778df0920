//! The HTTP adapter (feature `http`): an [axum] server deployed as a component.
//!
//! ```no_run
//! use axum::{routing::{get, post}, Json, Router};
//! use fluxor::http::{bus_request, Bus, HttpServer};
//! use fluxor::prelude::*;
//!
//! #[derive(Message, serde::Deserialize)]
//! #[message(reply = u64)]
//! struct CreateOrder { item: String }
//!
//! async fn count(bus: Bus) -> Result<Json<u64>, BusError> {
//!     Ok(Json(bus.request("orders.count", Count).await?))
//! }
//! # #[derive(Message)] #[message(reply = u64)] struct Count;
//!
//! # async fn demo(runtime: Fluxor) -> Result<(), Box<dyn std::error::Error>> {
//! let router = Router::new()
//!     // JSON body in, bus request, JSON reply out; bus errors become HTTP statuses.
//!     .route("/orders", post(bus_request::<CreateOrder>("orders.create")))
//!     .route("/orders/count", get(count));
//! let (server, handle) = HttpServer::new(router)
//!     .bind("127.0.0.1:8080".parse()?)
//!     .max_in_flight(256)
//!     .inspector(true)
//!     .build();
//! runtime.deploy(server, DeployOptions::new()).await?;
//! println!("listening on {:?}", handle.local_addr());
//! # Ok(()) }
//! ```
//!
//! * **Backpressure**: at most `max_in_flight` requests are handled at once (tower's
//!   concurrency limit); one more is shed at once with `503 Service Unavailable` and
//!   `Retry-After: 1` (tower's load shedding), and counted.
//! * **Request ids**: every request gets an `X-Request-ID` (kept if the client sent one,
//!   a UUID otherwise), echoed in the response. [`Bus`] carries it into bus headers
//!   (`x-request-id`), and when it is a UUID, it becomes the bus request id, so the handler's
//!   `ctx.request_id()` and tracing span show it.
//! * **Errors**: [`BusError`] is an axum response: `NoHandlers` and `MailboxFull` 503 (the latter
//!   with `Retry-After`), `Timeout` 504, `RecipientFailed` 500, malformed JSON 400/422, each with
//!   a JSON body `{"error": kind, "message": text}`. Bodies are limited (`body_limit`, 1 MiB by
//!   default; larger ones get 413).
//! * **Shutdown**: stopping the component (undeploy, runtime shutdown) stops accepting
//!   connections and lets in-flight requests finish, within the stop deadline.
//! * **Inspector and metrics**: `inspector(true)` serves the runtime's [`Snapshot`](crate::inspect::Snapshot)
//!   as JSON on `/fluxor/inspect`; `metrics(true)` serves Prometheus text on `/metrics`. Both are
//!   off by default, and the server binds to loopback unless told otherwise.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::address::Destination;
use crate::bus::{EventBus, RequestOptions};
use crate::component::{Component, Context, Outcome};
use crate::error::{BoxError, BusError, PublishError, SendError};
use crate::message::Message;

/// The header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// Builds an [`HttpServer`] component.
#[derive(Debug, Clone)]
pub struct HttpServerBuilder {
    router: Router,
    addr: SocketAddr,
    max_in_flight: usize,
    body_limit: usize,
    inspector: bool,
    metrics: bool,
}

/// An HTTP server as a component: deploy the factory from [`HttpServer::new`]`(router).build()`.
pub struct HttpServer {
    router: Router,
    config: Arc<HttpServerBuilder>,
    handle: HttpHandle,
    serving: Option<(
        CancellationToken,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("addr", &self.handle.local_addr())
            .finish()
    }
}

/// What a running server tells the outside: its address and counters.
#[derive(Debug, Clone, Default)]
pub struct HttpHandle {
    addr: Arc<OnceLock<SocketAddr>>,
    stats: Arc<HttpStats>,
}

#[derive(Debug, Default)]
struct HttpStats {
    in_flight: AtomicUsize,
    requests: AtomicU64,
    shed: AtomicU64,
}

/// The HTTP adapter's counters, in [`Snapshot::extras`](crate::inspect::Snapshot::extras) under `http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HttpInfo {
    /// Requests being handled now.
    pub in_flight: usize,
    /// The in-flight limit.
    pub max_in_flight: usize,
    /// Requests admitted since start.
    pub requests: u64,
    /// Requests shed with 503 because the limit was reached.
    pub shed: u64,
}

impl HttpHandle {
    /// The address the server listens on, once it has started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr.get().copied()
    }

    /// The counters.
    pub fn info(&self, max_in_flight: usize) -> HttpInfo {
        HttpInfo {
            in_flight: self.stats.in_flight.load(Ordering::Relaxed),
            max_in_flight,
            requests: self.stats.requests.load(Ordering::Relaxed),
            shed: self.stats.shed.load(Ordering::Relaxed),
        }
    }
}

impl HttpServer {
    /// A server for `router`, on `127.0.0.1:8080`, 1024 requests in flight, 1 MiB bodies,
    /// no inspector or metrics routes.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(router: Router) -> HttpServerBuilder {
        HttpServerBuilder {
            router,
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_in_flight: 1024,
            body_limit: 1 << 20,
            inspector: false,
            metrics: false,
        }
    }
}

impl HttpServerBuilder {
    /// Where to listen. Port 0 picks a free port ([`HttpHandle::local_addr`] tells which).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Requests handled at once; more are shed with 503. Default 1024.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Largest accepted request body, in bytes. Default 1 MiB.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Serves the runtime's snapshot as JSON on `GET /fluxor/inspect`. Default off.
    pub fn inspector(mut self, on: bool) -> Self {
        self.inspector = on;
        self
    }

    /// Serves Prometheus metrics on `GET /metrics`. Default off.
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// The component factory to deploy, and a handle to the server.
    pub fn build(self) -> (impl Fn() -> HttpServer + Send + Sync + 'static, HttpHandle) {
        let handle = HttpHandle::default();
        let config = Arc::new(self);
        let h = handle.clone();
        let factory = move || HttpServer {
            router: config.router.clone(),
            config: config.clone(),
            handle: h.clone(),
            serving: None,
        };
        (factory, handle)
    }
}

/// The message type of [`HttpServer`]: it has no handlers.
#[derive(Debug)]
pub enum NoMessages {}

impl Component for HttpServer {
    type Msg = NoMessages;
    type Config = ();

    fn name() -> &'static str {
        "fluxor::http::HttpServer"
    }

    async fn start(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let cfg = self.config.clone();
        let listener = tokio::net::TcpListener::bind(cfg.addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", cfg.addr))?;
        let addr = listener.local_addr()?;
        let _ = self.handle.addr.set(addr);

        let mut router = self.router.clone();
        let runtime = ctx.runtime();
        if cfg.inspector {
            let runtime = runtime.clone();
            router = router.route(
                "/fluxor/inspect",
                axum::routing::get(move || {
                    let snapshot = runtime.upgrade().map(|rt| rt.inspect());
                    async move { snapshot.map(Json).ok_or(StatusCode::SERVICE_UNAVAILABLE) }
                }),
            );
        }
        if cfg.metrics {
            let runtime = runtime.clone();
            router = router.route(
                "/metrics",
                axum::routing::get(move || {
                    let text = runtime
                        .upgrade()
                        .map(|rt| rt.inspect())
                        .map(|s| prometheus(&s));
                    async move {
                        match text {
                            Some(t) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], t)
                                .into_response(),
                            None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
                        }
                    }
                }),
            );
        }
        let stats = self.handle.stats.clone();
        let shed_stats = stats.clone();
        let routes = router
            .layer(axum::middleware::from_fn(
                move |req, next: axum::middleware::Next| {
                    let stats = stats.clone();
                    async move {
                        let _in_flight = InFlight::enter(&stats);
                        next.run(req).await
                    }
                },
            ))
            .layer(DefaultBodyLimit::max(cfg.body_limit))
            .layer(Extension(ctx.bus().clone()));
        // One limit for the whole server: `Router::layer` would give each route its own.
        let limited = ServiceBuilder::new()
            .layer(axum::error_handling::HandleErrorLayer::new(
                move |e: tower::BoxError| {
                    let stats = shed_stats.clone();
                    async move { overloaded(&stats, &e) }
                },
            ))
            .load_shed()
            .concurrency_limit(cfg.max_in_flight)
            .service(routes);
        let app = Router::new()
            .fallback_service(limited)
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));

        let token = CancellationToken::new();
        let shutdown = token.clone();
        let serving = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
        });
        self.serving = Some((token, serving));

        if let Some(runtime) = runtime.upgrade() {
            let (handle, max) = (self.handle.clone(), cfg.max_in_flight);
            runtime.add_inspect_section("http", move || {
                serde_json::to_value(handle.info(max)).unwrap_or_default()
            });
        }
        tracing::info!(%addr, "HTTP server listening");
        Ok(())
    }

    async fn stop(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        if let Some(runtime) = ctx.runtime().upgrade() {
            runtime.remove_inspect_section("http");
        }
        let Some((token, serving)) = self.serving.take() else {
            return Ok(());
        };
        // Stop accepting; requests in flight finish (the runtime bounds this by its deadline).
        token.cancel();
        match serving.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("the HTTP server failed: {e}").into()),
            Err(e) => Err(format!("the HTTP server task ended abnormally: {e}").into()),
        }
    }

    async fn handle(&mut self, msg: NoMessages, _ctx: &mut Context<Self>) -> Outcome {
        match msg {}
    }
}

/// Counts a request in flight until dropped (also when the handler panics).
struct InFlight<'a>(&'a HttpStats);

impl<'a> InFlight<'a> {
    fn enter(stats: &'a HttpStats) -> Self {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        stats.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn overloaded(stats: &HttpStats, e: &tower::BoxError) -> Response {
    if e.is::<tower::load_shed::error::Overloaded>() {
        stats.shed.fetch_add(1, Ordering::Relaxed);
        let mut r = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in flight; retry shortly",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        r
    } else {
        error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        )
    }
}

fn error_response(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": kind, "message": message })),
    )
        .into_response()
}

impl IntoResponse for BusError {
    fn into_response(self) -> Response {
        let (status, kind) = match &self {
            BusError::NoHandlers { .. } => (StatusCode::SERVICE_UNAVAILABLE, "no_handlers"),
            BusError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            BusError::MailboxFull { .. } => (StatusCode::SERVICE_UNAVAILABLE, "mailbox_full"),
            BusError::RecipientFailed { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "recipient_failed")
            }
            BusError::TypeMismatch { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "type_mismatch"),
            BusError::InvalidTopic { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "invalid_topic"),
            BusError::Closed => (StatusCode::SERVICE_UNAVAILABLE, "closed"),
        };
        let mut r = error_response(status, kind, &self.to_string());
        if matches!(self, BusError::MailboxFull { .. } | BusError::Closed) {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

/// The bus, as an axum extractor, carrying the request's `X-Request-ID` into what it sends.
#[derive(Debug, Clone)]
pub struct Bus {
    bus: EventBus,
    request_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Bus {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let bus = parts.extensions.get::<EventBus>().cloned().ok_or_else(|| {
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no_bus",
                "this route is not served by fluxor::http::HttpServer",
            )
        })?;
        Ok(Bus {
            bus,
            request_id: request_id(&parts.headers),
        })
    }
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl Bus {
    /// The request's `X-Request-ID`.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The plain bus.
    pub fn inner(&self) -> &EventBus {
        &self.bus
    }

    fn options(&self) -> RequestOptions {
        let mut options = RequestOptions::new();
        if let Some(id) = &self.request_id {
            options = options.header(REQUEST_ID, id.clone());
            if let Ok(uuid) = uuid::Uuid::parse_str(id) {
                options = options.request_id(uuid);
            }
        }
        options
    }

    /// [`EventBus::request`], with the request id.
    ///
    /// # Errors
    /// As [`EventBus::request`].
    pub async fn request<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
    ) -> Result<M::Reply, BusError> {
        self.bus.request_with(to, msg, self.options()).await
    }

    /// [`EventBus::request_with`] with a timeout, and the request id.
    ///
    /// # Errors
    /// As [`EventBus::request`].
    pub async fn request_timeout<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
        timeout: Duration,
    ) -> Result<M::Reply, BusError> {
        self.bus
            .request_with(to, msg, self.options().timeout(timeout))
            .await
    }

    /// [`EventBus::send`].
    ///
    /// # Errors
    /// As [`EventBus::send`].
    pub fn send<M: Message, D: Destination<M>>(&self, to: D, msg: M) -> Result<(), SendError<M>> {
        self.bus.send(to, msg)
    }

    /// [`EventBus::publish`].
    ///
    /// # Errors
    /// As [`EventBus::publish`].
    pub fn publish<M: Message + Clone, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
    ) -> Result<usize, PublishError> {
        self.bus.publish(to, msg)
    }
}

/// A `POST` route that decodes the JSON body into `M`, requests `topic` on the bus, and answers
/// the reply as JSON (`200`), or the bus error as its status. A body that is not valid JSON for
/// `M` answers 400 (syntax) or 422 (shape), with a JSON error body.
pub fn bus_request<M>(topic: &'static str) -> MethodRouter
where
    M: Message + DeserializeOwned,
    M::Reply: Serialize,
{
    post(
        move |bus: Bus, body: Result<Json<M>, JsonRejection>| async move {
            let Json(msg) = match body {
                Ok(b) => b,
                Err(rejection) => {
                    return error_response(
                        rejection.status(),
                        "bad_request",
                        &rejection.body_text(),
                    );
                }
            };
            match bus.request(topic, msg).await {
                Ok(reply) => Json(reply).into_response(),
                Err(e) => e.into_response(),
            }
        },
    )
}

/// Renders a snapshot as Prometheus text. Each value appears once, under one name; totals that
/// can be summed from the per-instance series are not repeated.
fn prometheus(s: &crate::inspect::Snapshot) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, series: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in series {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let reactor = |f: fn(&crate::inspect::ReactorInfo) -> f64| -> Vec<(String, f64)> {
        s.reactors
            .iter()
            .map(|r| (format!("{{reactor=\"{}\"}}", r.index), f(r)))
            .collect()
    };
    family(
        "fluxor_reactor_handled_total",
        "counter",
        "Handler invocations per reactor.",
        reactor(|r| r.handled as f64),
    );
    family(
        "fluxor_reactor_busy_seconds_total",
        "counter",
        "Time in handlers per reactor (sampled).",
        reactor(|r| r.busy_ms as f64 / 1000.0),
    );
    family(
        "fluxor_reactor_blocked_total",
        "counter",
        "Blocked-reactor episodes per reactor.",
        reactor(|r| r.blocked_episodes as f64),
    );
    type Pick = fn(&crate::inspect::InstanceInfo) -> f64;
    let per_instance: [(&str, &str, &str, Pick); 6] = [
        (
            "fluxor_messages_handled_total",
            "counter",
            "Messages handled.",
            |i| i.handled as f64,
        ),
        (
            "fluxor_messages_failed_total",
            "counter",
            "Handlers that returned an error.",
            |i| i.failed as f64,
        ),
        (
            "fluxor_messages_panicked_total",
            "counter",
            "Handlers that panicked.",
            |i| i.panicked as f64,
        ),
        (
            "fluxor_mailbox_rejected_total",
            "counter",
            "Messages refused by a full mailbox.",
            |i| i.rejected as f64,
        ),
        (
            "fluxor_mailbox_length",
            "gauge",
            "Messages waiting in the mailbox.",
            |i| i.mailbox_len as f64,
        ),
        (
            "fluxor_instance_restarts_total",
            "counter",
            "Restarts of the instance.",
            |i| i.restarts as f64,
        ),
    ];
    for (name, kind, help, pick) in per_instance {
        let series = s
            .deployments
            .iter()
            .flat_map(|d| {
                d.instances.iter().map(move |i| {
                    (
                        format!(
                            "{{component=\"{}\",deployment=\"{}\",instance=\"{}\"}}",
                            d.component, d.id, i.index
                        ),
                        pick(i),
                    )
                })
            })
            .collect();
        family(name, kind, help, series);
    }
    let w = &s.workers;
    for (name, kind, help, v) in [
        (
            "fluxor_workers_busy",
            "gauge",
            "Blocking tasks running.",
            w.busy as f64,
        ),
        (
            "fluxor_workers_queued",
            "gauge",
            "Blocking tasks waiting.",
            w.queued as f64,
        ),
        (
            "fluxor_workers_completed_total",
            "counter",
            "Blocking tasks completed.",
            w.completed as f64,
        ),
        (
            "fluxor_workers_rejected_total",
            "counter",
            "Blocking tasks refused by a full queue.",
            w.rejected as f64,
        ),
    ] {
        family(name, kind, help, vec![(String::new(), v)]);
    }
    if let Some(http) = s.extras.get("http") {
        for (key, name, kind, help) in [
            (
                "in_flight",
                "fluxor_http_in_flight",
                "gauge",
                "HTTP requests being handled.",
            ),
            (
                "requests",
                "fluxor_http_requests_total",
                "counter",
                "HTTP requests admitted.",
            ),
            (
                "shed",
                "fluxor_http_shed_total",
                "counter",
                "HTTP requests shed with 503.",
            ),
        ] {
            let v = http
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            family(name, kind, help, vec![(String::new(), v as f64)]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bus_error_has_a_status_and_a_json_kind() {
        let topic = || "t".to_owned();
        let cases = [
            (
                BusError::NoHandlers { topic: topic() },
                StatusCode::SERVICE_UNAVAILABLE,
                "no_handlers",
                false,
            ),
            (
                BusError::Timeout {
                    topic: topic(),
                    after: Duration::from_secs(1),
                },
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                false,
            ),
            (
                BusError::MailboxFull { topic: topic() },
                StatusCode::SERVICE_UNAVAILABLE,
                "mailbox_full",
                true,
            ),
            (
                BusError::RecipientFailed {
                    topic: topic(),
                    reason: "x".into(),
                },
                StatusCode::INTERNAL_SERVER_ERROR,
                "recipient_failed",
                false,
            ),
            (
                BusError::TypeMismatch {
                    topic: topic(),
                    expected: "A",
                    found: "B",
                },
                StatusCode::INTERNAL_SERVER_ERROR,
                "type_mismatch",
                false,
            ),
            (
                BusError::InvalidTopic {
                    topic: topic(),
                    reason: "x".into(),
                },
                StatusCode::INTERNAL_SERVER_ERROR,
                "invalid_topic",
                false,
            ),
            (
                BusError::Closed,
                StatusCode::SERVICE_UNAVAILABLE,
                "closed",
                true,
            ),
        ];
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for (error, status, kind, retry) in cases {
            let message = error.to_string();
            let response = error.into_response();
            assert_eq!(response.status(), status, "{kind}");
            assert_eq!(
                response.headers().contains_key(header::RETRY_AFTER),
                retry,
                "{kind}"
            );
            let body = rt
                .block_on(axum::body::to_bytes(response.into_body(), 1 << 16))
                .unwrap();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(json["error"], kind);
            assert_eq!(json["message"], message.as_str());
        }
    }
}
