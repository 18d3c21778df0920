//! The front of the HTTP adapter: one service that admits a request (or sheds it past the
//! in-flight limit), gives it a request id, hands it the bus and counts it, in front of the
//! program's router. One step per request where a stack of layers would take several.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderValue;
use axum::response::Response;
use axum::routing::future::RouteFuture;
use axum::Router;
use tracing::instrument::Instrumented;

use super::bus::overloaded;
use super::server::HttpStats;
use super::X_REQUEST_ID;
use crate::bus::EventBus;

/// The program's router behind the server's body limit: the limit is set once per request
/// here rather than by a layer around every route (which boxes each route's future again).
pub(super) type Routes = <DefaultBodyLimit as tower::Layer<Router>>::Service;

/// The program's router, ready to serve: its routes turned into services once (a router
/// that is not leaves each route to be made again for every request), behind `limit`.
pub(super) fn routes(router: Router, limit: DefaultBodyLimit) -> Routes {
    tower::Layer::layer(&limit, router.with_state(()))
}

/// Serves requests through `routes` with the adapter's admission, request id and bus.
#[derive(Clone)]
pub(super) struct Front {
    pub(super) routes: Routes,
    pub(super) bus: EventBus,
    pub(super) stats: Arc<HttpStats>,
    pub(super) max_in_flight: usize,
}

impl tower::Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Served;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A router is always ready; admission is decided per request, in `call`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> Served {
        let Some(admitted) = InFlight::enter(&self.stats, self.max_in_flight) else {
            self.stats.shed.fetch_add(1, Ordering::Relaxed);
            return Served::Shed {
                response: Some(overloaded(
                    "too many requests in flight; retry shortly",
                    "1",
                )),
            };
        };
        let id = match req.headers().get(&X_REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = new_request_id(&self.bus);
                req.headers_mut().insert(X_REQUEST_ID.clone(), id.clone());
                id
            }
        };
        req.extensions_mut().insert(self.bus.clone());
        #[cfg(feature = "otel")]
        let span = crate::otel::http_span(&req);
        #[cfg(not(feature = "otel"))]
        let span = tracing::Span::none();
        let routed = {
            let _entered = span.enter();
            tower::Service::call(&mut self.routes, req)
        };
        Served::Routed {
            routed: tracing::Instrument::instrument(routed, span),
            admitted: Some(admitted),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's way through the front, without a box of its own: the router's future, then
    /// the request id on its response; or the answer to a request shed at the door.
    #[project = ServedProj]
    pub(super) enum Served {
        Shed { response: Option<Response> },
        Routed {
            // In the request's span (`otel`) while it runs and when it is dropped.
            #[pin]
            routed: Instrumented<RouteFuture<Infallible>>,
            // Counted in flight until the response is made (or the request dropped).
            admitted: Option<InFlight>,
            id: Option<HeaderValue>,
        },
    }
}

impl Future for Served {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ServedProj::Shed { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => panic!("a request's response polled after it was made"),
            },
            ServedProj::Routed {
                routed,
                admitted,
                id,
            } => {
                let mut response = match std::task::ready!(routed.poll(cx)) {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                if let Some(id) = id.take() {
                    response.headers_mut().entry(&X_REQUEST_ID).or_insert(id);
                }
                admitted.take();
                Poll::Ready(Ok(response))
            }
        }
    }
}

/// A request id from the bus's id generator: unique without a system call per request (a
/// random UUID would ask the kernel for randomness each time). Its text is shared from the
/// start, so the request's and the response's copies are one allocation.
fn new_request_id(bus: &EventBus) -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    bus.next_id().hyphenated().encode_lower(&mut text);
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(text))
        .expect("a UUID is a valid header value")
}

/// Counts a request in flight until dropped (also when its handler panics or its connection
/// goes away).
pub(super) struct InFlight(Arc<HttpStats>);

impl InFlight {
    /// Admits a request, or `None` when `max` are in flight already.
    fn enter(stats: &Arc<HttpStats>, max: usize) -> Option<Self> {
        let admitted = stats
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            return None;
        }
        stats.requests.fetch_add(1, Ordering::Relaxed);
        Some(InFlight(stats.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
