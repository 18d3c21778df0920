//! The test kit's own tests: `#[fluxor::test]`, probes, virtual time, settling, state reads,
//! and the failures it must report.

use std::time::Duration;

use fluxor::prelude::*;
use fluxor::testing::{TestOptions, TestRuntime};
use fluxor::{LifecycleEvent, LifecycleKind};

#[derive(Message, Debug)]
#[message(reply = u64)]
struct Add(u64);

#[derive(Message, Clone, Debug, PartialEq)]
struct Total(u64);

#[derive(Message, Clone, Debug)]
struct Tick;

#[derive(Message, Debug)]
struct Boom;

/// Answers the time on the component's reactor (virtual time with the paused clock).
#[derive(Message, Debug)]
#[message(reply = tokio::time::Instant)]
struct Now;

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct CounterConfig {
    /// Period of a ticking timer in seconds (0: none).
    tick_secs: u64,
}

#[component(config = CounterConfig)]
#[derive(Default, Debug)]
struct Counter {
    total: u64,
    ticks: u64,
}

#[component]
impl Counter {
    #[on_start]
    fn begin(&mut self, ctx: &mut Context<Self>) {
        let secs = ctx.config().tick_secs;
        if secs > 0 {
            ctx.set_periodic(Duration::from_secs(secs), Tick);
        }
    }

    #[handler("counter.add")]
    fn add(&mut self, Add(n): Add, ctx: &mut Context<Self>) -> u64 {
        self.total += n;
        let _ = ctx.publish("counter.total", Total(self.total));
        self.total
    }

    #[handler]
    fn tick(&mut self, _: Tick) {
        self.ticks += 1;
    }

    #[handler("counter.boom")]
    fn boom(&mut self, _: Boom) {
        panic!("boom on purpose");
    }

    #[handler("counter.now")]
    fn now(&mut self, _: Now) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }
}

fn ticking(secs: u64) -> DeployOptions {
    DeployOptions::new().config(serde_json::json!({ "tick_secs": secs }))
}

#[fluxor::test]
async fn request_reply_probe_and_state(rt: TestRuntime) {
    let totals = rt.probe::<Total>("counter.*").await;
    let id = rt.deploy(Counter::default).await;
    assert_eq!(rt.request(Counter::ADD, Add(2)).await, Ok(2));
    rt.send(Counter::ADD, Add(3)).unwrap();
    rt.settle().await;
    assert_eq!(rt.with_state(id, |c: &Counter| c.total).await, 5);
    assert_eq!(
        totals.expect_published(Duration::from_secs(1)).await,
        Total(2)
    );
    assert_eq!(
        totals.expect_published(Duration::from_secs(1)).await,
        Total(5)
    );
    assert_eq!(totals.received(), vec![Total(2), Total(5)]);
}

/// The time on the reactor of the (only) `Counter`.
async fn reactor_now(rt: &TestRuntime) -> tokio::time::Instant {
    rt.request(Counter::NOW, Now).await.unwrap()
}

/// Asserts that the reactor's clock moved by exactly `by` since `since`, and answers its time.
async fn assert_moved(
    rt: &TestRuntime,
    since: tokio::time::Instant,
    by: Duration,
) -> tokio::time::Instant {
    let now = reactor_now(rt).await;
    assert_eq!(now - since, by, "how far virtual time moved");
    now
}

#[fluxor::test]
async fn time_moves_only_when_advanced(rt: TestRuntime) {
    let id = rt.deploy_with(Counter::default, ticking(10)).await;
    let t0 = reactor_now(&rt).await;
    rt.settle().await;
    // Real time passes (this is what is tested, not a wait for something), with the reactor
    // idle and a timer pending: the virtual clock stays put.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t0 = assert_moved(&rt, t0, Duration::ZERO).await;
    assert_eq!(rt.with_state(id, |c: &Counter| c.ticks).await, 0);
    rt.advance(Duration::from_secs(9)).await;
    let t0 = assert_moved(&rt, t0, Duration::from_secs(9)).await;
    assert_eq!(rt.with_state(id, |c: &Counter| c.ticks).await, 0);
    rt.advance(Duration::from_secs(1)).await;
    let t0 = assert_moved(&rt, t0, Duration::from_secs(1)).await;
    assert_eq!(rt.with_state(id, |c: &Counter| c.ticks).await, 1);
    // A whole day: every tick, in virtual time, in milliseconds of real time.
    rt.advance(Duration::from_secs(86_400)).await;
    assert_moved(&rt, t0, Duration::from_secs(86_400)).await;
    assert_eq!(rt.with_state(id, |c: &Counter| c.ticks).await, 1 + 8_640);
}

#[fluxor::test]
async fn expect_no_message_advances_virtual_time(rt: TestRuntime) {
    let totals = rt.probe::<Total>("counter.total").await;
    let id = rt.deploy_with(Counter::default, ticking(1)).await;
    let t0 = reactor_now(&rt).await;
    totals.expect_no_message(Duration::from_secs(30)).await;
    assert_moved(&rt, t0, Duration::from_secs(30)).await;
    assert_eq!(
        rt.with_state(id, |c: &Counter| c.ticks).await,
        30,
        "the 1 s timer fired all along the 30 s"
    );
}

