//! Components (the actors), their context, handles and handler plumbing.

mod actor_ref;
mod bindings;
mod context;
mod context_runtime;
mod responder;
mod traits;

pub use actor_ref::ActorRef;
pub(crate) use bindings::Binding;
pub use bindings::Bindings;
pub use context::Context;
pub use responder::{Responder, Run};
pub(crate) use traits::RunErased;
pub use traits::{Component, Handles, Outcome, WorkerMode};
