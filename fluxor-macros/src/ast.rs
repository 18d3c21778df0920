//! Parse stage for `#[component]` on an impl block: finds the methods marked `#[handler]`,
//! `#[on_start]` and `#[on_stop]`, removes those attributes (so that they do not expand on
//! their own) and records what each one says, without judging it yet.

use syn::{Attribute, ImplItem, ItemImpl, LitStr, Signature};

use crate::attr;
use crate::ctxt::Ctxt;

/// Which of fluxor's method attributes a method carries.
pub(crate) enum Role {
    /// `#[handler]`, `#[handler("topic")]` or `#[handler("topic", remote)]` (the span of
    /// `remote`).
    Handler {
        topic: Option<LitStr>,
        remote: Option<proc_macro2::Span>,
    },
    /// `#[on_start]`.
    OnStart,
    /// `#[on_stop]`.
    OnStop,
    /// `#[on_config]`.
    OnConfig,
}

impl Role {
    /// How the role is named in messages: `handler`, `#[on_start]` method, ...
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Role::Handler { .. } => "handler",
            Role::OnStart => "`#[on_start]` method",
            Role::OnStop => "`#[on_stop]` method",
            Role::OnConfig => "`#[on_config]` method",
        }
    }
}

/// A method with one of fluxor's attributes.
pub(crate) struct Method {
    pub(crate) role: Role,
    /// The attribute, for errors about it.
    pub(crate) attr: Attribute,
    /// Further fluxor attributes on the same method, which are mistakes.
    pub(crate) extra_attrs: Vec<Attribute>,
    pub(crate) sig: Signature,
}

/// What the impl block declares.
pub(crate) struct ImplBlock {
    pub(crate) methods: Vec<Method>,
}

const ATTRS: [&str; 4] = ["handler", "on_start", "on_stop", "on_config"];

/// Whether `attr` is the fluxor method attribute `name`, however it is imported
/// (`#[handler]`, `#[fluxor::handler]`, ...).
fn is_ours(attr: &Attribute, name: &str) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == name)
}

fn is_any_of_ours(attr: &Attribute) -> bool {
    ATTRS.iter().any(|n| is_ours(attr, n))
}

/// Reads the impl block and removes fluxor's method attributes from it.
pub(crate) fn parse(cx: &Ctxt, item: &mut ItemImpl) -> ImplBlock {
    let mut methods = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(f) = impl_item else { continue };
        let mut found: Vec<Attribute> = f
            .attrs
            .iter()
            .filter(|a| is_any_of_ours(a))
            .cloned()
            .collect();
        f.attrs.retain(|a| !is_any_of_ours(a));
        if found.is_empty() {
            continue;
        }
        let attr = found.remove(0);
        let role = if is_ours(&attr, "handler") {
            match attr::handler_args(cx, &attr) {
                Some(args) => Role::Handler {
                    topic: args.topic,
                    remote: args.remote,
                },
                None => continue,
            }
        } else if is_ours(&attr, "on_start") {
            Role::OnStart
        } else if is_ours(&attr, "on_config") {
            Role::OnConfig
        } else {
            Role::OnStop
        };
        methods.push(Method {
            role,
            attr,
            extra_attrs: found,
            sig: f.sig.clone(),
        });
    }
    ImplBlock { methods }
}
