//! `#[component]` on a struct and on its impl block: parse, check, generate.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{GenericParam, ItemImpl, ItemStruct};

use crate::attr::{self, ComponentArgs};
use crate::ctxt::{self, Ctxt, Failure};
use crate::{ast, check, generate};

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> Result<TokenStream, Failure> {
    let cx = Ctxt::new();
    let item = match syn::parse2::<syn::Item>(input.clone()) {
        Ok(item) => item,
        Err(e) => {
            cx.syn_error(e);
            return ctxt::finish(cx, input);
        }
    };
    if !check::component_item(&cx, &item) {
        return ctxt::finish(cx, input);
    }
    // On bad arguments, expand with the defaults anyway, so the only error is the argument's.
    let args = attr::component_args(&cx, args);
    match item {
        syn::Item::Struct(s) => expand_struct(cx, &args, &s),
        syn::Item::Impl(mut i) => expand_impl(cx, &args, &mut i),
        _ => ctxt::finish(cx, input),
    }
}

/// The struct, then its `Declared` impl. A struct that breaks a rule is emitted alone.
fn expand_struct(
    cx: Ctxt,
    args: &ComponentArgs,
    item: &ItemStruct,
) -> Result<TokenStream, Failure> {
    let declared = check::struct_does_not_borrow(&cx, item).then(|| generate::declared(args, item));
    ctxt::finish(cx, quote!(#item #declared))
}

/// The impl block (without fluxor's method attributes), then the generated code for the
/// handlers and hooks that passed the checks; the ones that did not are left out, so that
/// the only errors are about the mistakes, not about what the code would have done with them.
fn expand_impl(
    cx: Ctxt,
    args: &ComponentArgs,
    item: &mut ItemImpl,
) -> Result<TokenStream, Failure> {
    let parsed = ast::parse(&cx, item);
    let model = check::impl_block(&cx, args, item, &parsed);
    let borrows = item
        .generics
        .params
        .iter()
        .any(|p| matches!(p, GenericParam::Lifetime(_)));
    let code = if item.trait_.is_some() || borrows {
        // A trait impl is not a component's; a borrowing component is reported on its struct.
        quote!(#item)
    } else {
        generate::component_impl(&generate::krate(args.krate.as_ref()), item, &model)
    };
    ctxt::finish(cx, code)
}
