//! Every handler invocation runs in a `fluxor.handle` span naming the component, topic,
//! deployment and ids. Its own test binary, because it installs a global subscriber.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fluxor::{DeployOptions, Fluxor};
use fluxor_tests::{Add, Fields, Probe, Relay, Trace};
use tracing::span::Attributes;
use tracing::{Id, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

type Spans = Arc<Mutex<Vec<HashMap<String, String>>>>;

struct Capture(Spans);

impl<S: Subscriber> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        if attrs.metadata().name() == "fluxor.handle" {
            let mut fields = Fields::default();
            attrs.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
    }
}

#[tokio::test]
async fn handler_spans_carry_component_topic_deployment_and_ids() {
    let spans: Spans = Arc::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(Capture(spans.clone())),
    )
    .expect("first subscriber");

    let rt = Fluxor::builder().reactors(2).build().unwrap();
    let probe = rt
        .deploy(Probe::default, DeployOptions::new())
        .await
        .unwrap();
    let relay = rt.deploy(|| Relay, DeployOptions::new()).await.unwrap();
    rt.bus().request("t.add", Add(1)).await.unwrap();
    let ids = rt
        .bus()
        .request(
            "relay.trace",
            Trace {
                forward_to: Some("t.trace".into()),
            },
        )
        .await
        .unwrap();
    rt.shutdown(Duration::from_secs(5)).await.unwrap();

    let spans = spans.lock().unwrap().clone();
    assert_eq!(spans.len(), 3, "{spans:?}");
    let add = &spans[0];
    assert_eq!(add["component"], "Probe");
    assert_eq!(add["topic"], "t.add");
    assert_eq!(add["deployment"], probe.to_string());
    assert_eq!(
        add["correlation_id"], add["request_id"],
        "a fresh request starts a chain"
    );

    let (first, second) = (&spans[1], &spans[2]);
    assert_eq!(first["topic"], "relay.trace");
    assert!(first["component"].ends_with("Relay"));
    assert_eq!(first["deployment"], relay.to_string());
    assert_eq!(second["topic"], "t.trace");
    assert_eq!(first["request_id"], ids[0]);
    assert_eq!(
        second["request_id"], ids[0],
        "the chain's request id carries over"
    );
    assert_ne!(second["correlation_id"], first["correlation_id"]);
}
