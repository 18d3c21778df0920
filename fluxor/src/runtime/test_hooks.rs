//! What the test kit (`fluxor::testing`, feature `test-util`) asks of a runtime: reading a
//! component's state, telling whether the system is quiet, running a job on every reactor,
//! and the crashes seen. This file is the test kit's one entry point into the runtime.

use std::sync::atomic::Ordering;

use super::handle::Fluxor;
use crate::component::Component;
use crate::ids::DeploymentId;

impl Fluxor {
    /// Reads the state of a live instance between two of its messages.
    pub(crate) async fn with_state<C, R, F>(
        &self,
        id: DeploymentId,
        instance: usize,
        read: F,
    ) -> Result<R, String>
    where
        C: Component,
        R: Send + 'static,
        F: FnOnce(&C) -> R + Send + 'static,
    {
        let sender = {
            let table = self.lock();
            let d = table
                .get(id)
                .ok_or_else(|| format!("no live deployment has id {id}"))?;
            let h = d.instances().get(instance).ok_or_else(|| {
                format!(
                    "deployment {id} has {} instance(s); there is no instance {instance}",
                    d.instances().len()
                )
            })?;
            if d.component_type() != std::any::TypeId::of::<C>() {
                return Err(format!(
                    "deployment {id} runs `{}`, not `{}`",
                    d.component(),
                    C::name()
                ));
            }
            h.clone()
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let read = Box::new(move |c: &dyn std::any::Any| {
            if let Some(c) = c.downcast_ref::<C>() {
                let _ = tx.send(read(c));
            }
        });
        sender
            .control(crate::mailbox::Control::Inspect(read))
            .map_err(|_| {
                format!("instance {instance} of deployment {id} has stopped or has too many signals waiting")
            })?;
        rx.await
            .map_err(|_| format!("instance {instance} of deployment {id} stopped (or is restarting) before it could be read"))
    }

    /// `None` when every mailbox is empty, no handler runs and the worker pool is idle;
    /// otherwise what is still busy.
    pub(crate) fn busy_report(&self) -> Option<String> {
        let mut found = Vec::new();
        for d in self.lock().iter() {
            for (index, h) in d.instances().iter().enumerate() {
                let queued = h.queued();
                if queued > 0 || h.stats().busy.load(Ordering::Relaxed) {
                    found.push((
                        (d.order(), index),
                        format!(
                            "`{}` instance {} ({} queued, handling: {})",
                            d.component(),
                            index,
                            queued,
                            h.stats().busy.load(Ordering::Relaxed)
                        ),
                    ));
                }
            }
        }
        let mut busy = super::table::in_deploy_order(found);
        let w = self.inner.services.workers.stats();
        if w.busy > 0 || w.queued > 0 {
            busy.push(format!(
                "worker pool ({} running, {} queued)",
                w.busy, w.queued
            ));
        }
        (!busy.is_empty()).then(|| busy.join(", "))
    }

    /// Runs `job(reactor index)` on every reactor (on its thread, inside its runtime) and waits for all of
    /// them.
    pub(crate) async fn on_every_reactor<F, Fut>(&self, job: F) -> bool
    where
        F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let mut waits = Vec::new();
        for r in &self.inner.reactors {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let job = job.clone();
            let index = r.index;
            if !r
                .run(Box::new(move || {
                    tokio::task::spawn_local(async move {
                        job(index).await;
                        let _ = tx.send(());
                    });
                }))
                .await
            {
                return false;
            }
            waits.push(rx);
        }
        for w in waits {
            if w.await.is_err() {
                return false;
            }
        }
        true
    }

    /// How many handler panics and failed restarts happened, and the first few of them.
    pub(crate) fn crash_report(&self) -> (u64, Vec<String>) {
        let e = &self.inner.services.escalation;
        (
            e.crashes.load(Ordering::Relaxed),
            e.first_crashes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}
