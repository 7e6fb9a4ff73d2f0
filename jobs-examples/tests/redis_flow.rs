//! Flow control across processes on one Redis: limits held by two worker
//! processes together, unique jobs enqueued by two processes at once, and a
//! pause that stops both.
//!
//! Needs `JOBS_REDIS_URL` (e.g. `redis://127.0.0.1:6379`); without it each
//! test prints that it skipped and passes, unless `JOBS_REQUIRE_REDIS` is
//! set.
//!
//! Worker processes are this test binary run again in "child" mode (the
//! `flow_child` test, which does nothing unless `JOBS_FLOW_CHILD` is set).
//! Their processor records each run's start and end (milliseconds of the
//! system clock, which all processes on this machine share) in Redis, so
//! the tests can measure overlaps and rates after the fact.
#![cfg(feature = "redis")]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jobs::prelude::*;
use jobs::{Rate, RedisJobQueue, Unique};
use jobs_examples::child::ChildProcess;
use jobs_examples::{redis_url, unique_name as unique};
use jobs_testkit::eventually;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde_json::json;

// ---------------------------------------------------------------- helpers

async fn raw_conn(url: &str) -> ConnectionManager {
    redis::Client::open(url)
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap()
}

fn spans_key(name: &str) -> String {
    format!("test:{{{name}}}:spans")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One recorded run: the job, its key, when it started and ended (ms).
#[derive(Clone, Debug)]
struct Span {
    id: String,
    key: String,
    start: u64,
    end: u64,
}

async fn spans(conn: &mut ConnectionManager, name: &str) -> Vec<Span> {
    let raw: Vec<String> = conn.lrange(spans_key(name), 0, -1).await.unwrap();
    raw.iter()
        .map(|line| {
            let parts: Vec<&str> = line.split('|').collect();
            Span {
                id: parts[0].to_owned(),
                key: parts[1].to_owned(),
                start: parts[2].parse().unwrap(),
                end: parts[3].parse().unwrap(),
            }
        })
        .collect()
}

/// The most runs that were going on at one moment.
fn max_overlap<'a>(spans: impl IntoIterator<Item = &'a Span>) -> usize {
    // Ends sort before starts at the same millisecond: a run that ended
    // when another started did not overlap it.
    let mut points: Vec<(u64, i32)> = spans
        .into_iter()
        .flat_map(|s| [(s.start, 1), (s.end, -1)])
        .collect();
    points.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in points {
        now += step;
        most = most.max(now);
    }
    most as usize
}

/// Records each run as a span: `{"key": .., "ms": ..}` runs for `ms`.
#[derive(Clone)]
struct SpanRecorder {
    conn: ConnectionManager,
    name: String,
}

impl JobProcessor for SpanRecorder {
    async fn process(&self, job: &Job) -> JobResult {
        let key = job.args["key"].as_str().unwrap_or("").to_owned();
        let ms = job.args["ms"].as_u64().unwrap_or(0);
        let start = now_ms();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let end = now_ms();
        let mut conn = self.conn.clone();
        let line = format!("{}|{key}|{start}|{end}", job.id);
        match conn.rpush::<_, _, ()>(spans_key(&self.name), line).await {
            Ok(()) => JobResult::success(json!(null)),
            Err(e) => JobResult::failure(JobError::retryable(e.to_string())),
        }
    }
}

fn span_job(key: &str, ms: u64) -> Job {
    Job::new("span", json!({ "key": key, "ms": ms }))
}

/// A worker process (`JOBS_FLOW_CHILD=worker`), or a process that enqueues
/// 100 unique jobs at an agreed moment and prints what `push` said
/// (`JOBS_FLOW_CHILD=enqueue`).
struct Child(ChildProcess);

impl Child {
    fn worker(url: &str, name: &str) -> Self {
        let mut child = ChildProcess::spawn(
            "flow_child",
            &[
                ("JOBS_FLOW_CHILD", "worker"),
                ("JOBS_REDIS_URL", url),
                ("JOBS_FLOW_NAME", name),
            ],
        );
        child.drain_output();
        Child(child)
    }

    fn enqueuer(url: &str, name: &str, start_at_ms: u64) -> Self {
        Child(ChildProcess::spawn(
            "flow_child",
            &[
                ("JOBS_FLOW_CHILD", "enqueue"),
                ("JOBS_REDIS_URL", url),
                ("JOBS_FLOW_NAME", name),
                ("JOBS_FLOW_START_MS", &start_at_ms.to_string()),
            ],
        ))
    }

    fn stop(mut self) {
        self.0.interrupt();
        assert!(self.0.wait().success(), "graceful stop on Ctrl-C");
    }
}

