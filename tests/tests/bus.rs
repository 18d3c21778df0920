//! Event bus semantics: routing, errors, request ids, backpressure.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use fluxor::prelude::*;
use fluxor::{Address, BusError, DeployOptions, Fluxor, RequestOptions};
use fluxor_tests::{
    eventually, hold, Add, Counters, Event, Fail, Nap, Probe, Relay, Seq, Trace, Whoami,
};

fn runtime() -> Fluxor {
    Fluxor::builder()
        .reactors(2)
        .build()
        .expect("runtime builds")
}

async fn done(rt: Fluxor) {
    rt.shutdown(Duration::from_secs(5))
        .await
        .expect("clean shutdown");
}

#[tokio::test]
async fn send_and_request_round_robin_fairly_over_three_instances() {
    let rt = runtime();
    rt.deploy(Probe::default, DeployOptions::new().instances(3))
        .await
        .unwrap();
    let mut seen: HashMap<usize, usize> = HashMap::new();
    for _ in 0..300 {
        let who = rt.bus().request("t.whoami", Whoami).await.unwrap();
        *seen.entry(who).or_default() += 1;
    }
    assert_eq!(seen.len(), 3, "every instance served: {seen:?}");
    assert!(seen.values().all(|&n| n == 100), "exactly fair: {seen:?}");
    done(rt).await;
}

#[tokio::test]
async fn publish_reaches_every_consumer_including_wildcards() {
    let rt = runtime();
    let counters = Arc::new(Counters::default());
    // Two instances bind `t.events.*` (a wildcard pattern).
    rt.deploy(
        Probe::with(counters.clone()),
        DeployOptions::new().instances(2),
    )
    .await
    .unwrap();
    assert_eq!(rt.bus().consumer_count("t.events.created"), 2);
    assert_eq!(rt.bus().publish("t.events.created", Event(1)), Ok(2));
    assert_eq!(rt.bus().publish("t.events.deleted", Event(2)), Ok(2));
    // `*` matches exactly one token.
    assert_eq!(rt.bus().publish("t.events.a.b", Event(3)), Ok(0));
    // Sync up: a request behind the events on each instance (FIFO per sender).
    for _ in 0..2 {
        rt.bus().request("t.whoami", Whoami).await.unwrap();
    }
    assert_eq!(counters.events.load(Ordering::SeqCst), 4);
    done(rt).await;
}

#[tokio::test]
async fn a_request_is_sent_when_first_polled_and_not_before() {
    let rt = runtime();
    let counters = Arc::new(Counters::default());
    let id = rt
        .deploy(Probe::with(counters.clone()), DeployOptions::new())
        .await
        .unwrap();
    let probe = rt.actor_ref::<Probe>(id, 0).unwrap();
    // Made and dropped unpolled: nothing goes out.
    drop(rt.bus().request("t.add", Add(1)));
    drop(probe.request(Add(1)));
    let later = rt.bus().request("t.add", Add(5));
    assert_eq!(rt.bus().request("t.add", Add(0)).await.unwrap(), 0);
    assert_eq!(
        counters.adds.load(Ordering::SeqCst),
        1,
        "only the awaited one arrived"
    );
    // Polled later: it goes out then, and is answered.
    assert_eq!(later.await.unwrap(), 5);
    assert_eq!(probe.request(Add(2)).await.unwrap(), 7);
    assert_eq!(counters.adds.load(Ordering::SeqCst), 3);
    done(rt).await;
}

#[tokio::test]
async fn request_times_out_with_the_per_call_timeout() {
    let rt = runtime();
    rt.deploy(Probe::default, DeployOptions::new())
        .await
        .unwrap();
    let err = rt
        .bus()
        .request_with(
            "t.nap",
            Nap(Duration::from_secs(2)),
            RequestOptions::new().timeout(Duration::from_millis(50)),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        BusError::Timeout {
            topic: "t.nap".into(),
            after: Duration::from_millis(50)
        }
    );
    done(rt).await;
}

