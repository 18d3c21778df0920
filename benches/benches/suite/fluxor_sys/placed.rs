//! Fluxor workloads where placement is the point: W7 with the whole tree on one reactor or
//! placed by default, and W9, single-instance deployments awaited one by one from a handler.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fluxor::prelude::*;
use tokio::sync::oneshot;

use super::{main_thread, Num, Tiny};
use crate::{rss_bytes, Placement};

/// A runtime as the other workloads use, with room for a long W9 run in one request.
fn runtime() -> fluxor::Fluxor {
    super::runtime_with(Duration::from_secs(600))
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
    /// The undeploys are started together, then all awaited.
    together: bool,
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
    OneByOne {
        n, pin, together, ..
    }: OneByOne,
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
    if together {
        let all = futures_util::future::join_all(ids.into_iter().map(|id| ctx.undeploy(id))).await;
        all.into_iter().collect::<Result<Vec<()>, _>>().ok()?;
    } else {
        for id in ids {
            ctx.undeploy(id).await.ok()?;
        }
    }
    Some((deployed, per_deployment, stop.elapsed()))
}

#[component]
#[derive(Default)]
struct Deployer;

#[component]
impl Deployer {
    #[handler]
    async fn one_by_one(&mut self, run: OneByOne, ctx: &mut Context<Self>) -> Figures {
        if run.shared {
            deploy_each(ctx, run, |handled| {
                move || Listener {
                    handled: handled.clone(),
                }
            })
            .await
        } else {
            deploy_each(ctx, run, |handled| {
                move || Tiny {
                    handled: handled.clone(),
                }
            })
            .await
        }
    }
}

/// W9: the deployer on reactor 0; its deployments pinned to its reactor (`Same`) or placed by
/// default; with `shared`, each also binds one topic they all share; with `together`, the
/// undeploys are started together.
pub(super) fn one_by_one(placement: Placement, n: u64, shared: bool, together: bool) -> Figures {
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
                together,
            })
            .await
            .ok()?;
        rt.shutdown(Duration::from_secs(60)).await.ok()?;
        figures
    })
}

/// W7 with every node on reactor 0 (`Same`) or every deployment placed by default.
pub(super) fn skynet(placement: Placement, leaves: u64) -> Option<Duration> {
    use fluxor_tests::{Grow, Skynet, TreePlacement};
    let (pin, placement) = match placement {
        Placement::Same => (true, TreePlacement::OneReactor),
        _ => (false, TreePlacement::Default),
    };
    main_thread().block_on(async {
        let rt = runtime();
        let start = Instant::now();
        let root = rt.deploy(Skynet::default, options(pin, 0)).await.ok()?;
        let (tx, rx) = oneshot::channel();
        rt.actor_ref::<Skynet>(root, 0)?
            .send(Grow {
                num: 0,
                size: leaves,
                parent: None,
                report: Some(tx),
                placement,
            })
            .ok()?;
        let sum = rx.await.ok()?;
        let elapsed = start.elapsed();
        rt.shutdown(Duration::from_secs(60)).await.ok()?;
        crate::skynet_checked("fluxor", leaves, sum, elapsed)
    })
}
