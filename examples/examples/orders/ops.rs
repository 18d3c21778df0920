//! What the service offers its operators besides orders: traces of the requests that carry a
//! W3C `traceparent`, printed as a tree, and `PUT /config/inventory` to change the inventory's
//! config while it runs.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::http::StatusCode;
use axum::{Extension, Json};
use fluxor::otel::opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use fluxor::otel::opentelemetry_sdk::error::OTelSdkResult;
use fluxor::otel::opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use fluxor::otel::tracing_opentelemetry;
use fluxor::{DeploymentId, ReconfigureError, WeakFluxor};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Logs to stderr (filter from `RUST_LOG`, `info` by default) and sends every span to
/// [`PrintTraces`]; a real service would add an OTLP exporter (crate `opentelemetry-otlp`).
pub(crate) fn init_tracing() -> PrintTraces {
    let traces = PrintTraces::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(traces.clone())
        .build();
    let filter =
        || tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_filter(filter()))
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("orders"))
                .with_filter(filter()),
        )
        .init();
    traces
}

/// Prints the trace of each HTTP request whose caller sent a `traceparent`, as a tree, once
/// its `http.request` span has ended; spans of other traces are dropped.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrintTraces {
    state: Arc<Mutex<Traces>>,
}

#[derive(Debug, Default)]
struct Traces {
    /// Ended spans of traces whose HTTP request has not ended yet (at most [`OPEN`] traces).
    open: HashMap<TraceId, Vec<SpanData>>,
    /// The last tree printed.
    last: String,
}

const OPEN: usize = 256;

impl PrintTraces {
    /// The last tree printed (empty before the first).
    pub(crate) fn last(&self) -> String {
        self.state
            .lock()
            .map(|s| s.last.clone())
            .unwrap_or_default()
    }

    fn take(&self, span: SpanData) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let trace = span.span_context.trace_id();
        if span.name != "http.request" {
            // A root that is not a request (a timer's handler) starts no trace worth printing.
            if span.parent_span_id != SpanId::INVALID {
                if state.open.len() >= OPEN && !state.open.contains_key(&trace) {
                    let oldest = state.open.keys().next().copied();
                    oldest.map(|t| state.open.remove(&t));
                }
                state.open.entry(trace).or_default().push(span);
            }
            return;
        }
        let mut spans = state.open.remove(&trace).unwrap_or_default();
        if !span.parent_span_is_remote {
            return;
        }
        let mut tree = format!("trace {trace} (caller span {})\n", span.parent_span_id);
        let root = span.span_context.span_id();
        spans.push(span);
        draw(&mut tree, &spans, root, 1);
        print!("{tree}");
        state.last = tree;
    }
}

/// Writes span `id` and its children, indented by `depth`.
fn draw(out: &mut String, spans: &[SpanData], id: SpanId, depth: usize) {
    let Some(span) = spans.iter().find(|s| s.span_context.span_id() == id) else {
        return;
    };
    let field = |key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.as_str().into_owned())
            .unwrap_or_default()
    };
    let what = match span.name.as_ref() {
        "http.request" => format!("{} {}", field("method"), field("path")),
        _ => format!("{} {}", field("component"), field("topic")),
    };
    let took = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or(Duration::ZERO);
    let _ = writeln!(
        out,
        "{:indent$}{} {what} ({took:.1?})",
        "",
        span.name,
        indent = depth * 2
    );
    let mut children: Vec<&SpanData> = spans.iter().filter(|s| s.parent_span_id == id).collect();
    children.sort_by_key(|s| s.start_time);
    for child in children {
        draw(out, spans, child.span_context.span_id(), depth + 1);
    }
}

impl SpanExporter for PrintTraces {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        for span in batch {
            self.take(span);
        }
        Ok(())
    }
}

/// What `PUT /config/inventory` needs, filled in once the service has booted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Admin(Arc<OnceLock<(WeakFluxor, DeploymentId)>>);

impl Admin {
    pub(crate) fn set(&self, runtime: WeakFluxor, inventory: DeploymentId) {
        let _ = self.0.set((runtime, inventory));
    }
}

/// `PUT /config/inventory`: the inventory's new config, applied between two of its messages;
/// a value that does not fit is refused and the old config stays.
pub(crate) async fn put_inventory_config(
    Extension(admin): Extension<Admin>,
    Json(config): Json<serde_json::Value>,
) -> (StatusCode, String) {
    let Some((runtime, id)) = admin.0.get() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "still booting".into());
    };
    let Some(runtime) = runtime.upgrade() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
    };
    match runtime.reconfigure(*id, config) {
        Ok(()) => (StatusCode::NO_CONTENT, String::new()),
        Err(e @ ReconfigureError::Invalid(_)) => (StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => (StatusCode::NOT_FOUND, e.to_string()),
    }
}
