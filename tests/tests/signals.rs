//! `Fluxor::run` waits for SIGTERM / SIGINT, then shuts down. Its own test binary, because the
//! signal handler is process-wide.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use fluxor::{DeployOptions, Fluxor};
use fluxor_tests::{Add, Counters, Probe};

#[cfg(unix)]
#[tokio::test]
async fn run_shuts_down_gracefully_on_sigterm() {
    let rt = Fluxor::builder()
        .reactors(2)
        .shutdown_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let counters = Arc::new(Counters::default());
    rt.deploy(Probe::with(counters.clone()), DeployOptions::new())
        .await
        .unwrap();
    assert_eq!(rt.bus().request("t.add", Add(2)).await.unwrap(), 2);

    // Polled here rather than spawned, so the test knows when `run` has been polled: its first
    // poll installs the signal handlers, and it stays pending until a signal comes (a second
    // signal would exit the process, so exactly one is sent, after that first poll).
    let mut running = Box::pin(rt.run());
    for _ in 0..10 {
        let poll = std::future::poll_fn(|cx| Poll::Ready(running.as_mut().poll(cx))).await;
        assert!(poll.is_pending(), "run waits for a signal");
        tokio::task::yield_now().await;
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());

    let result = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("run returns after the signal");
    result.expect("clean shutdown");
    assert_eq!(counters.stops.load(Ordering::SeqCst), 1, "stop ran");
    assert!(rt.bus().is_closed());
    assert!(rt.deployments().is_empty());
}
