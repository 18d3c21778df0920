//! The floor: a tokio task per actor reading a bounded `tokio::sync::mpsc` channel (1024), on a
//! 2-worker tokio runtime; asks carry a `oneshot` for the reply. [`TokioLocal`] is the same on
//! a `current_thread` runtime, the floor of the same-thread rows.

mod local;

pub(crate) use local::TokioLocal;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{mpsc, oneshot};

use crate::{
    latencies, on_peer, pipelined, rss_bytes, tick_lateness, until_handled, Placement, System,
};

pub(crate) struct TokioMpsc;

/// A skynet node: a task that spawns its ten children and sends their sum up `up`.
fn node(num: u64, size: u64, up: mpsc::Sender<u64>) {
    tokio::spawn(async move {
        let sum = if size <= 1 {
            num
        } else {
            let (tx, mut rx) = mpsc::channel(crate::FANOUT as usize);
            let size = size / crate::FANOUT;
            for i in 0..crate::FANOUT {
                node(num + i * size, size, tx.clone());
            }
            drop(tx);
            let mut sum = 0;
            while let Some(part) = rx.recv().await {
                sum += part;
            }
            sum
        };
        let _ = up.send(sum).await;
    });
}

// W8 for this row is tokio's own `spawn_blocking` pool.

fn sink(want: u64) -> (mpsc::Sender<u64>, oneshot::Receiver<()>) {
    let (tx, mut rx) = mpsc::channel::<u64>(1024);
    let (done_tx, done) = oneshot::channel();
    tokio::spawn(async move {
        let mut got = 0;
        while rx.recv().await.is_some() {
            got += 1;
            if got == want {
                let _ = done_tx.send(());
                break;
            }
        }
    });
    (tx, done)
}

/// The sending side of an echo actor.
type Tx = mpsc::Sender<(u64, oneshot::Sender<u64>)>;

fn echo() -> Tx {
    let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(1024);
    tokio::spawn(async move {
        while let Some((x, reply)) = rx.recv().await {
            let _ = reply.send(x);
        }
    });
    tx
}

async fn ask(echo: &Tx, i: u64) {
    let (tx, rx) = oneshot::channel();
    if echo.send((i, tx)).await.is_ok() {
        let _ = rx.await;
    }
}

/// W1: `senders` tasks tell `n` numbers in total to one sink task.
async fn tell(senders: u64, n: u64) -> Duration {
    let (tx, done) = sink(n);
    let start = Instant::now();
    for _ in 0..senders {
        let tx = tx.clone();
        tokio::spawn(async move {
            for i in 0..n / senders {
                let _ = tx.send(i).await;
            }
        });
    }
    let _ = done.await;
    start.elapsed()
}

/// W3: one ask outstanding at a time to an echo task.
async fn asks(warmup: u64, n: u64) -> Histogram<u64> {
    let e = echo();
    latencies(warmup, n, |i| ask(&e, i)).await
}

/// W4: `pairs` pairs of tasks bounce a counter.
async fn ping_pong(pairs: u64, bounces: u64) -> Duration {
    let mut starters = Vec::new();
    let mut done = Vec::new();
    for _ in 0..pairs {
        let (a_tx, mut a_rx) = mpsc::channel::<u64>(1024);
        let (b_tx, mut b_rx) = mpsc::channel::<u64>(1024);
        let (done_tx, done_rx) = oneshot::channel();
        let back = a_tx.clone();
        tokio::spawn(async move {
            while let Some(n) = b_rx.recv().await {
                let _ = back.send(n - 1).await;
            }
        });
        tokio::spawn(async move {
            let mut done_tx = Some(done_tx);
            while let Some(n) = a_rx.recv().await {
                if n == 0 {
                    if let Some(d) = done_tx.take() {
                        let _ = d.send(());
                    }
                    break;
                }
                let _ = b_tx.send(n - 1).await;
            }
        });
        starters.push(a_tx);
        done.push(done_rx);
    }
    let start = Instant::now();
    for s in &starters {
        let _ = s.send(bounces & !1).await;
    }
    for d in done {
        let _ = d.await;
    }
    start.elapsed()
}

