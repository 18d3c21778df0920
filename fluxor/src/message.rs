//! Messages, envelopes and the reply plumbing between a requester and a handler.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use uuid::Uuid;

use crate::error::BusError;
use crate::ids::IdGen;
use crate::wake::{wake_on, Wakeups};

/// A value that can travel over the event bus or into a component's mailbox.
///
/// Derive it with `#[derive(Message)]` and name the reply type with
/// `#[message(reply = T)]` (the default reply is `()`), or implement it by hand:
///
/// ```
/// use fluxor::Message;
///
/// struct Add(u64);
///
/// impl Message for Add {
///     type Reply = u64;
/// }
/// ```
///
/// Messages and replies cross reactor threads, so both must be `Send + 'static`.
/// Local delivery moves the value: it is never serialized or copied.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a fluxor message",
    label = "this type does not implement `fluxor::Message`",
    note = "add `#[derive(fluxor::Message)]` to `{Self}` (with `#[message(reply = T)]` if it expects a reply)"
)]
pub trait Message: Send + 'static {
    /// What a handler of this message answers to a [`request`](crate::EventBus::request).
    type Reply: Send + 'static;
}

/// Key/value headers carried by an envelope.
///
/// Empty headers cost no allocation.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Option<Box<HeaderList>>,
}

type HeaderList = Vec<(Cow<'static, str>, String)>;

impl Headers {
    /// Empty headers.
    pub const fn new() -> Self {
        Headers { entries: None }
    }

    /// Sets `key` to `value`, replacing an earlier value of the same key.
    pub fn insert(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        let entries = self.entries.get_or_insert_with(Default::default);
        match entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => entries.push((key, value)),
        }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Iterates over `(key, value)` pairs in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .flat_map(|e| e.iter())
            .map(|(k, v)| (k.as_ref(), v.as_str()))
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.len())
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Where an envelope came from and which request chain it belongs to.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    /// Unique per envelope.
    pub(crate) correlation_id: Uuid,
    /// The id of the request that started the chain this envelope belongs to.
    pub(crate) request_id: Uuid,
    /// The topic the envelope was sent to, or `None` for a direct message.
    pub(crate) topic: Option<Arc<str>>,
    pub(crate) headers: Headers,
}

impl Meta {
    /// A fresh chain: the request id is the envelope's own correlation id.
    pub(crate) fn root(ids: &IdGen) -> Self {
        let id = ids.next();
        Meta {
            correlation_id: id,
            request_id: id,
            topic: None,
            headers: Headers::new(),
        }
    }

    /// An envelope sent while handling `parent`: same request id, new correlation id.
    pub(crate) fn child(ids: &IdGen, request_id: Uuid) -> Self {
        Meta {
            correlation_id: ids.next(),
            request_id,
            topic: None,
            headers: Headers::new(),
        }
    }
}

/// A message on its way to a handler, with its reply channel and metadata.
///
/// A component's mailbox enum holds one `Envelope<M>` per variant; the generated dispatch
/// unpacks it with [`Context::accept`](crate::Context::accept).
pub struct Envelope<M: Message> {
    pub(crate) msg: M,
    pub(crate) reply: ReplyTo<M::Reply>,
    pub(crate) meta: Meta,
}

impl<M: Message> Envelope<M> {
    pub(crate) fn new(msg: M, reply: Option<ReplyTo<M::Reply>>, meta: Meta) -> Self {
        Envelope {
            msg,
            reply: reply.unwrap_or(ReplyTo { slot: None }),
            meta,
        }
    }

    /// The message.
    pub fn message(&self) -> &M {
        &self.msg
    }

    /// Consumes the envelope and returns the message; a waiting requester is told
    /// [`BusError::Closed`].
    pub fn into_message(self) -> M {
        self.msg
    }

    /// The envelope's correlation id.
    pub fn correlation_id(&self) -> Uuid {
        self.meta.correlation_id
    }

    /// The id of the request chain.
    pub fn request_id(&self) -> Uuid {
        self.meta.request_id
    }

    /// The topic it was sent to (`None` for a direct message).
    pub fn topic(&self) -> Option<&str> {
        self.meta.topic.as_deref()
    }

    /// Whether a requester waits for a reply.
    pub fn expects_reply(&self) -> bool {
        self.reply.expected()
    }
}

