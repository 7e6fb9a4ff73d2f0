//! `RedisJobQueue` against a real Redis: several worker processes, killed
//! workers, Redis restarts and outages, corrupt records, cancellation
//! across processes, lease fencing.
//!
//! Needs `JOBS_REDIS_URL` (e.g. `redis://127.0.0.1:6379`); without it each
//! test prints that it skipped and passes, unless `JOBS_REQUIRE_REDIS` is
//! set. The restart and outage tests start their own `redis-server` (from
//! `PATH`) on a free loopback port.
//!
//! Worker processes are this test binary run again in "child" mode (the
//! `child_worker` test, which does nothing unless `JOBS_CHILD_WORKER` is
//! set): a `BackgroundJobWorker` on the Redis queue whose processor records
//! every execution in Redis, so double or lost executions show.
#![cfg(feature = "redis")]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jobs::prelude::*;
use jobs::{CancelOutcome, Outcome, RedisJobQueue};
use jobs_examples::child::ChildProcess;
use jobs_examples::{redis_url, unique_name as unique};
use jobs_testkit::eventually;
use jobs_testkit::server::PrivateRedis;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde_json::json;
use tokio::time::Instant;

// ---------------------------------------------------------------- helpers

async fn raw_conn(url: &str) -> ConnectionManager {
    redis::Client::open(url)
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap()
}

fn exec_key(queue: &str) -> String {
    format!("test:{{{queue}}}:exec")
}
fn by_pid_key(queue: &str) -> String {
    format!("test:{{{queue}}}:by_pid")
}
fn started_key(queue: &str) -> String {
    format!("test:{{{queue}}}:started")
}
fn dropped_key(queue: &str) -> String {
    format!("test:{{{queue}}}:dropped")
}

/// Records executions in Redis.
///
/// - `record`: counts the execution, succeeds.
/// - `hang`: marks itself started, never finishes; marks itself dropped
///   when its future is dropped (cancelled, abandoned).
/// - `hang_first`: counts the execution; hangs on attempt 1, succeeds after.
#[derive(Clone)]
struct Recorder {
    conn: ConnectionManager,
    queue: String,
}

struct MarkDropped {
    conn: ConnectionManager,
    key: String,
    id: String,
}

impl Drop for MarkDropped {
    fn drop(&mut self) {
        let (mut conn, key, id) = (self.conn.clone(), self.key.clone(), self.id.clone());
        tokio::spawn(async move {
            let _: Result<i64, _> = conn.sadd(key, id).await;
        });
    }
}

impl JobProcessor for Recorder {
    async fn process(&self, job: &Job) -> JobResult {
        let mut conn = self.conn.clone();
        let id = job.id.to_string();
        let count = |conn: &mut ConnectionManager| {
            let mut pipe = redis::pipe();
            pipe.hincr(exec_key(&self.queue), &id, 1).hincr(
                by_pid_key(&self.queue),
                std::process::id(),
                1,
            );
            let mut conn = conn.clone();
            async move { pipe.query_async::<()>(&mut conn).await }
        };
        match &*job.name {
            "record" => match count(&mut conn).await {
                Ok(()) => JobResult::success(json!(null)),
                Err(e) => JobResult::failure(JobError::retryable(e.to_string())),
            },
            "hang" | "hang_first" => {
                if job.name == "hang_first" {
                    count(&mut conn).await.unwrap();
                    if job.attempts > 1 {
                        return JobResult::success(json!({"attempt": job.attempts}));
                    }
                }
                let _guard = MarkDropped {
                    conn: conn.clone(),
                    key: dropped_key(&self.queue),
                    id: id.clone(),
                };
                let _: i64 = conn.sadd(started_key(&self.queue), &id).await.unwrap();
                std::future::pending().await
            }
            other => JobResult::failure(JobError::permanent(format!("Unknown job type: {other}"))),
        }
    }
}

/// This test binary, run again as a worker process (`child_worker`).
struct ChildWorker(ChildProcess);

impl ChildWorker {
    fn spawn(url: &str, queue: &str, lease: Duration) -> Self {
        let lease = lease.as_millis().to_string();
        let mut child = ChildProcess::spawn(
            "child_worker",
            &[
                ("JOBS_CHILD_WORKER", "1"),
                ("JOBS_REDIS_URL", url),
                ("JOBS_CHILD_QUEUE", queue),
                ("JOBS_CHILD_LEASE_MS", &lease),
            ],
        );
        child.drain_output();
        ChildWorker(child)
    }

    fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// Ctrl-C: the worker stops gracefully; waits for the process.
    fn interrupt(mut self) -> std::process::ExitStatus {
        self.0.interrupt();
        self.0.wait()
    }

    /// SIGKILL: the process dies at once, mid-job.
    fn kill(self) {
        self.0.kill();
    }
}

/// The worker process: runs until Ctrl-C (SIGINT).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_worker() {
    if std::env::var_os("JOBS_CHILD_WORKER").is_none() {
        return;
    }
    let url = std::env::var("JOBS_REDIS_URL").unwrap();
    let queue_name = std::env::var("JOBS_CHILD_QUEUE").unwrap();
    let lease: u64 = std::env::var("JOBS_CHILD_LEASE_MS")
        .unwrap()
        .parse()
        .unwrap();
    let queue = RedisJobQueue::connect(&url, &queue_name).await.unwrap();
    let recorder = Recorder {
        conn: raw_conn(&url).await,
        queue: queue_name,
    };
    let worker = BackgroundJobWorker::builder()
        .queue(queue)
        .processor(recorder)
        .max_concurrent_jobs(32)
        .lease_duration(Duration::from_millis(lease))
        .polling_interval(Duration::from_secs(5))
        .build()
        .unwrap();
    jobs_testkit::child::serve_until_interrupted(worker).await;
}

