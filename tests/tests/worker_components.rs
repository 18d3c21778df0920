//! Worker components: handlers on the worker pool, where blocking is allowed, one at a time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fluxor::prelude::*;
use fluxor::DeployError;
use fluxor_tests::{eventually, Probe, Whoami};

#[derive(Message)]
#[message(reply = String)]
struct Slow(u64);

#[derive(Message, Clone)]
struct Tick;

#[derive(Message)]
#[message(reply = usize)]
struct Ticks;

#[component(worker)]
#[derive(Default)]
struct Files {
    running: Arc<AtomicUsize>,
    overlap: Arc<AtomicUsize>,
    ticks: usize,
}

#[component]
impl Files {
    #[on_start]
    fn begin(&mut self, ctx: &mut Context<Self>) {
        ctx.set_timer(Duration::from_millis(10), Tick);
    }

    /// Blocks its thread on purpose, and answers the thread's name.
    #[handler("files.slow")]
    fn slow(&mut self, Slow(ms): Slow) -> String {
        if self.running.fetch_add(1, Ordering::SeqCst) > 0 {
            self.overlap.fetch_add(1, Ordering::SeqCst);
        }
        std::thread::sleep(Duration::from_millis(ms));
        self.running.fetch_sub(1, Ordering::SeqCst);
        std::thread::current().name().unwrap_or("").to_owned()
    }

    #[handler]
    fn tick(&mut self, _: Tick) {
        self.ticks += 1;
    }

    #[handler("files.ticks")]
    async fn ticks(&mut self, _: Ticks) -> usize {
        // Async handlers work too: timers and I/O are driven by the reactor meanwhile.
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.ticks
    }
}

fn runtime() -> Fluxor {
    Fluxor::builder()
        .reactors(1)
        .worker_threads(4)
        .blocked_threshold(Duration::from_millis(100))
        .build()
        .unwrap()
}

#[tokio::test]
async fn worker_handlers_may_block_without_holding_the_reactor() {
    let rt = runtime();
    let overlap = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicUsize::new(0));
    let factory = {
        let (overlap, running) = (overlap.clone(), running.clone());
        move || Files {
            overlap: overlap.clone(),
            running: running.clone(),
            ..Files::default()
        }
    };
    rt.deploy(factory, DeployOptions::new()).await.unwrap();
    rt.deploy(Probe::default, DeployOptions::new())
        .await
        .unwrap();

    let mut slow = Vec::new();
    for _ in 0..2 {
        let bus = rt.bus().clone();
        slow.push(tokio::spawn(async move {
            bus.request(Files::SLOW, Slow(300)).await
        }));
    }
    eventually("a slow call to run", Duration::from_secs(5), || {
        running.load(Ordering::SeqCst) == 1
    })
    .await;
    // The reactor (the only one) answers while a worker thread sleeps.
    let who = rt
        .bus()
        .request_with(
            "t.whoami",
            Whoami,
            RequestOptions::new().timeout(Duration::from_millis(100)),
        )
        .await;
    assert_eq!(who, Ok(0));
    for s in slow {
        let thread = s.await.unwrap().unwrap();
        assert!(thread.starts_with("fluxor-worker-"), "{thread}");
    }
    assert_eq!(overlap.load(Ordering::SeqCst), 0, "one call at a time");
    assert_eq!(
        rt.reactor_stats()[0].blocked_episodes,
        0,
        "the reactor never blocked"
    );
    // Timers set in the start hook reach worker components too.
    assert_eq!(rt.bus().request(Files::TICKS, Ticks).await.unwrap(), 1);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn the_deploy_option_overrides_the_declaration() {
    let rt = runtime();
    rt.deploy(Files::default, DeployOptions::new().worker(false))
        .await
        .unwrap();
    let thread = rt.bus().request(Files::SLOW, Slow(1)).await.unwrap();
    assert!(thread.starts_with("fluxor-reactor-"), "{thread}");

    let err = rt
        .deploy(Probe::default, DeployOptions::new().worker(true))
        .await
        .unwrap_err();
    match err {
        DeployError::InvalidOptions(m) => assert!(m.contains("#[component(worker)]"), "{m}"),
        other => panic!("{other:?}"),
    }
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