/// Asks `t.nap` from a handler, on a reactor, with the given timeout; answers with what it
/// got and how long it waited.
#[derive(Debug, Message)]
#[message(reply = (Result<(), BusError>, Duration))]
struct AskNap {
    nap: Duration,
    timeout: Duration,
}

#[component]
#[derive(Debug, Default)]
struct Asker;

/// Asks `t.add` this many times in a row from a handler; answers with the last total.
#[derive(Debug, Message)]
#[message(reply = Result<u64, BusError>)]
struct AskAdds(u64);

#[component]
impl Asker {
    #[handler("t.ask-adds")]
    async fn ask_adds(
        &mut self,
        AskAdds(n): AskAdds,
        ctx: &mut Context<Self>,
    ) -> Result<u64, BusError> {
        let mut total = 0;
        for _ in 0..n {
            total = ctx.request("t.add", Add(1)).await?;
        }
        Ok(total)
    }

    #[handler("t.ask-nap")]
    async fn ask(
        &mut self,
        msg: AskNap,
        ctx: &mut Context<Self>,
    ) -> (Result<(), BusError>, Duration) {
        let start = std::time::Instant::now();
        let r = ctx
            .request_with(
                "t.nap",
                Nap(msg.nap),
                RequestOptions::new().timeout(msg.timeout),
            )
            .await;
        (r, start.elapsed())
    }
}

