//! Hot config: `Fluxor::reconfigure` swaps a running deployment's config between messages.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use fluxor::prelude::*;
use fluxor::{LifecycleEvent, ReconfigureError};
use fluxor_tests::eventually;

#[derive(Debug, serde::Deserialize)]
struct Limits {
    max: u32,
}

#[derive(Message)]
#[message(reply = u32)]
struct Max;

/// Reads the config, naps, reads it again: both reads must agree.
#[derive(Message)]
#[message(reply = (u32, u32))]
struct Twice(u64);

/// Answers what the `#[on_config]` hook saw last (0: never ran).
#[derive(Message)]
#[message(reply = u32)]
struct Adopted;

#[component(config = Limits)]
#[derive(Default)]
struct Gate {
    adopted: u32,
}

#[component]
impl Gate {
    #[on_config]
    fn adopt(&mut self, ctx: &mut Context<Self>) {
        self.adopted = ctx.config().max;
    }

    #[handler("gate.adopted")]
    fn adopted(&mut self, _: Adopted) -> u32 {
        self.adopted
    }

    #[handler("gate.max")]
    fn max(&mut self, _: Max, ctx: &mut Context<Self>) -> u32 {
        ctx.config().max
    }

    #[handler("gate.twice")]
    async fn twice(&mut self, Twice(ms): Twice, ctx: &mut Context<Self>) -> (u32, u32) {
        let before = ctx.config().max;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        (before, ctx.config().max)
    }
}

/// Counts `reconfigured` events.
#[component]
#[derive(Default)]
struct Watcher {
    seen: Arc<AtomicU64>,
}

#[component]
impl Watcher {
    #[handler("fluxor.lifecycle.reconfigured")]
    fn reconfigured(&mut self, _: LifecycleEvent) {
        self.seen.fetch_add(1, SeqCst);
    }
}

#[tokio::test]
async fn a_new_config_is_adopted_between_messages_and_a_bad_one_changes_nothing() {
    let rt = Fluxor::builder().reactors(2).build().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    rt.deploy(move || Watcher { seen: s.clone() }, DeployOptions::new())
        .await
        .unwrap();
    let id = rt
        .deploy(
            Gate::default,
            DeployOptions::new()
                .instances(2)
                .config(serde_json::json!({ "max": 10 })),
        )
        .await
        .unwrap();
    let bus = rt.bus().clone();
    for _ in 0..2 {
        assert_eq!(bus.request("gate.max", Max).await, Ok(10));
        // The hook runs only for a config given after the start.
        assert_eq!(bus.request("gate.adopted", Adopted).await, Ok(0));
    }

    // A handler in the middle of its work keeps the config it started with.
    let slow = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.request("gate.twice", Twice(300)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    rt.reconfigure(id, serde_json::json!({ "max": 20 }))
        .expect("a fitting config");
    assert_eq!(slow.await.unwrap(), Ok((10, 10)));
    // Every instance answers with the new value from its next message on.
    for _ in 0..4 {
        assert_eq!(bus.request("gate.max", Max).await, Ok(20));
        assert_eq!(bus.request("gate.adopted", Adopted).await, Ok(20));
    }
    eventually("one event per instance", Duration::from_secs(5), || {
        seen.load(SeqCst) == 2
    })
    .await;

    // A value that does not fit changes nothing and says why.
    match rt.reconfigure(id, serde_json::json!({ "max": "many" })) {
        Err(ReconfigureError::Invalid(e)) => assert!(e.to_string().contains("expected u32"), "{e}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(bus.request("gate.max", Max).await, Ok(20));
    let info = rt.inspect();
    let gate = info
        .deployments
        .iter()
        .find(|d| d.id == id)
        .expect("the gate");
    assert_eq!(gate.config_keys, ["max"]);

    rt.undeploy(id).await.unwrap();
    assert!(matches!(
        rt.reconfigure(id, serde_json::json!({ "max": 1 })),
        Err(ReconfigureError::Unknown(u)) if u == id
    ));
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
