//! Fault injection on `RedisJobQueue`: keys of the wrong type, records
//! that contradict their index, numbers out of range, odd queue names, a
//! frozen and a killed Redis, payloads too deep to read back, and batches
//! too large for one script call.
//!
//! Each test edits the queue's keys as an operator with `redis-cli` could,
//! then asserts: nothing is stuck, the counts are exact, every job either
//! ran or failed with an error that names what was wrong, and the worker
//! is still running.
//!
//! Needs `JOBS_REDIS_URL`; the frozen / killed / command-counting tests
//! start their own `redis-server` (from `PATH`) on a free loopback port.
#![cfg(feature = "redis")]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jobs::prelude::*;
use jobs::{Outcome, QueueCounts, RedisJobQueue};
use jobs_examples::{redis_url, unique_name};
use jobs_testkit::eventually;
use jobs_testkit::server::PrivateRedis;
use parking_lot::Mutex;
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

/// A private Redis (started from `PATH`), a raw connection to it and the
/// queue `name` on it; `None` (the test skips) without `JOBS_REDIS_URL`.
async fn private_queue(name: &str) -> Option<(PrivateRedis, ConnectionManager, RedisJobQueue)> {
    redis_url()?;
    let server = PrivateRedis::start().await?;
    let conn = raw_conn(&server.url()).await;
    let queue = RedisJobQueue::connect(&server.url(), name).await.unwrap();
    Some((server, conn, queue))
}

fn key(name: &str, suffix: &str) -> String {
    format!("jobs:{{{name}}}:{suffix}")
}

const KEYS: [&str; 8] = [
    "jobs", "state", "ready", "delayed", "running", "done", "seq", "counts",
];

/// Runs jobs: `ok` succeeds, `fail` fails for good with `args.error`.
/// Counts each execution by job id.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<HashMap<JobId, u32>>>);

impl Runs {
    fn of(&self, id: JobId) -> u32 {
        self.0.lock().get(&id).copied().unwrap_or(0)
    }
}

impl JobProcessor for Runs {
    async fn process(&self, job: &Job) -> JobResult {
        *self.0.lock().entry(job.id).or_default() += 1;
        match &*job.name {
            "fail" => JobResult::failure(JobError::permanent(
                job.args["error"].as_str().unwrap_or("failed").to_owned(),
            )),
            _ => JobResult::success(json!(null)),
        }
    }
}

/// A worker with a short lease (so that recovery runs within the test).
struct Running {
    worker: BackgroundJobWorker,
    task: tokio::task::JoinHandle<Result<(), jobs::Error>>,
    runs: Runs,
}

const LEASE: Duration = Duration::from_millis(900);

fn start(queue: &RedisJobQueue) -> Running {
    let runs = Runs::default();
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(runs.clone())
        .lease_duration(LEASE)
        .polling_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let task = tokio::spawn(worker.clone().run_owned());
    Running { worker, task, runs }
}

impl Running {
    /// The worker is still running and takes new jobs; then stops it.
    async fn still_works_then_stop(self, queue: &RedisJobQueue) {
        assert_eq!(self.worker.state(), jobs::WorkerState::Running);
        let id = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
        let job = tokio::time::timeout(Duration::from_secs(10), self.worker.wait_for(id))
            .await
            .expect("the worker still runs jobs")
            .unwrap();
        assert_eq!(job.status, JobStatus::Completed);
        assert!(self.worker.health_check().await.healthy);
        self.worker.stop().await;
        self.task.await.unwrap().unwrap();
    }
}

/// Waits until the stored state of `id` has a final status, and returns the
/// job as `get` shows it.
async fn settled(queue: &RedisJobQueue, conn: &ConnectionManager, id: JobId) -> Job {
    eventually(
        &format!("job {id} settles"),
        Duration::from_secs(10),
        || {
            let mut conn = conn.clone();
            let state_key = queue.state_key().to_owned();
            async move {
                let state: Option<String> = conn.hget(state_key, id.to_string()).await.unwrap();
                state.is_some_and(|s| {
                    matches!(s.as_bytes().first(), Some(b'C' | b'F' | b'X' | b'E'))
                })
            }
        },
    )
    .await;
    queue.get(id).await.unwrap().unwrap()
}

