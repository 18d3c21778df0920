//! The deployment table: the live deployments, by id and in deploy order.

use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::component::Component;
use crate::ids::DeploymentId;
use std::time::Duration;

use super::reports::Reports;
use super::shared::Shared;
use crate::mailbox::{Mailbox, Signals, StopRequest};
use crate::supervision::Supervisor;

/// The live deployments, by id; each knows its place in deploy order.
///
/// An entry is a pointer to the deployment's shared state, which keeps the rest ([`Listing`]),
/// and its place in deploy order (so that shutdown sorts the table without visiting each
/// deployment), under the deployment's id hashed by its sequence number ([`Sequential`]).
#[derive(Default)]
pub(super) struct Table {
    by_id: std::collections::HashMap<Key, Deployment, BuildHasherDefault<Sequential>>,
    /// The place the next deployment takes in deploy order.
    next: u64,
}

impl Table {
    pub(super) fn push(&mut self, mut d: Deployment) {
        self.next += 1;
        d.order = self.next;
        self.by_id.insert(Key(d.id()), d);
    }

    pub(super) fn get(&self, id: DeploymentId) -> Option<&Deployment> {
        self.by_id.get(&Key(id))
    }

    pub(super) fn remove(&mut self, id: DeploymentId) -> Option<Deployment> {
        self.by_id.remove(&Key(id))
    }

    /// The live deployments' ids, the latest first (the order shutdown stops them in).
    pub(super) fn latest_first(&self) -> Vec<DeploymentId> {
        let mut ids: Vec<(u64, DeploymentId)> =
            self.by_id.iter().map(|(key, d)| (d.order, key.0)).collect();
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
                .find(|d| d.listing().watch.deployment_key() == key)
                .map(Deployment::label);
            label
        })
    }
}

/// A deployment id as the table's key: hashed by its sequence half alone (see
/// [`Sequential`]).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key(DeploymentId);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.as_uuid().as_u64_pair().1);
    }
}

/// The table's hasher. A runtime numbers its deployments one after another (the low half of
/// their ids, [`IdGen::next_in_sequence`](crate::ids::IdGen::next_in_sequence)), and deploys
/// and undeploys mostly touch recent ones: the bucket (the hash's low bits) is the number
/// plus the number of its block of 1024, so deployments made one after another take buckets
/// one after another (one more at each block's end) and a run of deploys or undeploys walks
/// the table instead of missing the cache (and the TLB) at each, while numbers that share
/// their low bits (ids a thread takes in blocks, one per block) still spread over the
/// buckets (they step by 1025, an odd number). The seven bits hashbrown reads as a key's tag
/// within a group of buckets are the top bits of the number times an odd constant. The keys
/// are the runtime's own numbers.
#[derive(Default)]
struct Sequential(u64);

impl Hasher for Sequential {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (by `Key`); anything else still hashes.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(MIX);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        let n = self.0;
        let tag = (n.wrapping_mul(MIX) >> 57) << TAG_SHIFT;
        (n.wrapping_add(n >> 10) & !TAG) | tag
    }
}

/// Where hashbrown reads a key's tag: the top seven bits of the hash as wide as a pointer
/// (the rest is the bucket, which never reaches them).
const TAG_SHIFT: u32 = if cfg!(target_pointer_width = "64") {
    57
} else {
    25
};
const TAG: u64 = 0x7f << TAG_SHIFT;

/// An odd constant with well-spread bits (2^64 divided by the golden ratio).
const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

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
    pub(super) bindings: Vec<crate::component::Binding<C>>,
    /// Each instance's mailbox and its receiving side.
    pub(super) channels: crate::util::Few<Channel<C::Msg>>,
    pub(super) reactors: crate::util::Few<u32>,
    pub(super) worker: Option<crate::component::RunErased>,
    pub(super) start_timeout: Duration,
}

/// A live deployment, as the table holds it: what its instances share (supervision state,
/// reports, config, its [`Listing`]), seen without its component type. Dropping it stops
/// the instances that were not asked to stop.
pub(super) struct Deployment {
    shared: Arc<dyn Live>,
    /// Its place in deploy order (set when it goes into the table).
    order: u64,
}

