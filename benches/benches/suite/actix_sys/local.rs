//! actix's fastest same-thread configuration: a bare `System` (no extra arbiters); the driver is
//! the future its `block_on` runs and every actor is started with `Actor::start` on the
//! system's arbiter, so driver and actors share its one thread. It has figures only on the
//! *same reactor* rows.

use std::time::{Duration, Instant};

use actix::prelude::*;
use hdrhistogram::Histogram;
use tokio::sync::oneshot;

use super::{tell, Ask, Ball, Echo, Num, Pair, Ponger, Sink};
use crate::{latencies, Placement, System as Sys};

pub(crate) struct ActixLocal;

/// Runs `f` on a fresh actix `System`, on this thread.
fn on_system<Fut: std::future::Future>(f: Fut) -> Fut::Output {
    actix::System::new().block_on(f)
}

impl Sys for ActixLocal {
    const NAME: &'static str = "actix (1 thread)";

    fn tell(&self, placement: Placement, senders: u64, n: u64) -> Option<Duration> {
        if placement != Placement::Same {
            return None;
        }
        Some(on_system(async move {
            let (tx, rx) = oneshot::channel();
            let sink = Sink::new(n, tx).start();
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
        }))
    }

    fn ask(&self, placement: Placement, warmup: u64, n: u64) -> Option<Histogram<u64>> {
        if placement != Placement::Same {
            return None;
        }
        Some(on_system(async move {
            let echo = Echo.start();
            latencies(warmup, n, |i| {
                let echo = &echo;
                async move {
                    let _ = echo.send(Ask(i)).await;
                }
            })
            .await
        }))
    }

    fn ask_pipelined(&self, _n: u64) -> Option<Duration> {
        None
    }

    fn ping_pong(&self, _pairs: u64, _bounces: u64) -> Option<Duration> {
        None
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

    fn ping_pong_one_thread(&self, bounces: u64) -> Option<Duration> {
        Some(on_system(async move {
            let (tx, rx) = oneshot::channel();
            let ping = Ponger::default().start();
            let pong = Ponger::default().start();
            let _ = ping.send(Pair(pong.clone(), Some(tx))).await;
            let _ = pong.send(Pair(ping.clone(), None)).await;
            let start = Instant::now();
            ping.do_send(Ball(bounces & !1));
            let _ = rx.await;
            start.elapsed()
        }))
    }

    fn skynet_placed(&self, placement: Placement, leaves: u64) -> Option<Duration> {
        if placement != Placement::Same {
            return None;
        }
        on_system(super::skynet(Self::NAME, leaves))
    }

    fn deploy_one_by_one(&self, placement: Placement, n: u64) -> Option<(Duration, f64, Duration)> {
        if placement != Placement::Same {
            return None;
        }
        Some(on_system(super::spawn_tiny(n)))
    }

    /// Its W9 already drops every address at once.
    fn deploy_one_by_one_together(&self, n: u64) -> Option<(Duration, f64, Duration)> {
        self.deploy_one_by_one(Placement::Same, n)
    }
}
