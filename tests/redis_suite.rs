//! The queue behaviour suite against a real Redis (`JOBS_REDIS_URL`).
//!
//! Each case gets its own queue name, so the cases run in parallel on one
//! Redis. Without `JOBS_REDIS_URL` every case prints that it skipped and
//! passes, unless `JOBS_REQUIRE_REDIS` is set.
#![cfg(feature = "redis")]

use jobs::RedisJobQueue;

/// A fresh queue with a unique name, or `None` (skip) without Redis.
async fn queue() -> Option<RedisJobQueue> {
    let Ok(url) = std::env::var("JOBS_REDIS_URL") else {
        assert!(
            std::env::var_os("JOBS_REQUIRE_REDIS").is_none(),
            "JOBS_REQUIRE_REDIS is set but JOBS_REDIS_URL is not"
        );
        eprintln!(
            "skipped: set JOBS_REDIS_URL (e.g. redis://127.0.0.1:6379) to run the Redis suite"
        );
        return None;
    };
    let name = format!("suite-{}", jobs::JobId::new());
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    Some(queue)
}

jobs_examples::queue_behaviour_suite!(queue());
