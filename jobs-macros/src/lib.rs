//! The `#[job]` attribute of the [`jobs`](https://docs.rs/jobs) framework.
//!
//! Use it through `jobs::job`, whose documentation is the reference; this
//! crate is an implementation detail.
//!
//! The expansion runs in stages, one per file: [`attr`] parses the
//! attribute's `key = value` pairs into typed values, [`ast`] reads the
//! function and classifies its parameters (checking what the signature
//! alone can tell), [`valid`] checks the two against each other, and
//! [`expand`] generates the code. Errors from every
//! stage are collected ([`errors`]) and reported together; rustc checks the
//! rest (serde bounds, return type, `Send`) on spans that point at the
//! user's own tokens.

mod ast;
mod attr;
mod errors;
mod expand;
mod schedule;
mod valid;

use proc_macro::TokenStream;

/// Turns an `async fn` into a background job. See `jobs::job` for the full
/// documentation.
#[proc_macro_attribute]
pub fn job(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::job(args.into(), input.into()).into()
}
