//! Supervision: panic isolation, restart with backoff, intensity and escalation, resume, stop,
//! all-for-one, lifecycle events, and a panic storm.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fluxor::inspect::DeploymentState;
use fluxor::prelude::*;
use fluxor::{
    Backoff, Escalation, InstanceState, LifecycleEvent, LifecycleKind, StopError, Supervision,
    UndeployError,
};
use fluxor_tests::{Probe, Whoami};
use tokio::time::Instant;

#[derive(Message, Debug)]
#[message(reply = u64)]
struct Bump;

#[derive(Message, Debug, Clone, Copy)]
#[message(reply = u64)]
enum Crash {
    Sync,
    AfterAwait,
}

#[derive(Message, Debug)]
struct Seq(u64);

/// What the test reads across restarts (the factory hands every instance the same record).
#[derive(Debug, Default)]
struct Record {
    starts: Mutex<Vec<Instant>>,
    crashes: Mutex<Vec<Instant>>,
    seqs: Mutex<Vec<u64>>,
    created: AtomicU64,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct FragileConfig {
    /// Every start after the first fails.
    fail_restart: bool,
    /// `stop` panics.
    panic_in_stop: bool,
}

#[component(config = FragileConfig)]
struct Fragile {
    count: u64,
    record: Arc<Record>,
}

impl Fragile {
    fn factory(record: Arc<Record>) -> impl Fn() -> Fragile + Send + Sync + 'static {
        move || {
            record.created.fetch_add(1, Ordering::SeqCst);
            Fragile {
                count: 0,
                record: record.clone(),
            }
        }
    }
}

#[component]
impl Fragile {
    #[on_start]
    fn begin(&mut self, ctx: &mut Context<Self>) -> Result<(), String> {
        let mut starts = self.record.starts.lock().unwrap();
        starts.push(Instant::now());
        if ctx.config().fail_restart && starts.len() > 1 {
            return Err("cannot start again".into());
        }
        Ok(())
    }

    #[on_stop]
    fn end(&mut self, ctx: &mut Context<Self>) {
        assert!(!ctx.config().panic_in_stop, "stop went wrong");
    }

    #[handler("fragile.bump")]
    fn bump(&mut self, _: Bump) -> u64 {
        self.count += 1;
        self.count
    }

    #[handler("fragile.crash")]
    async fn crash(&mut self, how: Crash) -> u64 {
        self.record.crashes.lock().unwrap().push(Instant::now());
        if let Crash::AfterAwait = how {
            tokio::task::yield_now().await;
            panic!("crashed after an await");
        }
        panic!("crashed at once");
    }

    #[handler("fragile.seq")]
    fn seq(&mut self, Seq(n): Seq) {
        self.record.seqs.lock().unwrap().push(n);
    }
}

/// Records every lifecycle event.
#[component]
struct Recorder {
    events: Arc<Mutex<Vec<LifecycleEvent>>>,
}

#[component]
impl Recorder {
    #[handler("fluxor.lifecycle.>")]
    fn on_event(&mut self, e: LifecycleEvent) {
        self.events.lock().unwrap().push(e);
    }
}

struct Setup {
    rt: Fluxor,
    record: Arc<Record>,
    events: Arc<Mutex<Vec<LifecycleEvent>>>,
    id: DeploymentId,
}

async fn setup(rt: Fluxor, options: DeployOptions) -> Setup {
    let events = Arc::new(Mutex::new(Vec::new()));
    let recorder = {
        let events = events.clone();
        move || Recorder {
            events: events.clone(),
        }
    };
    rt.deploy(recorder, DeployOptions::new().mailbox_capacity(100_000))
        .await
        .unwrap();
    let record = Arc::new(Record::default());
    let id = rt
        .deploy(Fragile::factory(record.clone()), options)
        .await
        .unwrap();
    Setup {
        rt,
        record,
        events,
        id,
    }
}

fn paused() -> Fluxor {
    Fluxor::builder()
        .reactors(1)
        .start_paused(true)
        .build()
        .unwrap()
}

