//! Run with: `cargo bench -p fluxor-benches --bench suite`
//!
//! Fluxor side by side with kameo, ractor, xtra and raw tokio channels, in one process and one run,
//! one system after another. Every peer runs on a multi-threaded tokio runtime with 2 workers;
//! Fluxor runs 2 reactors. The driver of each workload is a task (for Fluxor, a component)
//! inside the runtime, and timing stops when the last message has been *handled*.
//! Writes `benches/RESULTS.md`.
//!
//! `-- --quick` runs every workload at a tenth of its size (a smoke run).

mod fluxor_sys;
mod kameo_sys;
mod ractor_sys;
mod report;
mod tokio_sys;
mod xtra_sys;

use std::time::Duration;

use hdrhistogram::Histogram;

/// Where the sender and the receiver run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// On one thread (Fluxor: one reactor). Peers cannot pin, so they have no such row.
    Same,
    /// On different threads (Fluxor: two reactors); for peers, wherever the scheduler puts them.
    Cross,
}

/// The sizes of one run.
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub(crate) struct Sizes {
    pub(crate) tell: u64,
    pub(crate) ask_warmup: u64,
    pub(crate) ask: u64,
    pub(crate) bounces: u64,
    pub(crate) publishes: u64,
    pub(crate) spawn: u64,
    pub(crate) jobs: u64,
}

/// What one system measures.
pub(crate) trait System {
    const NAME: &'static str;
    /// W1: `senders` senders tell `n` messages in total to one receiver (mailbox 1024, senders
    /// wait when it is full). Elapsed time until the last one is handled.
    fn tell(&self, placement: Placement, senders: u64, n: u64) -> Option<Duration>;
    /// W3: one requester, one outstanding ask at a time; latency of each measured ask, in ns.
    fn ask(&self, placement: Placement, warmup: u64, n: u64) -> Option<Histogram<u64>>;
    /// W3b: 64 asks outstanding; elapsed time for `n` asks.
    fn ask_pipelined(&self, n: u64) -> Option<Duration>;
    /// W4: `pairs` pairs bounce a counter `bounces` times each; elapsed time.
    fn ping_pong(&self, pairs: u64, bounces: u64) -> Option<Duration>;
    /// W5: one publisher, `subscribers` subscribers, `publishes` publishes of an `Arc`
    /// payload; elapsed time until every subscriber handled every publish.
    fn fan_out(&self, subscribers: u64, publishes: u64) -> Option<Duration>;
    /// W2: one sender tells `n` messages round-robin over `actors` actors; elapsed time until
    /// all are handled.
    fn round_robin(&self, actors: u64, n: u64) -> Option<Duration>;
    /// W8: `jobs` jobs of `busy` CPU work offloaded from the runtime to its blocking pool,
    /// while a 1 ms periodic timer runs there: (elapsed time, p99 timer lateness in ns).
    fn offload(&self, jobs: u64, busy: Duration) -> Option<(Duration, u64)>;
    /// W6: start `n` actors, each handles one message, stop them all: (start time, bytes of
    /// resident memory per idle actor, stop time).
    fn spawn(&self, n: u64) -> Option<(Duration, f64, Duration)>;
}

/// A multi-threaded tokio runtime with 2 workers, as every peer uses.
pub(crate) fn peer_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs `f` as a task on a fresh peer runtime and returns its output.
pub(crate) fn on_peer<F>(f: F) -> Option<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let rt = peer_runtime();
    rt.block_on(async move { tokio::spawn(f).await.ok() })
}

/// Spins the CPU for `d` (a stand-in for blocking work).
pub(crate) fn busy_work(d: Duration) -> u64 {
    let start = std::time::Instant::now();
    let mut x = 0u64;
    while start.elapsed() < d {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    x
}

/// Resident memory of this process, in bytes.
pub(crate) fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Runs `warmup` asks, then records the latency of each of `n` more, one at a time.
pub(crate) async fn latencies<F, Fut>(warmup: u64, n: u64, mut ask: F) -> Histogram<u64>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future,
{
    for i in 0..warmup {
        ask(i).await;
    }
    let mut h = histogram();
    for i in 0..n {
        let t = std::time::Instant::now();
        ask(i).await;
        let _ = h.record(t.elapsed().as_nanos() as u64);
    }
    h
}

/// Runs `n` asks from 64 tokio tasks at once (each task asks one at a time through its own
/// clone of `handle`); returns the elapsed time.
pub(crate) async fn pipelined<H, F, Fut>(n: u64, handle: H, ask: F) -> Duration
where
    H: Clone + Send + 'static,
    F: Fn(H, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future + Send,
{
    let start = std::time::Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (handle, ask) = (handle.clone(), ask.clone());
            tokio::spawn(async move {
                for i in 0..n / 64 {
                    ask(handle.clone(), i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    start.elapsed()
}

/// Waits until `handled` reaches `n`.
pub(crate) async fn until_handled(handled: &std::sync::atomic::AtomicU64, n: u64) {
    while handled.load(std::sync::atomic::Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
}

/// Records how late each tick of a 1 ms interval is until `stop` fires; returns the p99 in ns.
pub(crate) async fn tick_lateness(mut stop: tokio::sync::oneshot::Receiver<()>) -> u64 {
    let mut h = histogram();
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    loop {
        tokio::select! {
            _ = &mut stop => break,
            due = ticks.tick() => {
                let late = tokio::time::Instant::now().duration_since(due);
                let _ = h.record(late.as_nanos() as u64 + 1);
            }
        }
    }
    h.value_at_quantile(0.99)
}

/// A histogram of nanoseconds, 1 ns to 10 s.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("valid histogram bounds")
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    let sizes = Sizes {
        tell: 1_000_000 / scale,
        ask_warmup: 10_000 / scale,
        ask: 100_000 / scale,
        bounces: 100_000 / scale,
        publishes: 10_000 / scale,
        spawn: 100_000 / scale,
        jobs: 10_000 / scale,
    };
    let mut report = report::Report::new(sizes, quick);
    report.run(&fluxor_sys::Fluxor);
    report.run(&kameo_sys::Kameo);
    report.run(&ractor_sys::Ractor);
    report.run(&xtra_sys::Xtra);
    report.run(&tokio_sys::TokioMpsc);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/RESULTS.md");
    let text = report.render();
    print!("{text}");
    if !quick {
        std::fs::write(path, &text).expect("write benches/RESULTS.md");
        eprintln!("written to {path}");
    }
}
