//! `#[handler]`, `#[on_start]` and `#[on_stop]` used outside a `#[component]` impl block:
//! `#[component]` removes them from its methods, so reaching their own expansion is a mistake.

use proc_macro2::{Span, TokenStream};

use crate::ctxt::{self, Ctxt, Failure};

pub(crate) fn expand(name: &str, input: TokenStream) -> Result<TokenStream, Failure> {
    let cx = Ctxt::new();
    let span = syn::parse2::<syn::ImplItemFn>(input.clone())
        .map_or_else(|_| Span::call_site(), |f| f.sig.ident.span());
    cx.syn_error(syn::Error::new(
        span,
        format!("`#[{name}]` only works on a method inside an `impl` block marked `#[component]`; add `#[component]` to the impl block"),
    ));
    ctxt::finish(cx, input)
}
