//! Trace context across HTTP, the bus and nodes (feature `otel`).
//!
//! With this feature on, a trace follows a piece of work wherever it goes:
//!
//! * the HTTP adapter reads W3C [`traceparent`/`tracestate`](https://www.w3.org/TR/trace-context/)
//!   from each incoming request and makes it the parent of the request's `http.request` span;
//! * every `send`, `request` and `publish` (from the [`EventBus`](crate::EventBus), a
//!   [`Context`](crate::Context) or an [`ActorRef`](crate::ActorRef)) writes the trace context
//!   of the span it is made in into the envelope's [`Headers`] (a header the caller set
//!   explicitly is kept);
//! * the handler that takes the envelope runs in a `fluxor.handle` span whose parent is that
//!   context, so what the handler sends in turn continues the same trace;
//! * across nodes (feature `cluster`) the two headers travel as the NATS headers `traceparent`
//!   and `tracestate`, the names other NATS tools use.
//!
//! Fluxor only propagates: spans are exported by the `tracing-opentelemetry` layer the program
//! installs, with the OpenTelemetry SDK and the exporter of its choice (OTLP for most backends).
//! The crates are re-exported here so that the versions match:
//!
//! ```
//! use fluxor::otel::{opentelemetry::trace::TracerProvider as _, opentelemetry_sdk, tracing_opentelemetry};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
//!     // The exporter goes here; for OTLP (crate `opentelemetry-otlp`):
//!     // .with_batch_exporter(opentelemetry_otlp::SpanExporter::builder().with_tonic().build()?)
//!     .build();
//! let subscriber = tracing_subscriber::registry()
//!     .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("orders")));
//! tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
//! ```
//!
//! Handler and HTTP spans are at level `INFO` with this feature (at `DEBUG` without it), so
//! that an `info` filter keeps the trace whole. Without the feature none of this is compiled:
//! no header is written or read and the spans stay as they were.

use std::borrow::Cow;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use opentelemetry;
pub use opentelemetry_sdk;
pub use tracing_opentelemetry;

use crate::message::Headers;

/// The W3C header that carries the trace and parent span ids.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header that carries vendor-specific trace state.
pub const TRACESTATE: &str = "tracestate";

/// The trace context carried by `headers`, or `None` when they carry none (or a malformed
/// one, which is ignored as the W3C rules ask).
pub fn extract(headers: &Headers) -> Option<opentelemetry::Context> {
    headers.get(TRACEPARENT)?;
    let cx = TraceContextPropagator::new().extract(&Read(headers));
    cx.span().span_context().is_valid().then_some(cx)
}

/// Writes the trace context of the current `tracing` span into `headers`. Does nothing when
/// the span has no OpenTelemetry context (no layer installed, or no trace started) or when
/// `headers` already carry a `traceparent`.
pub fn inject_current(headers: &mut Headers) {
    if headers.get(TRACEPARENT).is_some() {
        return;
    }
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut Write(headers));
    }
}

/// Makes `parent` the parent of `span`; a span no OpenTelemetry layer sees ignores it.
pub(crate) fn set_parent(span: &tracing::Span, parent: opentelemetry::Context) {
    let _ = span.set_parent(parent);
}

/// The span an HTTP request is served in, child of the caller's trace when the request
/// carries one.
#[cfg(feature = "http")]
pub(crate) fn http_span(req: &axum::extract::Request) -> tracing::Span {
    let span = tracing::info_span!(
        "http.request",
        method = %req.method(),
        path = req.uri().path(),
        request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let cx = TraceContextPropagator::new().extract(&HttpRead(req.headers()));
    if cx.span().span_context().is_valid() {
        set_parent(&span, cx);
    }
    span
}

struct Read<'a>(&'a Headers);

impl Extractor for Read<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k).collect()
    }
}

struct Write<'a>(&'a mut Headers);

impl Injector for Write<'_> {
    fn set(&mut self, key: &str, value: String) {
        let key: Cow<'static, str> = match key {
            TRACEPARENT => Cow::Borrowed(TRACEPARENT),
            TRACESTATE => Cow::Borrowed(TRACESTATE),
            other => Cow::Owned(other.to_owned()),
        };
        self.0.insert(key, value);
    }
}

#[cfg(feature = "http")]
struct HttpRead<'a>(&'a axum::http::HeaderMap);

#[cfg(feature = "http")]
impl Extractor for HttpRead<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_read_and_a_malformed_one_ignored() {
        let mut h = Headers::new();
        h.insert(
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        let cx = extract(&h).expect("a valid context");
        let sc = cx.span().span_context().clone();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(sc.is_remote());

        let mut bad = Headers::new();
        bad.insert(TRACEPARENT, "00-zz-00f067aa0ba902b7-01");
        assert!(extract(&bad).is_none());
        assert!(extract(&Headers::new()).is_none());
    }

    #[test]
    fn nothing_is_written_outside_a_trace_or_over_an_explicit_header() {
        let mut h = Headers::new();
        inject_current(&mut h);
        assert!(h.is_empty(), "no layer, no trace: {h:?}");
        h.insert(TRACEPARENT, "mine");
        inject_current(&mut h);
        assert_eq!(h.get(TRACEPARENT), Some("mine"));
    }
}
