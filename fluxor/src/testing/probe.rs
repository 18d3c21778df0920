//! [`Probe`]: records what is published or sent on a topic.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use tokio::sync::Notify;

use super::TestRuntime;
use crate::component::{Bindings, Component, Context, Outcome};
use crate::message::{Envelope, Message};

/// Records what arrives on a topic or pattern. Get one from [`TestRuntime::probe`].
pub struct Probe<M> {
    pub(super) sink: Arc<Sink<M>>,
    pub(super) rt: TestRuntime,
}

impl<M> fmt::Debug for Probe<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("pattern", &self.sink.pattern)
            .finish()
    }
}

pub(super) struct Sink<M> {
    pub(super) pattern: String,
    /// Not yet taken by an `expect_*`.
    pub(super) queue: Mutex<VecDeque<(String, M)>>,
    /// Everything that arrived.
    pub(super) history: Mutex<Vec<M>>,
    pub(super) arrived: Notify,
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
pub(super) struct ProbeComponent<M> {
    pub(super) sink: Arc<Sink<M>>,
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
