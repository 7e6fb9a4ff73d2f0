//! The `#[job]` attribute of the [`jobs`](https://docs.rs/jobs) framework.
//!
//! Use it through `jobs::job`; this crate is an implementation detail.

use proc_macro::TokenStream;

/// Turns an `async fn` into a background job. See `jobs::job` for the full
/// documentation.
#[proc_macro_attribute]
pub fn job(_args: TokenStream, input: TokenStream) -> TokenStream {
    input
}
