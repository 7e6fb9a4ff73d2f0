//! Throughput and latency of `PostgresJobQueue`, each case beside the same
//! case on `RedisJobQueue` in the same run.
//!
//! ```text
//! cargo run --release -p jobs-examples --all-features --example pg_bench -- \
//!     [--jobs N] [--backlog N] [--no-backlog] [--postgres URL] [--redis URL]
//! ```
//!
//! - **enqueue**: N no-op jobs, one `enqueue` per job from 50 concurrent
//!   tasks; and N with `enqueue_many` in batches of 1,000.
//! - **processing**: N no-op jobs waiting, then 1 (and then 2) worker
//!   processes (this program run again with `--worker`) run them all:
//!   reserved, run, completed with status tracking and the default
//!   retention. The standard setting is **16 jobs in flight** per process;
//!   the labelled high-concurrency setting 512 (reserving up to 256 per
//!   call).
//! - **1 ms jobs**: N/3 jobs that each sleep 1 ms, 16 in flight per
//!   process, 1 and 2 processes.
//! - **reserve with a backlog**: 100,000 jobs completed (reserved and
//!   finished here, 1,000 at a time; kept: retention raised to 200,000
//!   finished jobs), then `--backlog` (default 1,000,000) waiting jobs; a
//!   reserve of 100 is timed 20 times (each released again), median and
//!   worst.
//!
//! Defaults: N = 30,000; `$JOBS_DATABASE_URL` else
//! `postgres://postgres@127.0.0.1:5432/test`; `$JOBS_REDIS_URL` else
//! `redis://127.0.0.1:6379`. Uses schemas and queues named `bench-*`,
//! removed afterwards.

use std::time::{Duration, Instant};

use jobs::prelude::*;
use jobs::{AnyQueue, RedisJobQueue};
use jobs_examples::bench::{self, Drained};

/// The settings of a run.
struct Settings {
    postgres: String,
    redis: String,
    n: usize,
    backlog: Option<usize>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Postgres,
    Redis,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::Redis => "redis",
        }
    }
}

/// A queue of its own for one measurement, on one backend.
struct Bench {
    kind: Kind,
    url: String,
    namespace: String,
    max_finished: u64,
    queue: AnyQueue,
}

async fn connect(kind: Kind, url: &str, namespace: &str, max_finished: u64) -> AnyQueue {
    match kind {
        Kind::Postgres => AnyQueue::new(
            PostgresJobQueue::builder(url)
                .schema(namespace)
                .max_connections(16)
                .max_finished(max_finished)
                .connect()
                .await
                .expect("connect to PostgreSQL"),
        ),
        Kind::Redis => AnyQueue::new(
            RedisJobQueue::builder(url)
                .name(namespace)
                .max_finished(max_finished)
                .connect()
                .await
                .expect("connect to Redis"),
        ),
    }
}

impl Bench {
    async fn new(kind: Kind, url: &str, max_finished: u64) -> Self {
        let namespace = format!("bench-{}", JobId::new());
        let queue = connect(kind, url, &namespace, max_finished).await;
        Bench {
            kind,
            url: url.to_owned(),
            namespace,
            max_finished,
            queue,
        }
    }

    async fn drain(&self, n: usize, processes: usize, concurrency: usize) -> Drained {
        let args = [
            "--worker".to_owned(),
            self.kind.as_str().to_owned(),
            self.url.clone(),
            self.namespace.clone(),
            concurrency.to_string(),
            self.max_finished.to_string(),
        ];
        bench::drain(&self.queue, n, processes, &args).await
    }

    /// Removes everything the measurement left.
    async fn remove(self) {
        match self.kind {
            Kind::Postgres => {
                let pg = PostgresJobQueue::builder(&self.url)
                    .schema(&self.namespace)
                    .migrate(false)
                    .build()
                    .expect("a handle on the schema");
                pg.drop_schema().await.expect("drop the bench schema");
            }
            Kind::Redis => {
                self.queue.purge().await.expect("purge");
                let client = redis::Client::open(self.url.as_str()).expect("the Redis URL");
                let mut conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("connect to Redis");
                let _: () = redis::cmd("DEL")
                    .arg(format!("jobs:{{{}}}:seq", self.namespace))
                    .query_async(&mut conn)
                    .await
                    .expect("delete the sequence");
            }
        }
    }
}

