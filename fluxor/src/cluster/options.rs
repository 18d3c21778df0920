//! [`NatsCluster`]: where the NATS server is, how to authenticate, and the cluster's limits.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::message::{Codec, Json};

/// How a runtime joins a cluster: the NATS server, credentials, TLS, and the limits of the
/// cluster bus. Pass it to [`Builder::cluster`](crate::Builder::cluster).
///
/// Every queue on the way is bounded, and each limit says what happens when it is reached.
#[derive(Clone)]
pub struct NatsCluster {
    pub(crate) servers: Vec<String>,
    pub(crate) name: String,
    pub(crate) auth: Auth,
    pub(crate) root_certificates: Vec<PathBuf>,
    pub(crate) client_certificate: Option<(PathBuf, PathBuf)>,
    pub(crate) require_tls: bool,
    pub(crate) connection_name: Option<String>,
    pub(crate) reconnect_delay: Duration,
    pub(crate) balance: bool,
    pub(crate) codec: Arc<dyn Codec>,
    pub(crate) subscription_capacity: usize,
    pub(crate) outgoing_capacity: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) max_message_bytes: usize,
    pub(crate) reactor: usize,
}

/// How the connection authenticates.
#[derive(Clone, Default)]
pub(crate) enum Auth {
    #[default]
    None,
    UserPassword(String, String),
    Token(String),
    Nkey(String),
    CredentialsFile(PathBuf),
}

impl fmt::Debug for NatsCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            Auth::None => "none",
            Auth::UserPassword(..) => "user and password",
            Auth::Token(_) => "token",
            Auth::Nkey(_) => "nkey",
            Auth::CredentialsFile(_) => "credentials file",
        };
        f.debug_struct("NatsCluster")
            .field("servers", &self.servers)
            .field("name", &self.name)
            .field("auth", &auth)
            .field("require_tls", &self.require_tls)
            .field("balance", &self.balance)
            .field("codec", &self.codec.name())
            .finish_non_exhaustive()
    }
}

impl NatsCluster {
    /// A cluster reached through the NATS server at `url` (`nats://host:4222`, `tls://..`, or
    /// several separated by commas).
    pub fn connect(url: impl Into<String>) -> Self {
        let url: String = url.into();
        NatsCluster {
            servers: url.split(',').map(|s| s.trim().to_owned()).collect(),
            name: "default".into(),
            auth: Auth::None,
            root_certificates: Vec::new(),
            client_certificate: None,
            require_tls: false,
            connection_name: None,
            reconnect_delay: Duration::from_millis(250),
            balance: false,
            codec: Arc::new(Json),
            subscription_capacity: 16 * 1024,
            outgoing_capacity: 16 * 1024,
            max_in_flight: 16 * 1024,
            max_message_bytes: 1024 * 1024,
            reactor: 0,
        }
    }

    /// The cluster's name: nodes with the same name on one server form one cluster (their
    /// subjects start with `fx.<name>.`). Default `"default"`. Letters, digits, `-` and `_`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Authenticates with a user name and password.
    pub fn user_and_password(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.auth = Auth::UserPassword(user.into(), password.into());
        self
    }

    /// Authenticates with a token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Token(token.into());
        self
    }

    /// Authenticates with an nkey seed.
    pub fn nkey(mut self, seed: impl Into<String>) -> Self {
        self.auth = Auth::Nkey(seed.into());
        self
    }

    /// Authenticates with a `.creds` file (JWT and nkey seed), read when the runtime is built.
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth = Auth::CredentialsFile(path.into());
        self
    }

    /// Trusts the CA certificates in the PEM file at `path` for the server's TLS certificate.
    pub fn add_root_certificates(mut self, path: impl Into<PathBuf>) -> Self {
        self.root_certificates.push(path.into());
        self
    }

    /// Presents the client certificate and key (PEM files) to the server.
    pub fn client_certificate(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_certificate = Some((cert.into(), key.into()));
        self
    }

    /// Refuses to connect without TLS. Default `false` (a `tls://` URL requires it anyway).
    pub fn require_tls(mut self, required: bool) -> Self {
        self.require_tls = required;
        self
    }

    /// The connection's name, shown by the server's monitoring. Default: `fluxor-<node id>`.
    pub fn connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = Some(name.into());
        self
    }

    /// How long to wait between reconnection attempts. Default 250 ms.
    pub fn reconnect_delay(mut self, delay: Duration) -> Self {
        self.reconnect_delay = delay;
        self
    }

    /// Sends and requests of remote-capable messages go through the server even when this
    /// node has a consumer, so that the load spreads over every node (the server picks a
    /// member of the topic's queue group at random). Default `false`: local first.
    pub fn balance(mut self, balance: bool) -> Self {
        self.balance = balance;
        self
    }

    /// The codec of messages that cross nodes. Default [`Json`]. Every node of a cluster must
    /// use the same one: a message in another format is answered as undecodable.
    pub fn codec(mut self, codec: impl Codec) -> Self {
        self.codec = Arc::new(codec);
        self
    }

    /// Messages buffered per subscription between the connection and this node's dispatcher.
    /// Past it the client drops messages (counted as `dropped`). Default 16,384.
    pub fn subscription_capacity(mut self, capacity: usize) -> Self {
        self.subscription_capacity = capacity;
        self
    }

    /// Outgoing sends, publishes and replies queued for the connection. Past it a send or
    /// publish fails at once with `Unreachable` ("outgoing queue full"). Default 16,384.
    pub fn outgoing_capacity(mut self, capacity: usize) -> Self {
        self.outgoing_capacity = capacity;
        self
    }

    /// Requests (and acknowledged sends) to other nodes waiting for their answer. Past it a
    /// request fails at once with `Unreachable`. Default 16,384.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max;
        self
    }

    /// The largest payload this node decodes; a bigger one is refused as undecodable
    /// without being read. Default 1 MiB (the server's default `max_payload`).
    pub fn max_message_bytes(mut self, max: usize) -> Self {
        self.max_message_bytes = max;
        self
    }

    /// The reactor the connection lives on (its reads, its writes, the dispatch of incoming
    /// messages). Default 0. A component on the same reactor receives messages from other
    /// nodes without a thread hop.
    pub fn reactor(mut self, index: usize) -> Self {
        self.reactor = index;
        self
    }

    /// Checks the options that do not need the server.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.servers.iter().any(|s| s.is_empty()) {
            return Err("the server URL is empty; pass `nats://host:port`".into());
        }
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "cluster name `{}` must be non-empty and use only letters, digits, `-` and `_`",
                self.name
            ));
        }
        for (what, n) in [
            ("subscription_capacity", self.subscription_capacity),
            ("outgoing_capacity", self.outgoing_capacity),
            ("max_in_flight", self.max_in_flight),
            ("max_message_bytes", self.max_message_bytes),
        ] {
            if n == 0 {
                return Err(format!("`{what}` must be at least 1"));
            }
        }
        Ok(())
    }
}