/// A `Probe` on reactor 0 and an `Asker` on reactor 1.
async fn asker_and_probe_apart(rt: &Fluxor) {
    rt.deploy(Probe::default, DeployOptions::new().reactor(0))
        .await
        .unwrap();
    rt.deploy(Asker::default, DeployOptions::new().reactor(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_request_from_a_reactor_times_out_at_its_deadline_and_not_before() {
    let rt = runtime();
    asker_and_probe_apart(&rt).await;
    // Long enough to wait on the reactor's young list first, short enough to wait for;
    // and one shorter than the sweep's period, which gets its timer at once.
    for timeout in [Duration::from_millis(60), Duration::from_millis(5)] {
        let (r, waited) = rt
            .bus()
            .request(
                "t.ask-nap",
                AskNap {
                    nap: Duration::from_millis(300),
                    timeout,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            r,
            Err(BusError::Timeout {
                topic: "t.nap".into(),
                after: timeout
            })
        );
        assert!(
            waited >= timeout,
            "timed out after {waited:?}, before {timeout:?}"
        );
    }
    // Answered in time, a request never sees its timer.
    let (r, _) = rt
        .bus()
        .request(
            "t.ask-nap",
            AskNap {
                nap: Duration::ZERO,
                timeout: Duration::from_secs(5),
            },
        )
        .await
        .unwrap();
    assert_eq!(r, Ok(()));
    done(rt).await;
}

#[tokio::test]
async fn asks_between_reactors_are_answered_whether_reactors_spin_or_park() {
    // Without the spin every hand-off rings the other reactor, which may be parked.
    for spin in [Duration::ZERO, Duration::from_micros(50)] {
        let rt = Fluxor::builder()
            .reactors(2)
            .spin_before_park(spin)
            .request_timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        asker_and_probe_apart(&rt).await;
        let total = rt.bus().request("t.ask-adds", AskAdds(2_000)).await;
        assert_eq!(total, Ok(Ok(2_000)), "spin {spin:?}");
        done(rt).await;
    }
}

#[tokio::test]
async fn default_request_timeout_comes_from_the_builder() {
    let rt = Fluxor::builder()
        .reactors(1)
        .request_timeout(Duration::from_millis(30))
        .build()
        .unwrap();
    rt.deploy(Probe::default, DeployOptions::new())
        .await
        .unwrap();
    let err = rt
        .bus()
        .request("t.nap", Nap(Duration::from_millis(500)))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Timeout { after, .. } if after == Duration::from_millis(30)));
    done(rt).await;
}

#[tokio::test]
async fn unknown_topics_answer_no_handlers_and_hand_the_message_back() {
    let rt = runtime();
    let err = rt.bus().request("nobody.home", Add(1)).await.unwrap_err();
    assert_eq!(
        err,
        BusError::NoHandlers {
            topic: "nobody.home".into()
        }
    );
    let err = rt.bus().send("nobody.home", Add(7)).unwrap_err();
    assert!(matches!(err.error, BusError::NoHandlers { .. }));
    assert_eq!(err.into_inner().0, 7);
    assert_eq!(rt.bus().publish("nobody.home", Event(1)), Ok(0));
    done(rt).await;
}

#[tokio::test]
async fn malformed_topics_and_wrong_types_are_reported() {
    let rt = runtime();
    rt.deploy(Probe::default, DeployOptions::new())
        .await
        .unwrap();
    for bad in ["", "a..b", "has space", "t.*"] {
        let err = rt.bus().send(bad, Add(1)).unwrap_err();
        assert!(
            matches!(err.error, BusError::InvalidTopic { .. }),
            "{bad:?}: {:?}",
            err.error
        );
    }
    // A typed address for the wrong message type does not compile; a string topic is checked
    // at run time.
    let err = rt.bus().request("t.add", Whoami).await.unwrap_err();
    match err {
        BusError::TypeMismatch {
            topic,
            expected,
            found,
        } => {
            assert_eq!(topic, "t.add");
            assert!(expected.ends_with("Add"), "{expected}");
            assert!(found.ends_with("Whoami"), "{found}");
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    done(rt).await;
}

#[tokio::test]
async fn typed_addresses_infer_the_reply() {
    const ADD: Address<Add> = Address::new("t.add");
    let rt = runtime();
    rt.deploy(Probe::default, DeployOptions::new())
        .await
        .unwrap();
    let total = rt.bus().request(ADD, Add(2)).await.unwrap();
    let total: u64 = total + rt.bus().request(&ADD, Add(3)).await.unwrap();
    assert_eq!(total, 2 + 5);
    done(rt).await;
}

#[tokio::test]
async fn handler_errors_and_panics_reach_the_requester_and_serving_goes_on() {
    let rt = runtime();
    rt.deploy(Probe::default, DeployOptions::new())
        .await
        .unwrap();
    let err = rt.bus().request("t.fail", Fail::Error).await.unwrap_err();
    assert_eq!(
        err,
        BusError::RecipientFailed {
            topic: "t.fail".into(),
            reason: "refused on purpose".into()
        }
    );
    let err = rt.bus().request("t.fail", Fail::Panic).await.unwrap_err();
    match err {
        BusError::RecipientFailed { reason, .. } => {
            assert!(reason.contains("boom on purpose"), "{reason}");
        }
        other => panic!("expected RecipientFailed, got {other:?}"),
    }
    // The panic restarted the instance (the default policy); it counts from zero again.
    assert_eq!(rt.bus().request("t.add", Add(4)).await.unwrap(), 4);
    assert_eq!(rt.bus().request("t.add", Add(1)).await.unwrap(), 5);
    let info = &rt.deployments()[0].instances[0];
    assert_eq!((info.failed, info.panicked), (1, 1));
    done(rt).await;
}

#[tokio::test]
async fn request_id_propagates_through_two_hops() {
    let rt = runtime();
    rt.deploy(|| Relay, DeployOptions::new().reactor(0))
        .await
        .unwrap();
    rt.deploy(Probe::default, DeployOptions::new().reactor(1))
        .await
        .unwrap();
    let ids = rt
        .bus()
        .request(
            "relay.trace",
            Trace {
                forward_to: Some("t.trace".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert!(!ids[0].is_empty());
    assert_eq!(
        ids[0], ids[1],
        "the second hop carries the first hop's request id"
    );
    // A new request starts a new chain.
    let again = rt
        .bus()
        .request("relay.trace", Trace { forward_to: None })
        .await
        .unwrap();
    assert_ne!(again[0], ids[0]);
    done(rt).await;
}

#[tokio::test]
async fn a_full_mailbox_refuses_at_once_and_loses_nothing() {
    let rt = runtime();
    let counters = Arc::new(Counters::default());
    rt.deploy(
        Probe::with(counters.clone()),
        DeployOptions::new().mailbox_capacity(4),
    )
    .await
    .unwrap();
    // Occupy the handler so the mailbox fills.
    let nap = hold(&rt, &counters, 1, Duration::from_millis(300))
        .await
        .remove(0);

    let mut accepted = 0u64;
    let mut returned = Vec::new();
    for i in 0..100u64 {
        match rt.bus().send("t.add", Add(i)) {
            Ok(()) => accepted += 1,
            Err(e) => {
                assert!(
                    matches!(e.error, BusError::MailboxFull { .. }),
                    "{:?}",
                    e.error
                );
                returned.push(e.into_inner().0);
            }
        }
    }
    assert_eq!(accepted, 4, "exactly the mailbox's capacity is accepted");
    assert_eq!(returned.len(), 96);
    assert_eq!(
        returned,
        (4..100).collect::<Vec<_>>(),
        "each refused message comes back intact"
    );
    nap.await.unwrap().unwrap();
    // Everything accepted is handled (the mailbox may still be full for a moment after the
    // nap's reply), and a request queued behind them sees the total.
    eventually(
        "the accepted messages to be handled",
        Duration::from_secs(10),
        || counters.adds.load(Ordering::SeqCst) >= accepted,
    )
    .await;
    assert_eq!(rt.bus().request("t.add", Add(0)).await.unwrap(), 6);
    assert_eq!(counters.adds.load(Ordering::SeqCst), accepted + 1);
    assert_eq!(rt.deployments()[0].instances[0].rejected, 96);
    done(rt).await;
}

#[tokio::test]
async fn send_timeout_waits_for_room_instead_of_failing() {
    let rt = runtime();
    let counters = Arc::new(Counters::default());
    rt.deploy(
        Probe::with(counters.clone()),
        DeployOptions::new().mailbox_capacity(1),
    )
    .await
    .unwrap();
    let nap = hold(&rt, &counters, 1, Duration::from_millis(100))
        .await
        .remove(0);
    rt.bus().send("t.add", Add(1)).unwrap();
    assert!(rt.bus().send("t.add", Add(2)).is_err(), "full");
    // Too short a wait fails and hands the message back ...
    let err = rt
        .bus()
        .send_timeout("t.add", Add(3), Duration::from_millis(10))
        .await
        .unwrap_err();
    assert!(matches!(err.error, BusError::MailboxFull { .. }));
    assert_eq!(err.into_inner().0, 3);
    // ... a long enough one gets through once the nap ends.
    rt.bus()
        .send_timeout("t.add", Add(10), Duration::from_secs(5))
        .await
        .unwrap();
    nap.await.unwrap().unwrap();
    // The mailbox holds one message; a request may find it still full for a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let total = loop {
        match rt.bus().request("t.add", Add(0)).await {
            Err(BusError::MailboxFull { .. }) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the mailbox stayed full for 5s"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other => break other.unwrap(),
        }
    };
    assert_eq!(total, 11);
    done(rt).await;
}

#[tokio::test]
async fn send_wait_waits_for_room_as_long_as_it_takes() {
    let rt = runtime();
    let counters = Arc::new(Counters::default());
    let id = rt
        .deploy(
            Probe::with(counters.clone()),
            DeployOptions::new().mailbox_capacity(1),
        )
        .await
        .unwrap();
    let nap = hold(&rt, &counters, 1, Duration::from_millis(200))
        .await
        .remove(0);
    rt.bus().send("t.add", Add(1)).unwrap();
    // Full for the next 200 ms: each wait outlasts any short deadline, and none fails.
    let bus = rt.bus().clone();
    let producer = tokio::spawn(async move {
        for n in 2..=101 {
            bus.send_wait("t.add", Add(n)).await.unwrap();
        }
    });
    let direct = rt.actor_ref::<Probe>(id, 0).expect("the instance");
    direct.send_wait(Add(1000)).await.unwrap();
    producer.await.unwrap();
    nap.await.unwrap().unwrap();
    // A request (which does not wait) may find the last waiter's message still queued.
    let mut refused = 0;
    let total = loop {
        match rt.bus().request("t.add", Add(0)).await {
            Err(BusError::MailboxFull { .. }) => {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other => break other.unwrap(),
        }
    };
    assert_eq!(total, (1..=101).sum::<u64>() + 1000);
    assert_eq!(
        rt.deployments()[0].instances[0].rejected,
        refused,
        "waiting is not refusing"
    );
    done(rt).await;
}

#[tokio::test]
async fn messages_from_one_sender_arrive_in_order() {
    let rt = runtime();
    let counters = Arc::new(Counters::default());
    rt.deploy(
        Probe::with(counters.clone()),
        DeployOptions::new().mailbox_capacity(10_000),
    )
    .await
    .unwrap();
    // Three senders on three tasks, interleaving; each numbers its own messages.
    let mut senders = Vec::new();
    for sender in 0..3u8 {
        let bus = rt.bus().clone();
        senders.push(tokio::spawn(async move {
            for n in 1..=2000u64 {
                bus.send("t.seq", Seq { sender, n }).unwrap();
                if n % 100 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    rt.bus().request("t.whoami", Whoami).await.unwrap();
    assert_eq!(counters.in_order.load(Ordering::SeqCst), 6000);
    assert_eq!(counters.out_of_order.load(Ordering::SeqCst), 0);
    done(rt).await;
}

#[tokio::test]
async fn a_closed_bus_answers_closed() {
    let rt = runtime();
    let bus = rt.bus().clone();
    rt.shutdown(Duration::from_secs(1)).await.unwrap();
    assert!(bus.is_closed());
    assert_eq!(
        bus.request("t.add", Add(1)).await.unwrap_err(),
        BusError::Closed
    );
    assert_eq!(
        bus.send("t.add", Add(1)).unwrap_err().error,
        BusError::Closed
    );
}

#[tokio::test]
async fn a_request_whose_requester_has_gone_is_skipped_and_counted() {
    let rt = runtime();
    let counters = Arc::new(Counters::default());
    rt.deploy(Probe::with(counters.clone()), DeployOptions::new())
        .await
        .unwrap();
    // Hold the only instance with a nap.
    let nap = hold(&rt, &counters, 1, Duration::from_millis(300))
        .await
        .remove(0);
    // Meanwhile one requester stops waiting at its deadline (a plain handler's request), and
    // another drops its request (an `async` handler's), as an HTTP client that gives up does.
    let timed_out = rt
        .bus()
        .request_with(
            "t.add",
            Add(1),
            RequestOptions::new().timeout(Duration::from_millis(20)),
        )
        .await;
    assert!(
        matches!(timed_out, Err(BusError::Timeout { .. })),
        "{timed_out:?}"
    );
    let dropped = tokio::time::timeout(
        Duration::from_millis(20),
        rt.bus().request("t.nap", Nap(Duration::from_secs(5))),
    )
    .await;
    assert!(dropped.is_err(), "the caller gave up");
    nap.await.unwrap().unwrap();
    eventually(
        "both to be counted as abandoned",
        Duration::from_secs(5),
        || rt.deployments()[0].instances[0].abandoned == 2,
    )
    .await;
    assert_eq!(
        counters.adds.load(Ordering::Relaxed),
        0,
        "the add never ran"
    );
    assert_eq!(
        counters.naps.load(Ordering::Relaxed),
        1,
        "the second nap never started"
    );
    // A requester that waits is answered as ever.
    rt.bus().request("t.add", Add(2)).await.unwrap();
    assert_eq!(counters.adds.load(Ordering::Relaxed), 1);
    // The nap and this add were handled; the counter follows the reply.
    eventually("two messages handled", Duration::from_secs(5), || {
        rt.deployments()[0].instances[0].handled == 2
    })
    .await;
    assert_eq!(rt.deployments()[0].instances[0].abandoned, 2);
    done(rt).await;
}

#[derive(Message)]
#[message(reply = String)]
struct AskSelf {
    direct: bool,
}

#[derive(Message)]
#[message(reply = u64)]
struct Inner;

/// Asks its own topic (or itself, directly) from a handler.
#[component]
struct Selfish;

#[component]
impl Selfish {
    #[handler("selfish.outer")]
    async fn outer(&mut self, msg: AskSelf, ctx: &mut Context<Self>) -> String {
        let asked = if msg.direct {
            let me = ctx.myself().clone();
            ctx.request_from(&me, Inner).await
        } else {
            ctx.request("selfish.inner", Inner).await
        };
        match asked {
            Ok(n) => format!("answered {n} by instance {}", ctx.instance()),
            Err(e) => format!("{e:?}"),
        }
    }

    #[handler("selfish.inner")]
    fn inner(&mut self, _: Inner, ctx: &mut Context<Self>) -> u64 {
        ctx.instance() as u64
    }

    #[handler]
    fn inner_direct(&mut self, _: Inner) -> u64 {
        7
    }
}

#[tokio::test]
async fn asking_yourself_fails_at_once_and_another_instance_is_asked_instead() {
    // A timeout short enough that waiting it out would show, long enough not to be hit.
    let rt = Fluxor::builder()
        .reactors(2)
        .request_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let one = rt.deploy(|| Selfish, DeployOptions::new()).await.unwrap();
    for direct in [false, true] {
        let answer = rt
            .bus()
            .request("selfish.outer", AskSelf { direct })
            .await
            .unwrap();
        assert!(
            answer.starts_with("AskCycle") && answer.contains("Selfish"),
            "{answer}"
        );
    }
    rt.undeploy(one).await.unwrap();

    // With two instances, the other one answers; the asker is never chosen.
    rt.deploy(|| Selfish, DeployOptions::new().instances(2))
        .await
        .unwrap();
    for _ in 0..6 {
        let answer = rt
            .bus()
            .request("selfish.outer", AskSelf { direct: false })
            .await
            .unwrap();
        let (asked_by, answered_by) = (
            answer.chars().last().unwrap(),
            answer.split(' ').nth(1).unwrap().chars().next().unwrap(),
        );
        assert_ne!(asked_by, answered_by, "{answer}");
    }
    done(rt).await;
}

#[tokio::test]
async fn a_message_refused_by_every_instance_is_counted_once() {
    let rt = runtime();
    let counters = Arc::new(Counters::default());
    rt.deploy(
        Probe::with(counters.clone()),
        DeployOptions::new().instances(3).mailbox_capacity(2),
    )
    .await
    .unwrap();
    // Every instance naps, so the three mailboxes (2 slots each) fill.
    let naps = hold(&rt, &counters, 3, Duration::from_millis(300)).await;
    let refused = (0..60u64)
        .filter(|&i| rt.bus().send("t.add", Add(i)).is_err())
        .count() as u64;
    assert_eq!(refused, 54, "six slots in all");
    // A send that waits for room and finds none is one more refused message, counted once.
    let waited = rt
        .bus()
        .send_timeout("t.add", Add(0), Duration::from_millis(20))
        .await;
    assert!(waited.is_err());
    let total: u64 = rt.deployments()[0]
        .instances
        .iter()
        .map(|i| i.rejected)
        .sum();
    assert_eq!(total, refused + 1, "each refused message counts once");
    for nap in naps {
        nap.await.unwrap().unwrap();
    }
    done(rt).await;
}