#[fluxor::test(allow_crashes)]
async fn supervision_is_observable_through_a_lifecycle_probe(rt: TestRuntime) {
    let events = rt.probe::<LifecycleEvent>("fluxor.lifecycle.>").await;
    let id = rt.deploy(Counter::default).await;
    let started = events.expect_published(Duration::from_secs(1)).await;
    assert_eq!(
        (started.kind, started.deployment),
        (LifecycleKind::Started, id)
    );
    assert!(rt.request(Counter::BOOM, Boom).await.is_err());
    let crashed = events.expect_published(Duration::from_secs(1)).await;
    assert_eq!(crashed.kind, LifecycleKind::Crashed);
    // The restart waits for its backoff (100 ms by default) in virtual time.
    events.expect_no_message(Duration::from_millis(99)).await;
    rt.advance(Duration::from_millis(1)).await;
    let restarted = events
        .expect_matching(Duration::from_secs(1), "a restart", |e| {
            e.kind == LifecycleKind::Restarted
        })
        .await;
    assert_eq!(restarted.restarts, 1);
}

#[fluxor::test(real_time)]
async fn real_time_runs_timers_on_their_own(rt: TestRuntime) {
    let id = rt.deploy_with(Counter::default, ticking(1)).await;
    rt.advance(Duration::from_millis(1_100)).await;
    assert_eq!(rt.with_state(id, |c: &Counter| c.ticks).await, 1);
}

#[fluxor::test(reactors = 2)]
async fn a_test_may_return_a_result(rt: TestRuntime) -> Result<(), BusError> {
    assert_eq!(rt.runtime().reactors(), 2);
    rt.deploy_with(Counter::default, DeployOptions::new().instances(2))
        .await;
    rt.request(Counter::ADD, Add(1)).await?;
    Ok(())
}

#[fluxor::test]
async fn a_test_without_a_parameter() {
    let rt = TestOptions::new().real_time().build().await.unwrap();
    rt.deploy(Counter::default).await;
    assert_eq!(rt.request(Counter::ADD, Add(7)).await, Ok(7));
    rt.shutdown().await;
}

// ----- The failures the kit reports -----

#[fluxor::test]
#[should_panic(
    expected = "probe on `counter.total`: expected any message of type `testkit::Total` within 50ms"
)]
async fn a_missing_message_names_the_topic_and_the_wait(rt: TestRuntime) {
    let totals = rt.probe::<Total>("counter.total").await;
    rt.deploy(Counter::default).await;
    totals.expect_published(Duration::from_millis(50)).await;
}

#[fluxor::test]
#[should_panic(expected = "expected a total of 10 of type `testkit::Total` within 50ms")]
async fn a_mismatch_says_what_arrived_instead(rt: TestRuntime) {
    let totals = rt.probe::<Total>("counter.total").await;
    rt.deploy(Counter::default).await;
    rt.request(Counter::ADD, Add(3)).await.unwrap();
    totals
        .expect_matching(Duration::from_millis(50), "a total of 10", |t| t.0 == 10)
        .await;
}

#[fluxor::test]
#[should_panic(expected = "arrived instead: Total(3) on `counter.total`")]
async fn the_failure_lists_the_messages_that_did_not_match(rt: TestRuntime) {
    let totals = rt.probe::<Total>("counter.total").await;
    rt.deploy(Counter::default).await;
    rt.request(Counter::ADD, Add(3)).await.unwrap();
    totals
        .expect_matching(Duration::from_millis(50), "a total of 10", |t| t.0 == 10)
        .await;
}

#[fluxor::test]
#[should_panic(expected = "expected no message within 5s, but Total(1) arrived on `counter.total`")]
async fn an_unexpected_message_is_reported_with_its_debug(rt: TestRuntime) {
    let totals = rt.probe::<Total>("counter.total").await;
    rt.deploy(Counter::default).await;
    rt.send(Counter::ADD, Add(1)).unwrap();
    totals.expect_no_message(Duration::from_secs(5)).await;
}

#[fluxor::test]
#[should_panic(
    expected = "1 handler panic(s) during the test: `Counter`: panicked: boom on purpose"
)]
async fn an_unexpected_crash_fails_the_test(rt: TestRuntime) {
    rt.deploy(Counter::default).await;
    let _ = rt.request(Counter::BOOM, Boom).await;
}

#[fluxor::test]
#[should_panic(expected = "runs `Counter`, not `Other`")]
async fn reading_state_as_the_wrong_type_is_reported(rt: TestRuntime) {
    let id = rt.deploy(Counter::default).await;
    rt.with_state(id, |_: &Other| ()).await;
}

#[fluxor::test]
#[should_panic(expected = "the test returned an error: NoHandlers")]
async fn an_error_result_fails_the_test(rt: TestRuntime) -> Result<(), BusError> {
    rt.request(Counter::ADD, Add(1)).await?;
    Ok(())
}

#[component]
#[derive(Default)]
struct Other;

#[component]
impl Other {}
