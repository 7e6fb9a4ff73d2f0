//! `PostgresJobQueue` under faults: several worker processes, a worker
//! killed mid-job, a PostgreSQL server crashed (immediate shutdown) and
//! restarted mid-run, the server away and back, corrupt rows.
//!
//! Needs `JOBS_DATABASE_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`); without it each test prints
//! that it skipped and passes, unless `JOBS_REQUIRE_POSTGRES` is set. The
//! crash and outage tests start a server of their own
//! ([`PrivatePostgres`]: `initdb` and `pg_ctl` from
//! `/usr/lib/postgresql/*/bin`) on a free loopback port, with `fsync` on.
//!
//! Worker processes are this test binary run again in "child" mode (the
//! `child_worker` test, which does nothing unless `JOBS_CHILD_WORKER` is
//! set): a `BackgroundJobWorker` on the queue whose processor counts every
//! execution in a table of the queue's schema (per job and process), so
//! double or lost executions show even after a process died.
#![cfg(feature = "postgres")]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jobs::prelude::*;
use jobs::{Outcome, Take};
use jobs_examples::child::ChildProcess;
use jobs_examples::{database_url, unique_name as unique};
use jobs_testkit::eventually;
use jobs_testkit::server::PrivatePostgres;
use parking_lot::Mutex;
use serde_json::json;
use sqlx::{AssertSqlSafe, Row};
use tokio::time::Instant;

#[path = "support/pg_runs.rs"]
mod pg_runs;
use pg_runs::{count_run, create_runs, runs_by_id, runs_by_pid};

// ---------------------------------------------------------------- helpers

async fn connect(url: &str, schema: &str) -> PostgresJobQueue {
    PostgresJobQueue::builder(url)
        .schema(schema)
        .max_connections(6)
        .connect()
        .await
        .unwrap()
}

/// Counts executions in the runs table.
///
/// - `record`: counts the run, succeeds.
/// - `hang_first`: counts the run; hangs on attempt 1, succeeds after.
#[derive(Clone)]
struct Recorder {
    queue: PostgresJobQueue,
}

impl JobProcessor for Recorder {
    async fn process(&self, job: &Job) -> JobResult {
        let counted = count_run(self.queue.pool(), self.queue.schema(), job.id).await;
        if let Err(e) = counted {
            return JobResult::failure(JobError::retryable(e.to_string()));
        }
        match &*job.name {
            "record" => JobResult::success(json!(null)),
            "hang_first" if job.attempts > 1 => {
                JobResult::success(json!({"attempt": job.attempts}))
            }
            "hang_first" => std::future::pending().await,
            other => JobResult::failure(JobError::permanent(format!("Unknown job type: {other}"))),
        }
    }
}

/// This test binary, run again as a worker process (`child_worker`) on
/// `schema`, its output drained.
fn spawn_worker(url: &str, schema: &str, lease: Duration) -> ChildProcess {
    let lease = lease.as_millis().to_string();
    let mut child = ChildProcess::spawn(
        "child_worker",
        &[
            ("JOBS_CHILD_WORKER", "1"),
            ("JOBS_DATABASE_URL", url),
            ("JOBS_CHILD_SCHEMA", schema),
            ("JOBS_CHILD_LEASE_MS", &lease),
        ],
    );
    child.drain_output();
    child
}

/// The worker process: runs until Ctrl-C (SIGINT).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_worker() {
    if std::env::var_os("JOBS_CHILD_WORKER").is_none() {
        return;
    }
    let url = std::env::var("JOBS_DATABASE_URL").unwrap();
    let schema = std::env::var("JOBS_CHILD_SCHEMA").unwrap();
    let lease: u64 = std::env::var("JOBS_CHILD_LEASE_MS")
        .unwrap()
        .parse()
        .unwrap();
    let queue = connect(&url, &schema).await;
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(Recorder { queue })
        .max_concurrent_jobs(32)
        .lease_duration(Duration::from_millis(lease))
        .polling_interval(Duration::from_secs(5))
        .build()
        .unwrap();
    jobs_testkit::child::serve_until_interrupted(worker).await;
}

