//! Collects the figures of every system and renders `RESULTS.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::{Placement, Sizes, System};

/// One figure: its value and whether higher is better.
#[derive(Debug, Clone, Copy)]
struct Figure {
    value: f64,
    higher_is_better: bool,
}

/// One row of a table: a workload variant and its metric.
struct Row {
    table: &'static str,
    label: String,
    unit: &'static str,
    figures: BTreeMap<&'static str, Figure>,
}

pub(crate) struct Report {
    sizes: Sizes,
    quick: bool,
    /// Workloads to run (`W1`…`W8`); all when empty.
    only: Vec<String>,
    rows: Vec<Row>,
    systems: Vec<&'static str>,
}

const NOTES: &str = r#"

## Notes

* **Placement.** kameo, ractor, xtra and the tokio floor share one 2-worker tokio runtime, whose
  scheduler often keeps a requester and its actor on one worker (its LIFO slot): their *across
  threads* rows are frequently same-thread hand-offs. Fluxor's across-reactor rows always cross
  threads. actix runs its actors on two arbiters (threads) beside its system thread; idle
  arbiters park, which shows in its cross-thread asks. The crossbeam floor is OS threads and
  blocking channels (tell, ask and ping-pong only).
* **Mailboxes.** ractor's are unbounded (its senders never wait); actix tells use `try_send` and
  wait on `send` only when the mailbox is full.
* **W6** runs each system in a fresh child process (`--spawn-probe`), so resident memory is not
  blurred by memory earlier workloads freed. For Fluxor, *start* is one `deploy` of N instances
  (each created on its reactor, started, its start reported); for the peers, N spawns.
* **W7**: each Fluxor node deploys its ten children with `Context::deploy` (a deployment with
  its supervisor, start hand-shake and undeploy) where the peers spawn bare actors. The root
  spreads its children over both reactors; below it, a node deploys its children on its own
  reactor (`DeployOptions::reactor(ctx.reactor())`), so each subtree stays on one thread, as a
  task the peers' runtimes spawn stays on its worker until another steals it.
* **Cross-reactor wake-ups.** A message or reply for another reactor queues its waker there
  instead of waking it through tokio's driver. A reactor that runs out of work keeps a spinner
  task going for up to 50 µs (`Builder::spin_before_park`) that empties that queue between its
  other tasks, so a hand-off to it costs no system call and no driver turn; otherwise the
  reactor is rung once per batch. In a W3 run this took the `write` calls from 230k to 0.7k
  and the `epoll_wait` calls from 233k to 42k (`perf stat -e syscalls:sys_enter_write,...`).
* **Request timeouts.** A request made on a reactor joins that reactor's list of young
  requests instead of registering a tokio timer; a sweep every 10 ms arms those still
  waiting, and only they get a timer for their deadline (timer work in a W3 profile: ~5% of
  the samples before, ~1% after).
* **Where Fluxor is behind, and why** (`perf record` of `--only W7 --systems fluxor`,
  `--only W3 --systems fluxor` and `--spawn-probe fluxor 1000000`):
  - *Asks across reactors* (W3): a hop between two spinning reactors still moves the
    message, the waker and the task's state between the cores' caches; the peers' "across"
    asks mostly stay on one worker, a same-thread hand-off.
  - *Skynet* (W7): the tree is built breadth first (a reactor runs its queue first in, first
    out), so the whole tree is alive at its peak: 1.4 GB resident against xtra's 0.34 GB. Per
    node that is the instance's task (384 bytes; a component of up to 72 bytes fits), its
    mailbox (248 bytes), the one-message slot it keeps (128 bytes) and a tenth of its
    deployment. glibc grows a thread's arena page by page (`mprotect`, 12% of the
    samples) and page faults take another 13%.
  - *Idle memory* (W6): the instance's tokio task is 384 bytes (tokio aligns task cells to
    128 bytes; the future is the component, its `Context` and the mailbox's receiving side,
    ~280 bytes for a component of up to 72 bytes) and the mailbox's shared state ~250 bytes;
    the rest is the allocator's rounding and the runtime's per-instance mailbox pointer and
    reactor index. glibc places 128-byte aligned blocks with gaps around them.
  - *Ping-pong and tell* (W1, W4): plain handlers run in place (no future per message); what
    is left is the mailbox hand-shake (a lock per push and per take, a waker per wake-up) and
    the envelope's metadata (ids, topic, span). actix's handlers are called in place too.
  - Idle reactors spin up to 50 µs before parking (`Builder::spin_before_park`); on 2 cores the
    spinning competes with other threads, e.g. the driver of W6.
"#;

const FLUXOR: &str = "fluxor";
const FLOOR: &str = "tokio mpsc (floor)";

impl Report {
    pub(crate) fn new(sizes: Sizes, quick: bool, only: Vec<String>) -> Self {
        Report {
            sizes,
            quick,
            only,
            rows: Vec::new(),
            systems: Vec::new(),
        }
    }

