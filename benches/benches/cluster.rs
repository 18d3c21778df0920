//! Run with: `cargo bench -p fluxor-benches --bench cluster`
//!
//! The cluster bus against raw async-nats, side by side, through one `nats-server` this bench
//! starts on a free loopback port:
//!
//! * **request round trip**: one outstanding request at a time. Fluxor: node A's bus requests
//!   `Inc(u64) -> u64` from a component on node B (two `Fluxor` runtimes, each with its own
//!   connection). Raw: one client's `request` to a second client whose responder loop
//!   (`subscribe` + `publish` to the reply subject) answers the number plus one. Both sides
//!   encode and decode the numbers as JSON.
//! * **publish throughput**: node A publishes N `Tick(u64)` (JSON) that one consumer on node B
//!   counts, against one client publishing N JSON numbers to a subject a second client
//!   subscribes to and counts. Timed from the first publish until the last one is counted.
//!
//! Each comparison runs three times, alternating Fluxor and raw; the table shows medians. The
//! per-trial lines also show how long the publishing loop took and how many messages the
//! consumer had counted by then.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fluxor::cluster::NatsCluster;
use fluxor::prelude::*;
use fluxor_tests::nats::{until_ready, NatsServer};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const WARMUP: u64 = 2_000;
const REQUESTS: u64 = 20_000;
const PUBLISHES: u64 = 200_000;
const TRIALS: usize = 3;
/// Subscription buffers (client side) and Fluxor's outgoing queue.
const CAPACITY: usize = 262_144;
/// How long the consumer may take to count every publication before the rest counts as lost.
const DEADLINE: Duration = Duration::from_secs(30);

const RAW_INC: &str = "raw.inc";
const RAW_TICK: &str = "raw.tick";

#[derive(Message, Serialize, Deserialize, Debug, Clone)]
#[message(reply = u64, wire = "bench.inc.v1")]
struct Inc(u64);

#[derive(Message, Serialize, Deserialize, Debug, Clone)]
#[message(remote)]
struct Tick(u64);

/// Asks the driver on node A to make `n` requests to node B, one at a time, from its handler;
/// answers each round trip in nanoseconds.
#[derive(Message, Debug)]
#[message(reply = Vec<u64>)]
struct Drive(u64);

const INC: Address<Inc> = Address::new("bench.inc");
const DRIVE: Address<Drive> = Address::new("bench.drive");

/// Node A's requester, a component on the reactor that holds A's connection: how a program
/// usually asks another node.
#[component]
#[derive(Debug, Default)]
struct Driver;

#[component]
impl Driver {
    #[handler("bench.drive")]
    async fn drive(
        &mut self,
        Drive(n): Drive,
        ctx: &mut Context<Self>,
    ) -> Result<Vec<u64>, BusError> {
        let mut times = Vec::with_capacity(n as usize);
        for i in 0..n {
            let sent = Instant::now();
            let answer = ctx.request(INC, Inc(i)).await?;
            times.push(sent.elapsed().as_nanos() as u64);
            if answer != i + 1 {
                return Err(BusError::RecipientFailed {
                    topic: "bench.inc".into(),
                    reason: format!("answered {answer} to {i}"),
                });
            }
        }
        Ok(times)
    }
}
const TICK: Address<Tick> = Address::new("bench.tick");

#[component]
#[derive(Debug, Default)]
struct Server {
    ticks: Arc<AtomicU64>,
    /// Ticks to count before `done` is notified.
    target: u64,
    done: Arc<Notify>,
}

#[component]
impl Server {
    #[handler("bench.inc", remote)]
    fn inc(&mut self, msg: Inc) -> u64 {
        msg.0 + 1
    }

    #[handler("bench.tick", remote)]
    fn tick(&mut self, _: Tick) {
        if self.ticks.fetch_add(1, Relaxed) + 1 == self.target {
            self.done.notify_one();
        }
    }
}

/// Node A (no components) and node B (the server), both connected and subscribed.
struct Nodes {
    a: Fluxor,
    b: Fluxor,
    ticks: Arc<AtomicU64>,
    done: Arc<Notify>,
}

