//! Parse a `#[component]` impl block into a model of its handlers and hooks, checking each rule
//! as it goes. Every problem is recorded in the [`Ctxt`]; nothing stops at the first one.

use proc_macro2::Span;
use quote::ToTokens;
use syn::{FnArg, ImplItem, ImplItemFn, ItemImpl, LitStr, ReturnType, Type};

use crate::attr::HandlerArgs;
use crate::ctxt::Ctxt;
use crate::topic;

/// One `#[handler]` method.
pub(crate) struct Handler {
    pub(crate) method: syn::Ident,
    pub(crate) topic: Option<LitStr>,
    pub(crate) msg: Type,
    pub(crate) takes_ctx: bool,
    pub(crate) is_async: bool,
    /// Where a reply-type mismatch is reported: the return type, or the name for `()`.
    pub(crate) ret_span: Span,
}

/// A lifecycle hook (`#[on_start]` / `#[on_stop]`).
pub(crate) struct Hook {
    pub(crate) method: syn::Ident,
    pub(crate) is_async: bool,
    pub(crate) ret_span: Span,
}

/// What the impl block declares.
pub(crate) struct Model {
    pub(crate) handlers: Vec<Handler>,
    pub(crate) on_start: Option<Hook>,
    pub(crate) on_stop: Option<Hook>,
}

const ATTRS: [&str; 3] = ["handler", "on_start", "on_stop"];

/// Whether `attr` is one of fluxor's method attributes, however it is imported
/// (`#[handler]`, `#[fluxor::handler]`, ...).
fn is_ours(attr: &syn::Attribute, name: &str) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == name)
}

/// Removes fluxor's method attributes from `item` (so they do not expand on their own) and
/// returns the model.
pub(crate) fn parse(cx: &mut Ctxt, item: &mut ItemImpl) -> Model {
    let mut model = Model {
        handlers: Vec::new(),
        on_start: None,
        on_stop: None,
    };
    if let Some((_, path, _)) = &item.trait_ {
        cx.error_spanned_by(
            path,
            "`#[component]` goes on the component's own `impl` block (`impl MyComponent { .. }`), not on a trait impl",
        );
    }
    for impl_item in &mut item.items {
        let ImplItem::Fn(f) = impl_item else { continue };
        let found: Vec<syn::Attribute> = f
            .attrs
            .iter()
            .filter(|a| ATTRS.iter().any(|n| is_ours(a, n)))
            .cloned()
            .collect();
        f.attrs.retain(|a| !ATTRS.iter().any(|n| is_ours(a, n)));
        if found.len() > 1 {
            cx.error_spanned_by(
                &found[1],
                "a method can carry only one of `#[handler]`, `#[on_start]` and `#[on_stop]`",
            );
            continue;
        }
        let Some(attr) = found.into_iter().next() else {
            continue;
        };
        if is_ours(&attr, "handler") {
            if let Some(h) = parse_handler(cx, &attr, f) {
                model.handlers.push(h);
            }
        } else {
            let is_start = is_ours(&attr, "on_start");
            let slot = if is_start {
                &mut model.on_start
            } else {
                &mut model.on_stop
            };
            if slot.is_some() {
                cx.error_spanned_by(
                    &attr,
                    format!(
                        "only one `#[{}]` method is allowed per component",
                        if is_start { "on_start" } else { "on_stop" }
                    ),
                );
                continue;
            }
            if let Some(h) = parse_hook(cx, &attr, f) {
                *slot = Some(h);
            }
        }
    }
    check_duplicates(cx, &model.handlers);
    model
}

fn parse_handler(cx: &mut Ctxt, attr: &syn::Attribute, f: &ImplItemFn) -> Option<Handler> {
    let args = match &attr.meta {
        syn::Meta::Path(_) => HandlerArgs { topic: None },
        _ => match attr.parse_args::<HandlerArgs>() {
            Ok(a) => a,
            Err(e) => {
                cx.push(e);
                return None;
            }
        },
    };
    if let Some(t) = &args.topic {
        if let Err(reason) = topic::check(&t.value()) {
            cx.error_spanned_by(t, reason);
        }
    }
    let sig = &f.sig;
    check_common(cx, f, "handler")?;
    let mut inputs = sig.inputs.iter().skip(1);
    let Some(msg_arg) = inputs.next() else {
        cx.error_spanned_by(
            &sig.inputs,
            "a handler takes the message after `&mut self`: `fn name(&mut self, msg: MyMessage)`",
        );
        return None;
    };
    let FnArg::Typed(msg) = msg_arg else {
        return None;
    };
    if matches!(*msg.ty, Type::Reference(_)) {
        cx.error_spanned_by(
            &msg.ty,
            "a handler takes its message by value (it is moved to the handler); remove the `&`",
        );
        return None;
    }
    let takes_ctx = match inputs.next() {
        None => false,
        Some(arg) => {
            if !is_context_arg(arg) {
                cx.error_spanned_by(
                    arg,
                    "the second parameter of a handler must be the context: `ctx: &mut Context<Self>`",
                );
                return None;
            }
            true
        }
    };
    if let Some(extra) = inputs.next() {
        cx.error_spanned_by(
            extra,
            "a handler takes at most two parameters after `&mut self`: the message and `ctx: &mut Context<Self>`",
        );
        return None;
    }
    Some(Handler {
        method: sig.ident.clone(),
        topic: args.topic,
        msg: (*msg.ty).clone(),
        takes_ctx,
        is_async: sig.asyncness.is_some(),
        ret_span: ret_span(sig),
    })
}

