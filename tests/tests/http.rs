//! The HTTP adapter over real loopback connections: routes to the bus, error statuses, body
//! limits, request ids, load shedding, graceful shutdown, inspector and metrics.

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::{get, post};
use axum::{Json, Router};
use fluxor::http::{bus_request, Bus, HttpServer};
use fluxor::prelude::*;
use fluxor_tests::eventually;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

#[derive(Message, Debug, Deserialize)]
#[message(reply = Echoed)]
struct Echo {
    text: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Echoed {
    text: String,
    request_id: String,
    header: Option<String>,
}

#[derive(Message, Debug, Deserialize)]
#[message(reply = u64)]
struct Nap {
    ms: u64,
}

#[derive(Message, Debug, Deserialize)]
#[message(reply = u64)]
struct Fail;

#[component]
#[derive(Default)]
struct Service;

#[component]
impl Service {
    #[handler("svc.echo")]
    fn echo(&mut self, Echo { text }: Echo, ctx: &mut Context<Self>) -> Echoed {
        Echoed {
            text,
            request_id: ctx.request_id().map(|u| u.to_string()).unwrap_or_default(),
            header: ctx.headers().get("x-request-id").map(str::to_owned),
        }
    }

    #[handler("svc.nap")]
    async fn nap(&mut self, Nap { ms }: Nap) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }

    #[handler("svc.fail")]
    fn fail(&mut self, _: Fail) -> Result<u64, String> {
        Err("the ledger is closed".into())
    }
}

async fn slow(bus: Bus) -> Result<Json<u64>, BusError> {
    Ok(Json(
        bus.request_timeout("svc.nap", Nap { ms: 300 }, Duration::from_secs(5))
            .await?,
    ))
}

struct Setup {
    rt: Fluxor,
    base: String,
    client: reqwest::Client,
}

async fn setup(max_in_flight: usize, service_instances: usize) -> Setup {
    let rt = Fluxor::builder()
        .reactors(2)
        .request_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    rt.deploy(
        Service::default,
        DeployOptions::new()
            .instances(service_instances)
            .mailbox_capacity(1),
    )
    .await
    .unwrap();
    let router = Router::new()
        .route("/echo", bus_request::<Echo>("svc.echo"))
        .route("/nap", bus_request::<Nap>("svc.nap"))
        .route("/fail", bus_request::<Fail>("svc.fail"))
        .route("/nobody", bus_request::<Fail>("svc.nobody"))
        .route("/slow", get(slow));
    let (server, handle) = HttpServer::builder(router)
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .max_in_flight(max_in_flight)
        .body_limit(1024)
        .inspector(true)
        .metrics(true)
        .build();
    rt.deploy(server, DeployOptions::new()).await.unwrap();
    let addr = handle.local_addr().expect("bound once started");
    Setup {
        rt,
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
    }
}

impl Setup {
    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.base))
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.base))
    }

    /// Requests the HTTP server is handling now.
    fn in_flight(&self) -> u64 {
        self.rt
            .inspect()
            .extras
            .get("http")
            .and_then(|h| h["in_flight"].as_u64())
            .unwrap_or(0)
    }

    /// Messages waiting in the mailbox of the service's first instance.
    fn service_mailbox(&self) -> usize {
        self.rt
            .deployments()
            .iter()
            .find(|d| d.component == "Service")
            .map_or(0, |d| d.instances[0].mailbox_len)
    }

    async fn error_kind(resp: reqwest::Response) -> String {
        let body: serde_json::Value = resp.json().await.unwrap();
        body["error"].as_str().unwrap_or_default().to_owned()
    }
}