/// Asserts that `job` failed with a readable error containing each of `words`.
fn failed_with(job: &Job, words: &[&str]) {
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    let error = job.last_error.as_deref().unwrap_or_default();
    for word in words {
        assert!(error.contains(word), "{error:?} lacks {word:?}");
    }
    let result = job.result.as_ref().expect("a result");
    assert_eq!(result.error.as_deref(), Some(error));
}

/// Asserts the counts agree with the jobs' states, and that no job waits or
/// runs: nothing is stuck.
async fn counts_exact_and_idle(queue: &RedisJobQueue, ids: &[JobId]) {
    let mut expected = QueueCounts::default();
    for id in ids {
        let job = queue.get(*id).await.unwrap().expect("the job is kept");
        assert!(job.status.is_final(), "job {id} is stuck: {job:?}");
        expected.set(job.status, expected.get(job.status) + 1);
    }
    let mut counts = queue.counts().await.unwrap();
    counts.scheduled = 0;
    assert_eq!(counts, expected);
}

/// What every key of the queue holds (by type, in a canonical order), to
/// show that nothing changed.
async fn snapshot(conn: &mut ConnectionManager, name: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for suffix in KEYS {
        let k = key(name, suffix);
        let kind: String = redis::cmd("TYPE").arg(&k).query_async(conn).await.unwrap();
        let mut items: Vec<String> = match kind.as_str() {
            "hash" => conn.hgetall(&k).await.unwrap(),
            "zset" => conn.zrange_withscores(&k, 0, -1).await.unwrap(),
            "list" => conn.lrange(&k, 0, -1).await.unwrap(),
            "string" => vec![conn.get(&k).await.unwrap()],
            _ => Vec::new(),
        };
        if kind == "hash" {
            let mut pairs: Vec<String> = items.chunks(2).map(|p| p.join("=")).collect();
            pairs.sort();
            items = pairs;
        }
        out.push((kind, items));
    }
    out
}

async fn cleanup(conn: &mut ConnectionManager, name: &str) {
    let keys: Vec<String> = KEYS.iter().map(|k| key(name, k)).collect();
    let _: () = conn.del(keys).await.unwrap();
}

/// An error as the queue reports it: a backend error, said once.
fn said_once(e: &jobs::Error) -> String {
    let text = e.to_string();
    assert_eq!(
        text.matches("queue backend error").count(),
        1,
        "wrapped twice: {text}"
    );
    text
}

// ---------------------------------------------------------------- tests

