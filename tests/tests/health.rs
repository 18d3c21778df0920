//! Liveness and readiness: what each probe checks, and how the HTTP adapter serves them.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use fluxor::health::{Health, Thresholds};
use fluxor::http::HttpServer;
use fluxor::{DeployOptions, Fluxor};
use fluxor_tests::{eventually, hold, Block, Counters, Probe};

fn failing(h: &Health) -> Vec<&str> {
    h.checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_ref())
        .collect()
}

fn detail<'a>(h: &'a Health, name: &str) -> &'a str {
    h.checks
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.detail.as_deref())
        .unwrap_or("")
}

#[tokio::test]
async fn a_blocked_reactor_fails_readiness_then_liveness_and_both_recover() {
    let rt = Fluxor::builder()
        .reactors(2)
        .blocked_threshold(Duration::from_millis(50))
        .probes(Thresholds::new().stuck_after(Duration::from_millis(300)))
        .build()
        .unwrap();
    let counters = Arc::new(Counters::default());
    rt.deploy(
        Probe::with(counters.clone()),
        DeployOptions::new().reactor(0),
    )
    .await
    .unwrap();
    let (live, ready) = (rt.liveness(), rt.readiness());
    assert!(live.ok && ready.ok, "{live:?} {ready:?}");
    assert_eq!(ready.checks.len(), 5);

    rt.bus()
        .send("t.block", Block(Duration::from_millis(1000)))
        .unwrap();
    eventually(
        "readiness to see the blocked reactor",
        Duration::from_secs(5),
        || failing(&rt.readiness()) == ["reactors"],
    )
    .await;
    let ready = rt.readiness();
    assert!(
        detail(&ready, "reactors").contains("`Probe` instance 0")
            && detail(&ready, "reactors").contains("`t.block`"),
        "{ready:?}"
    );
    eventually("liveness to fail", Duration::from_secs(5), || {
        !rt.liveness().ok
    })
    .await;
    assert!(detail(&rt.liveness(), "reactors").contains("reactor 0 is stuck"));
    eventually("both to recover", Duration::from_secs(5), || {
        rt.liveness().ok && rt.readiness().ok
    })
    .await;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_full_mailbox_makes_the_service_not_ready_over_http() {
    let rt = Fluxor::builder().reactors(2).build().unwrap();
    let counters = Arc::new(Counters::default());
    rt.deploy(
        Probe::with(counters.clone()),
        DeployOptions::new().mailbox_capacity(4),
    )
    .await
    .unwrap();
    let (server, handle) = HttpServer::builder(Router::new())
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .health(true)
        .build();
    rt.deploy(server, DeployOptions::new()).await.unwrap();
    let base = format!("http://{}", handle.local_addr().unwrap());
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let r = client.get(format!("{base}{path}")).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    assert_eq!(get("/ready").await.0, 200);
    assert_eq!(get("/health").await.0, 200);

    // Hold the instance and fill its mailbox: 4 of 4 is over the 90% default.
    let nap = hold(&rt, &counters, 1, Duration::from_millis(300))
        .await
        .remove(0);
    for i in 0..4 {
        rt.bus().send("t.add", fluxor_tests::Add(i)).unwrap();
    }
    let (status, body) = get("/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ok"], false);
    let failing: Vec<&str> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failing, ["mailboxes"], "{body}");
    assert_eq!(get("/health").await.0, 200, "a busy service is alive");
    nap.await.unwrap().unwrap();
    eventually("the mailbox to drain", Duration::from_secs(5), || {
        rt.readiness().ok
    })
    .await;
    assert_eq!(get("/ready").await.0, 200);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn added_checks_report_failures_panics_and_hangs_without_holding_the_probe() {
    let rt = Fluxor::builder()
        .reactors(1)
        .probes(Thresholds::new().check_timeout(Duration::from_millis(100)))
        .build()
        .unwrap();
    rt.add_readiness_check("database", || async { Ok(()) });
    assert!(rt.ready().await.ok);
    rt.add_readiness_check("cache", || async { Err("connection refused".to_owned()) });
    rt.add_readiness_check("queue", || async {
        std::future::pending::<()>().await;
        Ok(())
    });
    rt.add_readiness_check("search", || async { panic!("index missing") });
    let ready = rt.ready().await;
    assert_eq!(failing(&ready), ["cache", "queue", "search"], "{ready:?}");
    assert_eq!(detail(&ready, "cache"), "connection refused");
    assert!(
        detail(&ready, "queue").starts_with("timed out"),
        "{ready:?}"
    );
    assert!(
        detail(&ready, "search").contains("index missing"),
        "{ready:?}"
    );
    // The built-in checks come first and still pass; a removed check is gone.
    assert!(ready.checks[..5].iter().all(|c| c.ok));
    assert!(rt.remove_readiness_check("cache"));
    assert!(!rt.remove_readiness_check("cache"));
    assert_eq!(failing(&rt.ready().await), ["queue", "search"]);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// A component with a readiness check of its own: `up` stands for its connection, `hang`
/// makes the check never answer.
#[fluxor::component]
#[derive(Default)]
struct Store {
    up: Arc<std::sync::atomic::AtomicBool>,
    hang: Arc<std::sync::atomic::AtomicBool>,
}

#[fluxor::component]
impl Store {
    #[on_start]
    fn open(&mut self, ctx: &mut fluxor::Context<Self>) {
        let (up, hang) = (self.up.clone(), self.hang.clone());
        ctx.add_readiness_check("database", move || {
            let (up, hang) = (up.load(SeqCst), hang.load(SeqCst));
            async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                if up {
                    Ok(())
                } else {
                    Err("no connection to the database".to_owned())
                }
            }
        });
    }
}

#[tokio::test]
async fn a_components_own_check_reports_until_its_deployment_is_undeployed() {
    let rt = Fluxor::builder()
        .reactors(1)
        .probes(Thresholds::new().check_timeout(Duration::from_millis(100)))
        .build()
        .unwrap();
    let store = Store::default();
    let (up, hang) = (store.up.clone(), store.hang.clone());
    let id = rt
        .deploy(
            move || Store {
                up: up.clone(),
                hang: hang.clone(),
            },
            DeployOptions::new().instances(2),
        )
        .await
        .unwrap();

    let ready = rt.ready().await;
    assert_eq!(failing(&ready), ["Store.database"], "{ready:?}");
    assert_eq!(
        detail(&ready, "Store.database"),
        "no connection to the database"
    );
    assert_eq!(
        ready
            .checks
            .iter()
            .filter(|c| c.name == "Store.database")
            .count(),
        1,
        "two instances, one check"
    );
    store.up.store(true, SeqCst);
    assert!(rt.ready().await.ok);
    store.hang.store(true, SeqCst);
    let ready = rt.ready().await;
    assert!(
        detail(&ready, "Store.database").contains("timed out"),
        "{ready:?}"
    );

    rt.undeploy(id).await.unwrap();
    let ready = rt.ready().await;
    assert!(ready.ok, "{ready:?}");
    assert!(ready.checks.iter().all(|c| c.name != "Store.database"));
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
