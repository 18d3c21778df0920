//! Deploys and undeploys made from a handler on the instances' own reactor: a component whose
//! start and stop are plain methods starts and stops within the handler's turn. Its failures,
//! and messages still queued at the undeploy, must come out as they do for any deployment.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use fluxor::prelude::*;
use fluxor::{BoxError, DeployOptions, Fluxor};

/// What the leaves did, read by the test.
#[derive(Debug, Default)]
struct Log {
    starts: AtomicU64,
    stops: AtomicU64,
    handled: AtomicU64,
}

#[derive(Debug, Default, serde::Deserialize)]
struct LeafConfig {
    #[serde(default)]
    fail_start: bool,
    #[serde(default)]
    fail_stop: bool,
}

#[derive(Debug)]
struct Work;
impl Message for Work {
    type Reply = ();
}

#[component(config = LeafConfig)]
#[derive(Default)]
struct Leaf {
    log: Arc<Log>,
}

#[component]
impl Leaf {
    #[on_start]
    fn begin(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.log.starts.fetch_add(1, SeqCst);
        if ctx.config().fail_start {
            return Err("the leaf refuses to start".into());
        }
        Ok(())
    }

    #[on_stop]
    fn end(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.log.stops.fetch_add(1, SeqCst);
        if ctx.config().fail_stop {
            return Err("the leaf refuses to stop".into());
        }
        Ok(())
    }

    #[handler]
    fn work(&mut self, _: Work) {
        self.log.handled.fetch_add(1, SeqCst);
    }
}

/// Deploy a leaf next to the parent with `config`, send it `queued` messages, undeploy it;
/// the answer says how each step went.
#[derive(Debug)]
struct Cycle {
    config: serde_json::Value,
    queued: u64,
}
impl Message for Cycle {
    type Reply = String;
}

#[component]
struct Parent {
    log: Arc<Log>,
}

#[component]
impl Parent {
    #[handler("t.cycle")]
    async fn cycle(&mut self, cycle: Cycle, ctx: &mut Context<Self>) -> String {
        let log = self.log.clone();
        let options = DeployOptions::new()
            .reactor(ctx.reactor())
            .config(cycle.config);
        let id = match ctx.deploy(move || Leaf { log: log.clone() }, options).await {
            Ok(id) => id,
            Err(e) => return format!("deploy: {e}"),
        };
        let leaf = ctx.actor_ref::<Leaf>(id, 0).expect("the leaf is deployed");
        for _ in 0..cycle.queued {
            if leaf.send(Work).is_err() {
                return "send refused".into();
            }
        }
        match ctx.undeploy(id).await {
            Ok(()) => "ok".into(),
            Err(e) => format!("undeploy: {e}"),
        }
    }
}

async fn cycle(rt: &Fluxor, config: serde_json::Value, queued: u64) -> String {
    rt.bus()
        .request("t.cycle", Cycle { config, queued })
        .await
        .expect("the parent answers")
}

#[tokio::test]
async fn plain_start_and_stop_hooks_run_once_and_report_their_failures() {
    let rt = Fluxor::builder().reactors(1).build().unwrap();
    let log = Arc::new(Log::default());
    let parent_log = log.clone();
    rt.deploy(
        move || Parent {
            log: parent_log.clone(),
        },
        DeployOptions::new(),
    )
    .await
    .unwrap();

    assert_eq!(cycle(&rt, serde_json::json!({}), 0).await, "ok");
    assert_eq!((log.starts.load(SeqCst), log.stops.load(SeqCst)), (1, 1));

    // A failed start fails the deploy; the instance never ran, so its stop does not run.
    let answer = cycle(&rt, serde_json::json!({ "fail_start": true }), 0).await;
    assert!(
        answer.starts_with("deploy:") && answer.contains("refuses to start"),
        "{answer}"
    );
    assert_eq!((log.starts.load(SeqCst), log.stops.load(SeqCst)), (2, 1));
    assert_eq!(rt.deployments().len(), 1, "only the parent is deployed");

    // A failed stop is the undeploy's error.
    let answer = cycle(&rt, serde_json::json!({ "fail_stop": true }), 0).await;
    assert!(
        answer.starts_with("undeploy:") && answer.contains("refuses to stop"),
        "{answer}"
    );
    assert_eq!((log.starts.load(SeqCst), log.stops.load(SeqCst)), (3, 2));

    // Messages queued before the undeploy are handled before the stop.
    assert_eq!(cycle(&rt, serde_json::json!({}), 5).await, "ok");
    assert_eq!(log.handled.load(SeqCst), 5);
    assert_eq!((log.starts.load(SeqCst), log.stops.load(SeqCst)), (4, 3));
    assert_eq!(rt.deployments().len(), 1, "every leaf was undeployed");

    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
