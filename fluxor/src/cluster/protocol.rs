//! The cluster's wire protocol: NATS subjects and headers. Everything read from the wire is
//! checked here and turned into an error, never a panic.
//!
//! * `fx.<cluster>.s.<topic>`: sends, acknowledged sends and requests, subscribed in the queue
//!   group `fx.<cluster>` (one member receives each message);
//! * `fx.<cluster>.p.<topic>`: publications, subscribed by every node;
//! * headers carry the message's wire name, the codec, the origin node, the correlation and
//!   request ids, the requester's remaining time and the user's headers (`Fluxor-H-<key>`);
//!   a publication also carries its number among its origin's publications on its topic
//!   (`Fluxor-Seq`), from which a receiver counts the ones it lost;
//! * a reply carries `Fluxor-Status` (`ok` or an error code) and the encoded reply, or the
//!   error's text.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::header::{HeaderMap, HeaderName};
use uuid::Uuid;

use crate::error::BusError;
use crate::message::{Headers, Meta};

pub(crate) const KIND: &str = "Fluxor-Kind";
pub(crate) const WIRE: &str = "Fluxor-Wire";
pub(crate) const CODEC: &str = "Fluxor-Codec";
pub(crate) const ORIGIN: &str = "Fluxor-Origin";
pub(crate) const CORRELATION: &str = "Fluxor-Correlation";
pub(crate) const REQUEST: &str = "Fluxor-Request";
pub(crate) const TIMEOUT: &str = "Fluxor-Timeout-Ms";
pub(crate) const STATUS: &str = "Fluxor-Status";
/// A publication's number among its origin's publications on its topic: 1, 2, 3, ...
pub(crate) const SEQ: &str = "Fluxor-Seq";
const USER: &str = "Fluxor-H-";

/// What a message on a send subject asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Fire-and-forget: no answer.
    Send,
    /// Answer once the message is in a mailbox.
    Ack,
    /// Answer with the handler's reply.
    Request,
    Publish,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Send => "send",
            Kind::Ack => "ack",
            Kind::Request => "request",
            Kind::Publish => "publish",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "send" => Kind::Send,
            "ack" => Kind::Ack,
            "request" => Kind::Request,
            "publish" => Kind::Publish,
            _ => return None,
        })
    }
}

/// The subjects of one cluster.
#[derive(Debug, Clone)]
pub(crate) struct Subjects {
    /// `fx.<cluster>`; also the queue group of send subscriptions.
    prefix: String,
    send: String,
    publish: String,
}

impl Subjects {
    pub(crate) fn new(cluster: &str) -> Self {
        let prefix = format!("fx.{cluster}");
        Subjects {
            send: format!("{prefix}.s."),
            publish: format!("{prefix}.p."),
            prefix,
        }
    }

    pub(crate) fn queue(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn send(&self, topic: &str) -> String {
        format!("{}{topic}", self.send)
    }

    pub(crate) fn publish(&self, topic: &str) -> String {
        format!("{}{topic}", self.publish)
    }

    /// The topic of a message received on a send subject.
    pub(crate) fn send_topic<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject.strip_prefix(&self.send)
    }

    /// The topic of a message received on a publish subject.
    pub(crate) fn publish_topic<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject.strip_prefix(&self.publish)
    }
}

/// The headers of an outgoing message.
pub(crate) fn outgoing(
    kind: Kind,
    wire: &str,
    codec: &str,
    origin: &str,
    meta: &Meta,
    timeout: Option<Duration>,
) -> Result<HeaderMap, String> {
    let mut h = HeaderMap::new();
    h.insert(KIND, kind.as_str());
    h.insert(WIRE, wire);
    h.insert(CODEC, codec);
    h.insert(ORIGIN, origin);
    h.insert(CORRELATION, meta.correlation_id.to_string());
    h.insert(REQUEST, meta.request_id.to_string());
    if let Some(t) = timeout {
        h.insert(TIMEOUT, t.as_millis().to_string());
    }
    for (key, value) in meta.headers.iter() {
        let name = HeaderName::from_str(&format!("{USER}{key}")).map_err(|_| {
            format!("header `{key}` cannot cross nodes: a NATS header name is printable ASCII without `:`")
        })?;
        h.insert(name, value);
    }
    Ok(h)
}

/// A message read off the wire, its headers checked.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) kind: Kind,
    pub(crate) wire: String,
    pub(crate) origin: String,
    pub(crate) meta: Meta,
    pub(crate) timeout: Option<Duration>,
}