/// Removes everything a test left in the shared Redis: the queue's keys
/// (its sequence counter included) and the recorder's.
async fn cleanup(url: &str, name: &str) {
    let mut conn = raw_conn(url).await;
    let keys: Vec<String> = [
        "jobs", "state", "ready", "delayed", "running", "done", "counts", "seq",
    ]
    .iter()
    .map(|k| format!("jobs:{{{name}}}:{k}"))
    .chain([
        exec_key(name),
        by_pid_key(name),
        started_key(name),
        dropped_key(name),
    ])
    .collect();
    let _: () = conn.del(keys).await.unwrap();
}

fn record_jobs(n: usize) -> Vec<Job> {
    (0..n)
        .map(|i| Job::new("record", json!({ "i": i })))
        .collect()
}

// ---------------------------------------------------------------- tests

/// Two worker processes share 10,000 jobs: each runs exactly once, none is
/// lost, and both processes take part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_run_10000_jobs_exactly_once() {
    let Some(url) = redis_url() else { return };
    let name = unique("two-procs");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let a = ChildWorker::spawn(&url, &name, Duration::from_secs(30));
    let b = ChildWorker::spawn(&url, &name, Duration::from_secs(30));
    let mut ids = Vec::new();
    for chunk in record_jobs(10_000).chunks(1000) {
        ids.extend(queue.enqueue_many(chunk.to_vec()).await.unwrap());
    }
    eventually(
        "all 10,000 jobs completed",
        Duration::from_secs(40),
        || async { queue.counts().await.unwrap().completed == 10_000 },
    )
    .await;
    let counts = queue.counts().await.unwrap();
    assert_eq!(counts.waiting() + counts.running + counts.failed, 0);

    let mut conn = raw_conn(&url).await;
    let exec: HashMap<String, u64> = conn.hgetall(exec_key(&name)).await.unwrap();
    assert_eq!(exec.len(), 10_000, "every job ran");
    assert!(exec.values().all(|n| *n == 1), "no job ran twice");
    for id in &ids {
        assert_eq!(exec.get(&id.to_string()), Some(&1));
    }
    let by_pid: HashMap<u32, u64> = conn.hgetall(by_pid_key(&name)).await.unwrap();
    assert_eq!(by_pid.values().sum::<u64>(), 10_000);
    for worker in [&a, &b] {
        assert!(
            by_pid.get(&worker.pid()).copied().unwrap_or(0) > 0,
            "both processes took jobs: {by_pid:?}"
        );
    }
    assert!(a.interrupt().success(), "graceful stop on Ctrl-C");
    assert!(b.interrupt().success(), "graceful stop on Ctrl-C");
    cleanup(&url, &name).await;
}

/// A worker process killed mid-job: once its lease expires, another worker
/// runs the job again (the lost attempt counted) and completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_job_is_completed_by_another() {
    let Some(url) = redis_url() else { return };
    let name = unique("killed");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let lease = Duration::from_millis(300);
    let doomed = ChildWorker::spawn(&url, &name, lease);
    let id = queue
        .enqueue(Job::new("hang_first", json!({})))
        .await
        .unwrap();
    let mut conn = raw_conn(&url).await;
    eventually(
        "the job started in the first process",
        Duration::from_secs(10),
        || {
            let mut conn = conn.clone();
            let key = started_key(&name);
            async move { conn.sismember(key, id.to_string()).await.unwrap() }
        },
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
            conn: conn.clone(),
            queue: name.clone(),
        })
        .lease_duration(lease)
        .build()
        .unwrap();
    let killed_at = Instant::now();
    let running = tokio::spawn(worker.clone().run_owned());
    let done = tokio::time::timeout(Duration::from_secs(10), worker.wait_for(id))
        .await
        .expect("the job was recovered")
        .unwrap();
    assert!(killed_at.elapsed() >= Duration::from_millis(100));
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.attempts, 2, "the lost attempt counts");
    assert!(
        done.last_error
            .as_deref()
            .unwrap()
            .contains("stopped renewing its lease"),
        "{:?}",
        done.last_error
    );
    let runs: u64 = conn.hget(exec_key(&name), id.to_string()).await.unwrap();
    assert_eq!(runs, 2);
    worker.stop().await;
    running.await.unwrap().unwrap();
    cleanup(&url, &name).await;
}

