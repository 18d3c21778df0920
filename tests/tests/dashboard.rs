//! The HTTP adapter's dashboard in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, started here on a free port) loads `/fluxor/`, shows the deployments, and
//! shows a crash and the restart that follows. Also the event stream and the actions over
//! plain HTTP.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian: `apt-get install chromium
//! chromium-driver`; `cargo xtask test` installs them). Set `FLUXOR_DASHBOARD_SCREENSHOT` to a
//! path to save a PNG of the page.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use fluxor::http::{HttpHandle, HttpServer};
use fluxor::prelude::*;
use fluxor_tests::{Add, Fail, Probe};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

async fn serve(rt: &Fluxor, actions: bool) -> HttpHandle {
    rt.deploy(Probe::default, DeployOptions::new().instances(2))
        .await
        .unwrap();
    let (server, handle) = HttpServer::builder(Router::new())
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .dashboard(true)
        .dashboard_interval(Duration::from_millis(200))
        .dashboard_actions(actions)
        .build();
    rt.deploy(server, DeployOptions::new()).await.unwrap();
    handle
}

/// chromedriver, killed when dropped.
struct Driver {
    child: Child,
    base: String,
    _profile: TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory, removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn start_driver(client: &reqwest::Client) -> Driver {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: the dashboard test drives headless Chromium. Install it with \
             `apt-get install -y chromium chromium-driver` (Debian/Ubuntu), or run `cargo xtask \
             test`, which installs it"
        );
    }
    let profile = std::env::temp_dir().join(format!(
        "fluxor-dashboard-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&profile).unwrap();
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
    let driver = Driver {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _profile: TempDir(profile),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = client
            .get(format!("{}/status", driver.base))
            .send()
            .await
            .ok()
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if ready {
            return driver;
        }
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One WebDriver session (the few commands this test needs).
struct Session<'a> {
    client: &'a reqwest::Client,
    url: String,
}

impl<'a> Session<'a> {
    async fn new(client: &'a reqwest::Client, driver: &Driver) -> Session<'a> {
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1400,1100",
                    format!("--user-data-dir={}", driver._profile.0.display()),
                ],
            },
        }}});
        let answer = call(
            client,
            "POST",
            &format!("{}/session", driver.base),
            Some(caps),
        )
        .await;
        let id = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"));
        Session {
            client,
            url: format!("{}/session/{id}", driver.base),
        }
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        call(self.client, method, &format!("{}{path}", self.url), body).await
    }

    async fn script(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Runs `script` until `done` accepts its value, at most 15 s.
    async fn wait(&self, what: &str, script: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let v = self.script(script).await;
            if done(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn call(client: &reqwest::Client, method: &str, url: &str, body: Option<Value>) -> Value {
    let req = match method {
        "POST" => client.post(url).json(&body.unwrap_or_else(|| json!({}))),
        "DELETE" => client.delete(url),
        _ => client.get(url),
    };
    let answer: Value = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("WebDriver {method} {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("WebDriver {method} {url}: not JSON: {e}"));
    if answer["value"]["error"].is_string() {
        panic!("WebDriver {method} {url} failed: {}", answer["value"]);
    }
    answer["value"].clone()
}

/// Decodes standard base64 (the screenshot), ignoring anything outside the alphabet.
fn base64(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

const PROBE_ROWS: &str = "return [...document.querySelectorAll('tr.inst')]
    .filter(r => r.dataset.component.includes('Probe'))
    .map(r => ({ index: r.dataset.index, state: r.querySelector('.state').textContent,
                 restarts: Number(r.querySelector('.restarts').textContent) }));";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_deployments_and_a_crash_in_a_browser() {
    let client = reqwest::Client::new();
    let driver = start_driver(&client).await;
    let rt = Fluxor::builder().reactors(2).build().unwrap();
    let handle = serve(&rt, false).await;
    let addr = handle.local_addr().unwrap();
    for n in 0..50 {
        let _: u64 = rt.bus().request("t.add", Add(n)).await.unwrap();
    }

    let session = Session::new(&client, &driver).await;
    session
        .cmd(
            "POST",
            "/url",
            Some(json!({ "url": format!("http://{addr}/fluxor/") })),
        )
        .await;
    session
        .wait(
            "the page to receive snapshots",
            "return window.__fluxor && window.__fluxor.snapshots",
            |v| v.as_u64().unwrap_or(0) >= 3,
        )
        .await;

    let rows = session
        .wait("the Probe instances", PROBE_ROWS, |v| {
            v.as_array().is_some_and(|a| a.len() == 2)
        })
        .await;
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "Running" && r["restarts"] == 0),
        "{rows}"
    );
    let text = session
        .script("return document.getElementById('deployments').innerText")
        .await;
    assert!(
        text.as_str().unwrap().contains("HttpServer"),
        "the server's deployment is listed: {text}"
    );

    // A crash: the instance restarts, and the page shows it.
    let crash = rt.bus().request("t.fail", Fail::Panic).await;
    assert!(
        matches!(crash, Err(BusError::RecipientFailed { .. })),
        "{crash:?}"
    );
    let rows = session
        .wait("the restart to show", PROBE_ROWS, |v| {
            v.as_array().is_some_and(|a| {
                a.iter()
                    .map(|r| r["restarts"].as_u64().unwrap_or(0))
                    .sum::<u64>()
                    == 1
            })
        })
        .await;
    let events = session
        .wait(
            "the crash in the lifecycle list",
            "return document.getElementById('events').innerText",
            |v| {
                v.as_str()
                    .is_some_and(|t| t.contains("crashed") && t.contains("boom"))
            },
        )
        .await;
    assert!(events.as_str().unwrap().contains("restarted"), "{events}");
    let crashes = session.script("return window.__fluxor.lifecycle").await;
    assert!(
        crashes.as_u64().unwrap_or(0) >= 2,
        "crashed and restarted: {crashes}; {rows}"
    );

    if let Ok(path) = std::env::var("FLUXOR_DASHBOARD_SCREENSHOT") {
        // Some traffic and a refusal or two for the chart.
        for n in 0..2000 {
            let _: Result<u64, _> = rt.bus().request("t.add", Add(n)).await;
            if n % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        let png = session.cmd("GET", "/screenshot", None).await;
        std::fs::write(&path, base64(png.as_str().unwrap())).unwrap();
    }

    // No script error, no failed load, nothing logged as an error by the browser.
    let errors = session.script("return window.__fluxor.errors").await;
    assert_eq!(errors, json!([]), "errors recorded by the page");
    let log = session
        .cmd("POST", "/se/log", Some(json!({ "type": "browser" })))
        .await;
    let severe: Vec<&Value> = log
        .as_array()
        .map(|entries| entries.iter().filter(|e| e["level"] == "SEVERE").collect())
        .unwrap_or_default();
    assert!(severe.is_empty(), "browser console errors: {severe:?}");

    session.cmd("DELETE", "", None).await;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Reads server-sent events from `response` until `enough` says so (at most 10 s); returns
/// `(event name, data)` pairs.
async fn read_events(
    mut response: reqwest::Response,
    enough: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let mut text = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !enough(&events) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .expect("events in time")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let (mut name, mut data) = (String::from("message"), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            events.push((name, data));
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_sends_snapshots_and_lifecycle_events() {
    let rt = Fluxor::builder().reactors(2).build().unwrap();
    let handle = serve(&rt, false).await;
    let base = format!("http://{}", handle.local_addr().unwrap());
    let client = reqwest::Client::new();

    let page = client.get(format!("{base}/fluxor/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("dashboard.js"));
    for asset in ["dashboard.js", "dashboard.css"] {
        let r = client
            .get(format!("{base}/fluxor/{asset}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }

    let stream = client
        .get(format!("{base}/fluxor/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let crash = tokio::spawn({
        let rt = rt.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            rt.bus().request("t.fail", Fail::Panic).await
        }
    });
    let events = read_events(stream, |events| {
        events.iter().any(|(n, _)| n == "lifecycle")
            && events.iter().filter(|(n, _)| n == "snapshot").count() >= 2
    })
    .await;
    assert!(crash.await.unwrap().is_err());
    assert_eq!(events[0].0, "hello");
    let hello: Value = serde_json::from_str(&events[0].1).unwrap();
    assert_eq!(hello, json!({ "interval_ms": 200, "actions": false }));
    let (_, snapshot) = events.iter().find(|(n, _)| n == "snapshot").unwrap();
    let snapshot: Value = serde_json::from_str(snapshot).unwrap();
    assert_eq!(snapshot["skipped"], 0);
    assert!(
        snapshot["snapshot"]["deployments"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
    assert_eq!(
        snapshot["snapshot"]["extras"]["http"]["dashboard_clients"],
        1
    );
    let (_, crashed) = events.iter().find(|(n, _)| n == "lifecycle").unwrap();
    let crashed: Value = serde_json::from_str(crashed).unwrap();
    assert_eq!(crashed["kind"], "Crashed");
    assert_eq!(crashed["reason"], "panicked: boom on purpose");

    // The stream is outside the in-flight limit, and does not hold shutdown up.
    let http = &rt.inspect().extras["http"];
    assert_eq!(http["in_flight"], 0, "{http}");
    let started = Instant::now();
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_are_off_unless_enabled_and_need_their_header() {
    let client = reqwest::Client::new();

    let rt = Fluxor::builder().reactors(2).build().unwrap();
    let handle = serve(&rt, false).await;
    let base = format!("http://{}", handle.local_addr().unwrap());
    let probe = rt.deployments()[0].id;
    let r = client
        .post(format!("{base}/fluxor/deployments/{probe}/undeploy"))
        .header("x-fluxor-action", "undeploy")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "read-only: no such POST route");
    rt.shutdown(Duration::from_secs(5)).await.unwrap();

    let rt = Fluxor::builder().reactors(2).build().unwrap();
    let handle = serve(&rt, true).await;
    let base = format!("http://{}", handle.local_addr().unwrap());
    let probe = rt.deployments()[0].id;
    let url = format!("{base}/fluxor/deployments/{probe}/undeploy");
    let r = client.post(&url).send().await.unwrap();
    assert_eq!(r.status(), 403, "no action header");
    for bad in ["nonsense", "00000000-0000-0000-0000-000000000000"] {
        let r = client
            .post(format!("{base}/fluxor/deployments/{bad}/undeploy"))
            .header("x-fluxor-action", "undeploy")
            .send()
            .await
            .unwrap();
        assert!(
            [400, 404].contains(&r.status().as_u16()),
            "{bad}: {}",
            r.status()
        );
    }
    let r = client
        .post(&url)
        .header("x-fluxor-action", "undeploy")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    fluxor_tests::eventually("the Probe undeployed", Duration::from_secs(5), || {
        rt.deployments().iter().all(|d| d.id != probe)
    })
    .await;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
