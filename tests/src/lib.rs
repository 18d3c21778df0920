//! Components shared by the integration tests in `tests/tests/`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fluxor::prelude::*;

pub mod nats;
use fluxor::BoxError;

/// Adds to a running total; answers the total.
#[derive(Debug)]
pub struct Add(pub u64);
impl Message for Add {
    type Reply = u64;
}

/// Answers which instance (deployment index) handled it.
#[derive(Debug, Clone)]
pub struct Whoami;
impl Message for Whoami {
    type Reply = usize;
}

/// Sleeps (asynchronously) for the given time, then answers.
#[derive(Debug)]
pub struct Nap(pub Duration);
impl Message for Nap {
    type Reply = ();
}

/// Answers the request id the handler saw, and (when `forward_to` is set) the one the next hop
/// saw.
#[derive(Debug)]
pub struct Trace {
    /// Topic of the next hop, if any.
    pub forward_to: Option<String>,
}
impl Message for Trace {
    type Reply = Vec<String>;
}

/// Fails with an error or a panic.
#[derive(Debug)]
pub enum Fail {
    /// Return `Err`.
    Error,
    /// Panic.
    Panic,
}
impl Message for Fail {
    type Reply = u64;
}

/// Blocks the reactor thread (a misbehaving handler) for the given time.
#[derive(Debug)]
pub struct Block(pub Duration);
impl Message for Block {
    type Reply = ();
}

/// A numbered message; the probe checks each sender's numbers arrive in order.
#[derive(Debug)]
pub struct Seq {
    /// Who sent it.
    pub sender: u8,
    /// 1, 2, 3, ... per sender.
    pub n: u64,
}
impl Message for Seq {
    type Reply = ();
}

/// Counts events published to it.
#[derive(Debug, Clone)]
pub struct Event(pub u64);
impl Message for Event {
    type Reply = ();
}

/// A test component binding `t.add`, `t.whoami`, `t.nap`, `t.trace`, `t.fail`, `t.block`,
/// `t.seq`, and wildcard events on `t.events.*`; it also takes `Add` directly.
#[component(config = ProbeConfig)]
#[derive(Debug, Default)]
pub struct Probe {
    total: u64,
    stats: Option<Arc<Counters>>,
    last_seq: std::collections::HashMap<u8, u64>,
}

/// Counters a test can read from outside the component.
#[derive(Debug, Default)]
pub struct Counters {
    /// `Add` messages handled.
    pub adds: AtomicU64,
    /// Events received.
    pub events: AtomicU64,
    /// `Seq` messages that followed their sender's previous one.
    pub in_order: AtomicU64,
    /// `Seq` messages that did not.
    pub out_of_order: AtomicU64,
    /// Times `stop` ran.
    pub stops: AtomicU64,
    /// `Nap` handlers that started (counted before the nap).
    pub naps: AtomicU64,
    /// `Block` handlers that started (counted before blocking).
    pub blocks: AtomicU64,
}

