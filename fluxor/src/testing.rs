#![doc = include_str!("../../docs/testing.md")]

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use tokio::sync::Notify;

use crate::address::Destination;
use crate::component::{Bindings, Component, Context, Outcome};
use crate::error::{BusError, PublishError, SendError};
use crate::ids::DeploymentId;
use crate::message::{Envelope, Message};
use crate::runtime::{DeployOptions, Fluxor};
use crate::supervision::Supervision;

/// How long [`TestRuntime::settle`] waits for the system to become idle before failing.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);

/// Options of a [`TestRuntime`]; also what `#[fluxor::test(...)]` sets.
#[derive(Debug, Clone)]
pub struct TestOptions {
    reactors: usize,
    paused: bool,
    allow_crashes: bool,
    request_timeout: Duration,
    shutdown_timeout: Duration,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            reactors: 1,
            paused: true,
            allow_crashes: false,
            request_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

impl TestOptions {
    /// One reactor, paused clock, crashes fail the test, 5 s request and shutdown timeouts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of reactors. Default 1.
    pub fn reactors(mut self, n: usize) -> Self {
        self.reactors = n;
        self
    }

    /// Real time instead of the paused clock: timers fire on their own and
    /// [`TestRuntime::advance`] sleeps.
    pub fn real_time(mut self) -> Self {
        self.paused = false;
        self
    }

    /// Handler panics do not fail the test (for tests of supervision).
    pub fn allow_crashes(mut self) -> Self {
        self.allow_crashes = true;
        self
    }

    /// Default timeout of requests. Default 5 s (of real time).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Builds the runtime. Must be called inside a tokio runtime (the `#[fluxor::test]`
    /// attribute provides one).
    ///
    /// # Errors
    /// As [`Builder::build`](crate::Builder::build), or when the paused clock cannot be held.
    pub async fn build(self) -> Result<TestRuntime, crate::error::BuildError> {
        let rt = Fluxor::builder()
            .reactors(self.reactors)
            .request_timeout(self.request_timeout)
            .shutdown_timeout(self.shutdown_timeout)
            .worker_threads(2)
            .start_paused(self.paused)
            .thread_name("fluxor-test")
            .build()?;
        let holds: Holds = Arc::new((0..self.reactors).map(|_| Mutex::new(None)).collect());
        if self.paused {
            // A pending blocking task keeps a reactor's paused clock from auto-advancing, so
            // that virtual time moves only through `advance`.
            let h = holds.clone();
            let held = rt
                .on_every_reactor(move |i| {
                    let h = h.clone();
                    async move { hold(&h, i) }
                })
                .await;
            if !held {
                return Err(crate::error::BuildError::InvalidOption(
                    "a reactor stopped while the test runtime was being built".into(),
                ));
            }
        }
        Ok(TestRuntime {
            inner: Arc::new(Inner {
                rt,
                options: self,
                holds,
            }),
        })
    }
}

/// A runtime for tests: by default one reactor whose clock is paused, so timers fire only when
/// the test calls [`advance`](Self::advance), and every run is the same.
///
/// Cheap to clone. Get one from `#[fluxor::test]` (as the test function's parameter) or
/// [`TestOptions::build`].
#[derive(Clone)]
pub struct TestRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    rt: Fluxor,
    options: TestOptions,
    holds: Holds,
}

/// Per reactor, the sender whose drop ends the blocking task that holds its clock.
type Holds = Arc<Vec<Mutex<Option<std::sync::mpsc::Sender<()>>>>>;

/// Holds reactor `i`'s paused clock: tokio does not auto-advance a current-thread runtime's
/// clock while one of its blocking tasks is pending. Runs on that reactor.
fn hold(holds: &Holds, i: usize) {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = rx.recv();
    });
    *holds[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
}

