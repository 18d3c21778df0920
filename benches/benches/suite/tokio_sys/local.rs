//! The same-thread floor: the tasks and channels of [`TokioMpsc`](super::TokioMpsc) on a
//! `current_thread` tokio runtime, where every task (driver, senders, receiver) runs on the one
//! thread. It has figures only on the *same reactor* rows.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::{Placement, System};

pub(crate) struct TokioLocal;

/// Runs `f` as a task on a fresh `current_thread` runtime and returns its output.
fn on_current_thread<F>(f: F) -> Option<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async move { tokio::spawn(f).await.ok() })
}

impl System for TokioLocal {
    const NAME: &'static str = "tokio current_thread (floor)";

    fn tell(&self, placement: Placement, senders: u64, n: u64) -> Option<Duration> {
        if placement != Placement::Same {
            return None;
        }
        on_current_thread(super::tell(senders, n))
    }

    fn ask(&self, placement: Placement, warmup: u64, n: u64) -> Option<Histogram<u64>> {
        if placement != Placement::Same {
            return None;
        }
        on_current_thread(super::asks(warmup, n))
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
        on_current_thread(super::ping_pong(1, bounces))
    }

    fn skynet_placed(&self, placement: Placement, leaves: u64) -> Option<Duration> {
        if placement != Placement::Same {
            return None;
        }
        on_current_thread(super::skynet(Self::NAME, leaves)).flatten()
    }

    fn deploy_one_by_one(&self, placement: Placement, n: u64) -> Option<(Duration, f64, Duration)> {
        if placement != Placement::Same {
            return None;
        }
        on_current_thread(super::spawn(n))
    }

    /// Its W9 already ends every task at once.
    fn deploy_one_by_one_together(&self, n: u64) -> Option<(Duration, f64, Duration)> {
        self.deploy_one_by_one(Placement::Same, n)
    }
}
