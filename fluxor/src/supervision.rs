//! Supervision: what happens when a handler panics.
//!
//! A panic never leaves its handler: the requester receives
//! [`BusError::RecipientFailed`](crate::BusError::RecipientFailed) with the panic message, and
//! the deployment's [`Supervision`] decides what becomes of the instance:
//!
//! * [`Supervision::restart`] (the default) re-creates the instance from its factory after a
//!   backoff, keeping its mailbox, so messages queued behind the crash are handled by the new
//!   instance in order. More than `max_restarts` restarts `within` the window fail the
//!   deployment, and the runtime's [`Escalation`] applies.
//! * [`Supervision::resume`] keeps the instance and its state, and drops only the failing
//!   message.
//! * [`Supervision::stop`] stops the instance and removes its bindings.
//!
//! Every step is published on the bus under `fluxor.lifecycle.*` as a [`LifecycleEvent`].

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::ids::DeploymentId;
use crate::mailbox::Control;
use crate::message::Message;

/// What a deployment does when one of its handlers panics.
///
/// ```
/// use std::time::Duration;
/// use fluxor::{Backoff, Supervision};
///
/// let policy = Supervision::restart()
///     .max_restarts(3)
///     .within(Duration::from_secs(10))
///     .backoff(Backoff::exponential(Duration::from_millis(50), Duration::from_secs(2)).jitter(0.2))
///     .all_for_one();
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Supervision {
    /// Re-create the crashed instance (or, all-for-one, every instance of the deployment).
    Restart(Restart),
    /// Keep the instance and its state; drop only the failing message.
    Resume,
    /// Stop the crashed instance and remove its bindings.
    Stop,
}

/// The restart policy: intensity, backoff and group strategy.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Restart {
    /// Restarts allowed within [`within`](Self::within) before the deployment fails.
    pub max_restarts: u32,
    /// The sliding window of the restart intensity.
    pub within: Duration,
    /// Delay before each restart.
    pub backoff: Backoff,
    /// Which instances restart together.
    pub strategy: Strategy,
}

/// Which instances restart when one crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum Strategy {
    /// Only the crashed instance.
    OneForOne,
    /// Every instance of the deployment.
    AllForOne,
}

/// Exponential backoff: `initial × factor^(n-1)` before the n-th restart in the current window,
/// capped at `max`, optionally spread by ± `jitter` (a fraction of the delay).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    factor: f64,
    jitter: f64,
}

impl Backoff {
    /// Doubles from `initial` up to `max`.
    pub fn exponential(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            factor: 2.0,
            jitter: 0.0,
        }
    }

    /// No delay.
    pub fn none() -> Self {
        Backoff::exponential(Duration::ZERO, Duration::ZERO)
    }

    /// Growth factor per restart (at least 1). Default 2.
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// Spreads each delay by a random ± `fraction` (clamped to 0..=1), so instances that
    /// crashed together do not restart in lockstep.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// The delay before the `n`-th restart (1-based) of the window, without jitter.
    pub fn delay(&self, n: u32) -> Duration {
        let exp = self.factor.powi(n.saturating_sub(1).min(1024) as i32);
        let secs = (self.initial.as_secs_f64() * exp).min(self.max.as_secs_f64());
        Duration::from_secs_f64(secs)
    }

    fn jittered(&self, n: u32) -> Duration {
        let base = self.delay(n);
        if self.jitter == 0.0 || base.is_zero() {
            return base;
        }
        let (r, _) = uuid::Uuid::new_v4().as_u64_pair();
        let unit = (r >> 11) as f64 / (1u64 << 53) as f64; // in [0, 1)
        base.mul_f64(1.0 + self.jitter * (2.0 * unit - 1.0))
    }
}

impl Default for Restart {
    fn default() -> Self {
        Restart {
            max_restarts: 5,
            within: Duration::from_secs(30),
            backoff: Backoff::exponential(Duration::from_millis(100), Duration::from_secs(10)),
            strategy: Strategy::OneForOne,
        }
    }
}

impl Default for Supervision {
    /// Restart, one-for-one, at most 5 restarts within 30 s, backoff from 100 ms doubling up
    /// to 10 s.
    ///
    /// Why: a panic means the instance's state can no longer be trusted, so a fresh instance
    /// is the safe way on (resuming would keep whatever the panic left half-done); the backoff
    /// gives a failing dependency time to recover instead of spinning; and a crash loop
    /// (6 crashes in 30 s) fails the deployment so that it is seen, rather than restarting
    /// forever.
    fn default() -> Self {
        Supervision::Restart(Restart::default())
    }
}

