//! Parse stage for arguments: `#[component(...)]`, `#[handler(...)]`, `#[message(...)]` and
//! `#[fluxor::test(...)]` become typed models. A malformed argument is an error in the
//! [`Ctxt`]; the model keeps the defaults for what could not be read, so that expansion
//! goes on and the malformed argument is the only error.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::{Expr, Ident, LitInt, LitStr, Path, Token, Type};

use crate::ctxt::Ctxt;

/// A `key = value` argument, with the key's span for errors about the key.
pub(crate) struct Keyed<T> {
    pub(crate) key: Span,
    pub(crate) value: T,
}

/// `#[component(config = T, name = "..", worker, supervise = expr, after = [A, B], crate = path)]`.
#[derive(Default)]
pub(crate) struct ComponentArgs {
    /// `after = [A, B]`: the component types this one starts after.
    pub(crate) after: Option<Keyed<Vec<Type>>>,
    pub(crate) config: Option<Keyed<Type>>,
    pub(crate) name: Option<Keyed<LitStr>>,
    pub(crate) worker: Option<Span>,
    pub(crate) supervise: Option<Keyed<Expr>>,
    pub(crate) krate: Option<Path>,
}

/// `#[fluxor::test(real_time, allow_crashes, reactors = N, crate = path)]`.
#[derive(Default)]
pub(crate) struct TestArgs {
    pub(crate) real_time: bool,
    pub(crate) allow_crashes: bool,
    pub(crate) reactors: Option<LitInt>,
    pub(crate) krate: Option<Path>,
}

/// `#[message(reply = Type, remote, wire = "name", crate = path)]`.
#[derive(Default)]
pub(crate) struct MessageArgs {
    pub(crate) reply: Option<Type>,
    pub(crate) krate: Option<Path>,
    /// `remote` (its span): the message crosses nodes under its type's name.
    pub(crate) remote: Option<Span>,
    /// `wire = "name"`: the message crosses nodes under this name.
    pub(crate) wire: Option<Keyed<LitStr>>,
}

/// `#[handler("topic")]`, `#[handler("topic", remote)]` or `#[handler]`.
pub(crate) struct HandlerArgs {
    pub(crate) topic: Option<LitStr>,
    pub(crate) remote: Option<Span>,
}

/// Reads `key` and `key = value` items separated by commas, handing each key to `each`,
/// which reads the `= value` if the key takes one.
fn parse_keys(
    input: ParseStream<'_>,
    mut each: impl FnMut(&Ident, ParseStream<'_>) -> syn::Result<()>,
) -> syn::Result<()> {
    while !input.is_empty() {
        let key = Ident::parse_any(input)?;
        each(&key, input)?;
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(())
}

/// Reads `= value` after `key`, unless `key` was given before.
fn value<T: syn::parse::Parse>(
    given: bool,
    key: &Ident,
    form: &str,
    input: ParseStream<'_>,
) -> syn::Result<T> {
    flag(given, key, form)?;
    input.parse::<Token![=]>()?;
    input.parse()
}

/// An error if `key` was given before.
fn flag(given: bool, key: &Ident, form: &str) -> syn::Result<()> {
    if given {
        return Err(syn::Error::new(
            key.span(),
            format!("`{key}` is given twice; keep one `{form}`"),
        ));
    }
    Ok(())
}

fn keyed<T>(key: &Ident, value: T) -> Option<Keyed<T>> {
    Some(Keyed {
        key: key.span(),
        value,
    })
}

/// Parses the arguments of `#[component(...)]`.
pub(crate) fn component_args(cx: &Ctxt, tokens: TokenStream) -> ComponentArgs {
    let mut args = ComponentArgs::default();
    let parser = |input: ParseStream<'_>| {
        parse_keys(input, |key, input| {
            if key == "config" {
                let v = value(args.config.is_some(), key, "config = Type", input)?;
                args.config = keyed(key, v);
            } else if key == "name" {
                let v = value(args.name.is_some(), key, "name = \"...\"", input)?;
                args.name = keyed(key, v);
            } else if key == "supervise" {
                let v = value(args.supervise.is_some(), key, "supervise = policy", input)?;
                args.supervise = keyed(key, v);
            } else if key == "after" {
                flag(args.after.is_some(), key, "after = [Component, ...]")?;
                input.parse::<Token![=]>()?;
                let list;
                syn::bracketed!(list in input);
                let types = list.parse_terminated(Type::parse, Token![,])?;
                args.after = keyed(key, types.into_iter().collect());
            } else if key == "worker" {
                flag(args.worker.is_some(), key, "worker")?;
                args.worker = Some(key.span());
            } else if key == "crate" {
                args.krate = Some(value(args.krate.is_some(), key, "crate = path", input)?);
            } else {
                return Err(syn::Error::new(
                    key.span(),
                    "unknown option; `#[component]` takes `config = Type`, `name = \"...\"`, `worker`, `supervise = policy`, `after = [Component, ...]` and `crate = path`",
                ));
            }
            Ok(())
        })
    };
    if let Err(e) = parser.parse2(tokens) {
        cx.syn_error(e);
    }
    args
}

/// Parses the arguments of `#[fluxor::test(...)]`.
pub(crate) fn test_args(cx: &Ctxt, tokens: TokenStream) -> TestArgs {
    let mut args = TestArgs::default();
    let parser = |input: ParseStream<'_>| {
        parse_keys(input, |key, input| {
            if key == "real_time" {
                flag(args.real_time, key, "real_time")?;
                args.real_time = true;
            } else if key == "allow_crashes" {
                flag(args.allow_crashes, key, "allow_crashes")?;
                args.allow_crashes = true;
            } else if key == "reactors" {
                let v = value(args.reactors.is_some(), key, "reactors = N", input)?;
                args.reactors = Some(v);
            } else if key == "crate" {
                args.krate = Some(value(args.krate.is_some(), key, "crate = path", input)?);
            } else {
                return Err(syn::Error::new(
                    key.span(),
                    "unknown option; `#[fluxor::test]` takes `real_time`, `allow_crashes`, `reactors = N` and `crate = path`",
                ));
            }
            Ok(())
        })
    };
    if let Err(e) = parser.parse2(tokens) {
        cx.syn_error(e);
    }
    args
}

