//! Trace context (feature `otel`) across HTTP, the bus and nodes, read back from the SDK's
//! in-memory exporter: every span of one trace, with its parent links.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::routing::post;
use axum::Router;
use fluxor::cluster::NatsCluster;
use fluxor::http::{Bus, HttpServer};
use fluxor::otel::opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use fluxor::otel::opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use fluxor::otel::{tracing_opentelemetry, TRACEPARENT};
use fluxor::prelude::*;
use fluxor::{Address, BusError, DeployOptions, Fluxor};
use fluxor_tests::eventually;
use fluxor_tests::nats::{until_ready, NatsServer};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Message, Serialize, Deserialize, Debug, Clone)]
#[message(reply = String, remote)]
struct Front;

#[derive(Message, Serialize, Deserialize, Debug, Clone)]
#[message(reply = String, remote)]
struct Back;

const FRONT: Address<Front> = Address::new("otel.front");
const BACK: Address<Back> = Address::new("otel.back");

/// Asks [`Back`] and passes its answer on.
#[component]
#[derive(Debug, Default)]
struct A;

#[component]
impl A {
    #[handler("otel.front", remote)]
    async fn front(&mut self, _: Front, ctx: &mut Context<Self>) -> Result<String, BusError> {
        ctx.request(BACK, Back).await
    }
}

/// Answers with the `traceparent` its envelope carried (`-` for none).
#[component]
#[derive(Debug, Default)]
struct B;

#[component]
impl B {
    #[handler("otel.back", remote)]
    fn back(&mut self, _: Back, ctx: &mut Context<Self>) -> String {
        ctx.headers().get(TRACEPARENT).unwrap_or("-").to_owned()
    }

    /// The same, for a direct request.
    #[handler]
    fn back_direct(&mut self, msg: Back, ctx: &mut Context<Self>) -> String {
        self.back(msg, ctx)
    }
}

/// One exporter for the process: the subscriber is global, since reactors are threads.
fn exporter() -> &'static (InMemorySpanExporter, SdkTracerProvider) {
    static EXPORT: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    EXPORT.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("fluxor-tests")));
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        (exporter, provider)
    })
}

/// The finished spans of trace `id`.
fn spans_of(id: TraceId) -> Vec<SpanData> {
    let (exporter, _) = exporter();
    exporter
        .get_finished_spans()
        .expect("spans")
        .into_iter()
        .filter(|s| s.span_context.trace_id() == id)
        .collect()
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

/// The one span of `spans` named `name` whose `component` (if given) is `component`.
fn one<'a>(spans: &'a [SpanData], name: &str, component: Option<&str>) -> &'a SpanData {
    let found: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| component.is_none() || attribute(s, "component").as_deref() == component)
        .collect();
    assert_eq!(found.len(), 1, "one `{name}` {component:?} in {spans:#?}");
    found[0]
}

async fn await_spans(id: TraceId, n: usize) -> Vec<SpanData> {
    eventually("the trace's spans", Duration::from_secs(5), || {
        spans_of(id).len() >= n
    })
    .await;
    spans_of(id)
}

#[tokio::test]
async fn one_trace_spans_http_a_request_to_b_and_the_reply() {
    exporter();
    let rt = Fluxor::builder().reactors(2).build().expect("runtime");
    rt.deploy(|| A, DeployOptions::new()).await.expect("a");
    rt.deploy(|| B, DeployOptions::new()).await.expect("b");
    let router = Router::new().route(
        "/front",
        post(|bus: Bus| async move { bus.request(FRONT, Front).await }),
    );
    let (server, handle) = HttpServer::builder(router)
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .build();
    rt.deploy(server, DeployOptions::new()).await.expect("http");

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let answer = reqwest::Client::new()
        .post(format!(
            "http://{}/front",
            handle.local_addr().expect("bound")
        ))
        .header(TRACEPARENT, format!("00-{trace}-{caller}-01"))
        .send()
        .await
        .expect("the request")
        .text()
        .await
        .expect("the body");

    let id = TraceId::from_hex(trace).expect("hex");
    let spans = await_spans(id, 3).await;
    let http = one(&spans, "http.request", None);
    let a = one(&spans, "fluxor.handle", Some("A"));
    let b = one(&spans, "fluxor.handle", Some("B"));
    assert_eq!(http.parent_span_id, SpanId::from_hex(caller).expect("hex"));
    assert_eq!(a.parent_span_id, http.span_context.span_id());
    assert_eq!(b.parent_span_id, a.span_context.span_id());
    assert_eq!(attribute(a, "topic").as_deref(), Some("otel.front"));
    assert_eq!(
        answer,
        format!("00-{trace}-{}-01", a.span_context.span_id()),
        "B's envelope carried A's span as the parent"
    );
    rt.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}

