//! Procedural macros for [fluxor](https://docs.rs/fluxor). Use them through the `fluxor` crate,
//! which re-exports them and documents them with examples.

mod message;

use proc_macro::TokenStream;

/// Derives `fluxor::Message`. See the documentation re-exported by `fluxor`.
#[proc_macro_derive(Message, attributes(message))]
pub fn derive_message(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    message::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
