//! The error context of one expansion, and what an expansion that found errors emits.

use std::cell::RefCell;
use std::fmt::Display;

use proc_macro2::TokenStream;
use quote::ToTokens;

/// Collects the errors of one expansion, so that every mistake in the input is reported in
/// one compilation rather than one per attempt.
///
/// Parsing and checking push errors here; the expansion then calls [`Ctxt::check`]. A
/// context dropped before `check` was called panics: it would have lost errors silently.
pub(crate) struct Ctxt {
    /// `None` once [`Ctxt::check`] has taken the errors.
    errors: RefCell<Option<Vec<syn::Error>>>,
}

impl Ctxt {
    /// A context with no errors yet.
    pub(crate) fn new() -> Self {
        Ctxt {
            errors: RefCell::new(Some(Vec::new())),
        }
    }

    /// Records an error spanning `tokens`.
    pub(crate) fn error_spanned_by<T: ToTokens, M: Display>(&self, tokens: T, message: M) {
        self.syn_error(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error from `syn`, for instance a parse error.
    pub(crate) fn syn_error(&self, error: syn::Error) {
        self.errors
            .borrow_mut()
            .as_mut()
            .expect("an error was recorded after the context was checked")
            .push(error);
    }

    /// Whether any error has been recorded so far.
    pub(crate) fn has_errors(&self) -> bool {
        self.errors.borrow().as_ref().is_some_and(|e| !e.is_empty())
    }

    /// Ends the context: all its errors as one, or `Ok` if there were none.
    pub(crate) fn check(self) -> syn::Result<()> {
        let errors = self
            .errors
            .borrow_mut()
            .take()
            .expect("the context was checked twice");
        let mut errors = errors.into_iter();
        let Some(mut all) = errors.next() else {
            return Ok(());
        };
        for e in errors {
            all.combine(e);
        }
        Err(all)
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        if self.errors.get_mut().is_some() && !std::thread::panicking() {
            panic!("fluxor-macros: an error context was dropped without `Ctxt::check`; its errors would have been lost");
        }
    }
}

/// An expansion that found mistakes: the errors, and the code to emit beside them.
///
/// The code is the user's item (without fluxor's method attributes) and, where it does not
/// depend on the mistake, what the macro generates for it; so that the rest of the crate
/// still finds the item and the only errors are the ones about the mistakes.
pub(crate) struct Failure {
    code: TokenStream,
    errors: syn::Error,
}

impl Failure {
    pub(crate) fn new(code: TokenStream, errors: syn::Error) -> Self {
        Failure { code, errors }
    }

    /// The code, followed by a `compile_error!` for each error.
    pub(crate) fn into_compile_error(self) -> TokenStream {
        let mut out = self.code;
        out.extend(self.errors.into_compile_error());
        out
    }
}

/// `Ok(code)` if `cx` has no errors, else a [`Failure`] that emits `code` beside them.
pub(crate) fn finish(cx: Ctxt, code: TokenStream) -> Result<TokenStream, Failure> {
    match cx.check() {
        Ok(()) => Ok(code),
        Err(errors) => Err(Failure::new(code, errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::Ctxt;
    use quote::quote;

    #[test]
    fn check_returns_every_error() {
        let cx = Ctxt::new();
        cx.error_spanned_by(quote!(first), "one");
        cx.error_spanned_by(quote!(second), "two");
        assert!(cx.has_errors());
        let errors = cx.check().unwrap_err();
        assert_eq!(errors.into_iter().count(), 2);
    }

    #[test]
    fn a_context_without_errors_checks_ok() {
        assert!(Ctxt::new().check().is_ok());
    }

    #[test]
    #[should_panic(expected = "without `Ctxt::check`")]
    fn a_context_dropped_unchecked_panics() {
        let cx = Ctxt::new();
        cx.error_spanned_by(quote!(lost), "never reported");
        drop(cx);
    }
}
