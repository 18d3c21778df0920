//! The local transport's side of a cluster: serving messages that other nodes sent, to this
//! node's remote-enabled consumers only.

// The receiving side of the transport seam: used by the cluster transport only.
#![cfg_attr(not(feature = "cluster"), allow(dead_code))]

use std::collections::BTreeSet;
use std::sync::Arc;

use super::inbound::Inbound;
use super::local::{no_handlers, LocalTransport};
use super::registry::Entry;
use super::transport::{Delivery, How, Parcel, Published};
use crate::error::BusError;

impl LocalTransport {
    /// Serves a message from another node: finds this node's remote-enabled consumers of
    /// `topic` that take the wire name `wire`, has `decode` build the parcel with the first
    /// one's decoder, and delivers it to one of them.
    pub(crate) fn serve_remote<X>(
        &self,
        topic: &str,
        wire: &str,
        decode: impl FnOnce(&dyn Inbound) -> Result<(Box<dyn Parcel>, X), BusError>,
    ) -> Result<X, BusError> {
        let snap = self.registry.load();
        let resolved = snap.resolve(topic);
        let entries = (0..resolved.len()).map(|i| resolved.get(i));
        let mut remote = entries.filter(|e| e.remote.is_some()).peekable();
        if remote.peek().is_none() {
            return Err(no_handlers(topic));
        }
        let mut taken = Vec::new();
        let Some(inbound) = remote.find_map(|e| {
            let inbound = e.remote.as_ref().expect("filtered on remote");
            if inbound.wire() == wire {
                Some(inbound)
            } else {
                taken.push(inbound.wire());
                None
            }
        }) else {
            return Err(BusError::Undecodable {
                topic: topic.to_owned(),
                reason: format!(
                    "no consumer of `{topic}` on this node takes the wire name `{wire}` (they take {taken:?})"
                ),
            });
        };
        let (mut parcel, extra) = decode(inbound.as_ref())?;
        self.send_among(topic, &resolved, parcel.as_mut(), How::default(), |e| {
            e.takes_wire(wire)
        })?;
        Ok(extra)
    }

    /// Delivers a publication from another node to this node's remote-enabled consumers of
    /// `topic` registered under `key` (the exact topic or the pattern a subscription was made
    /// for), each through `offer`.
    pub(crate) fn publish_remote(
        &self,
        key: &str,
        topic: &str,
        mut offer: impl FnMut(&Entry, &dyn Inbound) -> Delivery,
    ) -> Published {
        let snap = self.registry.load();
        let resolved = snap.resolve(topic);
        let mut published = Published::default();
        for i in 0..resolved.len() {
            let entry = resolved.get(i);
            let Some(inbound) = entry.remote.as_ref() else {
                continue;
            };
            if &*entry.pattern != key {
                continue;
            }
            let delivery = offer(entry, inbound.as_ref());
            published.note(delivery, entry, topic, inbound.wire());
        }
        published
    }

    /// The patterns (exact topics included) that remote-enabled consumers are registered
    /// under (counted as they come and go, not gathered from every entry).
    pub(crate) fn remote_patterns(&self) -> BTreeSet<Arc<str>> {
        self.registry.remote_patterns()
    }
}