fn node(url: &str) -> Res<Fluxor> {
    Ok(Fluxor::builder()
        .reactors(1)
        .spin_before_park(Duration::ZERO)
        .cluster(
            NatsCluster::connect(url)
                .name("bench")
                .subscription_capacity(CAPACITY)
                .outgoing_capacity(CAPACITY),
        )
        .build()?)
}

impl Nodes {
    async fn start(url: &str, target: u64) -> Res<Nodes> {
        let (a, b) = (node(url)?, node(url)?);
        let ticks = Arc::new(AtomicU64::new(0));
        let done = Arc::new(Notify::new());
        let (t, d) = (ticks.clone(), done.clone());
        b.deploy(
            move || Server {
                ticks: t.clone(),
                target,
                done: d.clone(),
            },
            DeployOptions::new().mailbox_capacity(65_536),
        )
        .await?;
        until_ready(&a).await;
        until_ready(&b).await;
        Ok(Nodes { a, b, ticks, done })
    }

    async fn shutdown(self) -> Res<()> {
        self.a.shutdown(Duration::from_secs(5)).await?;
        self.b.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    }
}

async fn raw_client(url: &str) -> Res<async_nats::Client> {
    Ok(async_nats::ConnectOptions::new()
        .subscription_capacity(CAPACITY)
        .connect(url)
        .await?)
}

/// Waits until the server has processed every subscription `client` sent: a request to a
/// subject nobody serves is answered "no responders" only after the server read everything
/// the connection sent before it (`flush` proves less: that the bytes left).
async fn confirm_subscriptions(client: &async_nats::Client) -> Res<()> {
    match client.request("_RAW_SYNC", Bytes::new()).await {
        Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => Ok(()),
        Err(e) => Err(e.into()),
        Ok(_) => Err("`_RAW_SYNC` has a responder".into()),
    }
}

fn json(n: u64) -> Res<Bytes> {
    Ok(Bytes::from(serde_json::to_vec(&n)?))
}

/// One request trial: p50 and mean in nanoseconds.
#[derive(Debug, Clone, Copy)]
struct Latency {
    p50: f64,
    mean: f64,
}

fn latency(hist: &Histogram<u64>) -> Latency {
    Latency {
        p50: hist.value_at_quantile(0.5) as f64,
        mean: hist.mean(),
    }
}

async fn fluxor_request(url: &str) -> Res<Latency> {
    let nodes = Nodes::start(url, 0).await?;
    let bus = nodes.a.bus();
    let mut hist = Histogram::<u64>::new(3)?;
    for i in 0..WARMUP + REQUESTS {
        let sent = Instant::now();
        let answer = bus.request(INC, Inc(i)).await?;
        let ns = sent.elapsed().as_nanos() as u64;
        if answer != i + 1 {
            return Err(format!("fluxor answered {answer} to {i}").into());
        }
        if i >= WARMUP {
            hist.record(ns)?;
        }
    }
    nodes.shutdown().await?;
    Ok(latency(&hist))
}

/// Requests from a component on node A (see [`Driver`]).
async fn fluxor_component_request(url: &str) -> Res<Latency> {
    let nodes = Nodes::start(url, 0).await?;
    nodes
        .a
        .deploy(Driver::default, DeployOptions::new())
        .await?;
    let options = RequestOptions::new().timeout(Duration::from_secs(300));
    let times = nodes
        .a
        .bus()
        .request_with(DRIVE, Drive(WARMUP + REQUESTS), options)
        .await?;
    let mut hist = Histogram::<u64>::new(3)?;
    for ns in times.into_iter().skip(WARMUP as usize) {
        hist.record(ns)?;
    }
    nodes.shutdown().await?;
    Ok(latency(&hist))
}

