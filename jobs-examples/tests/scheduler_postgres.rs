//! Periodic tasks on a shared PostgreSQL queue: several schedulers (each
//! with its own pool, and in separate worker processes) enqueue each
//! occurrence exactly once; `PostgresLastRunStore` carries the last run
//! across restarts.
//!
//! Needs `JOBS_DATABASE_URL`; skips (and says so) without it, unless
//! `JOBS_REQUIRE_POSTGRES` is set. Each test has a schema of its own.
#![cfg(feature = "postgres")]

use std::collections::HashSet;
use std::time::Duration;

use jobs::prelude::*;
use jobs::{LastRunStore, TaskOutcome};
use jobs_examples::child::ChildProcess;
use jobs_examples::{database_url, unique_name as unique};
use serde_json::json;

#[path = "support/pg_runs.rs"]
mod pg_runs;
use pg_runs::{CountRuns, create_runs, runs_by_id};

const EVERY: Duration = Duration::from_millis(250);

fn tick_task() -> PeriodicTask {
    PeriodicTask::new(
        "tick",
        Schedule::every(EVERY).unwrap(),
        Job::new("tick", json!({})),
    )
}

async fn connect(url: &str, schema: &str) -> PostgresJobQueue {
    PostgresJobQueue::builder(url)
        .schema(schema)
        .max_connections(4)
        .connect()
        .await
        .unwrap()
}

fn occurrence(job: &Job) -> chrono::DateTime<chrono::Utc> {
    job.metadata["occurrence"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Three schedulers, each with its own pool, run the same task on one
/// schema for several occurrences: every occurrence is enqueued once, the
/// others see the duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_occurrence_is_enqueued_once_across_schedulers() {
    let Some(url) = database_url() else { return };
    let schema = unique("sched");
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut runs = Vec::new();
    let mut schedulers = Vec::new();
    for _ in 0..3 {
        let queue = connect(&url, &schema).await;
        let scheduler = JobScheduler::new();
        scheduler.add(tick_task()).unwrap();
        let mut stopped = stop.subscribe();
        runs.push(tokio::spawn({
            let scheduler = scheduler.clone();
            async move {
                scheduler
                    .run(&queue, async move {
                        let _ = stopped.recv().await;
                    })
                    .await
            }
        }));
        schedulers.push(scheduler);
    }
    let queue = connect(&url, &schema).await;
    // About eight occurrences; then stop half-way between two (occurrences
    // fall on multiples of EVERY since the epoch), so no enqueue is in
    // flight and each one a scheduler made is counted by it.
    jobs_testkit::eventually("eight occurrences", Duration::from_secs(20), || async {
        queue.counts().await.unwrap().pending >= 8
    })
    .await;
    let every_ms = EVERY.as_millis() as i64;
    let into = chrono::Utc::now().timestamp_millis().rem_euclid(every_ms);
    let to_midpoint = (every_ms / 2 - into).rem_euclid(every_ms);
    tokio::time::sleep(Duration::from_millis(to_midpoint as u64)).await;
    let _ = stop.send(());
    for run in runs {
        run.await.unwrap().unwrap();
    }

    let jobs = queue.list(None, 1000).await.unwrap();
    let occurrences: HashSet<_> = jobs.iter().map(occurrence).collect();
    assert!(jobs.len() >= 8, "only {} occurrences", jobs.len());
    assert_eq!(occurrences.len(), jobs.len(), "one job per occurrence");
    let task = tick_task();
    for job in &jobs {
        assert_eq!(job.id, task.occurrence_id(occurrence(job)));
    }
    let infos: Vec<_> = schedulers.iter().map(|s| s.task("tick").unwrap()).collect();
    let enqueued: u64 = infos.iter().map(|i| i.enqueued_count).sum();
    assert_eq!(enqueued, jobs.len() as u64, "{infos:?}");
    let duplicates = infos
        .iter()
        .filter(|i| matches!(i.last_outcome, Some(TaskOutcome::Duplicate(_))))
        .count();
    assert!(duplicates >= 1, "{infos:?}");
    assert_eq!(queue.counts().await.unwrap().pending, jobs.len() as u64);
    queue.drop_schema().await.unwrap();
}

/// The store keeps the latest occurrence, across pools, whatever the order
/// of the saves (also concurrent ones), to the microsecond.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_run_store_keeps_the_latest_run() {
    let Some(url) = database_url() else { return };
    let schema = unique("store");
    let qa = connect(&url, &schema).await;
    let a = qa.last_run_store();
    let b = connect(&url, &schema).await.last_run_store();
    assert_eq!(a.load("t").await.unwrap(), None);
    let t1 = chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
    let t0 = chrono::DateTime::from_timestamp_micros(1_600_000_000_000_000).unwrap();
    a.save("t", t1).await.unwrap();
    b.save("t", t0).await.unwrap();
    assert_eq!(b.load("t").await.unwrap(), Some(t1), "the later run stays");
    assert_eq!(a.load("other").await.unwrap(), None);
    // Concurrent saves of one task, in any order: the greatest wins.
    let saves: Vec<_> = (0..20i64)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let at =
                chrono::DateTime::from_timestamp_micros(1_800_000_000_000_000 + i * 7_919).unwrap();
            tokio::spawn(async move { store.save("c", at).await })
        })
        .collect();
    for save in saves {
        save.await.unwrap().unwrap();
    }
    let greatest = chrono::DateTime::from_timestamp_micros(1_800_000_000_000_000 + 19 * 7_919);
    assert_eq!(a.load("c").await.unwrap(), greatest);
    qa.drop_schema().await.unwrap();
    // A schema that is gone is an error, not "never ran".
    assert!(a.load("t").await.is_err());
}

