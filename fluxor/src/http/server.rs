//! The server: a component that serves an axum router, with its limits and counters.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::component::{Component, Context, Outcome};
use crate::error::BoxError;

use super::dashboard::Dashboard;
use super::metrics::prometheus;
use crate::health::Health;

/// Builds an [`HttpServer`] component.
#[derive(Debug, Clone)]
pub struct HttpServerBuilder {
    router: Router,
    addr: SocketAddr,
    max_in_flight: usize,
    body_limit: usize,
    inspector: bool,
    metrics: bool,
    health: bool,
    dashboard: bool,
    dashboard_interval: Duration,
    dashboard_actions: bool,
    reuse_port: bool,
}

/// An HTTP server as a component: deploy the factory from [`HttpServer::builder`]`(router).build()`.
pub struct HttpServer {
    router: Router,
    config: Arc<HttpServerBuilder>,
    handle: HttpHandle,
    serving: Option<(
        CancellationToken,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
    listening: Option<Listening>,
}

/// One instance's listener, counted in its handle until the instance is dropped.
struct Listening(Arc<std::sync::Mutex<usize>>);

impl Drop for Listening {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
    }
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
    /// Instances bind one at a time, so that all of them take the port the first one got;
    /// the count of instances listening now.
    binding: Arc<std::sync::Mutex<usize>>,
    stats: Arc<HttpStats>,
}

#[derive(Debug, Default)]
pub(super) struct HttpStats {
    pub(super) in_flight: AtomicUsize,
    pub(super) requests: AtomicU64,
    pub(super) shed: AtomicU64,
    /// Dashboard streams open now.
    pub(super) dash_clients: AtomicUsize,
    /// Events sent on dashboard streams.
    pub(super) dash_sent: AtomicU64,
    /// Snapshots and lifecycle events dashboard streams skipped because their page read slowly.
    pub(super) dash_skipped: AtomicU64,
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
    /// Dashboard pages connected now (their streams are not counted in `in_flight`).
    pub dashboard_clients: usize,
    /// Events sent to dashboard pages since start.
    pub dashboard_events: u64,
    /// Snapshots and lifecycle events not sent to a dashboard page because it read too slowly.
    pub dashboard_skipped: u64,
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
            dashboard_clients: self.stats.dash_clients.load(Ordering::Relaxed),
            dashboard_events: self.stats.dash_sent.load(Ordering::Relaxed),
            dashboard_skipped: self.stats.dash_skipped.load(Ordering::Relaxed),
        }
    }
}

impl HttpServer {
    /// A server for `router`, on `127.0.0.1:8080`, 1024 requests in flight, 1 MiB bodies,
    /// no inspector, metrics, health or dashboard routes.
    pub fn builder(router: Router) -> HttpServerBuilder {
        HttpServerBuilder {
            router,
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_in_flight: 1024,
            body_limit: 1 << 20,
            inspector: false,
            metrics: false,
            health: false,
            dashboard: false,
            dashboard_interval: Duration::from_secs(1),
            dashboard_actions: false,
            reuse_port: false,
        }
    }

    /// Opens the listening socket: the configured address, or the one an earlier instance of
    /// the same server bound (with `reuse_port`).
    fn listen(&mut self) -> Result<tokio::net::TcpListener, BoxError> {
        let cfg = &self.config;
        let mut listening = self
            .handle
            .binding
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let addr = match self.handle.addr.get() {
            Some(bound) if *listening > 0 && cfg.reuse_port => *bound,
            Some(bound) if *listening > 0 => {
                return Err(format!(
                    "this server already listens on {bound}; several instances of one server need `HttpServerBuilder::reuse_port(true)`"
                )
                .into())
            }
            _ => cfg.addr,
        };
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }?;
        socket.set_reuseaddr(true)?;
        if cfg.reuse_port {
            #[cfg(unix)]
            socket.set_reuseport(true)?;
            #[cfg(not(unix))]
            return Err("`reuse_port` needs a Unix system".into());
        }
        let listener = socket
            .bind(addr)
            .and_then(|()| socket.listen(1024))
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let _ = self.handle.addr.set(listener.local_addr()?);
        *listening += 1;
        self.listening = Some(Listening(self.handle.binding.clone()));
        Ok(listener)
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

    /// Lets every instance of the server listen on the same port (`SO_REUSEPORT`, Unix only),
    /// so that deploying it with `instances(n)` serves HTTP from n reactors: the kernel spreads
    /// new connections over the instances' listeners, and each connection stays on the
    /// reactor that accepted it. `max_in_flight` applies per instance. Default off: with it
    /// on, another process of the same user may bind the same port too.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// Serves the runtime's snapshot as JSON on `GET /fluxor/inspect`. Default off.
    pub fn inspector(mut self, on: bool) -> Self {
        self.inspector = on;
        self
    }