/// Each key of the queue replaced by a value of another type: every call
/// that would write fails with `WRONGTYPE` naming the key, and changes
/// nothing at all. Once the key is restored, everything runs and the
/// counts are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_type_keys_change_nothing() {
    let Some(url) = redis_url() else { return };
    let mut conn = raw_conn(&url).await;
    for suffix in KEYS {
        let name = unique_name("wrongtype");
        let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
        let k = key(&name, suffix);
        // One job of each kind: finished, running (held here), waiting,
        // scheduled.
        let done = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
        let lease = Duration::from_secs(60);
        let first = queue
            .reserve("t", &[jobs::Take::new(jobs::DEFAULT_QUEUE, 1)], lease)
            .await
            .unwrap()
            .remove(0);
        assert!(
            queue
                .finish(
                    first.lease,
                    Outcome::Completed(JobResult::success(json!(1))),
                    None
                )
                .await
                .unwrap()
        );
        let held_id = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
        let held = queue
            .reserve("t", &[jobs::Take::new(jobs::DEFAULT_QUEUE, 1)], lease)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(held.job.id, held_id);
        let waiting = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
        let later = queue
            .enqueue(Job::new("ok", json!({})).delay(Duration::from_millis(300)))
            .await
            .unwrap();
        let ids = [done, held_id, waiting, later];

        // Replace the key (keeping what it held, to restore it).
        let saved: Option<Vec<u8>> = redis::cmd("DUMP")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: () = conn.del(&k).await.unwrap();
        if suffix == "seq" {
            let _: () = conn.rpush(&k, "not a counter").await.unwrap();
        } else {
            let _: () = conn.set(&k, "not a hash, set or list").await.unwrap();
        }
        let before = snapshot(&mut conn, &name).await;

        let refused = |e: jobs::Error| {
            let text = said_once(&e);
            assert!(text.contains("WRONGTYPE"), "{text}");
            assert!(text.contains(&k), "the error names the key: {text}");
            assert!(!e.is_transient(), "{text}");
        };
        refused(queue.enqueue(Job::new("ok", json!({}))).await.unwrap_err());
        refused(
            queue
                .enqueue_many(vec![Job::new("ok", json!({})), Job::new("ok", json!({}))])
                .await
                .unwrap_err(),
        );
        refused(
            queue
                .reserve("t", &[jobs::Take::new(jobs::DEFAULT_QUEUE, 10)], lease)
                .await
                .unwrap_err(),
        );
        refused(
            queue
                .finish(
                    held.lease,
                    Outcome::Completed(JobResult::success(json!(2))),
                    None,
                )
                .await
                .unwrap_err(),
        );
        refused(queue.release(&[held.lease]).await.unwrap_err());
        refused(queue.cancel(waiting).await.unwrap_err());
        refused(queue.delete(waiting).await.unwrap_err());
        refused(queue.delete(done).await.unwrap_err());
        refused(queue.purge_status(JobStatus::Pending).await.unwrap_err());
        refused(queue.purge_status(JobStatus::Completed).await.unwrap_err());
        assert_eq!(
            snapshot(&mut conn, &name).await,
            before,
            "{suffix}: a refused call changed nothing"
        );

        // The operator restores the key.
        let _: () = conn.del(&k).await.unwrap();
        if let Some(saved) = saved {
            let _: () = redis::cmd("RESTORE")
                .arg(&k)
                .arg(0)
                .arg(saved)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        assert!(
            queue
                .finish(
                    held.lease,
                    Outcome::Completed(JobResult::success(json!(2))),
                    None
                )
                .await
                .unwrap(),
            "{suffix}: the held lease is still good"
        );
        let running = start(&queue);
        for id in [waiting, later] {
            assert_eq!(
                running.worker.wait_for(id).await.unwrap().status,
                JobStatus::Completed,
                "{suffix}"
            );
        }
        counts_exact_and_idle(&queue, &ids).await;
        running.still_works_then_stop(&queue).await;
        cleanup(&mut conn, &name).await;
    }
}

/// A count that is no number, and a counts hash deleted by hand: writes are
/// refused (changing nothing) in the first case; once it is deleted, the
/// counts are recounted from the states on the next `counts`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_counts_are_refused_then_recounted() {
    let Some(url) = redis_url() else { return };
    let mut conn = raw_conn(&url).await;
    let name = unique_name("counts");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let ids = queue
        .enqueue_many((0..5).map(|_| Job::new("ok", json!({}))).collect())
        .await
        .unwrap();
    let counts_key = key(&name, "counts");
    let _: () = conn.hset(&counts_key, "P", "five").await.unwrap();
    let before = snapshot(&mut conn, &name).await;
    let e = queue.enqueue(Job::new("ok", json!({}))).await.unwrap_err();
    let text = said_once(&e);
    assert!(
        text.contains(&counts_key) && text.contains("five"),
        "{text}"
    );
    assert!(
        queue
            .reserve("t", &[jobs::Take::new(jobs::DEFAULT_QUEUE, 10)], LEASE)
            .await
            .is_err()
    );
    assert_eq!(snapshot(&mut conn, &name).await, before);

    let _: () = conn.del(&counts_key).await.unwrap();
    assert_eq!(queue.counts().await.unwrap().pending, 5, "recounted");
    let running = start(&queue);
    for id in &ids {
        assert_eq!(
            running.worker.wait_for(*id).await.unwrap().status,
            JobStatus::Completed
        );
    }
    counts_exact_and_idle(&queue, &ids).await;
    running.still_works_then_stop(&queue).await;
    cleanup(&mut conn, &name).await;
}

