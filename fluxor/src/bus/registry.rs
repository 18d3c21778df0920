//! The topic registry of the local transport: an immutable snapshot of every subscription,
//! swapped on every change (copy-on-write), so that looking up consumers takes no lock.
//!
//! Exact topics are spread over [`GROUPS`]² maps by hash: a change copies the one map its
//! topic lives in (and two small arrays of pointers), not every topic, so deploying or
//! undeploying a component costs about the same with ten topics registered or a hundred
//! thousand. A topic's consumers are kept in chunks (`consumers.rs`), so a topic with many consumers copies one chunk and
//! the chunks' pointers per change. The writer
//! keeps, per deployment, the exact topics it registered under, so an undeploy visits those
//! routes only.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::consumers::Consumers;
use super::inbound::Inbound;
use super::local::Consumer;
use crate::address;
use crate::ids::DeploymentId;

/// Who registered a consumer: one instance of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Owner {
    pub(crate) deployment: DeploymentId,
    pub(crate) instance: usize,
}

/// One registered consumer.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) owner: Owner,
    pub(crate) pattern: Arc<str>,
    pub(crate) consumer: Arc<dyn Consumer>,
    /// How messages from other nodes reach it; `None` for a local-only binding.
    pub(crate) remote: Option<Arc<dyn Inbound>>,
}

impl Entry {
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    /// Whether it takes messages from other nodes that carry the wire name `wire`.
    pub(super) fn takes_wire(&self, wire: &str) -> bool {
        self.remote.as_ref().is_some_and(|r| r.wire() == wire)
    }
}

/// The consumers of one exact topic, with its round-robin cursor (kept across snapshots).
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) topic: Arc<str>,
    pub(crate) consumers: Consumers,
    pub(crate) cursor: Arc<AtomicUsize>,
}

/// An immutable view of every subscription.
#[derive(Clone, Default)]
pub(crate) struct Routes {
    pub(crate) exact: Exact,
    pub(crate) patterns: Arc<[Entry]>,
}

/// Shards of the exact topics: [`GROUPS`] groups of [`GROUPS`] maps each.
pub(crate) const GROUPS: usize = 64;

/// One shard: looked up on every send and publish, hashed with a fast seeded hasher, not
/// SipHash (its keys come from subscriptions, not from whoever sends).
type Shard = HashMap<Arc<str>, Route, foldhash::fast::RandomState>;

/// A group of shards.
type Group = Box<[Arc<Shard>]>;

/// The exact topics, in `GROUPS × GROUPS` shards: a change copies the pointers of the
/// groups, of one group's shards, and the one shard its topic lives in.
#[derive(Clone)]
pub(crate) struct Exact {
    groups: Box<[Arc<Group>]>,
}

impl Default for Exact {
    fn default() -> Self {
        let group: Arc<Group> = Arc::new((0..GROUPS).map(|_| Arc::default()).collect());
        Exact {
            groups: (0..GROUPS).map(|_| group.clone()).collect(),
        }
    }
}

/// Where a topic lives: its group and its shard in the group (a fixed seed: the same topic,
/// the same place, always).
fn place(topic: &str) -> (usize, usize) {
    const PICK: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x5eed);
    let h = PICK.hash_one(topic) as usize;
    (h % GROUPS, (h / GROUPS) % GROUPS)
}

impl Exact {
    pub(crate) fn get(&self, topic: &str) -> Option<&Route> {
        let (g, s) = place(topic);
        self.groups[g][s].get(topic)
    }

    /// Number of exact topics.
    pub(crate) fn len(&self) -> usize {
        self.shards().map(|s| s.len()).sum()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &Route)> {
        self.shards().flat_map(|s| s.iter())
    }

    fn shards(&self) -> impl Iterator<Item = &Shard> {
        self.groups.iter().flat_map(|g| g.iter()).map(|s| &**s)
    }

    /// The shard of `topic`, copied first (with its group's pointers) if a snapshot still
    /// shares it.
    fn shard_mut(&mut self, topic: &str) -> &mut Shard {
        let (g, s) = place(topic);
        Arc::make_mut(&mut Arc::make_mut(&mut self.groups[g])[s])
    }

    /// Whether the shard of `topic` is the same map in both (a test's look at what a change
    /// copied).
    #[cfg(test)]
    fn shares_shard_of(&self, other: &Exact, topic: &str) -> bool {
        let (g, s) = place(topic);
        Arc::ptr_eq(&self.groups[g][s], &other.groups[g][s])
    }
}

/// The registry: readers load the current snapshot; writers serialize on a mutex and publish a
/// modified copy.
pub(crate) struct Registry {
    current: ArcSwap<Routes>,
    /// Some consumer may take a topic under [`RESERVED`](super::RESERVED) (an exact reserved
    /// topic, or a pattern that can match one): the runtime builds its own events only then.
    reserved: std::sync::atomic::AtomicBool,
    /// Held by writers: where each deployment's consumers sit.
    writer: Mutex<Places>,
}

