//! Periodic tasks on a shared Redis queue: several schedulers (each with
//! its own connection, as in separate processes) enqueue each occurrence
//! exactly once; `RedisLastRunStore` carries the last run across restarts.
//!
//! Needs `JOBS_REDIS_URL`; skips (and says so) without it, unless
//! `JOBS_REQUIRE_REDIS` is set.
#![cfg(feature = "redis")]

use std::collections::HashSet;
use std::time::Duration;

use jobs::prelude::*;
use jobs::{LastRunStore, RedisJobQueue, TaskOutcome};
use serde_json::json;

fn redis_url() -> Option<String> {
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

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", JobId::new())
}

const EVERY: Duration = Duration::from_millis(250);

fn tick_task() -> PeriodicTask {
    PeriodicTask::new(
        "tick",
        Schedule::every(EVERY).unwrap(),
        Job::new("tick", json!({})),
    )
}

/// Three schedulers, each with its own connection, run the same task on one
/// queue for several occurrences: every occurrence is enqueued once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_occurrence_is_enqueued_once_across_schedulers() {
    let Some(url) = redis_url() else { return };
    let name = unique("sched");
    let mut runs = Vec::new();
    let mut schedulers = Vec::new();
    let stop = tokio_util_like_stop();
    for _ in 0..3 {
        let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
        let scheduler = JobScheduler::new();
        scheduler.add(tick_task()).unwrap();
        let mut stopped = stop.subscribe();
        let handle = tokio::spawn({
            let scheduler = scheduler.clone();
            async move {
                scheduler
                    .run(&queue, async move {
                        let _ = stopped.recv().await;
                    })
                    .await
            }
        });
        runs.push(handle);
        schedulers.push(scheduler);
    }
    // Long enough for about eight occurrences.
    tokio::time::sleep(EVERY * 8 + EVERY / 2).await;
    let _ = stop.send(());
    for run in runs {
        run.await.unwrap().unwrap();
    }

    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let jobs = queue.list(None, 1000).await.unwrap();
    let occurrence = |job: &Job| -> chrono::DateTime<chrono::Utc> {
        job.metadata["occurrence"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let occurrences: HashSet<_> = jobs.iter().map(occurrence).collect();
    assert!(jobs.len() >= 6, "only {} occurrences", jobs.len());
    assert_eq!(occurrences.len(), jobs.len(), "one job per occurrence");
    // Each job is the occurrence's deterministic id.
    let task = tick_task();
    for job in &jobs {
        assert_eq!(job.id, task.occurrence_id(occurrence(job)));
    }
    // The schedulers enqueued them between them, once each; the others saw
    // duplicates.
    let infos: Vec<_> = schedulers.iter().map(|s| s.task("tick").unwrap()).collect();
    let enqueued: u64 = infos.iter().map(|i| i.enqueued_count).sum();
    assert_eq!(enqueued, jobs.len() as u64, "{infos:?}");
    let duplicates = infos
        .iter()
        .filter(|i| matches!(i.last_outcome, Some(TaskOutcome::Duplicate(_))))
        .count();
    assert!(duplicates >= 1, "{infos:?}");
    assert_eq!(queue.counts().await.unwrap().pending, jobs.len() as u64);
    queue.purge().await.unwrap();
}

/// A broadcast "stop" for the scheduler loops.
fn tokio_util_like_stop() -> tokio::sync::broadcast::Sender<()> {
    tokio::sync::broadcast::channel(1).0
}

/// The store keeps the latest occurrence, across connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_run_store_keeps_the_latest_run() {
    let Some(url) = redis_url() else { return };
    let name = unique("store");
    let a = RedisJobQueue::connect(&url, &name)
        .await
        .unwrap()
        .last_run_store();
    let b = RedisJobQueue::connect(&url, &name)
        .await
        .unwrap()
        .last_run_store();
    assert_eq!(a.load("t").await.unwrap(), None);
    let t1 = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
    let t0 = chrono::DateTime::from_timestamp_millis(1_600_000_000_000).unwrap();
    a.save("t", t1).await.unwrap();
    b.save("t", t0).await.unwrap();
    assert_eq!(b.load("t").await.unwrap(), Some(t1), "the later run stays");
    assert_eq!(a.load("other").await.unwrap(), None);
}

/// A scheduler restarted after missing occurrences catches up once (per
/// `MissedRuns::RunOnce`), because the last run is kept in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_scheduler_catches_up_from_redis() {
    let Some(url) = redis_url() else { return };
    let name = unique("catchup");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let store = queue.last_run_store();
    let task = PeriodicTask::new(
        "report",
        Schedule::every(Duration::from_secs(3600)).unwrap(),
        Job::new("report", json!({})),
    )
    .missed_runs(MissedRuns::RunOnce);
    // The previous process last ran the task three hours ago.
    let upcoming = task.schedule.upcoming(chrono::Utc::now(), 1)[0];
    let three_ago = upcoming - chrono::Duration::hours(3);
    store.save("report", three_ago).await.unwrap();

    let scheduler = JobScheduler::builder()
        .last_run_store(store.clone())
        .build();
    scheduler.add(task.clone()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let (scheduler, queue) = (scheduler.clone(), queue.clone());
        async move {
            scheduler
                .run(&queue, async move {
                    let _ = stopped.await;
                })
                .await
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while queue.counts().await.unwrap().pending == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no catch-up run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give it a moment to (wrongly) enqueue more.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    assert_eq!(queue.counts().await.unwrap().pending, 1, "one catch-up run");
    let info = scheduler.task("report").unwrap();
    assert_eq!(info.missed_count, 1, "{info:?}");
    let latest = upcoming - chrono::Duration::hours(1);
    assert_eq!(store.load("report").await.unwrap(), Some(latest));
    assert!(
        queue
            .get(task.occurrence_id(latest))
            .await
            .unwrap()
            .is_some()
    );
    queue.purge().await.unwrap();
}
