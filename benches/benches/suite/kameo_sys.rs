//! kameo 0.22 on a 2-worker tokio runtime; bounded mailboxes of 1024.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kameo::actor::{ActorRef, Spawn};
use kameo::mailbox;
use kameo::message::{Context, Message};
use kameo::Actor;
use tokio::sync::oneshot;

use crate::{latencies, on_peer, pipelined, rss_bytes, until_handled, Placement, System};

pub(crate) struct Kameo;

struct Num(u64);
struct Ask(u64);
#[derive(Clone)]
struct Payload(Arc<u64>);
struct Ball(u64);

#[derive(Actor)]
struct Sink(crate::Tally);

impl Sink {
    fn new(want: u64, done: oneshot::Sender<()>) -> Self {
        Sink(crate::Tally::new(want, done))
    }
}

impl Message<Num> for Sink {
    type Reply = ();
    async fn handle(&mut self, Num(n): Num, _: &mut Context<Self, ()>) {
        self.0.tick(n);
    }
}

impl Message<Payload> for Sink {
    type Reply = ();
    async fn handle(&mut self, Payload(p): Payload, _: &mut Context<Self, ()>) {
        self.0.tick(*p);
    }
}

#[derive(Actor)]
struct Echo;

impl Message<Ask> for Echo {
    type Reply = u64;
    async fn handle(&mut self, Ask(x): Ask, _: &mut Context<Self, u64>) -> u64 {
        x
    }
}

#[derive(Actor)]
struct Ponger {
    peer: Option<ActorRef<Ponger>>,
    done: Option<oneshot::Sender<()>>,
}

struct Pair(ActorRef<Ponger>, Option<oneshot::Sender<()>>);

impl Message<Pair> for Ponger {
    type Reply = ();
    async fn handle(&mut self, Pair(peer, done): Pair, _: &mut Context<Self, ()>) {
        self.peer = Some(peer);
        self.done = done;
    }
}

impl Message<Ball> for Ponger {
    type Reply = ();
    async fn handle(&mut self, Ball(n): Ball, _: &mut Context<Self, ()>) {
        if n == 0 {
            if let Some(d) = self.done.take() {
                let _ = d.send(());
            }
        } else if let Some(peer) = &self.peer {
            let _ = peer.tell(Ball(n - 1)).await;
        }
    }
}

#[derive(Actor)]
struct Tiny {
    handled: Arc<AtomicU64>,
}

impl Message<Num> for Tiny {
    type Reply = ();
    async fn handle(&mut self, Num(n): Num, _: &mut Context<Self, ()>) {
        self.handled.fetch_add(1 + n, Ordering::Relaxed);
    }
}

fn spawn<A: Actor<Args = A>>(actor: A) -> ActorRef<A> {
    A::spawn_with_mailbox(actor, mailbox::bounded(1024))
}

/// A skynet node; it keeps its children's refs until they have reported, then stops.
#[derive(Actor, Default)]
struct Node {
    sum: u64,
    waiting: u64,
    parent: Option<ActorRef<Node>>,
    report: Option<oneshot::Sender<u64>>,
    children: Vec<ActorRef<Node>>,
}

struct Grow {
    num: u64,
    size: u64,
    parent: Option<ActorRef<Node>>,
    report: Option<oneshot::Sender<u64>>,
}

struct Part(u64);

impl Message<Grow> for Node {
    type Reply = ();
    async fn handle(&mut self, g: Grow, ctx: &mut Context<Self, ()>) {
        self.parent = g.parent;
        self.report = g.report;
        if g.size <= 1 {
            self.waiting = 1;
            self.part(g.num, ctx).await;
            return;
        }
        self.waiting = crate::FANOUT;
        let size = g.size / crate::FANOUT;
        for i in 0..crate::FANOUT {
            let child = spawn(Node::default());
            let _ = child
                .tell(Grow {
                    num: g.num + i * size,
                    size,
                    parent: Some(ctx.actor_ref().clone()),
                    report: None,
                })
                .await;
            self.children.push(child);
        }
    }
}

impl Node {
    async fn part(&mut self, n: u64, ctx: &mut Context<Self, ()>) {
        self.sum += n;
        self.waiting -= 1;
        if self.waiting > 0 {
            return;
        }
        self.children.clear();
        if let Some(parent) = self.parent.take() {
            let _ = parent.tell(Part(self.sum)).await;
        }
        if let Some(report) = self.report.take() {
            let _ = report.send(self.sum);
        }
        ctx.stop();
    }
}

impl Message<Part> for Node {
    type Reply = ();
    async fn handle(&mut self, Part(n): Part, ctx: &mut Context<Self, ()>) {
        self.part(n, ctx).await;
    }
}

impl System for Kameo {
    const NAME: &'static str = "kameo";

