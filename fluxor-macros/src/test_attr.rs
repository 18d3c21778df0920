//! `#[fluxor::test]`: runs an async test body against a fresh `TestRuntime`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitInt, Path, Token};

mod kw {
    syn::custom_keyword!(real_time);
    syn::custom_keyword!(allow_crashes);
    syn::custom_keyword!(reactors);
}

/// `#[fluxor::test(real_time, allow_crashes, reactors = N, crate = path)]`.
#[derive(Default)]
pub(crate) struct TestArgs {
    real_time: bool,
    allow_crashes: bool,
    reactors: Option<LitInt>,
    krate: Option<Path>,
}

impl Parse for TestArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = TestArgs::default();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::real_time) {
                let k: kw::real_time = input.parse()?;
                if std::mem::replace(&mut args.real_time, true) {
                    return Err(syn::Error::new_spanned(k, "`real_time` is given twice"));
                }
            } else if lookahead.peek(kw::allow_crashes) {
                let k: kw::allow_crashes = input.parse()?;
                if std::mem::replace(&mut args.allow_crashes, true) {
                    return Err(syn::Error::new_spanned(k, "`allow_crashes` is given twice"));
                }
            } else if lookahead.peek(kw::reactors) {
                let k: kw::reactors = input.parse()?;
                input.parse::<Token![=]>()?;
                let n: LitInt = input.parse()?;
                if n.base10_parse::<usize>().map_or(true, |v| v == 0) {
                    return Err(syn::Error::new_spanned(
                        &n,
                        "`reactors` must be a positive integer",
                    ));
                }
                if args.reactors.replace(n).is_some() {
                    return Err(syn::Error::new_spanned(k, "`reactors` is given twice"));
                }
            } else if lookahead.peek(Token![crate]) {
                let k: Token![crate] = input.parse()?;
                input.parse::<Token![=]>()?;
                if args.krate.replace(input.parse()?).is_some() {
                    return Err(syn::Error::new_spanned(k, "`crate` is given twice"));
                }
            } else {
                return Err(syn::Error::new(
                    input.span(),
                    "unknown option; `#[fluxor::test]` takes `real_time`, `allow_crashes`, `reactors = N` and `crate = path`",
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

pub(crate) fn expand(args: &TestArgs, item: &ItemFn) -> syn::Result<TokenStream> {
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            sig.fn_token,
            "`#[fluxor::test]` goes on an `async fn`",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "a test function cannot be generic",
        ));
    }
    let krate = args
        .krate
        .as_ref()
        .map_or_else(|| quote!(::fluxor), |p| quote!(#p));
    let mut inputs = sig.inputs.iter();
    let param = match inputs.next() {
        None => quote!(_),
        Some(FnArg::Typed(pt)) => {
            let pat = &pt.pat;
            let ty = &pt.ty;
            quote_spanned!(pt.span()=> #pat: #ty)
        }
        Some(FnArg::Receiver(r)) => {
            return Err(syn::Error::new_spanned(
                r,
                "a test function cannot take `self`",
            ));
        }
    };
    if let Some(extra) = inputs.next() {
        return Err(syn::Error::new_spanned(
            extra,
            "a test function takes at most one parameter: the `TestRuntime`",
        ));
    }
    let mut options = quote!(#krate::testing::TestOptions::new());
    if args.real_time {
        options.extend(quote!(.real_time()));
    }
    if args.allow_crashes {
        options.extend(quote!(.allow_crashes()));
    }
    if let Some(n) = &args.reactors {
        options.extend(quote!(.reactors(#n)));
    }
    let name = &sig.ident;
    let vis = &item.vis;
    let attrs = &item.attrs;
    let ret = match &sig.output {
        syn::ReturnType::Default => quote!(()),
        syn::ReturnType::Type(_, ty) => quote!(#ty),
    };
    let body = &item.block;
    Ok(quote! {
        #(#attrs)*
        #[::core::prelude::v1::test]
        #vis fn #name() {
            #krate::testing::__run(#options, |#param| async move {
                let outcome: #ret = #body;
                outcome
            });
        }
    })
}
