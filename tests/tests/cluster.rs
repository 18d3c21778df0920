//! The cluster bus against a real `nats-server`: each test starts its own server on a free
//! loopback port; two or three runtimes in this process, each with its own connection, are the
//! nodes.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fluxor::cluster::NatsCluster;
use fluxor::prelude::*;
use fluxor::{Address, BusError, DeployOptions, Fluxor, RequestOptions};
use fluxor_tests::eventually;
use fluxor_tests::nats::{until_ready as ready, NatsServer};
use serde::{Deserialize, Serialize};

#[derive(Message, Serialize, Deserialize, Debug, Clone)]
#[message(reply = u64, wire = "test.add.v1")]
struct Add {
    n: u64,
}

/// The same wire name as [`Add`], another shape: what a node with an older build might send.
#[derive(Message, Serialize, Deserialize, Debug, Clone)]
#[message(reply = u64, wire = "test.add.v1")]
struct AddText {
    n: String,
}

/// A wire name no node decodes.
#[derive(Message, Serialize, Deserialize, Debug, Clone)]
#[message(reply = u64, wire = "test.unknown.v1")]
struct Unknown;

#[derive(Message, Serialize, Deserialize, Debug, Clone)]
#[message(reply = String, remote)]
struct WhoIs;

#[derive(Message, Serialize, Deserialize, Debug, Clone)]
#[message(reply = u64, wire = "test.fail.v1")]
enum Fail {
    Error,
    Panic,
}

#[derive(Message, Serialize, Deserialize, Debug, Clone)]
#[message(wire = "test.nap.v1")]
struct Nap {
    ms: u64,
}

#[derive(Message, Serialize, Deserialize, Debug, Clone)]
#[message(remote)]
struct Tick;

/// Not remote-capable: stays on its node.
#[derive(Message, Debug, Clone)]
#[message(reply = u64)]
struct LocalAdd(u64);

const ADD: Address<Add> = Address::new("c.add");
const WHO: Address<WhoIs> = Address::new("c.who");
const FAIL: Address<Fail> = Address::new("c.fail");
const NAP: Address<Nap> = Address::new("c.nap");
const TICK: Address<Tick> = Address::new("c.tick");

#[derive(Debug, Default)]
struct Seen {
    adds: AtomicU64,
    ticks: AtomicU64,
    pattern_ticks: AtomicU64,
    naps: AtomicU64,
}

#[component]
#[derive(Debug, Default)]
struct Worker {
    label: String,
    seen: Arc<Seen>,
}

#[component]
impl Worker {
    #[handler("c.add", remote)]
    fn add(&mut self, msg: Add) -> u64 {
        self.seen.adds.fetch_add(1, SeqCst);
        msg.n + 1
    }

    #[handler("c.who", remote)]
    fn who(&mut self, _: WhoIs, ctx: &mut Context<Self>) -> String {
        format!(
            "{}|{}|{}",
            self.label,
            ctx.request_id().map(|u| u.to_string()).unwrap_or_default(),
            ctx.headers().get("tenant").unwrap_or("-")
        )
    }

    #[handler("c.fail", remote)]
    fn fail(&mut self, f: Fail) -> Result<u64, String> {
        match f {
            Fail::Error => Err("refused on purpose".into()),
            Fail::Panic => panic!("boom on purpose"),
        }
    }

    #[handler("c.nap", remote)]
    async fn nap(&mut self, msg: Nap) {
        self.seen.naps.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_millis(msg.ms)).await;
    }

    #[handler("c.tick", remote)]
    fn tick(&mut self, _: Tick) {
        self.seen.ticks.fetch_add(1, SeqCst);
    }

    #[handler("c.*", remote)]
    fn any_tick(&mut self, _: Tick) {
        self.seen.pattern_ticks.fetch_add(1, SeqCst);
    }

    #[handler("c.local")]
    fn local(&mut self, LocalAdd(n): LocalAdd) -> u64 {
        n
    }
}

