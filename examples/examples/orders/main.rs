//! Run with: `cargo run -p fluxor-examples --example orders`
//!
//! An order service: an HTTP front on 127.0.0.1:8080, three `Orders` instances that take
//! orders, an `Inventory` that reserves stock (and gives back reservations nobody confirmed,
//! on a periodic timer), and a `Ledger` worker component that writes every order to a file
//! with blocking I/O. Receipts are signed by a deliberately slow hash on the worker pool.
//! `POST /chaos` makes an `Orders` instance panic: the caller gets a 500, the supervisor
//! restarts the instance, and `/fluxor/inspect` shows the restart. `PUT /config/inventory`
//! changes the inventory's config while it runs; a request that carries a W3C `traceparent`
//! has its trace printed as a tree (HTTP → Orders → Inventory, Ledger).
//!
//! Try it (the README shows what these print):
//!
//! ```text
//! curl -s -XPOST localhost:8080/orders -H 'content-type: application/json' \
//!      -d '{"item":"widget","qty":2,"customer":"ada"}'
//! curl -s localhost:8080/orders/1
//! curl -s localhost:8080/stock
//! curl -s -XPOST localhost:8080/chaos
//! curl -s -XPUT localhost:8080/config/inventory -H 'content-type: application/json' \
//!      -d '{"stock":{"widget":10,"gadget":3},"hold_ms":5000,"max_per_order":1}'
//! curl -s -XPOST localhost:8080/orders -H 'content-type: application/json' \
//!      -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
//!      -d '{"item":"widget","qty":1,"customer":"ada"}'
//! curl -s localhost:8080/fluxor/inspect
//! ```
//!
//! Ctrl-C stops it cleanly. `-- --smoke` instead serves on a free port, runs those requests
//! itself, prints the answers and exits.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use fluxor::http::{Bus, HttpServer};
use fluxor::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

mod ops;

// ----- Messages -----

/// Place an order. The reply is the business outcome; bus failures are separate.
#[derive(Message, Debug, Clone, Deserialize)]
#[message(reply = Result<Order, Rejected>)]
struct CreateOrder {
    item: String,
    qty: u32,
    customer: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    item: String,
    qty: u32,
    customer: String,
    receipt: String,
}

/// Why an order was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rejected {
    reason: String,
}

#[derive(Message, Debug)]
#[message(reply = Result<(), Rejected>)]
struct Reserve {
    order: u64,
    item: String,
    qty: u32,
}

#[derive(Message, Debug)]
struct Confirm {
    order: u64,
}

#[derive(Message, Debug)]
#[message(reply = HashMap<String, u32>)]
struct StockLevels;

#[derive(Message, Debug, Clone)]
struct Sweep;

#[derive(Message, Debug)]
#[message(reply = std::io::Result<()>)]
struct Append(Order);

#[derive(Message, Debug)]
#[message(reply = Option<Order>)]
struct GetOrder(u64);

#[derive(Message, Debug)]
struct Crash;

// ----- Inventory: one instance, owns the stock -----

#[derive(Deserialize)]
struct InventoryConfig {
    stock: HashMap<String, u32>,
    /// Reservations not confirmed within this many ms go back to stock.
    hold_ms: u64,
    /// The most of one item an order may take (no limit when absent).
    #[serde(default)]
    max_per_order: Option<u32>,
}

#[component(config = InventoryConfig)]
#[derive(Default)]
struct Inventory {
    stock: HashMap<String, u32>,
    held: HashMap<u64, (String, u32, Instant)>,
}

#[component]
impl Inventory {
    #[on_start]
    fn open(&mut self, ctx: &mut Context<Self>) {
        self.stock = ctx.config().stock.clone();
        ctx.set_periodic(Duration::from_millis(250), Sweep);
    }

    /// Runs when `PUT /config/inventory` changed the config, before the next message.
    #[on_config]
    fn adopt(&mut self, ctx: &mut Context<Self>) {
        let config = ctx.config();
        tracing::info!(
            hold_ms = config.hold_ms,
            max_per_order = ?config.max_per_order,
            "inventory config changed"
        );
    }