/// Reads the headers of an incoming message on `topic`; `codec` is this node's codec name.
pub(crate) fn incoming(
    headers: Option<&HeaderMap>,
    topic: &str,
    codec: &str,
) -> Result<Incoming, String> {
    let h = headers.ok_or("no headers: not a message of a fluxor node")?;
    let get = |name: &str| -> Result<&str, String> {
        h.get(name)
            .map(|v| v.as_str())
            .ok_or_else(|| format!("header `{name}` is missing"))
    };
    let kind = Kind::parse(get(KIND)?).ok_or("unknown `Fluxor-Kind`")?;
    let theirs = get(CODEC)?;
    if theirs != codec {
        return Err(format!(
            "encoded as `{theirs}`, but this node decodes `{codec}`; every node of a cluster needs the same codec"
        ));
    }
    let uuid = |name: &str| -> Result<Uuid, String> {
        Uuid::parse_str(get(name)?).map_err(|_| format!("header `{name}` is not a UUID"))
    };
    let timeout = match h.get(TIMEOUT) {
        Some(v) => {
            Some(Duration::from_millis(v.as_str().parse().map_err(|_| {
                format!("header `{TIMEOUT}` is not a number")
            })?))
        }
        None => None,
    };
    let mut user = Headers::new();
    for (name, values) in h.iter() {
        let name: &str = name.as_ref();
        if let (Some(key), Some(value)) = (name.strip_prefix(USER), values.last()) {
            user.insert(key.to_owned(), value.as_str().to_owned());
        }
    }
    Ok(Incoming {
        kind,
        wire: get(WIRE)?.to_owned(),
        origin: get(ORIGIN)?.to_owned(),
        meta: Meta {
            correlation_id: uuid(CORRELATION)?,
            request_id: uuid(REQUEST)?,
            topic: Some(Arc::from(topic)),
            headers: user,
        },
        timeout,
    })
}

/// The headers and body of an answer.
pub(crate) fn answer(result: &Result<Vec<u8>, BusError>) -> (HeaderMap, Vec<u8>) {
    let mut h = HeaderMap::new();
    match result {
        Ok(bytes) => {
            h.insert(STATUS, "ok");
            (h, bytes.clone())
        }
        Err(e) => {
            let (code, text) = match e {
                BusError::NoHandlers { .. } => ("no-handlers", String::new()),
                BusError::MailboxFull { .. } => ("mailbox-full", String::new()),
                BusError::RecipientFailed { reason, .. } => ("failed", reason.clone()),
                BusError::Undecodable { reason, .. } => ("undecodable", reason.clone()),
                BusError::TypeMismatch {
                    expected, found, ..
                } => (
                    "undecodable",
                    format!("the consumers take `{expected}`, not `{found}`"),
                ),
                BusError::Timeout { after, .. } => ("timeout", format!("{}", after.as_millis())),
                BusError::InvalidTopic { reason, .. } => ("invalid-topic", reason.clone()),
                BusError::Unreachable { reason, .. } => ("unreachable", reason.clone()),
                BusError::AskCycle { .. } | BusError::Closed => ("closed", String::new()),
            };
            h.insert(STATUS, code);
            (h, text.into_bytes())
        }
    }
}

/// Reads an answer: `Ok(body)` for `ok`, or the error it reports.
pub(crate) fn read_answer<'a>(
    headers: Option<&HeaderMap>,
    body: &'a [u8],
    topic: &str,
    waited: Duration,
) -> Result<&'a [u8], BusError> {
    let topic = topic.to_owned();
    let status = headers.and_then(|h| h.get(STATUS)).map(|v| v.as_str());
    let text = || String::from_utf8_lossy(body).into_owned();
    match status {
        Some("ok") => Ok(body),
        Some("no-handlers") => Err(BusError::NoHandlers { topic }),
        Some("mailbox-full") => Err(BusError::MailboxFull { topic }),
        Some("failed") => Err(BusError::RecipientFailed {
            topic,
            reason: text(),
        }),
        Some("undecodable") => Err(BusError::Undecodable {
            topic,
            reason: text(),
        }),
        Some("timeout") => Err(BusError::Timeout {
            topic,
            after: waited,
        }),
        Some("invalid-topic") => Err(BusError::InvalidTopic {
            topic,
            reason: text(),
        }),
        Some("unreachable") => Err(BusError::Unreachable {
            topic,
            reason: text(),
        }),
        Some("closed") => Err(BusError::Closed),
        Some(other) => Err(BusError::Undecodable {
            topic,
            reason: format!("the answer has an unknown status `{other}`"),
        }),
        None => Err(BusError::Undecodable {
            topic,
            reason: "the answer carries no `Fluxor-Status`: not from a fluxor node".into(),
        }),
    }
}