/// Parses every `#[message(...)]` attribute of a `#[derive(Message)]` input.
pub(crate) fn message_args(cx: &Ctxt, attrs: &[syn::Attribute]) -> MessageArgs {
    let mut args = MessageArgs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("message")) {
        let result = attr.parse_nested_meta(|meta| {
            let Some(key) = meta.path.get_ident() else {
                return Err(meta.error(UNKNOWN_MESSAGE_KEY));
            };
            if key == "reply" {
                flag(args.reply.is_some(), key, "reply = Type")?;
                args.reply = Some(meta.value()?.parse()?);
            } else if key == "crate" {
                flag(args.krate.is_some(), key, "crate = path")?;
                args.krate = Some(meta.value()?.parse()?);
            } else if key == "remote" {
                flag(args.remote.is_some(), key, "remote")?;
                args.remote = Some(key.span());
            } else if key == "wire" {
                flag(args.wire.is_some(), key, "wire = \"name\"")?;
                let name: LitStr = meta.value()?.parse()?;
                if name.value().trim().is_empty() || name.value().chars().any(char::is_whitespace) {
                    return Err(syn::Error::new(
                        name.span(),
                        "a wire name is a non-empty string without whitespace, like \"cart.add.v1\"",
                    ));
                }
                args.wire = keyed(key, name);
            } else {
                return Err(meta.error(UNKNOWN_MESSAGE_KEY));
            }
            Ok(())
        });
        if let Err(e) = result {
            cx.syn_error(e);
        }
    }
    args
}

const UNKNOWN_MESSAGE_KEY: &str =
    "unknown key in `#[message(...)]`; the keys are `reply = Type`, `remote`, `wire = \"name\"` and `crate = path`";

/// Parses the arguments of a `#[handler]` attribute found in a `#[component]` impl block.
pub(crate) fn handler_args(cx: &Ctxt, attr: &syn::Attribute) -> Option<HandlerArgs> {
    let syn::Meta::List(list) = &attr.meta else {
        return Some(HandlerArgs {
            topic: None,
            remote: None,
        });
    };
    let parser = |input: ParseStream<'_>| {
        if input.is_empty() {
            return Ok(HandlerArgs {
                topic: None,
                remote: None,
            });
        }
        if !input.peek(LitStr) {
            return Err(input.error(
                "`#[handler]` takes the topic as a string, like `#[handler(\"orders.create\")]`, or nothing for direct messages",
            ));
        }
        let topic: LitStr = input.parse()?;
        let mut remote = None;
        if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
            let key = Ident::parse_any(input)?;
            if key != "remote" {
                return Err(syn::Error::new(
                    key.span(),
                    "unknown option; after the topic, `#[handler]` takes only `remote` (the handler also serves other nodes of a cluster)",
                ));
            }
            remote = Some(key.span());
            input.parse::<Option<Token![,]>>()?;
        }
        if !input.is_empty() {
            return Err(input.error(
                "`#[handler]` takes the topic string and optionally `remote`; remove what follows",
            ));
        }
        Ok(HandlerArgs {
            topic: Some(topic),
            remote,
        })
    };
    match parser.parse2(list.tokens.clone()) {
        Ok(args) => Some(args),
        Err(e) => {
            cx.syn_error(e);
            None
        }
    }
}
