//! Collects the figures of every system and renders `RESULTS.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::{Placement, Sizes, System};

mod text;

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
    /// (table, label, label of the row in that table whose peer figures it is compared with).
    links: Vec<(&'static str, String, String)>,
}

const FLUXOR: &str = "fluxor";
const FLOOR: &str = "tokio mpsc (floor)";
/// The peers' single-thread configurations: the comparators of the *same reactor* rows.
const ONE_THREAD_PEERS: [&str; 1] = ["actix (1 thread)"];
/// The floor of the *same reactor* rows.
const ONE_THREAD_FLOOR: &str = "tokio current_thread (floor)";

impl Report {
    pub(crate) fn new(sizes: Sizes, quick: bool, only: Vec<String>) -> Self {
        Report {
            sizes,
            quick,
            only,
            rows: Vec::new(),
            systems: Vec::new(),
            links: Vec::new(),
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

    /// Compares row `label` of `table` with the peer figures of row `peers` of the same table.
    fn link(&mut self, table: &'static str, label: String, peers: String) {
        if !self
            .links
            .iter()
            .any(|(t, l, _)| *t == table && *l == label)
        {
            self.links.push((table, label, peers));
        }
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
                if let Some((h, cpu)) = asks(s, placement, z.ask_warmup, z.ask, 0) {
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
                    // Systems whose asks do not go through `latencies` measure no CPU.
                    self.put(
                        W3,
                        format!("{where_}, process CPU per ask"),
                        "ns",
                        name,
                        (cpu > 0).then_some(cpu as f64),
                        false,
                    );
                }
            }
            // A moderate load: the runtimes are idle between asks, and what they burn
            // meanwhile (spinning, polling) counts in the CPU per ask.
            for (placement, where_) in [
                (Placement::Same, "same reactor"),
                (Placement::Cross, "across threads"),
            ] {
                eprintln!("   W3 ask {where_}, asks ≥ 1 ms apart");
                let Some((h, cpu)) = asks(s, placement, z.ask_warmup / 100, z.paced_asks, 1_000)
                else {
                    continue;
                };
                // Only asks made through `latencies` are paced.
                if cpu == 0 {
                    continue;
                }
                let label = format!("{where_}, asks ≥ 1 ms apart");
                self.put(
                    W3,
                    format!("{label}, p50"),
                    "ns",
                    name,
                    Some(h.value_at_quantile(0.5) as f64),
                    false,
                );
                self.put(
                    W3,
                    format!("{label}, process CPU per ask"),
                    "ns",
                    name,
                    Some(cpu as f64),
                    false,
                );
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
            eprintln!("   W4 1 pair on one thread");
            let bounces = z.bounces;
            let d = s.ping_pong_one_thread(bounces);
            self.put(
                W4,
                format!("1 pair × {bounces} bounces, same reactor"),
                "msgs/s",
                name,
                rate(bounces & !1, d),
                true,
            );
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
            // Each tree in a fresh process, for its peak memory.
            let leaves = format!("{} leaves", fmt(z.skynet as f64));
            for (variant, where_) in [
                ("plain", None),
                ("same", Some("same reactor")),
                ("default", Some("default placement")),
            ] {
                eprintln!("   W7 skynet {} {}", z.skynet, where_.unwrap_or(""));
                let label = match where_ {
                    Some(w) => format!("{leaves}, {w}"),
                    None => leaves.clone(),
                };
                let Some((elapsed, peak)) = crate::skynet_isolated(name, variant, z.skynet) else {
                    continue;
                };
                let memory = format!("{label}: peak memory");
                self.put(
                    W7,
                    label.clone(),
                    "ms",
                    name,
                    Some(elapsed.as_secs_f64() * 1e3),
                    false,
                );
                self.put(
                    W7,
                    memory.clone(),
                    "MiB",
                    name,
                    Some(peak / (1 << 20) as f64),
                    false,
                );
                if variant == "default" {
                    // The peers place their trees by default: their figures are on the plain rows.
                    self.link(W7, label, leaves.clone());
                    self.link(W7, memory, format!("{leaves}: peak memory"));
                }
            }
        }

        const W9: &str = "W9 single-instance deployments awaited one by one \
             (from a handler; one message each; then all undeployed)";
        if self.wants("W9") {
            let n = z.one_by_one;
            for (variant, where_) in [
                ("same", "same reactor"),
                ("default", "default placement"),
                ("shared", "same reactor, one topic all bind"),
                ("together", "same reactor, undeployed together"),
            ] {
                eprintln!("   W9 {n} one by one, {where_}");
                let Some((deployed, bytes, torn_down)) =
                    crate::one_by_one_isolated(name, variant, n)
                else {
                    continue;
                };
                let count = fmt(n as f64);
                self.put(
                    W9,
                    format!("{count}, {where_}: deploy"),
                    "µs/deployment",
                    name,
                    Some(deployed.as_secs_f64() * 1e6 / n as f64),
                    false,
                );
                self.put(
                    W9,
                    format!("{count}, {where_}: idle memory"),
                    "bytes/deployment",
                    name,
                    Some(bytes),
                    false,
                );
                self.put(
                    W9,
                    format!("{count}, {where_}: undeploy all"),
                    "ms",
                    name,
                    Some(torn_down.as_secs_f64() * 1e3),
                    false,
                );
            }
        }
    }

    /// The best peer figure and the floor figure `row` is compared with. A *same reactor* row
    /// is compared with the single-thread configurations in that row; any other row with the
    /// multi-threaded peers and the tokio floor of its linked row, or of itself.
    fn comparators(&self, row: &Row) -> (Option<Figure>, Option<Figure>) {
        let best = |figures: &mut dyn Iterator<Item = Figure>| {
            figures.reduce(|a, b| {
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
            })
        };
        if row.label.contains("same reactor") {
            let mut peers = row
                .figures
                .iter()
                .filter(|(name, _)| ONE_THREAD_PEERS.contains(*name))
                .map(|(_, f)| *f);
            return (best(&mut peers), row.figures.get(ONE_THREAD_FLOOR).copied());
        }
        let peer_row = self
            .links
            .iter()
            .find(|(t, l, _)| *t == row.table && *l == row.label)
            .and_then(|(_, _, peers)| {
                self.rows
                    .iter()
                    .find(|r| r.table == row.table && r.unit == row.unit && r.label == *peers)
            })
            .unwrap_or(row);
        let mut peers = peer_row
            .figures
            .iter()
            .filter(|(name, _)| {
                **name != FLUXOR && !name.ends_with("(floor)") && !ONE_THREAD_PEERS.contains(*name)
            })
            .map(|(_, f)| *f);
        (best(&mut peers), peer_row.figures.get(FLOOR).copied())
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
        let _ = writeln!(out, "{}", text::CONFIGURATIONS);
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
            let (best_peer, floor) = self.comparators(row);
            let fluxor = row.figures.get(FLUXOR);
            let ratio = |other: Option<&Figure>| match (fluxor, other) {
                (Some(f), Some(o)) if o.value > 0.0 => format!("{:.2}", f.value / o.value),
                _ => "—".into(),
            };
            let _ = writeln!(
                out,
                " {} | {} |",
                ratio(best_peer.as_ref()),
                ratio(floor.as_ref())
            );
        }
        out.push_str(text::NOTES);
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

/// W3's asks of `s`, each after a pause of `pace_us` microseconds (see
/// [`ASK_PACE_US`](crate::ASK_PACE_US)): their latencies and the process CPU per ask (0 for a
/// system whose asks do not go through [`latencies`](crate::latencies)).
fn asks<S: System>(
    s: &S,
    placement: Placement,
    warmup: u64,
    n: u64,
    pace_us: u64,
) -> Option<(hdrhistogram::Histogram<u64>, u64)> {
    use std::sync::atomic::Ordering::Relaxed;
    crate::ASK_PACE_US.store(pace_us, Relaxed);
    crate::CPU_PER_ASK.store(0, Relaxed);
    let h = s.ask(placement, warmup, n);
    crate::ASK_PACE_US.store(0, Relaxed);
    h.map(|h| (h, crate::CPU_PER_ASK.load(Relaxed)))
}