async fn raw_request(url: &str) -> Res<Latency> {
    let responder = raw_client(url).await?;
    let requester = raw_client(url).await?;
    let mut requests = responder.subscribe(RAW_INC).await?;
    confirm_subscriptions(&responder).await?;
    let serve = tokio::spawn(async move {
        while let Some(msg) = requests.next().await {
            let n: u64 = serde_json::from_slice(&msg.payload)?;
            if let Some(reply) = msg.reply {
                responder.publish(reply, json(n + 1)?).await?;
            }
        }
        Res::<()>::Ok(())
    });
    let mut hist = Histogram::<u64>::new(3)?;
    for i in 0..WARMUP + REQUESTS {
        let sent = Instant::now();
        let msg = requester.request(RAW_INC, json(i)?).await?;
        let answer: u64 = serde_json::from_slice(&msg.payload)?;
        let ns = sent.elapsed().as_nanos() as u64;
        if answer != i + 1 {
            return Err(format!("the raw responder answered {answer} to {i}").into());
        }
        if i >= WARMUP {
            hist.record(ns)?;
        }
    }
    serve.abort();
    Ok(latency(&hist))
}

/// One publish trial.
#[derive(Debug, Clone, Copy)]
struct Rate {
    /// Messages counted per second, first publish to last count (or to the deadline).
    per_s: f64,
    /// Publications that did not arrive before the deadline.
    lost: u64,
    /// Publishes retried because the outgoing queue was full (Fluxor only).
    retries: u64,
    /// How long the publishing loop took (the messages queued or handed to the client).
    published: Duration,
    /// Messages counted when the publishing loop ended.
    counted_then: u64,
}

async fn fluxor_publish(url: &str) -> Res<Rate> {
    let nodes = Nodes::start(url, PUBLISHES).await?;
    let bus = nodes.a.bus();
    let mut retries = 0;
    let start = Instant::now();
    for i in 0..PUBLISHES {
        loop {
            match bus.publish(TICK, Tick(i)) {
                Ok(_) => break,
                Err(e)
                    if start.elapsed() < DEADLINE
                        && e.failures
                            .iter()
                            .all(|f| matches!(f, BusError::Unreachable { .. })) =>
                {
                    retries += 1;
                    tokio::task::yield_now().await;
                }
                Err(e) => return Err(format!("publish {i} failed: {e:?}").into()),
            }
        }
    }
    let published = start.elapsed();
    let counted_then = nodes.ticks.load(Relaxed);
    let left = DEADLINE.saturating_sub(start.elapsed());
    let all = tokio::time::timeout(left, nodes.done.notified())
        .await
        .is_ok();
    let elapsed = start.elapsed();
    let counted = nodes.ticks.load(Relaxed);
    if !all {
        let stats = nodes.b.cluster_stats();
        eprintln!("fluxor: {counted} of {PUBLISHES} counted by the deadline; node B: {stats:?}");
    }
    nodes.shutdown().await?;
    Ok(Rate {
        per_s: counted as f64 / elapsed.as_secs_f64(),
        lost: PUBLISHES - counted,
        retries,
        published,
        counted_then,
    })
}

async fn raw_publish(url: &str) -> Res<Rate> {
    let consumer = raw_client(url).await?;
    let publisher = raw_client(url).await?;
    let mut ticks = consumer.subscribe(RAW_TICK).await?;
    confirm_subscriptions(&consumer).await?;
    let counted = Arc::new(AtomicU64::new(0));
    let count = counted.clone();
    let mut counter = tokio::spawn(async move {
        while let Some(msg) = ticks.next().await {
            let _n: u64 = serde_json::from_slice(&msg.payload)?;
            if count.fetch_add(1, Relaxed) + 1 == PUBLISHES {
                break;
            }
        }
        Res::<()>::Ok(())
    });
    let start = Instant::now();
    for i in 0..PUBLISHES {
        publisher.publish(RAW_TICK, json(i)?).await?;
    }
    let published = start.elapsed();
    let counted_then = counted.load(Relaxed);
    let left = DEADLINE.saturating_sub(start.elapsed());
    let all = tokio::time::timeout(left, &mut counter).await.is_ok();
    let elapsed = start.elapsed();
    counter.abort();
    let counted = counted.load(Relaxed);
    if !all {
        eprintln!("raw: {counted} of {PUBLISHES} counted by the deadline");
    }
    Ok(Rate {
        per_s: counted as f64 / elapsed.as_secs_f64(),
        lost: PUBLISHES - counted,
        retries: 0,
        published,
        counted_then,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn us(ns: f64) -> String {
    format!("{:.1}", ns / 1_000.0)
}

fn rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2}M", per_s / 1e6)
    } else {
        format!("{:.0}k", per_s / 1e3)
    }
}

