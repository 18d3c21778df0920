//! Run with: `cargo run -p fluxor-examples --example blocking_and_timers`
//!
//! A login service that keeps its reactor free: password hashing (CPU-heavy, blocking) runs on
//! the worker pool with `ctx.execute_blocking`, an audit log that writes files runs as a
//! *worker component*, and a periodic timer expires idle sessions. The program logs a few
//! users in, waits for sessions to expire, prints what happened and exits.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::time::Duration;

// Tokio's clock, so that tests can move it: see the tests at the bottom.
use tokio::time::Instant;

use fluxor::prelude::*;
use fluxor::BlockingError;

/// Log `user` in; answers a session token.
#[derive(Message, Debug)]
#[message(reply = Result<u64, String>)]
struct Login {
    user: String,
    password: String,
}

/// How many sessions are live.
#[derive(Message, Debug)]
#[message(reply = usize)]
struct LiveSessions;

/// The timer's message to the sessions component.
#[derive(Message, Debug, Clone)]
struct Sweep;

/// Append a line to the audit log.
#[derive(Message, Debug, Clone)]
struct Audit(String);

/// A deliberately slow key-stretching loop: blocking work that must not run on a reactor.
fn stretch(password: &str, rounds: u32) -> u64 {
    let mut h = 0u64;
    for i in 0..rounds {
        let mut hasher = DefaultHasher::new();
        (h, i, password).hash(&mut hasher);
        h = hasher.finish();
    }
    h
}

#[derive(serde::Deserialize)]
struct SessionsConfig {
    idle_ms: u64,
}

#[component(config = SessionsConfig)]
#[derive(Default)]
struct Sessions {
    live: HashMap<u64, (String, Instant)>,
    expired: usize,
}

#[component]
impl Sessions {
    #[on_start]
    fn begin(&mut self, ctx: &mut Context<Self>) {
        // Delivered to `sweep` below every 50 ms, on this component's reactor.
        ctx.set_periodic(Duration::from_millis(50), Sweep);
    }

    #[handler("auth.login")]
    async fn login(&mut self, msg: Login, ctx: &mut Context<Self>) -> Result<u64, String> {
        let Login { user, password } = msg;
        // The hash runs on a worker thread; this reactor keeps serving meanwhile.
        let token = ctx
            .execute_blocking(move || stretch(&password, 200_000))
            .await
            .map_err(|e: BlockingError| e.to_string())?;
        self.live.insert(token, (user.clone(), Instant::now()));
        ctx.publish("audit.login", Audit(format!("{user} logged in")))
            .map_err(|e| e.to_string())?;
        Ok(token)
    }

    #[handler]
    fn sweep(&mut self, _: Sweep, ctx: &mut Context<Self>) {
        let idle = Duration::from_millis(ctx.config().idle_ms);
        let before = self.live.len();
        self.live.retain(|_, (_, seen)| seen.elapsed() < idle);
        let gone = before - self.live.len();
        if gone > 0 {
            self.expired += gone;
            println!("  sessions: expired {gone}, {} live", self.live.len());
        }
    }

    #[handler("auth.live")]
    fn live(&mut self, _: LiveSessions) -> usize {
        self.live.len()
    }
}

#[derive(serde::Deserialize)]
struct AuditConfig {
    path: std::path::PathBuf,
}

/// Writes audit lines to a file with blocking I/O: a worker component, so each call (start
/// included) runs on the worker pool, one at a time, and may block.
#[component(worker, config = AuditConfig)]
#[derive(Default)]
struct AuditLog {
    file: Option<std::fs::File>,
    lines: usize,
}

#[component]
impl AuditLog {
    #[on_start]
    fn open(&mut self, ctx: &mut Context<Self>) -> std::io::Result<()> {
        self.file = Some(std::fs::File::create(&ctx.config().path)?);
        Ok(())
    }

