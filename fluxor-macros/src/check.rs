//! Check stage: one function per rule. Each reports at most one error, on the token that
//! breaks the rule, saying what to write instead. Rules that concern one method stop at the
//! first one it breaks, so a method is reported once.
//!
//! The rules and the UI cases (`tests/ui/`) that show their errors:
//!
//! | rule | UI cases |
//! | --- | --- |
//! | [`component_item`] | `component/on_an_enum`, `component/on_a_fn` |
//! | [`struct_does_not_borrow`] | `component/borrowing_struct` |
//! | [`not_a_trait_impl`] | `component/on_a_trait_impl` |
//! | [`struct_options_on_struct`] | `attributes/config_on_impl` |
//! | [`one_attribute_per_method`] | `handler/two_attributes` |
//! | [`hook_has_no_arguments`] | `hook/with_arguments` |
//! | [`one_hook_each`] | `hook/two_on_start` |
//! | [`topic_is_valid`] | `topic/empty_topic`, `topic/empty_token`, `topic/whitespace_topic`, `topic/partial_wildcard`, `topic/misplaced_wildcard` |
//! | [`receiver_is_mut_self`] | `handler/not_a_method`, `handler/ref_self`, `handler/self_by_value` |
//! | [`not_generic`] | `handler/generic_handler` |
//! | [`takes_a_message`] | `handler/no_message` |
//! | [`message_by_value`] | `handler/message_by_reference` |
//! | [`second_param_is_context`] | `handler/wrong_second_param` |
//! | [`at_most_two_params`] | `handler/too_many_params` |
//! | [`hook_takes_context`] | `hook/no_context`, `hook/wrong_param`, `hook/extra_param` |
//! | [`config_hook_is_plain`] | `hook/async_on_config` |
//! | [`unique_topics`] | `handler/duplicate_topic` |
//! | [`unique_direct_types`] | `handler/duplicate_direct_type` |
//! | [`test_is_async`] | `test/not_async` |
//! | [`test_not_generic`] | `test/generic` |
//! | [`test_params`] | `test/self_param`, `test/two_params` |
//! | [`reactors_positive`] | `test/zero_reactors` |
//!
//! The topic rule's sixth case, a wildcard where a concrete topic is needed, cannot happen in
//! a handler topic, which is a pattern.
//!
//! Errors found while parsing arguments come from [`crate::attr`]:
//! `attributes/unknown_component_key`, `attributes/duplicate_component_key`,
//! `attributes/unknown_message_key`, `attributes/duplicate_message_key`,
//! `topic/not_a_string`, `topic/extra_argument`, `test/unknown_option`; a method attribute
//! outside a component comes from [`crate::outside`]: `handler/outside_component`. The trait
//! bounds that only the compiler can check are spanned on the user's token by
//! [`crate::generate`] and explained by `#[diagnostic::on_unimplemented]` in `fluxor`:
//! `handler/not_a_message`, `handler/reply_mismatch`, `hook/bad_return`,
//! `component/missing_struct_attribute`, `component/worker_not_send`, `send/*`.

use proc_macro2::Span;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{FnArg, GenericParam, ItemImpl, ItemStruct, LitInt, ReturnType, Signature, Type};

use crate::ast::{ImplBlock, Method, Role};
use crate::attr::ComponentArgs;
use crate::ctxt::Ctxt;
use crate::model::{Handler, Hook, Model};
use crate::topic_rules::{self, TopicErrorKind};

/// `#[component]` goes on a struct or on an impl block; returns whether `item` is one.
pub(crate) fn component_item(cx: &Ctxt, item: &syn::Item) -> bool {
    let keyword = match item {
        syn::Item::Struct(_) | syn::Item::Impl(_) => return true,
        syn::Item::Enum(e) => e.enum_token.into_token_stream(),
        syn::Item::Fn(f) => f.sig.fn_token.into_token_stream(),
        syn::Item::Trait(t) => t.trait_token.into_token_stream(),
        syn::Item::Union(u) => u.union_token.into_token_stream(),
        other => other.into_token_stream(),
    };
    cx.error_spanned_by(
        keyword,
        "`#[component]` goes on a struct and on that struct's `impl` block",
    );
    false
}

/// A component owns its data: the struct has no lifetime parameters.
pub(crate) fn struct_does_not_borrow(cx: &Ctxt, item: &ItemStruct) -> bool {
    let lifetime = item.generics.params.iter().find_map(|p| match p {
        GenericParam::Lifetime(l) => Some(l),
        _ => None,
    });
    if let Some(l) = lifetime {
        cx.error_spanned_by(
            l,
            "a component cannot borrow: it lives on its reactor for as long as it is deployed; own the data instead (e.g. `Arc<T>`)",
        );
    }
    lifetime.is_none()
}