const DEFAULT_MAX_FINISHED: u64 = jobs::queue::DEFAULT_MAX_FINISHED;

async fn enqueue_each(kind: Kind, url: &str, n: usize) -> f64 {
    let b = Bench::new(kind, url, DEFAULT_MAX_FINISHED).await;
    let r = bench::enqueue_each(&b.queue, n, 50).await;
    b.remove().await;
    r
}

async fn enqueue_many(kind: Kind, url: &str, n: usize) -> f64 {
    let b = Bench::new(kind, url, DEFAULT_MAX_FINISHED).await;
    let r = bench::rate(n, bench::fill(&b.queue, n, |_| bench::noop_job()).await);
    b.remove().await;
    r
}

async fn processing(
    kind: Kind,
    url: &str,
    n: usize,
    processes: usize,
    concurrency: usize,
    job: fn(usize) -> Job,
) -> Drained {
    let b = Bench::new(kind, url, DEFAULT_MAX_FINISHED).await;
    bench::fill(&b.queue, n, job).await;
    let d = b.drain(n, processes, concurrency).await;
    b.remove().await;
    d
}

/// Reserve latency of 100 jobs with `waiting` jobs waiting and 100,000
/// finished ones beside them: (median, worst) of 20, and how long filling
/// took.
async fn backlog(kind: Kind, url: &str, waiting: usize) -> (Duration, Duration, f64) {
    let b = Bench::new(kind, url, 200_000).await;
    let finished = 100_000;
    bench::fill(&b.queue, finished, |_| bench::noop_job()).await;
    complete_directly(&b.queue, finished).await;
    let took = bench::fill(&b.queue, waiting, |_| bench::noop_job()).await;
    let counts = b.queue.counts().await.expect("counts");
    assert_eq!(counts.pending as usize, waiting);
    assert!(counts.completed as usize >= finished);
    let take = [jobs::Take::new(jobs::DEFAULT_QUEUE, 100)];
    let mut times = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let got = b
            .queue
            .reserve("bench", &take, Duration::from_secs(30))
            .await
            .expect("reserve");
        times.push(start.elapsed());
        assert_eq!(got.len(), 100);
        let leases: Vec<_> = got.iter().map(|r| r.lease).collect();
        b.queue.release(&leases).await.expect("release");
    }
    times.sort();
    let r = (
        times[times.len() / 2],
        times[times.len() - 1],
        bench::rate(waiting, took),
    );
    b.remove().await;
    r
}

/// Reserves and completes `n` waiting jobs through the queue's own calls,
/// up to 1,000 at a time, all finishes of a round at once: finished rows
/// for the backlog measurement, faster than running them.
async fn complete_directly(queue: &AnyQueue, n: usize) {
    let take = [jobs::Take::new(jobs::DEFAULT_QUEUE, 1000)];
    let mut done = 0;
    while done < n {
        let got = queue
            .reserve("bench", &take, Duration::from_secs(300))
            .await
            .expect("reserve");
        assert!(!got.is_empty(), "{done} of {n} completed, none left");
        let mut finishing = tokio::task::JoinSet::new();
        for r in got {
            let queue = queue.clone();
            finishing.spawn(async move {
                let outcome = jobs::Outcome::Completed(JobResult::success(serde_json::Value::Null));
                queue.finish(r.lease, outcome, None).await.expect("finish")
            });
        }
        while let Some(finished) = finishing.join_next().await {
            assert!(finished.expect("a finish task"));
            done += 1;
        }
    }
}

/// One line of the table: the case, then Postgres beside Redis.
fn row(case: &str, pg: f64, redis: f64, unit: &str) {
    println!(
        "| {case:<58} | {pg:>10.0} {unit} | {redis:>10.0} {unit} | {:>5.2} |",
        pg / redis
    );
}

