//! The receiving side: messages from other nodes, checked, decoded and delivered to this
//! node's remote-enabled consumers. Whatever comes off the wire is untrusted: a bad message is
//! answered with an error (when someone waits), counted, and logged at most once a second.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Message, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::node::{Node, Outgoing};
use super::protocol::{self, Kind};
use super::stats::Counters;
use crate::bus::{Delivery, EncodedReply};
use crate::error::BusError;

/// Reads the sends, acknowledged sends and requests of one pattern until `stop`.
pub(super) async fn sends(node: Arc<Node>, mut sub: Subscriber, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            msg = sub.next() => match msg {
                Some(msg) => serve_send(&node, msg),
                None => break,
            },
        }
    }
    let _ = sub.unsubscribe().await;
}

/// Reads the publications of one pattern (`key`) until `stop`.
pub(super) async fn publications(
    node: Arc<Node>,
    key: Arc<str>,
    mut sub: Subscriber,
    stop: CancellationToken,
) {
    let mut numbers = Numbers::default();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            msg = sub.next() => match msg {
                Some(msg) => serve_publication(&node, &key, msg, &mut numbers),
                None => break,
            },
        }
    }
    let _ = sub.unsubscribe().await;
}

fn serve_send(node: &Arc<Node>, msg: Message) {
    Counters::bump(&node.counters.messages_in);
    let reply_to = msg.reply.as_ref().map(|s| s.to_string());
    let Some(topic) = node.subjects.send_topic(&msg.subject) else {
        return;
    };
    let topic = topic.to_owned();
    let (incoming, payload) = match checked(node, &msg, &topic) {
        Ok(i) => i,
        Err(e) => return answer(node, reply_to, Err(e)),
    };
    let want_reply = incoming.kind == Kind::Request;
    let codec = node.config.codec.clone();
    let Some(bus) = node.bus.upgrade() else {
        return answer(node, reply_to, Err(BusError::Closed));
    };
    let meta = incoming.meta;
    let served = bus.serve_remote(&topic, &incoming.wire, |inbound| {
        inbound
            .parcel(&codec, &payload, meta, want_reply)
            .map_err(|e| BusError::Undecodable {
                topic: topic.clone(),
                reason: format!("`{}`: {e}", incoming.wire),
            })
    });
    let served = served.inspect_err(|e| {
        if matches!(e, BusError::Undecodable { .. }) {
            Counters::bump(&node.counters.decode_errors);
            node.warn(format_args!(
                "refused a message from node {}: {e}",
                incoming.origin
            ));
        }
    });
    match (incoming.kind, served) {
        (Kind::Request, Ok(Some(reply))) => {
            let within = Duration::from_millis(incoming.n);
            tokio::spawn(await_reply(node.clone(), reply_to, reply, within, topic));
        }
        (_, Ok(_)) => answer(node, reply_to, Ok(Vec::new())),
        (_, Err(e)) => answer(node, reply_to, Err(e)),
    }
}

/// Waits for the handler's reply (no longer than the requester waits) and sends it back.
async fn await_reply(
    node: Arc<Node>,
    reply_to: Option<String>,
    reply: EncodedReply,
    within: Duration,
    topic: String,
) {
    let result = match tokio::time::timeout(within, reply).await {
        Ok(Err(BusError::RecipientFailed { reason, .. })) => Err(BusError::RecipientFailed {
            topic: topic.clone(),
            reason,
        }),
        Ok(r) => r,
        Err(_) => Err(BusError::Timeout {
            topic,
            after: within,
        }),
    };
    answer(&node, reply_to, result);
}