impl<M: Message + fmt::Debug> fmt::Debug for Envelope<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("msg", &self.msg)
            .field("correlation_id", &self.meta.correlation_id)
            .field("request_id", &self.meta.request_id)
            .field("topic", &self.meta.topic)
            .field("expects_reply", &self.reply.expected())
            .finish()
    }
}

/// The failure a handler reports to its requester.
pub(crate) type ReplyResult<R> = Result<R, BusError>;

/// The sending half of a request's reply channel (empty when nobody waits for a reply).
///
/// Dropping it without a reply tells the requester [`BusError::Closed`].
pub(crate) struct ReplyTo<R> {
    /// Taken by `send` (or by `drop`, which then reports that no reply comes). One pointer,
    /// so an envelope carries its reply channel in 8 bytes.
    slot: Option<Arc<Slot<R>>>,
}

/// The receiving half of a request's reply channel: resolves to the reply, or to `None` when
/// the replying side went away without one.
pub(crate) struct Reply<R> {
    slot: Arc<Slot<R>>,
}

/// Where a reply waits for its requester.
struct Slot<R> {
    state: Mutex<Exchange<R>>,
    /// The requester's reactor, when it asked from one: the reply's wake-up goes through it.
    wake: Option<Arc<Wakeups>>,
    /// The request has waited long enough to get a timer of its own (see [`Within`]).
    armed: AtomicBool,
}

enum Exchange<R> {
    /// No reply yet; the requester's waker once it has looked.
    Waiting(Option<Waker>),
    Sent(ReplyResult<R>),
    /// The reply was taken, or the replying side went away without one.
    Done,
}

impl<R> Slot<R> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Exchange<R>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<R> ReplyTo<R> {
    pub(crate) fn channel() -> (Self, Reply<R>) {
        let slot = Arc::new(Slot {
            state: Mutex::new(Exchange::Waiting(None)),
            wake: crate::wake::current(),
            armed: AtomicBool::new(false),
        });
        (
            ReplyTo {
                slot: Some(slot.clone()),
            },
            Reply { slot },
        )
    }

    /// Whether a requester waits for a reply.
    pub(crate) fn expected(&self) -> bool {
        self.slot.is_some()
    }

    /// Sends the reply; a requester that gave up (or none at all) is not an error.
    pub(crate) fn send(mut self, reply: ReplyResult<R>) {
        self.settle(Exchange::Sent(reply));
    }

    fn settle(&mut self, to: Exchange<R>) {
        let Some(slot) = self.slot.take() else { return };
        let waker = {
            let mut st = slot.lock();
            match &mut *st {
                Exchange::Waiting(waker) => {
                    let waker = waker.take();
                    *st = to;
                    waker
                }
                Exchange::Sent(_) | Exchange::Done => None,
            }
        };
        if let Some(waker) = waker {
            wake_on(slot.wake.as_deref(), waker);
        }
    }
}

impl<R> Drop for ReplyTo<R> {
    fn drop(&mut self) {
        self.settle(Exchange::Done);
    }
}

impl<R> Future for Reply<R> {
    type Output = Option<ReplyResult<R>>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut st = self.slot.lock();
        if let Exchange::Waiting(waker) = &mut *st {
            match waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        match std::mem::replace(&mut *st, Exchange::Done) {
            Exchange::Sent(reply) => Poll::Ready(Some(reply)),
            Exchange::Waiting(_) | Exchange::Done => Poll::Ready(None),
        }
    }
}

impl<R: 'static> Reply<R> {
    /// The reply, or `Err(Elapsed)` once `after` has passed.
    pub(crate) fn within(self, after: Duration) -> Within<R> {
        Within {
            deadline: tokio::time::Instant::now() + after,
            // A timeout about as short as the sweep's period gets its timer at once.
            stage: if after < 2 * TIMER_AFTER {
                Stage::Timer
            } else {
                Stage::Fresh
            },
            reply: self,
            sleep: None,
        }
    }
}

/// How long a request on a reactor waits before it gets a timer of its own.
///
/// Most requests are answered within microseconds; registering a tokio timer for each and
/// removing it again was about a fifth of a same-reactor ask. So a request made on a reactor
/// first joins that reactor's list of young requests; a sweep every `TIMER_AFTER` (only while
/// the list is not empty) arms those still waiting, and only they register a timer for their
/// deadline. The deadline is fixed when the request is made, so the timeout is exact either
/// way.
const TIMER_AFTER: Duration = Duration::from_millis(10);

