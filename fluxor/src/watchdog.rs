//! The blocked-reactor checker.
//!
//! Each reactor has a [`ReactorGauge`]: before a handler runs, the reactor stores the current coarse
//! time and the running instance's key with relaxed atomic stores, and clears the time after.
//! A watchdog thread advances the coarse clock and looks at every gauge; a handler that holds
//! its reactor longer than the threshold is reported once per episode with a `tracing`
//! warning (and again every five thresholds while it lasts) and counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::ids::DeploymentId;

/// Which deployment a key stands for, for the warning. An instance's key is its deployment's
/// key plus its index, so one label names every instance of a deployment.
#[derive(Debug, Clone)]
pub(crate) struct Label {
    pub(crate) component: &'static str,
    pub(crate) deployment: DeploymentId,
}

/// Bits of an instance key that hold the instance index.
const INSTANCE_BITS: u32 = 32;

/// The per-reactor state the watchdog reads.
#[derive(Debug, Default)]
pub(crate) struct ReactorGauge {
    /// Coarse time (ms since the watchdog's epoch, plus one) when the running handler began;
    /// 0 while idle.
    since: AtomicU64,
    /// Key of the running instance.
    who: AtomicU64,
    /// The topic of the message being handled.
    topic: Mutex<Option<Arc<str>>>,
    /// Address of the topic last recorded (0 for none), so an unchanged topic costs one
    /// relaxed load rather than a lock.
    topic_addr: std::sync::atomic::AtomicUsize,
    pub(crate) blocked: AtomicU64,
    pub(crate) handled: AtomicU64,
    /// Busy time estimated by sampling: every watchdog tick that finds a handler running
    /// adds one tick.
    pub(crate) busy_ms: AtomicU64,
}

/// Finds the label of a live deployment by its key: the runtime looks through its deployments
/// (only when a report needs a label), so a deploy registers nothing here.
pub(crate) type Resolver = Box<dyn Fn(u64) -> Option<Label> + Send + Sync>;

/// The coarse clock every reactor reads, and how instance keys are named.
pub(crate) struct Shared {
    now_ms: AtomicU64,
    /// Set once by the runtime.
    resolver: std::sync::OnceLock<Resolver>,
    /// The labels of the last deployments seen outside the runtime's table: deploying (a
    /// handler may run before the deploy is done) or stopping (draining, or a handler that
    /// outlives its deployment because a stop deadline passed). A report should still name
    /// them.
    outside: Mutex<std::collections::VecDeque<(u64, Label)>>,
    next_key: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("now_ms", &self.now_ms)
            .field("next_key", &self.next_key)
            .finish_non_exhaustive()
    }
}

/// Labels kept for deployments outside the table.
const OUTSIDE_LABELS: usize = 64;

impl Shared {
    fn new() -> Self {
        Shared {
            now_ms: AtomicU64::new(0),
            resolver: std::sync::OnceLock::new(),
            outside: Mutex::default(),
            next_key: AtomicU64::new(1),
        }
    }

    /// A key for a new deployment.
    pub(crate) fn register(self: &Arc<Self>) -> Registration {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        Registration {
            shared: self.clone(),
            key: key << INSTANCE_BITS,
        }
    }

    /// How the labels of live deployments are found; the first call sets it.
    pub(crate) fn resolve_with(&self, resolver: Resolver) {
        let _ = self.resolver.set(resolver);
    }
}

/// A deployment's key with the checker.
#[derive(Debug)]
pub(crate) struct Registration {
    shared: Arc<Shared>,
    key: u64,
}

impl Registration {
    /// The key of the deployment's instance `index`.
    pub(crate) fn key(&self, index: usize) -> u64 {
        self.key + index as u64
    }

    /// The deployment's own key, as a [`Resolver`] is asked for it.
    pub(crate) fn deployment_key(&self) -> u64 {
        self.key >> INSTANCE_BITS
    }

