//! The `#[job]` attribute of the [`jobs`](https://docs.rs/jobs) framework.
//!
//! Use it through `jobs::job`, whose documentation is the reference; this
//! crate is an implementation detail.

// The expansion runs in stages, one per file: `attr.rs` parses the
// attribute's `key = value` pairs into typed values (durations, rates,
// queue names, cron expressions and time zones with the `jobs-schedule`
// functions the runtime parses them with, so that what compiles schedules
// and enqueues), `ast.rs` reads the
// function and classifies its parameters (checking what the signature alone
// can tell), `valid.rs` checks the two against each other (a schedule
// without payload, `key` and `unique(by = ..)` naming payload parameters), and `expand.rs`
// generates the code (`fallback.rs`, when the signature is rejected: items
// that let the job's uses compile). Errors from every stage are collected (`errors.rs`)
// and reported together; rustc checks the rest (serde bounds, return type,
// `Send`) on spans that point at the user's own tokens.

mod ast;
mod attr;
mod errors;
mod expand;
mod fallback;
mod valid;

use proc_macro::TokenStream;

/// The `#[job]` attribute of `jobs`, re-exported and documented as
/// `jobs::job`.
#[proc_macro_attribute]
pub fn job(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::job(args.into(), input.into()).into()
}
