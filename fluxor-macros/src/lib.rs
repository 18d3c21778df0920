//! Procedural macros for [fluxor](https://docs.rs/fluxor). Use them through the `fluxor` crate,
//! which re-exports them and documents them with examples.
//!
//! Each expansion goes through three stages with one error context (`ctxt::Ctxt`): parse
//! the input into a model (`attr`, `ast`), check it against the rules, one function per rule
//! (`check`), then generate the code (`generate`). This file holds only the entry points.

mod ast;
mod attr;
mod check;
mod component;
mod ctxt;
mod generate;
mod message;
mod model;
mod outside;
mod test_attr;
// `matches` is the runtime's; the macros check topics and tell patterns apart.
#[allow(dead_code, unreachable_pub)]
mod topic_rules;

use proc_macro::TokenStream;

/// Derives `fluxor::Message`. See the documentation re-exported by `fluxor`.
#[proc_macro_derive(Message, attributes(message))]
pub fn derive_message(input: TokenStream) -> TokenStream {
    message::expand(input.into())
        .unwrap_or_else(ctxt::Failure::into_compile_error)
        .into()
}

/// Turns a struct and its impl block into a component. See the documentation re-exported by
/// `fluxor`.
#[proc_macro_attribute]
pub fn component(args: TokenStream, input: TokenStream) -> TokenStream {
    component::expand(args.into(), input.into())
        .unwrap_or_else(ctxt::Failure::into_compile_error)
        .into()
}

/// Runs an async test against a fresh `fluxor::testing::TestRuntime`. See the documentation
/// re-exported by `fluxor`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, input: TokenStream) -> TokenStream {
    test_attr::expand(args.into(), input.into())
        .unwrap_or_else(ctxt::Failure::into_compile_error)
        .into()
}

/// Marks a method of a `#[component]` impl block as a message handler. Only meaningful inside
/// such a block; anywhere else it is an error.
#[proc_macro_attribute]
pub fn handler(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside::expand("handler", input.into())
        .unwrap_or_else(ctxt::Failure::into_compile_error)
        .into()
}

/// Marks a method of a `#[component]` impl block as its start hook. Only meaningful inside such
/// a block; anywhere else it is an error.
#[proc_macro_attribute]
pub fn on_start(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside::expand("on_start", input.into())
        .unwrap_or_else(ctxt::Failure::into_compile_error)
        .into()
}

/// Marks a method of a `#[component]` impl block as its config hook. Only meaningful inside
/// such a block; anywhere else it is an error.
#[proc_macro_attribute]
pub fn on_config(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside::expand("on_config", input.into())
        .unwrap_or_else(ctxt::Failure::into_compile_error)
        .into()
}

/// Marks a method of a `#[component]` impl block as its stop hook. Only meaningful inside such
/// a block; anywhere else it is an error.
#[proc_macro_attribute]
pub fn on_stop(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside::expand("on_stop", input.into())
        .unwrap_or_else(ctxt::Failure::into_compile_error)
        .into()
}

/// The topic rules (`topic_rules.rs`) as items, for `fluxor`'s own use. Not a public API.
#[doc(hidden)]
#[proc_macro]
pub fn __topic_rules(_input: TokenStream) -> TokenStream {
    include_str!("topic_rules.rs")
        .parse()
        .expect("topic_rules.rs is valid Rust")
}
