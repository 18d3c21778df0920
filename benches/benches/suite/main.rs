//! Run with: `cargo bench -p fluxor-benches --bench suite`
//!
//! Fluxor side by side with kameo, ractor, xtra, actix and two floors (tokio channels and
//! tasks; crossbeam channels and threads), in one process and one run, one system after
//! another. kameo, ractor, xtra and the tokio floor run on a multi-threaded tokio runtime with 2
//! workers, actix on two arbiters (threads) besides its system thread, Fluxor on 2 reactors.
//! Fluxor's *same reactor* rows are compared with each peer's single-thread configuration:
//! actix on a bare `System` (actors and driver on its one thread) and a tokio `current_thread`
//! floor. The driver of each workload is a task (for Fluxor, a component) inside the runtime,
//! and timing stops when the last message has been *handled*.
//! Writes `benches/RESULTS.md`.
//!
//! `-- --quick` runs every workload at a tenth of its size (a smoke run); `-- --only W1,W7`
//! runs just the workloads named, `-- --systems fluxor,xtra,tokio` just those systems
//! (`actix-1t` and `tokio-ct` name the single-thread configurations). None of these writes
//! `RESULTS.md`.

mod actix_sys;
mod crossbeam_sys;
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
    /// On one thread (Fluxor: one reactor). The multi-threaded peers cannot pin, so they have
    /// no such row; the single-thread configurations (actix on one `System` thread, tokio
    /// `current_thread`) have only these.
    Same,
    /// On different threads (Fluxor: two reactors); for peers, wherever the scheduler puts them.
    Cross,
    /// Wherever the runtime's default placement puts them (Fluxor: `DeployOptions::new()`,
    /// which spreads instances over the reactors in turn).
    Default,
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
    pub(crate) spawn_big: u64,
    pub(crate) skynet: u64,
    pub(crate) jobs: u64,
    pub(crate) one_by_one: u64,
    /// W3 asks with a millisecond between them.
    pub(crate) paced_asks: u64,
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
    /// W7: skynet over `leaves` leaves (a power of ten): every node spawns ten children from
    /// its handler, leaves report their number, nodes report their children's sum up and stop.
    /// Elapsed time until the root has the total (checked).
    fn skynet(&self, leaves: u64) -> Option<Duration>;
    /// W4 on one thread: one pair and its driver bounce a counter `bounces` times; elapsed time.
    fn ping_pong_one_thread(&self, _bounces: u64) -> Option<Duration> {
        None
    }
    /// W7 with the whole tree placed as `placement` says: `Same`, every node on one thread;
    /// `Default`, every deployment placed by the runtime's default.
    fn skynet_placed(&self, _placement: Placement, _leaves: u64) -> Option<Duration> {
        None
    }
    /// W9: from inside a handler, `n` single-instance deployments (peers: actors), each awaited
    /// before the next, placed as `placement` says; one message each; then all undeployed:
    /// (deploy time, bytes of resident memory per idle deployment, teardown time).
    fn deploy_one_by_one(
        &self,
        _placement: Placement,
        _n: u64,
    ) -> Option<(Duration, f64, Duration)> {
        None
    }

    /// W9 on the caller's reactor, each deployment also binding one topic they all share (a
    /// broadcast every session listens on); Fluxor only, the peers have no topics.
    fn deploy_one_by_one_shared(&self, _n: u64) -> Option<(Duration, f64, Duration)> {
        None
    }

    /// W9 on the caller's reactor, the deployments undeployed together at the end (every
    /// `undeploy` started, then all awaited), as the peers' rows drop every address at once.
    fn deploy_one_by_one_together(&self, _n: u64) -> Option<(Duration, f64, Duration)> {
        None
    }
}

