//! The cluster bus (feature `cluster`): the same components across processes and machines,
//! over a NATS server.
//!
//! ```no_run
//! use fluxor::cluster::NatsCluster;
//!
//! # fn main() -> Result<(), fluxor::BuildError> {
//! let runtime = fluxor::Fluxor::builder()
//!     .cluster(NatsCluster::connect("nats://127.0.0.1:4222").name("shop"))
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! Messages opt in to crossing nodes (`#[message(remote)]` or `#[message(wire = "cart.add.v1")]`,
//! with serde's `Serialize` and `Deserialize` on the message and its reply), and so do handlers
//! (`#[handler("cart.add", remote)]`). Everything else stays local, and a program without a
//! cluster behaves as before. The model, the guarantees and the mapping to NATS subjects are in
//! `docs/cluster.md`.
//!
//! * `publish` reaches this node's consumers directly and every other node's remote-enabled
//!   consumers through the server, each once.
//! * `send` and `request` go to a local consumer when one exists (no encoding); otherwise to
//!   one node that serves the topic, chosen by the server among the topic's queue group at
//!   random. With [`NatsCluster::balance`], every send and request of a remote-capable
//!   message goes through the server, this node's own remote-enabled consumers included.
//! * A plain `send` to another node is fire-and-forget;
//!   [`EventBus::send_acked`](crate::EventBus::send_acked) waits for the other node's
//!   confirmation.
//! * While the connection is down, sends, requests and publishes that need it fail at once
//!   with [`BusError::Unreachable`](crate::BusError::Unreachable).

mod node;
mod options;
mod protocol;
mod serve;
mod stats;
mod transport;

pub use options::NatsCluster;
pub use stats::ClusterStats;

use std::sync::Arc;

use crate::runtime::{Builder, Fluxor};

impl Builder {
    /// Connects the runtime's bus to other nodes through a NATS server (feature `cluster`).
    /// The connection is made in the background: [`Fluxor::ready`](crate::Fluxor::ready)
    /// waits for it (the readiness check `cluster`), and until then messages for other nodes
    /// fail with [`BusError::Unreachable`](crate::BusError::Unreachable).
    pub fn cluster(self, cluster: NatsCluster) -> Self {
        self.extend(Arc::new(cluster))
    }
}

impl Fluxor {
    /// The cluster connection's counters, or `None` without a cluster (feature `cluster`).
    pub fn cluster_stats(&self) -> Option<ClusterStats> {
        let transport = self.bus().remote()?;
        let cluster = transport
            .as_any()
            .downcast_ref::<transport::ClusterTransport>()?;
        Some(cluster.0.stats())
    }
}