/// The impl block is the component's own, not a trait impl.
pub(crate) fn not_a_trait_impl(cx: &Ctxt, item: &ItemImpl) -> bool {
    let Some((_, path, _)) = &item.trait_ else {
        return true;
    };
    cx.error_spanned_by(
        path,
        "`#[component]` goes on the component's own `impl` block (`impl MyComponent { .. }`), not on a trait impl",
    );
    false
}

/// `config`, `name`, `worker` and `supervise` describe the struct: they go on its attribute.
pub(crate) fn struct_options_on_struct(cx: &Ctxt, args: &ComponentArgs) {
    let keys = [
        args.config.as_ref().map(|k| (k.key, "config")),
        args.name.as_ref().map(|k| (k.key, "name")),
        args.worker.map(|span| (span, "worker")),
        args.supervise.as_ref().map(|k| (k.key, "supervise")),
    ];
    for (span, key) in keys.into_iter().flatten() {
        cx.syn_error(syn::Error::new(
            span,
            format!("`{key}` goes on the struct's `#[component(...)]`, not on the impl block's; move it there"),
        ));
    }
}

/// A method carries one of `#[handler]`, `#[on_start]` and `#[on_stop]`.
pub(crate) fn one_attribute_per_method(cx: &Ctxt, m: &Method) -> bool {
    let Some(extra) = m.extra_attrs.first() else {
        return true;
    };
    cx.error_spanned_by(
        extra,
        "a method can carry only one of `#[handler]`, `#[on_start]`, `#[on_stop]` and `#[on_config]`; remove this one",
    );
    false
}

/// `#[on_start]` and `#[on_stop]` take no arguments.
pub(crate) fn hook_has_no_arguments(cx: &Ctxt, m: &Method) -> bool {
    if matches!(m.role, Role::Handler { .. }) || matches!(m.attr.meta, syn::Meta::Path(_)) {
        return true;
    }
    let name = match m.role {
        Role::OnStart => "on_start",
        Role::OnConfig => "on_config",
        _ => "on_stop",
    };
    cx.error_spanned_by(
        &m.attr.meta,
        format!("`#[{name}]` takes no arguments; write `#[{name}]`"),
    );
    false
}

/// A component has at most one `#[on_start]` and one `#[on_stop]` method; reports each one
/// after the first. Returns whether `m` is a first.
pub(crate) fn one_hook_each(cx: &Ctxt, earlier: &[&Method], m: &Method) -> bool {
    let (name, same): (&str, fn(&Role) -> bool) = match m.role {
        Role::Handler { .. } => return true,
        Role::OnStart => ("on_start", |r| matches!(r, Role::OnStart)),
        Role::OnStop => ("on_stop", |r| matches!(r, Role::OnStop)),
        Role::OnConfig => ("on_config", |r| matches!(r, Role::OnConfig)),
    };
    let Some(first) = earlier.iter().find(|e| same(&e.role)) else {
        return true;
    };
    cx.error_spanned_by(
        &m.attr,
        format!(
            "a component has one `#[{name}]` method, and `{}` is already it; merge the two",
            first.sig.ident
        ),
    );
    false
}

/// A handler topic follows the topic rules shared with the runtime.
pub(crate) fn topic_is_valid(cx: &Ctxt, m: &Method) -> bool {
    let Role::Handler {
        topic: Some(topic), ..
    } = &m.role
    else {
        return true;
    };
    let Err(kind) = topic_rules::check(&topic.value(), true) else {
        return true;
    };
    let message = match kind {
        TopicErrorKind::Empty => format!(
            "{}, or use `#[handler]` without a topic for direct messages",
            kind.advice()
        ),
        _ => format!("\"{}\": {}", topic.value(), kind.advice()),
    };
    cx.error_spanned_by(topic, message);
    false
}

/// A handler or hook is a method taking `&mut self`.
pub(crate) fn receiver_is_mut_self(cx: &Ctxt, m: &Method) -> bool {
    let what = m.role.name();
    match m.sig.inputs.first() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_some() => true,
        Some(FnArg::Receiver(r)) if r.reference.is_some() => {
            cx.error_spanned_by(
                r,
                format!("a {what} takes `&mut self`: a component owns its state and handles one message at a time"),
            );
            false
        }
        Some(FnArg::Receiver(r)) => {
            cx.error_spanned_by(
                r,
                format!("a {what} takes `&mut self`, not `self`: the component lives on after each message"),
            );
            false
        }
        _ => {
            cx.error_spanned_by(
                &m.sig.ident,
                format!("a {what} must be a method: add `&mut self` as its first parameter"),
            );
            false
        }
    }
}