    /// Keeps the deployment's label where the checker finds it while the deployment is not
    /// in the runtime's table (deploying, stopping, or gone with a handler still running).
    pub(crate) fn remember(&self, label: Label) {
        let mut outside = self
            .shared
            .outside
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if outside.len() == OUTSIDE_LABELS {
            outside.pop_front();
        }
        outside.push_back((self.deployment_key(), label));
    }
}

impl Shared {
    /// The label of a deployment key, live or recently gone.
    fn label(&self, key: u64) -> Option<Label> {
        let live = self.resolver.get().and_then(|resolve| resolve(key));
        live.or_else(|| {
            self.outside
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, l)| l.clone())
        })
    }
}

/// What a reactor uses: its gauge and the shared clock.
#[derive(Debug, Clone)]
pub(crate) struct Stamp {
    pub(crate) gauge: Arc<ReactorGauge>,
    pub(crate) shared: Arc<Shared>,
}

impl Stamp {
    /// A handler of instance `key` begins.
    #[inline]
    pub(crate) fn begin(&self, key: u64) {
        self.gauge.who.store(key, Ordering::Relaxed);
        let now = self.shared.now_ms.load(Ordering::Relaxed);
        self.gauge.since.store(now + 1, Ordering::Relaxed);
    }

    /// The handler ended.
    #[inline]
    pub(crate) fn end(&self) {
        self.gauge.since.store(0, Ordering::Relaxed);
        // Only this reactor's thread writes the counter: a load and a store, no read-modify-write.
        let handled = self.gauge.handled.load(Ordering::Relaxed);
        self.gauge.handled.store(handled + 1, Ordering::Relaxed);
    }

    /// The running handler's topic.
    #[inline]
    pub(crate) fn topic(&self, topic: Option<&Arc<str>>) {
        let addr = topic.map_or(0, |t| Arc::as_ptr(t) as *const u8 as usize);
        if self.gauge.topic_addr.load(Ordering::Relaxed) != addr {
            self.new_topic(topic, addr);
        }
    }

    /// Another topic than the last handler's (at `addr`).
    #[cold]
    #[inline(never)]
    fn new_topic(&self, topic: Option<&Arc<str>>, addr: usize) {
        // Only this reactor writes the slot; the watchdog reads it when a handler blocks.
        *self.gauge.topic.lock().unwrap_or_else(|e| e.into_inner()) = topic.cloned();
        self.gauge.topic_addr.store(addr, Ordering::Relaxed);
    }
}

/// The watchdog thread.
pub(crate) struct Watchdog {
    pub(crate) shared: Arc<Shared>,
    pub(crate) gauges: Vec<Arc<ReactorGauge>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub(crate) fn start(reactors: usize, threshold: Duration, name: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::new());
        let gauges: Vec<Arc<ReactorGauge>> = (0..reactors).map(|_| Arc::default()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let tick = (threshold / 10).clamp(Duration::from_millis(1), Duration::from_millis(100));
        let thread = {
            let (shared, gauges, stop) = (shared.clone(), gauges.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("{name}-watchdog"))
                .spawn(move || watch(&shared, &gauges, &stop, threshold, tick))?
        };
        Ok(Watchdog {
            shared,
            gauges,
            stop,
            thread: Some(thread),
        })
    }

    /// How long the handler running on `reactor` has held it; `None` while the reactor is idle.
    /// Coarse (the checker's tick).
    pub(crate) fn held_for(&self, reactor: usize) -> Option<Duration> {
        let since = self.gauges.get(reactor)?.since.load(Ordering::Relaxed);
        (since != 0).then(|| {
            let now = self.shared.now_ms.load(Ordering::Relaxed);
            Duration::from_millis(now.saturating_sub(since - 1))
        })
    }

    /// What is running on `reactor` now, if a handler is: its component, instance, deployment,
    /// topic and for how long, in words.
    pub(crate) fn running(&self, reactor: usize) -> Option<String> {
        let gauge = self.gauges.get(reactor)?;
        let since = gauge.since.load(Ordering::Relaxed);
        if since == 0 {
            return None;
        }
        let elapsed = self
            .shared
            .now_ms
            .load(Ordering::Relaxed)
            .saturating_sub(since - 1);
        let who = gauge.who.load(Ordering::Relaxed);
        let topic = gauge
            .topic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let topic = topic.as_deref().unwrap_or("a direct message");
        Some(match self.shared.label(who >> INSTANCE_BITS) {
            Some(l) => format!(
                "`{}` instance {} (deployment {}) has been handling `{topic}` for {elapsed} ms",
                l.component,
                who & ((1 << INSTANCE_BITS) - 1),
                l.deployment
            ),
            None => format!("a handler has been running `{topic}` for {elapsed} ms"),
        })
    }

