//! actix 0.13 on actix-rt: the driver runs on the `System` thread, the actors on two more
//! arbiters (one thread each), so every row is across threads. Mailboxes are set to 1024; a
//! tell uses `try_send` and, when the mailbox is full, waits on `send` for room. W6 and W7
//! start their actors with `Actor::start`, on the thread that starts them (the system thread,
//! or the handler's). [`ActixLocal`] is actix on a bare `System`, everything on its one thread.

mod local;

pub(crate) use local::ActixLocal;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use hdrhistogram::Histogram;
use tokio::sync::oneshot;

use crate::{latencies, pipelined, rss_bytes, until_handled, Placement, System as Sys};

pub(crate) struct Actix;

#[derive(Message)]
#[rtype(result = "()")]
struct Num(u64);

#[derive(Message)]
#[rtype(result = "u64")]
struct Ask(u64);

#[derive(Message, Clone)]
#[rtype(result = "()")]
struct Payload(Arc<u64>);

#[derive(Message)]
#[rtype(result = "()")]
struct Ball(u64);

#[derive(Message)]
#[rtype(result = "()")]
struct Pair(Addr<Ponger>, Option<oneshot::Sender<()>>);

/// Runs `f` on a fresh actix system with two worker arbiters; returns its output.
fn on_actix<F, Fut>(f: F) -> Option<Fut::Output>
where
    F: FnOnce([ArbiterHandle; 2]) -> Fut,
    Fut: std::future::Future,
{
    let system = actix::System::new();
    let arbiters = [Arbiter::new(), Arbiter::new()];
    let handles = [arbiters[0].handle(), arbiters[1].handle()];
    let out = system.block_on(f(handles));
    for a in arbiters {
        a.stop();
        let _ = a.join();
    }
    Some(out)
}

/// Tells `msg`, waiting for room when the mailbox is full.
async fn tell<A, M>(to: &Addr<A>, msg: M)
where
    A: Actor<Context = Context<A>> + Handler<M>,
    M: Message<Result = ()> + Send + 'static,
{
    if let Err(SendError::Full(msg)) = to.try_send(msg) {
        let _ = to.send(msg).await;
    }
}

struct Sink(crate::Tally);

impl Sink {
    fn new(want: u64, done: oneshot::Sender<()>) -> Self {
        Sink(crate::Tally::new(want, done))
    }
}

impl Actor for Sink {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
    }
}

impl Handler<Num> for Sink {
    type Result = ();
    fn handle(&mut self, Num(n): Num, _: &mut Context<Self>) {
        self.0.tick(n);
    }
}

impl Handler<Payload> for Sink {
    type Result = ();
    fn handle(&mut self, Payload(p): Payload, _: &mut Context<Self>) {
        self.0.tick(*p);
    }
}

struct Echo;

impl Actor for Echo {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
    }
}

impl Handler<Ask> for Echo {
    type Result = u64;
    fn handle(&mut self, Ask(x): Ask, _: &mut Context<Self>) -> u64 {
        x
    }
}

#[derive(Default)]
struct Ponger {
    peer: Option<Addr<Ponger>>,
    done: Option<oneshot::Sender<()>>,
}

impl Actor for Ponger {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
    }
}

impl Handler<Pair> for Ponger {
    type Result = ();
    fn handle(&mut self, Pair(peer, done): Pair, _: &mut Context<Self>) {
        self.peer = Some(peer);
        self.done = done;
    }
}

impl Handler<Ball> for Ponger {
    type Result = ();
    fn handle(&mut self, Ball(n): Ball, _: &mut Context<Self>) {
        if n == 0 {
            if let Some(d) = self.done.take() {
                let _ = d.send(());
            }
        } else if let Some(peer) = &self.peer {
            peer.do_send(Ball(n - 1));
        }
    }
}

struct Tiny {
    handled: Arc<AtomicU64>,
    stopped: Arc<AtomicU64>,
}

impl Actor for Tiny {
    type Context = Context<Self>;
    fn stopped(&mut self, _: &mut Context<Self>) {
        self.stopped.fetch_add(1, Ordering::Relaxed);
    }
}

impl Handler<Num> for Tiny {
    type Result = ();
    fn handle(&mut self, Num(n): Num, _: &mut Context<Self>) {
        self.handled.fetch_add(1 + n, Ordering::Relaxed);
    }
}

/// A skynet node: it keeps its children's addresses until they have reported, then stops.
#[derive(Default)]
struct Node {
    sum: u64,
    waiting: u64,
    parent: Option<Addr<Node>>,
    report: Option<oneshot::Sender<u64>>,
    children: Vec<Addr<Node>>,
}

