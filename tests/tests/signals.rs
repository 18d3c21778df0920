//! `Fluxor::run` waits for SIGTERM / SIGINT, then shuts down. Its own test binary, because the
//! signal handler is process-wide.

use std::sync::atomic::Ordering;
use std::sync::Arc;
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

    let running = tokio::spawn({
        let rt = rt.clone();
        async move { rt.run().await }
    });
    // Let `run` install its handlers before the signal is sent.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!running.is_finished(), "run waits for a signal");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());

    let result = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("run returns after the signal")
        .expect("run does not panic");
    result.expect("clean shutdown");
    assert_eq!(counters.stops.load(Ordering::SeqCst), 1, "stop ran");
    assert!(rt.bus().is_closed());
    assert!(rt.deployments().is_empty());
}