fn node(server: &NatsServer, configure: impl FnOnce(NatsCluster) -> NatsCluster) -> Fluxor {
    Fluxor::builder()
        .reactors(1)
        .request_timeout(Duration::from_secs(5))
        .cluster(configure(
            NatsCluster::connect(server.url())
                .name("test")
                .reconnect_delay(Duration::from_millis(50)),
        ))
        .build()
        .expect("the node builds")
}

async fn worker(rt: &Fluxor, label: &str, opts: DeployOptions) -> Arc<Seen> {
    let seen = Arc::new(Seen::default());
    let (s, label) = (seen.clone(), label.to_owned());
    rt.deploy(
        move || Worker {
            label: label.clone(),
            seen: s.clone(),
        },
        opts,
    )
    .await
    .expect("the worker deploys");
    seen
}

async fn done(rts: Vec<Fluxor>) {
    for rt in rts {
        rt.shutdown(Duration::from_secs(5))
            .await
            .expect("clean shutdown");
    }
}

#[tokio::test]
async fn request_crosses_nodes_with_request_id_and_headers() {
    let server = NatsServer::start();
    let (a, b) = (node(&server, |c| c), node(&server, |c| c));
    worker(&b, "b", DeployOptions::new()).await;
    ready(&a).await;
    ready(&b).await;

    assert_eq!(a.bus().request(ADD, Add { n: 41 }).await, Ok(42));
    let id = uuid::Uuid::new_v4();
    let answer = a
        .bus()
        .request_with(
            WHO,
            WhoIs,
            RequestOptions::new()
                .request_id(id)
                .header("tenant", "acme"),
        )
        .await
        .expect("b answers");
    assert_eq!(answer, format!("b|{id}|acme"));
    let stats = a.cluster_stats().expect("a cluster");
    assert!(stats.connected && stats.messages_out >= 2, "{stats:?}");
    assert!(b.cluster_stats().expect("b cluster").messages_in >= 2);
    done(vec![a, b]).await;
}

#[tokio::test]
async fn local_consumers_come_first_and_balance_spreads_over_nodes() {
    let server = NatsServer::start();
    let (a, b) = (node(&server, |c| c), node(&server, |c| c));
    let (seen_a, seen_b) = (
        worker(&a, "a", DeployOptions::new()).await,
        worker(&b, "b", DeployOptions::new()).await,
    );
    ready(&a).await;
    ready(&b).await;
    let before = a.cluster_stats().expect("cluster").messages_out;
    for n in 0..20 {
        assert_eq!(a.bus().request(ADD, Add { n }).await, Ok(n + 1));
    }
    assert_eq!(seen_a.adds.load(SeqCst), 20, "a local consumer serves");
    assert_eq!(seen_b.adds.load(SeqCst), 0);
    assert_eq!(a.cluster_stats().expect("cluster").messages_out, before);

    let c = node(&server, |c| c.balance(true));
    let seen_c = worker(&c, "c", DeployOptions::new()).await;
    ready(&c).await;
    let mut who = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let label = c.bus().request(WHO, WhoIs).await.expect("an answer");
        who.insert(label.split('|').next().unwrap_or_default().to_owned());
    }
    assert_eq!(
        who.len(),
        3,
        "balanced requests reach every node, this one included: {who:?}"
    );
    // Non-remote messages stay local even when balancing.
    assert_eq!(c.bus().request("c.local", LocalAdd(7)).await, Ok(7));
    let _ = seen_c;
    done(vec![a, b, c]).await;
}