fn unique_job(i: usize) -> Job {
    Job::new("noop", json!({ "i": i }))
        .unique(Unique::new(format!("noop:{i}")).period(Duration::from_secs(60)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_child() {
    let Some(mode) = std::env::var_os("JOBS_FLOW_CHILD") else {
        return;
    };
    let url = std::env::var("JOBS_REDIS_URL").unwrap();
    let name = std::env::var("JOBS_FLOW_NAME").unwrap();
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    if mode == "enqueue" {
        let start: u64 = std::env::var("JOBS_FLOW_START_MS")
            .unwrap()
            .parse()
            .unwrap();
        println!("READY {}", std::process::id());
        tokio::time::sleep(Duration::from_millis(start.saturating_sub(now_ms()))).await;
        // One at a time and in a batch, interleaved with the other process.
        let mut results = Vec::new();
        for i in 0..50 {
            let e = queue.push(unique_job(i)).await.unwrap();
            results.push((e.id.to_string(), e.conflict));
        }
        let batch = queue
            .push_many((50..100).map(unique_job).collect())
            .await
            .unwrap();
        results.extend(batch.iter().map(|e| (e.id.to_string(), e.conflict)));
        println!("RESULTS {}", serde_json::to_string(&results).unwrap());
        tokio::signal::ctrl_c().await.unwrap();
        return;
    }
    let worker = BackgroundJobWorker::builder()
        .queue(queue)
        .queues([("default", 8), ("mailers", 8)])
        .processor(SpanRecorder {
            conn: raw_conn(&url).await,
            name,
        })
        .polling_interval(Duration::from_secs(5))
        .build()
        .unwrap();
    jobs_testkit::child::serve_until_interrupted(worker).await;
}

async fn cleanup(url: &str, queue: &RedisJobQueue, name: &str) {
    queue.purge().await.unwrap();
    let mut conn = raw_conn(url).await;
    let _: () = conn.del(spans_key(name)).await.unwrap();
}

/// Waits until every one of `ids` completed, and checks that each ran once.
async fn all_ran_once(
    queue: &RedisJobQueue,
    conn: &mut ConnectionManager,
    name: &str,
    ids: &[JobId],
) -> Vec<Span> {
    eventually("every job completed", Duration::from_secs(60), || async {
        queue.counts().await.unwrap().completed == ids.len() as u64
    })
    .await;
    let spans = spans(conn, name).await;
    let ran: HashSet<&str> = spans.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(spans.len(), ids.len(), "no job ran twice");
    for id in ids {
        assert!(ran.contains(id.to_string().as_str()), "job {id} ran");
    }
    spans
}

// ---------------------------------------------------------------- tests

/// `concurrency = 2` across two worker processes of 8 slots each: never
/// more than two at once, and two at once do run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_holds_across_two_processes() {
    let Some(url) = redis_url() else { return };
    let name = unique("flow-conc");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let (a, b) = (Child::worker(&url, &name), Child::worker(&url, &name));
    let jobs: Vec<Job> = (0..16)
        .map(|_| span_job("g", 60).concurrency_by(2, "flow-conc"))
        .collect();
    let ids = queue.enqueue_many(jobs).await.unwrap();
    let mut conn = raw_conn(&url).await;
    let spans = all_ran_once(&queue, &mut conn, &name, &ids).await;
    assert_eq!(
        max_overlap(&spans),
        2,
        "at most two at once, and two at once"
    );
    a.stop();
    b.stop();
    cleanup(&url, &queue, &name).await;
}

/// A per-key limit of 1: one run per key at a time, while different keys
/// run in parallel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_limit_holds_per_key_while_keys_run_in_parallel() {
    let Some(url) = redis_url() else { return };
    let name = unique("flow-key");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let (a, b) = (Child::worker(&url, &name), Child::worker(&url, &name));
    let jobs: Vec<Job> = (0..20)
        .map(|i| {
            let account = format!("account-{}", i % 4);
            span_job(&account, 50).concurrency_by(1, format!("sync:{account}"))
        })
        .collect();
    let ids = queue.enqueue_many(jobs).await.unwrap();
    let mut conn = raw_conn(&url).await;
    let spans = all_ran_once(&queue, &mut conn, &name, &ids).await;
    let mut by_key: HashMap<&str, Vec<&Span>> = HashMap::new();
    for span in &spans {
        by_key.entry(&span.key).or_default().push(span);
    }
    assert_eq!(by_key.len(), 4);
    for (key, runs) in &by_key {
        assert_eq!(
            max_overlap(runs.iter().copied()),
            1,
            "one at a time for {key}"
        );
    }
    assert!(
        max_overlap(&spans) >= 2,
        "different keys ran in parallel: {}",
        max_overlap(&spans)
    );
    a.stop();
    b.stop();
    cleanup(&url, &queue, &name).await;
}

/// A rate limit of 5 per second, held by two processes together: no
/// window of a second holds more than 5 starts (within 50 ms of clock
/// tolerance between the processes' timers), so 15 jobs take at least two
/// seconds from the first start to the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_holds_across_two_processes() {
    let Some(url) = redis_url() else { return };
    let name = unique("flow-rate");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let (a, b) = (Child::worker(&url, &name), Child::worker(&url, &name));
    let rate = Rate::new(5, Duration::from_secs(1));
    let jobs: Vec<Job> = (0..15)
        .map(|_| span_job("r", 0).rate_limit_by(rate, "flow-rate"))
        .collect();
    let ids = queue.enqueue_many(jobs).await.unwrap();
    let mut conn = raw_conn(&url).await;
    let spans = all_ran_once(&queue, &mut conn, &name, &ids).await;
    let mut starts: Vec<u64> = spans.iter().map(|s| s.start).collect();
    starts.sort();
    for (i, &start) in starts.iter().enumerate() {
        let within = starts[i..].iter().take_while(|&&s| s < start + 950).count();
        assert!(
            within <= 5,
            "{within} starts within a second from {start}: {starts:?}"
        );
    }
    assert!(
        starts[14] - starts[0] >= 1900,
        "15 starts at 5 per second span two seconds: {starts:?}"
    );
    for id in &ids {
        assert_eq!(
            queue.get(*id).await.unwrap().unwrap().attempts,
            1,
            "held is not an attempt"
        );
    }
    a.stop();
    b.stop();
    cleanup(&url, &queue, &name).await;
}

