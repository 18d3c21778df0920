//! Ordered boot: dependency order up, reverse order down, cycles and failures refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fluxor::prelude::*;
use fluxor::BootError;

#[derive(Message)]
struct Ping;

/// Logs its start and stop; fails its start when told to.
#[component]
struct Named {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
    fail: bool,
}

#[component]
impl Named {
    #[on_start]
    async fn begin(&mut self, _ctx: &mut Context<Self>) -> Result<(), String> {
        // Long enough that a dependent started too early would be seen starting first.
        tokio::time::sleep(Duration::from_millis(20)).await;
        if self.fail {
            return Err(format!("{} cannot start", self.name));
        }
        self.log
            .lock()
            .unwrap()
            .push(format!("start {}", self.name));
        Ok(())
    }

    #[on_stop]
    fn end(&mut self, _ctx: &mut Context<Self>) {
        self.log.lock().unwrap().push(format!("stop {}", self.name));
    }

    #[handler]
    fn ping(&mut self, _: Ping) {}
}

fn named(
    name: &'static str,
    log: &Arc<Mutex<Vec<String>>>,
    fail: bool,
) -> impl Fn() -> Named + Send + Sync + 'static {
    let log = log.clone();
    move || Named {
        name,
        log: log.clone(),
        fail,
    }
}

fn position(log: &[String], entry: &str) -> usize {
    log.iter()
        .position(|e| e == entry)
        .unwrap_or_else(|| panic!("{entry} missing from {log:?}"))
}

#[tokio::test]
async fn deployments_start_after_what_they_need_and_stop_before_it() {
    let rt = Fluxor::builder().reactors(2).build().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let booted = rt
        .boot()
        .deploy("web", named("web", &log, false), DeployOptions::new())
        .after(["api"])
        .deploy(
            "api",
            named("api", &log, false),
            DeployOptions::new().instances(2),
        )
        .after(["db", "cache"])
        .deploy("db", named("db", &log, false), DeployOptions::new())
        .deploy("cache", named("cache", &log, false), DeployOptions::new())
        .start()
        .await
        .unwrap();
    assert_eq!(booted.len(), 4);
    assert_eq!(rt.deployments().len(), 4);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let log = log.lock().unwrap().clone();
    for (before, after) in [
        ("start db", "start api"),
        ("start cache", "start api"),
        ("start api", "start web"),
        ("stop web", "stop api"),
        ("stop api", "stop db"),
        ("stop api", "stop cache"),
    ] {
        assert!(
            position(&log, before) < position(&log, after),
            "{before} before {after}: {log:?}"
        );
    }
}

#[tokio::test]
async fn a_cycle_or_an_unknown_need_is_refused_before_anything_starts() {
    let rt = Fluxor::builder().reactors(1).build().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let err = rt
        .boot()
        .deploy("free", named("free", &log, false), DeployOptions::new())
        .deploy("a", named("a", &log, false), DeployOptions::new())
        .after(["b"])
        .deploy("b", named("b", &log, false), DeployOptions::new())
        .after(["a"])
        .start()
        .await
        .unwrap_err();
    match &err {
        BootError::Cycle { cycle } => {
            assert_eq!(cycle.len(), 3, "{err}");
            assert_eq!(cycle.first(), cycle.last(), "{err}");
            assert!(cycle.contains(&"a".to_owned()) && cycle.contains(&"b".to_owned()));
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("nothing was started"), "{err}");
    let err = rt
        .boot()
        .deploy("api", named("api", &log, false), DeployOptions::new())
        .after(["db"])
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BootError::UnknownNeed { name, needs } if name == "api" && needs == "db"),
        "{err}"
    );
    let err = rt
        .boot()
        .deploy("x", named("x", &log, false), DeployOptions::new())
        .deploy("x", named("x", &log, false), DeployOptions::new())
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, BootError::DuplicateName { .. }), "{err}");
    assert!(rt.deployments().is_empty());
    assert!(log.lock().unwrap().is_empty(), "nothing started");
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_failed_need_keeps_its_dependents_from_starting() {
    let rt = Fluxor::builder().reactors(2).build().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let err = rt
        .boot()
        .deploy("db", named("db", &log, true), DeployOptions::new())
        .deploy("cache", named("cache", &log, false), DeployOptions::new())
        .deploy("api", named("api", &log, false), DeployOptions::new())
        .after(["db"])
        .deploy("web", named("web", &log, false), DeployOptions::new())
        .after(["api"])
        .start()
        .await
        .unwrap_err();
    match &err {
        BootError::Failed {
            name,
            started,
            skipped,
            ..
        } => {
            assert_eq!(name, "db");
            assert_eq!(started.keys().collect::<Vec<_>>(), ["cache"]);
            assert_eq!(skipped, &["api", "web"]);
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("db cannot start"), "{err}");
    assert_eq!(rt.deployments().len(), 1, "what started stays deployed");
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let log = log.lock().unwrap().clone();
    assert!(
        !log.iter().any(|e| e.contains("api") || e.contains("web")),
        "{log:?}"
    );
}

/// Three components that declare their order: Ledger, then Inventory, then Shop.
#[component]
struct Ledger {
    log: Arc<Mutex<Vec<String>>>,
}

#[component]
impl Ledger {
    #[on_start]
    async fn begin(&mut self, _ctx: &mut Context<Self>) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.log.lock().unwrap().push("start Ledger".into());
    }

    #[handler]
    fn ping(&mut self, _: Ping) {}
}

#[component(after = [Ledger])]
struct Inventory {
    log: Arc<Mutex<Vec<String>>>,
}

#[component]
impl Inventory {
    #[on_start]
    async fn begin(&mut self, _ctx: &mut Context<Self>) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.log.lock().unwrap().push("start Inventory".into());
    }

    #[handler]
    fn ping(&mut self, _: Ping) {}
}

#[component(after = [Inventory, Ledger], name = "Shop")]
struct Storefront {
    log: Arc<Mutex<Vec<String>>>,
}

#[component]
impl Storefront {
    #[on_start]
    fn begin(&mut self, _ctx: &mut Context<Self>) {
        self.log.lock().unwrap().push("start Shop".into());
    }

    #[handler]
    fn ping(&mut self, _: Ping) {}
}

#[tokio::test]
async fn components_declare_what_they_start_after() {
    let rt = Fluxor::builder().reactors(2).build().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    // Added in the wrong order, with no `after`: the declarations order them.
    let booted = rt
        .boot()
        .deploy(
            "shop",
            move || Storefront { log: l3.clone() },
            DeployOptions::new(),
        )
        .deploy(
            "inventory",
            move || Inventory { log: l2.clone() },
            DeployOptions::new(),
        )
        .deploy(
            "ledger",
            move || Ledger { log: l1.clone() },
            DeployOptions::new(),
        )
        .start()
        .await
        .expect("the plan starts");
    assert_eq!(booted.len(), 3);
    assert_eq!(
        *log.lock().unwrap(),
        ["start Ledger", "start Inventory", "start Shop"]
    );
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_declared_need_missing_from_the_plan_is_refused_before_anything_starts() {
    let rt = Fluxor::builder().reactors(1).build().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let err = rt
        .boot()
        .deploy(
            "inventory",
            move || Inventory { log: l.clone() },
            DeployOptions::new(),
        )
        .start()
        .await
        .expect_err("Ledger is not in the plan");
    match err {
        BootError::UnknownNeed { name, needs } => {
            assert_eq!(name, "inventory");
            assert!(needs.contains("Ledger"), "{needs}");
        }
        other => panic!("expected UnknownNeed, got {other:?}"),
    }
    assert!(log.lock().unwrap().is_empty());
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
