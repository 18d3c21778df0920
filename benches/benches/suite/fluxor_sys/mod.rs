//! Fluxor: 2 reactors; the driver is a component.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fluxor::prelude::*;
use hdrhistogram::Histogram;
use tokio::sync::oneshot;

use crate::{rss_bytes, Placement, System};

mod placed;

pub(crate) struct Fluxor;

/// An 8-byte message.
#[derive(Message)]
struct Num(u64);

#[derive(Message)]
#[message(reply = u64)]
struct Ask(u64);

#[derive(Message, Clone)]
struct Payload(Arc<u64>);

/// Arms a sink: signal `done` after `n` messages.
#[derive(Message)]
struct Expect {
    n: u64,
    done: oneshot::Sender<()>,
}

#[component]
#[derive(Default)]
struct Sink(crate::Tally);

#[component]
impl Sink {
    #[handler]
    fn expect(&mut self, Expect { n, done }: Expect) {
        self.0.arm(n, done);
    }

    #[handler]
    fn num(&mut self, Num(n): Num) {
        self.0.tick(n);
    }

    #[handler("bench.fan")]
    fn payload(&mut self, Payload(p): Payload) {
        self.0.tick(*p);
    }
}

#[component]
#[derive(Default)]
struct Echo;

#[component]
impl Echo {
    #[handler]
    fn ask(&mut self, Ask(x): Ask) -> u64 {
        x
    }
}

#[derive(Message)]
struct Ball(u64);

#[derive(Message)]
struct Pair {
    peer: ActorRef<Ponger>,
    done: Option<oneshot::Sender<()>>,
}

#[component]
#[derive(Default)]
struct Ponger {
    peer: Option<ActorRef<Ponger>>,
    done: Option<oneshot::Sender<()>>,
}

#[component]
impl Ponger {
    #[handler]
    fn pair(&mut self, Pair { peer, done }: Pair) {
        self.peer = Some(peer);
        self.done = done;
    }

    #[handler]
    fn ball(&mut self, Ball(n): Ball) {
        if n == 0 {
            if let Some(done) = self.done.take() {
                let _ = done.send(());
            }
        } else if let Some(peer) = &self.peer {
            let _ = peer.send(Ball(n - 1));
        }
    }
}

/// One workload for the driver to run on its reactor.
enum Job {
    Tell {
        target: ActorRef<Sink>,
        senders: u64,
        n: u64,
        done: oneshot::Receiver<()>,
    },
    Ask {
        target: ActorRef<Echo>,
        warmup: u64,
        n: u64,
    },
    Pipelined {
        target: ActorRef<Echo>,
        n: u64,
    },
    PingPong {
        starters: Vec<ActorRef<Ponger>>,
        bounces: u64,
        done: Vec<oneshot::Receiver<()>>,
    },
    FanOut {
        publishes: u64,
        done: Vec<oneshot::Receiver<()>>,
    },
    RoundRobin {
        n: u64,
        total: Arc<(AtomicU64, u64, tokio::sync::Notify)>,
    },
    Offload {
        jobs: u64,
        busy: Duration,
    },
}

enum Outcome {
    Elapsed(Duration),
    Latencies(Histogram<u64>),
    ElapsedAndLateness(Duration, u64),
}

#[derive(Message)]
#[message(reply = Outcome)]
struct Run(Job);

#[component]
#[derive(Default)]
struct Driver;

