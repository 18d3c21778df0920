//! Components shared by the integration tests in `tests/tests/`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fluxor::{Bindings, BoxError, Component, Context, Envelope, Handles, Message, Outcome};

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

/// A test component binding `t.add`, `t.whoami`, `t.nap`, `t.trace`, `t.fail`, and wildcard
/// events on `t.events.*`.
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
}

impl Probe {
    /// A probe that records into `counters`.
    pub fn with(counters: Arc<Counters>) -> impl Fn() -> Probe + Send + Sync + 'static {
        move || Probe {
            total: 0,
            stats: Some(counters.clone()),
            last_seq: Default::default(),
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

/// The mailbox enum of [`Probe`].
#[derive(Debug)]
pub enum ProbeMsg {
    /// `t.add` and direct.
    Add(Envelope<Add>),
    /// `t.whoami`.
    Whoami(Envelope<Whoami>),
    /// `t.nap`.
    Nap(Envelope<Nap>),
    /// `t.trace`.
    Trace(Envelope<Trace>),
    /// `t.fail`.
    Fail(Envelope<Fail>),
    /// `t.events.*`.
    Event(Envelope<Event>),
    /// `t.block`.
    Block(Envelope<Block>),
    /// `t.seq`.
    Seq(Envelope<Seq>),
}

impl Component for Probe {
    type Msg = ProbeMsg;
    type Config = ProbeConfig;

    fn name() -> &'static str {
        "Probe"
    }

    fn bindings(b: &mut Bindings<Self>) {
        b.bind("t.add", ProbeMsg::Add)
            .bind("t.whoami", ProbeMsg::Whoami)
            .bind("t.nap", ProbeMsg::Nap)
            .bind("t.trace", ProbeMsg::Trace)
            .bind("t.fail", ProbeMsg::Fail)
            .bind("t.events.*", ProbeMsg::Event)
            .bind("t.block", ProbeMsg::Block)
            .bind("t.seq", ProbeMsg::Seq);
    }

    async fn start(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        if ctx.config().fail_start_on == Some(ctx.instance()) {
            return Err(format!("instance {} refuses to start", ctx.instance()).into());
        }
        Ok(())
    }

    async fn stop(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        if let Some(s) = &self.stats {
            s.stops.fetch_add(1, Ordering::SeqCst);
        }
        if ctx.config().fail_stop {
            return Err("stop refused".into());
        }
        Ok(())
    }

    async fn handle(&mut self, msg: ProbeMsg, ctx: &mut Context<Self>) -> Outcome {
        match msg {
            ProbeMsg::Add(env) => {
                let (Add(n), r) = ctx.accept(env);
                r.run(async {
                    self.total += n;
                    if let Some(s) = &self.stats {
                        s.adds.fetch_add(1, Ordering::SeqCst);
                    }
                    self.total
                })
                .await
            }
            ProbeMsg::Whoami(env) => {
                let (Whoami, r) = ctx.accept(env);
                let i = ctx.instance();
                r.run(async move { i }).await
            }
            ProbeMsg::Nap(env) => {
                let (Nap(d), r) = ctx.accept(env);
                r.run(tokio::time::sleep(d)).await
            }
            ProbeMsg::Trace(env) => {
                let (Trace { forward_to }, r) = ctx.accept(env);
                let ctx = &*ctx;
                r.run(async move {
                    let mut ids = vec![ctx.request_id().map(|u| u.to_string()).unwrap_or_default()];
                    if let Some(next) = forward_to {
                        ids.extend(
                            ctx.request(next.as_str(), Trace { forward_to: None })
                                .await?,
                        );
                    }
                    Ok::<_, fluxor::BusError>(ids)
                })
                .await
            }
            ProbeMsg::Fail(env) => {
                let (f, r) = ctx.accept(env);
                r.run(async move {
                    match f {
                        Fail::Error => Err("refused on purpose"),
                        Fail::Panic => panic!("boom on purpose"),
                    }
                })
                .await
            }
            ProbeMsg::Seq(env) => {
                let (Seq { sender, n }, r) = ctx.accept(env);
                let last = self.last_seq.entry(sender).or_insert(0);
                let ok = *last + 1 == n;
                *last = n;
                if let Some(s) = &self.stats {
                    let c = if ok { &s.in_order } else { &s.out_of_order };
                    c.fetch_add(1, Ordering::SeqCst);
                }
                r.run(async {}).await
            }
            ProbeMsg::Block(env) => {
                let (Block(d), r) = ctx.accept(env);
                r.run(async move { std::thread::sleep(d) }).await
            }
            ProbeMsg::Event(env) => {
                let (Event(_), r) = ctx.accept(env);
                if let Some(s) = &self.stats {
                    s.events.fetch_add(1, Ordering::SeqCst);
                }
                r.run(async {}).await
            }
        }
    }
}

impl Handles<Add> for Probe {
    fn wrap(envelope: Envelope<Add>) -> ProbeMsg {
        ProbeMsg::Add(envelope)
    }
}

/// Forwards `relay.trace` to the given hop, so a test can follow a request id over two hops.
#[derive(Debug, Default)]
pub struct Relay;

/// The mailbox enum of [`Relay`].
#[derive(Debug)]
pub enum RelayMsg {
    /// `relay.trace`.
    Trace(Envelope<Trace>),
}

impl Component for Relay {
    type Msg = RelayMsg;
    type Config = ();

    fn bindings(b: &mut Bindings<Self>) {
        b.bind("relay.trace", RelayMsg::Trace);
    }

    async fn handle(&mut self, msg: RelayMsg, ctx: &mut Context<Self>) -> Outcome {
        let RelayMsg::Trace(env) = msg;
        let (Trace { forward_to }, r) = ctx.accept(env);
        let ctx = &*ctx;
        r.run(async move {
            let mut ids = vec![ctx.request_id().map(|u| u.to_string()).unwrap_or_default()];
            if let Some(next) = forward_to {
                let next_hop = Trace { forward_to: None };
                ids.extend(ctx.request(next.as_str(), next_hop).await?);
            }
            Ok::<_, fluxor::BusError>(ids)
        })
        .await
    }
}
