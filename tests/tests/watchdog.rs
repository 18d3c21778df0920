//! The blocked-reactor checker warns once per episode, naming reactor, component and topic,
//! and counts episodes. Its own test binary, because it installs a global subscriber.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fluxor::prelude::*;
use fluxor_tests::{eventually, Add, Block, Fields, Probe, Skynet};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::Layer;

type Events = Arc<Mutex<Vec<HashMap<String, String>>>>;

struct Warnings(Events);

impl<S: Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &Event<'_>, _ctx: LayerContext<'_, S>) {
        if *event.metadata().level() == Level::WARN
            && event.metadata().target().starts_with("fluxor")
        {
            let mut f = Fields::default();
            event.record(&mut f);
            self.0.lock().unwrap().push(f.0);
        }
    }
}

#[tokio::test]
async fn a_handler_that_blocks_its_reactor_is_reported_once_and_counted() {
    let events: Events = Arc::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(Warnings(events.clone())),
    )
    .expect("first subscriber");

    let rt = Fluxor::builder()
        .reactors(2)
        .blocked_threshold(Duration::from_millis(100))
        .build()
        .unwrap();
    let id = rt
        .deploy(Probe::default, DeployOptions::new().reactor(1))
        .await
        .unwrap();

    // Fast handlers: no warning.
    for i in 0..50 {
        rt.bus().request("t.add", Add(i)).await.unwrap();
    }
    // Then the reactor idles for more than twice the threshold (this is what is tested, not a
    // wait for something): idle is not blocked.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        events.lock().unwrap().is_empty(),
        "{:?}",
        events.lock().unwrap()
    );
    assert!(rt.reactor_stats().iter().all(|r| r.blocked_episodes == 0));

    // A handler sleeping the thread for 4 thresholds: one episode, one warning (the repeat
    // would come after 5 thresholds).
    rt.bus()
        .request("t.block", Block(Duration::from_millis(400)))
        .await
        .unwrap();
    // The reply may come before the warning is recorded and the handler is counted.
    eventually(
        "the warning, the episode and the handler's count",
        Duration::from_secs(5),
        || {
            let stats = rt.reactor_stats();
            !events.lock().unwrap().is_empty()
                && stats[1].blocked_episodes >= 1
                && stats[1].handled >= 51
        },
    )
    .await;

    let warnings = events.lock().unwrap().clone();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    assert_eq!(w["reactor"], "1");
    assert_eq!(w["component"], "Probe");
    assert_eq!(w["topic"], "t.block");
    assert_eq!(w["deployment"], id.to_string());
    let elapsed: u64 = w["elapsed_ms"].parse().unwrap();
    assert!((100..400).contains(&elapsed), "{elapsed}");

    let stats = rt.reactor_stats();
    assert_eq!(stats[1].blocked_episodes, 1);
    assert_eq!(stats[0].blocked_episodes, 0);
    assert_eq!(stats[1].handled, 51);

    // A handler that blocks while its deployment is being undeployed (out of the runtime's
    // table already) is still named.
    // Deployments made since then push its label out of the checker's memory of deployments
    // outside the table (it keeps 64); the undeploy puts it back.
    for _ in 0..70 {
        rt.deploy(Skynet::default, DeployOptions::new().reactor(0))
            .await
            .unwrap();
    }
    events.lock().unwrap().clear();
    rt.bus()
        .send("t.block", Block(Duration::from_millis(400)))
        .unwrap();
    rt.undeploy(id).await.unwrap();
    eventually(
        "the warning about the undeployed deployment's handler",
        Duration::from_secs(5),
        || !events.lock().unwrap().is_empty(),
    )
    .await;
    let w = events.lock().unwrap()[0].clone();
    assert_eq!(w["component"], "Probe", "{w:?}");
    assert_eq!(w["deployment"], id.to_string());
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