impl Setup {
    fn count(&self, kind: LifecycleKind) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.kind == kind)
            .count()
    }

    async fn wait_for(&self, kind: LifecycleKind, n: usize) {
        for _ in 0..2000 {
            if self.count(kind) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!(
            "expected {n} `{kind}` events, saw {:?}",
            self.events.lock().unwrap()
        );
    }

    async fn crash(&self, how: Crash) -> BusError {
        self.rt
            .bus()
            .request(Fragile::CRASH, how)
            .await
            .unwrap_err()
    }
}

#[tokio::test]
async fn panics_reach_the_requester_and_the_default_policy_restarts() {
    let s = setup(paused(), DeployOptions::new()).await;
    s.rt.deploy(Probe::default, DeployOptions::new())
        .await
        .unwrap();
    s.wait_for(LifecycleKind::Started, 2).await;
    assert_eq!(s.rt.bus().request(Fragile::BUMP, Bump).await, Ok(1));
    assert_eq!(s.rt.bus().request(Fragile::BUMP, Bump).await, Ok(2));

    for (how, text) in [
        (Crash::Sync, "crashed at once"),
        (Crash::AfterAwait, "crashed after an await"),
    ] {
        match s.crash(how).await {
            BusError::RecipientFailed { topic, reason } => {
                assert_eq!(topic, "fragile.crash");
                assert!(reason.contains(text), "{reason}");
            }
            other => panic!("expected RecipientFailed, got {other:?}"),
        }
        // Another component on the same (only) reactor keeps serving.
        assert_eq!(s.rt.bus().request("t.whoami", Whoami).await, Ok(0));
    }
    s.wait_for(LifecycleKind::Restarted, 2).await;
    // A fresh instance: the state starts over.
    assert_eq!(s.rt.bus().request(Fragile::BUMP, Bump).await, Ok(1));
    assert_eq!(s.record.created.load(Ordering::SeqCst), 3);

    let crashed: Vec<_> = s
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.kind == LifecycleKind::Crashed)
        .cloned()
        .collect();
    assert_eq!(crashed.len(), 2);
    assert_eq!(crashed[0].deployment, s.id);
    assert_eq!(crashed[0].component, "Fragile");
    assert!(crashed[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("crashed at once"));
    let info =
        s.rt.deployments()
            .into_iter()
            .find(|d| d.id == s.id)
            .unwrap();
    assert_eq!((info.state, info.restarts), (DeploymentState::Running, 2));
    assert_eq!(info.instances[0].state, InstanceState::Running);
    assert_eq!(info.instances[0].restarts, 2);
    s.rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_restart_keeps_the_queued_messages_in_order() {
    let s = setup(paused(), DeployOptions::new()).await;
    s.rt.bus().send(Fragile::CRASH, Crash::Sync).unwrap();
    for n in 1..=200 {
        s.rt.bus().send(Fragile::SEQ, Seq(n)).unwrap();
    }
    s.wait_for(LifecycleKind::Restarted, 1).await;
    // A request behind them: once it is answered, all 200 were handled.
    assert_eq!(s.rt.bus().request(Fragile::BUMP, Bump).await, Ok(1));
    assert_eq!(
        *s.record.seqs.lock().unwrap(),
        (1..=200).collect::<Vec<_>>()
    );
    s.rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn restart_delays_follow_the_backoff_curve() {
    let policy = Supervision::restart()
        .max_restarts(10)
        .within(Duration::from_secs(3600))
        .backoff(Backoff::exponential(
            Duration::from_millis(100),
            Duration::from_secs(1),
        ));
    let s = setup(paused(), DeployOptions::new().supervision(policy)).await;
    for i in 1..=6 {
        s.crash(Crash::Sync).await;
        s.wait_for(LifecycleKind::Restarted, i).await;
    }
    let starts = s.record.starts.lock().unwrap().clone();
    let crashes = s.record.crashes.lock().unwrap().clone();
    let delays: Vec<u128> = crashes
        .iter()
        .zip(&starts[1..])
        .map(|(crash, start)| (*start - *crash).as_millis())
        .collect();
    assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
    s.rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn exceeding_the_intensity_fails_the_deployment_and_logs_by_default() {
    let policy = Supervision::restart()
        .max_restarts(2)
        .within(Duration::from_secs(60))
        .backoff(Backoff::none());
    let s = setup(paused(), DeployOptions::new().supervision(policy)).await;
    s.rt.deploy(Probe::default, DeployOptions::new())
        .await
        .unwrap();
    for _ in 0..3 {
        s.crash(Crash::Sync).await;
    }
    s.wait_for(LifecycleKind::Failed, 1).await;
    s.wait_for(LifecycleKind::Stopped, 1).await;
    let info =
        s.rt.deployments()
            .into_iter()
            .find(|d| d.id == s.id)
            .unwrap();
    assert_eq!(info.state, DeploymentState::Failed);
    assert_eq!(info.instances[0].state, InstanceState::Failed);
    assert_eq!(
        s.rt.bus().request(Fragile::BUMP, Bump).await,
        Err(BusError::NoHandlers {
            topic: "fragile.bump".into()
        })
    );
    // The escalation policy `Log` keeps the rest of the runtime serving.
    assert_eq!(s.rt.bus().request("t.whoami", Whoami).await, Ok(0));
    // The failed deployment can still be undeployed, without errors.
    s.rt.undeploy(s.id).await.unwrap();
    s.rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn the_shutdown_escalation_ends_run() {
    let rt = Fluxor::builder()
        .reactors(1)
        .start_paused(true)
        .escalation(Escalation::Shutdown)
        .build()
        .unwrap();
    let policy = Supervision::restart()
        .max_restarts(1)
        .backoff(Backoff::none());
    let s = setup(rt, DeployOptions::new().supervision(policy)).await;
    let running = tokio::spawn({
        let rt = s.rt.clone();
        async move { rt.run().await }
    });
    s.crash(Crash::Sync).await;
    s.crash(Crash::Sync).await;
    let reason = tokio::time::timeout(Duration::from_secs(5), s.rt.escalated())
        .await
        .expect("escalation fires");
    assert!(
        reason.contains("Fragile") && reason.contains("crashed at once"),
        "{reason}"
    );
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("run returns")
        .unwrap()
        .expect("a clean shutdown");
    assert!(s.rt.bus().is_closed());
}

#[tokio::test]
async fn resume_keeps_the_state() {
    let s = setup(
        paused(),
        DeployOptions::new().supervision(Supervision::resume()),
    )
    .await;
    assert_eq!(s.rt.bus().request(Fragile::BUMP, Bump).await, Ok(1));
    s.crash(Crash::AfterAwait).await;
    assert_eq!(s.rt.bus().request(Fragile::BUMP, Bump).await, Ok(2));
    assert_eq!(s.record.created.load(Ordering::SeqCst), 1);
    assert_eq!(s.count(LifecycleKind::Restarted), 0);
    s.rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn stop_removes_only_the_crashed_instance() {
    let s = setup(
        paused(),
        DeployOptions::new()
            .instances(2)
            .supervision(Supervision::stop()),
    )
    .await;
    assert_eq!(s.rt.bus().consumer_count("fragile.bump"), 2);
    s.crash(Crash::Sync).await;
    s.wait_for(LifecycleKind::Stopped, 1).await;
    assert_eq!(s.rt.bus().consumer_count("fragile.bump"), 1);
    let info =
        s.rt.deployments()
            .into_iter()
            .find(|d| d.id == s.id)
            .unwrap();
    let states: Vec<_> = info.instances.iter().map(|i| i.state).collect();
    assert!(
        states.contains(&InstanceState::Stopped) && states.contains(&InstanceState::Running),
        "{states:?}"
    );
    // The survivor answers every request.
    for n in 1..=4 {
        assert_eq!(s.rt.bus().request(Fragile::BUMP, Bump).await, Ok(n));
    }
    s.rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn all_for_one_restarts_every_instance() {
    let policy = Supervision::restart()
        .all_for_one()
        .backoff(Backoff::none());
    let s = setup(
        paused(),
        DeployOptions::new().instances(3).supervision(policy),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(s.rt.bus().request(Fragile::BUMP, Bump).await, Ok(1));
    }
    s.crash(Crash::Sync).await;
    s.wait_for(LifecycleKind::Restarted, 3).await;
    assert_eq!(s.record.created.load(Ordering::SeqCst), 6);
    // Every instance is fresh.
    for _ in 0..3 {
        assert_eq!(s.rt.bus().request(Fragile::BUMP, Bump).await, Ok(1));
    }
    s.rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_failing_restart_counts_as_a_crash() {
    let policy = Supervision::restart()
        .max_restarts(3)
        .backoff(Backoff::none());
    let s = setup(
        paused(),
        DeployOptions::new()
            .supervision(policy)
            .config(serde_json::json!({ "fail_restart": true })),
    )
    .await;
    s.crash(Crash::Sync).await;
    s.wait_for(LifecycleKind::Failed, 1).await;
    // One crash in the handler, then every restart's `start` failed until the intensity ran out.
    assert_eq!(s.count(LifecycleKind::Crashed), 4);
    assert_eq!(s.count(LifecycleKind::Restarted), 0);
    let failed = s
        .events
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.kind == LifecycleKind::Failed)
        .cloned()
        .unwrap();
    assert!(failed.reason.unwrap().contains("cannot start again"));
    s.rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_panic_in_stop_is_reported_by_undeploy() {
    let s = setup(
        paused(),
        DeployOptions::new().config(serde_json::json!({ "panic_in_stop": true })),
    )
    .await;
    match s.rt.undeploy(s.id).await {
        Err(UndeployError::Stop { errors, .. }) => match &errors[..] {
            [StopError::Failed { reason, .. }] => {
                assert!(reason.contains("stop went wrong"), "{reason}");
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    s.rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn the_reserved_prefix_is_for_the_runtime_only() {
    let s = setup(paused(), DeployOptions::new()).await;
    s.wait_for(LifecycleKind::Started, 2).await;
    let event = s.events.lock().unwrap()[0].clone();
    let err =
        s.rt.bus()
            .publish("fluxor.lifecycle.started", event.clone())
            .unwrap_err();
    assert!(
        matches!(err.failures[0], BusError::InvalidTopic { .. }),
        "{err}"
    );
    // Nor can they be sent or requested there (an error means nothing was delivered), to a
    // subscriber (the recorder binds `fluxor.lifecycle.>`) or to a topic nobody binds.
    for topic in ["fluxor.lifecycle.crashed", "fluxor.nobody.here"] {
        let sent = s.rt.bus().send(topic, event.clone()).unwrap_err();
        assert!(
            matches!(sent.error, BusError::InvalidTopic { .. }),
            "{topic}: {sent}"
        );
        let asked = s.rt.bus().request(topic, event.clone()).await.unwrap_err();
        assert!(
            matches!(asked, BusError::InvalidTopic { .. }),
            "{topic}: {asked}"
        );
        let waited =
            s.rt.bus()
                .send_timeout(topic, event.clone(), Duration::from_millis(10))
                .await
                .unwrap_err();
        assert!(
            matches!(waited.error, BusError::InvalidTopic { .. }),
            "{topic}: {waited}"
        );
    }
    s.rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

type PanicHook = dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync;

/// While alive, keeps the expected panics of one runtime off stderr: a panic on a thread whose
/// name starts with `threads`, with one of `messages`, is not printed. Every other panic (of
/// the other tests of this binary running meanwhile, or an unexpected one) goes to the hook
/// installed before, which is put back on drop.
struct QuietPanics {
    on: Arc<AtomicBool>,
    previous: Arc<PanicHook>,
}

impl QuietPanics {
    fn new(threads: &'static str, messages: &'static [&'static str]) -> Self {
        let on = Arc::new(AtomicBool::new(true));
        let previous: Arc<PanicHook> = Arc::from(std::panic::take_hook());
        let (active, forward) = (on.clone(), previous.clone());
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            let expected = active.load(Ordering::SeqCst)
                && std::thread::current()
                    .name()
                    .is_some_and(|n| n.starts_with(threads))
                && message.is_some_and(|m| messages.contains(&m));
            if !expected {
                forward(info);
            }
        }));
        QuietPanics { on, previous }
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        self.on.store(false, Ordering::SeqCst);
        // The hook cannot be replaced while this thread unwinds (from a failed assertion); the
        // switched-off filter then forwards everything.
        if !std::thread::panicking() {
            let previous = self.previous.clone();
            drop(std::panic::take_hook());
            std::panic::set_hook(Box::new(move |info| previous(info)));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_panics_leaves_the_process_healthy() {
    // Ten thousand panic messages on stderr would drown the test output.
    let quiet = QuietPanics::new(
        "panic-storm-",
        &["crashed at once", "crashed after an await"],
    );
    let rt = Fluxor::builder()
        .reactors(2)
        .thread_name("panic-storm")
        .build()
        .unwrap();
    let policy = Supervision::restart()
        .max_restarts(u32::MAX)
        .backoff(Backoff::none());
    let record = Arc::new(Record::default());
    rt.deploy(
        Fragile::factory(record.clone()),
        DeployOptions::new()
            .instances(2)
            .mailbox_capacity(20_000)
            .supervision(policy),
    )
    .await
    .unwrap();
    let before = rss_bytes();
    let mut requests = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let bus = rt.bus().clone();
        let how = if i % 2 == 0 {
            Crash::Sync
        } else {
            Crash::AfterAwait
        };
        requests.push(tokio::spawn(async move {
            bus.request(Fragile::CRASH, how).await
        }));
    }
    let mut answers = Vec::with_capacity(requests.len());
    for r in requests {
        answers.push(r.await);
    }
    // Panic messages are back on, for the assertions below.
    drop(quiet);
    let mut failed = 0;
    for answer in answers {
        match answer.unwrap() {
            Err(BusError::RecipientFailed { .. }) => failed += 1,
            other => panic!("every requester hears of the crash, got {other:?}"),
        }
    }
    assert_eq!(failed, 10_000);
    // Still serving, on both instances, each freshly restarted.
    for _ in 0..2 {
        assert_eq!(rt.bus().request(Fragile::BUMP, Bump).await, Ok(1));
    }
    assert_eq!(record.created.load(Ordering::SeqCst), 2 + 10_000);
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "memory grew by {grown} bytes");
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[derive(Message)]
struct Boom;

/// Naps, panics or counts, to show what happens to messages queued behind a crash.
#[component]
struct Halting {
    naps: Arc<AtomicU64>,
}

#[component]
impl Halting {
    #[handler("halting.nap")]
    async fn nap(&mut self, fluxor_tests::Nap(d): fluxor_tests::Nap) {
        self.naps.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(d).await;
    }

    #[handler("halting.boom")]
    fn boom(&mut self, _: Boom) {
        panic!("boom");
    }

    #[handler("halting.bump")]
    fn bump(&mut self, _: Bump) -> u64 {
        1
    }
}

#[tokio::test]
async fn messages_dropped_by_a_stop_policy_are_counted_undelivered() {
    let rt = Fluxor::builder().reactors(1).build().unwrap();
    let naps = Arc::new(AtomicU64::new(0));
    let factory = {
        let naps = naps.clone();
        move || Halting { naps: naps.clone() }
    };
    let id = rt
        .deploy(
            factory,
            DeployOptions::new().supervision(Supervision::stop()),
        )
        .await
        .unwrap();
    let bus = rt.bus().clone();
    let nap = tokio::spawn(async move {
        bus.request("halting.nap", fluxor_tests::Nap(Duration::from_millis(200)))
            .await
    });
    fluxor_tests::eventually("the nap to start", Duration::from_secs(5), || {
        naps.load(Ordering::SeqCst) == 1
    })
    .await;
    // Behind the nap: the crash, then two messages its policy will drop.
    rt.bus().send("halting.boom", Boom).unwrap();
    rt.bus().send("halting.bump", Bump).unwrap();
    rt.bus().send("halting.bump", Bump).unwrap();
    nap.await.unwrap().unwrap();
    let instance = || {
        rt.deployments()
            .into_iter()
            .find(|d| d.id == id)
            .unwrap()
            .instances[0]
            .clone()
    };
    fluxor_tests::eventually("the instance to stop", Duration::from_secs(5), || {
        instance().state == InstanceState::Stopped
    })
    .await;
    let i = instance();
    assert_eq!(
        (i.handled, i.panicked, i.undelivered, i.interrupted),
        (1, 1, 2, 0),
        "each accepted message has one outcome: {i:?}"
    );
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