    fn tell(&self, placement: Placement, senders: u64, n: u64) -> Option<Duration> {
        if placement == Placement::Same {
            return None;
        }
        on_peer(async move {
            let (tx, rx) = oneshot::channel();
            let sink = spawn(Sink::new(n, tx));
            let start = Instant::now();
            for _ in 0..senders {
                let sink = sink.clone();
                tokio::spawn(async move {
                    for i in 0..n / senders {
                        let _ = sink.tell(Num(i)).await;
                    }
                });
            }
            let _ = rx.await;
            start.elapsed()
        })
    }

    fn ask(&self, placement: Placement, warmup: u64, n: u64) -> Option<Histogram<u64>> {
        if placement == Placement::Same {
            return None;
        }
        on_peer(async move {
            let echo = spawn(Echo);
            latencies(warmup, n, |i| {
                let echo = &echo;
                async move {
                    let _ = echo.ask(Ask(i)).await;
                }
            })
            .await
        })
    }

    fn ask_pipelined(&self, n: u64) -> Option<Duration> {
        on_peer(async move {
            let echo = spawn(Echo);
            let elapsed = pipelined(n, echo, |echo: ActorRef<Echo>, i| async move {
                let _ = echo.ask(Ask(i)).await;
            })
            .await;
            elapsed
        })
    }

    fn ping_pong(&self, pairs: u64, bounces: u64) -> Option<Duration> {
        on_peer(async move {
            let mut starters = Vec::new();
            let mut done = Vec::new();
            for _ in 0..pairs {
                let a = spawn(Ponger {
                    peer: None,
                    done: None,
                });
                let b = spawn(Ponger {
                    peer: None,
                    done: None,
                });
                let (tx, rx) = oneshot::channel();
                let _ = a.ask(Pair(b.clone(), Some(tx))).await;
                let _ = b.ask(Pair(a.clone(), None)).await;
                starters.push(a);
                done.push(rx);
            }
            let start = Instant::now();
            for s in &starters {
                let _ = s.tell(Ball(bounces & !1)).await;
            }
            for d in done {
                let _ = d.await;
            }
            start.elapsed()
        })
    }

    fn fan_out(&self, subscribers: u64, publishes: u64) -> Option<Duration> {
        on_peer(async move {
            let mut subs = Vec::new();
            let mut done = Vec::new();
            for _ in 0..subscribers {
                let (tx, rx) = oneshot::channel();
                subs.push(spawn(Sink::new(publishes, tx)));
                done.push(rx);
            }
            let payload = Payload(Arc::new(7));
            let start = Instant::now();
            for _ in 0..publishes {
                for s in &subs {
                    let _ = s.tell(payload.clone()).await;
                }
            }
            for d in done {
                let _ = d.await;
            }
            start.elapsed()
        })
    }

    fn round_robin(&self, actors: u64, n: u64) -> Option<Duration> {
        on_peer(async move {
            let mut refs = Vec::new();
            let mut done = Vec::new();
            for _ in 0..actors {
                let (tx, rx) = oneshot::channel();
                refs.push(spawn(Sink::new(n / actors, tx)));
                done.push(rx);
            }
            let start = Instant::now();
            for i in 0..n {
                let _ = refs[(i % actors) as usize].tell(Num(i)).await;
            }
            for d in done {
                let _ = d.await;
            }
            start.elapsed()
        })
    }

    fn offload(&self, _: u64, _: Duration) -> Option<(Duration, u64)> {
        // kameo has no blocking pool of its own: its users call tokio's, measured as the floor.
        None
    }

    fn spawn(&self, n: u64) -> Option<(Duration, f64, Duration)> {
        on_peer(async move {
            let handled = Arc::new(AtomicU64::new(0));
            let before = rss_bytes();
            let start = Instant::now();
            let actors: Vec<_> = (0..n)
                .map(|_| {
                    spawn(Tiny {
                        handled: handled.clone(),
                    })
                })
                .collect();
            let started = start.elapsed();
            let per_actor = rss_bytes().saturating_sub(before) as f64 / n as f64;
            for a in &actors {
                let _ = a.tell(Num(0)).await;
            }
            until_handled(&handled, n).await;
            let stop = Instant::now();
            for a in &actors {
                a.kill();
            }
            for a in &actors {
                a.wait_for_shutdown().await;
            }
            (started, per_actor, stop.elapsed())
        })
    }

    fn skynet(&self, leaves: u64) -> Option<Duration> {
        on_peer(async move {
            let start = Instant::now();
            let (tx, rx) = oneshot::channel();
            let root = spawn(Node::default());
            let _ = root
                .tell(Grow {
                    num: 0,
                    size: leaves,
                    parent: None,
                    report: Some(tx),
                })
                .await;
            let sum = rx.await.ok()?;
            crate::skynet_checked(Self::NAME, leaves, sum, start.elapsed())
        })
        .flatten()
    }
}