/// Redis is killed (SIGKILL) and restarted during a run: no job whose
/// completion was acknowledged is lost, and every job completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_loses_no_acknowledged_job() {
    if redis_url().is_none() {
        return;
    }
    let Some(mut server) = PrivateRedis::start().await else {
        return;
    };
    let url = server.url();
    let queue = RedisJobQueue::builder(&url)
        .name("restart")
        .timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let n = 3000;
    // Stored through a handle with the default timeout: the short one above
    // is for the worker to notice the restart quickly, and writing 3,000
    // jobs to a server that fsyncs every write can take longer than 500 ms
    // on a loaded machine.
    let ids = RedisJobQueue::connect(&url, "restart")
        .await
        .unwrap()
        .enqueue_many(record_jobs(n))
        .await
        .unwrap();
    // Executions are recorded in this process (Redis itself goes away).
    let executed = Arc::new(AtomicUsize::new(0));
    #[derive(Clone)]
    struct Count(Arc<AtomicUsize>);
    impl JobProcessor for Count {
        async fn process(&self, _job: &Job) -> JobResult {
            self.0.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(1)).await;
            JobResult::success(json!(null))
        }
    }
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

    // Let some complete, then kill Redis and note what was acknowledged.
    let mut acknowledged = Vec::new();
    while acknowledged.len() < n / 3 {
        let event = events.recv().await.unwrap();
        if event.kind == jobs::JobEventKind::Completed {
            acknowledged.push(event.job_id);
        }
    }
    server.kill();
    // Everything acknowledged up to the kill (events already sent).
    while let Ok(event) = events.try_recv() {
        if event.kind == jobs::JobEventKind::Completed {
            acknowledged.push(event.job_id);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.up().await;

    eventually(
        "all jobs completed after the restart",
        Duration::from_secs(30),
        || async {
            queue
                .counts()
                .await
                .is_ok_and(|c| c.completed == n as u64 && c.waiting() + c.running == 0)
        },
    )
    .await;
    for id in acknowledged.iter().chain(&ids) {
        assert_eq!(
            queue.get(*id).await.unwrap().map(|j| j.status),
            Some(JobStatus::Completed),
            "job {id}"
        );
    }
    assert!(executed.load(Ordering::Relaxed) >= n);
    assert!(worker.health_check().await.healthy);
    worker.stop().await;
    running.await.unwrap().unwrap();
}

/// Redis goes away: the worker keeps running and reports unhealthy,
/// `enqueue` is an error within the timeout (no hang, no panic); when Redis
/// is back the worker is healthy again and processes new jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_is_reported_and_survived() {
    if redis_url().is_none() {
        return;
    }
    let Some(mut server) = PrivateRedis::start().await else {
        return;
    };
    let queue = RedisJobQueue::builder(&server.url())
        .name("outage")
        .timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(jobs::Registry::empty())
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

    server.kill();
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
    // A queue built lazily while Redis is down is fine; its calls fail.
    let lazy = RedisJobQueue::builder(&server.url())
        .name("outage")
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(lazy.ping().await.is_err());
    assert!(lazy.enqueue(Job::new("nothing", json!({}))).await.is_err());
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

/// A hand-edited job (broken JSON, JSON that is no job, a mangled state)
/// fails that job
/// with a clear error; the worker carries on with the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_record_fails_only_that_job() {
    let Some(url) = redis_url() else { return };
    let name = unique("corrupt");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let mut conn = raw_conn(&url).await;
    let broken_json = queue.enqueue(Job::new("record", json!({}))).await.unwrap();
    let no_header = queue.enqueue(Job::new("record", json!({}))).await.unwrap();
    let raw: Vec<u8> = conn
        .hget(queue.jobs_key(), broken_json.to_string())
        .await
        .unwrap();
    let cut = raw.iter().position(|b| *b == b'{').unwrap();
    let mut edited = raw[..cut].to_vec();
    edited.extend_from_slice(br#"{"id": "oops", "name": 42"#);
    let _: () = conn
        .hset(queue.jobs_key(), broken_json.to_string(), edited)
        .await
        .unwrap();
    let _: () = conn
        .hset(
            queue.jobs_key(),
            no_header.to_string(),
            r#"{"hand":"edited"}"#,
        )
        .await
        .unwrap();
    let bad_state = queue.enqueue(Job::new("record", json!({}))).await.unwrap();
    let _: () = conn
        .hset(
            format!("jobs:{{{name}}}:state"),
            bad_state.to_string(),
            "hand-edited",
        )
        .await
        .unwrap();
    let good = queue.enqueue(Job::new("record", json!({}))).await.unwrap();

    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(Recorder {
            conn: conn.clone(),
            queue: name.clone(),
        })
        .build()
        .unwrap();
    let running = tokio::spawn(worker.clone().run_owned());
    assert_eq!(
        worker.wait_for(good).await.unwrap().status,
        JobStatus::Completed
    );
    for id in [broken_json, no_header, bad_state] {
        let job = worker.wait_for(id).await.unwrap();
        assert_eq!(job.status, JobStatus::Failed, "{job:?}");
        let error = job.last_error.unwrap();
        assert!(error.contains("corrupt job record"), "{error}");
        assert!(error.contains(&id.to_string()), "{error}");
        assert_eq!(
            job.result.unwrap().error_type.as_deref(),
            Some("CorruptRecord")
        );
    }
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.failed, counts.completed, counts.pending), (3, 1, 0));
    assert!(worker.health_check().await.healthy);
    let runs: HashMap<String, u64> = conn.hgetall(exec_key(&name)).await.unwrap();
    assert_eq!(runs.len(), 1, "only the good job ran");
    worker.stop().await;
    running.await.unwrap().unwrap();
    cleanup(&url, &name).await;
}

