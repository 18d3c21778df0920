//! xtra 0.6 on a 2-worker tokio runtime; bounded mailboxes of 1024.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::oneshot;
use xtra::{Actor, Address, Context, Handler, Mailbox};

use crate::{latencies, on_peer, pipelined, rss_bytes, until_handled, Placement, System};

pub(crate) struct Xtra;

struct Num(u64);
struct Ask(u64);
#[derive(Clone)]
struct Payload(Arc<u64>);
struct Ball(u64);
struct Pair(Address<Ponger>, Option<oneshot::Sender<()>>);

struct Sink(crate::Tally);

impl Sink {
    fn new(want: u64, done: oneshot::Sender<()>) -> Self {
        Sink(crate::Tally::new(want, done))
    }
}

impl Actor for Sink {
    type Stop = ();
    async fn stopped(self) {}
}

impl Handler<Num> for Sink {
    type Return = ();
    async fn handle(&mut self, Num(n): Num, _: &mut Context<Self>) {
        self.0.tick(n);
    }
}

impl Handler<Payload> for Sink {
    type Return = ();
    async fn handle(&mut self, Payload(p): Payload, _: &mut Context<Self>) {
        self.0.tick(*p);
    }
}

struct Echo;

impl Actor for Echo {
    type Stop = ();
    async fn stopped(self) {}
}

impl Handler<Ask> for Echo {
    type Return = u64;
    async fn handle(&mut self, Ask(x): Ask, _: &mut Context<Self>) -> u64 {
        x
    }
}

#[derive(Default)]
struct Ponger {
    peer: Option<Address<Ponger>>,
    done: Option<oneshot::Sender<()>>,
}

impl Actor for Ponger {
    type Stop = ();
    async fn stopped(self) {}
}

impl Handler<Pair> for Ponger {
    type Return = ();
    async fn handle(&mut self, Pair(peer, done): Pair, _: &mut Context<Self>) {
        self.peer = Some(peer);
        self.done = done;
    }
}

impl Handler<Ball> for Ponger {
    type Return = ();
    async fn handle(&mut self, Ball(n): Ball, _: &mut Context<Self>) {
        if n == 0 {
            if let Some(d) = self.done.take() {
                let _ = d.send(());
            }
        } else if let Some(peer) = &self.peer {
            let _ = peer.send(Ball(n - 1)).detach().await;
        }
    }
}

struct Tiny {
    handled: Arc<AtomicU64>,
}

impl Actor for Tiny {
    type Stop = ();
    async fn stopped(self) {}
}

impl Handler<Num> for Tiny {
    type Return = ();
    async fn handle(&mut self, Num(n): Num, _: &mut Context<Self>) {
        self.handled.fetch_add(1 + n, Ordering::Relaxed);
    }
}

fn spawn<A: Actor<Stop = ()>>(actor: A) -> Address<A> {
    xtra::spawn_tokio(actor, Mailbox::bounded(1024))
}

/// A skynet node; it keeps its children's addresses until they have reported, then stops.
#[derive(Default)]
struct Node {
    sum: u64,
    waiting: u64,
    parent: Option<Address<Node>>,
    report: Option<oneshot::Sender<u64>>,
    children: Vec<Address<Node>>,
}

impl Actor for Node {
    type Stop = ();
    async fn stopped(self) {}
}

struct Grow {
    num: u64,
    size: u64,
    parent: Option<Address<Node>>,
    report: Option<oneshot::Sender<u64>>,
}

struct Part(u64);

impl Handler<Grow> for Node {
    type Return = ();
    async fn handle(&mut self, g: Grow, ctx: &mut Context<Self>) {
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
                .send(Grow {
                    num: g.num + i * size,
                    size,
                    parent: ctx.mailbox().address().try_upgrade(),
                    report: None,
                })
                .detach()
                .await;
            self.children.push(child);
        }
    }
}

impl Node {
    async fn part(&mut self, n: u64, ctx: &mut Context<Self>) {
        self.sum += n;
        self.waiting -= 1;
        if self.waiting > 0 {
            return;
        }
        self.children.clear();
        if let Some(parent) = self.parent.take() {
            let _ = parent.send(Part(self.sum)).detach().await;
        }
        if let Some(report) = self.report.take() {
            let _ = report.send(self.sum);
        }
        ctx.stop_self();
    }
}

impl Handler<Part> for Node {
    type Return = ();
    async fn handle(&mut self, Part(n): Part, ctx: &mut Context<Self>) {
        self.part(n, ctx).await;
    }
}

impl System for Xtra {
    const NAME: &'static str = "xtra";

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
                        let _ = sink.send(Num(i)).detach().await;
                    }
                });
            }
            let _ = rx.await;
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
                let _ = refs[(i % actors) as usize].send(Num(i)).detach().await;
            }
            for d in done {
                let _ = d.await;
            }
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
                    let _ = echo.send(Ask(i)).await;
                }
            })
            .await
        })
    }

    fn ask_pipelined(&self, n: u64) -> Option<Duration> {
        on_peer(async move {
            let echo = spawn(Echo);
            let elapsed = pipelined(n, echo, |echo: Address<Echo>, i| async move {
                let _ = echo.send(Ask(i)).await;
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
                let a = spawn(Ponger::default());
                let b = spawn(Ponger::default());
                let (tx, rx) = oneshot::channel();
                let _ = a.send(Pair(b.clone(), Some(tx))).await;
                let _ = b.send(Pair(a.clone(), None)).await;
                starters.push(a);
                done.push(rx);
            }
            let start = Instant::now();
            for s in &starters {
                let _ = s.send(Ball(bounces & !1)).detach().await;
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
                    let _ = s.send(payload.clone()).detach().await;
                }
            }
            for d in done {
                let _ = d.await;
            }
            start.elapsed()
        })
    }

    fn offload(&self, _: u64, _: Duration) -> Option<(Duration, u64)> {
        // xtra has no blocking pool of its own: its users call tokio's, measured as the floor.
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
                let _ = a.send(Num(0)).detach().await;
            }
            until_handled(&handled, n).await;
            let stop = Instant::now();
            let joins: Vec<_> = actors.iter().map(Address::join).collect();
            drop(actors);
            for j in joins {
                j.await;
            }
            (started, per_actor, stop.elapsed())
        })
    }

    fn deploy_one_by_one(&self, placement: Placement, n: u64) -> Option<(Duration, f64, Duration)> {
        // W9 for a peer is W6 again: it starts each actor on its own anyway, wherever the
        // runtime's scheduler puts it (its default placement).
        if placement != Placement::Default {
            return None;
        }
        self.spawn(n)
    }

    fn skynet(&self, leaves: u64) -> Option<Duration> {
        on_peer(async move {
            let start = Instant::now();
            let (tx, rx) = oneshot::channel();
            let root = spawn(Node::default());
            let _ = root
                .send(Grow {
                    num: 0,
                    size: leaves,
                    parent: None,
                    report: Some(tx),
                })
                .detach()
                .await;
            let sum = rx.await.ok()?;
            crate::skynet_checked(Self::NAME, leaves, sum, start.elapsed())
        })
        .flatten()
    }
}
