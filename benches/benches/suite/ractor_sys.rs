//! ractor 0.16 on a 2-worker tokio runtime (its mailboxes are unbounded).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::oneshot;

use crate::{latencies, on_peer, pipelined, rss_bytes, until_handled, Placement, System};

pub(crate) struct Ractor;

struct Sink;

enum SinkMsg {
    Num(u64),
    Payload(Arc<u64>),
}

struct SinkState {
    sum: u64,
    got: u64,
    want: u64,
    done: Option<oneshot::Sender<()>>,
}

impl Actor for Sink {
    type Msg = SinkMsg;
    type State = SinkState;
    type Arguments = (u64, oneshot::Sender<()>);

    async fn pre_start(
        &self,
        _: ActorRef<SinkMsg>,
        (want, done): (u64, oneshot::Sender<()>),
    ) -> Result<SinkState, ActorProcessingErr> {
        Ok(SinkState {
            sum: 0,
            got: 0,
            want,
            done: Some(done),
        })
    }

    async fn handle(
        &self,
        _: ActorRef<SinkMsg>,
        msg: SinkMsg,
        s: &mut SinkState,
    ) -> Result<(), ActorProcessingErr> {
        let value = match msg {
            SinkMsg::Num(n) => n,
            SinkMsg::Payload(p) => *p,
        };
        s.sum = s.sum.wrapping_add(value);
        {
            {
                s.got += 1;
                if s.got == s.want {
                    if let Some(d) = s.done.take() {
                        let _ = d.send(());
                    }
                }
            }
        }
        Ok(())
    }
}

struct Echo;

enum EchoMsg {
    Ask(u64, RpcReplyPort<u64>),
}

impl Actor for Echo {
    type Msg = EchoMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<EchoMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<EchoMsg>,
        msg: EchoMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let EchoMsg::Ask(x, reply) = msg;
        let _ = reply.send(x);
        Ok(())
    }
}

async fn ask(echo: &ActorRef<EchoMsg>, i: u64) {
    let _ = echo.call(|port| EchoMsg::Ask(i, port), None).await;
}

struct Ponger;

enum PongMsg {
    Pair(ActorRef<PongMsg>, Option<oneshot::Sender<()>>),
    Ball(u64),
}

#[derive(Default)]
struct PongState {
    peer: Option<ActorRef<PongMsg>>,
    done: Option<oneshot::Sender<()>>,
}

impl Actor for Ponger {
    type Msg = PongMsg;
    type State = PongState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<PongMsg>,
        _: (),
    ) -> Result<PongState, ActorProcessingErr> {
        Ok(PongState::default())
    }

    async fn handle(
        &self,
        _: ActorRef<PongMsg>,
        msg: PongMsg,
        s: &mut PongState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PongMsg::Pair(peer, done) => {
                s.peer = Some(peer);
                s.done = done;
            }
            PongMsg::Ball(0) => {
                if let Some(d) = s.done.take() {
                    let _ = d.send(());
                }
            }
            PongMsg::Ball(n) => {
                if let Some(peer) = &s.peer {
                    let _ = peer.cast(PongMsg::Ball(n - 1));
                }
            }
        }
        Ok(())
    }
}

struct Tiny;

impl Actor for Tiny {
    type Msg = ();
    type State = Arc<AtomicU64>;
    type Arguments = Arc<AtomicU64>;

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        handled: Arc<AtomicU64>,
    ) -> Result<Arc<AtomicU64>, ActorProcessingErr> {
        Ok(handled)
    }

    async fn handle(
        &self,
        _: ActorRef<()>,
        _: (),
        handled: &mut Arc<AtomicU64>,
    ) -> Result<(), ActorProcessingErr> {
        handled.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// A skynet node; it stops once it has reported up.
struct Node;

enum NodeMsg {
    Grow {
        num: u64,
        size: u64,
        parent: Option<ActorRef<NodeMsg>>,
        report: Option<oneshot::Sender<u64>>,
    },
    Part(u64),
}

#[derive(Default)]
struct NodeState {
    sum: u64,
    waiting: u64,
    parent: Option<ActorRef<NodeMsg>>,
    report: Option<oneshot::Sender<u64>>,
}

impl Actor for Node {
    type Msg = NodeMsg;
    type State = NodeState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<NodeMsg>,
        _: (),
    ) -> Result<NodeState, ActorProcessingErr> {
        Ok(NodeState::default())
    }

    async fn handle(
        &self,
        myself: ActorRef<NodeMsg>,
        msg: NodeMsg,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        let n = match msg {
            NodeMsg::Grow {
                num,
                size,
                parent,
                report,
            } => {
                state.parent = parent;
                state.report = report;
                if size > 1 {
                    state.waiting = crate::FANOUT;
                    let size = size / crate::FANOUT;
                    for i in 0..crate::FANOUT {
                        let (child, _) = Actor::spawn(None, Node, ()).await?;
                        child.cast(NodeMsg::Grow {
                            num: num + i * size,
                            size,
                            parent: Some(myself.clone()),
                            report: None,
                        })?;
                    }
                    return Ok(());
                }
                state.waiting = 1;
                num
            }
            NodeMsg::Part(n) => n,
        };
        state.sum += n;
        state.waiting -= 1;
        if state.waiting == 0 {
            if let Some(parent) = state.parent.take() {
                parent.cast(NodeMsg::Part(state.sum))?;
            }
            if let Some(report) = state.report.take() {
                let _ = report.send(state.sum);
            }
            myself.stop(None);
        }
        Ok(())
    }
}

impl System for Ractor {
    const NAME: &'static str = "ractor";