/// `cancel` on a job running in another process stops it there and marks
/// it `Cancelled`; that process carries on with other jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_job_running_in_another_process() {
    let Some(url) = redis_url() else { return };
    let name = unique("cancel");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    // The default lease (30 s): the cancel reaches the other process at once
    // (pub/sub), not at its next heartbeat 10 s later.
    let child = ChildWorker::spawn(&url, &name, Duration::from_secs(30));
    let id = queue.enqueue(Job::new("hang", json!({}))).await.unwrap();
    let conn = raw_conn(&url).await;
    let member = |key: String| {
        let mut conn = conn.clone();
        async move {
            conn.sismember::<_, _, bool>(key, id.to_string())
                .await
                .unwrap()
        }
    };
    eventually(
        "the job runs in the other process",
        Duration::from_secs(10),
        || member(started_key(&name)),
    )
    .await;
    assert_eq!(
        queue.cancel(id).await.unwrap(),
        CancelOutcome::CancelledRunning
    );
    let cancelled = Instant::now();
    eventually(
        "the other process dropped the job",
        Duration::from_secs(5),
        || member(dropped_key(&name)),
    )
    .await;
    assert!(
        cancelled.elapsed() < Duration::from_secs(2),
        "took {:?}",
        cancelled.elapsed()
    );
    let job = queue.get(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    assert!(job.completed_at.is_some());
    // The other process still takes jobs.
    let next = queue.enqueue(Job::new("record", json!({}))).await.unwrap();
    eventually(
        "the other process runs the next job",
        Duration::from_secs(10),
        || async { queue.get(next).await.unwrap().unwrap().status == JobStatus::Completed },
    )
    .await;
    assert_eq!(
        queue.get(id).await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
    assert!(child.interrupt().success());
    cleanup(&url, &name).await;
}

/// Two connections: a lease that expired and was recovered and taken by
/// another worker is fenced off — its heartbeat reports it lost and its
/// late outcome changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_lease_is_fenced() {
    let Some(url) = redis_url() else { return };
    let name = unique("fence");
    let a = RedisJobQueue::connect(&url, &name).await.unwrap();
    let b = RedisJobQueue::connect(&url, &name).await.unwrap();
    let id = a.enqueue(Job::new("record", json!({}))).await.unwrap();
    let short = Duration::from_millis(50);
    let first = a
        .reserve("a", &[jobs::Take::new(jobs::DEFAULT_QUEUE, 10)], short)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(first.job.id, id);
    assert_eq!(b.recover_expired().await.unwrap(), 0, "not yet expired");
    // A heartbeat keeps it alive past the first deadline.
    assert!(
        a.heartbeat(&[first.lease], Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        b.recover_expired().await.unwrap(),
        0,
        "extended by the heartbeat"
    );
    eventually(
        "the lease expires and is recovered",
        Duration::from_secs(5),
        || async { b.recover_expired().await.unwrap() == 1 },
    )
    .await;
    let recovered = b.get(id).await.unwrap().unwrap();
    assert_eq!(recovered.status, JobStatus::Retrying);
    assert_eq!(recovered.attempts, 1);
    // The lost attempt is a failed one: kept among the errors, counted.
    assert_eq!(recovered.errors.len(), 1, "{:?}", recovered.errors);
    assert_eq!(recovered.errors[0].attempt, 1);
    assert!(
        recovered.errors[0]
            .error
            .contains("stopped renewing its lease"),
        "{:?}",
        recovered.errors
    );
    let minutes = b.throughput(3).await.unwrap();
    let counted: (u64, u64) = minutes
        .iter()
        .fold((0, 0), |(p, f), t| (p + t.processed, f + t.failed));
    assert_eq!(counted, (1, 1), "{minutes:?}");
    let second = b
        .reserve(
            "b",
            &[jobs::Take::new(jobs::DEFAULT_QUEUE, 10)],
            Duration::from_secs(30),
        )
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.job.attempts, 2);
    assert_ne!(second.lease.token, first.lease.token);

    assert_eq!(
        a.heartbeat(&[first.lease], Duration::from_secs(30))
            .await
            .unwrap(),
        [first.lease]
    );
    let late = a
        .finish(first.lease, Outcome::Failed(JobResult::error("late")), None)
        .await
        .unwrap();
    assert!(!late, "the stale worker's outcome is refused");
    assert_eq!(a.release(&[first.lease]).await.unwrap(), 0);
    assert_eq!(b.get(id).await.unwrap().unwrap().status, JobStatus::Running);
    assert!(
        b.finish(
            second.lease,
            Outcome::Completed(JobResult::success(json!(2))),
            None
        )
        .await
        .unwrap()
    );
    let done = a.get(id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.attempts, 2);

    // A job whose last attempt's lease expires is failed, not retried.
    let id = a
        .enqueue(Job::new("record", json!({})).max_retries(0))
        .await
        .unwrap();
    a.reserve("a", &[jobs::Take::new(jobs::DEFAULT_QUEUE, 1)], short)
        .await
        .unwrap();
    eventually(
        "the last attempt is recovered",
        Duration::from_secs(5),
        || async { b.recover_expired().await.unwrap() == 1 },
    )
    .await;
    let failed = a.get(id).await.unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(
        failed.result.unwrap().error_type.as_deref(),
        Some("LeaseExpired")
    );
    cleanup(&url, &name).await;
}

/// `stop()` hands unfinished jobs back at once (no lease expiry needed), and
/// the counts stay exact through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_hands_jobs_back_at_once() {
    let Some(url) = redis_url() else { return };
    let name = unique("stop");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let conn = raw_conn(&url).await;
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(Recorder {
            conn: conn.clone(),
            queue: name.clone(),
        })
        .shutdown_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let ids = queue
        .enqueue_many((0..3).map(|_| Job::new("hang", json!({}))).collect())
        .await
        .unwrap();
    let running = tokio::spawn(worker.clone().run_owned());
    eventually("all three run", Duration::from_secs(5), || async {
        queue.counts().await.unwrap().running == 3
    })
    .await;
    let report = worker.stop().await;
    running.await.unwrap().unwrap();
    let mut abandoned = report.abandoned.clone();
    abandoned.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(abandoned, expected);
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.pending, counts.running), (3, 0));
    for id in ids {
        let job = queue.get(id).await.unwrap().unwrap();
        assert_eq!((job.status, job.attempts), (JobStatus::Pending, 0));
    }
    cleanup(&url, &name).await;
}

/// Concurrent single enqueues travel together, yet each is accepted or
/// refused on its own: a duplicate id fails only that enqueue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_are_independent() {
    let Some(url) = redis_url() else { return };
    let name = unique("concurrent");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let twin = Job::new("record", json!({"twin": true}));
    let mut jobs: Vec<Job> = record_jobs(200);
    jobs.insert(100, twin.clone());
    jobs.push(twin.clone());
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let queue = queue.clone();
            tokio::spawn(async move { queue.enqueue(job).await })
        })
        .collect();
    let mut ok = 0;
    let mut duplicates = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(jobs::Error::Duplicate(id)) => duplicates.push(id),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 201);
    assert_eq!(duplicates, [twin.id]);
    assert_eq!(queue.counts().await.unwrap().pending, 201);
    cleanup(&url, &name).await;
}

// ---------------------------------------------------------------- flow control

const LEASE: Duration = Duration::from_secs(30);

