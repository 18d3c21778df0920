//! The transport seam: what moves envelopes to consumers, below the bus's routing policy.
//!
//! The bus ([`EventBus`](super::EventBus)) decides *what* to do with a message: which topics a
//! user may use, what a request waits for and for how long, which error a caller sees. A
//! [`Transport`] decides *how* an envelope reaches the consumers of a topic. The local
//! transport ([`LocalTransport`](super::LocalTransport)) is the embedded default: it moves the
//! typed value into a mailbox of this process, without serialization. A transport that crosses
//! processes implements the same trait; it would encode the envelope for the consumers it
//! reaches elsewhere, and answer a remote requester by awaiting the local reply slot and
//! sending the reply back over its own connection (a requester on another node is, to the
//! local side, a local request made by that transport).
//!
//! Envelopes cross the seam type-erased ([`Parcel`], [`Copies`]), so that a transport is one
//! object whatever the message types: it learns the message type's name, can set the topic on
//! the envelope, and offers the envelope (an `Option<Envelope<M>>` behind `dyn Any`) to a
//! consumer, which takes it out when it accepts it.
//!
//! # What every transport must guarantee
//! * **One outcome per envelope.** `send` either delivers the envelope to exactly one consumer
//!   (and takes it out of the parcel) or leaves it in the parcel and returns the reason; it
//!   never delivers twice and never drops an envelope it did not deliver.
//! * **One count per refused message.** A message refused because every consumer was full is
//!   counted once (at one consumer), not once per consumer tried.
//! * **No waiting where the caller did not ask for it.** `send` and `publish` answer at once: a
//!   full consumer is reported ([`BusError::MailboxFull`]), not waited for. Only `send_until`
//!   waits, and never past its deadline.
//! * **Truthful errors.** No consumer: [`BusError::NoHandlers`]; every consumer full:
//!   `MailboxFull`; consumers of another message type only: `TypeMismatch`; consumers that
//!   stopped: `Closed`; a malformed topic: `InvalidTopic`.
//! * **Publish reaches each consumer once**, with its own copy (the last one may get the
//!   original), and reports each consumer that did not get it.
//! * **Replies are not the transport's business at delivery time**: the reply slot travels in
//!   the envelope; whoever handles the message answers through it, once.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::time::Instant;

use crate::error::BusError;
use crate::message::{Codec, CodecError, Envelope, Message, Meta, ReplyTo, Wire};

/// What happened to one delivery attempt at one consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    Delivered,
    Full,
    Closed,
    TypeMismatch,
}

/// A typed envelope, type-erased for the seam: an `Option<Envelope<M>>` that a consumer takes
/// when it accepts the envelope.
pub(crate) trait Parcel: Send {
    /// The message type's name, for errors.
    fn message_type(&self) -> &'static str;
    /// Sets the topic the envelope was sent to (interned by the transport).
    fn set_topic(&mut self, topic: Arc<str>);
    /// The `Option<Envelope<M>>`, for a consumer to downcast and take.
    fn slot(&mut self) -> &mut (dyn Any + Send);
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    /// The envelope encoded for another node, with its metadata; `None` when the message type
    /// cannot cross nodes (or the envelope is gone). The envelope stays in the parcel.
    fn encode(&self, codec: &dyn Codec) -> Option<Encoded<'_>>;
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    /// Takes the envelope out once another node accepted it; returns its reply channel when a
    /// requester waits for a reply.
    fn take_for_remote(&mut self) -> Option<Box<dyn RemoteReply>>;
}

#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
/// An envelope or a publication, encoded for another node.
pub(crate) struct Encoded<'a> {
    /// The message type's wire name.
    pub(crate) wire: &'static str,
    pub(crate) payload: Result<Vec<u8>, CodecError>,
    pub(crate) meta: &'a Meta,
}

#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
/// The reply channel of a request that another node serves: completed with the bytes of the
/// remote reply (decoded here) or with the error the remote side or the connection reported.
pub(crate) trait RemoteReply: Send {
    fn complete(self: Box<Self>, codec: &dyn Codec, answer: Result<&[u8], BusError>);
}

#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
struct TypedReply<M: Message> {
    reply: ReplyTo<M::Reply>,
    wire: Wire<M>,
    topic: Option<Arc<str>>,
}

impl<M: Message> RemoteReply for TypedReply<M> {
    fn complete(self: Box<Self>, codec: &dyn Codec, answer: Result<&[u8], BusError>) {
        let TypedReply { reply, wire, topic } = *self;
        let result = answer.and_then(|bytes| {
            (wire.decode_reply)(codec, bytes).map_err(|e| BusError::Undecodable {
                topic: topic.as_deref().unwrap_or_default().to_owned(),
                reason: format!("the reply to `{}` could not be decoded: {e}", wire.name()),
            })
        });
        reply.send(result);
    }
}

impl<M: Message> Parcel for Option<Envelope<M>> {
    fn message_type(&self) -> &'static str {
        std::any::type_name::<M>()
    }

    fn set_topic(&mut self, topic: Arc<str>) {
        if let Some(env) = self {
            env.meta.topic = Some(topic);
        }
    }

    fn slot(&mut self) -> &mut (dyn Any + Send) {
        self
    }

    fn encode(&self, codec: &dyn Codec) -> Option<Encoded<'_>> {
        let wire = M::__wire()?;
        let env = self.as_ref()?;
        Some(Encoded {
            wire: wire.name(),
            payload: (wire.encode)(&env.msg, codec),
            meta: &env.meta,
        })
    }

    fn take_for_remote(&mut self) -> Option<Box<dyn RemoteReply>> {
        let env = self.take()?;
        let wire = M::__wire()?;
        env.reply.expected().then(|| {
            Box::new(TypedReply {
                reply: env.reply,
                wire,
                topic: env.meta.topic,
            }) as Box<dyn RemoteReply>
        })
    }
}