/// One consumer's instance and its position in its topic's consumer list.
type Spot = (usize, usize);

/// The writers' bookkeeping maps: keys are the topics deployments bind and their ids, not
/// anything a sender chooses, so a fast seeded hasher rather than SipHash.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// For each exact topic, where each deployment's consumers sit in its consumer list: an
/// undeploy goes straight to them instead of looking through the list.
#[derive(Default)]
struct Places {
    /// Topic → deployment → where each of its consumers sits there.
    by_topic: Map<Arc<str>, Map<DeploymentId, Vec<Spot>>>,
    /// Deployment → the exact topics it registered under.
    topics: Map<DeploymentId, Vec<Arc<str>>>,
    /// The patterns (exact topics included) of remote-enabled consumers, with how many use
    /// each: what a transport to other nodes subscribes to, kept up to date here rather than
    /// gathered from every entry on each change.
    remote: Map<Arc<str>, usize>,
    /// Exact topics under [`RESERVED`](super::RESERVED) with consumers.
    reserved_topics: usize,
}

impl Places {
    /// Counts a remote-enabled consumer of `pattern`; `true` if the pattern is new.
    fn remote_added(&mut self, pattern: &Arc<str>) -> bool {
        let n = self.remote.entry(pattern.clone()).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// Uncounts one; `true` if the pattern has no remote-enabled consumer left.
    fn remote_removed(&mut self, pattern: &str) -> bool {
        match self.remote.get_mut(pattern) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.remote.remove(pattern);
                true
            }
            None => false,
        }
    }
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            current: ArcSwap::from_pointee(Routes::default()),
            reserved: std::sync::atomic::AtomicBool::new(false),
            writer: Mutex::new(Places::default()),
        }
    }

    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<Routes>> {
        self.current.load()
    }

    /// Adds `entries` in one step: a reader sees all of them or none. `true` if the set of
    /// remote patterns changed.
    pub(crate) fn add(&self, entries: Vec<Entry>) -> bool {
        if entries.is_empty() {
            return false;
        }
        let mut places = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut remote_changed = false;
        for e in entries.iter().filter(|e| e.remote.is_some()) {
            remote_changed |= places.remote_added(&e.pattern);
        }
        let mut next = Routes::clone(&self.current.load());
        let mut patterns: Option<Vec<Entry>> = None;
        let mut grouped: Map<Arc<str>, Vec<Entry>> = Map::default();
        for e in entries {
            if address::is_pattern(&e.pattern) {
                patterns
                    .get_or_insert_with(|| next.patterns.to_vec())
                    .push(e);
            } else {
                let topics = places.topics.entry(e.owner.deployment).or_default();
                if !topics.contains(&e.pattern) {
                    topics.push(e.pattern.clone());
                }
                grouped.entry(e.pattern.clone()).or_default().push(e);
            }
        }
        for (topic, new) in grouped {
            let route = next
                .exact
                .shard_mut(&topic)
                .entry(topic.clone())
                .or_insert_with(|| {
                    places.reserved_topics += usize::from(topic.starts_with(super::RESERVED));
                    Route {
                        topic: topic.clone(),
                        consumers: Consumers::default(),
                        cursor: Arc::default(),
                    }
                });
            let here = places.by_topic.entry(topic).or_default();
            for (k, e) in new.iter().enumerate() {
                here.entry(e.owner.deployment)
                    .or_default()
                    .push((e.owner.instance, route.consumers.len() + k));
            }
            route.consumers = route.consumers.with(new);
        }
        if let Some(patterns) = patterns {
            next.patterns = patterns.into();
        }
        self.publish(&places, next);
        remote_changed
    }

    /// The patterns remote-enabled consumers are registered under.
    pub(crate) fn remote_patterns(&self) -> std::collections::BTreeSet<Arc<str>> {
        let places = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        places.remote.keys().cloned().collect()
    }

    /// Removes the entries of `deployment` (of its instance `instance` only, when given);
    /// returns how many were removed, and whether the set of remote patterns changed. Visits
    /// the routes that deployment registered under, and in each goes straight to its
    /// consumers.
    pub(crate) fn remove(
        &self,
        deployment: DeploymentId,
        instance: Option<usize>,
    ) -> (usize, bool) {
        let mut guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let places = &mut *guard;
        let matches =
            |o: &Owner| o.deployment == deployment && instance.is_none_or(|i| o.instance == i);
        let topics = match instance {
            None => places.topics.remove(&deployment).unwrap_or_default(),
            Some(_) => places.topics.get(&deployment).cloned().unwrap_or_default(),
        };
        let mut next = Routes::clone(&self.current.load());
        let mut removed = 0;
        let mut remote_changed = false;
        for topic in &topics {
            let Some(here) = places.by_topic.get_mut(topic) else {
                continue;
            };
            let Some(mine) = here.get_mut(&deployment) else {
                continue;
            };
            let at: Vec<usize> = mine
                .iter()
                .filter(|(i, _)| instance.is_none_or(|only| *i == only))
                .map(|(_, at)| *at)
                .collect();
            mine.retain(|(i, _)| instance.is_some_and(|only| *i != only));
            if mine.is_empty() {
                here.remove(&deployment);
            }
            if at.is_empty() {
                continue;
            }
            let shard = next.exact.shard_mut(topic);
            let Some(route) = shard.get_mut(topic) else {
                continue;
            };
            let leaving_remote = at
                .iter()
                .filter(|&&i| i < route.consumers.len() && route.consumers.get(i).remote.is_some())
                .count();
            let (kept, moves) = route.consumers.without_at(at);
            removed += route.consumers.len() - kept.len();
            // The consumers that moved into the freed places.
            for (owner, from, to) in moves {
                if let Some(spot) = here.get_mut(&owner.deployment).and_then(|v| {
                    v.iter_mut()
                        .find(|(i, at)| *i == owner.instance && *at == from)
                }) {
                    spot.1 = to;
                }
            }
            if kept.is_empty() {
                shard.remove(topic);
                places.by_topic.remove(topic);
                places.reserved_topics -= usize::from(topic.starts_with(super::RESERVED));
            } else {
                route.consumers = kept;
            }
            for _ in 0..leaving_remote {
                remote_changed |= places.remote_removed(topic);
            }
        }
        if next.patterns.iter().any(|e| matches(&e.owner)) {
            for e in next.patterns.iter().filter(|e| matches(&e.owner)) {
                if e.remote.is_some() {
                    remote_changed |= places.remote_removed(&e.pattern);
                }
            }
            let before = next.patterns.len();
            next.patterns = next
                .patterns
                .iter()
                .filter(|e| !matches(&e.owner))
                .cloned()
                .collect::<Vec<_>>()
                .into();
            removed += before - next.patterns.len();
        }
        if removed > 0 {
            self.publish(places, next);
        }
        (removed, remote_changed)
    }

    /// Makes `next` the snapshot readers load, with the answer of
    /// [`reserved_consumers`](Self::reserved_consumers) that goes with it.
    fn publish(&self, places: &Places, next: Routes) {
        let reserved = places.reserved_topics > 0
            || next
                .patterns
                .iter()
                .any(|e| super::may_match_reserved(&e.pattern));
        self.reserved
            .store(reserved, std::sync::atomic::Ordering::Release);
        self.current.store(Arc::new(next));
    }

    /// Whether some consumer may take a topic under [`RESERVED`](super::RESERVED).
    pub(crate) fn reserved_consumers(&self) -> bool {
        self.reserved.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Removes everything (used when the bus closes).
    pub(crate) fn clear(&self) {
        let mut places = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        *places = Places::default();
        self.publish(&places, Routes::default());
    }
}