#[component]
impl Driver {
    #[handler]
    async fn run(&mut self, Run(job): Run, ctx: &mut Context<Self>) -> Outcome {
        match job {
            Job::Tell {
                target,
                senders,
                n,
                done,
            } => {
                let start = Instant::now();
                for _ in 0..senders {
                    let target = target.clone();
                    let each = n / senders;
                    tokio::task::spawn_local(async move {
                        for i in 0..each {
                            if target.send_wait(Num(i)).await.is_err() {
                                return;
                            }
                        }
                    });
                }
                let _ = done.await;
                Outcome::Elapsed(start.elapsed())
            }
            Job::Ask { target, warmup, n } => {
                let h = crate::latencies(warmup, n, |i| {
                    let target = &target;
                    async move {
                        let _ = target.request(Ask(i)).await;
                    }
                })
                .await;
                Outcome::Latencies(h)
            }
            Job::Pipelined { target, n } => {
                let start = Instant::now();
                let mut tasks = Vec::new();
                for _ in 0..64 {
                    let target = target.clone();
                    tasks.push(tokio::task::spawn_local(async move {
                        for i in 0..n / 64 {
                            let _ = target.request(Ask(i)).await;
                        }
                    }));
                }
                for t in tasks {
                    let _ = t.await;
                }
                Outcome::Elapsed(start.elapsed())
            }
            Job::PingPong {
                starters,
                bounces,
                done,
            } => {
                let start = Instant::now();
                for s in &starters {
                    let _ = s.send(Ball(bounces));
                }
                for d in done {
                    let _ = d.await;
                }
                Outcome::Elapsed(start.elapsed())
            }
            Job::RoundRobin { n, total } => {
                let start = Instant::now();
                for i in 0..n {
                    let _ = ctx
                        .bus()
                        .send_timeout("bench.rr", Num(i), Duration::from_secs(60))
                        .await;
                }
                total.2.notified().await;
                Outcome::Elapsed(start.elapsed())
            }
            Job::Offload { jobs, busy } => {
                let (stop_tx, stop_rx) = oneshot::channel::<()>();
                let ticker = tokio::task::spawn_local(crate::tick_lateness(stop_rx));
                let start = Instant::now();
                let mut left = jobs;
                while left > 0 {
                    let window = left.min(512);
                    left -= window;
                    let tasks: Vec<_> = (0..window)
                        .map(|_| ctx.execute_blocking(move || crate::busy_work(busy)))
                        .collect();
                    for t in tasks {
                        let _ = t.await;
                    }
                }
                let elapsed = start.elapsed();
                let _ = stop_tx.send(());
                let late = ticker.await.unwrap_or(0);
                Outcome::ElapsedAndLateness(elapsed, late)
            }
            Job::FanOut { publishes, done } => {
                let start = Instant::now();
                let payload = Payload(Arc::new(7));
                for _ in 0..publishes {
                    let _ = ctx.publish("bench.fan", payload.clone());
                }
                for d in done {
                    let _ = d.await;
                }
                Outcome::Elapsed(start.elapsed())
            }
        }
    }
}

/// Counts round-robin deliveries across all its instances (a full mailbox makes the bus try the
/// next instance, so the split is not exactly even).
#[component]
struct Tally {
    total: Arc<(AtomicU64, u64, tokio::sync::Notify)>,
}

#[component]
impl Tally {
    #[handler("bench.rr")]
    fn count(&mut self, Num(_): Num) {
        let (count, target, done) = &*self.total;
        if count.fetch_add(1, Ordering::Relaxed) + 1 == *target {
            done.notify_one();
        }
    }
}

/// A tiny component for the spawn workload.
#[component]
struct Tiny {
    handled: Arc<AtomicU64>,
}

#[component]
impl Tiny {
    #[handler]
    fn num(&mut self, Num(n): Num) {
        self.handled.fetch_add(1 + n, Ordering::Relaxed);
    }
}

fn main_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn runtime() -> fluxor::Fluxor {
    runtime_with(Duration::from_secs(60))
}

/// The runtime every Fluxor workload uses (2 reactors, mailboxes of 1024), with requests
/// timing out after `request_timeout`.
fn runtime_with(request_timeout: Duration) -> fluxor::Fluxor {
    fluxor::Fluxor::builder()
        .reactors(2)
        .mailbox_capacity(1024)
        .request_timeout(request_timeout)
        .build()
        .expect("a fluxor runtime")
}

async fn driver(rt: &fluxor::Fluxor, reactor: usize) -> ActorRef<Driver> {
    let id = rt
        .deploy(Driver::default, DeployOptions::new().reactor(reactor))
        .await
        .expect("deploy the driver");
    rt.actor_ref(id, 0).expect("the driver")
}

async fn run(driver: &ActorRef<Driver>, job: Job) -> Outcome {
    match driver.request(Run(job)).await {
        Ok(o) => o,
        Err(e) => panic!("the benchmark driver failed: {e}"),
    }
}

fn elapsed(o: Outcome) -> Duration {
    match o {
        Outcome::Elapsed(d) | Outcome::ElapsedAndLateness(d, _) => d,
        Outcome::Latencies(_) => Duration::ZERO,
    }
}