async fn flow_queue(url: &str) -> RedisJobQueue {
    RedisJobQueue::connect(url, &unique("flow")).await.unwrap()
}

async fn take(queue: &RedisJobQueue, takes: &[jobs::Take]) -> Vec<jobs::Reservation> {
    queue.reserve("t", takes, LEASE).await.unwrap()
}

fn names(taken: &[jobs::Reservation]) -> Vec<String> {
    taken.iter().map(|r| r.job.name.to_string()).collect()
}

async fn complete(queue: &RedisJobQueue, r: &jobs::Reservation) {
    let done = Outcome::Completed(JobResult::success(json!(null)));
    assert!(queue.finish(r.lease, done, None).await.unwrap());
}

/// Jobs wait in their own queue; reserve serves the takes in order; a
/// paused queue gives nothing until resumed; `queues` lists them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_queues_pause_and_resume() {
    let Some(url) = redis_url() else { return };
    let queue = flow_queue(&url).await;
    queue.enqueue(Job::new("d1", json!({}))).await.unwrap();
    queue
        .enqueue(Job::new("a1", json!({})).queue("a"))
        .await
        .unwrap();
    queue
        .enqueue(Job::new("a2", json!({})).queue("a"))
        .await
        .unwrap();
    // Scheduled jobs come due into their own queue.
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(200);
    queue
        .enqueue(Job::new("b1", json!({})).queue("b").scheduled_at(soon))
        .await
        .unwrap();
    let infos = queue.queues().await.unwrap();
    let listed: Vec<(String, bool, u64)> = infos
        .iter()
        .map(|q| (q.name.clone(), q.paused, q.ready))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("a".into(), false, 2),
            ("b".into(), false, 0),
            ("default".into(), false, 1)
        ]
    );
    assert!(queue.pause_queue("a").await.unwrap());
    assert!(!queue.pause_queue("a").await.unwrap());
    assert!(queue.pause_queue("a b").await.is_err());
    assert!(take(&queue, &[jobs::Take::new("a", 10)]).await.is_empty());
    // Enqueueing into a paused queue works.
    queue
        .enqueue(Job::new("a3", json!({})).queue("a"))
        .await
        .unwrap();
    assert!(queue.queues().await.unwrap()[0].paused);
    assert!(queue.resume_queue("a").await.unwrap());
    assert!(!queue.resume_queue("a").await.unwrap());
    let taken = take(
        &queue,
        &[jobs::Take::new("a", 2), jobs::Take::new("default", 5)],
    )
    .await;
    assert_eq!(names(&taken), ["a1", "a2", "d1"]);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let taken = take(&queue, &[jobs::Take::new("b", 5)]).await;
    assert_eq!(names(&taken), ["b1"]);
    assert_eq!(taken[0].job.queue, "b");
    complete(&queue, &taken[0]).await;
    assert_eq!(
        names(&take(&queue, &[jobs::Take::new("a", 5)]).await),
        ["a3"]
    );
    queue.purge().await.unwrap();
}

/// A job concurrency limit holds later jobs of the key back (not counted),
/// others pass; a finished one lets the earliest held one in, ahead of jobs
/// that became ready after it. Held jobs can be listed and cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_concurrency_holds_and_releases_in_order() {
    let Some(url) = redis_url() else { return };
    let queue = flow_queue(&url).await;
    let other = RedisJobQueue::connect(&url, queue.name()).await.unwrap();
    for n in ["k1", "k2", "k3"] {
        queue
            .enqueue(Job::new(n, json!({})).concurrency_by(1, "acct:1"))
            .await
            .unwrap();
    }
    queue.enqueue(Job::new("free", json!({}))).await.unwrap();
    let all = [jobs::Take::new(jobs::DEFAULT_QUEUE, 10)];
    let first = take(&queue, &all).await;
    assert_eq!(names(&first), ["k1", "free"]);
    // Another connection (as another process would) sees the limit.
    assert!(take(&other, &all).await.is_empty());
    let held = queue.list(Some(JobStatus::Pending), 10).await.unwrap();
    assert_eq!(held.len(), 2, "held jobs are still waiting: {held:?}");
    assert_eq!(held.iter().map(|j| j.attempts).max(), Some(0));
    queue.enqueue(Job::new("later", json!({}))).await.unwrap();
    complete(&queue, &first[0]).await;
    let next = take(&queue, &[jobs::Take::new(jobs::DEFAULT_QUEUE, 1)]).await;
    assert_eq!(names(&next), ["k2"]);
    // Cancelling a held job takes it out of the held set.
    let k3 = held.iter().find(|j| j.name == "k3").unwrap().id;
    assert_eq!(queue.cancel(k3).await.unwrap(), CancelOutcome::Cancelled);
    // A lost lease frees the slot too (here: release).
    assert_eq!(queue.release(&[next[0].lease]).await.unwrap(), 1);
    let again = take(&queue, &all).await;
    assert_eq!(names(&again), ["k2", "later"]);
    complete(&queue, &again[0]).await;
    assert!(take(&queue, &all).await.is_empty());
    assert_eq!(queue.counts().await.unwrap().waiting(), 0);
    queue.purge().await.unwrap();
}