    #[handler("audit.>")]
    fn append(&mut self, Audit(line): Audit) -> std::io::Result<()> {
        if let Some(file) = &mut self.file {
            writeln!(file, "{line}")?;
            file.sync_data()?;
            self.lines += 1;
        }
        Ok(())
    }

    #[on_stop]
    fn close(&mut self, _ctx: &mut Context<Self>) {
        println!("audit log closed after {} line(s)", self.lines);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Fluxor::builder().reactors(2).worker_threads(2).build()?;

    let path = std::env::temp_dir().join(format!("fluxor-audit-{}.log", std::process::id()));
    runtime
        .deploy(
            AuditLog::default,
            DeployOptions::new().config(serde_json::json!({ "path": path })),
        )
        .await?;
    runtime
        .deploy(
            Sessions::default,
            DeployOptions::new().config(serde_json::json!({ "idle_ms": 200 })),
        )
        .await?;

    for user in ["ada", "grace", "edsger"] {
        let started = Instant::now();
        let login = Login {
            user: user.into(),
            password: format!("{user}-secret"),
        };
        let token = runtime.bus().request(Sessions::LOGIN, login).await??;
        println!(
            "{user} logged in with token {token:016x} in {:?}",
            started.elapsed()
        );
    }
    println!(
        "live sessions: {}",
        runtime.bus().request(Sessions::LIVE, LiveSessions).await?
    );

    tokio::time::sleep(Duration::from_millis(400)).await;
    println!(
        "live sessions after idling: {}",
        runtime.bus().request(Sessions::LIVE, LiveSessions).await?
    );
    let stats = runtime.workers().stats();
    println!(
        "worker pool: {} completed, {} rejected",
        stats.completed, stats.rejected
    );

    runtime.shutdown(Duration::from_secs(5)).await?;
    println!("audit log:\n{}", std::fs::read_to_string(&path)?.trim_end());
    std::fs::remove_file(&path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluxor::testing::TestRuntime;

    fn login(user: &str) -> Login {
        Login {
            user: user.into(),
            password: "secret".into(),
        }
    }

    #[fluxor::test]
    async fn idle_sessions_expire_on_the_periodic_sweep(rt: TestRuntime) {
        let audit = rt.probe::<Audit>("audit.>").await;
        let sessions = rt
            .deploy_with(
                Sessions::default,
                DeployOptions::new().config(serde_json::json!({ "idle_ms": 200 })),
            )
            .await;
        let token = rt
            .request(Sessions::LOGIN, login("ada"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(token, stretch("secret", 200_000));
        let Audit(line) = audit.expect_published(Duration::from_secs(5)).await;
        assert_eq!(line, "ada logged in");

        // Sweeps run every 50 ms of virtual time; the session is idle for 200 ms.
        rt.advance(Duration::from_millis(150)).await;
        assert_eq!(rt.request(Sessions::LIVE, LiveSessions).await, Ok(1));
        rt.advance(Duration::from_millis(100)).await;
        assert_eq!(rt.request(Sessions::LIVE, LiveSessions).await, Ok(0));
        assert_eq!(rt.with_state(sessions, |s: &Sessions| s.expired).await, 1);
    }

    #[fluxor::test]
    async fn the_audit_log_writes_through_a_worker_component(rt: TestRuntime) {
        let path = std::env::temp_dir().join(format!(
            "fluxor-audit-test-{}-{:?}.log",
            std::process::id(),
            std::thread::current().id()
        ));
        let log = rt
            .deploy_with(
                AuditLog::default,
                DeployOptions::new().config(serde_json::json!({ "path": path })),
            )
            .await;
        rt.publish("audit.login", Audit("one".into())).unwrap();
        rt.publish("audit.logout", Audit("two".into())).unwrap();
        rt.settle().await;
        assert_eq!(rt.with_state(log, |l: &AuditLog| l.lines).await, 2);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        std::fs::remove_file(&path).unwrap();
    }
}