/// Records that contradict the index they are found in: a running job in
/// `ready` (and in no `running`), a pending job in `running`, a state
/// without JSON, JSON without a state. Each is failed with an error naming
/// the key, or put back and run, within a lease period; the counts are
/// exact afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contradictory_records_are_failed_or_restored() {
    let Some(url) = redis_url() else { return };
    let mut conn = raw_conn(&url).await;
    let name = unique_name("contradict");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let (state, jobs, ready, running_key) = (
        key(&name, "state"),
        key(&name, "jobs"),
        key(&name, "ready"),
        key(&name, "running"),
    );
    let [
        running_in_ready,
        pending_in_running,
        no_json,
        no_state,
        fine,
    ] = [0; 5].map(|_| JobId::new());
    for id in [
        running_in_ready,
        pending_in_running,
        no_json,
        no_state,
        fine,
    ] {
        let mut job = Job::new("ok", json!({}));
        job.id = id;
        queue.enqueue(job).await.unwrap();
    }
    let s: String = conn
        .hget(&state, running_in_ready.to_string())
        .await
        .unwrap();
    let _: () = conn
        .hset(
            &state,
            running_in_ready.to_string(),
            format!("R{}", &s[1..]),
        )
        .await
        .unwrap();
    let _: () = conn
        .zrem(&ready, pending_in_running.to_string())
        .await
        .unwrap();
    let _: () = conn
        .zadd(&running_key, pending_in_running.to_string(), 0)
        .await
        .unwrap();
    let _: () = conn.hdel(&jobs, no_json.to_string()).await.unwrap();
    let _: () = conn.hdel(&state, no_state.to_string()).await.unwrap();

    let started = Instant::now();
    let running = start(&queue);
    failed_with(
        &settled(&queue, &conn, running_in_ready).await,
        &[
            "corrupt job record",
            &state,
            &running_in_ready.to_string(),
            "Running",
            &ready,
        ],
    );
    failed_with(
        &settled(&queue, &conn, no_json).await,
        &["corrupt job record", &jobs, &no_json.to_string(), "no JSON"],
    );
    failed_with(
        &settled(&queue, &conn, no_state).await,
        &[
            "corrupt job record",
            &state,
            &no_state.to_string(),
            "no state",
        ],
    );
    assert_eq!(
        settled(&queue, &conn, pending_in_running).await.status,
        JobStatus::Completed
    );
    assert!(
        started.elapsed() < LEASE * 3,
        "restored within a lease period or so: {:?}",
        started.elapsed()
    );
    assert_eq!(
        settled(&queue, &conn, fine).await.status,
        JobStatus::Completed
    );
    assert_eq!(running.runs.of(fine), 1);
    assert_eq!(running.runs.of(pending_in_running), 1);
    for id in [running_in_ready, no_json, no_state] {
        assert_eq!(running.runs.of(id), 0);
        let job = queue.get(id).await.unwrap().unwrap();
        assert_eq!(
            job.result.unwrap().error_type.as_deref(),
            Some("CorruptRecord")
        );
    }
    counts_exact_and_idle(
        &queue,
        &[
            running_in_ready,
            pending_in_running,
            no_json,
            no_state,
            fine,
        ],
    )
    .await;
    running.still_works_then_stop(&queue).await;
    cleanup(&mut conn, &name).await;
}

/// An attempts field too large for any integer, in a waiting job and in a
/// running one: both are failed with an error naming the state key and the
/// field; neither stays counted as running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_numbers_are_quarantined() {
    let Some(url) = redis_url() else { return };
    let mut conn = raw_conn(&url).await;
    let name = unique_name("range");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let state = key(&name, "state");
    // A job that is running (reserved here) when its attempts are mangled;
    // its lease then runs out.
    let held = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    let lease = queue
        .reserve(
            "t",
            &[jobs::Take::new(jobs::DEFAULT_QUEUE, 1)],
            Duration::from_millis(200),
        )
        .await
        .unwrap()
        .remove(0);
    assert_eq!(lease.job.id, held);
    let s: String = conn.hget(&state, held.to_string()).await.unwrap();
    let mangled = s.replacen("|1|", "|99999999999999999999|", 1);
    assert_ne!(s, mangled);
    let _: () = conn.hset(&state, held.to_string(), &mangled).await.unwrap();
    let waiting = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    let _: () = conn
        .hset(
            &state,
            waiting.to_string(),
            "P1|99999999999999999999|3|0|||",
        )
        .await
        .unwrap();

    let running = start(&queue);
    for id in [waiting, held] {
        let job = settled(&queue, &conn, id).await;
        failed_with(
            &job,
            &[
                &state,
                &id.to_string(),
                "attempts 99999999999999999999 is out of range",
            ],
        );
        assert_eq!(running.runs.of(id), 0);
    }
    // The held lease is void now.
    assert!(
        !queue
            .finish(
                lease.lease,
                Outcome::Completed(JobResult::success(json!(1))),
                None
            )
            .await
            .unwrap()
    );
    counts_exact_and_idle(&queue, &[waiting, held]).await;
    running.still_works_then_stop(&queue).await;
    cleanup(&mut conn, &name).await;
}

