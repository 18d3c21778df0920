//! Hot config: a deployment's config swapped while it runs.

use serde::Serialize;

use super::handle::Fluxor;
use crate::error::{DeployError, ReconfigureError};
use crate::ids::DeploymentId;

impl Fluxor {
    /// Gives deployment `id` a new config, while it runs.
    ///
    /// The value is parsed into the component's config type first: when it does not fit,
    /// nothing changes and the error says why. Otherwise each instance adopts it before its
    /// next message (never in the middle of a handler), sees it through
    /// [`Context::config`](crate::Context::config), and publishes a `Reconfigured` event on
    /// `fluxor.lifecycle.reconfigured`. An idle instance adopts it when its next message comes.
    /// Topics bound from the config at deploy time stay as they were; the inspector shows the
    /// new config's keys.
    ///
    /// ```no_run
    /// # use fluxor::prelude::*;
    /// # #[derive(serde::Deserialize)] struct Limits { max: u32 }
    /// # #[component(config = Limits)] #[derive(Default)] struct Gate;
    /// # #[component] impl Gate {}
    /// # async fn demo(runtime: Fluxor) -> Result<(), Box<dyn std::error::Error>> {
    /// let id = runtime
    ///     .deploy(Gate::default, DeployOptions::new().config(serde_json::json!({ "max": 10 })))
    ///     .await?;
    /// runtime.reconfigure(id, serde_json::json!({ "max": 20 }))?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ReconfigureError::Unknown`] for an id that is not live;
    /// [`ReconfigureError::Invalid`] when the value does not fit (the old config stays).
    pub fn reconfigure(
        &self,
        id: DeploymentId,
        config: impl Serialize,
    ) -> Result<(), ReconfigureError> {
        let value = serde_json::to_value(config).map_err(|e| {
            ReconfigureError::Invalid(DeployError::InvalidOptions(format!(
                "the config could not be serialized: {e}"
            )))
        })?;
        let swap = self
            .lock()
            .get(id)
            .map(|d| d.live().clone())
            .ok_or(ReconfigureError::Unknown(id))?;
        // Parsed and swapped outside the table's lock (a config may be large).
        swap.reconfigure(value).map_err(ReconfigureError::Invalid)
    }
}

// tokio has no signals under loom's model checking.
#[cfg(all(unix, not(loom)))]
impl Fluxor {
    /// Reloads deployment `id`'s config from the JSON file at `path` on every `SIGHUP`, through
    /// [`reconfigure`](Self::reconfigure) (Unix only). A file that cannot be read or does not
    /// fit is logged and changes nothing. The listener runs on reactor 0 until the runtime
    /// shuts down.
    ///
    /// ```no_run
    /// # async fn demo(runtime: fluxor::Fluxor, id: fluxor::DeploymentId) -> std::io::Result<()> {
    /// runtime.reconfigure_on_sighup(id, "/etc/shop/limits.json")?;
    /// // `kill -HUP <pid>` now applies the file's content.
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// When the signal handler cannot be installed.
    pub fn reconfigure_on_sighup(
        &self,
        id: DeploymentId,
        path: impl Into<std::path::PathBuf>,
    ) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let path = path.into();
        let reactor = self
            .reactor_handle(0)
            .ok_or_else(|| std::io::Error::other("the runtime has no reactor"))?;
        let mut hangups = {
            let _entered = reactor.enter();
            signal(SignalKind::hangup())?
        };
        let runtime = self.downgrade();
        let stop = self.inner.services.cancel.clone();
        reactor.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    got = hangups.recv() => if got.is_none() { break },
                }
                let Some(runtime) = runtime.upgrade() else { break };
                let outcome = std::fs::read(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))
                    .and_then(|bytes| {
                        serde_json::from_slice::<serde_json::Value>(&bytes)
                            .map_err(|e| format!("{} is not JSON: {e}", path.display()))
                    })
                    .and_then(|value| runtime.reconfigure(id, value).map_err(|e| e.to_string()));
                match outcome {
                    Ok(()) => tracing::info!(deployment = %id, file = %path.display(), "config reloaded on SIGHUP"),
                    Err(reason) => tracing::warn!(deployment = %id, %reason, "config not reloaded on SIGHUP; the old one stays"),
                }
            }
        });
        Ok(())
    }
}
