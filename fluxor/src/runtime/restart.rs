//! Restart and the other supervision steps of one instance: what a crash leads to.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use super::actor_loop::LoopExit;
use super::exec::Exec;
use super::shared::{publish_event, Shared};
use crate::bus::Owner;
use crate::component::Component;
use crate::mailbox::{InstanceStats, Receiver};
use crate::supervision::{InstanceState, LifecycleKind, Verdict};
use crate::util::panic_message;

/// Supervision steps of one instance.
pub(super) struct Supervised<'a, C: Component> {
    pub(super) shared: &'a Shared<C>,
    pub(super) index: usize,
}

impl<C: Component> Clone for Supervised<'_, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C: Component> Copy for Supervised<'_, C> {}

impl<'a, C: Component> Supervised<'a, C> {
    pub(super) fn new(shared: &'a Shared<C>, index: usize) -> Self {
        Supervised { shared, index }
    }
}

impl<C: Component> Supervised<'_, C> {
    pub(super) fn event(&self, kind: LifecycleKind, reason: Option<String>) {
        publish_event(self.shared, kind, self.index, reason);
    }

    /// Applies the policy to a crash; `Err` ends the message loop.
    pub(super) async fn supervise<E: Exec<C>>(
        &self,
        exec: &mut E,
        reason: &str,
        rx: &mut Receiver<C::Msg>,
    ) -> Result<(), LoopExit> {
        match self.shared.supervisor.on_crash(self.index) {
            Verdict::Resume => Ok(()),
            Verdict::Stop => Err(LoopExit::Halt { failed: false }),
            Verdict::Fail => {
                self.fail(reason);
                Err(LoopExit::Halt { failed: true })
            }
            // Under all-for-one the supervisor has signalled the peers already.
            Verdict::Restart { delay } => Box::pin(self.restart(exec, delay, rx)).await,
        }
    }

    pub(super) fn fail(&self, reason: &str) {
        let sup = &self.shared.supervisor;
        sup.fail_group();
        self.event(LifecycleKind::Failed, Some(reason.to_owned()));
        self.shared
            .services
            .escalation
            .escalate(C::name(), self.shared.deployment, reason);
    }

    /// Re-creates the instance after `delay`, keeping its mailbox. A failing restart counts as
    /// a crash and is supervised in turn.
    pub(super) async fn restart<E: Exec<C>>(
        &self,
        exec: &mut E,
        mut delay: Duration,
        rx: &mut Receiver<C::Msg>,
    ) -> Result<(), LoopExit> {
        InstanceState::Restarting.store(&rx.stats().state);
        // The old instance: its timers end and its stop hook runs, best effort.
        if let Some(ctx) = exec.ctx() {
            ctx.timers.cancel_all();
        }
        if let Err(reason) = exec.stop().await {
            tracing::warn!(component = C::name(), %reason, "stop of a crashed instance failed");
        }
        loop {
            tokio::select! {
                biased;
                request = rx.stop_requested() => return Err(LoopExit::Stop(request)),
                () = tokio::time::sleep(delay) => {}
            }
            let reason =
                match std::panic::catch_unwind(AssertUnwindSafe(|| (self.shared.factory)())) {
                    Ok(component) => {
                        if !exec.replace(component) {
                            return Err(LoopExit::Lost);
                        }
                        match exec.start().await {
                            Ok(()) => {
                                rx.stats()
                                    .restarts
                                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                InstanceState::Running.store(&rx.stats().state);
                                self.event(LifecycleKind::Restarted, None);
                                return Ok(());
                            }
                            Err(reason) => reason,
                        }
                    }
                    Err(panic) => format!("the factory {}", panic_message(&*panic)),
                };
            self.shared
                .services
                .escalation
                .note_crash(C::name(), &reason);
            self.event(LifecycleKind::Crashed, Some(reason.clone()));
            match self.shared.supervisor.on_crash(self.index) {
                Verdict::Restart { delay: next } => {
                    delay = next;
                }
                Verdict::Fail => {
                    self.fail(&reason);
                    return Err(LoopExit::Halt { failed: true });
                }
                Verdict::Resume | Verdict::Stop => return Err(LoopExit::Halt { failed: false }),
            }
        }
    }

    /// Stops the instance for its policy: its bindings go, queued messages are dropped (their
    /// requesters are told `Closed`), its stop hook runs.
    pub(super) async fn halt<E: Exec<C>>(
        &self,
        exec: &mut E,
        rx: &mut Receiver<C::Msg>,
        failed: bool,
    ) {
        self.shared.bus.unregister_instance(Owner {
            deployment: self.shared.deployment,
            instance: self.index,
        });
        rx.close();
        let mut dropped = 0usize;
        while rx.try_recv().is_ok() {
            dropped += 1;
        }
        if dropped > 0 {
            InstanceStats::add_saturating(&rx.stats().undelivered, dropped);
            tracing::warn!(component = C::name(), deployment = %self.shared.deployment, instance = self.index, dropped, "instance stopped by its supervision policy; queued messages were dropped");
        }
        if let Some(ctx) = exec.ctx() {
            ctx.timers.cancel_all();
        }
        rx.cancel_work();
        if InstanceState::load(&rx.stats().state) != InstanceState::Restarting {
            let _ = exec.stop().await;
        }
        let state = if failed {
            InstanceState::Failed
        } else {
            InstanceState::Stopped
        };
        state.store(&rx.stats().state);
        self.event(LifecycleKind::Stopped, None);
    }
}