/// Checks a message's size and headers; a bad one is counted.
fn checked(
    node: &Node,
    msg: &Message,
    topic: &str,
) -> Result<(protocol::Incoming, Bytes), BusError> {
    let refuse = |reason: String| {
        Counters::bump(&node.counters.decode_errors);
        node.warn(format_args!(
            "refused a message on `{}`: {reason}",
            msg.subject
        ));
        BusError::Undecodable {
            topic: topic.to_owned(),
            reason,
        }
    };
    if msg.payload.len() > node.config.max_message_bytes {
        return Err(refuse(format!(
            "{} bytes, over the limit of {} (`max_message_bytes`)",
            msg.payload.len(),
            node.config.max_message_bytes
        )));
    }
    protocol::incoming(
        msg.headers.as_ref(),
        &msg.payload,
        topic,
        node.config.codec.name(),
    )
    .map_err(refuse)
}

/// Sends an answer when someone waits for one.
fn answer(node: &Node, reply_to: Option<String>, result: Result<Vec<u8>, BusError>) {
    let Some(subject) = reply_to else { return };
    if let Err(reason) = node.queue(Outgoing {
        subject,
        headers: None,
        payload: protocol::answer(&result),
    }) {
        Counters::bump(&node.counters.refused);
        node.warn(format_args!("an answer was not sent: {reason}"));
    }
}

/// The last publication number seen per origin and topic, on one subscription.
#[derive(Default)]
struct Numbers {
    last: HashMap<String, HashMap<String, u64>>,
    tracked: usize,
}

/// Origins and topics one subscription keeps numbers for; past it, it starts over (and counts
/// no loss for the first number it sees of each again).
const MAX_TRACKED: usize = 65_536;

impl Numbers {
    /// Records `seq` from `origin` on `topic`; returns how many numbers were skipped.
    fn gap(&mut self, origin: &str, topic: &str, seq: u64) -> u64 {
        if let Some(last) = self.last.get_mut(origin).and_then(|t| t.get_mut(topic)) {
            // A number that does not grow: the origin started its numbering over.
            let gap = seq.saturating_sub(*last).saturating_sub(1);
            *last = seq;
            return gap;
        }
        if self.tracked >= MAX_TRACKED {
            self.last.clear();
            self.tracked = 0;
        }
        self.tracked += 1;
        self.last
            .entry(origin.to_owned())
            .or_default()
            .insert(topic.to_owned(), seq);
        0
    }
}

fn serve_publication(node: &Arc<Node>, key: &str, msg: Message, numbers: &mut Numbers) {
    let Some(topic) = node.subjects.publish_topic(&msg.subject) else {
        return;
    };
    let topic = topic.to_owned();
    // This node's own publications reached its consumers directly.
    let own = protocol::origin(&msg.payload) == Some(node.id.as_str());
    if own {
        return;
    }
    Counters::bump(&node.counters.messages_in);
    let Ok((incoming, payload)) = checked(node, &msg, &topic) else {
        return;
    };
    {
        let lost = numbers.gap(&incoming.origin, &topic, incoming.n);
        if lost > 0 {
            node.counters
                .dropped
                .fetch_add(lost, std::sync::atomic::Ordering::Relaxed);
            node.warn(format_args!(
                "{lost} publication(s) on `{topic}` from node {} did not arrive (a full subscription buffer or a lost connection)",
                incoming.origin
            ));
        }
    }
    let Some(bus) = node.bus.upgrade() else {
        return;
    };
    let codec = node.config.codec.clone();
    let mut undecodable = None;
    bus.publish_remote(key, &topic, |entry, inbound| {
        if inbound.wire() != incoming.wire {
            return Delivery::TypeMismatch;
        }
        match inbound.offer(
            entry.consumer.as_ref(),
            codec.as_ref(),
            &payload,
            incoming.meta.clone(),
        ) {
            Ok(delivery) => delivery,
            Err(e) => {
                undecodable.get_or_insert(e);
                Delivery::TypeMismatch
            }
        }
    });
    if let Some(e) = undecodable {
        Counters::bump(&node.counters.decode_errors);
        node.warn(format_args!(
            "refused a publication on `{topic}` from node {}: `{}`: {e}",
            incoming.origin, incoming.wire
        ));
    }
}