/// A job rate limit holds jobs back until the window opens; waiting
/// workers sleep until then (not at once, not until the poll timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_rate_limit_wakes_when_the_window_opens() {
    let Some(url) = redis_url() else { return };
    let queue = flow_queue(&url).await;
    let rate = jobs::Rate::new(1, Duration::from_millis(400));
    for n in ["r1", "r2"] {
        queue
            .enqueue(Job::new(n, json!({})).rate_limit_by(rate, "api"))
            .await
            .unwrap();
    }
    let all = [jobs::Take::new(jobs::DEFAULT_QUEUE, 10)];
    let start = Instant::now();
    assert_eq!(names(&take(&queue, &all).await), ["r1"]);
    assert!(take(&queue, &all).await.is_empty());
    assert_eq!(queue.queues().await.unwrap()[0].ready, 0);
    // A wake-up may come early (the subscription connecting wakes its
    // waiters once); the held job is given only once the window opened,
    // and the wake-up that says so comes well before the 10 s timeout.
    let second = loop {
        queue.wait_for_jobs(Duration::from_secs(10)).await;
        let got = take(&queue, &all).await;
        if !got.is_empty() {
            break got;
        }
        assert!(start.elapsed() < Duration::from_secs(3), "no wake-up");
    };
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(350),
        "given after {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "woke after {waited:?}");
    assert_eq!(names(&second), ["r2"]);
    queue.purge().await.unwrap();
}

/// Queue-wide limits from the take: concurrency (a finish wakes the waiting
/// worker) and a sliding rate window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_limits_from_the_take() {
    let Some(url) = redis_url() else { return };
    let queue = flow_queue(&url).await;
    for n in 0..4 {
        queue
            .enqueue(Job::new(format!("c{n}"), json!({})).queue("c"))
            .await
            .unwrap();
    }
    let limited = [jobs::Take::new("c", 10).limits(jobs::QueueLimits::new().concurrency(2))];
    let first = take(&queue, &limited).await;
    assert_eq!(names(&first), ["c0", "c1"]);
    assert!(take(&queue, &limited).await.is_empty());
    let waiter = queue.clone();
    let woke = tokio::spawn(async move {
        let start = Instant::now();
        waiter.wait_for_jobs(Duration::from_secs(10)).await;
        start.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    complete(&queue, &first[0]).await;
    let waited = woke.await.unwrap();
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");
    assert_eq!(names(&take(&queue, &limited).await), ["c2"]);

    for n in 0..3 {
        queue
            .enqueue(Job::new(format!("r{n}"), json!({})).queue("r"))
            .await
            .unwrap();
    }
    let rate = jobs::Rate::new(2, Duration::from_millis(400));
    let limited = [jobs::Take::new("r", 10).limits(jobs::QueueLimits::new().rate(rate))];
    let start = Instant::now();
    assert_eq!(names(&take(&queue, &limited).await), ["r0", "r1"]);
    assert!(take(&queue, &limited).await.is_empty());
    queue.wait_for_jobs(Duration::from_secs(10)).await;
    assert!(start.elapsed() >= Duration::from_millis(350));
    assert_eq!(names(&take(&queue, &limited).await), ["r2"]);
    queue.purge().await.unwrap();
}

/// Unique jobs: a twin returns the holder's id with `conflict`, in single
/// pushes (also sent together), in `push_many` (earlier jobs of the batch
/// count), and no more once the holder finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_jobs_conflict_until_the_holder_is_done() {
    let Some(url) = redis_url() else { return };
    let queue = flow_queue(&url).await;
    let job = || Job::new("digest", json!({"user": 7})).unique(jobs::Unique::new("digest:7"));
    let first = queue.push(job()).await.unwrap();
    assert!(!first.conflict);
    let second = queue.push(job()).await.unwrap();
    assert!(second.conflict);
    assert_eq!(second.id, first.id);
    assert_eq!(queue.enqueue(job()).await.unwrap(), first.id);
    // Concurrent single pushes, sent in one script call: one stored at most.
    let pushes: Vec<_> = (0..20)
        .map(|_| {
            let q = queue.clone();
            let other =
                Job::new("digest", json!({"user": 8})).unique(jobs::Unique::new("digest:8"));
            tokio::spawn(async move { q.push(other).await.unwrap() })
        })
        .collect();
    let mut stored = Vec::new();
    let mut holders = Vec::new();
    for p in pushes {
        let e = p.await.unwrap();
        if e.conflict {
            holders.push(e.id)
        } else {
            stored.push(e.id)
        }
    }
    assert_eq!(stored.len(), 1);
    assert!(holders.iter().all(|h| *h == stored[0]));
    // push_many: per job, earlier jobs of the batch included.
    let batch = queue
        .push_many(vec![
            Job::new("x", json!({})).unique(jobs::Unique::new("x")),
            Job::new("x", json!({})).unique(jobs::Unique::new("x")),
            job(),
        ])
        .await
        .unwrap();
    assert!(!batch[0].conflict);
    assert!(batch[1].conflict && batch[1].id == batch[0].id);
    assert!(batch[2].conflict && batch[2].id == first.id);
    assert_eq!(queue.counts().await.unwrap().pending, 3);
    // Once the holder completed (not a blocking state), a new one is stored.
    let taken = take(&queue, &[jobs::Take::new(jobs::DEFAULT_QUEUE, 10)]).await;
    let holder = taken.iter().find(|r| r.job.id == first.id).unwrap();
    assert!(
        queue.push(job()).await.unwrap().conflict,
        "running still blocks"
    );
    complete(&queue, holder).await;
    let fresh = queue.push(job()).await.unwrap();
    assert!(!fresh.conflict);
    assert_ne!(fresh.id, first.id);
    // With a period, an older lock no longer counts.
    let timed = || {
        Job::new("t", json!({})).unique(jobs::Unique::new("t").period(Duration::from_millis(200)))
    };
    let a = queue.push(timed()).await.unwrap();
    assert!(queue.push(timed()).await.unwrap().conflict);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let b = queue.push(timed()).await.unwrap();
    assert!(!b.conflict && b.id != a.id);
    queue.purge().await.unwrap();
}

