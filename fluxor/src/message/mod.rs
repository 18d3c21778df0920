//! Messages, envelopes and the reply plumbing between a requester and a handler.
//!
//! The reply channel lives in `reply.rs`; how long a requester waits for it, and when a
//! request gets a timer, in `timing.rs`.

#[cfg(all(test, loom))]
mod loom_tests;
mod reply;
mod timing;
pub(crate) mod wire;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use crate::ids::IdGen;
pub(crate) use reply::{Reply, ReplyTo};
pub(crate) use timing::{Elapsed, Within};
pub use wire::{wire, Codec, CodecError, Json, RemoteMessage, Wire};

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

    /// How this message crosses nodes: `Some` for messages derived with `#[message(remote)]`
    /// or `#[message(wire = "..")]`. Not a public API; implement [`RemoteMessage`] through the
    /// derive.
    #[doc(hidden)]
    fn __wire() -> Option<Wire<Self>>
    where
        Self: Sized,
    {
        None
    }
}

/// Key/value headers carried by an envelope.
///
/// Empty headers cost no allocation.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Option<Box<HeaderList>>,
}

type Header = (Cow<'static, str>, String);

/// Headers in insertion order: the first beside the list's own storage, so one header (an
/// HTTP request id, a trace context) costs one allocation besides its value, not two.
#[derive(Clone, PartialEq, Eq)]
struct HeaderList {
    first: Header,
    more: Vec<Header>,
}

impl HeaderList {
    fn iter(&self) -> impl Iterator<Item = &Header> {
        std::iter::once(&self.first).chain(&self.more)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Header> {
        std::iter::once(&mut self.first).chain(&mut self.more)
    }

    fn into_iter(self) -> impl Iterator<Item = Header> {
        std::iter::once(self.first).chain(self.more)
    }
}

impl Headers {
    /// Empty headers.
    pub const fn new() -> Self {
        Headers { entries: None }
    }

    /// Sets `key` to `value`, replacing an earlier value of the same key.
    pub fn insert(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        let Some(entries) = &mut self.entries else {
            self.entries = Some(Box::new(HeaderList {
                first: (key, value),
                more: Vec::new(),
            }));
            return;
        };
        if let Some(slot) = entries.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
            return;
        }
        entries.more.push((key, value));
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

    /// Sets every header of `other`, replacing earlier values of the same keys.
    pub(crate) fn extend(&mut self, other: Headers) {
        match (&mut self.entries, other.entries) {
            (_, None) => {}
            (None, Some(theirs)) => self.entries = Some(theirs),
            (Some(_), Some(theirs)) => {
                for (key, value) in theirs.into_iter() {
                    self.insert(key, value);
                }
            }
        }
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| 1 + e.more.len())
    }

    /// Whether there are no headers.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_none()
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
    /// No message: nil ids, no topic, no headers.
    pub(crate) const NONE: Meta = Meta {
        correlation_id: Uuid::nil(),
        request_id: Uuid::nil(),
        topic: None,
        headers: Headers::new(),
    };

    /// A fresh chain: the request id is the envelope's own correlation id.
    #[inline]
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
    #[inline]
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
            reply: reply.unwrap_or_else(ReplyTo::none),
            meta,
        }
    }

    /// The message.
    pub fn message(&self) -> &M {
        &self.msg
    }

    /// Consumes the envelope and returns the message; a waiting requester is told
    /// [`BusError::Closed`](crate::BusError::Closed).
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

/// Turns what a handler returns into the message's reply.
///
/// Implemented for the reply type itself and for `Result<Reply, E>` where `E: Display`;
/// an `Err` reaches the requester as [`BusError::RecipientFailed`](crate::BusError::RecipientFailed) with `E`'s text.
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
        h.insert("b", "4");
        h.insert("c", "5");
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            vec![("a", "3"), ("b", "4"), ("c", "5")]
        );
    }

    #[test]
    fn headers_extend_in_order_and_compare_by_content() {
        let mut mine = Headers::new();
        mine.insert("a", "1");
        mine.insert("b", "2");
        let mut theirs = Headers::new();
        theirs.insert("b", "3");
        theirs.insert("c", "4");
        mine.extend(theirs.clone());
        assert_eq!(
            mine.iter().collect::<Vec<_>>(),
            vec![("a", "1"), ("b", "3"), ("c", "4")]
        );
        let mut empty = Headers::new();
        empty.extend(theirs.clone());
        assert_eq!(empty, theirs);
        assert_ne!(mine, theirs);
        assert_eq!(format!("{theirs:?}"), r#"{"b": "3", "c": "4"}"#);
    }
}
