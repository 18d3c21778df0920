//! `#[fluxor::test]`: runs an async test body against a fresh `TestRuntime`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn};

use crate::attr::{self, TestArgs};
use crate::ctxt::{self, Ctxt, Failure};
use crate::{check, generate};

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> Result<TokenStream, Failure> {
    let cx = Ctxt::new();
    let item = match syn::parse2::<ItemFn>(input.clone()) {
        Ok(item) => item,
        Err(e) => {
            cx.syn_error(e);
            return ctxt::finish(cx, input);
        }
    };
    let args = attr::test_args(&cx, args);
    let ok = check::test_is_async(&cx, &item.sig)
        && check::test_not_generic(&cx, &item.sig)
        && check::test_params(&cx, &item.sig)
        && check::reactors_positive(&cx, args.reactors.as_ref());
    if !ok || cx.has_errors() {
        // The function is left out: nothing refers to a test function, and as written it
        // could add errors of its own (a free `fn` taking `self`).
        return ctxt::finish(cx, TokenStream::new());
    }
    ctxt::finish(cx, generate_test(&args, &item))
}

fn generate_test(args: &TestArgs, item: &ItemFn) -> TokenStream {
    let sig = &item.sig;
    let krate = generate::krate(args.krate.as_ref());
    let param = match sig.inputs.first() {
        Some(FnArg::Typed(pt)) => {
            let pat = &pt.pat;
            let ty = &pt.ty;
            quote_spanned!(pt.span()=> #pat: #ty)
        }
        _ => quote!(_),
    };
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
    quote! {
        #(#attrs)*
        #[::core::prelude::v1::test]
        #vis fn #name() {
            #krate::testing::__run(#options, |#param| async move {
                let outcome: #ret = #body;
                outcome
            });
        }
    }
}
