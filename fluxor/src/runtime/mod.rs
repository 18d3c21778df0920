//! The runtime: reactors, deployments and shutdown.
//!
//! Where things are:
//! * [`Fluxor`], the handle, and the state it shares: `handle.rs`; its [`Builder`]:
//!   `builder.rs`; [`DeployOptions`]: `options.rs`.
//! * The deploy pipeline (plan, launch on the reactors, register topics): `deploy.rs`; ordered
//!   boot of several deployments: `boot.rs`; the
//!   deployment table: `table.rs`; undeploy: `undeploy.rs`; shutdown and `run`: `shutdown.rs`.
//! * One instance's life on its reactor, the actor loop: `actor_loop.rs`; where its calls run
//!   (inline or on the worker pool): `exec.rs`; restart and the other supervision steps:
//!   `restart.rs`; how instances report their start and stop: `reports.rs`; what a
//!   deployment's instances share: `shared.rs`.
//! * The reactor threads: `reactor.rs`; inspection snapshots: `snapshot.rs`; liveness and
//!   readiness: `health.rs`; the test kit's
//!   entry point: `test_hooks.rs`.

mod actor_loop;
mod boot;
mod builder;
mod deploy;
mod exec;
mod finish;
mod handle;
mod health;
mod options;
mod reactor;
mod reconfigure;
mod reports;
mod restart;
mod shared;
mod shutdown;
mod snapshot;
mod table;
#[cfg(feature = "test-util")]
mod test_hooks;
mod undeploy;

pub(crate) use actor_loop::InstanceTask;
pub use boot::BootPlan;
pub use builder::Builder;
#[cfg_attr(not(feature = "cluster"), allow(unused_imports))]
pub(crate) use builder::Extension;
pub use handle::Fluxor;
pub use handle::WeakFluxor;
pub use options::DeployOptions;
#[cfg_attr(not(feature = "http"), allow(unused_imports))]
pub(crate) use shared::LifecycleWatch;
pub(crate) use shared::{publish_event, Shared};

/// Lifecycle events kept for a watcher that has not read them yet (see
/// `Fluxor::lifecycle_events`); one further behind skips the oldest.
pub(crate) const LIFECYCLE_RING: usize = 256;