    fn put(
        &mut self,
        table: &'static str,
        label: String,
        unit: &'static str,
        system: &'static str,
        value: Option<f64>,
        higher_is_better: bool,
    ) {
        let Some(value) = value else { return };
        let i = match self
            .rows
            .iter()
            .position(|r| r.table == table && r.label == label && r.unit == unit)
        {
            Some(i) => i,
            None => {
                self.rows.push(Row {
                    table,
                    label,
                    unit,
                    figures: BTreeMap::new(),
                });
                self.rows.len() - 1
            }
        };
        self.rows[i].figures.insert(
            system,
            Figure {
                value,
                higher_is_better,
            },
        );
    }

    fn wants(&self, workload: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|w| w == workload)
    }

    pub(crate) fn run<S: System>(&mut self, s: &S) {
        let z = self.sizes;
        let name = S::NAME;
        self.systems.push(name);
        eprintln!("== {name}");
        let rate = |n: u64, d: Option<Duration>| d.map(|d| n as f64 / d.as_secs_f64());

        const W1: &str =
            "W1 tell throughput (1M × 8-byte messages, mailbox 1024, senders wait when full)";
        if self.wants("W1") {
            for (senders, placement, where_) in [
                (1, Placement::Same, "same reactor"),
                (1, Placement::Cross, "across threads"),
                (4, Placement::Same, "same reactor"),
                (4, Placement::Cross, "across threads"),
            ] {
                eprintln!("   W1 {senders}→1 {where_}");
                let d = s.tell(placement, senders, z.tell);
                self.put(
                    W1,
                    format!("{senders} → 1, {where_}"),
                    "msgs/s",
                    name,
                    rate(z.tell, d),
                    true,
                );
            }
        }

        const W2: &str = "W2 round-robin tell (one sender, 100 actors, 1M messages)";
        if self.wants("W2") {
            eprintln!("   W2 round-robin");
            let d = s.round_robin(100, z.tell);
            self.put(
                W2,
                "100 actors".into(),
                "msgs/s",
                name,
                rate(z.tell, d),
                true,
            );
        }

        const W3: &str = "W3 ask latency (one requester, one ask outstanding, u64 → u64)";
        if self.wants("W3") {
            for (placement, where_) in [
                (Placement::Same, "same reactor"),
                (Placement::Cross, "across threads"),
            ] {
                eprintln!("   W3 ask {where_}");
                if let Some(h) = s.ask(placement, z.ask_warmup, z.ask) {
                    for (q, label) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")] {
                        self.put(
                            W3,
                            format!("{where_}, {label}"),
                            "ns",
                            name,
                            Some(h.value_at_quantile(q) as f64),
                            false,
                        );
                    }
                    self.put(
                        W3,
                        format!("{where_}, mean"),
                        "ns",
                        name,
                        Some(h.mean()),
                        false,
                    );
                }
            }
            eprintln!("   W3 64 outstanding");
            let d = s.ask_pipelined(z.ask);
            self.put(
                W3,
                "64 asks outstanding".into(),
                "asks/s",
                name,
                rate(z.ask, d),
                true,
            );
        }

        const W4: &str = "W4 ping-pong (pairs bounce a counter; total messages per second)";
        if self.wants("W4") {
            for pairs in [1, 2, 8, 64] {
                eprintln!("   W4 {pairs} pairs");
                let bounces = if pairs >= 8 { z.bounces / 4 } else { z.bounces };
                let d = s.ping_pong(pairs, bounces);
                self.put(
                    W4,
                    format!("{pairs} pair(s) × {bounces} bounces"),
                    "msgs/s",
                    name,
                    rate(pairs * (bounces & !1), d),
                    true,
                );
            }
        }

        const W5: &str = "W5 publish fan-out (1 publisher, Arc payload; time per delivery)";
        if self.wants("W5") {
            for subs in [10, 100, 1000] {
                let publishes = if subs >= 1000 {
                    z.publishes / 10
                } else {
                    z.publishes
                };
                eprintln!("   W5 {subs} subscribers");
                let d = s.fan_out(subs, publishes);
                let per = d.map(|d| d.as_nanos() as f64 / (subs * publishes) as f64);
                self.put(
                    W5,
                    format!("{subs} subscribers × {publishes} publishes"),
                    "ns/delivery",
                    name,
                    per,
                    false,
                );
            }
        }

        const W8: &str =
            "W8 blocking offload (10k jobs of 50 µs CPU work, 1 ms periodic timer alongside)";
        if self.wants("W8") {
            eprintln!("   W8 offload");
            if let Some((d, late)) = s.offload(z.jobs, Duration::from_micros(50)) {
                self.put(
                    W8,
                    "completion rate".into(),
                    "jobs/s",
                    name,
                    Some(z.jobs as f64 / d.as_secs_f64()),
                    true,
                );
                self.put(
                    W8,
                    "timer lateness, p99".into(),
                    "µs",
                    name,
                    Some(late as f64 / 1000.0),
                    false,
                );
            }
        }

        const W6: &str = "W6 spawn, one message each, stop";
        if self.wants("W6") {
            for n in [z.spawn, z.spawn_big] {
                eprintln!("   W6 spawn {n}");
                let Some((started, bytes, stopped)) = crate::spawn_isolated(name, n) else {
                    continue;
                };
                let count = fmt(n as f64);
                self.put(
                    W6,
                    format!("{count} actors: start"),
                    "µs/actor",
                    name,
                    Some(started.as_secs_f64() * 1e6 / n as f64),
                    false,
                );
                self.put(
                    W6,
                    format!("{count} actors: idle memory"),
                    "bytes/actor",
                    name,
                    Some(bytes),
                    false,
                );
                self.put(
                    W6,
                    format!("{count} actors: stop all"),
                    "ms",
                    name,
                    Some(stopped.as_secs_f64() * 1e3),
                    false,
                );
            }
        }

        const W7: &str = "W7 skynet (10-ary tree of actors spawned from handlers, sums replied up)";
        if self.wants("W7") {
            eprintln!("   W7 skynet {}", z.skynet);
            let d = s.skynet(z.skynet);
            self.put(
                W7,
                format!("{} leaves", fmt(z.skynet as f64)),
                "ms",
                name,
                d.map(|d| d.as_secs_f64() * 1e3),
                false,
            );
        }
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Benchmark results\n");
        let _ =
            writeln!(
            out,
            "Produced by `cargo bench -p fluxor-benches --bench suite`{} on {} ({} cores), {}.\n",
            if self.quick { " -- --quick (a tenth of every size)" } else { "" },
            cpu_model(),
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            today(),
        );
        let _ = writeln!(
            out,
            "kameo, ractor, xtra and the tokio floor run on a multi-threaded tokio runtime with 2 workers, actix on two \
             arbiters beside its system thread, the crossbeam floor on OS threads, Fluxor on 2 reactors; each driver is a task \
             (for Fluxor, a component) inside its runtime, and timing stops when the last message is handled. \
             The peers do not pin an actor to a thread, so their figure appears on the *across threads* rows; \
             on *same reactor* rows Fluxor's same-thread figure is compared with that same peer figure. \
             *vs best peer* is Fluxor's figure divided by the best of kameo, ractor, xtra and actix (the floors are not peers); \
             *vs floor* divides by the tokio floor. Above 1 is better for rates, below 1 is better for times. \
             The machine is shared and noisy: compare ratios within one run, not absolute figures across runs.\n"
        );
        let _ = writeln!(out, "Sizes: {:?}\n", self.sizes);
        let mut current = "";
        for row in &self.rows {
            if row.table != current {
                current = row.table;
                let _ = writeln!(out, "\n## {current}\n");
                let _ = write!(out, "| workload | unit |");
                for s in &self.systems {
                    let _ = write!(out, " {s} |");
                }
                let _ = writeln!(out, " vs best peer | vs floor |");
                let _ = write!(out, "|---|---|");
                for _ in &self.systems {
                    let _ = write!(out, "---:|");
                }
                let _ = writeln!(out, "---:|---:|");
            }
            let _ = write!(out, "| {} | {} |", row.label, row.unit);
            for s in &self.systems {
                match row.figures.get(s) {
                    Some(f) => {
                        let _ = write!(out, " {} |", fmt(f.value));
                    }
                    None => {
                        let _ = write!(out, " — |");
                    }
                }
            }
            let peer_row = self
                .rows
                .iter()
                .find(|r| {
                    r.table == row.table
                        && r.unit == row.unit
                        && r.label == row.label.replace("same reactor", "across threads")
                })
                .unwrap_or(row);
            let fluxor = row.figures.get(FLUXOR);
            let best_peer = peer_row
                .figures
                .iter()
                .filter(|(name, _)| **name != FLUXOR && !name.ends_with("(floor)"))
                .map(|(_, f)| *f)
                .reduce(|a, b| {
                    let better = if a.higher_is_better {
                        b.value > a.value
                    } else {
                        b.value < a.value
                    };
                    if better {
                        b
                    } else {
                        a
                    }
                });
            let ratio = |other: Option<&Figure>| match (fluxor, other) {
                (Some(f), Some(o)) if o.value > 0.0 => format!("{:.2}", f.value / o.value),
                _ => "—".into(),
            };
            let _ = writeln!(
                out,
                " {} | {} |",
                ratio(best_peer.as_ref()),
                ratio(peer_row.figures.get(FLOOR))
            );
        }
        out.push_str(NOTES);
        out
    }
}

fn fmt(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "an unknown CPU".into())
}

fn today() -> String {
    std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}