#[tokio::test]
async fn publish_reaches_every_consumer_on_every_node_exactly_once() {
    let server = NatsServer::start();
    let (a, b, c) = (
        node(&server, |c| c),
        node(&server, |c| c),
        node(&server, |c| c),
    );
    let seen_a = worker(&a, "a", DeployOptions::new().instances(2)).await;
    let seen_b = worker(&b, "b", DeployOptions::new()).await;
    for rt in [&a, &b, &c] {
        ready(rt).await;
    }
    // From a node with consumers (its own get it locally, once), and from one without.
    assert_eq!(a.bus().publish(TICK, Tick), Ok(4));
    assert_eq!(c.bus().publish(TICK, Tick), Ok(0));
    eventually("every tick", Duration::from_secs(5), || {
        seen_a.ticks.load(SeqCst) == 4
            && seen_a.pattern_ticks.load(SeqCst) == 4
            && seen_b.ticks.load(SeqCst) == 2
            && seen_b.pattern_ticks.load(SeqCst) == 2
    })
    .await;
    // Nothing more arrives later (no double delivery).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen_a.ticks.load(SeqCst), 4);
    assert_eq!(seen_a.pattern_ticks.load(SeqCst), 4);
    assert_eq!(seen_b.ticks.load(SeqCst), 2);
    assert_eq!(seen_b.pattern_ticks.load(SeqCst), 2);
    done(vec![a, b, c]).await;
}

#[tokio::test]
async fn sends_reach_exactly_one_node_and_wildcards_match_as_locally() {
    let server = NatsServer::start();
    let (a, b, c) = (
        node(&server, |c| c),
        node(&server, |c| c),
        node(&server, |c| c),
    );
    let seen_b = worker(&b, "b", DeployOptions::new()).await;
    let seen_c = worker(&c, "c", DeployOptions::new()).await;
    for rt in [&a, &b, &c] {
        ready(rt).await;
    }
    for n in 0..50 {
        a.bus()
            .send(ADD, Add { n })
            .expect("handed to the connection");
    }
    eventually("50 adds", Duration::from_secs(5), || {
        seen_b.adds.load(SeqCst) + seen_c.adds.load(SeqCst) == 50
    })
    .await;
    // `c.other` is served only by the `c.*` pattern.
    a.bus()
        .send_acked("c.other", Tick)
        .await
        .expect("a pattern consumer takes it");
    eventually("the pattern tick", Duration::from_secs(5), || {
        seen_b.pattern_ticks.load(SeqCst) + seen_c.pattern_ticks.load(SeqCst) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen_b.adds.load(SeqCst) + seen_c.adds.load(SeqCst), 50);
    assert_eq!(
        seen_b.pattern_ticks.load(SeqCst) + seen_c.pattern_ticks.load(SeqCst),
        1
    );
    done(vec![a, b, c]).await;
}

#[tokio::test]
async fn remote_failures_come_back_as_truthful_errors() {
    let server = NatsServer::start();
    let (a, b) = (node(&server, |c| c), node(&server, |c| c));
    let seen = worker(&b, "b", DeployOptions::new().mailbox_capacity(1)).await;
    ready(&a).await;
    ready(&b).await;
    let bus = a.bus();

    // Nobody serves the topic anywhere.
    const NONE: Address<Add> = Address::new("z.nobody");
    assert!(matches!(
        bus.request(NONE, Add { n: 1 }).await,
        Err(BusError::NoHandlers { .. })
    ));
    assert!(matches!(
        bus.send_acked(NONE, Add { n: 1 })
            .await
            .map_err(|e| e.error),
        Err(BusError::NoHandlers { .. })
    ));
    // The handler fails, or panics.
    match bus.request(FAIL, Fail::Error).await {
        Err(BusError::RecipientFailed { reason, topic }) => {
            assert!(reason.contains("refused on purpose"), "{reason}");
            assert_eq!(topic, "c.fail");
        }
        other => panic!("expected RecipientFailed, got {other:?}"),
    }
    assert!(matches!(
        bus.request(FAIL, Fail::Panic).await,
        Err(BusError::RecipientFailed { reason, .. }) if reason.contains("boom on purpose")
    ));
    // The panic restarted the instance (after a backoff).
    eventually("the restart", Duration::from_secs(5), || {
        b.inspect().deployments[0].instances[0].state == fluxor::InstanceState::Running
    })
    .await;
    // A payload of the wrong shape, and a wire name nobody decodes.
    assert!(matches!(
        bus.request("c.add", AddText { n: "one".into() }).await,
        Err(BusError::Undecodable { .. })
    ));
    assert!(matches!(
        bus.request("c.add", Unknown).await,
        Err(BusError::Undecodable { reason, .. }) if reason.contains("test.unknown.v1")
    ));
    assert!(b.cluster_stats().expect("cluster").decode_errors >= 2);
    // The deadline.
    assert!(matches!(
        bus.request_with(
            NAP,
            Nap { ms: 400 },
            RequestOptions::new().timeout(Duration::from_millis(50))
        )
        .await,
        Err(BusError::Timeout { .. })
    ));
    // The remote mailbox is full: one nap runs, one waits in the mailbox of one; the
    // next is refused at once, not after its timeout.
    let naps = seen.naps.load(SeqCst);
    let holder = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.request(NAP, Nap { ms: 600 }).await })
    };
    eventually("the nap runs", Duration::from_secs(5), || {
        seen.naps.load(SeqCst) > naps
    })
    .await;
    bus.send_acked(NAP, Nap { ms: 1 })
        .await
        .expect("the mailbox has room for one");
    let started = Instant::now();
    let full = bus
        .request_with(
            NAP,
            Nap { ms: 1 },
            RequestOptions::new().timeout(Duration::from_secs(4)),
        )
        .await;
    assert!(
        matches!(full, Err(BusError::MailboxFull { .. })),
        "{full:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at once"
    );
    assert!(matches!(
        bus.send_acked(NAP, Nap { ms: 1 })
            .await
            .map_err(|e| e.error),
        Err(BusError::MailboxFull { .. })
    ));
    assert_eq!(holder.await.expect("joined"), Ok(()));
    done(vec![a, b]).await;
}

