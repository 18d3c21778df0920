//! `Fluxor::reconfigure_on_sighup`: a config file applied on SIGHUP. In a test binary of its own:
//! the signal goes to the whole process.
#![cfg(unix)]

use std::time::{Duration, Instant};

use fluxor::prelude::*;

#[derive(Debug, serde::Deserialize)]
struct Limits {
    max: u32,
}

#[derive(Message)]
#[message(reply = u32)]
struct Max;

#[component(config = Limits)]
#[derive(Default)]
struct Gate;

#[component]
impl Gate {
    #[handler("gate.max")]
    fn max(&mut self, _: Max, ctx: &mut Context<Self>) -> u32 {
        ctx.config().max
    }
}

fn hangup() {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

async fn until_max(bus: &EventBus, want: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = bus.request("gate.max", Max).await.expect("an answer");
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "max stayed {got}, wanted {want}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_hangup_applies_the_file_and_a_bad_file_changes_nothing() {
    let rt = Fluxor::builder().reactors(1).build().unwrap();
    let id = rt
        .deploy(
            Gate::default,
            DeployOptions::new().config(serde_json::json!({ "max": 10 })),
        )
        .await
        .unwrap();
    let file = std::env::temp_dir().join(format!("fluxor-sighup-{}.json", std::process::id()));
    std::fs::write(&file, r#"{ "max": 30 }"#).unwrap();
    rt.reconfigure_on_sighup(id, &file)
        .expect("the handler installs");
    let bus = rt.bus().clone();
    assert_eq!(bus.request("gate.max", Max).await, Ok(10));

    hangup();
    until_max(&bus, 30).await;

    std::fs::write(&file, r#"{ "max": "lots" }"#).unwrap();
    hangup();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        bus.request("gate.max", Max).await,
        Ok(30),
        "a bad file changes nothing"
    );

    std::fs::write(&file, r#"{ "max": 40 }"#).unwrap();
    hangup();
    until_max(&bus, 40).await;
    let _ = std::fs::remove_file(&file);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
