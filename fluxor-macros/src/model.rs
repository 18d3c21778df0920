//! The checked model of a `#[component]` impl block, from which the code is generated: only
//! handlers and hooks that passed every rule are in it.

use proc_macro2::Span;
use syn::{Ident, LitStr, Type};

/// One `#[handler]` method.
pub(crate) struct Handler {
    pub(crate) method: Ident,
    pub(crate) topic: Option<LitStr>,
    /// `remote` was given (its span): the binding also serves other nodes.
    pub(crate) remote: Option<Span>,
    pub(crate) msg: Type,
    pub(crate) takes_ctx: bool,
    pub(crate) is_async: bool,
    /// Where a reply-type mismatch is reported: the return type, or the name for `()`.
    pub(crate) ret_span: Span,
    /// The declared return type; `None` for `()`.
    pub(crate) ret: Option<Type>,
}

/// A lifecycle hook (`#[on_start]` / `#[on_stop]`).
pub(crate) struct Hook {
    pub(crate) method: Ident,
    pub(crate) is_async: bool,
    pub(crate) ret_span: Span,
}

/// What the impl block declares.
#[derive(Default)]
pub(crate) struct Model {
    pub(crate) handlers: Vec<Handler>,
    pub(crate) on_start: Option<Hook>,
    pub(crate) on_stop: Option<Hook>,
    /// `#[on_config]`: a plain method, called before the first message after a new config.
    pub(crate) on_config: Option<Hook>,
}

impl Handler {
    /// The name of the handler's variant in the generated message enum.
    pub(crate) fn variant(&self) -> Ident {
        self.method.clone()
    }
}