async fn run(url: &str) -> Res<()> {
    let (mut f_req, mut r_req, mut c_req) = (Vec::new(), Vec::new(), Vec::new());
    let (mut f_pub, mut r_pub) = (Vec::new(), Vec::new());
    for trial in 1..=TRIALS {
        let f = fluxor_request(url).await?;
        let c = fluxor_component_request(url).await?;
        let r = raw_request(url).await?;
        println!(
            "trial {trial} request  p50/mean µs: fluxor {}/{}  fluxor from a component {}/{}  raw {}/{}",
            us(f.p50),
            us(f.mean),
            us(c.p50),
            us(c.mean),
            us(r.p50),
            us(r.mean)
        );
        f_req.push(f);
        c_req.push(c);
        r_req.push(r);
    }
    for trial in 1..=TRIALS {
        let f = fluxor_publish(url).await?;
        let r = raw_publish(url).await?;
        println!(
            "trial {trial} publish  msgs/s: fluxor {} (lost {}, retries {}, publish loop {} ms, \
             {} counted by then)  raw {} (lost {}, publish loop {} ms, {} counted by then)",
            rate(f.per_s),
            f.lost,
            f.retries,
            f.published.as_millis(),
            f.counted_then,
            rate(r.per_s),
            r.lost,
            r.published.as_millis(),
            r.counted_then
        );
        f_pub.push(f);
        r_pub.push(r);
    }

    let p50 = |v: &[Latency]| median(v.iter().map(|l| l.p50).collect());
    let mean = |v: &[Latency]| median(v.iter().map(|l| l.mean).collect());
    let per_s = |v: &[Rate]| median(v.iter().map(|r| r.per_s).collect());
    let (fp, rp) = (p50(&f_req), p50(&r_req));
    let (fm, rm) = (mean(&f_req), mean(&r_req));
    let (cp, cm) = (p50(&c_req), mean(&c_req));
    let (fr, rr) = (per_s(&f_pub), per_s(&r_pub));
    let lost = |v: &[Rate]| v.iter().map(|r| r.lost).sum::<u64>();
    let retries: u64 = f_pub.iter().map(|r| r.retries).sum();

    println!();
    println!(
        "Medians of {TRIALS} trials; requests: {REQUESTS} after {WARMUP} warm-up, one outstanding; \
         publishes: {PUBLISHES} per trial."
    );
    println!();
    println!("| comparison | unit | fluxor | raw async-nats | fluxor / raw | goal |");
    println!("|---|---|---:|---:|---:|---|");
    println!(
        "| request round trip, p50 | µs | {} | {} | {:.2} | ≤ 1.15 |",
        us(fp),
        us(rp),
        fp / rp
    );
    println!(
        "| request round trip, mean | µs | {} | {} | {:.2} | — |",
        us(fm),
        us(rm),
        fm / rm
    );
    println!(
        "| request from a component on A, p50 | µs | {} | {} | {:.2} | ≤ 1.15 |",
        us(cp),
        us(rp),
        cp / rp
    );
    println!(
        "| request from a component on A, mean | µs | {} | {} | {:.2} | — |",
        us(cm),
        us(rm),
        cm / rm
    );
    println!(
        "| publish {}k × u64 (JSON) | msgs/s | {} | {} | {:.2} | ≥ 0.85 |",
        PUBLISHES / 1_000,
        rate(fr),
        rate(rr),
        fr / rr
    );
    println!();
    println!(
        "Lost publications over {TRIALS} trials: fluxor {}, raw {}; fluxor publishes retried \
         (outgoing queue full): {retries}.",
        lost(&f_pub),
        lost(&r_pub)
    );
    Ok(())
}

fn main() -> Res<()> {
    let server = NatsServer::start();
    let url = server.url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(&url));
    drop(runtime);
    drop(server);
    result
}