    pub(crate) fn stamp(&self, reactor: usize) -> Stamp {
        Stamp {
            gauge: self.gauges[reactor].clone(),
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
        }
    }
}

fn watch(
    shared: &Shared,
    gauges: &[Arc<ReactorGauge>],
    stop: &AtomicBool,
    threshold: Duration,
    tick: Duration,
) {
    let epoch = Instant::now();
    let threshold_ms = threshold.as_millis().max(1) as u64;
    let tick_ms = tick.as_millis().max(1) as u64;
    // Per reactor: the episode being reported (its start) and when to report it again.
    let mut reported: Vec<Option<(u64, u64)>> = vec![None; gauges.len()];
    while !stop.load(Ordering::Acquire) {
        std::thread::park_timeout(tick);
        let now = epoch.elapsed().as_millis() as u64;
        shared.now_ms.store(now, Ordering::Relaxed);
        for (index, gauge) in gauges.iter().enumerate() {
            let since = gauge.since.load(Ordering::Relaxed);
            if since == 0 {
                reported[index] = None;
                continue;
            }
            gauge.busy_ms.fetch_add(tick_ms, Ordering::Relaxed);
            let elapsed = now.saturating_sub(since - 1);
            if elapsed < threshold_ms {
                continue;
            }
            let due = match reported[index] {
                Some((episode, next)) if episode == since => now >= next,
                _ => {
                    gauge.blocked.fetch_add(1, Ordering::Relaxed);
                    true
                }
            };
            if !due {
                continue;
            }
            reported[index] = Some((since, now + 5 * threshold_ms));
            let who = gauge.who.load(Ordering::Relaxed);
            let label = shared.label(who >> INSTANCE_BITS);
            let topic = gauge
                .topic
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let (component, deployment, instance) = label.map_or(("?", String::new(), 0), |l| {
                (
                    l.component,
                    l.deployment.to_string(),
                    who & ((1 << INSTANCE_BITS) - 1),
                )
            });
            tracing::warn!(
                reactor = index,
                component,
                deployment = %deployment,
                instance,
                topic = topic.as_deref().unwrap_or("(direct)"),
                elapsed_ms = elapsed,
                threshold_ms,
                "a handler is blocking its reactor; move blocking work to `ctx.execute_blocking` or a worker component"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_the_resolver_then_from_those_outside_the_table() {
        let shared = Arc::new(Shared::new());
        let label = |component| Label {
            component,
            deployment: crate::ids::DeploymentId(uuid::Uuid::nil()),
        };
        let first = shared.register();
        let second = shared.register();
        assert_ne!(first.key(0), second.key(0));
        assert_eq!(first.key(3), first.key(0) + 3);
        assert_eq!(first.key(3) >> INSTANCE_BITS, first.deployment_key());
        // Without a resolver nothing is named.
        assert!(shared.label(first.deployment_key()).is_none());
        let live = first.deployment_key();
        shared.resolve_with(Box::new(move |key| (key == live).then(|| label("Live"))));
        assert_eq!(
            shared.label(first.deployment_key()).unwrap().component,
            "Live"
        );
        assert!(shared.label(second.deployment_key()).is_none());
        // A label kept outside the table is found when the resolver does not know the
        // deployment; only the last `OUTSIDE_LABELS` are kept.
        second.remember(label("Gone"));
        assert_eq!(
            shared.label(second.deployment_key()).unwrap().component,
            "Gone"
        );
        for _ in 0..OUTSIDE_LABELS {
            shared.register().remember(label("Other"));
        }
        assert!(shared.label(second.deployment_key()).is_none());
    }
}
