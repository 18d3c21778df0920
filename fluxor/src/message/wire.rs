//! What a message needs to cross processes: a stable wire name, and a codec that turns it and
//! its reply into bytes and back.
//!
//! Local delivery never uses any of this: a message moves into a mailbox as a typed value. Only
//! a transport that reaches other processes (the `cluster` feature) encodes.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Message;

/// A message that may cross nodes: it and its reply are serializable, and it carries a wire
/// name that stays the same across builds, compilers and refactors.
///
/// Derive it with `#[derive(Message, Serialize, Deserialize)]` and `#[message(remote)]` (the
/// wire name is then the type's name) or `#[message(wire = "cart.add.v1")]` (a name of your
/// choosing; put a version in it and change it when the encoding changes). The wire name, not
/// the Rust type's path, tells a receiving node how to decode the bytes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot cross nodes",
    label = "this message is not marked as remote",
    note = "add `remote` (or `wire = \"name.v1\"`) to its `#[message(...)]`, and derive `serde::Serialize` and `serde::Deserialize` for it and its reply"
)]
pub trait RemoteMessage:
    Message<Reply: Serialize + DeserializeOwned> + Serialize + DeserializeOwned
{
    /// The stable name under which this message crosses the wire.
    const WIRE: &'static str;
}

/// A failure to encode or decode a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct CodecError {
    reason: String,
}

impl CodecError {
    /// A codec error with `reason`.
    pub fn new(reason: impl fmt::Display) -> Self {
        CodecError {
            reason: reason.to_string(),
        }
    }
}

/// Turns values into bytes and back, for messages that cross nodes.
///
/// Object-safe through [`erased_serde`], so that one codec serves every message type.
/// [`Json`] is the default; implement this trait to plug in another format.
pub trait Codec: Send + Sync + 'static {
    /// A short name of the format (`"json"`), sent with every message so that a node using
    /// another codec reports the mismatch instead of misreading the bytes.
    fn name(&self) -> &str;

    /// Encodes `value`.
    ///
    /// # Errors
    /// When the value cannot be represented in the format.
    fn encode(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, CodecError>;

    /// Decodes `bytes`: hands `visit` a deserializer over them. Must reject trailing bytes.
    ///
    /// # Errors
    /// When the bytes are not a valid encoding of what `visit` reads.
    fn decode(
        &self,
        bytes: &[u8],
        visit: &mut dyn FnMut(
            &mut dyn erased_serde::Deserializer<'_>,
        ) -> Result<(), erased_serde::Error>,
    ) -> Result<(), CodecError>;
}

/// JSON through `serde_json`: readable on the wire, and the default codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Codec for Json {
    fn name(&self) -> &str {
        "json"
    }

    fn encode(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, CodecError> {
        serde_json::to_vec(value).map_err(CodecError::new)
    }

    fn decode(
        &self,
        bytes: &[u8],
        visit: &mut dyn FnMut(
            &mut dyn erased_serde::Deserializer<'_>,
        ) -> Result<(), erased_serde::Error>,
    ) -> Result<(), CodecError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        visit(&mut <dyn erased_serde::Deserializer<'_>>::erase(&mut de))
            .map_err(CodecError::new)?;
        de.end().map_err(CodecError::new)
    }
}

/// Encodes any serializable value with `codec`.
pub(crate) fn encode_value<T: Serialize>(
    codec: &dyn Codec,
    value: &T,
) -> Result<Vec<u8>, CodecError> {
    codec.encode(value)
}

/// Decodes a `T` from `bytes` with `codec`.
pub(crate) fn decode_value<T: DeserializeOwned>(
    codec: &dyn Codec,
    bytes: &[u8],
) -> Result<T, CodecError> {
    let mut out = None;
    codec.decode(bytes, &mut |de| {
        out = Some(erased_serde::deserialize::<T>(de)?);
        Ok(())
    })?;
    out.ok_or_else(|| CodecError::new("the codec produced no value"))
}

/// Decodes a `T` with a codec.
type Decode<T> = fn(&dyn Codec, &[u8]) -> Result<T, CodecError>;

/// The encoding functions of one remote message type, reachable from code that only knows
/// `M: Message` (see [`Message::__wire`]).
#[doc(hidden)]
pub struct Wire<M: Message> {
    pub(crate) name: &'static str,
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) encode: fn(&M, &dyn Codec) -> Result<Vec<u8>, CodecError>,
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) decode_reply: Decode<M::Reply>,
}

impl<M: Message> Clone for Wire<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: Message> Copy for Wire<M> {}

impl<M: Message> fmt::Debug for Wire<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wire").field("name", &self.name).finish()
    }
}

impl<M: Message> Wire<M> {
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    /// The wire name.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }
}

/// The encoding functions of `M`; called by `#[derive(Message)]` for `remote` messages.
#[doc(hidden)]
pub fn wire<M: RemoteMessage>() -> Wire<M> {
    Wire {
        name: M::WIRE,
        encode: |m, c| encode_value(c, m),
        decode_reply: decode_value::<M::Reply>,
    }
}