impl System for Fluxor {
    const NAME: &'static str = "fluxor";

    fn tell(&self, placement: Placement, senders: u64, n: u64) -> Option<Duration> {
        main_thread().block_on(async {
            let rt = runtime();
            let id = rt
                .deploy(Sink::default, DeployOptions::new().reactor(0))
                .await
                .ok()?;
            let sink = rt.actor_ref::<Sink>(id, 0)?;
            let driver = driver(&rt, if placement == Placement::Same { 0 } else { 1 }).await;
            let (tx, rx) = oneshot::channel();
            sink.request(Expect { n, done: tx }).await.ok()?;
            let d = elapsed(
                run(
                    &driver,
                    Job::Tell {
                        target: sink,
                        senders,
                        n,
                        done: rx,
                    },
                )
                .await,
            );
            rt.shutdown(Duration::from_secs(10)).await.ok()?;
            Some(d)
        })
    }

    fn ask(&self, placement: Placement, warmup: u64, n: u64) -> Option<Histogram<u64>> {
        main_thread().block_on(async {
            let rt = runtime();
            let id = rt
                .deploy(|| Echo, DeployOptions::new().reactor(0))
                .await
                .ok()?;
            let echo = rt.actor_ref::<Echo>(id, 0)?;
            let driver = driver(&rt, if placement == Placement::Same { 0 } else { 1 }).await;
            let out = run(
                &driver,
                Job::Ask {
                    target: echo,
                    warmup,
                    n,
                },
            )
            .await;
            rt.shutdown(Duration::from_secs(10)).await.ok()?;
            match out {
                Outcome::Latencies(h) => Some(h),
                _ => None,
            }
        })
    }

    fn ask_pipelined(&self, n: u64) -> Option<Duration> {
        main_thread().block_on(async {
            let rt = runtime();
            let id = rt
                .deploy(|| Echo, DeployOptions::new().reactor(0))
                .await
                .ok()?;
            let echo = rt.actor_ref::<Echo>(id, 0)?;
            let driver = driver(&rt, 1).await;
            let d = elapsed(run(&driver, Job::Pipelined { target: echo, n }).await);
            rt.shutdown(Duration::from_secs(10)).await.ok()?;
            Some(d)
        })
    }

    fn ping_pong(&self, pairs: u64, bounces: u64) -> Option<Duration> {
        main_thread().block_on(async {
            let rt = runtime();
            let mut starters = Vec::new();
            let mut done = Vec::new();
            for p in 0..pairs {
                // The two sides of a pair share a reactor (chatty components are placed
                // together); pairs alternate between the reactors.
                let reactor = DeployOptions::new().reactor((p % 2) as usize);
                let a = rt.deploy(Ponger::default, reactor.clone()).await.ok()?;
                let b = rt.deploy(Ponger::default, reactor).await.ok()?;
                let (a, b) = (rt.actor_ref::<Ponger>(a, 0)?, rt.actor_ref::<Ponger>(b, 0)?);
                let (tx, rx) = oneshot::channel();
                a.request(Pair {
                    peer: b.clone(),
                    done: Some(tx),
                })
                .await
                .ok()?;
                b.request(Pair {
                    peer: a.clone(),
                    done: None,
                })
                .await
                .ok()?;
                starters.push(a);
                done.push(rx);
            }
            let driver = driver(&rt, 0).await;
            // Even bounce counts end on the starter, which holds `done`.
            let d = elapsed(
                run(
                    &driver,
                    Job::PingPong {
                        starters,
                        bounces: bounces & !1,
                        done,
                    },
                )
                .await,
            );
            rt.shutdown(Duration::from_secs(10)).await.ok()?;
            Some(d)
        })
    }

    fn fan_out(&self, subscribers: u64, publishes: u64) -> Option<Duration> {
        main_thread().block_on(async {
            let rt = runtime();
            // Room for every publish: a publish does not wait for a full subscriber.
            let id = rt
                .deploy(
                    Sink::default,
                    DeployOptions::new()
                        .instances(subscribers as usize)
                        .mailbox_capacity(publishes as usize + 1),
                )
                .await
                .ok()?;
            let mut done = Vec::new();
            for i in 0..subscribers as usize {
                let (tx, rx) = oneshot::channel();
                rt.actor_ref::<Sink>(id, i)?
                    .request(Expect {
                        n: publishes,
                        done: tx,
                    })
                    .await
                    .ok()?;
                done.push(rx);
            }
            let driver = driver(&rt, 0).await;
            let d = elapsed(run(&driver, Job::FanOut { publishes, done }).await);
            rt.shutdown(Duration::from_secs(30)).await.ok()?;
            Some(d)
        })
    }

