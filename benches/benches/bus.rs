//! Run with: `cargo bench -p fluxor-benches --bench bus`
//!
//! Request/reply round trips through the event bus, with the requester on the same reactor as
//! the responder and on another one, plus one-way `send` throughput. The driver is itself a
//! component, so the figures include the reactor scheduling a user's component sees.

use std::time::{Duration, Instant};

use fluxor::{Bindings, Component, Context, DeployOptions, Envelope, Fluxor, Message, Outcome};

struct Echo(u64);
impl Message for Echo {
    type Reply = u64;
}

struct Tell;
impl Message for Tell {
    type Reply = ();
}

/// Runs `n` requests (or sends, when `tell`) against the echo component and answers the
/// elapsed nanoseconds.
struct Run {
    n: u64,
    tell: bool,
}
impl Message for Run {
    type Reply = u64;
}

#[derive(Default)]
struct Echoer {
    told: u64,
}

enum EchoMsg {
    Echo(Envelope<Echo>),
    Tell(Envelope<Tell>),
}

impl Component for Echoer {
    type Msg = EchoMsg;
    type Config = ();

    fn bindings(b: &mut Bindings<'_, Self>) {
        b.bind("bench.echo", EchoMsg::Echo);
        b.bind("bench.tell", EchoMsg::Tell);
    }

    async fn handle(&mut self, msg: EchoMsg, ctx: &mut Context<Self>) -> Outcome {
        match msg {
            EchoMsg::Echo(env) => {
                let (Echo(x), r) = ctx.accept(env);
                r.run(async move { x }).await
            }
            EchoMsg::Tell(env) => {
                let (Tell, r) = ctx.accept(env);
                self.told += 1;
                r.run(async {}).await
            }
        }
    }
}

struct Driver;

enum DriverMsg {
    Run(Envelope<Run>),
}

impl Component for Driver {
    type Msg = DriverMsg;
    type Config = ();

    fn bindings(b: &mut Bindings<'_, Self>) {
        b.bind("bench.run", DriverMsg::Run);
    }

    async fn handle(&mut self, msg: DriverMsg, ctx: &mut Context<Self>) -> Outcome {
        let DriverMsg::Run(env) = msg;
        let (Run { n, tell }, r) = ctx.accept(env);
        let ctx = &*ctx;
        r.run(async move {
            let start = Instant::now();
            for i in 0..n {
                if tell {
                    let mut msg = Tell;
                    // Wait for room rather than fail: the bench measures throughput.
                    while let Err(e) = ctx.send("bench.tell", msg) {
                        msg = e.into_inner();
                        tokio::task::yield_now().await;
                    }
                } else {
                    ctx.request("bench.echo", Echo(i)).await?;
                }
            }
            if tell {
                // The last tell is processed once a request behind it (FIFO) is answered.
                ctx.request("bench.echo", Echo(0)).await?;
            }
            Ok::<_, fluxor::BusError>(start.elapsed().as_nanos() as u64)
        })
        .await
    }
}

async fn measure(
    same_reactor: bool,
    tell: bool,
    n: u64,
) -> Result<f64, Box<dyn std::error::Error>> {
    let rt = Fluxor::builder().reactors(2).build()?;
    rt.deploy(Echoer::default, DeployOptions::new().reactor(0))
        .await?;
    let driver_reactor = if same_reactor { 0 } else { 1 };
    rt.deploy(|| Driver, DeployOptions::new().reactor(driver_reactor))
        .await?;
    // Warm up, then measure.
    rt.bus()
        .request("bench.run", Run { n: n / 10, tell })
        .await?;
    let ns = rt.bus().request("bench.run", Run { n, tell }).await?;
    rt.shutdown(Duration::from_secs(5)).await?;
    Ok(ns as f64 / n as f64)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("{:<34} {:>12}", "workload", "ns/op");
    for (label, same, tell, n) in [
        ("request, same reactor", true, false, 200_000),
        ("request, cross reactor", false, false, 100_000),
        ("send, same reactor", true, true, 1_000_000),
        ("send, cross reactor", false, true, 1_000_000),
    ] {
        let ns = measure(same, tell, n).await?;
        println!("{label:<34} {ns:>12.1}");
    }
    Ok(())
}