fn parse_hook(cx: &mut Ctxt, attr: &syn::Attribute, f: &ImplItemFn) -> Option<Hook> {
    let name = if is_ours(attr, "on_start") {
        "on_start"
    } else {
        "on_stop"
    };
    if !matches!(attr.meta, syn::Meta::Path(_)) {
        cx.error_spanned_by(attr, format!("`#[{name}]` takes no arguments"));
        return None;
    }
    check_common(cx, f, name)?;
    let sig = &f.sig;
    let mut rest = sig.inputs.iter().skip(1);
    match (rest.next(), rest.next()) {
        (Some(arg), None) if is_context_arg(arg) => {}
        (None, _) => {
            cx.error_spanned_by(
                &sig.ident,
                format!("`#[{name}]` methods take the context: `fn {}(&mut self, ctx: &mut Context<Self>)`", sig.ident),
            );
            return None;
        }
        (Some(arg), _) => {
            cx.error_spanned_by(
                arg,
                format!("`#[{name}]` methods take exactly `&mut self, ctx: &mut Context<Self>`"),
            );
            return None;
        }
    }
    Some(Hook {
        method: sig.ident.clone(),
        is_async: sig.asyncness.is_some(),
        ret_span: ret_span(sig),
    })
}

/// Rules shared by handlers and hooks: a `&mut self` method, not generic.
fn check_common(cx: &mut Ctxt, f: &ImplItemFn, what: &str) -> Option<()> {
    let sig = &f.sig;
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_some() => {}
        Some(FnArg::Receiver(r)) if r.reference.is_some() => {
            cx.error_spanned_by(
                r,
                format!("a {what} takes `&mut self`: a component owns its state and handles one message at a time"),
            );
            return None;
        }
        Some(FnArg::Receiver(r)) => {
            cx.error_spanned_by(
                r,
                format!("a {what} takes `&mut self`, not `self`: the component lives on after each message"),
            );
            return None;
        }
        _ => {
            cx.error_spanned_by(
                &sig.ident,
                format!("a {what} must be a method: add `&mut self` as its first parameter"),
            );
            return None;
        }
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            format!("a {what} cannot be generic; make the component generic instead"),
        );
        return None;
    }
    Some(())
}

fn is_context_arg(arg: &FnArg) -> bool {
    let FnArg::Typed(pt) = arg else { return false };
    let Type::Reference(r) = &*pt.ty else {
        return false;
    };
    if r.mutability.is_none() {
        return false;
    }
    let Type::Path(p) = &*r.elem else {
        return false;
    };
    p.path.segments.last().is_some_and(|s| s.ident == "Context")
}

fn ret_span(sig: &syn::Signature) -> Span {
    match &sig.output {
        ReturnType::Default => sig.ident.span(),
        ReturnType::Type(_, ty) => syn::spanned::Spanned::span(&**ty),
    }
}

fn check_duplicates(cx: &mut Ctxt, handlers: &[Handler]) {
    for (i, h) in handlers.iter().enumerate() {
        let earlier = &handlers[..i];
        match &h.topic {
            Some(t) => {
                if let Some(first) = earlier
                    .iter()
                    .find(|e| e.topic.as_ref().is_some_and(|et| et.value() == t.value()))
                {
                    cx.error_spanned_by(
                        t,
                        format!(
                            "topic \"{}\" is already handled by `{}` in this component; give each handler its own topic, or deploy a second component",
                            t.value(),
                            first.method
                        ),
                    );
                }
            }
            None => {
                let ty = h.msg.to_token_stream().to_string();
                if let Some(first) = earlier
                    .iter()
                    .find(|e| e.topic.is_none() && e.msg.to_token_stream().to_string() == ty)
                {
                    cx.error_spanned_by(
                        &h.msg,
                        format!(
                            "`{}` already receives direct messages of this type; a component can have one topic-less `#[handler]` per message type (give one of them a topic)",
                            first.method
                        ),
                    );
                }
            }
        }
    }
}