#[tokio::test]
async fn a_route_requests_the_bus_and_answers_json() {
    let s = setup(16, 1).await;
    let resp = s
        .post("/echo")
        .json(&serde_json::json!({ "text": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echoed: Echoed = resp.json().await.unwrap();
    assert_eq!(echoed.text, "hi");
    s.rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn bus_errors_become_http_statuses() {
    let s = setup(16, 1).await;
    let resp = s
        .post("/fail")
        .json(&serde_json::json!(null))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!resp.headers().contains_key("retry-after"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "recipient_failed");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("the ledger is closed"));

    let resp = s
        .post("/nobody")
        .json(&serde_json::json!(null))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Nothing handles the topic: a retry in a second would fail the same way.
    assert!(!resp.headers().contains_key("retry-after"));
    assert_eq!(Setup::error_kind(resp).await, "no_handlers");

    // The runtime's request timeout is 200 ms.
    let resp = s
        .post("/nap")
        .json(&serde_json::json!({ "ms": 1000 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(!resp.headers().contains_key("retry-after"));
    assert_eq!(Setup::error_kind(resp).await, "timeout");

    // The service is still napping with its one-slot mailbox: fill it, then overflow it.
    let filler = s.post("/nap").json(&serde_json::json!({ "ms": 1 })).send();
    let filler = tokio::spawn(filler);
    eventually("the filler in the mailbox", Duration::from_secs(5), || {
        s.service_mailbox() == 1
    })
    .await;
    let resp = s
        .post("/nap")
        .json(&serde_json::json!({ "ms": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(Setup::error_kind(resp).await, "mailbox_full");
    let _ = filler.await;
    s.rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn bad_bodies_are_rejected_with_a_reason() {
    let s = setup(16, 1).await;
    let resp = s
        .post("/echo")
        .header("content-type", "application/json")
        .body("{ not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(Setup::error_kind(resp).await, "bad_request");

    let resp = s
        .post("/echo")
        .json(&serde_json::json!({ "txet": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("text"), "{body}");

    let big = "x".repeat(4096);
    let resp = s
        .post("/echo")
        .json(&serde_json::json!({ "text": big }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    s.rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn request_ids_are_kept_or_made_and_reach_the_handler() {
    let s = setup(16, 1).await;
    let resp = s
        .post("/echo")
        .header("x-request-id", "client-chosen-7")
        .json(&serde_json::json!({ "text": "a" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "client-chosen-7");
    let echoed: Echoed = resp.json().await.unwrap();
    assert_eq!(echoed.header.as_deref(), Some("client-chosen-7"));

    let resp = s
        .post("/echo")
        .json(&serde_json::json!({ "text": "b" }))
        .send()
        .await
        .unwrap();
    let made = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid_like(&made), "{made}");
    let echoed: Echoed = resp.json().await.unwrap();
    assert_eq!(echoed.header.as_deref(), Some(made.as_str()));
    // A UUID request id becomes the bus request id the handler (and its span) sees.
    assert_eq!(echoed.request_id, made);
    s.rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test]
async fn a_full_in_flight_limit_sheds_at_once_and_recovers() {
    let s = setup(2, 2).await;
    let a = tokio::spawn(s.get("/slow").send());
    let b = tokio::spawn(s.get("/slow").send());
    eventually("two requests in flight", Duration::from_secs(5), || {
        s.in_flight() == 2
    })
    .await;
    let started = std::time::Instant::now();
    let shed = s
        .post("/echo")
        .json(&serde_json::json!({ "text": "c" }))
        .send()
        .await
        .unwrap();
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "shed at once"
    );
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_eq!(Setup::error_kind(shed).await, "overloaded");
    assert_eq!(a.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(b.await.unwrap().unwrap().status(), StatusCode::OK);
    // Capacity is back.
    let ok = s
        .post("/echo")
        .json(&serde_json::json!({ "text": "d" }))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let http = &s.rt.inspect().extras["http"];
    assert_eq!(http["shed"], 1);
    assert_eq!(http["in_flight"], 0);
    assert_eq!(http["max_in_flight"], 2);
    s.rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let s = setup(16, 1).await;
    let slow = tokio::spawn(s.get("/slow").send());
    eventually("the request in flight", Duration::from_secs(5), || {
        s.in_flight() == 1
    })
    .await;
    s.rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let resp = slow.await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<u64>().await.unwrap(), 300);
    // No longer listening.
    assert!(s.get("/slow").send().await.is_err());
}

#[tokio::test]
async fn the_inspector_and_metrics_routes_describe_the_system() {
    let s = setup(16, 1).await;
    s.post("/echo")
        .json(&serde_json::json!({ "text": "x" }))
        .send()
        .await
        .unwrap();
    let snap: serde_json::Value = s
        .get("/fluxor/inspect")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(snap["reactors"].as_array().unwrap().len(), 2);
    let deployments = snap["deployments"].as_array().unwrap();
    let service = deployments
        .iter()
        .find(|d| d["component"] == "Service")
        .unwrap();
    assert_eq!(service["state"], "Running");
    assert_eq!(service["instances"][0]["mailbox_capacity"], 1);
    assert_eq!(service["instances"][0]["handled"], 1);
    let topics = snap["bus"]["topics"].as_array().unwrap();
    assert!(
        topics
            .iter()
            .any(|t| t["topic"] == "svc.echo" && t["consumers"] == 1),
        "{topics:?}"
    );
    assert!(snap["workers"]["threads"].as_u64().unwrap() > 0);
    assert_eq!(snap["extras"]["http"]["max_in_flight"], 16);

    let metrics = s
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("# TYPE fluxor_messages_handled_total counter"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fluxor_messages_handled_total{component=\"Service\""),
        "{metrics}"
    );
    assert!(metrics.contains("fluxor_http_in_flight"), "{metrics}");
    s.rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn inspector_routes_are_off_by_default() {
    let rt = Fluxor::builder().reactors(1).build().unwrap();
    let (server, handle) = HttpServer::builder(Router::new().route("/", post(|| async { "ok" })))
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .build();
    rt.deploy(server, DeployOptions::new()).await.unwrap();
    let base = format!("http://{}", handle.local_addr().unwrap());
    let resp = reqwest::get(format!("{base}/fluxor/inspect"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn reuse_port_serves_one_port_from_every_instance() {
    let rt = Fluxor::builder().reactors(2).build().unwrap();
    let router = Router::new().route(
        "/where",
        get(|| async { std::thread::current().name().unwrap_or_default().to_owned() }),
    );
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));

    // Without the option a second instance cannot take the port, and says what to do.
    let (plain, _) = HttpServer::builder(router.clone()).bind(any_port).build();
    let err = rt
        .deploy(plain, DeployOptions::new().instances(2))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("reuse_port(true)"), "{err}");

    let (server, handle) = HttpServer::builder(router)
        .bind(any_port)
        .reuse_port(true)
        .build();
    rt.deploy(server, DeployOptions::new().instances(2))
        .await
        .unwrap();
    let url = format!("http://{}/where", handle.local_addr().unwrap());
    let mut threads = std::collections::BTreeSet::new();
    for _ in 0..64 {
        // A new connection each time: the kernel picks the listener per connection.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        threads.insert(client.get(&url).send().await.unwrap().text().await.unwrap());
    }
    assert_eq!(threads.len(), 2, "both reactors accepted: {threads:?}");
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
