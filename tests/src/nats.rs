//! A real `nats-server` for the cluster tests, on a free loopback port, killed on drop.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `nats-server`.
#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    child: Option<Child>,
    extra: Vec<String>,
}

const INSTALL_HINT: &str = "the cluster tests need `nats-server` on the PATH (or in \
    /usr/sbin): install it with `apt-get install -y nats-server` (Debian/Ubuntu), or run \
    `cargo xtask test`, which installs it";

fn binary() -> String {
    for candidate in [
        "nats-server",
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
    ] {
        if Command::new(candidate)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
        {
            return candidate.to_owned();
        }
    }
    panic!("{INSTALL_HINT}");
}

impl NatsServer {
    /// Starts a server on a free loopback port and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra command-line options (`--user`, `--pass`, ...).
    pub fn start_with(extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let mut server = NatsServer {
            port,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.launch();
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (the port stays reserved for [`restart`](Self::restart)).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn launch(&mut self) {
        let child = Command::new(binary())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start nats-server ({e}); {INSTALL_HINT}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on port {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `runtime` is ready (for a cluster node: connected, and its subscriptions
/// confirmed by the server); panics with the failing checks after 10 s.
pub async fn until_ready(runtime: &fluxor::Fluxor) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health = runtime.ready().await;
        if health.ok {
            return;
        }
        assert!(Instant::now() < deadline, "not ready in 10 s: {health:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
