//! Undeploy as a future: nothing happens before it is polled, a deadline it is given cuts
//! a handler that outlives it (and says so), and dropping it while it waits still stops the
//! deployment's instances.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use fluxor::prelude::*;
use fluxor::{DeployOptions, Fluxor};
use fluxor::{StopError, UndeployError};
use fluxor_tests::eventually;

/// What the instances did, read by the tests.
#[derive(Debug, Default)]
struct Log {
    handled: AtomicU64,
    napping: AtomicU64,
    stopped: AtomicU64,
}

#[derive(Debug)]
struct Poke;
impl Message for Poke {
    type Reply = u64;
}

/// Keeps its handler busy for this long.
#[derive(Debug)]
struct Nap(Duration);
impl Message for Nap {
    type Reply = ();
}

#[component]
struct Sleeper {
    log: Arc<Log>,
}

#[component]
impl Sleeper {
    #[handler]
    fn poke(&mut self, _: Poke) -> u64 {
        self.log.handled.fetch_add(1, SeqCst) + 1
    }

    #[handler]
    async fn nap(&mut self, Nap(how_long): Nap) {
        self.log.napping.fetch_add(1, SeqCst);
        tokio::time::sleep(how_long).await;
    }

    #[on_stop]
    fn end(&mut self, _ctx: &mut Context<Self>) {
        self.log.stopped.fetch_add(1, SeqCst);
    }
}

fn runtime() -> Fluxor {
    Fluxor::builder()
        .reactors(1)
        .shutdown_timeout(Duration::from_secs(5))
        .build()
        .expect("runtime builds")
}

async fn deploy(rt: &Fluxor, log: &Arc<Log>) -> DeploymentId {
    let log = log.clone();
    rt.deploy(move || Sleeper { log: log.clone() }, DeployOptions::new())
        .await
        .expect("deploys")
}

/// A deployment whose instance is in the middle of a nap of `how_long`.
async fn napping(rt: &Fluxor, log: &Arc<Log>, how_long: Duration) -> DeploymentId {
    let id = deploy(rt, log).await;
    rt.actor_ref::<Sleeper>(id, 0)
        .unwrap()
        .send(Nap(how_long))
        .unwrap();
    eventually("the nap to start", Duration::from_secs(5), || {
        log.napping.load(SeqCst) == 1
    })
    .await;
    id
}

#[tokio::test]
async fn an_undeploy_not_polled_does_nothing() {
    let rt = runtime();
    let log = Arc::new(Log::default());
    let id = deploy(&rt, &log).await;
    drop(rt.undeploy(id));
    let answer = rt
        .actor_ref::<Sleeper>(id, 0)
        .expect("still deployed")
        .request(Poke)
        .await
        .expect("still answers");
    assert_eq!(answer, 1);
    assert_eq!(log.stopped.load(SeqCst), 0);
    rt.undeploy(id).await.expect("undeploys");
    assert_eq!(log.stopped.load(SeqCst), 1);
    assert!(matches!(
        rt.undeploy(id).await,
        Err(UndeployError::Unknown(unknown)) if unknown == id
    ));
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_handler_past_the_undeploy_deadline_is_cut_and_reported() {
    let rt = runtime();
    let log = Arc::new(Log::default());
    let id = napping(&rt, &log, Duration::from_secs(30)).await;
    rt.actor_ref::<Sleeper>(id, 0).unwrap().send(Poke).unwrap();
    let asked = tokio::time::Instant::now();
    let err = rt
        .undeploy_until(id, asked + Duration::from_millis(100))
        .await
        .unwrap_err();
    // Cut at the deadline it was given (plus the grace for late reports), not at the
    // runtime's shutdown timeout of 5 s.
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_secs(3),
        "the undeploy gave up after {took:?}"
    );
    let UndeployError::Stop {
        id: stopped,
        errors,
    } = &err
    else {
        panic!("a stop error, not {err}")
    };
    assert_eq!(*stopped, id);
    assert!(
        matches!(
            errors.as_slice(),
            [StopError::DeadlineExceeded {
                instance: 0,
                undelivered: 1,
                interrupted: 1,
                ..
            }]
        ),
        "one instance cut with one message left: {err}"
    );
    assert_eq!(
        log.handled.load(SeqCst),
        0,
        "the queued poke was not handled"
    );
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn an_undeploy_dropped_while_it_waits_still_stops_the_instances() {
    let rt = runtime();
    let log = Arc::new(Log::default());
    let id = napping(&rt, &log, Duration::from_secs(2)).await;
    // Polled until it waits for the napping instance, then dropped.
    let waited = tokio::time::timeout(Duration::from_millis(50), rt.undeploy(id)).await;
    assert!(waited.is_err(), "the undeploy waits for the nap");
    assert!(
        rt.deployments().iter().all(|d| d.id != id),
        "out of the table"
    );
    eventually("the instance to stop", Duration::from_secs(10), || {
        log.stopped.load(SeqCst) == 1
    })
    .await;
    assert!(matches!(
        rt.undeploy(id).await,
        Err(UndeployError::Unknown(_))
    ));
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
