//! The arguments of `#[component(...)]` and `#[handler(...)]`, parsed with typed keywords.

use syn::parse::{Parse, ParseStream};
use syn::{LitStr, Path, Token, Type};

mod kw {
    syn::custom_keyword!(config);
    syn::custom_keyword!(name);
    syn::custom_keyword!(worker);
    syn::custom_keyword!(supervise);
}

/// `#[component(config = T, name = "..", worker, supervise = expr, crate = path)]`; every key
/// optional, none twice.
#[derive(Default)]
pub(crate) struct ComponentArgs {
    pub(crate) config: Option<Type>,
    pub(crate) name: Option<LitStr>,
    pub(crate) krate: Option<Path>,
    pub(crate) worker: Option<kw::worker>,
    pub(crate) supervise: Option<syn::Expr>,
}

impl Parse for ComponentArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = ComponentArgs::default();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::config) {
                let key: kw::config = input.parse()?;
                input.parse::<Token![=]>()?;
                if args.config.is_some() {
                    return Err(syn::Error::new_spanned(
                        key,
                        "`config` is given twice; keep one `config = Type`",
                    ));
                }
                args.config = Some(input.parse()?);
            } else if lookahead.peek(kw::name) {
                let key: kw::name = input.parse()?;
                input.parse::<Token![=]>()?;
                if args.name.is_some() {
                    return Err(syn::Error::new_spanned(
                        key,
                        "`name` is given twice; keep one `name = \"...\"`",
                    ));
                }
                args.name = Some(input.parse()?);
            } else if lookahead.peek(kw::supervise) {
                let key: kw::supervise = input.parse()?;
                input.parse::<Token![=]>()?;
                if args.supervise.is_some() {
                    return Err(syn::Error::new_spanned(
                        key,
                        "`supervise` is given twice; keep one `supervise = policy`",
                    ));
                }
                args.supervise = Some(input.parse()?);
            } else if lookahead.peek(kw::worker) {
                let key: kw::worker = input.parse()?;
                if args.worker.is_some() {
                    return Err(syn::Error::new_spanned(key, "`worker` is given twice"));
                }
                args.worker = Some(key);
            } else if lookahead.peek(Token![crate]) {
                let key: Token![crate] = input.parse()?;
                input.parse::<Token![=]>()?;
                if args.krate.is_some() {
                    return Err(syn::Error::new_spanned(
                        key,
                        "`crate` is given twice; keep one `crate = path`",
                    ));
                }
                args.krate = Some(input.parse()?);
            } else {
                let _ = lookahead;
                return Err(syn::Error::new(
                    input.span(),
                    "unknown option; `#[component]` takes `config = Type`, `name = \"...\"`, `worker`, `supervise = policy` and `crate = path`",
                ));
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

/// `#[handler("topic")]` or `#[handler]`.
pub(crate) struct HandlerArgs {
    pub(crate) topic: Option<LitStr>,
}

impl Parse for HandlerArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Ok(HandlerArgs { topic: None });
        }
        if !input.peek(LitStr) {
            return Err(input.error(
                "`#[handler]` takes the topic as a string, like `#[handler(\"orders.create\")]`, or nothing for direct messages",
            ));
        }
        let topic: LitStr = input.parse()?;
        if !input.is_empty() {
            return Err(input.error("`#[handler]` takes only the topic string"));
        }
        Ok(HandlerArgs { topic: Some(topic) })
    }
}
