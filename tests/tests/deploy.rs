//! Deployments, undeployment, start rollback, shutdown draining, reactor isolation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fluxor::prelude::*;
use fluxor::{
    BusError, DeployError, DeployOptions, Fluxor, ShutdownIssue, StopError, UndeployError,
};
use fluxor_tests::{eventually, hold, Add, Block, Counters, Grow, Probe, Relay, Skynet, Whoami};

fn runtime(reactors: usize) -> Fluxor {
    Fluxor::builder()
        .reactors(reactors)
        .build()
        .expect("runtime builds")
}

#[tokio::test]
async fn deploy_returns_an_id_and_lists_the_deployment() {
    let rt = runtime(2);
    let id = rt
        .deploy(Probe::default, DeployOptions::new().instances(4))
        .await
        .unwrap();
    let list = rt.deployments();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, id);
    assert_eq!(list[0].component, "Probe");
    assert_eq!(list[0].instances.len(), 4);
    // Spread placement: both reactors are used.
    let reactors: std::collections::HashSet<_> =
        list[0].instances.iter().map(|i| i.reactor).collect();
    assert_eq!(reactors.len(), 2);
    // Each reactor counts the instances it runs.
    for stats in rt.reactor_stats() {
        let here = list[0]
            .instances
            .iter()
            .filter(|i| i.reactor == stats.index)
            .count();
        assert_eq!(stats.components, here, "reactor {}", stats.index);
    }
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn undeploy_removes_bindings_and_runs_stop() {
    let rt = runtime(2);
    let counters = Arc::new(Counters::default());
    let id = rt
        .deploy(
            Probe::with(counters.clone()),
            DeployOptions::new().instances(2),
        )
        .await
        .unwrap();
    assert_eq!(rt.bus().request("t.add", Add(1)).await.unwrap(), 1);
    rt.undeploy(id).await.unwrap();
    assert_eq!(counters.stops.load(Ordering::SeqCst), 2);
    assert_eq!(
        rt.bus().request("t.add", Add(1)).await.unwrap_err(),
        BusError::NoHandlers {
            topic: "t.add".into()
        }
    );
    assert_eq!(rt.bus().consumer_count("t.events.x"), 0);
    assert!(rt.deployments().is_empty());
    // Undeploying again, or an id that never existed, is an error, not a panic.
    assert!(matches!(rt.undeploy(id).await, Err(UndeployError::Unknown(x)) if x == id));
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_failing_start_rolls_back_the_started_instances() {
    let rt = runtime(2);
    let counters = Arc::new(Counters::default());
    let err = rt
        .deploy(
            Probe::with(counters.clone()),
            DeployOptions::new()
                .instances(3)
                .config(serde_json::json!({ "fail_start_on": 2 })),
        )
        .await
        .unwrap_err();
    match err {
        DeployError::StartFailed {
            component,
            instance,
            reason,
            rollback,
        } => {
            assert_eq!(component, "Probe");
            assert_eq!(instance, 2);
            assert!(reason.contains("refuses to start"), "{reason}");
            assert!(rollback.is_empty(), "{rollback:?}");
        }
        other => panic!("expected StartFailed, got {other:?}"),
    }
    // The two instances that started were stopped again, and nothing is registered.
    assert_eq!(counters.stops.load(Ordering::SeqCst), 2);
    assert_eq!(rt.bus().consumer_count("t.add"), 0);
    assert!(rt.deployments().is_empty());
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn bad_options_and_config_are_errors() {
    let rt = runtime(2);
    let e = rt
        .deploy(Probe::default, DeployOptions::new().instances(0))
        .await;
    assert!(matches!(e, Err(DeployError::InvalidOptions(_))), "{e:?}");
    let e = rt
        .deploy(Probe::default, DeployOptions::new().mailbox_capacity(0))
        .await;
    assert!(matches!(e, Err(DeployError::InvalidOptions(_))), "{e:?}");
    let e = rt
        .deploy(Probe::default, DeployOptions::new().reactor(2))
        .await;
    match e {
        Err(DeployError::InvalidOptions(m)) => assert!(m.contains("reactor 2"), "{m}"),
        other => panic!("{other:?}"),
    }
    let e = rt
        .deploy(
            Probe::default,
            DeployOptions::new().config(serde_json::json!({ "fail_stop": "yes please" })),
        )
        .await;
    assert!(
        matches!(
            e,
            Err(DeployError::Config {
                component: "Probe",
                ..
            })
        ),
        "{e:?}"
    );
    assert!(rt.deployments().is_empty());
    assert!(Fluxor::builder().reactors(0).build().is_err());
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_panicking_factory_fails_the_deploy() {
    let rt = runtime(1);
    let e = rt
        .deploy(
            || -> Probe { panic!("no probe today") },
            DeployOptions::new(),
        )
        .await;
    match e {
        Err(DeployError::StartFailed { reason, .. }) => {
            assert!(reason.contains("no probe today"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn shutdown_drains_queued_messages_then_stops() {
    let rt = runtime(2);
    let counters = Arc::new(Counters::default());
    rt.deploy(Probe::with(counters.clone()), DeployOptions::new())
        .await
        .unwrap();
    let nap = hold(&rt, &counters, 1, Duration::from_millis(100))
        .await
        .remove(0);
    for i in 0..50 {
        rt.bus().send("t.add", Add(i)).unwrap();
    }
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(nap.await.unwrap(), Ok(()));
    assert_eq!(
        counters.adds.load(Ordering::SeqCst),
        50,
        "every queued message was handled"
    );
    assert_eq!(counters.stops.load(Ordering::SeqCst), 1);
    // After shutdown: no new deployments, and a second shutdown is a no-op.
    assert!(matches!(
        rt.deploy(Probe::default, DeployOptions::new()).await,
        Err(DeployError::ShuttingDown)
    ));
    rt.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn shutdown_reports_every_stop_error_and_missed_deadline() {
    let rt = runtime(2);
    let counters = Arc::new(Counters::default());
    rt.deploy(
        Probe::with(counters.clone()),
        DeployOptions::new()
            .instances(2)
            .config(serde_json::json!({ "fail_stop": true })),
    )
    .await
    .unwrap();
    rt.deploy(|| Relay, DeployOptions::new()).await.unwrap();
    rt.deploy(Probe::with(counters.clone()), DeployOptions::new())
        .await
        .unwrap();
    // Three probe instances share the topics; round-robin gives each a long nap, and work
    // queued behind the naps cannot be handled before the deadline.
    let naps = hold(&rt, &counters, 3, Duration::from_secs(3)).await;
    for _ in 0..3 {
        rt.bus().send("t.add", Add(1)).unwrap();
    }
    let started = Instant::now();
    let err = rt.shutdown(Duration::from_millis(200)).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown keeps its deadline"
    );
    let stops = err
        .errors
        .iter()
        .filter(|e| {
            matches!(
                e,
                ShutdownIssue::Stop {
                    error: StopError::Failed { .. },
                    ..
                }
            )
        })
        .count();
    let missed = err
        .errors
        .iter()
        .filter(|e| {
            matches!(
                e,
                ShutdownIssue::Stop {
                    error: StopError::DeadlineExceeded { .. },
                    ..
                }
            )
        })
        .count();
    assert!(missed >= 1, "{err}");
    assert!(stops + missed >= 3, "{err}");
    for n in naps {
        assert!(
            n.await.unwrap().is_err(),
            "the interrupted requesters are told"
        );
    }
}

#[tokio::test]
async fn a_blocked_reactor_does_not_stop_the_others() {
    let rt = runtime(2);
    let counters = Arc::new(Counters::default());
    rt.deploy(
        Probe::with(counters.clone()),
        DeployOptions::new().reactor(0),
    )
    .await
    .unwrap();
    rt.deploy(|| Relay, DeployOptions::new().reactor(1))
        .await
        .unwrap();
    let bus = rt.bus().clone();
    let blocker = tokio::spawn(async move {
        bus.request("t.block", Block(Duration::from_millis(500)))
            .await
    });
    eventually("reactor 0 to block", Duration::from_secs(5), || {
        counters.blocks.load(Ordering::SeqCst) == 1
    })
    .await;
    // Reactor 1 answers while reactor 0's thread sleeps.
    let ids = rt
        .bus()
        .request_with(
            "relay.trace",
            fluxor_tests::Trace { forward_to: None },
            fluxor::RequestOptions::new().timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
    assert!(!blocker.is_finished(), "the blocker is still blocking");
    blocker.await.unwrap().unwrap();
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn components_on_one_reactor_interleave_while_one_awaits() {
    let rt = runtime(1);
    let counters = Arc::new(Counters::default());
    rt.deploy(Probe::with(counters.clone()), DeployOptions::new())
        .await
        .unwrap();
    rt.deploy(|| Relay, DeployOptions::new()).await.unwrap();
    let nap = hold(&rt, &counters, 1, Duration::from_millis(400))
        .await
        .remove(0);
    // Same reactor, other component: served while the probe's handler awaits.
    rt.bus()
        .request_with(
            "relay.trace",
            fluxor_tests::Trace { forward_to: None },
            fluxor::RequestOptions::new().timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    assert!(!nap.is_finished());
    nap.await.unwrap().unwrap();
    // And the probe itself handles one message at a time.
    assert_eq!(rt.bus().request("t.whoami", Whoami).await.unwrap(), 0);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn many_deployments_coexist_and_undeploy_independently() {
    let rt = runtime(2);
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(
            rt.deploy(Probe::default, DeployOptions::new())
                .await
                .unwrap(),
        );
    }
    assert_eq!(rt.bus().consumer_count("t.add"), 20);
    for id in ids.drain(..10) {
        rt.undeploy(id).await.unwrap();
    }
    assert_eq!(rt.bus().consumer_count("t.add"), 10);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    assert!(rt.deployments().is_empty());
}

#[tokio::test]
async fn handlers_deploy_and_undeploy_a_tree_of_components() {
    let rt = runtime(2);
    let root = rt
        .deploy(Skynet::default, DeployOptions::new())
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    rt.actor_ref::<Skynet>(root, 0)
        .unwrap()
        .send(Grow {
            num: 0,
            size: 1000,
            parent: None,
            report: Some(tx),
            placement: fluxor_tests::TreePlacement::Subtrees,
        })
        .unwrap();
    let total = tokio::time::timeout(Duration::from_secs(30), rx)
        .await
        .expect("the tree reports in time")
        .unwrap();
    assert_eq!(total, (0..1000).sum::<u64>());
    // 1 + 10 + 100 nodes deployed 111 deployments; every parent undeployed its children.
    // Children are undeployed after their parents report.
    eventually(
        "the children to be undeployed",
        Duration::from_secs(10),
        || rt.deployments().len() <= 1,
    )
    .await;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_handler_cannot_wait_for_its_own_undeploy() {
    use fluxor::prelude::*;

    #[derive(Debug)]
    struct Quit;
    impl Message for Quit {
        type Reply = String;
    }

    #[component]
    #[derive(Default)]
    struct Quitter;

    #[component]
    impl Quitter {
        #[handler("t.quit")]
        async fn quit(&mut self, _q: Quit, ctx: &mut Context<Self>) -> String {
            let own = ctx.deployment_id();
            match ctx.undeploy(own).await {
                Err(e @ UndeployError::OwnDeployment(_)) => e.to_string(),
                other => format!("unexpected: {other:?}"),
            }
        }
    }

    let rt = runtime(1);
    rt.deploy(Quitter::default, DeployOptions::new())
        .await
        .unwrap();
    let answer = rt.bus().request("t.quit", Quit).await.unwrap();
    assert!(
        answer.contains("cannot wait for its own deployment"),
        "{answer}"
    );
    assert_eq!(rt.deployments().len(), 1, "nothing was undeployed");
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_component_stops_itself_after_its_queue_drains() {
    use fluxor::prelude::*;
    use std::sync::atomic::Ordering::SeqCst;

    #[derive(Debug)]
    struct Work;
    impl Message for Work {
        type Reply = ();
    }
    #[derive(Debug)]
    struct Bye;
    impl Message for Bye {
        type Reply = ();
    }

    /// Counts its work and its stops; `Bye` ends it.
    #[component]
    struct Session {
        done: Arc<AtomicU64>,
        stops: Arc<AtomicU64>,
    }

    #[component]
    impl Session {
        #[handler("t.session.work")]
        async fn work(&mut self, _: Work) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.done.fetch_add(1, SeqCst);
        }

        #[handler("t.session.bye")]
        fn bye(&mut self, _: Bye, ctx: &mut Context<Self>) {
            // Queued before the stop: handled before the instance stops.
            for _ in 0..3 {
                ctx.send("t.session.work", Work).unwrap();
            }
            ctx.stop();
            ctx.stop(); // a second call changes nothing
        }

        #[on_stop]
        fn end(&mut self, _ctx: &mut Context<Self>) {
            self.stops.fetch_add(1, SeqCst);
        }
    }

    let rt = runtime(1);
    let (done, stops) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (d, s) = (done.clone(), stops.clone());
    rt.deploy(
        move || Session {
            done: d.clone(),
            stops: s.clone(),
        },
        DeployOptions::new(),
    )
    .await
    .unwrap();
    rt.bus().send("t.session.bye", Bye).unwrap();
    // Undeployed at once (out of the table, off the bus), stopped once its queue is drained.
    eventually("the session to stop", Duration::from_secs(5), || {
        stops.load(SeqCst) == 1
    })
    .await;
    assert!(rt.deployments().is_empty());
    assert_eq!(
        done.load(SeqCst),
        3,
        "what was queued before the stop is handled"
    );
    assert_eq!(stops.load(SeqCst), 1, "on_stop ran once");
    assert!(matches!(
        rt.bus().send("t.session.work", Work).unwrap_err().error,
        fluxor::BusError::NoHandlers { .. }
    ));
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// A counter, and a factory of components that share it.
fn with_counter<C: 'static>(
    make: fn(Arc<AtomicU64>) -> C,
) -> (Arc<AtomicU64>, impl Fn() -> C + Send + Sync + 'static) {
    let counter = Arc::new(AtomicU64::new(0));
    let shared = counter.clone();
    (counter, move || make(shared.clone()))
}

/// Takes its time to start; counts its stops.
#[component]
struct SlowStart {
    stops: Arc<AtomicU64>,
}

#[component]
impl SlowStart {
    #[on_start]
    async fn begin(&mut self, _ctx: &mut Context<Self>) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    #[on_stop]
    fn end(&mut self, _ctx: &mut Context<Self>) {
        self.stops.fetch_add(1, Ordering::SeqCst);
    }

    #[handler]
    fn add(&mut self, Add(n): Add) -> u64 {
        n
    }
}

#[tokio::test]
async fn a_cancelled_deploy_stops_its_instances() {
    let rt = runtime(2);
    let (stops, factory) = with_counter(|stops| SlowStart { stops });
    let deploy = rt.deploy(factory, DeployOptions::new().instances(3));
    assert!(
        tokio::time::timeout(Duration::from_millis(50), deploy)
            .await
            .is_err(),
        "the start takes longer than the caller waits"
    );
    assert!(rt.deployments().is_empty(), "nothing was registered");
    // Each instance finishes its start, finds its deployment gone and stops.
    eventually(
        "the three instances to stop",
        Duration::from_secs(5),
        || stops.load(Ordering::SeqCst) >= 3,
    )
    .await;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(stops.load(Ordering::SeqCst), 3, "each stopped once");
}

/// One step of a self-sustaining stream of plain-handler messages.
#[derive(Debug)]
struct Flood(u64);
impl Message for Flood {
    type Reply = ();
}

/// Sends itself the next `Flood` from a plain handler, so its mailbox is never empty
/// until the count runs out.
#[component]
struct Flooder {
    handled: Arc<AtomicU64>,
}

#[component]
impl Flooder {
    #[handler]
    fn flood(&mut self, Flood(left): Flood, ctx: &mut Context<Self>) {
        self.handled.fetch_add(1, Ordering::SeqCst);
        if left > 0 {
            let _ = ctx.myself().send(Flood(left - 1));
        }
    }
}

#[tokio::test]
async fn a_component_flooding_itself_leaves_its_reactor_to_the_others() {
    let rt = runtime(1);
    let (handled, flood) = with_counter(|handled| Flooder { handled });
    let flooder = rt.deploy(flood, DeployOptions::new()).await.unwrap();
    rt.deploy(Probe::default, DeployOptions::new())
        .await
        .unwrap();
    const STEPS: u64 = 5_000_000;
    rt.actor_ref::<Flooder>(flooder, 0)
        .unwrap()
        .send(Flood(STEPS))
        .unwrap();
    // The probe shares the reactor; plain handlers run in place, yet the reactor is handed
    // to the probe every few dozen messages.
    eventually("the flood to start", Duration::from_secs(5), || {
        handled.load(Ordering::SeqCst) > 0
    })
    .await;
    assert_eq!(rt.bus().request("t.add", Add(2)).await.unwrap(), 2);
    let at_reply = handled.load(Ordering::SeqCst);
    assert!(
        at_reply < STEPS,
        "the probe waited for the whole flood ({at_reply} handled)"
    );
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_handler_cut_at_the_deadline_is_counted_and_an_idle_pool_is_not_blamed() {
    let rt = runtime(2);
    let counters = Arc::new(Counters::default());
    rt.deploy(
        Probe::with(counters.clone()),
        DeployOptions::new().reactor(0),
    )
    .await
    .unwrap();
    // The only instance blocks its reactor's thread past the deadline, with two messages
    // queued behind; the worker pool never runs a task.
    rt.bus()
        .send("t.block", Block(Duration::from_millis(1500)))
        .unwrap();
    eventually("the block to start", Duration::from_secs(5), || {
        counters.blocks.load(Ordering::SeqCst) == 1
    })
    .await;
    rt.bus().send("t.add", Add(1)).unwrap();
    rt.bus().send("t.add", Add(1)).unwrap();
    let err = rt.shutdown(Duration::from_millis(100)).await.unwrap_err();
    let cut: Vec<(usize, usize)> = err
        .errors
        .iter()
        .filter_map(|e| match e {
            ShutdownIssue::Stop {
                error:
                    StopError::DeadlineExceeded {
                        undelivered,
                        interrupted,
                        ..
                    },
                ..
            } => Some((*undelivered, *interrupted)),
            _ => None,
        })
        .collect();
    assert_eq!(cut, vec![(2, 1)], "two unhandled, one cut: {err}");
    assert!(
        !err.errors
            .iter()
            .any(|e| matches!(e, ShutdownIssue::WorkersBusy(_))),
        "the pool ran nothing: {err}"
    );
    // The stuck reactor is named with what holds it.
    let stuck: Vec<&String> = err
        .errors
        .iter()
        .filter_map(|e| match e {
            ShutdownIssue::ReactorStuck {
                reactor: 0,
                running: Some(running),
            } => Some(running),
            _ => None,
        })
        .collect();
    assert!(
        matches!(stuck.as_slice(), [r] if r.contains("`Probe` instance 0") && r.contains("`t.block`")),
        "{err}"
    );
    assert_eq!(counters.adds.load(Ordering::SeqCst), 0);
}

/// Never finishes its start.
#[component]
struct NeverStarts {
    stops: Arc<AtomicU64>,
}

#[component]
impl NeverStarts {
    #[on_start]
    async fn begin(&mut self, _ctx: &mut Context<Self>) {
        std::future::pending::<()>().await;
    }

    #[on_stop]
    fn end(&mut self, _ctx: &mut Context<Self>) {
        self.stops.fetch_add(1, Ordering::SeqCst);
    }

    #[handler]
    fn add(&mut self, Add(n): Add) -> u64 {
        n
    }
}

#[tokio::test]
async fn a_start_timeout_bounds_the_deploy() {
    // The runtime's shutdown timeout (10 s) is not what a timed-out start waits for.
    let rt = runtime(2);
    let (stops, factory) = with_counter(|stops| NeverStarts { stops });
    let started = Instant::now();
    let err = rt
        .deploy(
            factory,
            DeployOptions::new()
                .instances(2)
                .start_timeout(Duration::from_millis(100)),
        )
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the deploy returned after {:?}",
        started.elapsed()
    );
    match err {
        DeployError::StartFailed {
            reason, rollback, ..
        } => {
            assert!(reason.contains("did not finish within"), "{reason}");
            assert!(rollback.is_empty(), "{rollback:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        stops.load(Ordering::SeqCst),
        2,
        "each cut start is followed by its stop"
    );
    assert!(rt.deployments().is_empty());
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
