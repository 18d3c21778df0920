//! Procedural macros for [fluxor](https://docs.rs/fluxor). Use them through the `fluxor` crate,
//! which re-exports them and documents them with examples.

mod attr;
mod component;
mod ctxt;
mod message;
mod model;
mod test_attr;
mod topic;
// `is_pattern` and `matches` are the runtime's; the macros only check topics.
#[allow(dead_code, unreachable_pub)]
mod topic_rules;

use proc_macro::TokenStream;
use quote::ToTokens;

/// Derives `fluxor::Message`. See the documentation re-exported by `fluxor`.
#[proc_macro_derive(Message, attributes(message))]
pub fn derive_message(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    message::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Turns a struct and its impl block into a component. See the documentation re-exported by
/// `fluxor`.
#[proc_macro_attribute]
pub fn component(args: TokenStream, input: TokenStream) -> TokenStream {
    // On bad arguments, expand with the defaults anyway, so the only error is the argument's.
    let (args, args_error) = match syn::parse::<attr::ComponentArgs>(args) {
        Ok(a) => (a, None),
        Err(e) => (attr::ComponentArgs::default(), Some(e)),
    };
    let mut out: proc_macro2::TokenStream = match syn::parse::<syn::Item>(input.clone()) {
        Ok(syn::Item::Struct(s)) => component::expand_struct(&args, &s)
            .unwrap_or_else(|e| token_stream_with_error(s.into_token_stream(), e)),
        Ok(syn::Item::Impl(mut i)) => component::expand_impl(&args, &mut i),
        Ok(other) => token_stream_with_error(
            input.into(),
            syn::Error::new_spanned(
                item_keyword(&other),
                "`#[component]` goes on a struct and on that struct's `impl` block",
            ),
        ),
        Err(e) => token_stream_with_error(input.into(), e),
    };
    if let Some(e) = args_error {
        out.extend(e.into_compile_error());
    }
    out.into()
}

/// Runs an async test against a fresh `fluxor::testing::TestRuntime`. See the documentation
/// re-exported by `fluxor`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, input: TokenStream) -> TokenStream {
    let args = match syn::parse::<test_attr::TestArgs>(args) {
        Ok(a) => a,
        Err(e) => return with_error(input, e),
    };
    match syn::parse::<syn::ItemFn>(input.clone()) {
        Ok(f) => test_attr::expand(&args, &f)
            .unwrap_or_else(|e| token_stream_with_error(f.into_token_stream(), e))
            .into(),
        Err(e) => with_error(input, e),
    }
}

/// Marks a method of a `#[component]` impl block as a message handler. Only meaningful inside
/// such a block; anywhere else it is an error.
#[proc_macro_attribute]
pub fn handler(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_component("handler", input)
}

/// Marks a method of a `#[component]` impl block as its start hook. Only meaningful inside such
/// a block; anywhere else it is an error.
#[proc_macro_attribute]
pub fn on_start(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_component("on_start", input)
}

/// Marks a method of a `#[component]` impl block as its stop hook. Only meaningful inside such
/// a block; anywhere else it is an error.
#[proc_macro_attribute]
pub fn on_stop(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_component("on_stop", input)
}

/// The topic rules (`topic_rules.rs`) as items, for `fluxor`'s own use. Not a public API.
#[doc(hidden)]
#[proc_macro]
pub fn __topic_rules(_input: TokenStream) -> TokenStream {
    include_str!("topic_rules.rs")
        .parse()
        .expect("topic_rules.rs is valid Rust")
}

fn outside_component(name: &str, input: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(input.clone());
    let span = syn::parse2::<syn::ImplItemFn>(item.clone())
        .map(|f| f.sig.ident.span())
        .unwrap_or_else(|_| proc_macro2::Span::call_site());
    with_error(
        input,
        syn::Error::new(
            span,
            format!("`#[{name}]` only works on a method inside an `impl` block marked `#[component]`; add `#[component]` to the impl block"),
        ),
    )
}

fn item_keyword(item: &syn::Item) -> proc_macro2::TokenStream {
    match item {
        syn::Item::Enum(e) => e.enum_token.into_token_stream(),
        syn::Item::Fn(f) => f.sig.fn_token.into_token_stream(),
        syn::Item::Trait(t) => t.trait_token.into_token_stream(),
        other => other.into_token_stream(),
    }
}

/// The user's item unchanged, followed by the errors, so the IDE keeps working.
fn token_stream_with_error(
    item: proc_macro2::TokenStream,
    error: syn::Error,
) -> proc_macro2::TokenStream {
    let mut out = item;
    out.extend(error.into_compile_error());
    out
}

fn with_error(input: TokenStream, error: syn::Error) -> TokenStream {
    token_stream_with_error(input.into(), error).into()
}
