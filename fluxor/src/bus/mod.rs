//! The event bus: publish / send / request over topics, with typed addresses.
//!
//! Two layers:
//! * the routing policy, [`EventBus`] (`event_bus.rs`): the API users call, the reserved
//!   `fluxor.` prefix, request timeouts and reply waiting, the errors a caller sees;
//! * below it, the transport seam, `Transport` (`transport.rs`, which says what every transport
//!   must guarantee), and the embedded local transport (`local.rs`): the topic registry of this
//!   process, which moves typed values into mailboxes without serialization.
//!
//! [`RequestOptions`] (`options.rs`) carry a request's timeout, headers and request id.

mod asking;
mod consumers;
mod event_bus;
mod inbound;
mod local;
mod options;
mod registry;
mod remote;
mod transport;
mod wait;

pub(crate) use asking::Asking;
pub use event_bus::EventBus;
#[cfg_attr(not(feature = "cluster"), allow(unused_imports))]
pub(crate) use event_bus::WeakBus;
#[cfg_attr(not(feature = "cluster"), allow(unused_imports))]
pub(crate) use inbound::{EncodedReply, Inbound, TypedInbound};
pub(crate) use local::{Consumer, MailboxConsumer};
pub use options::RequestOptions;
pub(crate) use registry::{Entry, Owner};
#[cfg_attr(not(feature = "cluster"), allow(unused_imports))]
pub(crate) use transport::{
    Copies, Delivery, Encoded, How, Parcel, Published, Requester, SendFuture, Transport,
};

/// The prefix of the runtime's own topics.
pub(crate) const RESERVED: &str = "fluxor.";

/// Whether `pattern` can match a topic under [`RESERVED`]: its first token is the prefix's,
/// or a wildcard.
pub(crate) fn may_match_reserved(pattern: &str) -> bool {
    let first = pattern.split('.').next().unwrap_or_default();
    first == RESERVED.trim_end_matches('.') || first == "*" || first == ">"
}

/// The metadata `make` makes, for a push that makes its envelope where it stores it (possibly
/// under the mailbox's lock): made there when it holds only ids; made now when it carries
/// trace context (feature `otel`), whose injection runs the tracing subscriber.
#[inline]
pub(crate) fn meta_later<'a>(
    make: impl FnOnce() -> crate::message::Meta + 'a,
) -> impl FnOnce() -> crate::message::Meta + 'a {
    #[cfg(feature = "otel")]
    let made = {
        let meta = make();
        move || meta
    };
    #[cfg(not(feature = "otel"))]
    let made = make;
    made
}

/// Writes the current span's trace context into a new envelope's headers (feature `otel`).
#[inline]
#[cfg_attr(not(feature = "otel"), allow(unused_mut))]
fn traced(mut meta: crate::message::Meta) -> crate::message::Meta {
    #[cfg(feature = "otel")]
    crate::otel::inject_current(&mut meta.headers);
    meta
}