    #[handler("inventory.reserve")]
    fn reserve(&mut self, r: Reserve, ctx: &mut Context<Self>) -> Result<(), Rejected> {
        if let Some(max) = ctx.config().max_per_order.filter(|max| r.qty > *max) {
            return Err(Rejected {
                reason: format!("at most {max} of an item per order"),
            });
        }
        let left = self.stock.get_mut(&r.item).ok_or_else(|| Rejected {
            reason: format!("we do not sell `{}`", r.item),
        })?;
        if *left < r.qty {
            return Err(Rejected {
                reason: format!("only {left} `{}` left", r.item),
            });
        }
        *left -= r.qty;
        self.held.insert(r.order, (r.item, r.qty, Instant::now()));
        Ok(())
    }

    #[handler("inventory.confirm")]
    fn confirm(&mut self, Confirm { order }: Confirm) {
        self.held.remove(&order);
    }

    #[handler]
    fn sweep(&mut self, _: Sweep, ctx: &mut Context<Self>) {
        let hold = Duration::from_millis(ctx.config().hold_ms);
        let expired: Vec<u64> = self
            .held
            .iter()
            .filter(|(_, (_, _, at))| at.elapsed() >= hold)
            .map(|(order, _)| *order)
            .collect();
        for order in expired {
            if let Some((item, qty, _)) = self.held.remove(&order) {
                *self.stock.entry(item).or_default() += qty;
                tracing::info!(order, "reservation expired; stock returned");
            }
        }
    }

    #[handler("inventory.stock")]
    fn levels(&mut self, _: StockLevels) -> HashMap<String, u32> {
        self.stock.clone()
    }
}

// ----- Orders: three instances, stateless apart from an id counter shared by the factory -----

// Orders needs the ledger and the inventory running: a boot plan starts it after them.
#[component(after = [Ledger, Inventory])]
struct Orders {
    next_id: Arc<AtomicU64>,
}

/// Signs a receipt: a deliberately slow hash, so it runs on the worker pool.
fn sign(order: &Order) -> String {
    let mut h = 0u64;
    for round in 0..100_000u32 {
        let mut hasher = DefaultHasher::new();
        (h, round, order.id, &order.item, order.qty, &order.customer).hash(&mut hasher);
        h = hasher.finish();
    }
    format!("{h:016x}")
}

#[component]
impl Orders {
    #[handler("orders.create")]
    async fn create(
        &mut self,
        msg: CreateOrder,
        ctx: &mut Context<Self>,
    ) -> Result<Result<Order, Rejected>, BusError> {
        if msg.qty == 0 {
            return Ok(Err(Rejected {
                reason: "quantity must be at least 1".into(),
            }));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let reserve = Reserve {
            order: id,
            item: msg.item.clone(),
            qty: msg.qty,
        };
        if let Err(rejected) = ctx.request("inventory.reserve", reserve).await? {
            return Ok(Err(rejected));
        }
        let mut order = Order {
            id,
            item: msg.item,
            qty: msg.qty,
            customer: msg.customer,
            receipt: String::new(),
        };
        let unsigned = order.clone();
        order.receipt = ctx
            .execute_blocking(move || sign(&unsigned))
            .await
            .map_err(|e| BusError::RecipientFailed {
                topic: "orders.create".into(),
                reason: e.to_string(),
            })?;
        let written = ctx.request("ledger.append", Append(order.clone())).await?;
        if let Err(e) = written {
            return Ok(Err(Rejected {
                reason: format!("the ledger could not record the order: {e}"),
            }));
        }
        ctx.send("inventory.confirm", Confirm { order: id })
            .map_err(BusError::from)?;
        Ok(Ok(order))
    }

    #[handler("orders.crash")]
    fn crash(&mut self, _: Crash) {
        panic!("chaos requested");
    }
}

// ----- Ledger: a worker component, so its blocking file I/O never holds a reactor -----

#[derive(Deserialize)]
struct LedgerConfig {
    path: std::path::PathBuf,
}

#[component(worker, config = LedgerConfig)]
#[derive(Default)]
struct Ledger {
    file: Option<std::fs::File>,
    orders: HashMap<u64, Order>,
}

#[component]
impl Ledger {
    #[on_start]
    fn open(&mut self, ctx: &mut Context<Self>) -> std::io::Result<()> {
        self.file = Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&ctx.config().path)?,
        );
        Ok(())
    }

    #[handler("ledger.append")]
    fn append(&mut self, Append(order): Append) -> std::io::Result<()> {
        if let Some(file) = &mut self.file {
            let line = serde_json::to_string(&order).map_err(std::io::Error::other)?;
            writeln!(file, "{line}")?;
            file.sync_data()?;
        }
        self.orders.insert(order.id, order);
        Ok(())
    }

    #[handler("ledger.get")]
    fn get(&mut self, GetOrder(id): GetOrder) -> Option<Order> {
        self.orders.get(&id).cloned()
    }
}

