//! [`TestRuntime`]: one reactor, a paused clock, and helpers to drive time and wait for quiet.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use tokio::sync::Notify;

use crate::address::Destination;
use crate::component::Component;
use crate::error::{BusError, PublishError, SendError};
use crate::ids::DeploymentId;
use crate::message::Message;
use crate::runtime::{DeployOptions, Fluxor};
use crate::supervision::Supervision;

use super::probe::{ProbeComponent, Sink};
use super::{Probe, TestOptions};

/// How long [`TestRuntime::settle`] waits for the system to become idle before failing.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);

/// A runtime for tests: by default one reactor whose clock is paused, so timers fire only when
/// the test calls [`advance`](Self::advance), and every run is the same.
///
/// Cheap to clone. Get one from `#[fluxor::test]` (as the test function's parameter) or
/// [`TestOptions::build`].
#[derive(Clone)]
pub struct TestRuntime {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) rt: Fluxor,
    pub(super) options: TestOptions,
    pub(super) holds: Holds,
}

/// Per reactor, the sender whose drop ends the blocking task that holds its clock.
pub(super) type Holds = Arc<Vec<Mutex<Option<std::sync::mpsc::Sender<()>>>>>;

/// Holds reactor `i`'s paused clock: tokio does not auto-advance a current-thread runtime's
/// clock while one of its blocking tasks is pending. Runs on that reactor.
pub(super) fn hold(holds: &Holds, i: usize) {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = rx.recv();
    });
    *holds[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
}

