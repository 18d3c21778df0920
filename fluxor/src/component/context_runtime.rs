//! What a [`Context`] reaches in its runtime: deploying, undeploying and stopping, other
//! instances, readiness checks, the snapshot.

use std::future::Future;

use super::{ActorRef, Component, Context};

impl<C: Component> Context<C> {
    /// Adds a readiness check of this deployment's own (its database connection, a downstream
    /// service it needs), reported by [`Fluxor::ready`](crate::Fluxor::ready) and `/ready` as
    /// `<Component>.<name>` and removed when the deployment is undeployed. Each instance may
    /// add it; a later one replaces the earlier of the same name. Like every added check it
    /// runs off the instance, with the runtime's check deadline: a hung check reports "timed
    /// out", it does not hold the probe.
    ///
    /// ```
    /// use fluxor::prelude::*;
    ///
    /// #[component]
    /// #[derive(Default)]
    /// struct Store {
    ///     pool: std::sync::Arc<std::sync::atomic::AtomicBool>, // stands for a connection pool
    /// }
    ///
    /// #[component]
    /// impl Store {
    ///     #[on_start]
    ///     fn open(&mut self, ctx: &mut Context<Self>) {
    ///         let pool = self.pool.clone();
    ///         ctx.add_readiness_check("database", move || {
    ///             let up = pool.load(std::sync::atomic::Ordering::Relaxed);
    ///             async move { if up { Ok(()) } else { Err("no connection".to_owned()) } }
    ///         });
    ///     }
    /// }
    /// ```
    pub fn add_readiness_check<F, Fut>(&self, name: &str, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        if let Some(runtime) = self.runtime().upgrade() {
            runtime.add_check(
                format!("{}.{name}", C::name()),
                Some(self.shared.deployment),
                check,
            );
        }
    }

    /// The runtime this instance belongs to, held weakly (the runtime owns its deployments):
    /// to deploy, reconfigure or inspect from a handler.
    pub fn runtime(&self) -> crate::runtime::WeakFluxor {
        self.shared.services.runtime.clone()
    }

    /// A snapshot of the whole runtime, as [`Fluxor::inspect`](crate::Fluxor::inspect) takes
    /// it; `None` only while the runtime is being torn down.
    pub fn inspect(&self) -> Option<crate::inspect::Snapshot> {
        self.runtime().upgrade().map(|rt| rt.inspect())
    }

    /// Deploys a component from inside a handler (or `start`), exactly as
    /// [`Fluxor::deploy`](crate::Fluxor::deploy) does: the new instances are running when it
    /// returns. A component that deploys others is responsible for undeploying them (e.g. in
    /// its `stop`). [`DeployError::ShuttingDown`](crate::error::DeployError::ShuttingDown) once the
    /// runtime is going away.
    ///
    /// ```
    /// use fluxor::prelude::*;
    ///
    /// #[derive(Message)]
    /// #[message(reply = u64)]
    /// struct Sum(u64);
    ///
    /// #[component]
    /// #[derive(Default)]
    /// struct Leaf;
    ///
    /// #[component]
    /// impl Leaf {
    ///     #[handler]
    ///     fn sum(&mut self, Sum(n): Sum) -> u64 {
    ///         n
    ///     }
    /// }
    ///
    /// #[component]
    /// #[derive(Default)]
    /// struct Parent;
    ///
    /// #[component]
    /// impl Parent {
    ///     #[handler("tree.sum")]
    ///     async fn sum(&mut self, Sum(n): Sum, ctx: &mut Context<Self>) -> u64 {
    ///         let Ok(children) = ctx.deploy(Leaf::default, DeployOptions::new().instances(2)).await else {
    ///             return 0;
    ///         };
    ///         let mut total = 0;
    ///         for i in 0..2 {
    ///             if let Some(leaf) = ctx.actor_ref::<Leaf>(children, i) {
    ///                 total += leaf.request(Sum(n)).await.unwrap_or(0);
    ///             }
    ///         }
    ///         let _ = ctx.undeploy(children).await;
    ///         total
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let runtime = Fluxor::builder().reactors(1).build().unwrap();
    /// runtime.deploy(Parent::default, DeployOptions::new()).await.unwrap();
    /// assert_eq!(runtime.bus().request("tree.sum", Sum(21)).await.unwrap(), 42);
    /// runtime.shutdown(std::time::Duration::from_secs(5)).await.unwrap();
    /// # }
    /// ```
    pub fn deploy<D, F>(
        &self,
        factory: F,
        options: crate::runtime::DeployOptions,
    ) -> impl Future<Output = Result<crate::ids::DeploymentId, crate::error::DeployError>> + Send + 'static
    where
        D: Component,
        F: Fn() -> D + Send + Sync + 'static,
    {
        // Boxed: a handler that can deploy keeps a pointer in its future, not the deploy's
        // plan, and so does every future of its component's handlers (they share one type),
        // which are made and moved for every message.
        let deploy = self
            .runtime()
            .upgrade()
            .map(|runtime| Box::pin(runtime.deploy(factory, options)));
        async move {
            match deploy {
                Some(deploy) => deploy.await,
                None => Err(crate::error::DeployError::ShuttingDown),
            }
        }
    }

