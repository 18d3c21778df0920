//! A second floor: OS threads and bounded `crossbeam-channel` channels (1024), no runtime at
//! all. It runs the workloads where one thread per actor is reasonable: tell, ask and
//! ping-pong.

use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use hdrhistogram::Histogram;

use crate::{histogram, Placement, System};

pub(crate) struct Crossbeam;

/// An echo thread: answers each `(x, reply)` with `x` until its channel closes.
fn echo() -> (Sender<(u64, Sender<u64>)>, thread::JoinHandle<()>) {
    let (tx, rx) = bounded::<(u64, Sender<u64>)>(1024);
    let join = thread::spawn(move || {
        for (x, reply) in rx {
            let _ = reply.send(x);
        }
    });
    (tx, join)
}

/// Bounces a counter with `peer` until it reaches zero.
fn bounce(rx: Receiver<u64>, peer: Sender<u64>) {
    for n in rx {
        if n == 0 || peer.send(n - 1).is_err() {
            break;
        }
    }
}

impl System for Crossbeam {
    const NAME: &'static str = "crossbeam (floor)";

    fn tell(&self, placement: Placement, senders: u64, n: u64) -> Option<Duration> {
        if placement == Placement::Same {
            return None;
        }
        let (tx, rx) = bounded::<u64>(1024);
        let start = Instant::now();
        let receiver = thread::spawn(move || {
            let mut sum = 0u64;
            for _ in 0..n - n % senders {
                sum = sum.wrapping_add(rx.recv().ok()?);
            }
            Some(sum)
        });
        let senders: Vec<_> = (0..senders)
            .map(|_| {
                let tx = tx.clone();
                thread::spawn(move || {
                    for i in 0..n / senders.max(1) {
                        let _ = tx.send(i);
                    }
                })
            })
            .collect();
        receiver.join().ok()??;
        let elapsed = start.elapsed();
        for s in senders {
            let _ = s.join();
        }
        Some(elapsed)
    }

    fn ask(&self, placement: Placement, warmup: u64, n: u64) -> Option<Histogram<u64>> {
        if placement == Placement::Same {
            return None;
        }
        let (tx, join) = echo();
        let (reply_tx, reply_rx) = bounded(1);
        for i in 0..warmup {
            tx.send((i, reply_tx.clone())).ok()?;
            reply_rx.recv().ok()?;
        }
        let mut h = histogram();
        for i in 0..n {
            let t = Instant::now();
            tx.send((i, reply_tx.clone())).ok()?;
            reply_rx.recv().ok()?;
            let _ = h.record(t.elapsed().as_nanos() as u64);
        }
        drop(tx);
        let _ = join.join();
        Some(h)
    }

    fn ask_pipelined(&self, _n: u64) -> Option<Duration> {
        None
    }

    fn ping_pong(&self, pairs: u64, bounces: u64) -> Option<Duration> {
        let mut threads = Vec::new();
        let mut starters = Vec::new();
        for _ in 0..pairs {
            let (ping_tx, ping_rx) = bounded::<u64>(1024);
            let (pong_tx, pong_rx) = bounded::<u64>(1024);
            let to_pong = pong_tx.clone();
            threads.push(thread::spawn(move || bounce(ping_rx, to_pong)));
            threads.push(thread::spawn(move || bounce(pong_rx, ping_tx)));
            starters.push(pong_tx);
        }
        let start = Instant::now();
        for s in &starters {
            s.send(bounces & !1).ok()?;
        }
        drop(starters);
        for t in threads {
            let _ = t.join();
        }
        Some(start.elapsed())
    }

    fn fan_out(&self, _subscribers: u64, _publishes: u64) -> Option<Duration> {
        None
    }

    fn round_robin(&self, _actors: u64, _n: u64) -> Option<Duration> {
        None
    }

    fn offload(&self, _jobs: u64, _busy: Duration) -> Option<(Duration, u64)> {
        None
    }

    fn spawn(&self, _n: u64) -> Option<(Duration, f64, Duration)> {
        None
    }

    fn skynet(&self, _leaves: u64) -> Option<Duration> {
        None
    }
}
