//! Run with: `cargo run -p fluxor-examples --example ping_pong`
//!
//! Two components on two reactors play ping-pong over the event bus: the `Player` asks the
//! `Table` for a return on every hit, and the table keeps the rally count. The program deploys
//! both, plays a few rounds, prints the score and shuts the runtime down, which drains both
//! mailboxes and runs their stop hooks.

use std::time::Duration;

use fluxor::prelude::*;

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

// ----- The table: counts hits. -----

#[component]
#[derive(Default)]
struct Table {
    rally: u64,
}

#[component]
impl Table {
    #[handler("table.hit")]
    fn hit(&mut self, hit: Hit) -> u64 {
        self.rally += 1;
        if self.rally % 5 == 0 {
            println!("  table: rally {} ({} hit)", self.rally, hit.player);
        }
        self.rally
    }

    #[on_stop]
    fn close(&mut self, _ctx: &mut Context<Self>) {
        println!("table closes after a rally of {}", self.rally);
    }
}

// ----- The player: asks the table on every round, from its own reactor. -----

/// Typed config, deserialized at deploy time.
#[derive(serde::Deserialize)]
struct PlayerConfig {
    name: String,
}

#[component(config = PlayerConfig)]
struct Player;

#[component]
impl Player {
    #[handler("player.play")]
    async fn play(&mut self, play: Play, ctx: &mut Context<Self>) -> Result<u64, BusError> {
        let mut rally = 0;
        for _ in 0..play.rounds {
            let hit = Hit {
                player: ctx.config().name.clone(),
            };
            // `ctx.request` carries this message's request id on to the table;
            // `Table::HIT` is an `Address<Hit>`, so the reply type (u64) is inferred.
            rally = ctx.request(Table::HIT, hit).await?;
        }
        Ok(rally)
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
            Player::PLAY,
            Play { rounds: 20 },
            RequestOptions::new().timeout(Duration::from_secs(5)),
        )
        .await?;
    println!("alice played 20 rounds; the rally stands at {rally}");

    // Errors are values: nobody listens on this topic.
    let nobody = Hit {
        player: "bob".into(),
    };
    match runtime.bus().request("nobody.home", nobody).await {
        Err(e) => println!("as expected: {e}"),
        Ok(n) => println!("unexpected reply {n}"),
    }

    runtime.shutdown(Duration::from_secs(5)).await?;
    println!("shut down cleanly");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluxor::testing::TestRuntime;

    #[fluxor::test]
    async fn the_player_rallies_with_the_table(rt: TestRuntime) {
        let table = rt.deploy(Table::default).await;
        rt.deploy_with(
            || Player,
            DeployOptions::new().config(serde_json::json!({ "name": "bob" })),
        )
        .await;
        assert_eq!(rt.request(Player::PLAY, Play { rounds: 3 }).await, Ok(3));
        assert_eq!(rt.request(Player::PLAY, Play { rounds: 2 }).await, Ok(5));
        assert_eq!(rt.with_state(table, |t: &Table| t.rally).await, 5);
    }

    #[fluxor::test]
    async fn without_a_table_the_player_reports_the_bus_error(rt: TestRuntime) {
        rt.deploy_with(
            || Player,
            DeployOptions::new().config(serde_json::json!({ "name": "bob" })),
        )
        .await;
        let err = rt
            .request(Player::PLAY, Play { rounds: 1 })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("table.hit"), "{err}");
    }
}