    /// Stops this instance's deployment (every instance of it) once the current handler has
    /// returned: it is undeployed as [`Fluxor::undeploy`](crate::Fluxor::undeploy) does, so
    /// no new message reaches it, the ones already queued are handled, and `#[on_stop]` runs.
    /// The way for a session or a one-off worker to end itself. Calling it again, or while
    /// the runtime shuts down, does nothing more.
    ///
    /// ```
    /// use fluxor::prelude::*;
    ///
    /// #[derive(Message)]
    /// struct Bye;
    ///
    /// #[component]
    /// #[derive(Default)]
    /// struct Session;
    ///
    /// #[component]
    /// impl Session {
    ///     #[handler("session.bye")]
    ///     fn bye(&mut self, _: Bye, ctx: &mut Context<Self>) {
    ///         ctx.stop();
    ///     }
    /// }
    /// ```
    pub fn stop(&self) {
        let Some(runtime) = self.runtime().upgrade() else {
            return;
        };
        let id = self.shared.deployment;
        // Not awaited here: the undeploy waits for this very handler to return.
        self.reactor_handle().spawn(async move {
            if let Err(e) = runtime.undeploy(id).await {
                tracing::debug!(deployment = %id, error = %e, "ctx.stop(): not undeployed");
            }
        });
    }

    /// Undeploys a deployment from inside a handler, as
    /// [`Fluxor::undeploy`](crate::Fluxor::undeploy) does (its instances drain until the
    /// runtime's shutdown timeout, then stop). A handler cannot undeploy its own deployment
    /// this way: [`UndeployError::OwnDeployment`](crate::error::UndeployError::OwnDeployment);
    /// [`stop`](Self::stop) is the way.
    pub async fn undeploy(
        &self,
        id: crate::ids::DeploymentId,
    ) -> Result<(), crate::error::UndeployError> {
        if id == self.shared.deployment {
            return Err(crate::error::UndeployError::OwnDeployment(id));
        }
        match self.runtime().upgrade() {
            // Boxed, as a deploy is: every handler future of the component would carry it.
            Some(runtime) => Box::pin(runtime.undeploy(id)).await,
            None => Err(crate::error::UndeployError::Unknown(id)),
        }
    }

    /// An [`ActorRef`] to instance `instance` of deployment `id`, if it runs a `D`; see
    /// [`Fluxor::actor_ref`](crate::Fluxor::actor_ref).
    pub fn actor_ref<D: Component>(
        &self,
        id: crate::ids::DeploymentId,
        instance: usize,
    ) -> Option<ActorRef<D>> {
        self.runtime().upgrade()?.actor_ref(id, instance)
    }
}
