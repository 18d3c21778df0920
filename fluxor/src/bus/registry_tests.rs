//! Tests of the topic registry.

use std::marker::PhantomData;

use super::*;
use crate::bus::MailboxConsumer;
use crate::mailbox::Mailbox;
use crate::message::{Envelope, Message};

struct Ping;
impl Message for Ping {
    type Reply = ();
}

fn entry(deployment: &DeploymentId, instance: usize, pattern: &str) -> Entry {
    // The registry never delivers here: the receiving side may go at once.
    let (mailbox, _rx) = Mailbox::<Envelope<Ping>>::bounded(1);
    Entry {
        owner: Owner {
            deployment: *deployment,
            instance,
        },
        pattern: Arc::from(pattern),
        consumer: Arc::new(MailboxConsumer {
            mailbox,
            wrap: |e| e,
            _msg: PhantomData,
        }),
        remote: None,
    }
}

fn ids(n: usize) -> Vec<DeploymentId> {
    let gen = crate::ids::IdGen::new();
    (0..n).map(|_| DeploymentId(gen.next())).collect()
}

#[test]
fn a_change_copies_one_shard_and_removal_visits_the_deployments_topics() {
    let registry = Registry::new();
    let deployments = ids(200);
    for (i, d) in deployments.iter().enumerate() {
        registry.add(vec![
            entry(d, 0, &format!("session.{i}")),
            entry(d, 0, "all"),
        ]);
    }
    let before = registry.load();
    assert_eq!(before.exact.len(), 201);
    assert_eq!(
        before.exact.get("all").map(|r| r.consumers.len()),
        Some(200)
    );

    assert_eq!(registry.remove(deployments[7], None), (2, false));
    let after = registry.load();
    assert!(after.exact.get("session.7").is_none());
    assert_eq!(after.exact.get("all").map(|r| r.consumers.len()), Some(199));
    assert!(after.exact.get("session.8").is_some());
    // Only the shards of `session.7` and `all` were copied; the others are shared.
    let copied: std::collections::HashSet<(usize, usize)> = (0..200)
        .map(|i| format!("session.{i}"))
        .filter(|t| !before.exact.shares_shard_of(&after.exact, t))
        .map(|t| place(&t))
        .collect();
    assert!(copied.len() <= 2, "{} shards copied", copied.len());
    assert!(!before.exact.shares_shard_of(&after.exact, "session.7"));
    // Gone from the index too: removing again finds nothing.
    assert_eq!(registry.remove(deployments[7], None), (0, false));
}