    fn tell(&self, placement: Placement, senders: u64, n: u64) -> Option<Duration> {
        if placement == Placement::Same {
            return None;
        }
        on_peer(async move {
            let (tx, rx) = oneshot::channel();
            let (sink, _) = Actor::spawn(None, Sink, (n, tx)).await.ok()?;
            let start = Instant::now();
            for _ in 0..senders {
                let sink = sink.clone();
                tokio::spawn(async move {
                    for i in 0..n / senders {
                        let _ = sink.cast(SinkMsg::Num(i));
                    }
                });
            }
            let _ = rx.await;
            let d = start.elapsed();
            sink.stop(None);
            Some(d)
        })
        .flatten()
    }

    fn ask(&self, placement: Placement, warmup: u64, n: u64) -> Option<Histogram<u64>> {
        if placement == Placement::Same {
            return None;
        }
        on_peer(async move {
            let (echo, _) = Actor::spawn(None, Echo, ()).await.ok()?;
            let h = latencies(warmup, n, |i| ask(&echo, i)).await;
            echo.stop(None);
            Some(h)
        })
        .flatten()
    }

    fn ask_pipelined(&self, n: u64) -> Option<Duration> {
        on_peer(async move {
            let (echo, _) = Actor::spawn(None, Echo, ()).await.ok()?;
            let elapsed = pipelined(n, echo.clone(), |echo: ActorRef<EchoMsg>, i| async move {
                ask(&echo, i).await;
            })
            .await;
            echo.stop(None);
            Some(elapsed)
        })
        .flatten()
    }

    fn ping_pong(&self, pairs: u64, bounces: u64) -> Option<Duration> {
        on_peer(async move {
            let mut starters = Vec::new();
            let mut all = Vec::new();
            let mut done = Vec::new();
            for _ in 0..pairs {
                let (a, _) = Actor::spawn(None, Ponger, ()).await.ok()?;
                let (b, _) = Actor::spawn(None, Ponger, ()).await.ok()?;
                let (tx, rx) = oneshot::channel();
                a.cast(PongMsg::Pair(b.clone(), Some(tx))).ok()?;
                b.cast(PongMsg::Pair(a.clone(), None)).ok()?;
                starters.push(a.clone());
                all.push(a);
                all.push(b);
                done.push(rx);
            }
            let start = Instant::now();
            for s in &starters {
                let _ = s.cast(PongMsg::Ball(bounces & !1));
            }
            for d in done {
                let _ = d.await;
            }
            let d = start.elapsed();
            for a in all {
                a.stop(None);
            }
            Some(d)
        })
        .flatten()
    }

    fn fan_out(&self, subscribers: u64, publishes: u64) -> Option<Duration> {
        on_peer(async move {
            let mut subs = Vec::new();
            let mut done = Vec::new();
            for _ in 0..subscribers {
                let (tx, rx) = oneshot::channel();
                let (s, _) = Actor::spawn(None, Sink, (publishes, tx)).await.ok()?;
                subs.push(s);
                done.push(rx);
            }
            let payload = Arc::new(7u64);
            let start = Instant::now();
            for _ in 0..publishes {
                for s in &subs {
                    let _ = s.cast(SinkMsg::Payload(payload.clone()));
                }
            }
            for d in done {
                let _ = d.await;
            }
            let d = start.elapsed();
            for s in subs {
                s.stop(None);
            }
            Some(d)
        })
        .flatten()
    }

    fn round_robin(&self, actors: u64, n: u64) -> Option<Duration> {
        on_peer(async move {
            let mut refs = Vec::new();
            let mut done = Vec::new();
            for _ in 0..actors {
                let (tx, rx) = oneshot::channel();
                let (s, _) = Actor::spawn(None, Sink, (n / actors, tx)).await.ok()?;
                refs.push(s);
                done.push(rx);
            }
            let start = Instant::now();
            for i in 0..n {
                let _ = refs[(i % actors) as usize].cast(SinkMsg::Num(i));
            }
            for d in done {
                let _ = d.await;
            }
            let d = start.elapsed();
            for r in refs {
                r.stop(None);
            }
            Some(d)
        })
        .flatten()
    }

    fn offload(&self, _: u64, _: Duration) -> Option<(Duration, u64)> {
        // ractor has no blocking pool of its own: its users call tokio's, measured as the floor.
        None
    }

    fn spawn(&self, n: u64) -> Option<(Duration, f64, Duration)> {
        on_peer(async move {
            let handled = Arc::new(AtomicU64::new(0));
            let before = rss_bytes();
            let start = Instant::now();
            let mut actors = Vec::with_capacity(n as usize);
            for _ in 0..n {
                actors.push(Actor::spawn(None, Tiny, handled.clone()).await.ok()?);
            }
            let started = start.elapsed();
            let per_actor = rss_bytes().saturating_sub(before) as f64 / n as f64;
            for (a, _) in &actors {
                let _ = a.cast(());
            }
            until_handled(&handled, n).await;
            let stop = Instant::now();
            let mut joins = Vec::with_capacity(actors.len());
            for (a, j) in actors {
                a.stop(None);
                joins.push(j);
            }
            for j in joins {
                let _ = j.await;
            }
            Some((started, per_actor, stop.elapsed()))
        })
        .flatten()
    }

    fn skynet(&self, leaves: u64) -> Option<Duration> {
        on_peer(async move {
            let start = Instant::now();
            let (tx, rx) = oneshot::channel();
            let (root, _) = Actor::spawn(None, Node, ()).await.ok()?;
            root.cast(NodeMsg::Grow {
                num: 0,
                size: leaves,
                parent: None,
                report: Some(tx),
            })
            .ok()?;
            let sum = rx.await.ok()?;
            crate::skynet_checked(Self::NAME, leaves, sum, start.elapsed())
        })
        .flatten()
    }
}
