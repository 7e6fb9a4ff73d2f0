//! Shared helpers for the examples and integration tests of the `jobs`
//! workspace. Not published.
//!
//! [`suite`] is the queue behaviour suite: written once, generic over the
//! queue, and run against every backend with [`queue_behaviour_suite!`].

pub mod probe;
pub mod suite;

// The README's examples compile as doc tests of this crate.
#[doc = include_str!("../README.md")]
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