/// Queue names with quotes, a backslash, spaces and Unicode work end to
/// end: jobs run, a failed job keeps its error, a corrupt record is failed
/// with a readable error naming its key. Braces are refused when the queue
/// is built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_queue_names_work() {
    let Some(url) = redis_url() else { return };
    let mut conn = raw_conn(&url).await;
    let err = RedisJobQueue::builder(&url)
        .name("a{b}")
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("braces"), "{err}");
    for odd in [
        "say \"hi\"",
        "back\\slash",
        "with  spaces ",
        "ünïcödé ✓ 🚀",
        "\"\\ \u{7}mixed' all",
    ] {
        let name = format!("{odd} {}", JobId::new());
        let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
        assert_eq!(queue.name(), name);
        let error = format!("failed in {odd:?}: \"quoted\" \\ ü");
        let ok = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
        let fail = queue
            .enqueue(Job::new("fail", json!({ "error": error })).max_retries(0))
            .await
            .unwrap();
        let corrupt = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
        let _: () = conn
            .hset(queue.state_key(), corrupt.to_string(), "hand-edited")
            .await
            .unwrap();
        let running = start(&queue);
        assert_eq!(
            settled(&queue, &conn, ok).await.status,
            JobStatus::Completed
        );
        failed_with(&settled(&queue, &conn, fail).await, &[&error]);
        failed_with(
            &settled(&queue, &conn, corrupt).await,
            &[queue.state_key(), &corrupt.to_string(), "does not parse"],
        );
        assert!(queue.list(None, 10).await.unwrap().len() >= 3);
        counts_exact_and_idle(&queue, &[ok, fail, corrupt]).await;
        running.still_works_then_stop(&queue).await;
        cleanup(&mut conn, &name).await;
    }
}

/// Payloads nested deeper than a worker can read back are refused at
/// enqueue, on memory and on Redis, naming the limit; one at the limit
/// runs.
#[test]
fn too_deep_payloads_are_refused_at_enqueue() {
    // Building and dropping a value nested 10,000 deep recurses (in
    // serde_json, not in the queue): give it room.
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(256 << 20)
                .enable_all()
                .build()
                .unwrap()
                .block_on(too_deep_payloads())
        })
        .unwrap()
        .join()
        .unwrap();
}

async fn too_deep_payloads() {
    fn nested(depth: usize) -> serde_json::Value {
        let mut value = json!(1);
        for _ in 0..depth {
            // Not `json!([value])`, which copies the value each time.
            value = serde_json::Value::Array(vec![value]);
        }
        value
    }
    fn refused(e: jobs::Error) {
        let jobs::Error::InvalidJob { message, .. } = &e else {
            panic!("{e:?}")
        };
        assert!(
            message.contains("125") && message.contains("128"),
            "{message}"
        );
    }
    let deep = || Job::new("ok", json!({ "v": nested(10_000) }));
    let deep_meta = || Job::new("ok", json!({})).meta("m", nested(10_000));
    // At the limit: args 125 deep (the object holding `v` is one level).
    let at_limit = || Job::new("ok", json!({ "v": nested(124) })).meta("m", nested(125));
    let over = || Job::new("ok", json!({ "v": nested(125) }));

    let memory = MemoryJobQueue::new();
    refused(memory.enqueue(deep()).await.unwrap_err());
    refused(memory.enqueue(deep_meta()).await.unwrap_err());
    refused(memory.enqueue(over()).await.unwrap_err());
    refused(
        memory
            .enqueue_many(vec![at_limit(), deep()])
            .await
            .unwrap_err(),
    );
    assert_eq!(memory.counts().await.unwrap().pending, 0);
    memory.enqueue(at_limit()).await.unwrap();

    let Some(url) = redis_url() else { return };
    let mut conn = raw_conn(&url).await;
    let name = unique_name("deep");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    refused(queue.enqueue(deep()).await.unwrap_err());
    refused(queue.enqueue(deep_meta()).await.unwrap_err());
    refused(queue.enqueue(over()).await.unwrap_err());
    refused(
        queue
            .enqueue_many(vec![at_limit(), deep()])
            .await
            .unwrap_err(),
    );
    assert_eq!(queue.counts().await.unwrap(), QueueCounts::default());
    let id = queue.enqueue(at_limit()).await.unwrap();
    let running = start(&queue);
    let job = running.worker.wait_for(id).await.unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    assert_eq!(job.args["v"], nested(124));
    counts_exact_and_idle(&queue, &[id]).await;
    running.still_works_then_stop(&queue).await;
    cleanup(&mut conn, &name).await;
}