/// Two processes enqueue the same 100 unique jobs at the same moment: 100
/// jobs exist, each key's two pushes name the same job, and exactly one of
/// the two was a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_jobs_under_concurrent_enqueue_from_two_processes() {
    let Some(url) = redis_url() else { return };
    let name = unique("flow-unique");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let start = now_ms() + 500;
    let mut a = Child::enqueuer(&url, &name, start);
    let mut b = Child::enqueuer(&url, &name, start);
    let parse = |line: String| -> Vec<(String, bool)> {
        serde_json::from_str(line.trim_start_matches("RESULTS ")).unwrap()
    };
    let from_a = parse(a.0.line_with("RESULTS"));
    let from_b = parse(b.0.line_with("RESULTS"));
    assert_eq!(
        queue.counts().await.unwrap().pending,
        100,
        "one job per key"
    );
    for i in 0..100 {
        assert_eq!(
            from_a[i].0, from_b[i].0,
            "both pushes of key {i} name one job"
        );
        assert!(
            from_a[i].1 != from_b[i].1,
            "exactly one of them conflicted (key {i})"
        );
    }
    a.stop();
    b.stop();
    cleanup(&url, &queue, &name).await;
}

/// Pausing a queue stops both worker processes taking from it within a
/// second (running jobs finish); after resuming, every job runs, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_both_processes_within_a_second() {
    let Some(url) = redis_url() else { return };
    let name = unique("flow-pause");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let (a, b) = (Child::worker(&url, &name), Child::worker(&url, &name));
    let jobs: Vec<Job> = (0..300)
        .map(|_| span_job("m", 20).queue("mailers"))
        .collect();
    let ids = queue.enqueue_many(jobs).await.unwrap();
    let mut conn = raw_conn(&url).await;
    eventually("some jobs ran", Duration::from_secs(20), || {
        let mut conn = conn.clone();
        let key = spans_key(&name);
        async move { conn.llen::<_, u64>(key).await.unwrap() >= 20 }
    })
    .await;
    assert!(queue.pause_queue("mailers").await.unwrap());
    let paused_at = now_ms();
    let info = queue.queues().await.unwrap();
    assert!(
        info.iter().any(|q| q.name == "mailers" && q.paused),
        "{info:?}"
    );
    // Not an event to wait for: that nothing starts for a while.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ran = spans(&mut conn, &name).await;
    let late: Vec<&Span> = ran.iter().filter(|s| s.start > paused_at + 1000).collect();
    assert!(
        late.is_empty(),
        "{} runs started over a second after the pause",
        late.len()
    );
    assert!(ran.len() < 300, "the pause held jobs back");
    assert!(queue.resume_queue("mailers").await.unwrap());
    all_ran_once(&queue, &mut conn, &name, &ids).await;
    a.stop();
    b.stop();
    cleanup(&url, &queue, &name).await;
}