fn record_jobs(n: usize) -> Vec<Job> {
    (0..n)
        .map(|i| Job::new("record", json!({ "i": i })))
        .collect()
}

// ---------------------------------------------------------------- processes

/// Two worker processes share 10,000 jobs: each runs exactly once (counted
/// in the database, per job and process), none is lost, and both
/// processes take part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_run_10000_jobs_exactly_once() {
    let Some(url) = database_url() else { return };
    let schema = unique("two-procs");
    let queue = connect(&url, &schema).await;
    create_runs(queue.pool(), &schema).await;
    let a = spawn_worker(&url, &schema, Duration::from_secs(30));
    let b = spawn_worker(&url, &schema, Duration::from_secs(30));
    let mut ids = Vec::new();
    for chunk in record_jobs(10_000).chunks(1000) {
        ids.extend(queue.enqueue_many(chunk.to_vec()).await.unwrap());
    }
    eventually(
        "all 10,000 jobs completed",
        Duration::from_secs(50),
        || async { queue.counts().await.unwrap().completed == 10_000 },
    )
    .await;
    let counts = queue.counts().await.unwrap();
    assert_eq!(counts.waiting() + counts.running + counts.failed, 0);

    let runs = runs_by_id(queue.pool(), &schema).await;
    assert_eq!(runs.len(), 10_000, "every job ran");
    assert!(runs.values().all(|n| *n == 1), "no job ran twice");
    for id in &ids {
        assert_eq!(runs.get(id), Some(&1));
    }
    let by_pid = runs_by_pid(queue.pool(), &schema).await;
    assert_eq!(by_pid.values().sum::<i64>(), 10_000);
    for worker in [&a, &b] {
        assert!(
            by_pid.get(&worker.pid()).copied().unwrap_or(0) > 0,
            "both processes took jobs: {by_pid:?}"
        );
    }
    assert!(a.stop().success(), "graceful stop on Ctrl-C");
    assert!(b.stop().success(), "graceful stop on Ctrl-C");
    queue.drop_schema().await.unwrap();
}

/// A worker process killed mid-job: once its lease expires, a worker in
/// another process runs the job again (the lost attempt counted) and
/// completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_job_is_completed_by_another() {
    let Some(url) = database_url() else { return };
    let schema = unique("killed");
    let queue = connect(&url, &schema).await;
    create_runs(queue.pool(), &schema).await;
    let lease = Duration::from_millis(300);
    let doomed = spawn_worker(&url, &schema, lease);
    let doomed_pid = doomed.pid();
    let id = queue
        .enqueue(Job::new("hang_first", json!({})))
        .await
        .unwrap();
    eventually(
        "the job started in the first process",
        Duration::from_secs(10),
        || async { runs_by_id(queue.pool(), &schema).await.contains_key(&id) },
    )
    .await;
    assert_eq!(
        queue.get(id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    doomed.kill();

    // Another worker (in this process) takes over after the lease expires.
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(Recorder {
            queue: queue.clone(),
        })
        .lease_duration(lease)
        .build()
        .unwrap();
    let killed_at = Instant::now();
    let running = tokio::spawn(worker.clone().run_owned());
    let Ok(done) = tokio::time::timeout(Duration::from_secs(10), worker.wait_for(id)).await else {
        panic!(
            "the job was not recovered within 10 s: {:?}",
            queue.get(id).await
        );
    };
    let done = done.unwrap();
    assert!(killed_at.elapsed() >= Duration::from_millis(100));
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.attempts, 2, "the lost attempt counts");
    assert!(
        done.last_error
            .as_deref()
            .unwrap_or("")
            .contains("stopped renewing its lease")
            || done
                .errors
                .iter()
                .any(|e| e.error.contains("stopped renewing its lease")),
        "{:?} {:?}",
        done.last_error,
        done.errors
    );
    let runs = runs_by_id(queue.pool(), &schema).await;
    assert_eq!(runs.get(&id), Some(&2), "run by both processes");
    let by_pid = runs_by_pid(queue.pool(), &schema).await;
    assert_eq!(by_pid.get(&doomed_pid), Some(&1));
    assert_eq!(by_pid.get(&std::process::id()), Some(&1));
    worker.stop().await;
    running.await.unwrap().unwrap();
    queue.drop_schema().await.unwrap();
}