/// Redis frozen (SIGSTOP): enqueue times out with a transient error, said
/// once; after SIGCONT a retry with the same id returns that id, and
/// exactly one job exists and runs once. The worker rides it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_redis_then_an_idempotent_retry_stores_one_job() {
    if redis_url().is_none() {
        return;
    }
    let Some(server) = PrivateRedis::start().await else {
        return;
    };
    let queue = RedisJobQueue::builder(&server.url())
        .name("frozen")
        .timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let running = start(&queue);
    let warm = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    running.worker.wait_for(warm).await.unwrap();

    let job = || Job::new("ok", json!({"order": 7})).idempotency_key("order-7");
    assert_eq!(job().id, job().id);
    server.signal("-STOP");
    let started = Instant::now();
    let e = queue.enqueue_idempotent(job()).await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    let text = said_once(&e);
    assert!(text.contains("timed out"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3));
    server.signal("-CONT");

    // The retry: whether or not the first try was stored, one job results.
    let id = loop {
        match queue.enqueue_idempotent(job()).await {
            Ok(id) => break id,
            Err(e) if e.is_transient() => continue,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(id, job().id);
    assert_eq!(queue.enqueue_idempotent(job()).await.unwrap(), id);
    let done = running.worker.wait_for(id).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    let mut conn = raw_conn(&server.url()).await;
    let stored: u64 = conn.hlen(queue.state_key()).await.unwrap();
    assert_eq!(stored, 2, "the warm-up job and exactly one more");
    assert_eq!(running.runs.of(id), 1, "it ran once");
    counts_exact_and_idle(&queue, &[warm, id]).await;
    eventually("healthy again", Duration::from_secs(15), || async {
        running.worker.health_check().await.healthy
    })
    .await;
    running.still_works_then_stop(&queue).await;
}

/// Redis killed (SIGKILL) with jobs waiting and running, then restarted on
/// its data: every job runs, none is stuck, the counts are exact, the
/// worker carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_loses_nothing_stored() {
    if redis_url().is_none() {
        return;
    }
    let Some(mut server) = PrivateRedis::start().await else {
        return;
    };
    let queue = RedisJobQueue::builder(&server.url())
        .name("killed")
        .timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    // A job "running" in a worker that dies with Redis: its lease expires.
    let held = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    queue
        .reserve("gone", &[jobs::Take::new(jobs::DEFAULT_QUEUE, 1)], LEASE)
        .await
        .unwrap();
    let running = start(&queue);
    let mut all = queue
        .enqueue_many((0..2_000).map(|_| Job::new("ok", json!({}))).collect())
        .await
        .unwrap();
    server.kill();
    assert!(queue.enqueue(Job::new("ok", json!({}))).await.is_err());
    server.up().await;
    all.push(held);
    for id in &all {
        let job = loop {
            match tokio::time::timeout(Duration::from_secs(20), running.worker.wait_for(*id))
                .await
                .expect("the job runs after the restart")
            {
                Ok(job) => break job,
                Err(e) if e.is_transient() => continue,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(job.status, JobStatus::Completed);
    }
    counts_exact_and_idle(&queue, &all).await;
    eventually("healthy again", Duration::from_secs(15), || async {
        running.worker.health_check().await.healthy
    })
    .await;
    running.still_works_then_stop(&queue).await;
}

/// A running job whose entry in the running index was deleted by hand, its
/// worker gone, is met by no script: lease recovery sees that more jobs are
/// counted running than the index holds, repairs the queue, and the job
/// runs again, within a lease period or so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_in_no_index_is_recovered() {
    let Some(url) = redis_url() else { return };
    let mut conn = raw_conn(&url).await;
    let name = unique_name("orphan");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let id = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    // A worker reserved it (for an hour) and died; then its entry in the
    // running index was deleted.
    let taken = queue
        .reserve(
            "gone",
            &[jobs::Take::new(jobs::DEFAULT_QUEUE, 1)],
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    let _: () = conn
        .zrem(key(&name, "running"), id.to_string())
        .await
        .unwrap();
    assert_eq!(queue.counts().await.unwrap().running, 1);

    let started = Instant::now();
    let running = start(&queue);
    let job = settled(&queue, &conn, id).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    assert_eq!(running.runs.of(id), 1, "it ran once more, here");
    assert!(
        started.elapsed() < LEASE * 5,
        "recovered after {:?}",
        started.elapsed()
    );
    counts_exact_and_idle(&queue, &[id]).await;
    running.still_works_then_stop(&queue).await;
    cleanup(&mut conn, &name).await;
}

/// `repair` after an index was lost (deleted by hand): waiting jobs go back
/// to `ready`, running ones to `running` (then recovery retries them), JSON
/// without state is failed; the counts are recounted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_reindexes_jobs_in_no_index() {
    let Some(url) = redis_url() else { return };
    let mut conn = raw_conn(&url).await;
    let name = unique_name("repair");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let waiting = queue
        .enqueue_many((0..3).map(|_| Job::new("ok", json!({}))).collect())
        .await
        .unwrap();
    let held = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    queue
        .reserve(
            "gone",
            &[jobs::Take::new(jobs::DEFAULT_QUEUE, 1)],
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    let orphan = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    let _: () = conn
        .hdel(key(&name, "state"), orphan.to_string())
        .await
        .unwrap();
    let _: () = conn
        .del(&[
            key(&name, "ready"),
            key(&name, "running"),
            key(&name, "counts"),
        ])
        .await
        .unwrap();

    let report = queue.repair().await.unwrap();
    assert_eq!((report.reindexed, report.quarantined), (4, 1), "{report:?}");
    assert_eq!(report.counts.pending, 3);
    assert_eq!(report.counts.running, 1);
    assert_eq!(report.counts.failed, 1);
    let running = start(&queue);
    for id in waiting.iter().chain([&held]) {
        assert_eq!(
            running.worker.wait_for(*id).await.unwrap().status,
            JobStatus::Completed
        );
    }
    failed_with(
        &settled(&queue, &conn, orphan).await,
        &[&key(&name, "state"), &orphan.to_string(), "no state"],
    );
    let mut all = waiting.clone();
    all.extend([held, orphan]);
    counts_exact_and_idle(&queue, &all).await;
    assert_eq!(
        queue.repair().await.unwrap().reindexed,
        0,
        "nothing left to do"
    );
    running.still_works_then_stop(&queue).await;
    cleanup(&mut conn, &name).await;
}

/// An `enqueue_many` above one script call's worth is split into bounded
/// calls; still all or none when an id is taken, even in the last chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_enqueue_many_is_split_and_still_all_or_none() {
    let Some((_server, mut conn, queue)) = private_queue("large").await else {
        return;
    };
    let taken = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    let mut jobs: Vec<Job> = (0..5_000).map(|_| Job::new("ok", json!({}))).collect();
    jobs[4_999].id = taken;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(matches!(
        queue.enqueue_many(jobs.clone()).await,
        Err(jobs::Error::Duplicate(id)) if id == taken
    ));
    assert_eq!(queue.counts().await.unwrap().pending, 1, "none stored");
    jobs[4_999].id = JobId::new();
    let ids = queue.enqueue_many(jobs).await.unwrap();
    assert_eq!(ids.len(), 5_000);
    assert_eq!(queue.counts().await.unwrap().pending, 5_001);
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    // Script calls: functions (Redis 7 and later) or scripts.
    let calls: u64 = ["cmdstat_fcall:calls=", "cmdstat_evalsha:calls="]
        .iter()
        .filter_map(|stat| info.lines().find_map(|l| l.strip_prefix(stat)))
        .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
        .sum();
    // Refused: one check call. Stored: one check call and three chunks.
    // Plus the two `counts`.
    assert!(calls >= 7, "{info}");
}

/// How many calls of `command` the server counted (`INFO commandstats`).
async fn calls_of(conn: &mut ConnectionManager, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let stat = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&stat))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// The queue scripts run as functions of a library the queue loads; a
/// server that lost it (`FUNCTION FLUSH`, or a restart without
/// persistence) gets it again on the next call, which succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_function_library_is_loaded_again() {
    let Some((_server, mut conn, queue)) = private_queue("flushed").await else {
        return;
    };
    let first = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    let libraries: Vec<redis::Value> = redis::cmd("FUNCTION")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(libraries.len(), 1, "the queue loaded its library");
    let _: () = redis::cmd("FUNCTION")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let second = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    let running = start(&queue);
    for id in [first, second] {
        let job = tokio::time::timeout(Duration::from_secs(10), running.worker.wait_for(id))
            .await
            .expect("both jobs run")
            .unwrap();
        assert_eq!(job.status, JobStatus::Completed);
    }
    let libraries: Vec<redis::Value> = redis::cmd("FUNCTION")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(libraries.len(), 1, "loaded again");
    assert!(calls_of(&mut conn, "fcall").await > 0);
    running.still_works_then_stop(&queue).await;
}