fn release(holds: &Holds) {
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
    pub async fn request<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
    ) -> Result<M::Reply, BusError> {
        self.inner.rt.bus().request(to, msg).await
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

/// What a `#[fluxor::test]` body may return: `()` or `Result<(), E>` (an `Err` fails the test).
pub trait TestResult {
    /// Panics on failure.
    fn check(self);
}

impl TestResult for () {
    fn check(self) {}
}

impl<E: fmt::Debug> TestResult for Result<(), E> {
    fn check(self) {
        if let Err(e) = self {
            panic!("the test returned an error: {e:?}");
        }
    }
}

/// Runs a `#[fluxor::test]` body: a current-thread tokio runtime for the body, a fresh
/// [`TestRuntime`], then the shutdown checks.
#[doc(hidden)]
pub fn __run<F, Fut>(options: TestOptions, body: F)
where
    F: FnOnce(TestRuntime) -> Fut,
    Fut: std::future::Future,
    Fut::Output: TestResult,
{
    let driver = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start the test's tokio runtime: {e}"));
    driver.block_on(async move {
        let rt = options
            .build()
            .await
            .unwrap_or_else(|e| panic!("cannot build the test runtime: {e}"));
        body(rt.clone()).await.check();
        rt.shutdown().await;
    });
}

/// Records what arrives on a topic or pattern. Get one from [`TestRuntime::probe`].
pub struct Probe<M> {
    sink: Arc<Sink<M>>,
    rt: TestRuntime,
}

impl<M> fmt::Debug for Probe<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("pattern", &self.sink.pattern)
            .finish()
    }
}

struct Sink<M> {
    pattern: String,
    /// Not yet taken by an `expect_*`.
    queue: Mutex<VecDeque<(String, M)>>,
    /// Everything that arrived.
    history: Mutex<Vec<M>>,
    arrived: Notify,
}

impl<M: Message + Clone + fmt::Debug> Probe<M> {
    /// Waits up to `timeout` (real time) for the next message and returns it.
    ///
    /// # Panics
    /// If none arrives in time: the message names the pattern and the time waited.
    pub async fn expect_published(&self, timeout: Duration) -> M {
        self.expect_matching(timeout, "any message", |_| true).await
    }

    /// Waits up to `timeout` for the next message that satisfies `check`, described by
    /// `expected` in the failure message; messages that do not match are reported there.
    ///
    /// # Panics
    /// If none arrives in time: the message names the pattern, what was expected, what
    /// arrived instead and the time waited.
    pub async fn expect_matching(
        &self,
        timeout: Duration,
        expected: &str,
        check: impl Fn(&M) -> bool,
    ) -> M {
        let started = StdInstant::now();
        let mut others: Vec<String> = Vec::new();
        loop {
            let notified = self.sink.arrived.notified();
            while let Some((topic, m)) = self.pop() {
                if check(&m) {
                    return m;
                }
                others.push(format!("{m:?} on `{topic}`"));
            }
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                let instead = if others.is_empty() {
                    "nothing arrived".to_owned()
                } else {
                    format!("arrived instead: {}", others.join(", "))
                };
                panic!(
                    "probe on `{}`: expected {expected} of type `{}` within {timeout:?} (waited {:?}); {instead}",
                    self.sink.pattern,
                    std::any::type_name::<M>(),
                    started.elapsed()
                );
            }
        }
    }

    /// Asserts that nothing arrives while `within` passes: virtual time (advanced by the
    /// runtime, timers included) with the paused clock, real time otherwise.
    ///
    /// # Panics
    /// If something arrived, with its `Debug`.
    pub async fn expect_no_message(&self, within: Duration) {
        self.rt.advance(within).await;
        if let Some((topic, m)) = self.pop() {
            panic!(
                "probe on `{}`: expected no message within {within:?}, but {m:?} arrived on `{topic}`",
                self.sink.pattern
            );
        }
    }

    /// Every message that arrived so far, in order (including the ones taken by `expect_*`).
    pub fn received(&self) -> Vec<M> {
        self.sink
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn pop(&self) -> Option<(String, M)> {
        self.sink
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }
}

/// The component behind a probe.
struct ProbeComponent<M> {
    sink: Arc<Sink<M>>,
}

impl<M> Component for ProbeComponent<M>
where
    M: Message + Clone + fmt::Debug,
    M::Reply: Default,
{
    type Msg = Envelope<M>;
    /// The pattern to probe.
    type Config = String;

    fn name() -> &'static str {
        "fluxor::testing::Probe"
    }

    fn bindings(bindings: &mut Bindings<'_, Self>) {
        let pattern = bindings.config().clone();
        bindings.bind(&pattern, |envelope| envelope);
    }

    async fn handle(&mut self, msg: Envelope<M>, ctx: &mut Context<Self>) -> Outcome {
        let (m, responder) = ctx.accept(msg);
        let topic = ctx.topic().unwrap_or("(direct)").to_owned();
        self.sink
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(m.clone());
        self.sink
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((topic, m));
        self.sink.arrived.notify_waiters();
        responder.run(async { M::Reply::default() }).await
    }
}

impl<M> fmt::Debug for ProbeComponent<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeComponent")
            .field("pattern", &self.sink.pattern)
            .finish()
    }
}