// ---------------------------------------------------------------- server faults

/// Counts executions in this process (the server itself goes away).
#[derive(Clone)]
struct Count(Arc<AtomicUsize>);

impl JobProcessor for Count {
    async fn process(&self, _job: &Job) -> JobResult {
        self.0.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1)).await;
        JobResult::success(json!(null))
    }
}

/// A queue on a private server that notices a crash quickly: short
/// timeouts, a short lease.
async fn short_queue(server: &PrivatePostgres, schema: &str) -> PostgresJobQueue {
    PostgresJobQueue::builder(&server.url())
        .schema(schema)
        .timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .max_connections(8)
        .connect()
        .await
        .unwrap()
}

/// The server is stopped with an immediate shutdown (every process killed,
/// no checkpoint: a crash, for the data) during a run and started again:
/// no committed job is lost (enqueued before, or during the run by a
/// producer whose enqueue returned `Ok`), no acknowledged outcome is lost
/// (every job whose `finish` returned `Ok` is still finished after the
/// restart, and so is every job the worker's events reported completed),
/// and the worker and the producer recover on their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_and_restart_lose_nothing_committed() {
    if database_url().is_none() {
        return;
    }
    let Some(mut server) = PrivatePostgres::start().await else {
        return;
    };
    let schema = "crash";
    let queue = short_queue(&server, schema).await;
    let n = 3000;
    let ids = queue.enqueue_many(record_jobs(n)).await.unwrap();
    let executed = Arc::new(AtomicUsize::new(0));
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(Count(Arc::clone(&executed)))
        .max_concurrent_jobs(16)
        .lease_duration(Duration::from_secs(1))
        .polling_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let running = tokio::spawn(worker.clone().run_owned());

    // Beside the worker: a producer enqueueing one job at a time, and a
    // hand-driven consumer (reserve one, finish it) of a queue of its own,
    // each noting what the database acknowledged.
    let stop = tokio_util_stop();
    let produced: Arc<Mutex<Vec<JobId>>> = Arc::default();
    let producer = tokio::spawn({
        let (queue, produced, stop) = (queue.clone(), produced.clone(), stop.clone());
        async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let job = Job::new("record", json!({ "late": i }));
                if let Ok(id) = queue.enqueue(job).await {
                    produced.lock().push(id);
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    });
    let manual = Arc::new(Mutex::new(Vec::<JobId>::new()));
    let manual_ids = queue
        .enqueue_many(
            (0..2000)
                .map(|i| Job::new("manual", json!({ "i": i })).queue("manual"))
                .collect(),
        )
        .await
        .unwrap();
    let consumer = tokio::spawn({
        let (queue, manual, stop) = (queue.clone(), manual.clone(), stop.clone());
        async move {
            let take = [Take::new("manual", 1)];
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut got) = queue.reserve("manual", &take, Duration::from_secs(1)).await
                else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let Some(r) = got.pop() else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let done = Outcome::Completed(JobResult::success(json!(null)));
                if let Ok(true) = queue.finish(r.lease, done, None).await {
                    manual.lock().push(r.job.id);
                }
            }
        }
    });

    // Let a third complete, then crash the server and note what was
    // acknowledged up to then.
    let mut acknowledged = Vec::new();
    while acknowledged.len() < n / 3 {
        let event = events.recv().await.unwrap();
        if event.kind == jobs::JobEventKind::Completed {
            acknowledged.push(event.job_id);
        }
    }
    server.stop_immediate().await;
    while let Ok(event) = events.try_recv() {
        if event.kind == jobs::JobEventKind::Completed {
            acknowledged.push(event.job_id);
        }
    }
    let finished_before = manual.lock().clone();
    let produced_before = produced.lock().clone();
    assert!(!finished_before.is_empty() && !produced_before.is_empty());
    // While it is down: enqueue is an error within the timeout.
    let started = Instant::now();
    let err = queue
        .enqueue(Job::new("record", json!({})))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    server.up().await;

    eventually(
        "every job completed after the restart",
        Duration::from_secs(40),
        || async {
            queue.counts().await.is_ok_and(|c| {
                c.completed as usize >= n + produced_before.len() && c.failed == 0 && c.running == 0
            })
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    producer.await.unwrap();
    consumer.await.unwrap();
    let acked: HashSet<JobId> = acknowledged.iter().copied().collect();
    for id in ids.iter().chain(&acknowledged).chain(&produced_before) {
        let job = queue.get(*id).await.unwrap();
        assert!(job.is_some(), "job {id} was committed and is gone");
        if acked.contains(id) {
            assert_eq!(job.unwrap().status, JobStatus::Completed, "job {id}");
        }
    }
    for id in &finished_before {
        assert_eq!(
            queue.get(*id).await.unwrap().map(|j| j.status),
            Some(JobStatus::Completed),
            "job {id}'s finish returned Ok before the crash"
        );
    }
    let finished_all = manual.lock().clone();
    for id in &finished_all {
        assert_eq!(
            queue.get(*id).await.unwrap().map(|j| j.status),
            Some(JobStatus::Completed),
            "job {id}'s finish returned Ok"
        );
    }
    assert!(manual_ids.len() >= finished_all.len());
    assert!(executed.load(Ordering::Relaxed) >= n);
    eventually("healthy again", Duration::from_secs(15), || async {
        worker.health_check().await.healthy
    })
    .await;
    worker.stop().await;
    running.await.unwrap().unwrap();
}

/// A shared stop flag for the helper tasks.
fn tokio_util_stop() -> Arc<std::sync::atomic::AtomicBool> {
    Arc::new(std::sync::atomic::AtomicBool::new(false))
}

/// The server goes away: the worker keeps running and reports unhealthy,
/// `enqueue` is an `Err` within the configured timeout (no hang, no
/// panic), a queue built while it is down fails its calls; when the server
/// is back the worker is healthy again and processes new jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_is_reported_and_survived() {
    if database_url().is_none() {
        return;
    }
    let Some(mut server) = PrivatePostgres::start().await else {
        return;
    };
    let queue = short_queue(&server, "outage").await;
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(Registry::empty())
        .polling_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let running = tokio::spawn(worker.clone().run_owned());
    let first = worker
        .submit_job(Job::new("nothing", json!({})).max_retries(0))
        .await
        .unwrap();
    assert_eq!(
        worker.wait_for(first.id).await.unwrap().status,
        JobStatus::Failed
    );
    assert!(worker.health_check().await.healthy);

    server.stop_immediate().await;
    let started = Instant::now();
    let err = queue
        .enqueue(Job::new("nothing", json!({})))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "enqueue took {:?}",
        started.elapsed()
    );
    // A queue built lazily while the server is down is fine; its calls fail.
    let lazy = PostgresJobQueue::builder(&server.url())
        .schema("outage")
        .timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let started = Instant::now();
    assert!(lazy.ping().await.is_err());
    assert!(lazy.enqueue(Job::new("nothing", json!({}))).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    let health = worker.health_check().await;
    assert!(!health.healthy && !health.queue_reachable, "{health:?}");
    assert!(health.error.is_some());
    assert_eq!(health.state, jobs::WorkerState::Running);
    assert!(queue.counts().await.is_err());

    server.up().await;
    eventually("healthy again", Duration::from_secs(15), || async {
        worker.health_check().await.healthy
    })
    .await;
    let job = lazy
        .enqueue(Job::new("nothing", json!({})).max_retries(0))
        .await
        .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(10), worker.wait_for(job))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        done.last_error.as_deref(),
        Some("Unknown job type: nothing")
    );
    worker.stop().await;
    running.await.unwrap().unwrap();
}