/// A published message: the transport asks for one copy per consumer it reaches.
pub(crate) trait Copies {
    /// The message type's name, for errors.
    fn message_type(&self) -> &'static str;
    /// Makes the next copy with `topic` set (the original when `last`), offers it to `deliver`
    /// as an `Option<Envelope<M>>`, and returns what `deliver` returned.
    fn offer(
        &mut self,
        topic: &Arc<str>,
        last: bool,
        deliver: &mut dyn FnMut(&mut (dyn Any + Send)) -> Delivery,
    ) -> Delivery;
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    /// The publication encoded for other nodes; `None` when its type cannot cross nodes or the
    /// last copy was taken.
    fn encode(&self, codec: &dyn Codec) -> Option<Encoded<'_>>;
}

/// The message and metadata of one publish, copied for each consumer.
pub(crate) struct Publication<M> {
    pub(crate) msg: Option<M>,
    pub(crate) meta: Meta,
}

impl<M: Message + Clone> Copies for Publication<M> {
    fn message_type(&self) -> &'static str {
        std::any::type_name::<M>()
    }

    fn offer(
        &mut self,
        topic: &Arc<str>,
        last: bool,
        deliver: &mut dyn FnMut(&mut (dyn Any + Send)) -> Delivery,
    ) -> Delivery {
        let msg = if last {
            self.msg.take()
        } else {
            self.msg.clone()
        };
        let Some(msg) = msg else {
            // Offered again after the last copy: nothing is left to deliver.
            return Delivery::Closed;
        };
        let mut meta = self.meta.clone();
        meta.topic = Some(topic.clone());
        let mut slot = Some(Envelope::new(msg, None, meta));
        deliver(&mut slot)
    }

    fn encode(&self, codec: &dyn Codec) -> Option<Encoded<'_>> {
        let wire = M::__wire()?;
        let msg = self.msg.as_ref()?;
        Some(Encoded {
            wire: wire.name(),
            payload: (wire.encode)(msg, codec),
            meta: &self.meta,
        })
    }
}

/// What a publish came to: how many consumers received it, and why the others did not.
#[derive(Debug, Default)]
pub(crate) struct Published {
    pub(crate) delivered: usize,
    pub(crate) failures: Vec<BusError>,
}

/// The instance that makes a request from one of its own handlers. It handles one message at
/// a time, so it cannot serve a request while it waits for the answer: a transport never
/// chooses it, and when nothing else serves the topic it answers [`BusError::AskCycle`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Requester {
    /// Its mailbox (see `Mailbox::id`).
    pub(crate) mailbox: usize,
    /// Its component's name, for the error.
    pub(crate) component: &'static str,
}

/// How one envelope is to be sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct How {
    /// The instance asking, when a handler makes a request (never chosen as the consumer).
    pub(crate) requester: Option<Requester>,
    /// Whether a refusal for a full mailbox is counted (see [`Transport::send`]).
    pub(crate) count_refusal: bool,
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    /// How long a requester waits for the reply (a transport that forwards the request bounds
    /// its own wait by it).
    pub(crate) reply_within: Option<std::time::Duration>,
}

impl Default for How {
    fn default() -> Self {
        How {
            requester: None,
            count_refusal: true,
            reply_within: None,
        }
    }
}

/// A future that waits for room at one consumer.
pub(crate) type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BusError>> + Send + 'a>>;

/// Moves envelopes to the consumers of topics. See the module docs for what every
/// implementation must guarantee.
pub(crate) trait Transport: Send + Sync + 'static {
    /// Delivers the parcel to exactly one consumer of `topic`, trying the others in turn when
    /// the first is full, and never `how.requester`; on failure the envelope stays in the
    /// parcel. With `how.count_refusal`, a message that every consumer refused for being full
    /// is counted once, at the consumer chosen first; a sender about to wait for room passes
    /// `false` (the wait decides).
    fn send(&self, topic: &str, parcel: &mut dyn Parcel, how: How) -> Result<(), BusError>;

    /// Like [`send`](Self::send), and resolves once the consumer's side confirmed that the
    /// message is in a mailbox (or said why not). A transport whose `send` already knows
    /// (the local one) answers at once.
    fn send_acked<'a>(&'a self, topic: &'a str, parcel: &'a mut dyn Parcel) -> SendFuture<'a> {
        let result = self.send(topic, parcel, How::default());
        Box::pin(async move { result })
    }

    /// The bus shuts down: release connections and tasks.
    fn close(&self) {}

    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    /// For reaching the concrete transport (its statistics).
    fn as_any(&self) -> &dyn Any;

    /// The patterns this node's remote-enabled consumers are registered under, after every
    /// change (a transport to other nodes subscribes to them).
    fn serve_patterns(&self, _patterns: std::collections::BTreeSet<Arc<str>>) {}

    /// Like [`send`](Self::send) after every consumer was full: waits up to `deadline`
    /// (as long as it takes with `None`) for room at one consumer (the next in turn).
    fn send_until<'a>(
        &'a self,
        topic: &'a str,
        parcel: &'a mut dyn Parcel,
        deadline: Option<Instant>,
    ) -> SendFuture<'a>;

    /// Delivers a copy to every consumer of `topic`.
    fn publish(&self, topic: &str, copies: &mut dyn Copies) -> Result<Published, BusError>;

    /// How many consumers a publish on `topic` would reach.
    fn consumer_count(&self, topic: &str) -> usize;
}