fn drained_row(case: &str, pg: Drained, redis: Drained) {
    row(case, pg.rate, redis.rate, "jobs/s");
    println!(
        "|   (worker processes' CPU: postgres {:.0}%, redis {:.0}% of a core) | | | |",
        100.0 * pg.workers_cpu,
        100.0 * redis.workers_cpu
    );
}

async fn both<F, Fut, T>(s: &Settings, f: F) -> (T, T)
where
    F: Fn(Kind, String) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let pg = f(Kind::Postgres, s.postgres.clone()).await;
    let redis = f(Kind::Redis, s.redis.clone()).await;
    (pg, redis)
}

fn noop(_: usize) -> Job {
    bench::noop_job()
}

fn one_ms(_: usize) -> Job {
    bench::sleep_job(1)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        let kind = if args[1] == "postgres" {
            Kind::Postgres
        } else {
            Kind::Redis
        };
        let concurrency = args[4].parse().expect("concurrency");
        let max_finished = args[5].parse().expect("max finished");
        let queue = connect(kind, &args[2], &args[3], max_finished).await;
        return bench::worker_process(queue, concurrency).await;
    }
    let mut s = Settings {
        postgres: std::env::var("JOBS_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
        redis: std::env::var("JOBS_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        n: 30_000,
        backlog: Some(1_000_000),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .unwrap_or_else(|| panic!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--jobs" => s.n = value().parse().expect("--jobs N"),
            "--backlog" => s.backlog = Some(value().parse().expect("--backlog N")),
            "--no-backlog" => s.backlog = None,
            "--postgres" => s.postgres = value(),
            "--redis" => s.redis = value(),
            other => panic!("unknown argument {other}"),
        }
    }
    let n = s.n;
    println!(
        "jobs PostgreSQL benchmark: {} beside {}; {n} jobs per measurement",
        s.postgres, s.redis
    );
    println!("| case | postgres | redis | pg / redis |");
    println!("|---|---|---|---|");
    let (pg, redis) = both(&s, |k, url| async move { enqueue_each(k, &url, n).await }).await;
    row("enqueue, one job per call (50 tasks)", pg, redis, "jobs/s");
    let (pg, redis) = both(&s, |k, url| async move { enqueue_many(k, &url, n).await }).await;
    row("enqueue_many (batches of 1,000)", pg, redis, "jobs/s");
    for (label, processes, concurrency) in [
        (
            "processing no-op jobs, 1 process, 16 in flight (standard)",
            1,
            16,
        ),
        (
            "processing no-op jobs, 2 processes, 16 in flight each",
            2,
            16,
        ),
        ("high concurrency: 1 process, 512 in flight", 1, 512),
        ("high concurrency: 2 processes, 512 in flight each", 2, 512),
    ] {
        let (pg, redis) = both(&s, |k, url| async move {
            processing(k, &url, n, processes, concurrency, noop).await
        })
        .await;
        drained_row(label, pg, redis);
    }
    for (label, processes) in [
        ("1 ms jobs, 1 process, 16 in flight", 1),
        ("1 ms jobs, 2 processes, 16 in flight each", 2),
    ] {
        let (pg, redis) = both(&s, |k, url| async move {
            processing(k, &url, n / 3, processes, 16, one_ms).await
        })
        .await;
        drained_row(label, pg, redis);
    }
    if let Some(waiting) = s.backlog {
        let (pg, redis) = both(&s, |k, url| async move { backlog(k, &url, waiting).await }).await;
        row(
            &format!("enqueue_many of the {waiting} waiting (100,000 finished)"),
            pg.2,
            redis.2,
            "jobs/s",
        );
        println!(
            "| reserve 100 with {waiting} waiting, 100,000 finished: median (worst of 20) | {:.2} ms ({:.2}) | {:.2} ms ({:.2}) | {:>5.2} |",
            pg.0.as_secs_f64() * 1e3,
            pg.1.as_secs_f64() * 1e3,
            redis.0.as_secs_f64() * 1e3,
            redis.1.as_secs_f64() * 1e3,
            pg.0.as_secs_f64() / redis.0.as_secs_f64()
        );
    }
}
