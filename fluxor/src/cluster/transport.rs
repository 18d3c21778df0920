//! The bus's transport to other nodes: how a send, a request, an acknowledged send and a
//! publish leave this node.

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::node::{Node, MAX_NUMBERED_TOPICS};
use super::protocol::Kind;
use crate::bus::{Copies, How, Parcel, Published, SendFuture, Transport};
use crate::error::BusError;

/// The bus's transport to other nodes.
pub(crate) struct ClusterTransport(pub(crate) Arc<Node>);

impl Transport for ClusterTransport {
    fn send(&self, topic: &str, parcel: &mut dyn Parcel, how: How) -> Result<(), BusError> {
        let node = &self.0;
        if !node.connected() {
            return Err(node.disconnected(topic));
        }
        let Some(within) = how.reply_within else {
            // Fire-and-forget.
            let out = node.encode(topic, Kind::Send, parcel, None)?;
            node.queue(out).map_err(|r| node.unreachable(topic, r))?;
            parcel.take_for_remote();
            return Ok(());
        };
        let out = node.encode(topic, Kind::Request, parcel, Some(within))?;
        let Ok(permit) = node.in_flight.clone().try_acquire_owned() else {
            return Err(node.unreachable(
                topic,
                format!(
                    "{} requests to other nodes are waiting for their answer (`max_in_flight`)",
                    node.config.max_in_flight
                ),
            ));
        };
        let Some(reply) = parcel.take_for_remote() else {
            return Ok(());
        };
        let node = node.clone();
        let topic = topic.to_owned();
        // The answer is awaited where the requester runs (a reactor, or the caller's own
        // runtime), not where the connection lives: one thread hop less each way.
        let runtime =
            tokio::runtime::Handle::try_current().unwrap_or_else(|_| node.runtime.clone());
        runtime.spawn(async move {
            let _permit = permit;
            let answer = node.ask(&topic, out, within).await;
            let codec = node.config.codec.clone();
            match answer {
                Ok(bytes) => reply.complete(codec.as_ref(), Ok(&bytes)),
                Err(e) => reply.complete(codec.as_ref(), Err(e)),
            }
        });
        Ok(())
    }

    fn send_acked<'a>(&'a self, topic: &'a str, parcel: &'a mut dyn Parcel) -> SendFuture<'a> {
        Box::pin(async move {
            let node = &self.0;
            if !node.connected() {
                return Err(node.disconnected(topic));
            }
            let within = node
                .bus
                .upgrade()
                .map_or(Duration::from_secs(30), |b| b.default_timeout());
            let out = node.encode(topic, Kind::Ack, parcel, Some(within))?;
            let Ok(_permit) = node.in_flight.clone().try_acquire_owned() else {
                return Err(
                    node.unreachable(topic, "too many requests in flight (`max_in_flight`)")
                );
            };
            node.ask(topic, out, within).await?;
            parcel.take_for_remote();
            Ok(())
        })
    }

    fn send_until<'a>(
        &'a self,
        topic: &'a str,
        parcel: &'a mut dyn Parcel,
        _deadline: Option<Instant>,
    ) -> SendFuture<'a> {
        // Another node answers for its own mailboxes: nothing to wait for here.
        let result = self.send(topic, parcel, How::default());
        Box::pin(async move { result })
    }

    fn publish(&self, topic: &str, copies: &mut dyn Copies) -> Result<Published, BusError> {
        let node = &self.0;
        let Some(encoded) = copies.encode(node.config.codec.as_ref()) else {
            return Ok(Published::default());
        };
        if !node.connected() {
            return Err(node.disconnected(topic));
        }
        // Numbered and queued under one lock, so that the numbers go out in order.
        let mut numbers = node.publish_seq.lock().unwrap_or_else(|e| e.into_inner());
        let last = match numbers.get_mut(topic) {
            Some(last) => last,
            None => {
                if numbers.len() >= MAX_NUMBERED_TOPICS {
                    numbers.clear();
                }
                numbers.entry(topic.to_owned()).or_insert(0)
            }
        };
        let out = node.outgoing(topic, Kind::Publish, encoded, *last + 1)?;
        node.queue(out).map_err(|r| node.unreachable(topic, r))?;
        *last += 1;
        Ok(Published::default())
    }

    fn consumer_count(&self, _topic: &str) -> usize {
        // Other nodes' consumers are not known here.
        0
    }

    fn close(&self) {
        self.0.stop.cancel();
    }

    fn serve_patterns(&self, patterns: BTreeSet<Arc<str>>) {
        let mut desired = self.0.desired.lock().unwrap_or_else(|e| e.into_inner());
        if desired.1 != patterns {
            desired.0 += 1;
            desired.1 = patterns;
            drop(desired);
            self.0.changed.notify_one();
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
