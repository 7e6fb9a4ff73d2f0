//! The queue behaviour suite against a real Redis (`JOBS_REDIS_URL`).
//!
//! Each case gets its own queue name, so the cases run in parallel on one
//! Redis. Without `JOBS_REDIS_URL` every case prints that it skipped and
//! passes, unless `JOBS_REQUIRE_REDIS` is set.
#![cfg(feature = "redis")]

use jobs::RedisJobQueue;

/// A fresh queue with a unique name, or `None` (skip) without Redis.
async fn queue() -> Option<RedisJobQueue> {
    let url = jobs_examples::redis_url()?;
    let name = jobs_examples::unique_name("suite");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    Some(queue)
}

jobs_testkit::queue_behaviour_suite!(queue());
