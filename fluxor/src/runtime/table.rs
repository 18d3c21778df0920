//! The deployment table: the live deployments, by id and in deploy order.

use std::sync::Arc;

use crate::component::Component;
use crate::ids::DeploymentId;
use std::time::Duration;

use super::reports::Reports;
use super::shared::Shared;
use crate::mailbox::{Mailbox, Signals, StopRequest};
use crate::supervision::Supervisor;

/// The live deployments, by id and in deploy order.
#[derive(Default)]
pub(super) struct Table {
    pub(super) order: std::collections::BTreeMap<u64, Deployment>,
    /// Hashed with a fast seeded hasher: the ids are the runtime's own, not a caller's.
    pub(super) by_id: std::collections::HashMap<DeploymentId, u64, foldhash::fast::RandomState>,
    pub(super) next: u64,
}

impl Table {
    pub(super) fn push(&mut self, d: Deployment) {
        self.next += 1;
        self.by_id.insert(d.id, self.next);
        self.order.insert(self.next, d);
    }

    pub(super) fn get(&self, id: DeploymentId) -> Option<&Deployment> {
        self.order.get(self.by_id.get(&id)?)
    }

    pub(super) fn get_mut(&mut self, id: DeploymentId) -> Option<&mut Deployment> {
        self.order.get_mut(self.by_id.get(&id)?)
    }

    pub(super) fn remove(&mut self, id: DeploymentId) -> Option<Deployment> {
        self.order.remove(&self.by_id.remove(&id)?)
    }

    /// The latest deployment, taken out.
    pub(super) fn pop(&mut self) -> Option<Deployment> {
        let (_, d) = self.order.pop_last()?;
        self.by_id.remove(&d.id);
        Some(d)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Deployment> {
        self.order.values()
    }

    pub(super) fn len(&self) -> usize {
        self.order.len()
    }
}

pub(super) type Channel<T> = (Mailbox<T>, crate::mailbox::Receiver<T>);

/// A deployment checked and built, not started yet.
pub(super) struct Plan<C: Component> {
    pub(super) shared: Arc<Shared<C>>,
    pub(super) bindings: Vec<crate::component::Binding<C>>,
    /// Each instance's mailbox and its receiving side.
    pub(super) channels: Vec<Channel<C::Msg>>,
    pub(super) reactors: Vec<u32>,
    pub(super) worker: Option<crate::component::RunErased>,
    pub(super) config_keys: Vec<String>,
    pub(super) mailbox_capacity: usize,
    pub(super) start_timeout: Duration,
}

pub(super) struct Deployment {
    pub(super) id: DeploymentId,
    pub(super) component: &'static str,
    pub(super) type_id: std::any::TypeId,
    /// Its supervision state, and its instances' mailboxes (`peers`, by index).
    pub(super) supervisor: Arc<Supervisor>,
    /// Where its instances report their start and stop.
    pub(super) reports: Arc<Reports>,
    /// Each instance's reactor, by index.
    pub(super) reactors: crate::util::Few<u32>,
    pub(super) mailbox_capacity: usize,
    pub(super) worker: bool,
    pub(super) config_keys: Vec<String>,
    /// The deployment's label with the blocked-reactor checker (from the start of its launch).
    pub(super) watch: Option<crate::watchdog::Registration>,
    /// It has bindings on the bus.
    pub(super) bound: bool,
    /// Parses a new config and swaps it in (see `Fluxor::reconfigure`).
    pub(super) reconfigure: Reconfigure,
}

/// Parses a new config value for a deployment and swaps it in: the deployment's `Shared`,
/// seen without its component type (no allocation of its own).
pub(super) type Reconfigure = Arc<dyn Reconfig>;

/// What `Fluxor::reconfigure` needs of a deployment whose component type it does not know.
pub(super) trait Reconfig: Send + Sync {
    /// Parses `value` as the deployment's config and swaps it in.
    fn reconfigure(&self, value: serde_json::Value) -> Result<(), crate::error::DeployError>;
}

impl Deployment {
    /// Its instances' mailboxes, by index.
    pub(super) fn instances(&self) -> &[Arc<dyn Signals>] {
        &self.supervisor.peers
    }
}

impl Drop for Deployment {
    /// Instances whose deployment goes without a stop request stop at once (a request made
    /// earlier stands); so do instances still starting, e.g. when a deploy is cancelled.
    fn drop(&mut self) {
        self.reports.started.abandon();
        for instance in self.instances() {
            instance.stop(StopRequest::now());
        }
    }
}