impl Routes {
    /// The consumers of `topic`: its exact subscribers, then the matching pattern subscribers.
    /// Borrows the route when no pattern applies (the common case), so the lookup allocates
    /// nothing.
    pub(crate) fn resolve<'a>(&'a self, topic: &str) -> Resolved<'a> {
        let route = self.exact.get(topic);
        let mut extra = self
            .patterns
            .iter()
            .filter(|e| address::matches(&e.pattern, topic))
            .peekable();
        if extra.peek().is_none() {
            return match route {
                Some(r) => Resolved::Route(r),
                None => Resolved::None,
            };
        }
        let mut all: Vec<&'a Entry> = route
            .map(|r| r.consumers.iter().collect())
            .unwrap_or_default();
        all.extend(extra);
        Resolved::Mixed {
            route,
            entries: all,
        }
    }
}

/// The consumers found for a topic.
pub(crate) enum Resolved<'a> {
    None,
    Route(&'a Route),
    Mixed {
        route: Option<&'a Route>,
        entries: Vec<&'a Entry>,
    },
}

impl Resolved<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Resolved::None => 0,
            Resolved::Route(r) => r.consumers.len(),
            Resolved::Mixed { entries, .. } => entries.len(),
        }
    }

    #[inline]
    pub(crate) fn get(&self, i: usize) -> &Entry {
        match self {
            Resolved::None => unreachable!("no consumer to index"),
            Resolved::Route(r) => r.consumers.get(i),
            Resolved::Mixed { entries, .. } => entries[i],
        }
    }

    pub(crate) fn route(&self) -> Option<&Route> {
        match self {
            Resolved::None => None,
            Resolved::Route(r) => Some(r),
            Resolved::Mixed { route, .. } => *route,
        }
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