/// A handler or hook is not generic.
pub(crate) fn not_generic(cx: &Ctxt, m: &Method) -> bool {
    if m.sig.generics.params.is_empty() {
        return true;
    }
    cx.error_spanned_by(
        &m.sig.generics,
        format!(
            "a {} cannot be generic; make the component generic instead",
            m.role.name()
        ),
    );
    false
}

/// A handler takes the message after `&mut self`.
pub(crate) fn takes_a_message(cx: &Ctxt, sig: &Signature) -> bool {
    if sig.inputs.len() > 1 {
        return true;
    }
    cx.error_spanned_by(
        &sig.inputs,
        "a handler takes the message after `&mut self`: `fn name(&mut self, msg: MyMessage)`",
    );
    false
}

/// A handler takes its message by value.
pub(crate) fn message_by_value(cx: &Ctxt, msg: &Type) -> bool {
    if !matches!(msg, Type::Reference(_)) {
        return true;
    }
    cx.error_spanned_by(
        msg,
        "a handler takes its message by value (it is moved to the handler); remove the `&`",
    );
    false
}

/// A handler's second parameter, if any, is the context.
pub(crate) fn second_param_is_context(cx: &Ctxt, arg: Option<&FnArg>) -> bool {
    match arg {
        Some(arg) if !is_context_arg(arg) => {
            cx.error_spanned_by(
                arg,
                "the second parameter of a handler must be the context: `ctx: &mut Context<Self>`",
            );
            false
        }
        _ => true,
    }
}

/// A handler has no parameters after the message and the context.
pub(crate) fn at_most_two_params(cx: &Ctxt, sig: &Signature) -> bool {
    let Some(extra) = sig.inputs.iter().nth(3) else {
        return true;
    };
    cx.error_spanned_by(
        extra,
        "a handler takes at most two parameters after `&mut self`: the message and `ctx: &mut Context<Self>`; remove this one",
    );
    false
}

/// A hook takes exactly `&mut self, ctx: &mut Context<Self>`.
pub(crate) fn hook_takes_context(cx: &Ctxt, m: &Method) -> bool {
    let what = m.role.name();
    let sig = &m.sig;
    let mut rest = sig.inputs.iter().skip(1);
    match (rest.next(), rest.next()) {
        (None, _) => {
            cx.error_spanned_by(
                &sig.ident,
                format!(
                    "a {what} takes the context: `fn {}(&mut self, ctx: &mut Context<Self>)`",
                    sig.ident
                ),
            );
            false
        }
        (Some(arg), _) if !is_context_arg(arg) => {
            cx.error_spanned_by(
                arg,
                format!("a {what} takes exactly `&mut self, ctx: &mut Context<Self>`; this parameter must be `ctx: &mut Context<Self>`"),
            );
            false
        }
        (Some(_), Some(extra)) => {
            cx.error_spanned_by(
                extra,
                format!("a {what} takes exactly `&mut self, ctx: &mut Context<Self>`; remove this parameter"),
            );
            false
        }
        (Some(_), None) => true,
    }
}

/// Each topic is handled by one handler of the component.
pub(crate) fn unique_topics(cx: &Ctxt, earlier: &[Handler], h: &Handler) -> bool {
    let Some(t) = &h.topic else { return true };
    let Some(first) = earlier
        .iter()
        .find(|e| e.topic.as_ref().is_some_and(|et| et.value() == t.value()))
    else {
        return true;
    };
    cx.error_spanned_by(
        t,
        format!(
            "topic \"{}\" is already handled by `{}` in this component; give each handler its own topic, or deploy a second component",
            t.value(),
            first.method
        ),
    );
    false
}

/// A component has one topic-less handler per message type.
pub(crate) fn unique_direct_types(cx: &Ctxt, earlier: &[Handler], h: &Handler) -> bool {
    if h.topic.is_some() {
        return true;
    }
    let ty = h.msg.to_token_stream().to_string();
    let Some(first) = earlier
        .iter()
        .find(|e| e.topic.is_none() && e.msg.to_token_stream().to_string() == ty)
    else {
        return true;
    };
    cx.error_spanned_by(
        &h.msg,
        format!(
            "`{}` already receives direct messages of this type; a component can have one topic-less `#[handler]` per message type (give one of them a topic)",
            first.method
        ),
    );
    false
}

/// `#[fluxor::test]` goes on an `async fn`.
pub(crate) fn test_is_async(cx: &Ctxt, sig: &Signature) -> bool {
    if sig.asyncness.is_some() {
        return true;
    }
    cx.error_spanned_by(
        sig.fn_token,
        "`#[fluxor::test]` goes on an `async fn`; add `async`",
    );
    false
}

