//! Run with: `cargo run -p fluxor-examples --example ping_pong`
//!
//! Two components on two reactors play ping-pong over the event bus: `Player` asks the
//! `Table` for a return on every ping, and the table keeps score. The program deploys both,
//! plays a few rounds, prints the score and shuts the runtime down, which drains both
//! mailboxes and runs their `stop`.

use std::time::Duration;

use fluxor::{
    Bindings, BoxError, Component, Context, DeployOptions, Envelope, Fluxor, Message, Outcome,
};

// ----- Messages: plain structs; the reply type is part of the message's type. -----

/// Hit the ball; the table answers with the rally count so far.
#[derive(Message, Debug)]
#[message(reply = u64)]
struct Hit {
    player: String,
}

/// Play `rounds` hits against the table; answers the last rally count.
#[derive(Message, Debug)]
#[message(reply = u64)]
struct Play {
    rounds: u32,
}

// ----- The table: one instance, counts hits. -----

#[derive(Default)]
struct Table {
    rally: u64,
}

enum TableMsg {
    Hit(Envelope<Hit>),
}

impl Component for Table {
    type Msg = TableMsg;
    type Config = ();

    fn name() -> &'static str {
        "Table"
    }

    fn bindings(b: &mut Bindings<Self>) {
        b.bind("table.hit", TableMsg::Hit);
    }

    async fn handle(&mut self, msg: TableMsg, ctx: &mut Context<Self>) -> Outcome {
        match msg {
            TableMsg::Hit(env) => {
                let (hit, responder) = ctx.accept(env);
                responder
                    .run(async {
                        self.rally += 1;
                        if self.rally % 5 == 0 {
                            println!("  table: rally {} ({} hit)", self.rally, hit.player);
                        }
                        self.rally
                    })
                    .await
            }
        }
    }

    async fn stop(&mut self, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        println!("table closes after a rally of {}", self.rally);
        Ok(())
    }
}

// ----- The player: asks the table on every round, from its own reactor. -----

#[derive(serde::Deserialize)]
struct PlayerConfig {
    name: String,
}

#[derive(Default)]
struct Player;

enum PlayerMsg {
    Play(Envelope<Play>),
}

impl Component for Player {
    type Msg = PlayerMsg;
    type Config = PlayerConfig;

    fn name() -> &'static str {
        "Player"
    }

    fn bindings(b: &mut Bindings<Self>) {
        b.bind("player.play", PlayerMsg::Play);
    }

    async fn handle(&mut self, msg: PlayerMsg, ctx: &mut Context<Self>) -> Outcome {
        match msg {
            PlayerMsg::Play(env) => {
                let (play, responder) = ctx.accept(env);
                let ctx = &*ctx;
                responder
                    .run(async move {
                        let mut rally = 0;
                        for _ in 0..play.rounds {
                            // `ctx.request` carries this message's request id to the table.
                            rally = ctx
                                .request(
                                    "table.hit",
                                    Hit {
                                        player: ctx.config().name.clone(),
                                    },
                                )
                                .await?;
                        }
                        Ok::<_, fluxor::BusError>(rally)
                    })
                    .await
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Fluxor::builder().reactors(2).build()?;

    // The table on reactor 0, the player on reactor 1: every hit crosses threads.
    runtime
        .deploy(Table::default, DeployOptions::new().reactor(0))
        .await?;
    runtime
        .deploy(
            || Player,
            DeployOptions::new()
                .reactor(1)
                .config(serde_json::json!({ "name": "alice" })),
        )
        .await?;

    let rally = runtime
        .bus()
        .request_with(
            "player.play",
            Play { rounds: 20 },
            fluxor::RequestOptions::new().timeout(Duration::from_secs(5)),
        )
        .await?;
    println!("alice played 20 rounds; the rally stands at {rally}");

    // Errors are values: nobody listens on this topic.
    match runtime
        .bus()
        .request(
            "nobody.home",
            Hit {
                player: "bob".into(),
            },
        )
        .await
    {
        Err(e) => println!("as expected: {e}"),
        Ok(n) => println!("unexpected reply {n}"),
    }

    runtime.shutdown(Duration::from_secs(5)).await?;
    println!("shut down cleanly");
    Ok(())
}
