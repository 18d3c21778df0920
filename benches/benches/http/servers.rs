//! The servers under load: plain axum on its own runtime, and Fluxor's HTTP adapter.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use fluxor::http::{bus_request, HttpServer};
use fluxor::prelude::*;
use tokio::sync::oneshot;

/// The request body of `POST /add`; for Fluxor, also the message to the counter.
#[derive(Message, serde::Deserialize)]
#[message(reply = u64)]
struct Add {
    by: u64,
}

/// The counter behind Fluxor's route.
#[component]
#[derive(Default)]
struct Counter {
    value: u64,
}

#[component]
impl Counter {
    #[handler("bench.add")]
    fn add(&mut self, Add { by }: Add) -> u64 {
        self.value += by;
        self.value
    }
}

/// Plain axum's handler: the counter behind a mutex.
async fn add(State(counter): State<Arc<Mutex<u64>>>, Json(Add { by }): Json<Add>) -> Json<u64> {
    let mut value = counter.lock().unwrap_or_else(|e| e.into_inner());
    *value += by;
    Json(*value)
}

/// A server listening on loopback until stopped.
pub(crate) enum Running {
    Axum {
        addr: SocketAddr,
        stop: oneshot::Sender<()>,
        thread: std::thread::JoinHandle<std::io::Result<()>>,
    },
    Fluxor {
        addr: SocketAddr,
        runtime: fluxor::Fluxor,
    },
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

impl Running {
    /// Plain axum on a thread of its own: a `current_thread` runtime, or (`two_workers`) a
    /// multi-threaded one with 2 workers, where the accept loop is a task on the workers.
    pub(crate) fn axum(two_workers: bool) -> Res<Self> {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = if two_workers {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?
            } else {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
            };
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let _ = addr_tx.send(listener.local_addr()?);
                let app = Router::new()
                    .route("/add", post(add))
                    .with_state(Arc::new(Mutex::new(0u64)));
                let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                    let _ = stopped.await;
                });
                tokio::spawn(async move { serve.await })
                    .await
                    .map_err(std::io::Error::other)?
            })
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "plain axum did not start")?;
        Ok(Running::Axum { addr, stop, thread })
    }

    /// Fluxor with `reactors` reactors: the counter, then the HTTP server, both placed by
    /// default (with 2 reactors they land on different ones); with `every_reactor`, one
    /// server instance per reactor on one port (`reuse_port`).
    pub(crate) async fn fluxor(reactors: usize, every_reactor: bool) -> Res<Self> {
        let runtime = fluxor::Fluxor::builder().reactors(reactors).build()?;
        runtime
            .deploy(Counter::default, DeployOptions::new())
            .await?;
        let router = Router::new().route("/add", bus_request::<Add>("bench.add"));
        let (server, handle) = HttpServer::builder(router)
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .reuse_port(every_reactor)
            .build();
        let instances = if every_reactor { reactors } else { 1 };
        runtime
            .deploy(server, DeployOptions::new().instances(instances))
            .await?;
        let addr = handle
            .local_addr()
            .ok_or("the HTTP server has no address")?;
        Ok(Running::Fluxor { addr, runtime })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        match self {
            Running::Axum { addr, .. } | Running::Fluxor { addr, .. } => *addr,
        }
    }

    pub(crate) async fn stop(self) -> Res<()> {
        match self {
            Running::Axum { stop, thread, .. } => {
                let _ = stop.send(());
                thread.join().map_err(|_| "the axum thread panicked")??;
            }
            Running::Fluxor { runtime, .. } => {
                runtime.shutdown(Duration::from_secs(10)).await?;
            }
        }
        Ok(())
    }
}
