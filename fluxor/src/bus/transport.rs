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
use crate::message::{Envelope, Message, Meta};

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

/// A future that waits for room at one consumer.
pub(crate) type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BusError>> + Send + 'a>>;

/// Moves envelopes to the consumers of topics. See the module docs for what every
/// implementation must guarantee.
pub(crate) trait Transport: Send + Sync + 'static {
    /// Delivers the parcel to exactly one consumer of `topic`, trying the others in turn when
    /// the first is full, and never the `requester`; on failure the envelope stays in the
    /// parcel. With `count_refusal`, a message that every consumer refused for being full is
    /// counted once, at the consumer chosen first; a sender about to wait for room passes
    /// `false` (the wait decides).
    fn send(
        &self,
        topic: &str,
        parcel: &mut dyn Parcel,
        requester: Option<Requester>,
        count_refusal: bool,
    ) -> Result<(), BusError>;

    /// Like [`send`](Self::send) after every consumer was full: waits up to `deadline` for
    /// room at one consumer (the next in turn).
    fn send_until<'a>(
        &'a self,
        topic: &'a str,
        parcel: &'a mut dyn Parcel,
        deadline: Instant,
    ) -> SendFuture<'a>;

    /// Delivers a copy to every consumer of `topic`.
    fn publish(&self, topic: &str, copies: &mut dyn Copies) -> Result<Published, BusError>;

    /// How many consumers a publish on `topic` would reach.
    fn consumer_count(&self, topic: &str) -> usize;
}
