//! The cluster's wire protocol: NATS subjects and headers. Everything read from the wire is
//! checked here and turned into an error, never a panic.
//!
//! * `fx.<cluster>.s.<topic>`: sends, acknowledged sends and requests, subscribed in the queue
//!   group `fx.<cluster>` (one member receives each message);
//! * `fx.<cluster>.p.<topic>`: publications, subscribed by every node;
//! * the payload starts with one line, `FX1 <kind> <codec> <wire> <origin> <correlation id>
//!   <request id> <n>`, then the encoded message; `<n>` is the requester's remaining time in
//!   milliseconds for a request, and for a publication its number among its origin's
//!   publications on its topic (1, 2, 3, ...), from which a receiver counts the ones it lost;
//! * the user's headers travel as NATS headers `Fluxor-H-<key>` (none: no NATS headers);
//! * an answer is `FX1 <status>` (`ok` or an error code), a line break, then the encoded reply
//!   or the error's text.

use std::io::Write as _;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::header::{HeaderMap, HeaderName};
use bytes::Bytes;
use uuid::Uuid;

use crate::error::BusError;
use crate::message::{Headers, Meta};

/// The first word of every frame: the protocol and its version.
const MAGIC: &str = "FX1";
/// The longest first line read; a longer one is refused unread.
const MAX_LINE: usize = 512;
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

/// The first line of a frame.
#[derive(Debug)]
pub(crate) struct Head<'a> {
    pub(crate) kind: Kind,
    pub(crate) codec: &'a str,
    pub(crate) wire: &'a str,
    pub(crate) origin: &'a str,
    pub(crate) meta: &'a Meta,
    /// The remaining time in milliseconds (a request), the number (a publication), or 0.
    pub(crate) n: u64,
}

/// The frame of an outgoing message: its first line, then `body`.
pub(crate) fn frame(head: &Head<'_>, body: &[u8]) -> Result<Vec<u8>, String> {
    for (what, word) in [("codec name", head.codec), ("wire name", head.wire)] {
        if word.is_empty() || word.contains(char::is_whitespace) {
            return Err(format!("the {what} `{word}` is empty or has whitespace"));
        }
    }
    let mut out = Vec::with_capacity(128 + body.len());
    let _ = writeln!(
        out,
        "{MAGIC} {} {} {} {} {} {} {}",
        head.kind.as_str(),
        head.codec,
        head.wire,
        head.origin,
        head.meta.correlation_id.simple(),
        head.meta.request_id.simple(),
        head.n
    );
    out.extend_from_slice(body);
    Ok(out)
}

/// The user's headers as NATS headers; `None` when there are none.
pub(crate) fn user_headers(meta: &Meta) -> Result<Option<HeaderMap>, String> {
    if meta.headers.is_empty() {
        return Ok(None);
    }
    let mut h = HeaderMap::new();
    for (key, value) in meta.headers.iter() {
        if let Some(name) = trace_header(key) {
            h.insert(name, value);
            continue;
        }
        let name = HeaderName::from_str(&format!("{USER}{key}")).map_err(|_| {
            format!("header `{key}` cannot cross nodes: a NATS header name is printable ASCII without `:`")
        })?;
        h.insert(name, value);
    }
    Ok(Some(h))
}

/// The W3C trace-context headers cross nodes under their own names, the ones other NATS
/// tools read, instead of as user headers.
fn trace_header(key: &str) -> Option<&'static str> {
    ["traceparent", "tracestate"]
        .into_iter()
        .find(|name| key.eq_ignore_ascii_case(name))
}

/// A message read off the wire, its first line checked.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) kind: Kind,
    pub(crate) wire: String,
    pub(crate) origin: String,
    pub(crate) meta: Meta,
    /// See [`Head::n`].
    pub(crate) n: u64,
}

/// Splits a frame into its first line and the rest.
fn split(payload: &Bytes) -> Result<(&str, Bytes), String> {
    let end = payload
        .iter()
        .take(MAX_LINE)
        .position(|b| *b == b'\n')
        .ok_or("not a frame of a fluxor node (no first line)")?;
    let line = std::str::from_utf8(&payload[..end]).map_err(|_| "the first line is not UTF-8")?;
    Ok((line, payload.slice(end + 1..)))
}

/// Reads an incoming frame on `topic`; `codec` is this node's codec name. Returns the message's
/// description and its encoded body.
pub(crate) fn incoming(
    headers: Option<&HeaderMap>,
    payload: &Bytes,
    topic: &str,
    codec: &str,
) -> Result<(Incoming, Bytes), String> {
    let (line, body) = split(payload)?;
    const SHAPE: &str = "the first line does not have the eight words of a fluxor frame";
    let mut split = line.split(' ');
    let mut words = [""; 8];
    for word in &mut words {
        *word = split.next().ok_or(SHAPE)?;
    }
    if split.next().is_some() {
        return Err(SHAPE.into());
    }
    let [magic, kind, theirs, wire, origin, correlation, request, n] = words;
    if magic != MAGIC {
        return Err(format!("not a `{MAGIC}` frame"));
    }
    let kind = Kind::parse(kind).ok_or("unknown kind")?;
    if theirs != codec {
        return Err(format!(
            "encoded as `{theirs}`, but this node decodes `{codec}`; every node of a cluster needs the same codec"
        ));
    }
    let uuid = |s: &str| Uuid::try_parse(s).map_err(|_| format!("`{s}` is not an id"));
    let n = n.parse().map_err(|_| format!("`{n}` is not a number"))?;
    let mut user = Headers::new();
    for (name, values) in headers.iter().flat_map(|h| h.iter()) {
        let name: &str = name.as_ref();
        let key = trace_header(name).or_else(|| name.strip_prefix(USER));
        if let (Some(key), Some(value)) = (key, values.last()) {
            user.insert(key.to_owned(), value.as_str().to_owned());
        }
    }
    let incoming = Incoming {
        kind,
        wire: wire.to_owned(),
        origin: origin.to_owned(),
        meta: Meta {
            correlation_id: uuid(correlation)?,
            request_id: uuid(request)?,
            topic: Some(Arc::from(topic)),
            headers: user,
        },
        n,
    };
    Ok((incoming, body))
}

/// The origin of a frame, read without checking the rest.
pub(crate) fn origin(payload: &[u8]) -> Option<&str> {
    let end = payload.iter().take(MAX_LINE).position(|b| *b == b'\n')?;
    let line = std::str::from_utf8(&payload[..end]).ok()?;
    line.split(' ').nth(4)
}

/// The frame of an answer.
pub(crate) fn answer(result: &Result<Vec<u8>, BusError>) -> Bytes {
    let (code, body): (&str, Vec<u8>) = match result {
        Ok(bytes) => ("ok", bytes.clone()),
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
            (code, text.into_bytes())
        }
    };
    let mut out = Vec::with_capacity(16 + body.len());
    let _ = writeln!(out, "{MAGIC} {code}");
    out.extend_from_slice(&body);
    Bytes::from(out)
}

/// Reads an answer: the encoded reply for `ok`, or the error it reports.
pub(crate) fn read_answer(
    payload: &Bytes,
    topic: &str,
    waited: Duration,
) -> Result<Bytes, BusError> {
    let topic = topic.to_owned();
    let (line, body) = split(payload).map_err(|reason| BusError::Undecodable {
        topic: topic.clone(),
        reason: format!("the answer: {reason}"),
    })?;
    let text = || String::from_utf8_lossy(&body).into_owned();
    let status = line.strip_prefix(MAGIC).map(str::trim_start);
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
            reason: "the answer is not a fluxor frame".into(),
        }),
    }
}
