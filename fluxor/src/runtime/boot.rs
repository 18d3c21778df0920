//! Ordered boot: deployments that need others start after them, level by level, and stop in
//! the reverse order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use super::handle::Fluxor;
use super::options::DeployOptions;
use crate::component::Component;
use crate::error::BootError;
use crate::error::DeployError;
use crate::ids::DeploymentId;

type Deploying = Pin<Box<dyn Future<Output = Result<DeploymentId, DeployError>> + Send>>;

/// One named deployment of a [`BootPlan`].
struct Step {
    name: String,
    needs: Vec<String>,
    /// The component's name, and the names of the components it declares it starts after
    /// (`#[component(after = [..])]`).
    component: &'static str,
    after: &'static [&'static str],
    deploy: Box<dyn FnOnce(&Fluxor) -> Deploying + Send>,
}

/// Deployments to start in dependency order, from [`Fluxor::boot`].
///
/// ```no_run
/// # use fluxor::prelude::*;
/// # #[component] #[derive(Default)] struct Db;
/// # #[component] impl Db { #[handler("db.ping")] fn ping(&mut self, _: Ping) {} }
/// # #[component] #[derive(Default)] struct Api;
/// # #[component] impl Api { #[handler("api.ping")] fn ping(&mut self, _: Ping) {} }
/// # #[derive(Message)] struct Ping;
/// # async fn demo(runtime: Fluxor) -> Result<(), fluxor::BootError> {
/// let booted = runtime
///     .boot()
///     .deploy("db", Db::default, DeployOptions::new())
///     .deploy("api", Api::default, DeployOptions::new().instances(2))
///     .after(["db"])
///     .start()
///     .await?;
/// let api = booted["api"];
/// # let _ = api; Ok(()) }
/// ```
///
/// The deployments of one level (whose needs are all met) start together; the next level starts
/// when they all run. Shutdown stops deployments in reverse deploy order, so a deployment stops
/// before what it needs.
pub struct BootPlan {
    runtime: Fluxor,
    steps: Vec<Step>,
}

impl fmt::Debug for BootPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.steps.iter().map(|s| (&s.name, &s.needs)))
            .finish()
    }
}

impl Fluxor {
    /// A plan of deployments started in dependency order. See [`BootPlan`].
    pub fn boot(&self) -> BootPlan {
        BootPlan {
            runtime: self.clone(),
            steps: Vec::new(),
        }
    }
}

impl BootPlan {
    /// Adds a deployment named `name` (unique in the plan).
    pub fn deploy<C, F>(
        mut self,
        name: impl Into<String>,
        factory: F,
        options: DeployOptions,
    ) -> Self
    where
        C: Component,
        F: Fn() -> C + Send + Sync + 'static,
    {
        self.steps.push(Step {
            name: name.into(),
            needs: Vec::new(),
            component: C::name(),
            after: C::after(),
            deploy: Box::new(move |runtime: &Fluxor| Box::pin(runtime.deploy(factory, options))),
        });
        self
    }

    /// The deployment added last starts only once the named ones run.
    pub fn after<I, S>(mut self, needs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if let Some(step) = self.steps.last_mut() {
            step.needs.extend(needs.into_iter().map(Into::into));
        }
        self
    }

    /// Checks the plan, then starts it level by level.
    ///
    /// # Errors
    /// Before anything starts: [`BootError::DuplicateName`], [`BootError::UnknownNeed`],
    /// [`BootError::Cycle`] (naming the cycle). While starting: [`BootError::Failed`], naming
    /// the deployment that failed, why, what was already running (it stays deployed) and what
    /// was not started because of it.
    pub async fn start(self) -> Result<BTreeMap<String, DeploymentId>, BootError> {
        let levels = levels(&self.steps)?;
        let BootPlan { runtime, steps } = self;
        let mut pending: BTreeMap<String, Step> =
            steps.into_iter().map(|s| (s.name.clone(), s)).collect();
        let mut started = BTreeMap::new();
        for (at, level) in levels.iter().enumerate() {
            let mut runs = tokio::task::JoinSet::new();
            for name in level {
                if let Some(step) = pending.remove(name) {
                    let deploying = (step.deploy)(&runtime);
                    let name = name.clone();
                    runs.spawn(async move { (name, deploying.await) });
                }
            }
            let mut failed = None;
            while let Some(done) = runs.join_next().await {
                match done {
                    Ok((name, Ok(id))) => {
                        started.insert(name, id);
                    }
                    Ok((name, Err(error))) => {
                        failed.get_or_insert((name, error));
                    }
                    Err(e) => {
                        failed.get_or_insert((
                            "?".to_owned(),
                            DeployError::StartFailed {
                                component: "?",
                                instance: 0,
                                reason: format!("its deploy task ended: {e}"),
                                rollback: Vec::new(),
                            },
                        ));
                    }
                }
            }
            if let Some((name, error)) = failed {
                let skipped = levels[at + 1..].iter().flatten().cloned().collect();
                return Err(BootError::Failed {
                    name,
                    error: Box::new(error),
                    started,
                    skipped,
                });
            }
        }
        Ok(started)
    }
}

