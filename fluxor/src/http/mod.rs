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
//! let (server, handle) = HttpServer::builder(router)
//!     .bind("127.0.0.1:8080".parse()?)
//!     .max_in_flight(256)
//!     .inspector(true)
//!     .build();
//! runtime.deploy(server, DeployOptions::new()).await?;
//! println!("listening on {:?}", handle.local_addr());
//! # Ok(()) }
//! ```
//!
//! * **Backpressure**: at most `max_in_flight` requests are handled at once (per server
//!   instance); one more is shed at once with `503 Service Unavailable` and
//!   `Retry-After: 1`, and counted. Admission is one atomic step in front of the routes, not
//!   a stack of layers.
//! * **Request ids**: every request (the dashboard's own excepted) gets an `X-Request-ID`
//!   (kept if the client sent one, a UUID from the runtime's id generator otherwise), echoed
//!   in the response. [`Bus`] carries it into bus headers
//!   (`x-request-id`), and when it is a UUID, it becomes the bus request id, so the handler's
//!   `ctx.request_id()` and tracing span show it.
//! * **Errors**: [`BusError`](crate::BusError) is an axum response: `MailboxFull` and `Closed`
//!   503 with `Retry-After: 1`, `NoHandlers` 503 without it (a missing handler is not a load
//!   peak that passes in a second), `Timeout` 504, `RecipientFailed` 500, malformed JSON
//!   400/422, each with a JSON body `{"error": kind, "message": text}`. Bodies are limited
//!   (`body_limit`, 1 MiB by default; larger ones get 413).
//! * **Shutdown**: stopping the component (undeploy, runtime shutdown) stops accepting
//!   connections and lets in-flight requests finish, within the stop deadline.
//! * **Inspector and metrics**: `inspector(true)` serves the runtime's [`Snapshot`](crate::inspect::Snapshot)
//!   as JSON on `/fluxor/inspect`; `metrics(true)` serves Prometheus text on `/metrics`. Both are
//!   off by default, and the server binds to loopback unless told otherwise.
//! * **Dashboard**: `dashboard(true)` serves a live page at `/fluxor/` (reactors, deployments,
//!   mailboxes, crashes as they happen, bus, workers, a throughput chart), fed by server-sent
//!   events; read-only unless `dashboard_actions(true)`. See
//!   [`HttpServerBuilder::dashboard`].

/// The header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// [`REQUEST_ID`] as a header name, made once: a lookup by name does not parse the text again
/// for every request.
static X_REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static(REQUEST_ID);

mod bus;
mod dashboard;
mod front;
mod metrics;
mod server;
#[cfg(test)]
mod tests;

pub use bus::{bus_request, Bus};
pub use server::{HttpHandle, HttpInfo, HttpServer, HttpServerBuilder, NoMessages};