/// Retention and purge drop the locks (and metas) of the jobs they delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_go_with_their_holders() {
    let Some(url) = redis_url() else { return };
    let name = unique("flow");
    let queue = RedisJobQueue::builder(&url)
        .name(&name)
        .max_finished(1)
        .connect()
        .await
        .unwrap();
    let mut conn = raw_conn(&url).await;
    let key = |k: &str| format!("jobs:{{{name}}}:{k}");
    for n in 0..3 {
        let job = Job::new("u", json!({})).unique(jobs::Unique::new(format!("u{n}")));
        queue.enqueue(job).await.unwrap();
    }
    let locks: usize = conn.hlen(key("unique")).await.unwrap();
    assert_eq!(locks, 3);
    for r in take(&queue, &[jobs::Take::new(jobs::DEFAULT_QUEUE, 10)]).await {
        complete(&queue, &r).await;
    }
    let locks: usize = conn.hlen(key("unique")).await.unwrap();
    let metas: usize = conn.hlen(key("meta")).await.unwrap();
    assert_eq!(
        (locks, metas),
        (1, 1),
        "only the kept job's lock and meta stay"
    );
    queue
        .enqueue(Job::new("q", json!({})).queue("other").concurrency(1))
        .await
        .unwrap();
    take(&queue, &[jobs::Take::new("other", 10)]).await;
    queue.purge().await.unwrap();
    let left: Vec<String> = conn.keys(format!("jobs:{{{name}}}:*")).await.unwrap();
    // The throughput of the past minutes is history, not jobs: it stays
    // (it expires on its own), as on the other backends.
    let left: Vec<String> = left
        .into_iter()
        .filter(|k| !k.starts_with(&key("stat:")))
        .collect();
    assert_eq!(left, vec![key("seq")], "purge leaves only the sequence");
}

/// Snooze puts the job back to waiting, the attempt not counted; progress
/// shows in `get` and stays after the job finished; events of every step
/// reach subscribers, with the job's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snooze_progress_and_events() {
    let Some(url) = redis_url() else { return };
    let queue = flow_queue(&url).await;
    // Events from another connection, as another process would see them.
    let watcher = RedisJobQueue::connect(&url, queue.name()).await.unwrap();
    let mut events = watcher.subscribe();
    // The subscription reaches Redis: wait until an event comes through.
    let probe = queue.enqueue(Job::new("probe", json!({}))).await.unwrap();
    let all = [jobs::Take::new(jobs::DEFAULT_QUEUE, 1)];
    let r = take(&queue, &all).await.remove(0);
    assert_eq!(r.job.id, probe);
    let mut ok = false;
    for _ in 0..100 {
        assert!(queue.progress(r.lease, json!(0)).await.unwrap());
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(50), events.recv()).await {
            ok = true;
            break;
        }
    }
    assert!(ok, "no event came through");
    complete(&queue, &r).await;
    while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
        if e.kind == jobs::JobEventKind::Completed {
            break;
        }
    }

    let id = queue
        .enqueue(Job::new("snoozy \"name\"", json!({})))
        .await
        .unwrap();
    let r = take(&queue, &all).await.remove(0);
    assert!(queue.progress(r.lease, json!({"done": 0.5})).await.unwrap());
    assert_eq!(
        queue.get(id).await.unwrap().unwrap().progress.as_deref(),
        Some(&json!({"done": 0.5}))
    );
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(200);
    assert!(
        queue
            .finish(r.lease, Outcome::Snoozed { at }, None)
            .await
            .unwrap()
    );
    assert!(
        !queue.progress(r.lease, json!(1)).await.unwrap(),
        "the lease is gone"
    );
    let job = queue.get(id).await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.attempts, job.started_at),
        (JobStatus::Pending, 0, None)
    );
    assert!(take(&queue, &all).await.is_empty(), "not due yet");
    queue.wait_for_jobs(Duration::from_secs(5)).await;
    let r = take(&queue, &all).await.remove(0);
    assert_eq!((r.job.id, r.job.attempts), (id, 1));
    assert!(queue.progress(r.lease, json!(0.9)).await.unwrap());
    complete(&queue, &r).await;
    let job = queue.get(id).await.unwrap().unwrap();
    assert_eq!(
        job.progress.as_deref(),
        Some(&json!(0.9)),
        "progress stays after the job finished"
    );
    let mut seen = Vec::new();
    while seen.last() != Some(&jobs::JobEventKind::Completed) {
        let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap();
        if e.job_id != id {
            continue;
        }
        assert_eq!(e.name, "snoozy \"name\"");
        if e.kind == jobs::JobEventKind::Progress {
            assert!(e.progress.is_some());
        }
        seen.push(e.kind);
    }
    use jobs::JobEventKind::*;
    assert_eq!(
        seen,
        [Started, Progress, Snoozed, Started, Progress, Completed]
    );
    assert_eq!(
        watcher.wait_for(id).await.unwrap().status,
        JobStatus::Completed
    );
    queue.purge().await.unwrap();
}

// ------------------------------------------- the plain path's bookkeeping

