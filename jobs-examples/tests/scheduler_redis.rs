//! Periodic tasks on a shared Redis queue: several schedulers (each with
//! its own connection, as in separate processes) enqueue each occurrence
//! exactly once; `RedisLastRunStore` carries the last run across restarts.
//!
//! Needs `JOBS_REDIS_URL`; skips (and says so) without it, unless
//! `JOBS_REQUIRE_REDIS` is set.
#![cfg(feature = "redis")]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jobs::prelude::*;
use jobs::{LastRunStore, RedisJobQueue, TaskOutcome};
use jobs_examples::child::ChildProcess;
use jobs_examples::{redis_url, unique_name as unique};
use redis::AsyncCommands;
use serde_json::json;

const EVERY: Duration = Duration::from_millis(250);

fn tick_task() -> PeriodicTask {
    PeriodicTask::new(
        "tick",
        Schedule::every(EVERY).unwrap(),
        Job::new("tick", json!({})),
    )
}

/// Three schedulers, each with its own connection (as in separate
/// processes; `two_worker_processes_fire_each_occurrence_once` below runs
/// them in real ones), run the same task on one queue for several
/// occurrences: every occurrence is enqueued once.
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
    // Long enough for about eight occurrences; then stop half-way between
    // two (occurrences fall on multiples of EVERY since the epoch), so no
    // enqueue is in flight: each one a scheduler made is counted by it.
    tokio::time::sleep(EVERY * 8).await;
    let every_ms = EVERY.as_millis() as i64;
    let into = chrono::Utc::now().timestamp_millis().rem_euclid(every_ms);
    let to_midpoint = (every_ms / 2 - into).rem_euclid(every_ms);
    tokio::time::sleep(Duration::from_millis(to_midpoint as u64)).await;
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

// ------------------------------------------------- two worker processes

/// Counts each execution of a job in a Redis hash (job id → runs).
struct CountRuns {
    conn: redis::aio::ConnectionManager,
    key: String,
}

impl JobProcessor for CountRuns {
    async fn process(&self, job: &Job) -> JobResult {
        let mut conn = self.conn.clone();
        match conn
            .hincr::<_, _, _, i64>(&self.key, job.id.to_string(), 1)
            .await
        {
            Ok(_) => JobResult::success(json!(null)),
            Err(e) => JobResult::failure(JobError::retryable(e.to_string())),
        }
    }
}

fn runs_key(queue: &str) -> String {
    format!("test:{queue}:runs")
}

/// A worker process with its own scheduler running `tick_task` (this test
/// binary run again; does nothing unless `JOBS_SCHEDULER_CHILD` is set).
/// Prints `READY` once running and, after Ctrl-C, `TASK <run_count>
/// <enqueued_count>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_scheduler() {
    if std::env::var_os("JOBS_SCHEDULER_CHILD").is_none() {
        return;
    }
    let url = std::env::var("JOBS_REDIS_URL").unwrap();
    let name = std::env::var("JOBS_CHILD_QUEUE").unwrap();
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let scheduler = JobScheduler::new();
    scheduler.add(tick_task()).unwrap();
    let worker = BackgroundJobWorker::builder()
        .queue(queue)
        .processor(CountRuns {
            conn,
            key: runs_key(&name),
        })
        .scheduler(scheduler.clone())
        .build()
        .unwrap();
    let running = tokio::spawn(worker.clone().run_owned());
    println!("READY");
    tokio::signal::ctrl_c().await.unwrap();
    worker.stop().await;
    running.await.unwrap().unwrap();
    let info = scheduler.task("tick").unwrap();
    println!("TASK {} {}", info.run_count, info.enqueued_count);
}

/// This test binary, run again as a worker process (`child_scheduler`).
struct SchedulerProcess(ChildProcess);

impl SchedulerProcess {
    fn spawn(url: &str, queue: &str) -> Self {
        SchedulerProcess(ChildProcess::spawn(
            "child_scheduler",
            &[
                ("JOBS_SCHEDULER_CHILD", "1"),
                ("JOBS_REDIS_URL", url),
                ("JOBS_CHILD_QUEUE", queue),
            ],
        ))
    }

    /// Ctrl-C, then its task's `(run_count, enqueued_count)`.
    fn stop(mut self) -> (u64, u64) {
        self.0.interrupt();
        let line = self.0.line_with("TASK");
        assert!(self.0.wait().success());
        let numbers: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|n| n.parse().unwrap())
            .collect();
        (numbers[0], numbers[1])
    }
}

/// Two worker processes, each with a scheduler running the same task, on
/// one Redis queue: over several occurrences each occurrence is enqueued
/// once and run once, and both schedulers saw every occurrence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_fire_each_occurrence_once() {
    let Some(url) = redis_url() else { return };
    let name = unique("sched2p");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let a = SchedulerProcess::spawn(&url, &name);
    let b = SchedulerProcess::spawn(&url, &name);

    // Wait for eight occurrences to have run (about two seconds).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while queue.counts().await.unwrap().completed < 8 {
        assert!(tokio::time::Instant::now() < deadline, "fewer than 8 runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (a_runs, a_enqueued) = a.stop();
    let (b_runs, b_enqueued) = b.stop();

    let jobs = queue.list(None, 1000).await.unwrap();
    let task = tick_task();
    let occurrences: HashSet<String> = jobs
        .iter()
        .map(|job| job.metadata["occurrence"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(occurrences.len(), jobs.len(), "one job per occurrence");
    for job in &jobs {
        let at = job.metadata["occurrence"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(job.id, task.occurrence_id(at));
    }
    // Between them they enqueued each job once: had both enqueued an
    // occurrence, the sum would exceed the jobs. (An enqueue cut off by a
    // process's stop may have reached Redis without being counted: at most
    // one per process.)
    let enqueued = a_enqueued + b_enqueued;
    assert!(
        enqueued <= jobs.len() as u64 && enqueued + 2 >= jobs.len() as u64,
        "the processes enqueued {a_enqueued} and {b_enqueued} of {} jobs",
        jobs.len()
    );
    // Both schedulers were at work the whole time: each saw (almost) every
    // occurrence, enqueued by itself or found enqueued by the other.
    let at_least = jobs.len() as u64 - 2;
    assert!(
        a_runs >= at_least && b_runs >= at_least,
        "runs seen: {a_runs} and {b_runs} of {}",
        jobs.len()
    );
    // Every job that completed ran exactly once.
    let mut conn = redis::aio::ConnectionManager::new(redis::Client::open(url.as_str()).unwrap())
        .await
        .unwrap();
    let runs: HashMap<String, u64> = conn.hgetall(runs_key(&name)).await.unwrap();
    let completed = queue.list(Some(JobStatus::Completed), 1000).await.unwrap();
    assert!(completed.len() >= 8);
    for job in &completed {
        assert_eq!(runs.get(&job.id.to_string()), Some(&1), "job {}", job.id);
    }
    assert!(runs.values().all(|&n| n == 1), "{runs:?}");
    let _: () = conn.del(runs_key(&name)).await.unwrap();
    queue.purge().await.unwrap();
}