impl Probe {
    /// A factory of probes that record into `counters`.
    pub fn with(counters: Arc<Counters>) -> impl Fn() -> Probe + Send + Sync + 'static {
        move || Probe {
            stats: Some(counters.clone()),
            ..Probe::default()
        }
    }

    fn count(&self, pick: impl Fn(&Counters) -> &AtomicU64) {
        if let Some(s) = &self.stats {
            pick(s).fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Config of [`Probe`].
#[derive(Debug, serde::Deserialize)]
pub struct ProbeConfig {
    /// Make `start` fail on this instance index.
    #[serde(default)]
    pub fail_start_on: Option<usize>,
    /// Make `stop` fail.
    #[serde(default)]
    pub fail_stop: bool,
}

#[component]
impl Probe {
    #[on_start]
    fn begin(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        if ctx.config().fail_start_on == Some(ctx.instance()) {
            return Err(format!("instance {} refuses to start", ctx.instance()).into());
        }
        Ok(())
    }

    #[on_stop]
    async fn end(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.count(|c| &c.stops);
        if ctx.config().fail_stop {
            return Err("stop refused".into());
        }
        Ok(())
    }

    #[handler("t.add")]
    fn add(&mut self, Add(n): Add) -> u64 {
        self.total += n;
        self.count(|c| &c.adds);
        self.total
    }

    #[handler]
    fn add_direct(&mut self, msg: Add) -> u64 {
        self.add(msg)
    }

    #[handler("t.whoami")]
    fn whoami(&mut self, _: Whoami, ctx: &mut Context<Self>) -> usize {
        ctx.instance()
    }

    #[handler("t.nap")]
    async fn nap(&mut self, Nap(d): Nap) {
        self.count(|c| &c.naps);
        tokio::time::sleep(d).await;
    }

    #[handler("t.trace")]
    async fn trace(
        &mut self,
        msg: Trace,
        ctx: &mut Context<Self>,
    ) -> Result<Vec<String>, BusError> {
        follow(msg, ctx).await
    }

    #[handler("t.fail")]
    fn fail(&mut self, f: Fail) -> Result<u64, &'static str> {
        match f {
            Fail::Error => Err("refused on purpose"),
            Fail::Panic => panic!("boom on purpose"),
        }
    }

    #[handler("t.events.*")]
    fn event(&mut self, _: Event) {
        self.count(|c| &c.events);
    }

    #[handler("t.block")]
    fn block(&mut self, Block(d): Block) {
        self.count(|c| &c.blocks);
        std::thread::sleep(d);
    }

    #[handler("t.seq")]
    fn seq(&mut self, Seq { sender, n }: Seq) {
        let last = self.last_seq.entry(sender).or_insert(0);
        let in_order = *last + 1 == n;
        *last = n;
        self.count(|c| {
            if in_order {
                &c.in_order
            } else {
                &c.out_of_order
            }
        });
    }
}

/// Waits until `cond` holds, looking again every millisecond.
///
/// # Panics
/// If it does not hold within `within` (real time), naming `what` was awaited.
pub async fn eventually(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited {within:?} for {what}, in vain"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Asks the `Probe` instances on `t.nap` for `n` naps of `each` (a nap holds its instance) and
/// waits until all have started. Returns the requests, to await once the naps are over.
pub async fn hold(
    rt: &fluxor::Fluxor,
    counters: &Counters,
    n: u64,
    each: Duration,
) -> Vec<tokio::task::JoinHandle<Result<(), fluxor::BusError>>> {
    let before = counters.naps.load(std::sync::atomic::Ordering::SeqCst);
    let naps = (0..n)
        .map(|_| {
            let bus = rt.bus().clone();
            tokio::spawn(async move { bus.request("t.nap", Nap(each)).await })
        })
        .collect();
    eventually("the naps to start", Duration::from_secs(5), || {
        counters.naps.load(std::sync::atomic::Ordering::SeqCst) == before + n
    })
    .await;
    naps
}

/// Answers the request id seen here, followed by those seen on the next hop, if any.
async fn follow<C: fluxor::Component>(
    msg: Trace,
    ctx: &Context<C>,
) -> Result<Vec<String>, BusError> {
    let mut ids = vec![ctx.request_id().map(|u| u.to_string()).unwrap_or_default()];
    if let Some(next) = msg.forward_to {
        ids.extend(
            ctx.request(next.as_str(), Trace { forward_to: None })
                .await?,
        );
    }
    Ok(ids)
}

/// Forwards `relay.trace` to the given hop, so a test can follow a request id over two hops.
#[component]
#[derive(Debug, Default)]
pub struct Relay;

#[component]
impl Relay {
    #[handler("relay.trace")]
    async fn trace(
        &mut self,
        msg: Trace,
        ctx: &mut Context<Self>,
    ) -> Result<Vec<String>, BusError> {
        follow(msg, ctx).await
    }
}

/// Collects the fields of a tracing span or event as text, for tests that capture them.
#[derive(Debug, Default)]
pub struct Fields(pub std::collections::HashMap<String, String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

/// Grows a skynet subtree: the node that gets it deploys ten children (from its handler), hands
/// each a tenth of the numbers, and reports the sum of its leaves to its parent (or, at the
/// root, on `report`). A leaf reports its own number.
#[derive(Debug)]
pub struct Grow {
    /// The first number of this subtree.
    pub num: u64,
    /// Leaves in this subtree (a power of ten).
    pub size: u64,
    /// The node to report to; `None` at the root.
    pub parent: Option<ActorRef<Skynet>>,
    /// Where the root reports the total.
    pub report: Option<tokio::sync::oneshot::Sender<u64>>,
    /// Where each node deploys its children.
    pub placement: TreePlacement,
}
impl Message for Grow {
    type Reply = ();
}

/// A child's subtree sum, reported to its parent.
#[derive(Debug)]
pub struct Part(pub u64);
impl Message for Part {
    type Reply = ();
}

/// A node of the skynet tree: it deploys its children, sums what they report, reports up and
/// undeploys them.
#[component]
#[derive(Debug, Default)]
pub struct Skynet {
    sum: u64,
    waiting: usize,
    parent: Option<ActorRef<Skynet>>,
    report: Option<tokio::sync::oneshot::Sender<u64>>,
    children: Option<DeploymentId>,
}

/// Children per skynet node.
pub const SKYNET_FANOUT: usize = 10;

/// Where a skynet node deploys its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreePlacement {
    /// The root spreads its children over the reactors; below it, a subtree stays on the
    /// reactor it started on, so its deploys, messages and memory stay on one thread.
    Subtrees,
    /// Every node on the reactor of the one that deployed it.
    OneReactor,
    /// Every deployment placed by default (spread over the reactors in turn).
    Default,
}

#[component]
impl Skynet {
    #[handler]
    async fn grow(&mut self, grow: Grow, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.parent = grow.parent;
        self.report = grow.report;
        if grow.size <= 1 {
            self.waiting = 1;
            return self.part(Part(grow.num), ctx).await;
        }
        let mut options = DeployOptions::new().instances(SKYNET_FANOUT);
        let pin = match grow.placement {
            TreePlacement::Subtrees => self.parent.is_some(),
            TreePlacement::OneReactor => true,
            TreePlacement::Default => false,
        };
        if pin {
            options = options.reactor(ctx.reactor());
        }
        let children = ctx.deploy(Skynet::default, options).await?;
        self.children = Some(children);
        self.waiting = SKYNET_FANOUT;
        let size = grow.size / SKYNET_FANOUT as u64;
        for i in 0..SKYNET_FANOUT {
            let child = ctx
                .actor_ref::<Skynet>(children, i)
                .ok_or("a child instance is missing")?;
            child
                .send(Grow {
                    num: grow.num + i as u64 * size,
                    size,
                    parent: Some(ctx.myself().clone()),
                    report: None,
                    placement: grow.placement,
                })
                .map_err(|e| e.error)?;
        }
        Ok(())
    }

    #[handler]
    async fn part(&mut self, Part(n): Part, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.sum += n;
        self.waiting -= 1;
        if self.waiting > 0 {
            return Ok(());
        }
        if let Some(children) = self.children.take() {
            ctx.undeploy(children).await?;
        }
        if let Some(parent) = &self.parent {
            parent.send(Part(self.sum)).map_err(|e| e.error)?;
        }
        if let Some(report) = self.report.take() {
            let _ = report.send(self.sum);
        }
        Ok(())
    }
}
