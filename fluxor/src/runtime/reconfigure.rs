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
        let keys = match &value {
            serde_json::Value::Object(map) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let swap = self
            .lock()
            .get(id)
            .map(|d| d.reconfigure.clone())
            .ok_or(ReconfigureError::Unknown(id))?;
        // Parsed and swapped outside the table's lock (a config may be large).
        swap(value).map_err(ReconfigureError::Invalid)?;
        if let Some(d) = self.lock().get_mut(id) {
            d.config_keys = keys;
        }
        Ok(())
    }
}
