//! The cluster's counters, shown in the inspector and on `/metrics`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use serde::Serialize;

/// What one node's cluster connection did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ClusterStats {
    /// This node's id (carried by every message it sends).
    pub node_id: String,
    /// The cluster's name.
    pub cluster: String,
    /// Whether the connection to the server is up.
    pub connected: bool,
    /// Topics and patterns this node serves to other nodes.
    pub subscriptions: usize,
    /// Messages received from other nodes (sends, requests, publications, answers excluded).
    pub messages_in: u64,
    /// Messages handed to the connection (sends, requests, publications, answers).
    pub messages_out: u64,
    /// Incoming messages refused as undecodable: bad headers, oversized or invalid payloads,
    /// unknown wire names.
    pub decode_errors: u64,
    /// Publications from other nodes that never reached this node: gaps in each origin's
    /// numbering of its publications on a topic (a full subscription buffer, a lost
    /// connection). Exact for publications.
    pub dropped: u64,
    /// Messages the client reported dropping because a subscription's buffer was full (one
    /// event per message, on a small channel of the client's: a lower bound). Covers sends
    /// and requests too, whose loss the sender also sees (a timeout, a missing
    /// acknowledgement).
    pub slow_consumer_events: u64,
    /// Outgoing messages refused because the outgoing queue or the in-flight limit was full,
    /// or the connection was down.
    pub refused: u64,
    /// Times the connection came back after a loss.
    pub reconnects: u64,
}

/// The live counters behind [`ClusterStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) subscriptions: AtomicUsize,
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) slow_consumer_events: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    /// Connections made so far (the first is not a reconnect).
    pub(crate) connects: AtomicU64,
    /// What the server or the client last reported as wrong (an authorization violation, a
    /// TLS failure), cleared when a connection is made.
    pub(crate) last_error: std::sync::Mutex<Option<String>>,
}

impl Counters {
    pub(crate) fn set_last_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }

    /// `" (last error: ..)"`, or nothing.
    pub(crate) fn last_error_note(&self) -> String {
        match &*self.last_error.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => format!(" (last error: {e})"),
            None => String::new(),
        }
    }
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// The counters, with `connected` as given (the client knows it, not the counters).
    pub(crate) fn snapshot(&self, node_id: &str, cluster: &str, connected: bool) -> ClusterStats {
        ClusterStats {
            node_id: node_id.to_owned(),
            cluster: cluster.to_owned(),
            connected,
            subscriptions: self.subscriptions.load(Relaxed),
            messages_in: self.messages_in.load(Relaxed),
            messages_out: self.messages_out.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            slow_consumer_events: self.slow_consumer_events.load(Relaxed),
            refused: self.refused.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
        }
    }
}