impl Actor for Node {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Grow {
    num: u64,
    size: u64,
    parent: Option<Addr<Node>>,
    report: Option<oneshot::Sender<u64>>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Part(u64);

impl Node {
    fn part(&mut self, n: u64, ctx: &mut Context<Self>) {
        self.sum += n;
        self.waiting -= 1;
        if self.waiting > 0 {
            return;
        }
        self.children.clear();
        if let Some(parent) = self.parent.take() {
            parent.do_send(Part(self.sum));
        }
        if let Some(report) = self.report.take() {
            let _ = report.send(self.sum);
        }
        ctx.stop();
    }
}

impl Handler<Grow> for Node {
    type Result = ();
    fn handle(&mut self, g: Grow, ctx: &mut Context<Self>) {
        self.parent = g.parent;
        self.report = g.report;
        if g.size <= 1 {
            self.waiting = 1;
            self.part(g.num, ctx);
            return;
        }
        self.waiting = crate::FANOUT;
        let size = g.size / crate::FANOUT;
        for i in 0..crate::FANOUT {
            let child = Node::default().start();
            child.do_send(Grow {
                num: g.num + i * size,
                size,
                parent: Some(ctx.address()),
                report: None,
            });
            self.children.push(child);
        }
    }
}

impl Handler<Part> for Node {
    type Result = ();
    fn handle(&mut self, Part(n): Part, ctx: &mut Context<Self>) {
        self.part(n, ctx);
    }
}

/// W6 (and W9): `n` actors started with `Actor::start` on this thread, one message each, then
/// every address dropped and every actor's stop awaited.
async fn spawn_tiny(n: u64) -> (Duration, f64, Duration) {
    let handled = Arc::new(AtomicU64::new(0));
    let stopped = Arc::new(AtomicU64::new(0));
    let before = rss_bytes();
    let start = Instant::now();
    let actors: Vec<_> = (0..n)
        .map(|_| {
            Tiny {
                handled: handled.clone(),
                stopped: stopped.clone(),
            }
            .start()
        })
        .collect();
    // Actors start on the next turn of this thread's scheduler.
    actix_rt::task::yield_now().await;
    let started = start.elapsed();
    let per_actor = rss_bytes().saturating_sub(before) as f64 / n as f64;
    for a in &actors {
        a.do_send(Num(0));
    }
    until_handled(&handled, n).await;
    let stop = Instant::now();
    drop(actors);
    until_handled(&stopped, n).await;
    (started, per_actor, stop.elapsed())
}

/// W7: the tree started from this thread (every node starts its children on its own thread).
async fn skynet(name: &'static str, leaves: u64) -> Option<Duration> {
    let start = Instant::now();
    let (tx, rx) = oneshot::channel();
    let root = Node::default().start();
    root.do_send(Grow {
        num: 0,
        size: leaves,
        parent: None,
        report: Some(tx),
    });
    let sum = rx.await.ok()?;
    crate::skynet_checked(name, leaves, sum, start.elapsed())
}

impl Sys for Actix {
    const NAME: &'static str = "actix";

    fn tell(&self, placement: Placement, senders: u64, n: u64) -> Option<Duration> {
        if placement == Placement::Same {
            return None;
        }
        on_actix(|[a, _]| async move {
            let (tx, rx) = oneshot::channel();
            let sink = Sink::start_in_arbiter(&a, move |_| Sink::new(n, tx));
            let start = Instant::now();
            for _ in 0..senders {
                let sink = sink.clone();
                actix::spawn(async move {
                    for i in 0..n / senders {
                        tell(&sink, Num(i)).await;
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
        on_actix(|[a, _]| async move {
            let echo = Echo::start_in_arbiter(&a, |_| Echo);
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
        on_actix(|[a, _]| async move {
            let echo = Echo::start_in_arbiter(&a, |_| Echo);
            pipelined(n, echo, |echo: Addr<Echo>, i| async move {
                let _ = echo.send(Ask(i)).await;
            })
            .await
        })
    }

    fn ping_pong(&self, pairs: u64, bounces: u64) -> Option<Duration> {
        on_actix(|arbiters| async move {
            let mut starters = Vec::new();
            let mut done = Vec::new();
            for p in 0..pairs {
                // As for Fluxor: the two sides of a pair share a thread; pairs alternate.
                let arbiter = &arbiters[p as usize % 2];
                let (tx, rx) = oneshot::channel();
                let ping = Ponger::start_in_arbiter(arbiter, |_| Ponger::default());
                let pong = Ponger::start_in_arbiter(arbiter, |_| Ponger::default());
                let _ = ping.send(Pair(pong.clone(), Some(tx))).await;
                let _ = pong.send(Pair(ping.clone(), None)).await;
                starters.push(ping);
                done.push(rx);
            }
            let start = Instant::now();
            for p in &starters {
                p.do_send(Ball(bounces & !1));
            }
            for d in done {
                let _ = d.await;
            }
            start.elapsed()
        })
    }

    fn fan_out(&self, subscribers: u64, publishes: u64) -> Option<Duration> {
        on_actix(|arbiters| async move {
            let mut subs = Vec::new();
            let mut done = Vec::new();
            for i in 0..subscribers {
                let (tx, rx) = oneshot::channel();
                let arbiter = &arbiters[i as usize % 2];
                subs.push(Sink::start_in_arbiter(arbiter, move |_| {
                    Sink::new(publishes, tx)
                }));
                done.push(rx);
            }
            let payload = Arc::new(1u64);
            let start = Instant::now();
            for _ in 0..publishes {
                for s in &subs {
                    tell(s, Payload(payload.clone())).await;
                }
            }
            for d in done {
                let _ = d.await;
            }
            start.elapsed()
        })
    }

    fn round_robin(&self, actors: u64, n: u64) -> Option<Duration> {
        on_actix(|arbiters| async move {
            let mut refs = Vec::new();
            let mut done = Vec::new();
            for i in 0..actors {
                let (tx, rx) = oneshot::channel();
                let arbiter = &arbiters[i as usize % 2];
                refs.push(Sink::start_in_arbiter(arbiter, move |_| {
                    Sink::new(n / actors, tx)
                }));
                done.push(rx);
            }
            let start = Instant::now();
            for i in 0..n {
                tell(&refs[(i % actors) as usize], Num(i)).await;
            }
            for d in done {
                let _ = d.await;
            }
            start.elapsed()
        })
    }

    fn offload(&self, _jobs: u64, _busy: Duration) -> Option<(Duration, u64)> {
        None
    }

    fn spawn(&self, n: u64) -> Option<(Duration, f64, Duration)> {
        on_actix(|_| spawn_tiny(n))
    }

    fn skynet(&self, leaves: u64) -> Option<Duration> {
        on_actix(|_| skynet(Self::NAME, leaves)).flatten()
    }
}