    fn round_robin(&self, actors: u64, n: u64) -> Option<Duration> {
        main_thread().block_on(async {
            let rt = runtime();
            let total = Arc::new((AtomicU64::new(0), n, tokio::sync::Notify::new()));
            let factory = {
                let total = total.clone();
                move || Tally {
                    total: total.clone(),
                }
            };
            rt.deploy(factory, DeployOptions::new().instances(actors as usize))
                .await
                .ok()?;
            let driver = driver(&rt, 0).await;
            let d = elapsed(run(&driver, Job::RoundRobin { n, total }).await);
            rt.shutdown(Duration::from_secs(30)).await.ok()?;
            Some(d)
        })
    }

    fn offload(&self, jobs: u64, busy: Duration) -> Option<(Duration, u64)> {
        main_thread().block_on(async {
            let rt = runtime();
            let driver = driver(&rt, 0).await;
            let out = run(&driver, Job::Offload { jobs, busy }).await;
            rt.shutdown(Duration::from_secs(30)).await.ok()?;
            match out {
                Outcome::ElapsedAndLateness(d, late) => Some((d, late)),
                _ => None,
            }
        })
    }

    fn spawn(&self, n: u64) -> Option<(Duration, f64, Duration)> {
        main_thread().block_on(async {
            let rt = runtime();
            let handled = Arc::new(AtomicU64::new(0));
            let before = rss_bytes();
            let start = Instant::now();
            let factory = {
                let handled = handled.clone();
                move || Tiny {
                    handled: handled.clone(),
                }
            };
            let id = rt
                .deploy(factory, DeployOptions::new().instances(n as usize))
                .await
                .ok()?;
            let started = start.elapsed();
            let per_actor = rss_bytes().saturating_sub(before) as f64 / n as f64;
            for i in 0..n as usize {
                let _ = rt.actor_ref::<Tiny>(id, i)?.send(Num(0));
            }
            crate::until_handled(&handled, n).await;
            let stop = Instant::now();
            rt.undeploy(id).await.ok()?;
            let stopped = stop.elapsed();
            rt.shutdown(Duration::from_secs(30)).await.ok()?;
            Some((started, per_actor, stopped))
        })
    }

    fn skynet(&self, leaves: u64) -> Option<Duration> {
        use fluxor_tests::{Grow, Skynet};
        main_thread().block_on(async {
            let rt = runtime();
            let start = Instant::now();
            let root = rt
                .deploy(Skynet::default, DeployOptions::new())
                .await
                .ok()?;
            let (tx, rx) = oneshot::channel();
            rt.actor_ref::<Skynet>(root, 0)?
                .send(Grow {
                    num: 0,
                    size: leaves,
                    parent: None,
                    report: Some(tx),
                    placement: fluxor_tests::TreePlacement::Subtrees,
                })
                .ok()?;
            let sum = rx.await.ok()?;
            let elapsed = start.elapsed();
            rt.shutdown(Duration::from_secs(60)).await.ok()?;
            crate::skynet_checked(Self::NAME, leaves, sum, elapsed)
        })
    }

    fn ping_pong_one_thread(&self, bounces: u64) -> Option<Duration> {
        // One pair: both sides and the driver on reactor 0.
        self.ping_pong(1, bounces)
    }

    fn skynet_placed(&self, placement: Placement, leaves: u64) -> Option<Duration> {
        placed::skynet(placement, leaves)
    }

    fn deploy_one_by_one(&self, placement: Placement, n: u64) -> Option<(Duration, f64, Duration)> {
        placed::one_by_one(placement, n, false, false)
    }

    fn deploy_one_by_one_shared(&self, n: u64) -> Option<(Duration, f64, Duration)> {
        placed::one_by_one(Placement::Same, n, true, false)
    }

    fn deploy_one_by_one_together(&self, n: u64) -> Option<(Duration, f64, Duration)> {
        placed::one_by_one(Placement::Same, n, false, true)
    }
}
