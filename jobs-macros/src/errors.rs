//! Collecting errors so that one compile reports every mistake.

use std::fmt::Display;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;

/// Errors found so far, combined with `syn::Error::combine`.
#[derive(Default)]
pub(crate) struct Errors {
    error: Option<syn::Error>,
}

impl Errors {
    /// Records an error at `span`.
    pub(crate) fn at(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Records an error spanning `tokens` (all of them, not just the first).
    pub(crate) fn on(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.error {
            Some(first) => first.combine(error),
            None => self.error = Some(error),
        }
    }

    /// Whether nothing was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.error.is_none()
    }

    /// The errors as `compile_error!` invocations (empty if none).
    pub(crate) fn into_compile_errors(self) -> TokenStream {
        self.error
            .map(syn::Error::into_compile_error)
            .unwrap_or_default()
    }
}

/// Tokens as a user would write them in a message (`Vec<u8>`, not
/// `Vec < u8 >`).
pub(crate) fn written(tokens: impl ToTokens) -> String {
    let mut text = tokens.to_token_stream().to_string();
    for (from, to) in [
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ::", "::"),
        (":: ", "::"),
        (" ,", ","),
        ("& ", "&"),
        ("' ", "'"),
        (" ;", ";"),
        (" : ", ": "),
    ] {
        text = text.replace(from, to);
    }
    text
}
