//! Fluxor workloads where placement is the point: W7 with the whole tree on one reactor or
//! placed by default, and W9, single-instance deployments awaited one by one from a handler.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fluxor::prelude::*;
use fluxor::BoxError;
use tokio::sync::oneshot;

use super::{main_thread, Num, Tiny};
use crate::{rss_bytes, Placement};

/// A runtime as the other workloads use, with room for a long W9 run in one request.
fn runtime() -> fluxor::Fluxor {
    fluxor::Fluxor::builder()
        .reactors(2)
        .mailbox_capacity(1024)
        .request_timeout(Duration::from_secs(600))
        .build()
        .expect("a fluxor runtime")
}

/// Options for a deployment made from a handler on `reactor`: pinned there, or placed by
/// default (spread over the reactors in turn).
fn options(pin: bool, reactor: usize) -> DeployOptions {
    if pin {
        DeployOptions::new().reactor(reactor)
    } else {
        DeployOptions::new()
    }
}

/// W9 figures: (deploy time, bytes per idle deployment, teardown time).
type Figures = Option<(Duration, f64, Duration)>;

/// Runs W9 in the handler that receives it.
#[derive(Message)]
#[message(reply = Figures)]
struct OneByOne {
    n: u64,
    pin: bool,
    /// Each deployment also binds one topic they all share (a broadcast topic every session
    /// listens on).
    shared: bool,
}

/// A broadcast to every [`Listener`].
#[derive(Message, Clone)]
struct Announce;

/// [`Tiny`] that also listens on a topic every one of them binds.
#[component]
struct Listener {
    handled: Arc<AtomicU64>,
}

#[component]
impl Listener {
    #[handler]
    fn num(&mut self, Num(n): Num) {
        self.handled
            .fetch_add(1 + n, std::sync::atomic::Ordering::Relaxed);
    }

    #[handler("w9.all")]
    fn all(&mut self, _: Announce) {}
}

/// W9's loop for deployments of `C`, made by `make` from the shared counter.
async fn deploy_each<C, F>(
    ctx: &Context<Deployer>,
    n: u64,
    pin: bool,
    make: impl Fn(Arc<AtomicU64>) -> F,
) -> Figures
where
    C: Component + fluxor::Handles<Num>,
    F: Fn() -> C + Send + Sync + 'static,
{
    let handled = Arc::new(AtomicU64::new(0));
    let mut ids = Vec::with_capacity(n as usize);
    let before = rss_bytes();
    let start = Instant::now();
    for _ in 0..n {
        let id = ctx
            .deploy(make(handled.clone()), options(pin, ctx.reactor()))
            .await;
        ids.push(id.ok()?);
    }
    let deployed = start.elapsed();
    let per_deployment = rss_bytes().saturating_sub(before) as f64 / n as f64;
    for &id in &ids {
        ctx.actor_ref::<C>(id, 0)?.send(Num(0)).ok()?;
    }
    crate::until_handled(&handled, n).await;
    let stop = Instant::now();
    for id in ids {
        ctx.undeploy(id).await.ok()?;
    }
    Some((deployed, per_deployment, stop.elapsed()))
}

#[component]
#[derive(Default)]
struct Deployer;

#[component]
impl Deployer {
    #[handler]
    async fn one_by_one(
        &mut self,
        OneByOne { n, pin, shared }: OneByOne,
        ctx: &mut Context<Self>,
    ) -> Figures {
        if shared {
            deploy_each(ctx, n, pin, |handled| {
                move || Listener {
                    handled: handled.clone(),
                }
            })
            .await
        } else {
            deploy_each(ctx, n, pin, |handled| {
                move || Tiny {
                    handled: handled.clone(),
                }
            })
            .await
        }
    }
}

/// W9: the deployer on reactor 0; its deployments pinned to its reactor (`Same`) or placed by
/// default; with `shared`, each also binds one topic they all share.
pub(super) fn one_by_one(placement: Placement, n: u64, shared: bool) -> Figures {
    main_thread().block_on(async {
        let rt = runtime();
        let id = rt
            .deploy(Deployer::default, DeployOptions::new().reactor(0))
            .await
            .ok()?;
        let deployer = rt.actor_ref::<Deployer>(id, 0)?;
        let figures = deployer
            .request(OneByOne {
                n,
                pin: placement == Placement::Same,
                shared,
            })
            .await
            .ok()?;
        rt.shutdown(Duration::from_secs(60)).await.ok()?;
        figures
    })
}

/// Grows a subtree, as `fluxor_tests::Grow`, with the placement of every deployment in it.
#[derive(Message)]
struct Branch {
    num: u64,
    size: u64,
    pin: bool,
    parent: Option<ActorRef<Node>>,
    report: Option<oneshot::Sender<u64>>,
}

/// A child's subtree sum.
#[derive(Message)]
struct Sum(u64);

/// A skynet node as `fluxor_tests::Skynet`, whose children are pinned to its reactor or placed
/// by default, at every level.
#[component]
#[derive(Default)]
struct Node {
    sum: u64,
    waiting: u64,
    parent: Option<ActorRef<Node>>,
    report: Option<oneshot::Sender<u64>>,
    children: Option<DeploymentId>,
}

#[component]
impl Node {
    #[handler]
    async fn branch(&mut self, b: Branch, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.parent = b.parent;
        self.report = b.report;
        if b.size <= 1 {
            self.waiting = 1;
            return self.sum(Sum(b.num), ctx).await;
        }
        let fanout = crate::FANOUT;
        let options = options(b.pin, ctx.reactor()).instances(fanout as usize);
        let children = ctx.deploy(Node::default, options).await?;
        self.children = Some(children);
        self.waiting = fanout;
        let size = b.size / fanout;
        for i in 0..fanout {
            let child = ctx
                .actor_ref::<Node>(children, i as usize)
                .ok_or("a child instance is missing")?;
            child
                .send(Branch {
                    num: b.num + i * size,
                    size,
                    pin: b.pin,
                    parent: Some(ctx.myself().clone()),
                    report: None,
                })
                .map_err(|e| e.error)?;
        }
        Ok(())
    }

    #[handler]
    async fn sum(&mut self, Sum(n): Sum, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.sum += n;
        self.waiting -= 1;
        if self.waiting > 0 {
            return Ok(());
        }
        if let Some(children) = self.children.take() {
            ctx.undeploy(children).await?;
        }
        if let Some(parent) = &self.parent {
            parent.send(Sum(self.sum)).map_err(|e| e.error)?;
        }
        if let Some(report) = self.report.take() {
            let _ = report.send(self.sum);
        }
        Ok(())
    }
}

/// W7 with every node on reactor 0 (`Same`) or every deployment placed by default.
pub(super) fn skynet(placement: Placement, leaves: u64) -> Option<Duration> {
    let pin = placement == Placement::Same;
    main_thread().block_on(async {
        let rt = runtime();
        let start = Instant::now();
        let root = rt.deploy(Node::default, options(pin, 0)).await.ok()?;
        let (tx, rx) = oneshot::channel();
        rt.actor_ref::<Node>(root, 0)?
            .send(Branch {
                num: 0,
                size: leaves,
                pin,
                parent: None,
                report: Some(tx),
            })
            .ok()?;
        let sum = rx.await.ok()?;
        let elapsed = start.elapsed();
        rt.shutdown(Duration::from_secs(60)).await.ok()?;
        crate::skynet_checked("fluxor", leaves, sum, elapsed)
    })
}
