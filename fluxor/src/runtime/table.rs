//! The deployment table: the live deployments, by id and in deploy order.

use std::sync::Arc;

use crate::component::Component;
use crate::ids::DeploymentId;
use std::time::Duration;

use super::reports::Reports;
use super::shared::Shared;
use crate::mailbox::{Mailbox, Signals, StopRequest};
use crate::supervision::Supervisor;

/// The live deployments, by id; each knows its place in deploy order.
#[derive(Default)]
pub(super) struct Table {
    /// Hashed with a fast seeded hasher: the ids are the runtime's own, not a caller's.
    by_id: std::collections::HashMap<DeploymentId, Deployment, foldhash::fast::RandomState>,
    /// The place the next deployment takes in deploy order.
    next: u64,
}

impl Table {
    pub(super) fn push(&mut self, mut d: Deployment) {
        self.next += 1;
        d.order = self.next;
        self.by_id.insert(d.id, d);
    }

    pub(super) fn get(&self, id: DeploymentId) -> Option<&Deployment> {
        self.by_id.get(&id)
    }

    pub(super) fn get_mut(&mut self, id: DeploymentId) -> Option<&mut Deployment> {
        self.by_id.get_mut(&id)
    }

    pub(super) fn remove(&mut self, id: DeploymentId) -> Option<Deployment> {
        self.by_id.remove(&id)
    }

    /// The live deployments' ids, the latest first (the order shutdown stops them in).
    pub(super) fn latest_first(&self) -> Vec<DeploymentId> {
        let mut ids: Vec<(u64, DeploymentId)> =
            self.by_id.values().map(|d| (d.order, d.id)).collect();
        ids.sort_unstable_by_key(|&(order, _)| std::cmp::Reverse(order));
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// The live deployments, in no particular order (each knows its place in deploy order:
    /// callers that list them sort after letting go of the table).
    pub(super) fn iter(&self) -> impl Iterator<Item = &Deployment> {
        self.by_id.values()
    }

    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// How the blocked-reactor checker names a deployment by its key: it looks through the
    /// live deployments (only when it reports). Holds the table weakly, so the checker's
    /// thread does not keep it alive.
    pub(super) fn resolver(table: &Arc<std::sync::Mutex<Table>>) -> crate::watchdog::Resolver {
        let table = Arc::downgrade(table);
        Box::new(move |key| {
            let table = table.upgrade()?;
            let deployments = table.lock().unwrap_or_else(|e| e.into_inner());
            let label = deployments
                .iter()
                .find(|d| d.watch.as_ref().is_some_and(|w| w.deployment_key() == key))
                .map(Deployment::label);
            label
        })
    }
}

/// The values of `found`, sorted by their keys (a deployment's place in deploy order, and
/// maybe an instance): listings sort after letting go of the table.
pub(super) fn in_deploy_order<K: Ord, T>(mut found: Vec<(K, T)>) -> Vec<T> {
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    found.into_iter().map(|(_, value)| value).collect()
}

pub(super) type Channel<T> = (Mailbox<T>, crate::mailbox::Receiver<T>);

/// A deployment checked and built, not started yet.
pub(super) struct Plan<C: Component> {
    pub(super) shared: Arc<Shared<C>>,
    /// Its key with the blocked-reactor checker.
    pub(super) watch: crate::watchdog::Registration,
    pub(super) bindings: Vec<crate::component::Binding<C>>,
    /// Each instance's mailbox and its receiving side.
    pub(super) channels: crate::util::Few<Channel<C::Msg>>,
    pub(super) reactors: crate::util::Few<u32>,
    pub(super) worker: Option<crate::component::RunErased>,
    pub(super) config_keys: Vec<String>,
    pub(super) mailbox_capacity: usize,
    pub(super) start_timeout: Duration,
}

pub(super) struct Deployment {
    pub(super) id: DeploymentId,
    /// Its place in deploy order (set when it goes into the table).
    pub(super) order: u64,
    pub(super) mailbox_capacity: usize,
    pub(super) worker: bool,
    pub(super) config_keys: Vec<String>,
    /// The deployment's label with the blocked-reactor checker (from the start of its launch).
    pub(super) watch: Option<crate::watchdog::Registration>,
    /// It has bindings on the bus.
    pub(super) bound: bool,
    /// What its instances share (supervision state, reports, config), seen without its
    /// component type.
    pub(super) shared: Arc<dyn Live>,
}

/// What the runtime needs of a deployment's shared state when it does not know its component
/// type: implemented by `Shared<C>`, so the table entry costs no allocation of its own.
pub(super) trait Live: Send + Sync {
    /// Its supervision state, and its instances' mailboxes (`peers`, by index).
    fn supervisor(&self) -> &Supervisor;
    /// Where its instances report their start and stop.
    fn reports(&self) -> &Reports;
    /// Parses `value` as the deployment's config and swaps it in.
    fn reconfigure(&self, value: serde_json::Value) -> Result<(), crate::error::DeployError>;
    /// Its component's type.
    fn component_type(&self) -> std::any::TypeId;
}

impl Deployment {
    /// How the blocked-reactor checker names it.
    pub(super) fn label(&self) -> crate::watchdog::Label {
        crate::watchdog::Label {
            component: self.component(),
            deployment: self.id,
        }
    }

    /// Its component's name (kept with its reports, so the table entry has no copy of it).
    pub(super) fn component(&self) -> &'static str {
        self.reports().component
    }

    /// Its component's type (asked of its shared state, which knows it by its type).
    pub(super) fn component_type(&self) -> std::any::TypeId {
        self.shared.component_type()
    }

    /// Its instances' mailboxes, by index.
    pub(super) fn instances(&self) -> &[Arc<dyn Signals>] {
        &self.shared.supervisor().peers
    }

    pub(super) fn supervisor(&self) -> &Supervisor {
        self.shared.supervisor()
    }

    pub(super) fn reports(&self) -> &Reports {
        self.shared.reports()
    }
}

impl Drop for Deployment {
    /// Instances whose deployment goes without a stop request stop at once (a request made
    /// earlier stands); so do instances still starting, e.g. when a deploy is cancelled.
    fn drop(&mut self) {
        let reports = self.reports();
        reports.started.abandon();
        if reports.stopped.count.is_zero() {
            // Every instance has stopped (an undeploy waited for them): nothing to signal.
            return;
        }
        for instance in self.instances() {
            instance.stop(StopRequest::now());
        }
    }
}
