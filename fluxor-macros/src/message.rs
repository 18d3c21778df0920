//! `#[derive(Message)]`: parse `#[message(...)]`, then generate the impl.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
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
    // `remote` / `wire = ".."`: the message crosses nodes under a stable name. Errors about
    // its serde impls point at the option.
    let wire = match (&args.wire, args.remote) {
        (Some(w), _) => Some((w.value.value(), w.key)),
        (None, Some(span)) => Some((name.to_string(), span)),
        (None, None) => None,
    };
    let remote = wire.and_then(|(wire, span)| {
        if !input.generics.params.is_empty() {
            cx.syn_error(syn::Error::new(
                span,
                "a generic message cannot cross nodes: every instance would share one wire name; define a concrete message type for the wire",
            ));
            return None;
        }
        Some((wire, span))
    });
    let wire_fn = remote.as_ref().map(|(_, span)| {
        quote_spanned! {*span=>
            fn __wire() -> ::core::option::Option<#krate::__private::Wire<Self>> {
                ::core::option::Option::Some(#krate::__private::wire::<Self>())
            }
        }
    });
    let remote_impl = remote.as_ref().map(|(wire, span)| {
        quote_spanned! {*span=>
            #[automatically_derived]
            impl #krate::RemoteMessage for #name {
                const WIRE: &'static str = #wire;
            }
        }
    });
    let code = quote! {
        #[automatically_derived]
        impl #impl_generics #krate::Message for #name #ty_generics where #predicates {
            type Reply = #reply;
            #wire_fn
        }
        #remote_impl
    };
    ctxt::finish(cx, code)
}