/// What the runtime keeps of a deployment besides what its instances use, in its shared
/// state (so the table's entry is a pointer and the deployment's place in deploy order).
pub(crate) struct Listing {
    pub(super) worker: bool,
    /// It has bindings on the bus: set when it goes into the table.
    bound: AtomicBool,
    /// The top-level keys of its config, as listings show them; a reconfigure replaces them.
    config_keys: Mutex<Box<[String]>>,
    /// Its label with the blocked-reactor checker (from the start of its launch).
    pub(super) watch: crate::watchdog::Registration,
}

impl Listing {
    pub(super) fn new(
        worker: bool,
        config_keys: Vec<String>,
        watch: crate::watchdog::Registration,
    ) -> Self {
        Listing {
            worker,
            bound: AtomicBool::new(false),
            config_keys: Mutex::new(config_keys.into_boxed_slice()),
            watch,
        }
    }

    /// Whether it has bindings on the bus (read once it is in the table, or out of it: the
    /// table's lock orders it after the store).
    pub(super) fn bound(&self) -> bool {
        self.bound.load(Relaxed)
    }

    /// Says whether it has bindings on the bus, under the table's lock.
    pub(super) fn set_bound(&self, bound: bool) {
        self.bound.store(bound, Relaxed);
    }

    pub(super) fn config_keys(&self) -> Vec<String> {
        self.config_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .to_vec()
    }

    /// Replaces the listed config keys; returns the ones it replaced.
    pub(super) fn set_config_keys(&self, keys: Vec<String>) -> Box<[String]> {
        let mut listed = self.config_keys.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *listed, keys.into_boxed_slice())
    }
}

/// What the runtime needs of a deployment's shared state when it does not know its component
/// type: implemented by `Shared<C>`, so the table entry costs no allocation of its own.
pub(super) trait Live: Send + Sync {
    fn id(&self) -> DeploymentId;
    /// What the table keeps of it.
    fn listing(&self) -> &Listing;
    /// Its supervision state, and its instances' mailboxes (`peers`, by index).
    fn supervisor(&self) -> &Supervisor;
    /// Where its instances report their start and stop.
    fn reports(&self) -> &Reports;
    /// Parses `value` as the deployment's config and swaps it in, with its top-level keys
    /// for the listing.
    fn reconfigure(&self, value: serde_json::Value) -> Result<(), crate::error::DeployError>;
    /// Its component's type.
    fn component_type(&self) -> std::any::TypeId;
}

impl Deployment {
    pub(super) fn new(shared: Arc<dyn Live>) -> Self {
        Deployment { shared, order: 0 }
    }

    pub(super) fn id(&self) -> DeploymentId {
        self.shared.id()
    }

    pub(super) fn listing(&self) -> &Listing {
        self.shared.listing()
    }

    /// Its place in deploy order.
    pub(super) fn order(&self) -> u64 {
        self.order
    }

    /// Its shared state, for work done after letting go of the table.
    pub(super) fn live(&self) -> &Arc<dyn Live> {
        &self.shared
    }