// ---------------------------------------------------------------- corrupt rows

/// A job with typed arguments.
#[job]
async fn typed_job(n: u64) -> Result<u64, JobError> {
    Ok(n * 2)
}

/// Rows that cannot be run — arguments that do not fit the job's type, a
/// name no job has, a hand-edited `record` that is no job, one whose field
/// has the wrong type, a status no job has — fail only their own job, with
/// an error saying why; the worker runs the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_fail_only_their_job() {
    let Some(url) = database_url() else { return };
    let schema = unique("corrupt");
    let queue = connect(&url, &schema).await;
    let pool = queue.pool().clone();
    let table = format!("\"{schema}\".jobs");
    let edit = |sql: String, id: JobId| {
        let pool = pool.clone();
        async move {
            let done = sqlx::query(AssertSqlSafe(sql))
                .bind(*id.as_uuid())
                .execute(&pool)
                .await
                .unwrap();
            assert_eq!(done.rows_affected(), 1);
        }
    };
    let bad_args = queue
        .enqueue(Job::new("typed_job", json!({ "n": "twelve" })))
        .await
        .unwrap();
    let unknown = queue
        .enqueue(Job::new("no_such_job", json!({})).max_retries(0))
        .await
        .unwrap();
    let not_a_job = queue
        .enqueue(Job::new("typed_job", json!({ "n": 1 })))
        .await
        .unwrap();
    edit(
        format!("UPDATE {table} SET record = '{{\"hand\": \"edited\"}}' WHERE id = $1"),
        not_a_job,
    )
    .await;
    let wrong_field = queue
        .enqueue(Job::new("typed_job", json!({ "n": 1 })))
        .await
        .unwrap();
    edit(
        format!("UPDATE {table} SET record = jsonb_set(record, '{{name}}', '42') WHERE id = $1"),
        wrong_field,
    )
    .await;
    let bad_status = queue
        .enqueue(Job::new("typed_job", json!({ "n": 1 })))
        .await
        .unwrap();
    let good = queue.enqueue(typed_job::job(21)).await.unwrap();
    edit(
        format!("UPDATE {table} SET status = 'Z' WHERE id = $1"),
        bad_status,
    )
    .await;

    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(Registry::global().unwrap())
        .polling_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let running = tokio::spawn(worker.clone().run_owned());
    let done = worker.wait_for(good).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.result.unwrap().result, Some(json!(42)));

    let failed = worker.wait_for(bad_args).await.unwrap();
    assert_eq!((failed.status, failed.attempts), (JobStatus::Failed, 1));
    let error = failed.last_error.unwrap();
    assert!(
        error.contains("invalid arguments for job `typed_job`"),
        "{error}"
    );
    let failed = worker.wait_for(unknown).await.unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(failed.last_error.unwrap().contains("no_such_job"));

    // The rows that are no job cannot be read back either: look at them in
    // the table.
    let row_of = |id: JobId| {
        let pool = pool.clone();
        let table = table.clone();
        async move {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT status::text AS status, last_error FROM {table} WHERE id = $1"
            )))
            .bind(*id.as_uuid())
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    for id in [not_a_job, wrong_field] {
        eventually(
            "the unreadable row is failed",
            Duration::from_secs(10),
            || async { row_of(id).await.get::<String, _>("status") == "F" },
        )
        .await;
        let error: String = row_of(id).await.get("last_error");
        assert!(error.contains("cannot be read"), "{error}");
    }
    // A status no job has (edited before any worker ran): no worker takes
    // it, and `get` cannot read it and fails it, saying why, rather than
    // guessing a state.
    assert!(queue.get(bad_status).await.unwrap().is_none());
    let row = row_of(bad_status).await;
    assert_eq!(row.get::<String, _>("status"), "F");
    let error: String = row.get("last_error");
    assert!(error.contains("unknown status"), "{error}");
    let counts = queue.counts().await.unwrap();
    assert_eq!(counts.completed, 1, "{counts:?}");
    assert!(counts.failed >= 4, "{counts:?}");
    assert!(worker.health_check().await.healthy);
    worker.stop().await;
    running.await.unwrap().unwrap();
    queue.drop_schema().await.unwrap();
}
