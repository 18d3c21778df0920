//! The live dashboard: a static page under `/fluxor/` fed by a server-sent event stream of
//! snapshots and lifecycle events, and (when allowed) undeploy actions.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::bus::{error_response, overloaded};
use super::server::HttpStats;
use crate::ids::DeploymentId;
use crate::runtime::WeakFluxor;

/// Dashboard streams open at once; one more is refused with 503.
pub(crate) const MAX_CLIENTS: usize = 16;

/// The header a dashboard action must carry. A page of another origin cannot add it without
/// a CORS preflight, which this server never grants, so actions cannot be forged by a link
/// or a form elsewhere.
const ACTION_HEADER: &str = "x-fluxor-action";

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/dashboard.js");
const STYLE: &str = include_str!("assets/dashboard.css");

/// What the dashboard routes need.
#[derive(Clone)]
pub(super) struct Dashboard {
    pub(super) runtime: WeakFluxor,
    pub(super) stats: Arc<HttpStats>,
    /// Cancelled when the server stops: every stream ends, so shutdown does not wait on them.
    pub(super) stop: CancellationToken,
    pub(super) interval: Duration,
    pub(super) actions: bool,
}

impl Dashboard {
    /// The dashboard's routes, outside the server's in-flight limit (a stream stays open for
    /// as long as the page does; [`MAX_CLIENTS`] bounds them instead).
    pub(super) fn routes(self) -> Router {
        let mut router = Router::new()
            .route("/fluxor", get(|| async { Redirect::permanent("/fluxor/") }))
            .route("/fluxor/", get(|| async { asset(INDEX, "text/html") }))
            .route(
                "/fluxor/dashboard.js",
                get(|| async { asset(SCRIPT, "text/javascript") }),
            )
            .route(
                "/fluxor/dashboard.css",
                get(|| async { asset(STYLE, "text/css") }),
            );
        let feed = self.clone();
        router = router.route("/fluxor/events", get(move || events(feed.clone())));
        if self.actions {
            let runtime = self.runtime.clone();
            router = router.route(
                "/fluxor/deployments/{id}/undeploy",
                post(move |Path(id): Path<String>, headers: HeaderMap| {
                    undeploy(runtime.clone(), id, headers)
                }),
            );
        }
        router
    }
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, format!("{kind}; charset=utf-8")),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// The event stream of one page: `hello` (settings), then `snapshot` every interval and
/// `lifecycle` as events happen; `skipped` when lifecycle events were missed.
async fn events(dash: Dashboard) -> Response {
    let Some(client) = Client::enter(&dash.stats) else {
        return overloaded("too many dashboard pages open; retry shortly", "5");
    };
    let Some(runtime) = dash.runtime.upgrade() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let lifecycle = runtime.lifecycle_events();
    drop(runtime);
    let mut tick = tokio::time::interval(dash.interval);
    // A page that reads slowly gets fewer snapshots, not a backlog of them.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let feed = Feed {
        hello: Some(format!(
            "{{\"interval_ms\":{},\"actions\":{}}}",
            dash.interval.as_millis(),
            dash.actions
        )),
        last: None,
        dash,
        lifecycle,
        tick,
        skipped: 0,
        _client: client,
    };
    Sse::new(feed_stream(feed)).into_response()
}

/// The state of one stream. The stream is pulled only as fast as the connection takes its
/// events, so nothing queues per page: a snapshot is taken when the page can receive it, and
/// lifecycle events wait in the runtime's bounded ring, the oldest skipped (and counted) when
/// the page falls too far behind.
struct Feed {
    dash: Dashboard,
    hello: Option<String>,
    lifecycle: crate::runtime::LifecycleWatch,
    tick: tokio::time::Interval,
    /// When the last snapshot was sent, to count the ones a slow page missed.
    last: Option<Instant>,
    /// Snapshots and lifecycle events this page missed.
    skipped: u64,
    _client: Client,
}

fn feed_stream(feed: Feed) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        feed.dash.stats.dash_sent.fetch_add(1, Ordering::Relaxed);
        Some((Ok(event), feed))
    })
}

impl Feed {
    /// The next event, or `None` when the stream ends (the server stops, the runtime is gone).
    async fn next(&mut self) -> Option<Event> {
        if let Some(hello) = self.hello.take() {
            return Some(Event::default().event("hello").data(hello));
        }
        let stop = self.dash.stop.clone();
        tokio::select! {
            biased;
            () = stop.cancelled() => None,
            got = self.lifecycle.recv() => match got {
                Ok(event) => Some(json_event("lifecycle", &event)),
                Err(RecvError::Lagged(n)) => {
                    self.skip(n);
                    Some(Event::default().event("skipped").data(n.to_string()))
                }
                Err(RecvError::Closed) => None,
            },
            _ = self.tick.tick() => {
                let now = Instant::now();
                if let Some(last) = self.last {
                    let behind = now.duration_since(last).as_millis()
                        / self.dash.interval.as_millis().max(1);
                    self.skip(u64::try_from(behind.saturating_sub(1)).unwrap_or(u64::MAX));
                }
                self.last = Some(now);
                let snapshot = self.dash.runtime.upgrade()?.inspect();
                let body = serde_json::to_string(&snapshot).unwrap_or_else(|_| "null".into());
                Some(Event::default().event("snapshot").data(format!(
                    "{{\"skipped\":{},\"snapshot\":{body}}}",
                    self.skipped
                )))
            }
        }
    }

    fn skip(&mut self, n: u64) {
        if n > 0 {
            self.skipped = self.skipped.saturating_add(n);
            self.dash.stats.dash_skipped.fetch_add(n, Ordering::Relaxed);
        }
    }
}

fn json_event(kind: &'static str, value: &impl serde::Serialize) -> Event {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    Event::default().event(kind).data(body)
}

/// Counts an open stream until dropped; refuses one over [`MAX_CLIENTS`].
struct Client(Arc<HttpStats>);

impl Client {
    fn enter(stats: &Arc<HttpStats>) -> Option<Self> {
        stats
            .dash_clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CLIENTS).then_some(n + 1)
            })
            .ok()?;
        Some(Client(stats.clone()))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.0.dash_clients.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `POST /fluxor/deployments/{id}/undeploy`: starts undeploying and answers `202` at once (the
/// undeploy may stop this very server, which waits for its requests).
async fn undeploy(runtime: WeakFluxor, id: String, headers: HeaderMap) -> Response {
    if !headers.contains_key(ACTION_HEADER) {
        return error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a dashboard action needs the x-fluxor-action header",
        );
    }
    let Some(runtime) = runtime.upgrade() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let Ok(uuid) = uuid::Uuid::parse_str(&id) else {
        return error_response(StatusCode::BAD_REQUEST, "bad_id", "not a deployment id");
    };
    let id = DeploymentId(uuid);
    if !runtime.deployments().iter().any(|d| d.id == id) {
        return error_response(StatusCode::NOT_FOUND, "not_found", "no such deployment");
    }
    tokio::spawn(async move {
        match runtime.undeploy(id).await {
            Ok(()) => tracing::info!(deployment = %id, "undeployed from the dashboard"),
            Err(e) => {
                tracing::warn!(deployment = %id, error = %e, "dashboard undeploy failed");
            }
        }
    });
    StatusCode::ACCEPTED.into_response()
}