    /// How the blocked-reactor checker names it.
    pub(super) fn label(&self) -> crate::watchdog::Label {
        crate::watchdog::Label {
            component: self.component(),
            deployment: self.id(),
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

    /// How many messages each of its instances' mailboxes holds at most.
    pub(super) fn mailbox_capacity(&self) -> usize {
        self.instances().first().map_or(0, |i| i.capacity())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash(id: DeploymentId) -> u64 {
        BuildHasherDefault::<Sequential>::default().hash_one(Key(id))
    }

    /// The tag hashbrown reads from a hash: its top seven bits as wide as a pointer.
    fn tag(h: u64) -> u64 {
        let width = usize::BITS.min(64);
        (h >> (width - 7)) & 0x7f
    }

    /// The bucket of a table of 1024.
    fn bucket(h: u64) -> u64 {
        h & 1023
    }

    /// The id a runtime numbers `n` (as `IdGen` formats it).
    fn numbered(n: u64) -> DeploymentId {
        let low = (n & !(0xC0 << 56)) | (0x80 << 56);
        DeploymentId(uuid::Uuid::from_u64_pair(0x0123_4567_89ab_8def, low))
    }

    #[test]
    fn deployments_made_one_after_another_take_buckets_one_after_another() {
        // From a runtime's first deployments, and across blocks whose numbers differ in many
        // bits (511 and 512, 2^20 - 1 and 2^20).
        for start in [1, 512 * 1024 - 500, (1 << 30) - 500] {
            let made: Vec<u64> = (start..start + 1000).map(|n| hash(numbered(n))).collect();
            let buckets: std::collections::BTreeSet<u64> =
                made.iter().map(|&h| bucket(h)).collect();
            assert_eq!(buckets.len(), made.len(), "no two share a bucket of 1024");
            for pair in made.windows(2) {
                let step = (pair[1] & !TAG) - (pair[0] & !TAG);
                assert!(step == 1 || step == 2, "a step of {step}");
            }
            for run in made.chunks_exact(16) {
                let tags: std::collections::BTreeSet<u64> = run.iter().map(|&h| tag(h)).collect();
                assert!(tags.len() >= 15, "{} tags for 16 neighbours", tags.len());
            }
        }
    }

    #[test]
    fn ids_made_in_sequence_are_numbered_one_after_another() {
        let ids = crate::ids::IdGen::new();
        let made: Vec<u64> = (0..100)
            .map(|_| hash(DeploymentId(ids.next_in_sequence())) & !TAG)
            .collect();
        assert!(made.windows(2).all(|p| p[1] == p[0] + 1));
    }

    #[test]
    fn ids_that_share_their_low_bits_still_spread_over_the_buckets() {
        // A thread that takes ids from two generators in turn starts a block of 1024 at each:
        // every id it makes has the same low ten bits.
        let (a, b) = (crate::ids::IdGen::new(), crate::ids::IdGen::new());
        let ids: Vec<DeploymentId> = (0..1000)
            .map(|_| {
                let _ = b.next();
                DeploymentId(a.next())
            })
            .collect();
        let low_bits: std::collections::BTreeSet<u64> = ids
            .iter()
            .map(|id| id.as_uuid().as_u64_pair().1 & 1023)
            .collect();
        assert_eq!(low_bits.len(), 1, "the ids share their low bits");
        let buckets: std::collections::BTreeSet<u64> =
            ids.iter().map(|&id| bucket(hash(id))).collect();
        assert_eq!(buckets.len(), ids.len(), "no two share a bucket of 1024");
    }

    #[test]
    fn keys_with_the_same_sequence_half_stay_apart() {
        // Two generators (two runtimes) number their ids alike; the table tells them apart by
        // the whole id.
        let (a, b) = (crate::ids::IdGen::new(), crate::ids::IdGen::new());
        let mut map: std::collections::HashMap<Key, u32, BuildHasherDefault<Sequential>> =
            Default::default();
        let ids: Vec<(DeploymentId, DeploymentId)> = (0..3000)
            .map(|_| {
                (
                    DeploymentId(a.next_in_sequence()),
                    DeploymentId(b.next_in_sequence()),
                )
            })
            .collect();
        for (i, &(x, y)) in ids.iter().enumerate() {
            assert_eq!(hash(x), hash(y));
            map.insert(Key(x), 2 * i as u32);
            map.insert(Key(y), 2 * i as u32 + 1);
        }
        for (i, &(x, _)) in ids.iter().enumerate().step_by(2) {
            assert_eq!(map.remove(&Key(x)), Some(2 * i as u32));
        }
        for (i, &(x, y)) in ids.iter().enumerate() {
            let x_left = (i % 2 == 1).then_some(2 * i as u32);
            assert_eq!(map.get(&Key(x)).copied(), x_left);
            assert_eq!(map.get(&Key(y)).copied(), Some(2 * i as u32 + 1));
        }
    }
}