// ----- The HTTP front -----

async fn create_order(
    bus: Bus,
    Json(order): Json<CreateOrder>,
) -> Result<(StatusCode, Json<serde_json::Value>), BusError> {
    Ok(match bus.request("orders.create", order).await? {
        Ok(order) => (StatusCode::CREATED, Json(serde_json::json!(order))),
        Err(rejected) => (StatusCode::CONFLICT, Json(serde_json::json!(rejected))),
    })
}

async fn get_order(
    bus: Bus,
    Path(id): Path<u64>,
) -> Result<(StatusCode, Json<serde_json::Value>), BusError> {
    Ok(match bus.request("ledger.get", GetOrder(id)).await? {
        Some(order) => (StatusCode::OK, Json(serde_json::json!(order))),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "not_found", "message": format!("no order {id}") })),
        ),
    })
}

async fn stock(bus: Bus) -> Result<Json<HashMap<String, u32>>, BusError> {
    Ok(Json(bus.request("inventory.stock", StockLevels).await?))
}

async fn chaos(bus: Bus) -> Result<&'static str, BusError> {
    bus.request("orders.crash", Crash).await?;
    Ok("nothing happened")
}

fn router(admin: ops::Admin) -> Router {
    Router::new()
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(get_order))
        .route("/stock", get(stock))
        .route("/chaos", post(chaos))
        .route("/config/inventory", put(ops::put_inventory_config))
        .layer(Extension(admin))
}

/// Deploys the whole service in dependency order (ledger, inventory, orders, then the HTTP
/// front); returns the HTTP server's handle.
async fn deploy_service(
    runtime: &Fluxor,
    addr: SocketAddr,
    ledger: std::path::PathBuf,
) -> Result<fluxor::http::HttpHandle, Box<dyn std::error::Error>> {
    let next_id = Arc::new(AtomicU64::new(1));
    let admin = ops::Admin::default();
    let (server, handle) = HttpServer::builder(router(admin.clone()))
        .bind(addr)
        .max_in_flight(256)
        .inspector(true)
        .metrics(true)
        .health(true)
        .dashboard(true)
        .build();
    let started = runtime
        .boot()
        .deploy(
            "ledger",
            Ledger::default,
            DeployOptions::new().config(serde_json::json!({ "path": ledger })),
        )
        .deploy(
            "inventory",
            Inventory::default,
            DeployOptions::new().config(serde_json::json!({
                "stock": { "widget": 10, "gadget": 3 },
                "hold_ms": 5_000,
            })),
        )
        .after(["ledger"])
        // `Orders` declares what it starts after (`#[component(after = ..)]`).
        .deploy(
            "orders",
            move || Orders {
                next_id: next_id.clone(),
            },
            DeployOptions::new().instances(3),
        )
        .deploy("http", server, DeployOptions::new())
        .after(["orders"])
        .start()
        .await?;
    admin.set(runtime.downgrade(), started["inventory"]);
    Ok(handle)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let traces = ops::init_tracing();
    let smoke = std::env::args().any(|a| a == "--smoke");
    let runtime = Fluxor::builder().build()?;
    let ledger = std::env::temp_dir().join(format!("fluxor-orders-{}.jsonl", std::process::id()));
    let addr = if smoke {
        SocketAddr::from(([127, 0, 0, 1], 0))
    } else {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    };
    let http = deploy_service(&runtime, addr, ledger.clone()).await?;
    let addr = http.local_addr().ok_or("the server did not bind")?;
    println!(
        "orders service on http://{addr} (ledger: {})",
        ledger.display()
    );

    let result = if smoke {
        let result = smoke_test(addr, &traces).await;
        runtime.shutdown(Duration::from_secs(5)).await?;
        result
    } else {
        println!("Ctrl-C to stop");
        runtime.run().await?;
        Ok(())
    };
    let _ = std::fs::remove_file(&ledger);
    println!("stopped cleanly");
    result
}

