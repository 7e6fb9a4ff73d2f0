//! The conformance suite every `jobs` queue backend passes, and helpers for
//! tests that run several processes.
//!
//! Writing a [`JobQueue`](jobs::JobQueue) for another store? Put one line
//! in a test file and every case of the suite runs against it, one
//! `#[tokio::test]` per case:
//!
//! ```ignore
//! jobs_testkit::queue_behaviour_suite!(async { Some(MyQueue::connect(..).await.unwrap()) });
//! ```
//!
//! The expression is evaluated once per case and must yield a fresh, empty
//! queue (or `None` to skip the case, e.g. when the store is not
//! configured). The cases need a multi-threaded tokio runtime, which the
//! generated tests set up.
//!
//! - [`suite`]: the cases ([`suite::cases`]), and [`suite::Running`], a
//!   worker run in the background for the length of a test.
//! - [`probe::Probe`]: a scripted processor that records every attempt.
//! - [`child::ChildProcess`]: the running test binary started again as a
//!   child process (a second worker, a process to kill).
//! - [`server::PrivateRedis`]: a `redis-server` of the test's own, to
//!   freeze, kill and restart; [`server::PrivatePostgres`]: a PostgreSQL
//!   server of the test's own (`initdb`, `pg_ctl`), to crash and restart.
//! - [`redis_url`], [`unique_name`]: which server to test against, and names
//!   no other test uses; [`eventually`]: polls for a state another process
//!   reaches.

mod admin;
pub mod child;
mod flow;
pub mod probe;
pub mod server;
pub mod suite;
mod workflow;

use std::time::Duration;

/// Polls `check` every 20 ms until it holds, failing the test after
/// `limit` with `what` in the message: for states another process (a
/// server, a worker) reaches, where there is no event to await.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The Redis URL tests run against (`JOBS_REDIS_URL`), or `None` after
/// printing that the calling test skipped. With `JOBS_REQUIRE_REDIS` set (as
/// in CI) a missing URL fails the test instead.
pub fn redis_url() -> Option<String> {
    service_url(
        "JOBS_REDIS_URL",
        "JOBS_REQUIRE_REDIS",
        "redis://127.0.0.1:6379",
    )
}

/// The PostgreSQL URL tests run against (`JOBS_DATABASE_URL`), or `None`
/// after printing that the calling test skipped. With
/// `JOBS_REQUIRE_POSTGRES` set (as in CI) a missing URL fails the test.
pub fn database_url() -> Option<String> {
    service_url(
        "JOBS_DATABASE_URL",
        "JOBS_REQUIRE_POSTGRES",
        "postgres://postgres@127.0.0.1:5432/test",
    )
}

fn service_url(var: &str, require: &str, example: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var_os(require).is_none(),
                "{require} is set but {var} is not"
            );
            eprintln!("skipped: set {var} (e.g. {example}) to run this test");
            None
        }
    }
}

/// A name no other test uses (`prefix-<uuid>`), for queues and keys, so
/// tests can share one server and run in parallel.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", jobs::JobId::new())
}