/// The state of a sink actor: counts what it receives and signals `done` at the `want`th.
#[derive(Default)]
pub(crate) struct Tally {
    got: u64,
    want: u64,
    sum: u64,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Tally {
    pub(crate) fn new(want: u64, done: tokio::sync::oneshot::Sender<()>) -> Self {
        let mut t = Tally::default();
        t.arm(want, done);
        t
    }

    /// Starts counting again, to `want`.
    pub(crate) fn arm(&mut self, want: u64, done: tokio::sync::oneshot::Sender<()>) {
        self.got = 0;
        self.want = want;
        self.done = Some(done);
    }

    pub(crate) fn tick(&mut self, value: u64) {
        self.sum = self.sum.wrapping_add(value);
        self.got += 1;
        if self.got == self.want {
            if let Some(done) = self.done.take() {
                let _ = done.send(());
            }
        }
    }
}

/// Children per skynet node.
pub(crate) const FANOUT: u64 = 10;

/// `Some(elapsed)` if `sum` is the skynet total over `leaves` leaves; says so otherwise.
pub(crate) fn skynet_checked(
    name: &str,
    leaves: u64,
    sum: u64,
    elapsed: Duration,
) -> Option<Duration> {
    let want = leaves * (leaves - 1) / 2;
    if sum == want {
        Some(elapsed)
    } else {
        eprintln!("   {name}: skynet summed {sum}, expected {want}");
        None
    }
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

/// CPU time of this process (every thread, the running ones up to now), in nanoseconds.
pub(crate) fn process_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Process CPU per ask of the last [`latencies`] run, in nanoseconds: the work of both ends
/// and of whatever the runtimes spin or poll meanwhile.
pub(crate) static CPU_PER_ASK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The pause before each measured ask of [`latencies`], in microseconds (0: none). Paced
/// asks leave the runtimes idle in between, so their process CPU per ask shows what a
/// runtime burns while it waits for work (spinning, polling) at a moderate load.
pub(crate) static ASK_PACE_US: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs `warmup` asks, then records the latency of each of `n` more, one at a time, each after
/// the pause [`ASK_PACE_US`] sets (and the process CPU they took, in [`CPU_PER_ASK`]).
pub(crate) async fn latencies<F, Fut>(warmup: u64, n: u64, mut ask: F) -> Histogram<u64>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future,
{
    for i in 0..warmup {
        ask(i).await;
    }
    let mut h = histogram();
    let pace = Duration::from_micros(ASK_PACE_US.load(std::sync::atomic::Ordering::Relaxed));
    let cpu = process_cpu_ns();
    for i in 0..n {
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
        let t = std::time::Instant::now();
        ask(i).await;
        let _ = h.record(t.elapsed().as_nanos() as u64);
    }
    let used = process_cpu_ns().saturating_sub(cpu);
    CPU_PER_ASK.store(used / n.max(1), std::sync::atomic::Ordering::Relaxed);
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

/// W6 in a fresh process: this benchmark binary run with `--spawn-probe <system> <n>`, so
/// the resident-memory delta is not blurred by memory earlier workloads freed.
pub(crate) fn spawn_isolated(system: &str, n: u64) -> Option<(Duration, f64, Duration)> {
    isolated(system, &["--spawn-probe", system, &n.to_string()])
}

/// W9 in a fresh process, as W6: `--deploy-probe <system> <same|default|shared> <n>`.
pub(crate) fn one_by_one_isolated(
    system: &str,
    variant: &str,
    n: u64,
) -> Option<(Duration, f64, Duration)> {
    isolated(system, &["--deploy-probe", system, variant, &n.to_string()])
}

/// W7 in a fresh process: `--skynet-probe <system> <plain|same|default> <leaves>`; the elapsed
/// time and the peak resident memory the process grew by, so a tree is measured without the
/// memory earlier workloads left behind.
pub(crate) fn skynet_isolated(system: &str, variant: &str, leaves: u64) -> Option<(Duration, f64)> {
    isolated(
        system,
        &["--skynet-probe", system, variant, &leaves.to_string()],
    )
    .map(|(elapsed, peak, _)| (elapsed, peak))
}

/// Peak resident memory of this process so far (`VmHWM`), in bytes; `None` (and why, on
/// stderr) where `/proc/self/status` does not say.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024);
    if peak.is_none() {
        eprintln!("no VmHWM line in /proc/self/status: the peak memory is not known");
    }
    peak
}

/// Runs this binary with `args` and reads the three figures it prints (`none`: the system has
/// no such workload).
fn isolated(system: &str, args: &[&str]) -> Option<(Duration, f64, Duration)> {
    let out = std::process::Command::new(std::env::current_exe().ok()?)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    if text.trim() == "none" {
        // No such workload, or it failed (a wrong result, a failed deploy): then it said why.
        let why = String::from_utf8_lossy(&out.stderr);
        if !why.trim().is_empty() {
            eprintln!("   {system}: {}", why.trim());
        }
        return None;
    }
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    let (Some(Ok(start)), Some(Ok(bytes)), Some(Ok(stop))) =
        (fields.next(), fields.next(), fields.next())
    else {
        eprintln!(
            "   {system}: the probe failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    };
    Some((
        Duration::from_secs_f64(start),
        bytes,
        Duration::from_secs_f64(stop),
    ))
}

/// The comma-separated values after `flag`, if given.
fn list_arg(args: &[String], flag: &str) -> Vec<String> {
    args.iter()
        .skip_while(|a| *a != flag)
        .nth(1)
        .map(|w| w.split(',').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The figures of one probe: `what` is `spawn` (W6), `same` or `default` (W9).
fn probe_figures<S: System>(s: &S, what: &str, n: u64) -> Option<(Duration, f64, Duration)> {
    match what {
        "spawn" => s.spawn(n),
        "same" => s.deploy_one_by_one(Placement::Same, n),
        "default" => s.deploy_one_by_one(Placement::Default, n),
        "shared" => s.deploy_one_by_one_shared(n),
        "together" => s.deploy_one_by_one_together(n),
        "skynet-plain" | "skynet-same" | "skynet-default" => {
            // Grown by the workload from what the process held before it: the peak resident
            // memory, when every node is alive.
            let before = rss_bytes();
            let elapsed = match what {
                "skynet-plain" => s.skynet(n),
                "skynet-same" => s.skynet_placed(Placement::Same, n),
                _ => s.skynet_placed(Placement::Default, n),
            }?;
            let peak = peak_rss_bytes()?.saturating_sub(before);
            Some((elapsed, peak as f64, Duration::ZERO))
        }
        _ => None,
    }
}

/// The child side of [`spawn_isolated`], [`one_by_one_isolated`] and [`skynet_isolated`]: runs
/// one workload for one system and prints its figures, or `none`.
fn probe(system: &str, what: &str, n: u64) {
    let figures = match system {
        fluxor_sys::Fluxor::NAME => probe_figures(&fluxor_sys::Fluxor, what, n),
        kameo_sys::Kameo::NAME => probe_figures(&kameo_sys::Kameo, what, n),
        ractor_sys::Ractor::NAME => probe_figures(&ractor_sys::Ractor, what, n),
        xtra_sys::Xtra::NAME => probe_figures(&xtra_sys::Xtra, what, n),
        tokio_sys::TokioMpsc::NAME => probe_figures(&tokio_sys::TokioMpsc, what, n),
        tokio_sys::TokioLocal::NAME => probe_figures(&tokio_sys::TokioLocal, what, n),
        actix_sys::Actix::NAME => probe_figures(&actix_sys::Actix, what, n),
        actix_sys::ActixLocal::NAME => probe_figures(&actix_sys::ActixLocal, what, n),
        _ => None,
    };
    match figures {
        Some((start, bytes, stop)) => {
            println!("{} {bytes} {}", start.as_secs_f64(), stop.as_secs_f64());
        }
        None => println!("none"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map_or("", String::as_str);
    if let Some(i) = args.iter().position(|a| a == "--spawn-probe") {
        probe(arg(i + 1), "spawn", arg(i + 2).parse().unwrap_or(0));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--skynet-probe") {
        let variant = format!("skynet-{}", arg(i + 2));
        probe(arg(i + 1), &variant, arg(i + 3).parse().unwrap_or(0));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--deploy-probe") {
        probe(arg(i + 1), arg(i + 2), arg(i + 3).parse().unwrap_or(0));
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    let sizes = Sizes {
        tell: 1_000_000 / scale,
        ask_warmup: 10_000 / scale,
        ask: 100_000 / scale,
        paced_asks: 1_000 / scale,
        bounces: 100_000 / scale,
        publishes: 10_000 / scale,
        spawn: 100_000 / scale,
        spawn_big: 1_000_000 / scale,
        skynet: 1_000_000 / scale,
        jobs: 10_000 / scale,
        one_by_one: 100_000 / scale,
    };
    // `-- --only W3,W7` runs just those workloads, `-- --systems fluxor,xtra` just those
    // systems; a partial run writes no RESULTS.md.
    let only = list_arg(&args, "--only");
    let systems = list_arg(&args, "--systems");
    let partial = quick || !only.is_empty() || !systems.is_empty();
    let mut report = report::Report::new(sizes, quick, only);
    let wants = |name: &str| systems.is_empty() || systems.iter().any(|s| s == name);
    let partial = partial || !systems.is_empty();
    if wants(fluxor_sys::Fluxor::NAME) {
        report.run(&fluxor_sys::Fluxor);
    }
    if wants(kameo_sys::Kameo::NAME) {
        report.run(&kameo_sys::Kameo);
    }
    if wants(ractor_sys::Ractor::NAME) {
        report.run(&ractor_sys::Ractor);
    }
    if wants(xtra_sys::Xtra::NAME) {
        report.run(&xtra_sys::Xtra);
    }
    if wants(actix_sys::Actix::NAME) {
        report.run(&actix_sys::Actix);
    }
    if wants("actix-1t") {
        report.run(&actix_sys::ActixLocal);
    }
    if wants("tokio") {
        report.run(&tokio_sys::TokioMpsc);
    }
    if wants("tokio-ct") {
        report.run(&tokio_sys::TokioLocal);
    }
    if wants("crossbeam") {
        report.run(&crossbeam_sys::Crossbeam);
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/RESULTS.md");
    let text = report.render();
    print!("{text}");
    if !partial {
        // The sections other benches' figures are pasted into stay at the end of the file.
        let kept = std::fs::read_to_string(path)
            .ok()
            .and_then(|old| {
                ["\n## Cluster bus", "\n## HTTP:"]
                    .iter()
                    .filter_map(|heading| old.find(heading))
                    .min()
                    .map(|i| old[i..].to_owned())
            })
            .unwrap_or_default();
        std::fs::write(path, text + &kept).expect("write benches/RESULTS.md");
        eprintln!("written to {path}");
    }
}
