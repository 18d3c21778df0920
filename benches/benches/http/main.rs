//! Run with: `cargo bench -p fluxor-benches --bench http` (`-- --quick`: a tenth of the
//! requests, one trial).
//!
//! Fluxor's HTTP adapter against plain axum, on loopback. Both serve `POST /add` with the JSON
//! body `{"by":1}` and answer the counter after adding `by`, as JSON:
//!
//! * **plain axum**: a handler that locks a `Mutex<u64>`, on a `current_thread` tokio runtime
//!   (one thread) and on a multi-threaded one with 2 workers;
//! * **Fluxor**: `fluxor::http::HttpServer` with the route `bus_request::<Add>("bench.add")`,
//!   which requests a counter component over the bus, on a runtime with 1 reactor and with 2
//!   reactors (both deployments placed by default, so the server and the counter end up on
//!   different reactors).
//!
//! The load comes from this process: 64 keep-alive HTTP/1.1 connections, one request
//! outstanding on each, driven from one `current_thread` runtime on the main thread (`wrk` is
//! not assumed to be installed). Each trial warms a server up with a tenth of the requests,
//! then times the rest; the table shows the median of the trials. Prints a Markdown section.

mod client;
mod servers;

use std::time::Duration;

use client::Client;

/// Connections the client keeps open to each server.
const CONNECTIONS: usize = 64;
/// Longest one timed run may take before the bench gives up.
const DEADLINE: Duration = Duration::from_secs(300);

/// The servers compared, in the order they are measured in each trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    AxumCurrentThread,
    FluxorOneReactor,
    AxumTwoWorkers,
    FluxorTwoReactors,
    FluxorEveryReactor,
}

impl Server {
    const ALL: [Server; 5] = [
        Server::AxumCurrentThread,
        Server::FluxorOneReactor,
        Server::AxumTwoWorkers,
        Server::FluxorTwoReactors,
        Server::FluxorEveryReactor,
    ];

    fn label(self) -> &'static str {
        match self {
            Server::AxumCurrentThread => "plain axum, `current_thread` runtime",
            Server::FluxorOneReactor => "Fluxor HttpServer → counter component, 1 reactor",
            Server::AxumTwoWorkers => "plain axum, multi-thread runtime, 2 workers",
            Server::FluxorTwoReactors => {
                "Fluxor HttpServer → counter component, 2 reactors (default placement)"
            }
            Server::FluxorEveryReactor => {
                "Fluxor HttpServer on both reactors (`reuse_port`, 2 instances) → one counter"
            }
        }
    }

    fn threads(self) -> usize {
        match self {
            Server::AxumCurrentThread | Server::FluxorOneReactor => 1,
            Server::AxumTwoWorkers | Server::FluxorTwoReactors | Server::FluxorEveryReactor => 2,
        }
    }

    /// The plain axum server with as many threads.
    fn baseline(self) -> Option<Server> {
        match self {
            Server::FluxorOneReactor => Some(Server::AxumCurrentThread),
            Server::FluxorTwoReactors | Server::FluxorEveryReactor => Some(Server::AxumTwoWorkers),
            _ => None,
        }
    }
}

/// Starts `server`, warms it up, times `requests` requests; requests/s.
async fn trial(server: Server, requests: u64) -> Result<f64, Box<dyn std::error::Error>> {
    let running = match server {
        Server::AxumCurrentThread => servers::Running::axum(false)?,
        Server::AxumTwoWorkers => servers::Running::axum(true)?,
        Server::FluxorOneReactor => servers::Running::fluxor(1, false).await?,
        Server::FluxorTwoReactors => servers::Running::fluxor(2, false).await?,
        Server::FluxorEveryReactor => servers::Running::fluxor(2, true).await?,
    };
    let mut client = Client::connect(running.addr(), CONNECTIONS).await?;
    let warmup = client.run(requests / 10, DEADLINE).await?;
    let timed = client.run(requests, DEADLINE).await?;
    drop(client);
    running.stop().await?;
    let served = warmup.answered + timed.answered;
    if timed.answered != requests || timed.max_counter != served {
        return Err(format!(
            "{}: {} of {requests} answered, counter at {} after {served} requests",
            server.label(),
            timed.answered,
            timed.max_counter
        )
        .into());
    }
    Ok(requests as f64 / timed.elapsed.as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let (requests, trials) = if quick { (20_000, 1) } else { (200_000, 3) };
    // `--only 2` (or `--only 0,2`): the servers at those places in the table, for profiling.
    let only: Option<Vec<usize>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').filter_map(|n| n.parse().ok()).collect());
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); Server::ALL.len()];
    for t in 1..=trials {
        for (i, server) in Server::ALL.into_iter().enumerate() {
            if only.as_ref().is_some_and(|only| !only.contains(&i)) {
                rates[i].push(f64::NAN);
                continue;
            }
            let rate = client.block_on(trial(server, requests))?;
            eprintln!("trial {t}: {} {rate:.0} requests/s", server.label());
            rates[i].push(rate);
        }
    }
    let medians: Vec<f64> = rates.into_iter().map(median).collect();
    let rate_of = |s: Server| medians[Server::ALL.iter().position(|x| *x == s).unwrap_or(0)];
    println!("## HTTP: Fluxor's adapter vs plain axum\n");
    println!(
        "`cargo bench -p fluxor-benches --bench http`{}: `POST /add` with `{{\"by\":1}}`, \
         {requests} timed requests after {} of warm-up, over {CONNECTIONS} keep-alive \
         connections from a one-thread in-process client, 127.0.0.1; median of {trials} \
         trial(s). {} cores.\n",
        if quick { " -- --quick" } else { "" },
        requests / 10,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    println!("| server | server threads | requests/s | vs plain axum, same threads |");
    println!("|---|---:|---:|---:|");
    for server in Server::ALL {
        let rate = rate_of(server);
        let ratio = server
            .baseline()
            .map_or("—".to_owned(), |b| format!("{:.2}", rate / rate_of(b)));
        println!(
            "| {} | {} | {rate:.0} | {ratio} |",
            server.label(),
            server.threads()
        );
    }
    Ok(())
}
