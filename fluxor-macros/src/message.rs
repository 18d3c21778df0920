//! `#[derive(Message)]`: parse `#[message(...)]`, then generate the impl.

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

use crate::attr;
use crate::ctxt::{self, Ctxt, Failure};
use crate::generate;

pub(crate) fn expand(input: TokenStream) -> Result<TokenStream, Failure> {
    let cx = Ctxt::new();
    let input = match syn::parse2::<DeriveInput>(input) {
        Ok(input) => input,
        Err(e) => {
            cx.syn_error(e);
            return ctxt::finish(cx, TokenStream::new());
        }
    };
    // On a bad key, the impl is generated with what could be read, so that the messages's
    // uses do not add errors of their own.
    let args = attr::message_args(&cx, &input.attrs);
    let krate = generate::krate(args.krate.as_ref());
    let reply = args.reply.map_or_else(|| quote!(()), |t| quote!(#t));
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let mut predicates = where_clause
        .map(|w| w.predicates.clone())
        .unwrap_or_default();
    // Messages cross reactor threads; a generic message is one only for `Send` parameters.
    if !input.generics.params.is_empty() {
        predicates
            .push(syn::parse_quote_spanned!(name.span()=> Self: ::core::marker::Send + 'static));
    }
    let code = quote! {
        #[automatically_derived]
        impl #impl_generics #krate::Message for #name #ty_generics where #predicates {
            type Reply = #reply;
        }
    };
    ctxt::finish(cx, code)
}