/// What a step needs, by step name: the names given with `after`, and every step of each
/// component its component declares it starts after.
fn resolved_needs(steps: &[Step], step: &Step) -> Result<Vec<String>, BootError> {
    let mut needs = step.needs.clone();
    for component in step.after {
        let of: Vec<String> = steps
            .iter()
            .filter(|s| s.component == *component && s.name != step.name)
            .map(|s| s.name.clone())
            .collect();
        if of.is_empty() {
            return Err(BootError::UnknownNeed {
                name: step.name.clone(),
                needs: format!(
                    "component `{component}` (declared with `#[component(after = ..)]`; add a deployment of it to the plan)"
                ),
            });
        }
        needs.extend(of);
    }
    Ok(needs)
}

/// The steps' names by level: a step's level is one above the highest of what it needs.
fn levels(steps: &[Step]) -> Result<Vec<Vec<String>>, BootError> {
    let mut names = BTreeSet::new();
    for s in steps {
        if !names.insert(s.name.as_str()) {
            return Err(BootError::DuplicateName {
                name: s.name.clone(),
            });
        }
    }
    for s in steps {
        if let Some(missing) = s.needs.iter().find(|n| !names.contains(n.as_str())) {
            return Err(BootError::UnknownNeed {
                name: s.name.clone(),
                needs: missing.clone(),
            });
        }
    }
    let resolved = steps
        .iter()
        .map(|s| resolved_needs(steps, s))
        .collect::<Result<Vec<_>, _>>()?;
    let needs: BTreeMap<&str, Vec<&str>> = steps
        .iter()
        .zip(&resolved)
        .map(|(s, r)| (s.name.as_str(), r.iter().map(String::as_str).collect()))
        .collect();
    let mut level: BTreeMap<&str, usize> = BTreeMap::new();
    // Repeat until nothing changes: each round places the steps whose needs are all placed.
    loop {
        let mut placed = false;
        for (name, wants) in &needs {
            if level.contains_key(name) {
                continue;
            }
            if wants.iter().all(|w| level.contains_key(w)) {
                let l = wants.iter().map(|w| level[w] + 1).max().unwrap_or(0);
                level.insert(name, l);
                placed = true;
            }
        }
        if !placed {
            break;
        }
    }
    if level.len() < needs.len() {
        return Err(BootError::Cycle {
            cycle: find_cycle(&needs, &level),
        });
    }
    let mut out: Vec<Vec<String>> = vec![Vec::new(); level.values().max().map_or(0, |m| m + 1)];
    for s in steps {
        out[level[s.name.as_str()]].push(s.name.clone());
    }
    Ok(out)
}

/// A cycle among the steps left unplaced: follow unplaced needs until a name repeats.
fn find_cycle(needs: &BTreeMap<&str, Vec<&str>>, placed: &BTreeMap<&str, usize>) -> Vec<String> {
    let Some(mut at) = needs.keys().copied().find(|n| !placed.contains_key(n)) else {
        return Vec::new();
    };
    let mut path: Vec<&str> = Vec::new();
    loop {
        if let Some(i) = path.iter().position(|p| *p == at) {
            let mut cycle: Vec<String> = path[i..].iter().map(|s| s.to_string()).collect();
            cycle.push(at.to_owned());
            return cycle;
        }
        path.push(at);
        match needs[at].iter().copied().find(|n| !placed.contains_key(n)) {
            Some(next) => at = next,
            None => return path.iter().map(|s| s.to_string()).collect(),
        }
    }
}
