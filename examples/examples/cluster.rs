//! The orders service split over two processes, joined by a NATS server.
//!
//! * the **front** node serves HTTP (`POST /orders`) and runs the `Orders` component;
//! * the **inventory** node runs the `Inventory` component.
//!
//! `Orders` reserves stock with a plain `ctx.request(..)`: the request finds no local consumer,
//! so the cluster bus carries it to the inventory node and brings the reply (or the error)
//! back.
//!
//! Run a NATS server (`nats-server -p 4222`), then, in two terminals:
//!
//! ```sh
//! cargo run -p fluxor-examples --example cluster -- inventory nats://127.0.0.1:4222
//! cargo run -p fluxor-examples --example cluster -- front nats://127.0.0.1:4222
//! curl -s -XPOST localhost:8081/orders -H 'content-type: application/json' \
//!      -d '{"item":"tea","qty":2}'
//! ```
//!
//! `-- --smoke` starts its own `nats-server` on a free port, runs both nodes in this process
//! (each with its own connection), places orders over HTTP, checks the answers and exits.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use fluxor::cluster::NatsCluster;
use fluxor::http::{bus_request, HttpServer};
use fluxor::prelude::*;
use serde::{Deserialize, Serialize};

/// Reserves stock; answers what is left. Crosses nodes under a versioned wire name.
#[derive(Message, Serialize, Deserialize, Debug)]
#[message(reply = Result<u32, String>, wire = "shop.stock.reserve.v1")]
struct Reserve {
    item: String,
    qty: u32,
}

const RESERVE: Address<Reserve> = Address::new("stock.reserve");

/// An order, as posted to `/orders`. Stays on the front node.
#[derive(Message, Deserialize, Debug)]
#[message(reply = Placed)]
struct CreateOrder {
    item: String,
    qty: u32,
}

/// The answer to a placed order.
#[derive(Serialize, Deserialize, Debug)]
struct Placed {
    order: Option<u64>,
    left: u32,
    refused: Option<String>,
}

#[component]
#[derive(Default)]
struct Orders {
    next: u64,
}

#[component]
impl Orders {
    #[handler("orders.create")]
    async fn create(
        &mut self,
        msg: CreateOrder,
        ctx: &mut Context<Self>,
    ) -> Result<Placed, BusError> {
        let reserve = Reserve {
            item: msg.item,
            qty: msg.qty,
        };
        Ok(match ctx.request(RESERVE, reserve).await? {
            Ok(left) => {
                self.next += 1;
                Placed {
                    order: Some(self.next),
                    left,
                    refused: None,
                }
            }
            Err(why) => Placed {
                order: None,
                left: 0,
                refused: Some(why),
            },
        })
    }
}

#[component]
struct Inventory {
    stock: std::collections::HashMap<String, u32>,
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory {
            stock: [("tea".to_owned(), 10), ("coffee".to_owned(), 3)].into(),
        }
    }
}

#[component]
impl Inventory {
    #[handler("stock.reserve", remote)]
    fn reserve(&mut self, msg: Reserve) -> Result<u32, String> {
        let left = self.stock.get_mut(&msg.item).ok_or("unknown item")?;
        if *left < msg.qty {
            return Err(format!("only {left} {} left", msg.item));
        }
        *left -= msg.qty;
        Ok(*left)
    }
}

fn node(url: &str) -> Result<Fluxor, fluxor::BuildError> {
    Fluxor::builder()
        .cluster(NatsCluster::connect(url).name("shop"))
        .build()
}

/// The front node: HTTP and orders. Returns the runtime and the HTTP address.
async fn front(url: &str, port: u16) -> Result<(Fluxor, SocketAddr), Box<dyn std::error::Error>> {
    let rt = node(url)?;
    rt.deploy(Orders::default, DeployOptions::new()).await?;
    let router = Router::new().route("/orders", bus_request::<CreateOrder>("orders.create"));
    let (server, handle) = HttpServer::builder(router)
        .bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .health(true)
        .build();
    rt.deploy(server, DeployOptions::new()).await?;
    let addr = handle.local_addr().ok_or("the HTTP server did not bind")?;
    Ok((rt, addr))
}

async fn inventory(url: &str) -> Result<Fluxor, Box<dyn std::error::Error>> {
    let rt = node(url)?;
    rt.deploy(Inventory::default, DeployOptions::new()).await?;
    Ok(rt)
}

async fn until_ready(rt: &Fluxor) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health = rt.ready().await;
        if health.ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("not ready: {health:?}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts `nats-server` on a free loopback port.
fn nats_server() -> Result<(Child, String), Box<dyn std::error::Error>> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let binary = ["nats-server", "/usr/sbin/nats-server"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok()
        })
        .ok_or("nats-server is not installed: `apt-get install -y nats-server`")?;
    let child = Command::new(binary)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("nats-server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok((child, format!("nats://127.0.0.1:{port}")))
}

async fn order(
    addr: SocketAddr,
    item: &str,
    qty: u32,
) -> Result<Placed, Box<dyn std::error::Error>> {
    let body = serde_json::json!({ "item": item, "qty": qty }).to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "POST /orders HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no HTTP body")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("unexpected answer: {head}\n{body}").into());
    }
    Ok(serde_json::from_str(body)?)
}

async fn smoke() -> Result<(), Box<dyn std::error::Error>> {
    let (mut server, url) = nats_server()?;
    let result = async {
        let stock = inventory(&url).await?;
        let (front, addr) = front(&url, 0).await?;
        until_ready(&stock).await?;
        until_ready(&front).await?;
        let placed = order(addr, "tea", 4).await?;
        assert_eq!((placed.order, placed.left), (Some(1), 6), "{placed:?}");
        let refused = order(addr, "coffee", 5).await?;
        assert_eq!(refused.refused.as_deref(), Some("only 3 coffee left"));
        let stats = front.cluster_stats().ok_or("no cluster")?;
        assert!(stats.messages_out >= 2, "{stats:?}");
        println!("smoke: two orders through two nodes: {placed:?}, {refused:?}");
        front.shutdown(Duration::from_secs(5)).await?;
        stock.shutdown(Duration::from_secs(5)).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    let _ = server.kill();
    let _ = server.wait();
    result
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args.get(1).map_or("nats://127.0.0.1:4222", String::as_str);
    match args.first().map(String::as_str) {
        Some("--smoke") => smoke().await,
        Some("front") => {
            let (rt, addr) = front(url, 8081).await?;
            println!("front node: POST http://{addr}/orders (Ctrl-C stops)");
            rt.run().await?;
            Ok(())
        }
        Some("inventory") => {
            let rt = inventory(url).await?;
            println!("inventory node connected to {url} (Ctrl-C stops)");
            rt.run().await?;
            Ok(())
        }
        _ => Err("usage: cluster (front|inventory) [nats-url] | --smoke".into()),
    }
}
