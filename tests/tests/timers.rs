//! Component timers, on reactors whose tokio clock starts paused: time jumps straight to the
//! next timer whenever a reactor is idle, so these tests take milliseconds and see exact
//! virtual-time intervals.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fluxor::prelude::*;
use fluxor::TimerId;
use fluxor_tests::{Nap, Probe};
use tokio::time::Instant;

#[derive(Message, Clone, Debug)]
struct Tick;

#[derive(Message, Debug)]
#[message(reply = Vec<Duration>)]
struct Ticks;

#[derive(serde::Deserialize, Default)]
struct TickerConfig {
    /// Period of the periodic timer, in ms (0: a one-shot timer of `delay_ms`).
    #[serde(default)]
    period_ms: u64,
    #[serde(default)]
    delay_ms: u64,
    /// Stop after this many ticks (0: never).
    #[serde(default)]
    stop_after: usize,
    /// How long each tick's handler takes, in ms.
    #[serde(default)]
    slow_ms: u64,
    /// Cancel the timer right away in `start`.
    #[serde(default)]
    cancel_at_once: bool,
}

#[component(config = TickerConfig)]
struct Ticker {
    started: Option<Instant>,
    ticks: Vec<Duration>,
    timer: Option<TimerId>,
    count: Arc<AtomicU64>,
}

impl Ticker {
    fn new(count: Arc<AtomicU64>) -> impl Fn() -> Ticker + Send + Sync + 'static {
        move || Ticker {
            started: None,
            ticks: Vec::new(),
            timer: None,
            count: count.clone(),
        }
    }
}

#[component]
impl Ticker {
    #[on_start]
    fn begin(&mut self, ctx: &mut Context<Self>) {
        self.started = Some(Instant::now());
        let cfg = ctx.config();
        let (period, delay, cancel) = (cfg.period_ms, cfg.delay_ms, cfg.cancel_at_once);
        let id = if period > 0 {
            ctx.set_periodic(Duration::from_millis(period), Tick)
        } else {
            ctx.set_timer(Duration::from_millis(delay), Tick)
        };
        if cancel {
            assert!(ctx.cancel_timer(id), "a pending timer is cancelled");
            assert!(!ctx.cancel_timer(id), "cancelling twice says so");
        }
        self.timer = Some(id);
    }

    #[handler]
    async fn tick(&mut self, _: Tick, ctx: &mut Context<Self>) {
        self.ticks.push(self.started.unwrap().elapsed());
        self.count.fetch_add(1, Ordering::SeqCst);
        let (slow, stop_after) = (ctx.config().slow_ms, ctx.config().stop_after);
        if slow > 0 {
            tokio::time::sleep(Duration::from_millis(slow)).await;
        }
        if stop_after > 0 && self.ticks.len() == stop_after {
            let id = self.timer.take().unwrap();
            assert!(ctx.cancel_timer(id));
        }
    }

    #[handler("ticker.ticks")]
    fn ticks(&mut self, _: Ticks) -> Vec<Duration> {
        self.ticks.clone()
    }
}

fn paused_runtime() -> Fluxor {
    Fluxor::builder()
        .reactors(1)
        .start_paused(true)
        .build()
        .unwrap()
}

async fn deploy(rt: &Fluxor, config: serde_json::Value) -> (DeploymentId, Arc<AtomicU64>) {
    let count = Arc::new(AtomicU64::new(0));
    let id = rt
        .deploy(
            Ticker::new(count.clone()),
            DeployOptions::new().config(config),
        )
        .await
        .unwrap();
    (id, count)
}

/// Waits (in real time) until `count` reaches `n`.
async fn wait_for(count: &AtomicU64, n: u64) {
    for _ in 0..1000 {
        if count.load(Ordering::SeqCst) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("only {} of {n} ticks arrived", count.load(Ordering::SeqCst));
}

/// Lets `d` of virtual time pass on the (only) reactor: a probe naps there for `d` while the
/// paused clock jumps from timer to timer, so every timer due meanwhile fires and is handled
/// before the nap ends.
async fn let_pass(rt: &Fluxor, d: Duration) {
    let probe = rt
        .deploy(Probe::default, DeployOptions::new())
        .await
        .unwrap();
    rt.bus().request("t.nap", Nap(d)).await.unwrap();
    rt.undeploy(probe).await.unwrap();
}

#[tokio::test]
async fn a_one_shot_timer_fires_once_after_its_delay() {
    let rt = paused_runtime();
    let (_, count) = deploy(&rt, serde_json::json!({ "delay_ms": 3_600_000 })).await;
    wait_for(&count, 1).await;
    let ticks = rt.bus().request(Ticker::TICKS, Ticks).await.unwrap();
    assert_eq!(
        ticks,
        vec![Duration::from_secs(3600)],
        "exactly one hour of virtual time"
    );
    let_pass(&rt, Duration::from_secs(10 * 3600)).await;
    assert_eq!(count.load(Ordering::SeqCst), 1, "no second firing");
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_periodic_timer_ticks_every_period_until_cancelled() {
    let rt = paused_runtime();
    let (_, count) = deploy(
        &rt,
        serde_json::json!({ "period_ms": 100, "stop_after": 5 }),
    )
    .await;
    wait_for(&count, 5).await;
    // Ten more periods.
    let_pass(&rt, Duration::from_secs(1)).await;
    let ticks = rt.bus().request(Ticker::TICKS, Ticks).await.unwrap();
    let expected: Vec<Duration> = (1..=5).map(|i| Duration::from_millis(100 * i)).collect();
    assert_eq!(ticks, expected);
    assert_eq!(count.load(Ordering::SeqCst), 5, "no tick after cancel");
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_slow_handler_does_not_make_ticks_pile_up() {
    let rt = paused_runtime();
    let (_, count) = deploy(
        &rt,
        serde_json::json!({ "period_ms": 10, "slow_ms": 35, "stop_after": 4 }),
    )
    .await;
    wait_for(&count, 4).await;
    let ticks = rt.bus().request(Ticker::TICKS, Ticks).await.unwrap();
    assert_eq!(ticks.len(), 4);
    // One tick is in flight at a time: the tick that fell due while the handler ran comes
    // as soon as it finishes, and the other missed ticks are skipped.
    let expected: Vec<Duration> = [10, 45, 80, 115].map(Duration::from_millis).to_vec();
    assert_eq!(ticks, expected);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_cancelled_timer_never_fires() {
    let rt = paused_runtime();
    let (_, count) = deploy(
        &rt,
        serde_json::json!({ "delay_ms": 10, "cancel_at_once": true }),
    )
    .await;
    // Let virtual time run far past the delay.
    let_pass(&rt, Duration::from_secs(3600)).await;
    let ticks = rt.bus().request(Ticker::TICKS, Ticks).await.unwrap();
    assert!(ticks.is_empty());
    assert_eq!(count.load(Ordering::SeqCst), 0);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn timers_stop_with_their_component() {
    let rt = paused_runtime();
    let (id, count) = deploy(&rt, serde_json::json!({ "period_ms": 50 })).await;
    wait_for(&count, 3).await;
    rt.undeploy(id).await.unwrap();
    let after = count.load(Ordering::SeqCst);
    // Twenty more periods.
    let_pass(&rt, Duration::from_secs(1)).await;
    assert_eq!(count.load(Ordering::SeqCst), after);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