#[test]
fn a_shared_topic_loses_exactly_the_consumers_that_leave_in_any_order() {
    let registry = Registry::new();
    let deployments = ids(300);
    for d in &deployments {
        // Two instances each, one of them with two handlers on the topic.
        registry.add(vec![
            entry(d, 0, "all"),
            entry(d, 1, "all"),
            entry(d, 1, "all"),
        ]);
    }
    let mut live: Vec<(DeploymentId, usize)> = deployments
        .iter()
        .flat_map(|d| [(*d, 0), (*d, 1), (*d, 1)])
        .collect();
    let owners = |r: &Registry| {
        let mut v: Vec<(DeploymentId, usize)> = r
            .load()
            .exact
            .get("all")
            .map(|route| {
                route
                    .consumers
                    .iter()
                    .map(|e| (e.owner.deployment, e.owner.instance))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    // Instances leave (a restart), whole deployments leave, in a scattered order.
    for (n, d) in deployments.iter().enumerate().filter(|(n, _)| n % 7 == 3) {
        let (gone, _) = registry.remove(*d, Some(n % 2));
        assert_eq!(gone, if n % 2 == 0 { 1 } else { 2 });
        live.retain(|(ld, li)| !(ld == d && *li == n % 2));
    }
    for (n, d) in deployments.iter().enumerate() {
        if n % 5 == 1 || n % 11 == 0 {
            registry.remove(*d, None);
            live.retain(|(ld, _)| ld != d);
            let mut expected = live.clone();
            expected.sort();
            assert_eq!(owners(&registry), expected, "after removing deployment {n}");
        }
    }
    for d in &deployments {
        registry.remove(*d, None);
    }
    assert!(registry.load().exact.get("all").is_none());
}

/// A message other nodes may send.
#[derive(serde::Serialize, serde::Deserialize)]
struct Far;
impl Message for Far {
    type Reply = ();
}
impl crate::message::RemoteMessage for Far {
    const WIRE: &'static str = "test.far";
}

fn remote(deployment: &DeploymentId, instance: usize, pattern: &str) -> Entry {
    Entry {
        remote: Some(Arc::new(crate::bus::TypedInbound::<Far>::new())),
        ..entry(deployment, instance, pattern)
    }
}

#[test]
fn the_remote_pattern_set_changes_only_when_a_pattern_comes_or_goes() {
    let registry = Registry::new();
    let d = ids(3);
    assert!(registry.add(vec![remote(&d[0], 0, "far"), entry(&d[0], 0, "near")]));
    assert!(
        !registry.add(vec![remote(&d[1], 0, "far")]),
        "`far` was served already"
    );
    assert!(registry.add(vec![remote(&d[2], 0, "far.*")]));
    let all: Vec<String> = registry
        .remote_patterns()
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(all, ["far", "far.*"]);
    assert_eq!(
        registry.remove(d[0], None),
        (2, false),
        "`far` still has a consumer"
    );
    assert_eq!(registry.remove(d[1], None), (1, true));
    assert_eq!(registry.remove(d[2], None), (1, true));
    assert!(registry.remote_patterns().is_empty());
}

#[test]
fn one_instance_leaves_and_its_deployment_keeps_its_topics() {
    let registry = Registry::new();
    let d = ids(1)[0];
    registry.add(vec![
        entry(&d, 0, "t"),
        entry(&d, 1, "t"),
        entry(&d, 1, "t.*"),
    ]);
    assert_eq!(registry.remove(d, Some(1)), (2, false));
    let snap = registry.load();
    assert_eq!(snap.exact.get("t").map(|r| r.consumers.len()), Some(1));
    assert!(snap.patterns.is_empty());
    // The instance comes back (a restart), then the whole deployment goes.
    registry.add(vec![entry(&d, 1, "t")]);
    assert_eq!(registry.remove(d, None), (2, false));
    assert_eq!(registry.load().exact.len(), 0);
}

#[test]
fn the_registry_knows_when_a_runtime_event_may_have_a_consumer() {
    let registry = Registry::new();
    let d = ids(6);
    registry.add(vec![
        entry(&d[0], 0, "orders.created"),
        entry(&d[1], 0, "orders.*"),
    ]);
    assert!(!registry.reserved_consumers());
    // An exact reserved topic, taken by two instances: it counts until the last one leaves.
    registry.add(vec![
        entry(&d[2], 0, "fluxor.lifecycle.started"),
        entry(&d[2], 1, "fluxor.lifecycle.started"),
    ]);
    assert!(registry.reserved_consumers());
    registry.remove(d[2], Some(0));
    assert!(registry.reserved_consumers());
    registry.remove(d[2], None);
    assert!(!registry.reserved_consumers());
    // Patterns whose first token is the prefix's or a wildcard may match one.
    for (i, pattern) in ["fluxor.lifecycle.*", "*.lifecycle.started", ">"]
        .into_iter()
        .enumerate()
    {
        let owner = &d[3 + i];
        registry.add(vec![entry(owner, 0, pattern)]);
        assert!(registry.reserved_consumers(), "{pattern}");
        registry.remove(*owner, None);
        assert!(!registry.reserved_consumers(), "{pattern}");
    }
    registry.add(vec![entry(&d[3], 0, "fluxor.>")]);
    registry.clear();
    assert!(!registry.reserved_consumers());
}