impl Supervision {
    /// [`Supervision::Restart`] with the default intensity and backoff.
    pub fn restart() -> Self {
        Self::default()
    }

    /// [`Supervision::Resume`].
    pub fn resume() -> Self {
        Supervision::Resume
    }

    /// [`Supervision::Stop`].
    pub fn stop() -> Self {
        Supervision::Stop
    }

    fn with_restart(mut self, f: impl FnOnce(&mut Restart)) -> Self {
        if let Supervision::Restart(r) = &mut self {
            f(r);
        }
        self
    }

    /// Restarts allowed within the window (restart policies only).
    pub fn max_restarts(self, n: u32) -> Self {
        self.with_restart(|r| r.max_restarts = n)
    }

    /// The restart window (restart policies only).
    pub fn within(self, window: Duration) -> Self {
        self.with_restart(|r| r.within = window)
    }

    /// The restart backoff (restart policies only).
    pub fn backoff(self, backoff: Backoff) -> Self {
        self.with_restart(|r| r.backoff = backoff)
    }

    /// Restart every instance of the deployment when one crashes (restart policies only).
    pub fn all_for_one(self) -> Self {
        self.with_restart(|r| r.strategy = Strategy::AllForOne)
    }
}

/// What the runtime does when a deployment fails (its restart intensity was exceeded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Escalation {
    /// Log the failure and keep serving the other deployments (the default: one failed
    /// feature should not take the rest of the service down; the failure is visible in
    /// `deployments()` and as a `fluxor.lifecycle.failed` event).
    #[default]
    Log,
    /// Shut the runtime down: [`Fluxor::run`](crate::Fluxor::run) returns, and
    /// [`Fluxor::escalated`](crate::Fluxor::escalated) resolves.
    Shutdown,
}

/// A supervision step, published on `fluxor.lifecycle.<kind>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LifecycleEvent {
    /// What happened.
    pub kind: LifecycleKind,
    /// The deployment.
    pub deployment: DeploymentId,
    /// The component type's name.
    pub component: &'static str,
    /// The instance.
    pub instance: usize,
    /// The panic message or error, when there is one.
    pub reason: Option<String>,
    /// Restarts of the deployment so far.
    pub restarts: u64,
}

impl Message for LifecycleEvent {
    type Reply = ();
}

/// The kind of a [`LifecycleEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum LifecycleKind {
    /// An instance started (at deploy time).
    Started,
    /// A handler panicked.
    Crashed,
    /// An instance was re-created and started again.
    Restarted,
    /// An instance stopped (undeploy, shutdown, or the `Stop` policy).
    Stopped,
    /// The deployment exceeded its restart intensity and failed.
    Failed,
    /// An instance adopted a new config (see [`Fluxor::reconfigure`](crate::Fluxor::reconfigure)),
    /// before handling its next message.
    Reconfigured,
}

impl LifecycleKind {
    /// The topic it is published on.
    pub fn topic(self) -> &'static str {
        match self {
            LifecycleKind::Started => "fluxor.lifecycle.started",
            LifecycleKind::Crashed => "fluxor.lifecycle.crashed",
            LifecycleKind::Restarted => "fluxor.lifecycle.restarted",
            LifecycleKind::Stopped => "fluxor.lifecycle.stopped",
            LifecycleKind::Failed => "fluxor.lifecycle.failed",
            LifecycleKind::Reconfigured => "fluxor.lifecycle.reconfigured",
        }
    }
}

impl fmt::Display for LifecycleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.topic()["fluxor.lifecycle.".len()..])
    }
}

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum InstanceState {
    /// Created, `start` not finished yet.
    Starting,
    /// Handling messages.
    Running,
    /// Crashed; waiting for its backoff or starting again.
    Restarting,
    /// Stopped (undeploy, shutdown or the `Stop` policy).
    Stopped,
    /// Stopped because its deployment exceeded its restart intensity.
    Failed,
}

impl InstanceState {
    pub(crate) fn store(self, cell: &std::sync::atomic::AtomicU8) {
        cell.store(self as u8, Ordering::Relaxed);
    }

    pub(crate) fn load(cell: &std::sync::atomic::AtomicU8) -> Self {
        match cell.load(Ordering::Relaxed) {
            0 => InstanceState::Starting,
            1 => InstanceState::Running,
            2 => InstanceState::Restarting,
            3 => InstanceState::Stopped,
            _ => InstanceState::Failed,
        }
    }
}