/// A server without functions (before Redis 7, or a user who may not load
/// them: here an ACL without `FUNCTION`) runs the same scripts with
/// `EVALSHA`: jobs run, and not one `FCALL` is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_functions_the_scripts_run_as_scripts() {
    if redis_url().is_none() {
        return;
    }
    let Some(server) = PrivateRedis::start().await else {
        return;
    };
    let mut conn = raw_conn(&server.url()).await;
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "nofunctions",
            "on",
            "nopass",
            "~*",
            "&*",
            "+@all",
            "-function",
        ])
        .query_async(&mut conn)
        .await
        .unwrap();
    let url = server
        .url()
        .replacen("redis://", "redis://nofunctions:any@", 1);
    let queue = RedisJobQueue::connect(&url, "nofunctions").await.unwrap();
    let ids = queue
        .enqueue_many((0..20).map(|_| Job::new("ok", json!({}))).collect())
        .await
        .unwrap();
    let running = start(&queue);
    for id in ids {
        let job = tokio::time::timeout(Duration::from_secs(10), running.worker.wait_for(id))
            .await
            .expect("every job runs")
            .unwrap();
        assert_eq!(job.status, JobStatus::Completed);
    }
    assert_eq!(queue.counts().await.unwrap().completed, 20);
    // Every queue script ran, and not as a function.
    assert_eq!(calls_of(&mut conn, "fcall").await, 0);
    assert!(calls_of(&mut conn, "evalsha").await > 20);
    running.still_works_then_stop(&queue).await;
}

/// A single enqueue with none on its way is sent at once; many at the same
/// moment share script calls (all that queued up while the previous call
/// was on its way go in the next), each still answered on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_single_enqueues_share_script_calls() {
    let Some((_server, mut conn, queue)) = private_queue("together").await else {
        return;
    };
    queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    for _ in 0..10 {
        queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    }
    assert_eq!(calls_of(&mut conn, "fcall").await, 10, "one call each");
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    let n = 500;
    let taken = JobId::new();
    let sends = (0..n).map(|i| {
        let queue = queue.clone();
        let mut job = Job::new("ok", json!({ "i": i }));
        if i % 100 == 7 {
            job.id = taken;
        }
        tokio::spawn(async move { queue.enqueue(job).await })
    });
    let mut refused = 0;
    for send in sends.collect::<Vec<_>>() {
        match send.await.unwrap() {
            Ok(_) => {}
            Err(jobs::Error::Duplicate(id)) if id == taken => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(refused, 4, "the taken id is refused four times out of five");
    assert_eq!(queue.counts().await.unwrap().pending, 11 + n - 4);
    let calls = calls_of(&mut conn, "fcall").await;
    assert!(calls < n / 2, "{calls} script calls for {n} enqueues");
}