pub(super) fn release(holds: &Holds) {
    for h in holds.iter() {
        drop(h.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

impl fmt::Debug for TestRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestRuntime")
            .field("options", &self.inner.options)
            .field("runtime", &self.inner.rt)
            .finish()
    }
}

impl TestRuntime {
    /// A test runtime with [`TestOptions::default`].
    ///
    /// # Panics
    /// If the runtime cannot be built.
    pub async fn new() -> Self {
        TestOptions::new()
            .build()
            .await
            .unwrap_or_else(|e| panic!("cannot build the test runtime: {e}"))
    }

    /// The runtime under test.
    pub fn runtime(&self) -> &Fluxor {
        &self.inner.rt
    }

    /// The event bus.
    pub fn bus(&self) -> &crate::bus::EventBus {
        self.inner.rt.bus()
    }

    /// Deploys one instance of a component.
    ///
    /// # Panics
    /// If the deploy fails, with the error.
    pub async fn deploy<C, F>(&self, factory: F) -> DeploymentId
    where
        C: Component,
        F: Fn() -> C + Send + Sync + 'static,
    {
        self.deploy_with(factory, DeployOptions::new()).await
    }

    /// Deploys with options.
    ///
    /// # Panics
    /// If the deploy fails, with the error.
    pub async fn deploy_with<C, F>(&self, factory: F, options: DeployOptions) -> DeploymentId
    where
        C: Component,
        F: Fn() -> C + Send + Sync + 'static,
    {
        match self.inner.rt.deploy(factory, options).await {
            Ok(id) => id,
            Err(e) => panic!("deploying `{}` failed: {e}", C::name()),
        }
    }

    /// [`EventBus::request`](crate::bus::EventBus::request).
    ///
    /// # Errors
    /// As [`EventBus::request`](crate::bus::EventBus::request).
    pub fn request<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
    ) -> impl std::future::Future<Output = Result<M::Reply, BusError>> + use<'_, M, D> {
        self.inner.rt.bus().request(to, msg)
    }

    /// [`EventBus::send`](crate::bus::EventBus::send).
    ///
    /// # Errors
    /// As [`EventBus::send`](crate::bus::EventBus::send).
    pub fn send<M: Message, D: Destination<M>>(&self, to: D, msg: M) -> Result<(), SendError<M>> {
        self.inner.rt.bus().send(to, msg)
    }

    /// [`EventBus::publish`](crate::bus::EventBus::publish).
    ///
    /// # Errors
    /// As [`EventBus::publish`](crate::bus::EventBus::publish).
    pub fn publish<M: Message + Clone, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
    ) -> Result<usize, PublishError> {
        self.inner.rt.bus().publish(to, msg)
    }

    /// Subscribes a probe to `pattern` (a topic, or a pattern such as `orders.*` or
    /// `fluxor.lifecycle.>`), recording every `M` that arrives there. A probe answers requests
    /// with `M::Reply::default()`.
    ///
    /// # Panics
    /// If the pattern is invalid.
    pub async fn probe<M>(&self, pattern: &str) -> Probe<M>
    where
        M: Message + Clone + fmt::Debug,
        M::Reply: Default,
    {
        let sink = Arc::new(Sink {
            pattern: pattern.to_owned(),
            queue: Mutex::new(VecDeque::new()),
            history: Mutex::new(Vec::new()),
            arrived: Notify::new(),
        });
        let factory = {
            let sink = sink.clone();
            move || ProbeComponent { sink: sink.clone() }
        };
        let mut options = DeployOptions::new()
            .config(pattern)
            .mailbox_capacity(65_536)
            .supervision(Supervision::resume());
        // A probe's own lifecycle would show up in lifecycle probes.
        options.quiet = true;
        match self.inner.rt.deploy(factory, options).await {
            Ok(_) => Probe {
                sink,
                rt: self.clone(),
            },
            Err(e) => panic!("cannot probe `{pattern}`: {e}"),
        }
    }

    /// Moves virtual time forward by `by`, firing the timers that fall due, and waits until the
    /// system is idle again ([`settle`](Self::settle)). With [`TestOptions::real_time`], sleeps
    /// for `by` instead.
    pub async fn advance(&self, by: Duration) {
        if self.inner.options.paused {
            // Each reactor lets its clock auto-advance, timer after timer with their handlers
            // run in between, until a sentinel timer at the target; then holds it again.
            let holds = self.inner.holds.clone();
            self.inner
                .rt
                .on_every_reactor(move |i| {
                    let holds = holds.clone();
                    async move {
                        let sentinel = tokio::time::sleep(by);
                        tokio::pin!(sentinel);
                        // Register the sentinel before the clock may move.
                        std::future::poll_fn(|cx| {
                            let _ = sentinel.as_mut().poll(cx);
                            std::task::Poll::Ready(())
                        })
                        .await;
                        drop(holds[i].lock().unwrap_or_else(|e| e.into_inner()).take());
                        sentinel.await;
                        hold(&holds, i);
                        // Timers due at the target itself fired with the sentinel: let their
                        // tasks run before reporting back.
                        for _ in 0..4 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
                .await;
            self.settle().await;
        } else {
            tokio::time::sleep(by).await;
            self.settle().await;
        }
    }

    /// Waits until every mailbox is empty, no handler runs and the worker pool is idle.
    ///
    /// # Panics
    /// If that does not happen within 10 s of real time, naming what is still busy.
    pub async fn settle(&self) {
        let started = StdInstant::now();
        let mut quiet = 0;
        loop {
            match self.inner.rt.busy_report() {
                None => {
                    quiet += 1;
                    if quiet >= 2 {
                        return;
                    }
                    // Let every reactor run what is ready, then look again.
                    self.inner
                        .rt
                        .on_every_reactor(|_| async {
                            for _ in 0..4 {
                                tokio::task::yield_now().await;
                            }
                        })
                        .await;
                }
                Some(busy) => {
                    quiet = 0;
                    if started.elapsed() > SETTLE_LIMIT {
                        panic!(
                            "the system did not settle within {SETTLE_LIMIT:?}; still busy: {busy}"
                        );
                    }
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
        }
    }

    /// Reads the state of instance 0 of a deployment between two of its messages.
    ///
    /// # Panics
    /// If the deployment is unknown, is of another component type, or has stopped.
    pub async fn with_state<C, R, F>(&self, id: DeploymentId, read: F) -> R
    where
        C: Component,
        R: Send + 'static,
        F: FnOnce(&C) -> R + Send + 'static,
    {
        self.with_instance_state(id, 0, read).await
    }

    /// [`with_state`](Self::with_state) for a given instance.
    ///
    /// # Panics
    /// As [`with_state`](Self::with_state), or if there is no such instance.
    pub async fn with_instance_state<C, R, F>(
        &self,
        id: DeploymentId,
        instance: usize,
        read: F,
    ) -> R
    where
        C: Component,
        R: Send + 'static,
        F: FnOnce(&C) -> R + Send + 'static,
    {
        match self.inner.rt.with_state(id, instance, read).await {
            Ok(r) => r,
            Err(e) => panic!("cannot read the state of `{}`: {e}", C::name()),
        }
    }

    /// Shuts the runtime down and checks the run.
    ///
    /// # Panics
    /// If shutdown reports errors, or (unless crashes are allowed) a handler panicked.
    pub async fn shutdown(&self) {
        // Virtual time stays frozen while components drain and stop (the runtime keeps their
        // deadlines in real time); the clock holds are released just before the reactors stop,
        // since a reactor exits only once its blocking tasks end.
        let holds = self.inner.holds.clone();
        let result = self
            .inner
            .rt
            .shutdown_then(self.inner.options.shutdown_timeout, move || release(&holds))
            .await;
        if let Err(e) = result {
            panic!("the test runtime did not shut down cleanly: {e}");
        }
        let (crashes, first) = self.inner.rt.crash_report();
        if crashes > 0 && !self.inner.options.allow_crashes {
            panic!(
                "{crashes} handler panic(s) during the test: {}; if the test expects them, use `#[fluxor::test(allow_crashes)]` or `TestOptions::allow_crashes`",
                first.join("; ")
            );
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        release(&self.holds);
    }
}
