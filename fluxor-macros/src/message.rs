//! `#[derive(Message)]`: parse `#[message(...)]`, then generate the impl.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, Path, Type};

/// What `#[message(...)]` says.
#[derive(Default)]
struct MessageAttr {
    reply: Option<Type>,
    krate: Option<Path>,
}

fn parse_attrs(input: &DeriveInput) -> syn::Result<MessageAttr> {
    let mut attr = MessageAttr::default();
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    for a in input.attrs.iter().filter(|a| a.path().is_ident("message")) {
        let result = a.parse_nested_meta(|meta| {
            if meta.path.is_ident("reply") {
                if attr.reply.is_some() {
                    return Err(meta.error("`reply` is given twice; keep one `reply = Type`"));
                }
                attr.reply = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("crate") {
                if attr.krate.is_some() {
                    return Err(meta.error("`crate` is given twice; keep one `crate = path`"));
                }
                attr.krate = Some(meta.value()?.parse()?);
                Ok(())
            } else {
                Err(meta.error(
                    "unknown key in `#[message(...)]`; the keys are `reply = Type` and `crate = path`",
                ))
            }
        });
        if let Err(e) = result {
            push(e);
        }
    }
    match errors {
        Some(e) => Err(e),
        None => Ok(attr),
    }
}

pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let attr = parse_attrs(input)?;
    let krate = attr.krate.map_or_else(|| quote!(::fluxor), |p| quote!(#p));
    let reply = attr.reply.map_or_else(|| quote!(()), |t| quote!(#t));
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
    Ok(quote! {
        impl #impl_generics #krate::Message for #name #ty_generics where #predicates {
            type Reply = #reply;
        }
    })
}
