//! Shared helpers for the examples and integration tests of the `jobs`
//! workspace. Not published.
//!
//! [`suite`] is the queue behaviour suite: written once, generic over the
//! queue, and run against every backend with [`queue_behaviour_suite!`].

pub mod child;
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

/// The Redis URL tests run against (`JOBS_REDIS_URL`), or `None` after
/// printing that the calling test skipped. With `JOBS_REQUIRE_REDIS` set (as
/// in CI) a missing URL fails the test instead.
pub fn redis_url() -> Option<String> {
    match std::env::var("JOBS_REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var_os("JOBS_REQUIRE_REDIS").is_none(),
                "JOBS_REQUIRE_REDIS is set but JOBS_REDIS_URL is not"
            );
            eprintln!("skipped: set JOBS_REDIS_URL (e.g. redis://127.0.0.1:6379) to run this test");
            None
        }
    }
}

/// A name no other test uses (`prefix-<uuid>`), for queues and keys, so
/// tests can share one Redis and run in parallel.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", jobs::JobId::new())
}