    /// Serves the runtime's probes: `GET /health` ([`Fluxor::liveness`](crate::Fluxor::liveness))
    /// and `GET /ready` ([`Fluxor::readiness`](crate::Fluxor::readiness)), each `200` with its
    /// [`Health`](crate::health::Health) report as JSON when every check passes, `503` with the
    /// report (naming each failing check) otherwise. Default off.
    pub fn health(mut self, on: bool) -> Self {
        self.health = on;
        self
    }

    /// Serves Prometheus metrics on `GET /metrics`. Default off.
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Serves a live dashboard of the runtime at `/fluxor/`: a page (HTML, CSS and a small
    /// script built into the crate, nothing fetched from elsewhere) that shows reactors
    /// (messages/s, busy %, blocked episodes), deployments and their instances (state,
    /// restarts, mailbox fill, outcome counters), crashes and restarts as they happen, bus
    /// topics and patterns, the worker pool, this server's counters, the cluster when there
    /// is one, and a chart of throughput and refusals over the last three minutes. Default off.
    ///
    /// The page is fed by server-sent events on `GET /fluxor/events`: a `snapshot` event (the
    /// [`Snapshot`](crate::inspect::Snapshot) as JSON, wrapped as `{"skipped", "snapshot"}`)
    /// every [`dashboard_interval`](Self::dashboard_interval), and a `lifecycle` event (a
    /// [`LifecycleEvent`](crate::supervision::LifecycleEvent)) as each happens. Nothing queues
    /// per page: a page that reads slowly gets fewer snapshots and skips lifecycle events
    /// beyond a bounded ring, counted in [`HttpInfo::dashboard_skipped`]. At most 16 pages are
    /// connected at once; their streams are not counted against
    /// [`max_in_flight`](Self::max_in_flight), and end when the server stops.
    ///
    /// The page only reads, unless [`dashboard_actions`](Self::dashboard_actions) is on.
    ///
    /// ```no_run
    /// # use fluxor::http::HttpServer;
    /// let (server, handle) = HttpServer::builder(axum::Router::new())
    ///     .dashboard(true) // then open http://127.0.0.1:8080/fluxor/
    ///     .build();
    /// ```
    pub fn dashboard(mut self, on: bool) -> Self {
        self.dashboard = on;
        self
    }

    /// How often the dashboard's pages get a snapshot. Default 1 s; at least 50 ms.
    pub fn dashboard_interval(mut self, every: Duration) -> Self {
        self.dashboard_interval = every.max(Duration::from_millis(50));
        self
    }

    /// Lets the dashboard act as well as show: an "undeploy" button per deployment, served
    /// as `POST /fluxor/deployments/{id}/undeploy` (answered `202` once the undeploy has
    /// started; the request must carry an `x-fluxor-action` header, which a page of another
    /// origin cannot send without a CORS preflight this server never grants). Needs
    /// [`dashboard`](Self::dashboard). Default off: anyone who reaches the port could stop
    /// the service.
    pub fn dashboard_actions(mut self, on: bool) -> Self {
        self.dashboard_actions = on;
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
            listening: None,
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
        let listener = self.listen()?;
        let addr = listener.local_addr()?;

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
        if cfg.health {
            let live = runtime.clone();
            router = router.route(
                "/health",
                axum::routing::get(move || {
                    let report = live.upgrade().map(|rt| rt.liveness());
                    async move { health_response(report) }
                }),
            );
            let ready = runtime.clone();
            router = router.route(
                "/ready",
                axum::routing::get(move || {
                    let runtime = ready.upgrade();
                    async move {
                        let report = match runtime {
                            Some(rt) => Some(rt.ready().await),
                            None => None,
                        };
                        health_response(report)
                    }
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
        // One limit for the whole server, in front of every route (the dashboard's streams
        // excepted).
        let front = super::front::Front {
            routes: super::front::routes(router, DefaultBodyLimit::max(cfg.body_limit)),
            bus: ctx.bus().clone(),
            stats: self.handle.stats.clone(),
            max_in_flight: cfg.max_in_flight,
        };
        let token = CancellationToken::new();
        let shutdown = token.clone();
        let stopped = async move { shutdown.cancelled().await };
        let serving = if cfg.dashboard {
            let dashboard = Dashboard {
                runtime: runtime.clone(),
                stats: self.handle.stats.clone(),
                stop: token.clone(),
                interval: cfg.dashboard_interval,
                actions: cfg.dashboard_actions,
            };
            let app = dashboard.routes().fallback_service(front);
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            })
        } else {
            let app = axum::ServiceExt::<axum::extract::Request>::into_make_service(front);
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            })
        };
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

/// A probe's report as a response: `200` when every check passed, `503` otherwise (also when
/// the runtime is gone).
fn health_response(report: Option<Health>) -> Response {
    match report {
        Some(h) if h.ok => (StatusCode::OK, Json(h)).into_response(),
        Some(h) => (StatusCode::SERVICE_UNAVAILABLE, Json(h)).into_response(),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