#[tokio::test]
async fn a_direct_request_carries_the_span_it_is_awaited_in() {
    exporter();
    let rt = Fluxor::builder().reactors(1).build().expect("runtime");
    let id = rt.deploy(|| B, DeployOptions::new()).await.expect("b");
    let b = rt.actor_ref::<B>(id, 0).expect("b's instance");
    let root = tracing::info_span!("direct");
    let trace = {
        use fluxor::otel::opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        root.context().span().span_context().trace_id()
    };
    // Made outside the span, sent inside it: the envelope's parent is the span it is
    // awaited in.
    let request = b.request(Back);
    let answer = request.instrument(root).await.expect("B answers");
    let spans = await_spans(trace, 2).await;
    let direct = one(&spans, "direct", None);
    let handled = one(&spans, "fluxor.handle", Some("B"));
    assert_eq!(handled.parent_span_id, direct.span_context.span_id());
    assert_eq!(
        answer,
        format!("00-{trace}-{}-01", direct.span_context.span_id())
    );
    rt.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}

#[tokio::test]
async fn a_trace_crosses_nodes_in_nats_headers() {
    exporter();
    let server = NatsServer::start();
    let node = || {
        Fluxor::builder()
            .reactors(1)
            .cluster(NatsCluster::connect(server.url()).name("otel"))
            .build()
            .expect("node")
    };
    let (one_node, other) = (node(), node());
    one_node
        .deploy(|| A, DeployOptions::new())
        .await
        .expect("a");
    other.deploy(|| B, DeployOptions::new()).await.expect("b");
    until_ready(&one_node).await;
    until_ready(&other).await;

    let root = tracing::info_span!("client");
    let id = {
        use fluxor::otel::opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        root.context().span().span_context().trace_id()
    };
    let answer = one_node
        .bus()
        .request(FRONT, Front)
        .instrument(root)
        .await
        .expect("B answers through A");

    let spans = await_spans(id, 3).await;
    let client = one(&spans, "client", None);
    let a = one(&spans, "fluxor.handle", Some("A"));
    let b = one(&spans, "fluxor.handle", Some("B"));
    assert_eq!(a.parent_span_id, client.span_context.span_id());
    assert_eq!(
        b.parent_span_id,
        a.span_context.span_id(),
        "across the nodes"
    );
    assert!(
        answer.contains(&a.span_context.span_id().to_string()),
        "{answer}"
    );
    for rt in [one_node, other] {
        rt.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    }
}

#[tokio::test]
async fn no_trace_means_no_header_and_a_callers_header_wins() {
    exporter();
    let rt = Fluxor::builder().reactors(1).build().expect("runtime");
    rt.deploy(|| B, DeployOptions::new()).await.expect("b");
    assert_eq!(rt.bus().request(BACK, Back).await.as_deref(), Ok("-"));

    let mine = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let root = tracing::info_span!("client");
    let answer = rt
        .bus()
        .request_with(
            BACK,
            Back,
            fluxor::RequestOptions::new().header(TRACEPARENT, mine),
        )
        .instrument(root)
        .await;
    assert_eq!(answer.as_deref(), Ok(mine));
    rt.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}