/// W6 (and W9 for the floor): `n` tasks with a channel each, one message each, then all
/// channels closed and every task awaited.
async fn spawn(n: u64) -> (Duration, f64, Duration) {
    let handled = Arc::new(AtomicU64::new(0));
    let before = rss_bytes();
    let start = Instant::now();
    let actors: Vec<_> = (0..n)
        .map(|_| {
            let (tx, mut rx) = mpsc::channel::<u64>(1024);
            let handled = handled.clone();
            let task = tokio::spawn(async move {
                while rx.recv().await.is_some() {
                    handled.fetch_add(1, Ordering::Relaxed);
                }
            });
            (tx, task)
        })
        .collect();
    let started = start.elapsed();
    let per_actor = rss_bytes().saturating_sub(before) as f64 / n as f64;
    for (tx, _) in &actors {
        let _ = tx.send(0).await;
    }
    until_handled(&handled, n).await;
    let stop = Instant::now();
    let mut tasks = Vec::with_capacity(actors.len());
    for (tx, task) in actors {
        drop(tx);
        tasks.push(task);
    }
    for t in tasks {
        let _ = t.await;
    }
    (started, per_actor, stop.elapsed())
}

/// W7: a tree of tasks over `leaves` leaves; `None` if the sum is wrong.
async fn skynet(name: &'static str, leaves: u64) -> Option<Duration> {
    let start = Instant::now();
    let (tx, mut rx) = mpsc::channel(1);
    node(0, leaves, tx);
    let sum = rx.recv().await?;
    crate::skynet_checked(name, leaves, sum, start.elapsed())
}

impl System for TokioMpsc {
    const NAME: &'static str = "tokio mpsc (floor)";

    fn tell(&self, placement: Placement, senders: u64, n: u64) -> Option<Duration> {
        if placement == Placement::Same {
            return None;
        }
        on_peer(tell(senders, n))
    }

    fn ask(&self, placement: Placement, warmup: u64, n: u64) -> Option<Histogram<u64>> {
        if placement == Placement::Same {
            return None;
        }
        on_peer(asks(warmup, n))
    }

    fn ask_pipelined(&self, n: u64) -> Option<Duration> {
        on_peer(async move {
            let e = echo();
            let elapsed = pipelined(n, e, |e: Tx, i| async move { ask(&e, i).await }).await;
            elapsed
        })
    }

    fn ping_pong(&self, pairs: u64, bounces: u64) -> Option<Duration> {
        on_peer(ping_pong(pairs, bounces))
    }

    fn fan_out(&self, subscribers: u64, publishes: u64) -> Option<Duration> {
        on_peer(async move {
            let mut subs = Vec::new();
            let mut done = Vec::new();
            for _ in 0..subscribers {
                let (tx, mut rx) = mpsc::channel::<Arc<u64>>(1024);
                let (done_tx, done_rx) = oneshot::channel();
                tokio::spawn(async move {
                    let mut got = 0;
                    while rx.recv().await.is_some() {
                        got += 1;
                        if got == publishes {
                            let _ = done_tx.send(());
                            break;
                        }
                    }
                });
                subs.push(tx);
                done.push(done_rx);
            }
            let payload = Arc::new(7u64);
            let start = Instant::now();
            for _ in 0..publishes {
                for s in &subs {
                    let _ = s.send(payload.clone()).await;
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
            let mut txs = Vec::new();
            let mut done = Vec::new();
            for _ in 0..actors {
                let (tx, d) = sink(n / actors);
                txs.push(tx);
                done.push(d);
            }
            let start = Instant::now();
            for i in 0..n {
                let _ = txs[(i % actors) as usize].send(i).await;
            }
            for d in done {
                let _ = d.await;
            }
            start.elapsed()
        })
    }

    fn offload(&self, jobs: u64, busy: Duration) -> Option<(Duration, u64)> {
        on_peer(async move {
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let ticker = tokio::spawn(tick_lateness(stop_rx));
            let start = Instant::now();
            let mut left = jobs;
            while left > 0 {
                let window = left.min(512);
                left -= window;
                let tasks: Vec<_> = (0..window)
                    .map(|_| tokio::task::spawn_blocking(move || crate::busy_work(busy)))
                    .collect();
                for t in tasks {
                    let _ = t.await;
                }
            }
            let elapsed = start.elapsed();
            let _ = stop_tx.send(());
            let late = ticker.await.unwrap_or(0);
            (elapsed, late)
        })
    }

    fn spawn(&self, n: u64) -> Option<(Duration, f64, Duration)> {
        on_peer(spawn(n))
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
        on_peer(skynet(Self::NAME, leaves)).flatten()
    }
}
