//! Shared helpers for the examples and integration tests of the `jobs`
//! workspace. Not published.
//!
//! The conformance suite and the multi-process helpers are in
//! `jobs-testkit`; this crate re-exports the test helpers under their old
//! paths for the tests here.

pub use jobs_testkit::{child, probe, redis_url, suite, unique_name};

// The README's examples compile as doc tests of this crate.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Logs to stderr through `tracing`, at the level `RUST_LOG` says (default
/// `warn`): what every example calls first.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
}