#[tokio::test]
async fn an_outage_fails_fast_and_the_bus_recovers_unaided() {
    let mut server = NatsServer::start();
    let (a, b) = (node(&server, |c| c), node(&server, |c| c));
    let seen = worker(&b, "b", DeployOptions::new()).await;
    ready(&a).await;
    ready(&b).await;
    assert_eq!(a.bus().request(ADD, Add { n: 1 }).await, Ok(2));

    server.stop();
    eventually("a notices the outage", Duration::from_secs(5), || {
        !a.cluster_stats().expect("cluster").connected
    })
    .await;
    let started = Instant::now();
    let down = a
        .bus()
        .request_with(
            ADD,
            Add { n: 1 },
            RequestOptions::new().timeout(Duration::from_secs(4)),
        )
        .await;
    assert!(
        matches!(down, Err(BusError::Unreachable { .. })),
        "{down:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "not after the timeout"
    );
    assert!(matches!(
        a.bus().send(ADD, Add { n: 1 }).map_err(|e| e.error),
        Err(BusError::Unreachable { .. })
    ));
    let published = a.bus().publish(TICK, Tick);
    assert!(
        matches!(&published, Err(e) if matches!(e.failures[..], [BusError::Unreachable { .. }])),
        "{published:?}"
    );
    assert!(!a.ready().await.ok, "not ready while disconnected");

    server.restart();
    ready(&a).await;
    ready(&b).await;
    // The responder may come back a moment after the requester.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match a.bus().request(ADD, Add { n: 2 }).await {
            Ok(3) => break,
            other => {
                assert!(Instant::now() < deadline, "no recovery: {other:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert!(a.cluster_stats().expect("cluster").reconnects >= 1);
    assert!(seen.adds.load(SeqCst) >= 2);
    done(vec![a, b]).await;
}

#[tokio::test]
async fn garbage_from_the_wire_is_refused_counted_and_harmless() {
    let server = NatsServer::start();
    let b = node(&server, |c| c.max_message_bytes(1024));
    let seen = worker(&b, "b", DeployOptions::new()).await;
    ready(&b).await;
    let raw = async_nats::connect(server.url())
        .await
        .expect("a raw client");

    let status = |answer: async_nats::Message| {
        let text = String::from_utf8_lossy(&answer.payload).into_owned();
        text.lines().next().unwrap_or_default().to_owned()
    };
    // Not a frame at all, as a request: answered as undecodable.
    let answer = raw
        .request("fx.test.s.c.add", "{not json".into())
        .await
        .expect("an answer");
    assert_eq!(status(answer), "FX1 undecodable");

    // A proper first line with a bad payload; a first line with a bad id; an oversized
    // payload; a first line that never ends.
    let head = "FX1 request json test.add.v1 raw 00000000000000000000000000000001 00000000000000000000000000000001 1000";
    let mut oversized = format!("{head}\n").into_bytes();
    oversized.resize(4096, b' ');
    for payload in [
        bytes::Bytes::from(format!("{head}\n{{\"n\": \"x\"}}")),
        bytes::Bytes::from(format!("{}\n{{\"n\": 1}}", head.replace("raw 0", "raw x"))),
        bytes::Bytes::from(oversized),
        bytes::Bytes::from(vec![b'F'; 900]),
    ] {
        let answer = raw
            .request("fx.test.s.c.add", payload)
            .await
            .expect("an answer");
        assert_eq!(status(answer), "FX1 undecodable");
    }
    // Garbage publications: counted, nothing delivered.
    raw.publish("fx.test.p.c.tick", "\u{0}\u{1}".into())
        .await
        .expect("published");
    raw.publish(
        "fx.test.p.c.tick",
        format!(
            "{}\n[1,2",
            head.replace("request", "publish")
                .replace("test.add.v1", "Tick")
        )
        .into(),
    )
    .await
    .expect("published");
    raw.flush().await.expect("flushed");
    eventually("the decode errors", Duration::from_secs(5), || {
        b.cluster_stats().expect("cluster").decode_errors >= 7
    })
    .await;
    assert_eq!(seen.ticks.load(SeqCst), 0);
    assert_eq!(seen.adds.load(SeqCst), 0);
    // A well-formed request from a real node still works.
    let a = node(&server, |c| c);
    ready(&a).await;
    assert_eq!(a.bus().request(ADD, Add { n: 9 }).await, Ok(10));
    done(vec![a, b]).await;
}

#[tokio::test]
async fn the_inspector_and_metrics_show_the_cluster_section() {
    let server = NatsServer::start();
    let a = node(&server, |c| c);
    worker(&a, "a", DeployOptions::new()).await;
    let (http, handle) = fluxor::http::HttpServer::builder(axum::Router::new())
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .metrics(true)
        .build();
    a.deploy(http, DeployOptions::new()).await.expect("http");
    ready(&a).await;
    let addr = handle.local_addr().expect("bound");
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("fluxor_cluster_connected 1"), "{metrics}");
    assert!(metrics.contains("# TYPE fluxor_cluster_decode_errors_total counter"));
    let snapshot = a.inspect();
    let cluster = &snapshot.extras["cluster"];
    assert_eq!(cluster["connected"], true, "{cluster}");
    assert_eq!(cluster["cluster"], "test");
    // c.add, c.who, c.fail, c.nap, c.tick and c.*.
    assert_eq!(cluster["subscriptions"], 6);
    done(vec![a]).await;
}

#[tokio::test]
async fn a_bad_option_fails_the_build_with_a_clear_error() {
    let err = Fluxor::builder()
        .cluster(NatsCluster::connect("nats://127.0.0.1:1").name("not valid"))
        .build()
        .expect_err("a bad name");
    assert!(err.to_string().contains("cluster name"), "{err}");
    let err = Fluxor::builder()
        .cluster(NatsCluster::connect("nats://127.0.0.1:1").credentials_file("/nonexistent.creds"))
        .build()
        .expect_err("a missing credentials file");
    assert!(err.to_string().contains("credentials file"), "{err}");
}

#[tokio::test]
async fn every_publication_is_delivered_or_counted_as_dropped() {
    let server = NatsServer::start();
    let a = node(&server, |c| c.outgoing_capacity(1024));
    // A tiny buffer between the connection and the dispatcher: bursts overflow it.
    let b = node(&server, |c| c.subscription_capacity(4));
    let seen = worker(&b, "b", DeployOptions::new().mailbox_capacity(1 << 17)).await;
    ready(&a).await;
    ready(&b).await;
    const N: u64 = 20_000;
    let outcomes_of = |seen: &Seen, b: &Fluxor| {
        seen.ticks.load(SeqCst)
            + seen.pattern_ticks.load(SeqCst)
            + b.cluster_stats().expect("cluster").dropped
    };
    let mut sent = 0;
    while sent < N {
        match a.bus().publish(TICK, Tick) {
            Ok(_) => sent += 1,
            // The outgoing queue is full: nothing was sent; try again.
            Err(_) => tokio::task::yield_now().await,
        }
    }
    // Each publication reaches two consumers on b (`c.tick` and `c.*`), through two
    // subscriptions, each numbered on its own.
    let outcomes = || outcomes_of(&seen, &b);
    // Losses show when a later publication of the same origin and topic arrives: one more,
    // after the burst has drained, reveals the tail.
    eventually("the burst drains", Duration::from_secs(20), || {
        let before = outcomes();
        std::thread::sleep(Duration::from_millis(100));
        outcomes() == before
    })
    .await;
    a.bus()
        .publish(TICK, Tick)
        .expect("the closing publication");
    eventually(
        "every publication's outcome",
        Duration::from_secs(20),
        || outcomes() >= 2 * (N + 1),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = b.cluster_stats().expect("cluster");
    assert_eq!(outcomes(), 2 * (N + 1), "{stats:?}");
    eprintln!(
        "dropped {} of {} at a 4-message buffer ({} slow-consumer events)",
        stats.dropped,
        2 * N,
        stats.slow_consumer_events
    );
    done(vec![a, b]).await;
}

#[tokio::test]
async fn credentials_are_passed_to_the_server() {
    let server = NatsServer::start_with(&["--user", "shop", "--pass", "s3cret"]);
    let a = node(&server, |c| c.user_and_password("shop", "s3cret"));
    let b = node(&server, |c| c.user_and_password("shop", "s3cret"));
    worker(&b, "b", DeployOptions::new()).await;
    ready(&a).await;
    ready(&b).await;
    assert_eq!(a.bus().request(ADD, Add { n: 1 }).await, Ok(2));

    // A wrong password never connects: the node says so, and calls fail at once.
    let wrong = node(&server, |c| c.user_and_password("shop", "wrong"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health = wrong.ready().await;
    assert!(!health.ok, "{health:?}");
    let cluster = health.checks.iter().find(|c| c.name == "cluster");
    assert!(
        cluster.is_some_and(|c| !c.ok
            && c.detail.as_deref().is_some_and(
                |d| d.contains("not connected") && d.to_lowercase().contains("authorization")
            )),
        "{health:?}"
    );
    assert!(matches!(
        wrong.bus().request(ADD, Add { n: 1 }).await,
        Err(BusError::Unreachable { .. })
    ));
    done(vec![a, b, wrong]).await;
}

#[tokio::test]
async fn the_runtime_topics_stay_on_their_node() {
    let server = NatsServer::start();
    let (a, b) = (node(&server, |c| c), node(&server, |c| c));
    worker(&b, "b", DeployOptions::new()).await;
    ready(&a).await;
    ready(&b).await;
    let reserved: Address<Add> = Address::new("fluxor.add");
    assert!(matches!(
        a.bus().request(reserved, Add { n: 1 }).await,
        Err(BusError::InvalidTopic { .. })
    ));
    let before = a.cluster_stats().expect("cluster").messages_out;
    let reserved: Address<Tick> = Address::new("fluxor.tick");
    let published = a.bus().publish(reserved, Tick);
    assert!(
        published.is_err(),
        "user publications on `fluxor.` are refused"
    );
    assert_eq!(a.cluster_stats().expect("cluster").messages_out, before);
    done(vec![a, b]).await;
}