/// A scheduler restarted after missing occurrences catches up once (per
/// `MissedRuns::RunOnce`), because the last run is kept in PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_scheduler_catches_up_from_postgres() {
    let Some(url) = database_url() else { return };
    let schema = unique("catchup");
    let queue = connect(&url, &schema).await;
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
    let latest = upcoming - chrono::Duration::hours(1);
    // The catch-up run is saved after its enqueue: wait for the save.
    jobs_testkit::eventually("the catch-up run saved", Duration::from_secs(10), || {
        let store = store.clone();
        async move { store.load("report").await.unwrap() == Some(latest) }
    })
    .await;
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    assert_eq!(queue.counts().await.unwrap().pending, 1, "one catch-up run");
    let info = scheduler.task("report").unwrap();
    assert_eq!(info.missed_count, 1, "{info:?}");
    assert_eq!(info.next_run, Some(upcoming));
    assert!(
        queue
            .get(task.occurrence_id(latest))
            .await
            .unwrap()
            .is_some()
    );
    queue.drop_schema().await.unwrap();
}

// ------------------------------------------------- two worker processes

/// A worker process with its own scheduler running `tick_task` (this test
/// binary run again; does nothing unless `JOBS_SCHEDULER_CHILD` is set).
/// Prints `READY` once running and, after Ctrl-C, `TASK <run_count>
/// <enqueued_count>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_scheduler() {
    if std::env::var_os("JOBS_SCHEDULER_CHILD").is_none() {
        return;
    }
    let url = std::env::var("JOBS_DATABASE_URL").unwrap();
    let schema = std::env::var("JOBS_CHILD_SCHEMA").unwrap();
    let queue = connect(&url, &schema).await;
    let scheduler = JobScheduler::builder()
        .last_run_store(queue.last_run_store())
        .build();
    scheduler.add(tick_task()).unwrap();
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(CountRuns {
            pool: queue.pool().clone(),
            schema: schema.clone(),
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
    fn spawn(url: &str, schema: &str) -> Self {
        SchedulerProcess(ChildProcess::spawn(
            "child_scheduler",
            &[
                ("JOBS_SCHEDULER_CHILD", "1"),
                ("JOBS_DATABASE_URL", url),
                ("JOBS_CHILD_SCHEMA", schema),
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

/// Two worker processes, each with a scheduler running the same task (and
/// the shared last-run store), on one schema: over several occurrences
/// each occurrence is enqueued once and run once, and both schedulers saw
/// every occurrence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_fire_each_occurrence_once() {
    let Some(url) = database_url() else { return };
    let schema = unique("sched2p");
    let queue = connect(&url, &schema).await;
    create_runs(queue.pool(), &schema).await;
    let a = SchedulerProcess::spawn(&url, &schema);
    let b = SchedulerProcess::spawn(&url, &schema);

    jobs_testkit::eventually("eight runs", Duration::from_secs(20), || async {
        queue.counts().await.unwrap().completed >= 8
    })
    .await;
    let (a_runs, a_enqueued) = a.stop();
    let (b_runs, b_enqueued) = b.stop();

    let jobs = queue.list(None, 1000).await.unwrap();
    let occurrences: HashSet<_> = jobs.iter().map(occurrence).collect();
    assert_eq!(occurrences.len(), jobs.len(), "one job per occurrence");
    let task = tick_task();
    for job in &jobs {
        assert_eq!(job.id, task.occurrence_id(occurrence(job)));
    }
    // Between them they enqueued each job once (an enqueue cut off by a
    // process's stop may have committed without being counted: at most one
    // per process).
    let enqueued = a_enqueued + b_enqueued;
    assert!(
        enqueued <= jobs.len() as u64 && enqueued + 2 >= jobs.len() as u64,
        "the processes enqueued {a_enqueued} and {b_enqueued} of {} jobs",
        jobs.len()
    );
    let at_least = jobs.len() as u64 - 2;
    assert!(
        a_runs >= at_least && b_runs >= at_least,
        "runs seen: {a_runs} and {b_runs} of {}",
        jobs.len()
    );
    // Every job that completed ran exactly once.
    let runs = runs_by_id(queue.pool(), &schema).await;
    let completed = queue.list(Some(JobStatus::Completed), 1000).await.unwrap();
    assert!(completed.len() >= 8);
    for job in &completed {
        assert_eq!(runs.get(&job.id), Some(&1), "job {}", job.id);
    }
    assert!(runs.values().all(|&n| n == 1), "{runs:?}");
    // The shared store holds the latest occurrence enqueued.
    let latest = jobs.iter().map(occurrence).max();
    assert_eq!(queue.last_run_store().load("tick").await.unwrap(), latest);
    queue.drop_schema().await.unwrap();
}