/// A deployment's supervision policy: the one its component declares, made when a crash
/// needs it (most deployments never crash, and the policy is larger than the pointer that
/// makes it), or one given at deploy time.
#[derive(Debug)]
pub(crate) enum Policy {
    /// The component's own ([`Component::supervision`](crate::Component::supervision)).
    Declared(fn() -> Supervision),
    /// Given for this deployment ([`DeployOptions::supervision`](crate::DeployOptions::supervision)).
    Given(Box<Supervision>),
}

impl Policy {
    fn get(&self) -> Supervision {
        match self {
            Policy::Declared(make) => make(),
            Policy::Given(policy) => (**policy).clone(),
        }
    }
}

/// The supervision state shared by a deployment's instances.
#[derive(Debug)]
pub(crate) struct Supervisor {
    pub(crate) policy: Policy,
    /// When the restarts of the current window happened; boxed on the first crash, so a
    /// deployment that never crashes keeps one pointer for it, not a whole `VecDeque`.
    #[allow(clippy::box_collection)]
    restarts_in_window: Mutex<Option<Box<VecDeque<Instant>>>>,
    pub(crate) restarts: AtomicU64,
    pub(crate) failed: AtomicBool,
    /// Each instance's mailbox, by instance index: where group signals go.
    pub(crate) peers: crate::util::Few<std::sync::Arc<dyn crate::mailbox::Signals>>,
}

/// The verdict on one crash.
pub(crate) enum Verdict {
    Resume,
    Stop,
    /// Restart after the delay (under all-for-one, the peers have been signalled).
    Restart {
        delay: Duration,
    },
    /// The intensity was exceeded: the deployment fails.
    Fail,
}

impl Supervisor {
    pub(crate) fn new(
        policy: Policy,
        peers: crate::util::Few<std::sync::Arc<dyn crate::mailbox::Signals>>,
    ) -> Self {
        Supervisor {
            policy,
            restarts_in_window: Mutex::default(),
            restarts: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            peers,
        }
    }

    /// Signals every instance but `except`.
    fn signal(&self, except: Option<usize>, delay: Duration) {
        for (i, tx) in self.peers.iter().enumerate() {
            if Some(i) != except {
                let _ = tx.control(Control::Group { delay });
            }
        }
    }

    /// Decides what a crash of instance `from` leads to, counting the restart it admits.
    pub(crate) fn on_crash(&self, from: usize) -> Verdict {
        let r = match self.policy.get() {
            Supervision::Resume => return Verdict::Resume,
            Supervision::Stop => return Verdict::Stop,
            Supervision::Restart(r) => r,
        };
        if self.failed.load(Ordering::Acquire) {
            return Verdict::Fail;
        }
        let now = Instant::now();
        let n = {
            let mut window = self
                .restarts_in_window
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let window = window.get_or_insert_with(Box::default);
            while window
                .front()
                .is_some_and(|t| now.duration_since(*t) > r.within)
            {
                window.pop_front();
            }
            if window.len() >= r.max_restarts as usize {
                return if self.failed.swap(true, Ordering::AcqRel) {
                    Verdict::Stop
                } else {
                    Verdict::Fail
                };
            }
            window.push_back(now);
            window.len() as u32
        };
        self.restarts.fetch_add(1, Ordering::Relaxed);
        let delay = r.backoff.jittered(n);
        if r.strategy == Strategy::AllForOne {
            self.signal(Some(from), delay);
        }
        Verdict::Restart { delay }
    }

    /// Fails the group: every instance stops.
    pub(crate) fn fail_group(&self) {
        self.failed.store(true, Ordering::Release);
        self.signal(None, Duration::ZERO);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1));
        let d: Vec<u128> = (1..=6).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(d, vec![100, 200, 400, 800, 1000, 1000]);
        let b = b.factor(3.0);
        assert_eq!(b.delay(3), Duration::from_millis(900));
        assert_eq!(Backoff::none().delay(7), Duration::ZERO);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let b =
            Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.5);
        for _ in 0..200 {
            let d = b.jittered(1).as_millis();
            assert!((50..=150).contains(&d), "{d}");
        }
    }

    #[test]
    fn modifiers_apply_to_restart_only() {
        assert_eq!(Supervision::resume().max_restarts(1), Supervision::Resume);
        let Supervision::Restart(r) = Supervision::restart().max_restarts(1).all_for_one() else {
            panic!("restart expected");
        };
        assert_eq!((r.max_restarts, r.strategy), (1, Strategy::AllForOne));
    }
}