/// The README's `curl` session, run against the live server.
async fn smoke_test(
    addr: SocketAddr,
    traces: &ops::PrintTraces,
) -> Result<(), Box<dyn std::error::Error>> {
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let ready = client.get(format!("{base}/ready")).send().await?;
    let status = ready.status();
    println!("GET /ready -> {} {}", status.as_u16(), ready.text().await?);
    if !status.is_success() {
        return Err("the service is not ready after its boot".into());
    }
    for (method, path, body) in [
        (
            "POST",
            "/orders",
            Some(r#"{"item":"widget","qty":2,"customer":"ada"}"#),
        ),
        ("GET", "/orders/1", None),
        (
            "POST",
            "/orders",
            Some(r#"{"item":"gadget","qty":5,"customer":"grace"}"#),
        ),
        ("GET", "/stock", None),
        ("POST", "/chaos", None),
        (
            "POST",
            "/orders",
            Some(r#"{"item":"gadget","qty":1,"customer":"edsger"}"#),
        ),
    ] {
        let url = format!("{base}{path}");
        let request = match body {
            Some(body) => client
                .post(url)
                .header("content-type", "application/json")
                .body(body),
            None if method == "POST" => client.post(url),
            None => client.get(url),
        };
        let response = request.send().await?;
        let status = response.status().as_u16();
        println!("{method} {path} -> {status} {}", response.text().await?);
    }
    let snapshot: serde_json::Value = client
        .get(format!("{base}/fluxor/inspect"))
        .send()
        .await?
        .json()
        .await?;
    let restarts: u64 = snapshot["deployments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["component"] == "Orders")
        .filter_map(|d| d["restarts"].as_u64())
        .sum();
    println!("GET /fluxor/inspect -> Orders restarts: {restarts}");
    if restarts != 1 {
        return Err(format!("expected one restart after /chaos, saw {restarts}").into());
    }
    live_config(&client, &base).await?;
    traced_order(&client, &base, traces).await
}

/// Limits orders to one item each through `PUT /config/inventory`, sees a larger order
/// refused, and a config that does not fit refused without changing anything.
async fn live_config(
    client: &reqwest::Client,
    base: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let config = |body: serde_json::Value| {
        client
            .put(format!("{base}/config/inventory"))
            .json(&body)
            .send()
    };
    let limit = serde_json::json!({
        "stock": { "widget": 10, "gadget": 3 }, "hold_ms": 5_000, "max_per_order": 1
    });
    let changed = config(limit).await?.status().as_u16();
    println!("PUT /config/inventory (max_per_order 1) -> {changed}");
    let bad = config(serde_json::json!({ "hold_ms": "soon" })).await?;
    let bad_status = bad.status().as_u16();
    println!(
        "PUT /config/inventory (not a config) -> {bad_status} {}",
        bad.text().await?
    );
    let order = client
        .post(format!("{base}/orders"))
        .json(&serde_json::json!({ "item": "widget", "qty": 2, "customer": "barbara" }))
        .send()
        .await?;
    let (status, body) = (order.status().as_u16(), order.text().await?);
    println!("POST /orders (2 widgets) -> {status} {body}");
    if changed != 204 || bad_status != 400 || status != 409 || !body.contains("at most 1") {
        return Err("the live config change did not apply as expected".into());
    }
    Ok(())
}

/// An order with a `traceparent`: its trace is printed, and spans HTTP → Orders → Inventory.
async fn traced_order(
    client: &reqwest::Client,
    base: &str,
    traces: &ops::PrintTraces,
) -> Result<(), Box<dyn std::error::Error>> {
    let response = client
        .post(format!("{base}/orders"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .json(&serde_json::json!({ "item": "widget", "qty": 1, "customer": "alan" }))
        .send()
        .await?;
    println!("POST /orders (traced) -> {}", response.status().as_u16());
    let deadline = Instant::now() + Duration::from_secs(5);
    while traces.last().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let tree = traces.last();
    let nested = ["    fluxor.handle Orders", "      fluxor.handle Inventory"]
        .iter()
        .all(|line| tree.contains(line));
    if !tree.starts_with("trace 4bf92f3577b34da6a3ce929d0e0e4736") || !nested {
        return Err(format!("the order's trace is not whole:\n{tree}").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluxor::testing::TestRuntime;
    use fluxor::{LifecycleEvent, LifecycleKind};

    async fn service(rt: &TestRuntime, name: &str) -> std::path::PathBuf {
        let ledger = std::env::temp_dir().join(format!(
            "fluxor-orders-test-{name}-{}.jsonl",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&ledger);
        rt.deploy_with(
            Inventory::default,
            DeployOptions::new().config(serde_json::json!({
                "stock": { "widget": 10 },
                "hold_ms": 5_000,
            })),
        )
        .await;
        rt.deploy_with(
            Ledger::default,
            DeployOptions::new().config(serde_json::json!({ "path": ledger })),
        )
        .await;
        let next_id = Arc::new(AtomicU64::new(1));
        rt.deploy_with(
            move || Orders {
                next_id: next_id.clone(),
            },
            DeployOptions::new().instances(3),
        )
        .await;
        ledger
    }

    fn order(qty: u32) -> CreateOrder {
        CreateOrder {
            item: "widget".into(),
            qty,
            customer: "ada".into(),
        }
    }

    async fn stock(rt: &TestRuntime) -> u32 {
        rt.request("inventory.stock", StockLevels).await.unwrap()["widget"]
    }

    #[fluxor::test]
    async fn an_order_reserves_signs_and_records(rt: TestRuntime) {
        let ledger = service(&rt, "create").await;
        let created = rt
            .request("orders.create", order(4))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((created.id, created.qty), (1, 4));
        assert_eq!(
            created.receipt,
            sign(&Order {
                receipt: String::new(),
                ..created.clone()
            })
        );
        assert_eq!(stock(&rt).await, 6);
        assert_eq!(
            rt.request("ledger.get", GetOrder(1)).await.unwrap(),
            Some(created)
        );
        let written = std::fs::read_to_string(&ledger).unwrap();
        assert_eq!(written.lines().count(), 1);
        std::fs::remove_file(ledger).unwrap();
    }

    #[fluxor::test]
    async fn orders_beyond_the_stock_are_rejected(rt: TestRuntime) {
        let ledger = service(&rt, "reject").await;
        let rejected = rt
            .request("orders.create", order(11))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(rejected.reason, "only 10 `widget` left");
        let rejected = rt
            .request("orders.create", order(0))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(rejected.reason, "quantity must be at least 1");
        assert_eq!(stock(&rt).await, 10);
        let _ = std::fs::remove_file(ledger);
    }

    #[fluxor::test]
    async fn unconfirmed_reservations_go_back_to_stock(rt: TestRuntime) {
        let ledger = service(&rt, "expire").await;
        let reserve = Reserve {
            order: 99,
            item: "widget".into(),
            qty: 3,
        };
        rt.request("inventory.reserve", reserve)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stock(&rt).await, 7);
        // Held for 5 s; the sweep runs every 250 ms of virtual time.
        rt.advance(Duration::from_millis(4_750)).await;
        assert_eq!(stock(&rt).await, 7);
        rt.advance(Duration::from_millis(250)).await;
        assert_eq!(stock(&rt).await, 10);
        let _ = std::fs::remove_file(ledger);
    }

    #[fluxor::test(allow_crashes)]
    async fn a_crashed_orders_instance_is_restarted(rt: TestRuntime) {
        let events = rt.probe::<LifecycleEvent>("fluxor.lifecycle.>").await;
        let ledger = service(&rt, "crash").await;
        assert!(matches!(
            rt.request("orders.crash", Crash).await,
            Err(BusError::RecipientFailed { .. })
        ));
        rt.advance(Duration::from_millis(100)).await;
        let restarted = events
            .expect_matching(Duration::from_secs(1), "an Orders restart", |e| {
                e.kind == LifecycleKind::Restarted && e.component == "Orders"
            })
            .await;
        assert_eq!(restarted.restarts, 1);
        // Still taking orders, on every instance.
        for _ in 0..3 {
            rt.request("orders.create", order(1))
                .await
                .unwrap()
                .unwrap();
        }
        let _ = std::fs::remove_file(ledger);
    }
}
