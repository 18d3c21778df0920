//! Codecs: how messages that cross nodes become bytes ([`Json`] unless configured).
//!
//! Only the cluster transport (feature `cluster`) encodes; local delivery moves typed values.
//! A message opts in to crossing nodes with `#[message(remote)]` or `#[message(wire = "..")]`
//! (see [`RemoteMessage`](crate::RemoteMessage)).

pub use crate::message::{Codec, CodecError, Json};