/// A test function is not generic.
pub(crate) fn test_not_generic(cx: &Ctxt, sig: &Signature) -> bool {
    if sig.generics.params.is_empty() {
        return true;
    }
    cx.error_spanned_by(
        &sig.generics,
        "a test function cannot be generic; remove the parameters",
    );
    false
}

/// A test function takes nothing, or the `TestRuntime`.
pub(crate) fn test_params(cx: &Ctxt, sig: &Signature) -> bool {
    let mut inputs = sig.inputs.iter();
    if let Some(FnArg::Receiver(r)) = inputs.next() {
        cx.error_spanned_by(
            r,
            "a test function cannot take `self`; take nothing, or `rt: TestRuntime`",
        );
        return false;
    }
    if let Some(extra) = inputs.next() {
        cx.error_spanned_by(
            extra,
            "a test function takes at most one parameter, the `TestRuntime`; remove this one",
        );
        return false;
    }
    true
}

/// `reactors = N` asks for at least one reactor.
pub(crate) fn reactors_positive(cx: &Ctxt, reactors: Option<&LitInt>) -> bool {
    let Some(n) = reactors else { return true };
    if n.base10_parse::<usize>().is_ok_and(|v| v > 0) {
        return true;
    }
    cx.error_spanned_by(
        n,
        "`reactors` must be a positive integer, like `reactors = 2`",
    );
    false
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

fn ret_span(sig: &Signature) -> Span {
    match &sig.output {
        ReturnType::Default => sig.ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    }
}

/// Applies the rules to an impl block; the model holds what passed them.
pub(crate) fn impl_block(
    cx: &Ctxt,
    args: &ComponentArgs,
    item: &ItemImpl,
    ast: &ImplBlock,
) -> Model {
    struct_options_on_struct(cx, args);
    let mut model = Model::default();
    if !not_a_trait_impl(cx, item) {
        return model;
    }
    let mut seen: Vec<&Method> = Vec::new();
    for m in &ast.methods {
        let ok = one_attribute_per_method(cx, m)
            && hook_has_no_arguments(cx, m)
            && one_hook_each(cx, &seen, m);
        seen.push(m);
        if !ok || !topic_is_valid(cx, m) || !receiver_is_mut_self(cx, m) || !not_generic(cx, m) {
            continue;
        }
        match &m.role {
            Role::Handler { topic, remote } => {
                if let Some(h) = handler(cx, m, topic, *remote) {
                    if unique_topics(cx, &model.handlers, &h)
                        && unique_direct_types(cx, &model.handlers, &h)
                    {
                        model.handlers.push(h);
                    }
                }
            }
            Role::OnConfig => {
                if hook_takes_context(cx, m) && config_hook_is_plain(cx, m) {
                    model.on_config = Some(Hook {
                        method: m.sig.ident.clone(),
                        is_async: false,
                        ret_span: ret_span(&m.sig),
                    });
                }
            }
            Role::OnStart | Role::OnStop => {
                if hook_takes_context(cx, m) {
                    let hook = Hook {
                        method: m.sig.ident.clone(),
                        is_async: m.sig.asyncness.is_some(),
                        ret_span: ret_span(&m.sig),
                    };
                    if matches!(m.role, Role::OnStart) {
                        model.on_start = Some(hook);
                    } else {
                        model.on_stop = Some(hook);
                    }
                }
            }
        }
    }
    model
}

fn handler(
    cx: &Ctxt,
    m: &Method,
    topic: &Option<syn::LitStr>,
    remote: Option<proc_macro2::Span>,
) -> Option<Handler> {
    let sig = &m.sig;
    if !takes_a_message(cx, sig) {
        return None;
    }
    let FnArg::Typed(msg) = &sig.inputs[1] else {
        return None;
    };
    let ok = message_by_value(cx, &msg.ty)
        && second_param_is_context(cx, sig.inputs.iter().nth(2))
        && at_most_two_params(cx, sig);
    ok.then(|| Handler {
        method: sig.ident.clone(),
        topic: topic.clone(),
        remote,
        msg: (*msg.ty).clone(),
        takes_ctx: sig.inputs.len() > 2,
        is_async: sig.asyncness.is_some(),
        ret_span: ret_span(sig),
        ret: match &sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => Some((**ty).clone()),
        },
    })
}

/// `#[on_config]` runs between two messages, inside the dispatch of the next one: it cannot
/// await.
pub(crate) fn config_hook_is_plain(cx: &Ctxt, m: &Method) -> bool {
    let Some(asyncness) = &m.sig.asyncness else {
        return true;
    };
    cx.error_spanned_by(
        asyncness,
        "an `#[on_config]` method runs between two messages and cannot await; remove `async` (for async work, send a message to the component itself with `ctx.send_to`, or use `ctx.execute_blocking`)",
    );
    false
}