/// A queue with no flow-control key skips the running counts of its
/// queues; the first reserve under a queue concurrency limit counts the
/// jobs running then, so a limit configured while jobs run is honoured at
/// once, and the counts stay right after the limit goes away and comes
/// back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_limit_configured_later_counts_the_jobs_already_running() {
    let Some(url) = redis_url() else { return };
    let queue = flow_queue(&url).await;
    for i in 0..7 {
        queue
            .enqueue(Job::new(format!("j{i}"), json!({})))
            .await
            .unwrap();
    }
    let plain = [jobs::Take::new(jobs::DEFAULT_QUEUE, 10)];
    let limited = [
        jobs::Take::new(jobs::DEFAULT_QUEUE, 10).limits(jobs::QueueLimits::new().concurrency(3))
    ];
    // Two start with no limit anywhere: nothing is counted yet.
    let mut conn = raw_conn(&url).await;
    let active = format!("jobs:{{{}}}:active", queue.name());
    let before = take(&queue, &[jobs::Take::new(jobs::DEFAULT_QUEUE, 2)]).await;
    assert_eq!(before.len(), 2);
    let exists: bool = conn.exists(&active).await.unwrap();
    assert!(!exists, "the plain path keeps no running counts");
    // The limit of 3 counts those two: one more may start.
    let first = take(&queue, &limited).await;
    assert_eq!(first.len(), 1, "two of the three places are taken");
    assert!(take(&queue, &limited).await.is_empty(), "the queue is full");
    // One of the two that started before the limit stops: its place frees.
    complete(&queue, &before[0]).await;
    let second = take(&queue, &limited).await;
    assert_eq!(second.len(), 1);
    assert!(take(&queue, &limited).await.is_empty());
    // Without the limit (a worker that does not set it), one more starts,
    // and is counted: the limit, back, sees four running.
    let third = take(&queue, &[jobs::Take::new(jobs::DEFAULT_QUEUE, 1)]).await;
    assert_eq!(third.len(), 1);
    for r in [&before[1], &first[0], &second[0]] {
        complete(&queue, r).await;
    }
    // One left running (`third`): two places of three are free.
    let last = take(&queue, &limited).await;
    assert_eq!(last.len(), 2, "the counts follow every start and stop");
    complete(&queue, &third[0]).await;
    for r in &last {
        complete(&queue, r).await;
    }
    let counted: Option<i64> = conn.hget(&active, "q:default").await.unwrap();
    assert_eq!(counted, None, "no job runs: the count is gone");
    assert!(take(&queue, &plain).await.is_empty());
    queue.purge().await.unwrap();
}

/// Events reach a subscriber that joins while jobs are being processed
/// (each script call asks Redis whether anyone listens).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_joining_mid_run_gets_the_events() {
    let Some(url) = redis_url() else { return };
    let queue = flow_queue(&url).await;
    let all = [jobs::Take::new(jobs::DEFAULT_QUEUE, 10)];
    for i in 0..3 {
        queue
            .enqueue(Job::new(format!("early{i}"), json!({})))
            .await
            .unwrap();
    }
    // Run with no one listening.
    let early = take(&queue, &all).await;
    assert_eq!(early.len(), 3);
    complete(&queue, &early[0]).await;
    // Subscribe while two are still running; retry a fresh job until the
    // subscription is live (it connects in the background).
    let mut events = queue.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let id = queue.enqueue(Job::new("probe", json!({}))).await.unwrap();
        assert_eq!(queue.cancel(id).await.unwrap(), CancelOutcome::Cancelled);
        let seen = tokio::time::timeout(Duration::from_millis(200), async {
            loop {
                match events.recv().await {
                    Ok(e) if e.job_id == id => return true,
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        })
        .await;
        if seen == Ok(true) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no event arrived");
    }
    // The jobs that started before the subscription finish: their events
    // come, and so do those of a job run from now on.
    complete(&queue, &early[1]).await;
    complete(&queue, &early[2]).await;
    let id = queue.enqueue(Job::new("late", json!({}))).await.unwrap();
    let late = take(&queue, &all).await;
    assert_eq!(late.len(), 1);
    complete(&queue, &late[0]).await;
    let want = [
        (early[1].job.id, jobs::JobEventKind::Completed),
        (early[2].job.id, jobs::JobEventKind::Completed),
        (id, jobs::JobEventKind::Started),
        (id, jobs::JobEventKind::Completed),
    ];
    let mut seen = Vec::new();
    while seen.len() < want.len() {
        let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("an event within 5 s")
            .unwrap();
        if want.contains(&(e.job_id, e.kind)) {
            seen.push((e.job_id, e.kind));
        }
    }
    assert_eq!(seen, want);
    queue.purge().await.unwrap();
}

/// `purge_status` of a finished status works through the retention list a
/// chunk per script call: every job of that status goes, the others
/// between them stay, and the list and the counts agree after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_status_of_finished_jobs_goes_in_chunks() {
    let Some(url) = redis_url() else { return };
    let name = unique("purge");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let total = 2_600;
    let jobs: Vec<Job> = (0..total)
        .map(|n| Job::new("ok", json!({ "n": n })).max_retries(0))
        .collect();
    queue.enqueue_many(jobs).await.unwrap();
    let mut finished = 0;
    let mut failed = 0;
    loop {
        let got = take(&queue, &[jobs::Take::new(jobs::DEFAULT_QUEUE, 1000)]).await;
        if got.is_empty() {
            break;
        }
        for r in got {
            finished += 1;
            let outcome = if finished % 10 == 0 {
                failed += 1;
                Outcome::Failed(JobResult::error("no"))
            } else {
                Outcome::Completed(JobResult::success(json!(null)))
            };
            assert!(queue.finish(r.lease, outcome, None).await.unwrap());
        }
    }
    assert_eq!(finished, total);
    let purged = queue.purge_status(JobStatus::Completed).await.unwrap();
    assert_eq!(purged, total - failed);
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.completed, counts.failed), (0, failed), "{counts:?}");
    let mut conn = raw_conn(&url).await;
    let kept: u64 = conn.llen(format!("jobs:{{{name}}}:done")).await.unwrap();
    assert_eq!(kept, failed, "only the failed jobs' entries are left");
    let page = queue
        .find_jobs(&jobs::JobFilter::new().page(0, 1000))
        .await
        .unwrap();
    assert_eq!(page.jobs.len() as u64, failed);
    assert!(page.jobs.iter().all(|j| j.status == JobStatus::Failed));
    assert_eq!(queue.purge_status(JobStatus::Failed).await.unwrap(), failed);
    let kept: u64 = conn.llen(format!("jobs:{{{name}}}:done")).await.unwrap();
    assert_eq!(kept, 0);
    assert_eq!(queue.counts().await.unwrap(), jobs::QueueCounts::default());
    queue.purge().await.unwrap();
}
