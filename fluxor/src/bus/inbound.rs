//! How a message that arrives from another node, as bytes, becomes a typed envelope for a
//! consumer of this node: one decoder per remote-enabled handler binding, found by the
//! message type's wire name.

// The receiving side of the transport seam: used by the cluster transport only.
#![cfg_attr(not(feature = "cluster"), allow(dead_code))]

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use super::local::Consumer;
use super::transport::{Delivery, Parcel};
use crate::error::BusError;
use crate::message::{Codec, CodecError, Envelope, Meta, RemoteMessage, ReplyTo};

/// The encoded reply to a request from another node, once the handler answered.
pub(crate) type EncodedReply = Pin<Box<dyn Future<Output = Result<Vec<u8>, BusError>> + Send>>;

/// Decodes messages of one type for this node's consumers.
pub(crate) trait Inbound: Send + Sync + 'static {
    /// The wire name of the message type it decodes.
    fn wire(&self) -> &'static str;

    /// Decodes `bytes` into a parcel for one consumer; with `reply`, the parcel carries a reply
    /// channel and the returned future resolves to the encoded reply.
    fn parcel(
        &self,
        codec: &Arc<dyn Codec>,
        bytes: &[u8],
        meta: Meta,
        reply: bool,
    ) -> Result<(Box<dyn Parcel>, Option<EncodedReply>), CodecError>;

    /// Decodes `bytes` and offers the message to `consumer` (one copy of a publication).
    fn offer(
        &self,
        consumer: &dyn Consumer,
        codec: &dyn Codec,
        bytes: &[u8],
        meta: Meta,
    ) -> Result<Delivery, CodecError>;
}

/// The decoder of `M`.
pub(crate) struct TypedInbound<M>(PhantomData<fn(M)>);

impl<M> TypedInbound<M> {
    pub(crate) fn new() -> Self {
        TypedInbound(PhantomData)
    }
}

impl<M: RemoteMessage> Inbound for TypedInbound<M> {
    fn wire(&self) -> &'static str {
        M::WIRE
    }

    fn parcel(
        &self,
        codec: &Arc<dyn Codec>,
        bytes: &[u8],
        meta: Meta,
        reply: bool,
    ) -> Result<(Box<dyn Parcel>, Option<EncodedReply>), CodecError> {
        let msg: M = crate::message::wire::decode_value(codec.as_ref(), bytes)?;
        if !reply {
            return Ok((Box::new(Some(Envelope::new(msg, None, meta))), None));
        }
        let (tx, rx) = ReplyTo::channel();
        let codec = codec.clone();
        let answer: EncodedReply = Box::pin(async move {
            match rx.await {
                Some(Ok(reply)) => crate::message::wire::encode_value(codec.as_ref(), &reply)
                    .map_err(|e| BusError::RecipientFailed {
                        topic: String::new(),
                        reason: format!("its reply could not be encoded: {e}"),
                    }),
                Some(Err(e)) => Err(e),
                None => Err(BusError::Closed),
            }
        });
        Ok((
            Box::new(Some(Envelope::new(msg, Some(tx), meta))),
            Some(answer),
        ))
    }

    fn offer(
        &self,
        consumer: &dyn Consumer,
        codec: &dyn Codec,
        bytes: &[u8],
        meta: Meta,
    ) -> Result<Delivery, CodecError> {
        let msg: M = crate::message::wire::decode_value(codec, bytes)?;
        let mut slot = Some(Envelope::new(msg, None, meta));
        Ok(consumer.try_deliver(&mut slot))
    }
}