/// The request's time ran out.
pub(crate) struct Elapsed;

/// A reply with a deadline; see [`TIMER_AFTER`].
pub(crate) struct Within<R> {
    reply: Reply<R>,
    deadline: tokio::time::Instant,
    stage: Stage,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

enum Stage {
    /// Not polled yet.
    Fresh,
    /// On its reactor's young list, without a timer until the sweep arms it.
    Young,
    /// Waits with a timer for its deadline.
    Timer,
}

impl<R: 'static> Future for Within<R> {
    type Output = Result<Option<ReplyResult<R>>, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(reply) = Pin::new(&mut this.reply).poll(cx) {
            return Poll::Ready(Ok(reply));
        }
        match this.stage {
            Stage::Fresh => {
                let slot: Weak<dyn Arm> = Arc::downgrade(&this.reply.slot) as Weak<dyn Arm>;
                if young::join(slot) {
                    this.stage = Stage::Young;
                    return Poll::Pending;
                }
                this.stage = Stage::Timer;
            }
            // Woken before the sweep reached it.
            Stage::Young if !this.reply.slot.armed.load(Ordering::Acquire) => {
                return Poll::Pending;
            }
            Stage::Young => this.stage = Stage::Timer,
            Stage::Timer => {}
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A waiting request the sweep can arm.
trait Arm {
    fn arm(&self);
}

impl<R> Arm for Slot<R> {
    fn arm(&self) {
        self.armed.store(true, Ordering::Release);
        if let Exchange::Waiting(Some(waker)) = &*self.lock() {
            waker.wake_by_ref();
        }
    }
}

/// Each reactor's young requests and their sweep.
mod young {
    use super::{Arm, TIMER_AFTER};
    use std::cell::{Cell, RefCell};
    use std::sync::Weak;

    thread_local! {
        static YOUNG: RefCell<Vec<Weak<dyn Arm>>> = const { RefCell::new(Vec::new()) };
        static SWEEPING: Cell<bool> = const { Cell::new(false) };
    }

    /// Adds a request to this reactor's young list; `false` off a reactor (the request
    /// then gets its timer at once).
    pub(super) fn join(slot: Weak<dyn Arm>) -> bool {
        if !crate::wake::on_reactor() {
            return false;
        }
        YOUNG.with(|y| y.borrow_mut().push(slot));
        if !SWEEPING.with(|s| s.replace(true)) {
            tokio::task::spawn_local(sweep());
        }
        true
    }

    async fn sweep() {
        loop {
            tokio::time::sleep(TIMER_AFTER).await;
            let young = YOUNG.with(|y| std::mem::take(&mut *y.borrow_mut()));
            for slot in young {
                if let Some(slot) = slot.upgrade() {
                    slot.arm();
                }
            }
            if YOUNG.with(|y| y.borrow().is_empty()) {
                SWEEPING.with(|s| s.set(false));
                return;
            }
        }
    }
}

/// Turns what a handler returns into the message's reply.
///
/// Implemented for the reply type itself and for `Result<Reply, E>` where `E: Display`;
/// an `Err` reaches the requester as [`BusError::RecipientFailed`] with `E`'s text.
#[diagnostic::on_unimplemented(
    message = "a handler returning `{Self}` cannot answer a message whose reply type is `{R}`",
    label = "expected `{R}` or `Result<{R}, E>`",
    note = "return the message's `Reply` type (set with `#[message(reply = ...)]`), or `Result<Reply, E>` with `E: Display`"
)]
pub trait IntoReply<R> {
    /// The reply, or the failure text for the requester.
    fn into_reply(self) -> Result<R, String>;
}

impl<R> IntoReply<R> for R {
    fn into_reply(self) -> Result<R, String> {
        Ok(self)
    }
}

impl<R, E: fmt::Display> IntoReply<R> for Result<R, E> {
    fn into_reply(self) -> Result<R, String> {
        self.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_replace_and_iterate() {
        let mut h = Headers::new();
        assert!(h.is_empty());
        h.insert("a", "1");
        h.insert("b", "2");
        h.insert("a", "3");
        assert_eq!(h.get("a"), Some("3"));
        assert_eq!(h.len(), 2);
        assert_eq!(h.iter().collect::<Vec<_>>(), vec![("a", "3"), ("b", "2")]);
    }
}
