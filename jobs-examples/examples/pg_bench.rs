//! Throughput and latency of `PostgresJobQueue`, each case beside the same
//! case on `RedisJobQueue` in the same run, with the ratio.
//!
//! ```text
//! cargo run --release -p jobs-examples --all-features --example pg_bench -- \
//!     [--jobs N] [--rounds R] [--standard] [--backlog N] [--no-backlog] \
//!     [--postgres URL] [--redis URL]
//! ```
//!
//! **Headline, the standard setting** (what users run): a `#[job] async fn
//! bench(name: String, id: u64)` no-op function dispatched by the
//! `Registry`, one worker process (this program run again with
//! `--worker`), 16 jobs at a time, default settings otherwise (retention
//! of 10,000 finished jobs, batch size, polling, a pool of 10 connections);
//! the median of R rounds (default 3), Postgres then Redis in each round:
//!
//! - **processing**: N jobs (default 20,000) enqueued first (`enqueue_many`
//!   in batches of 1,000), then the worker process starts and runs them
//!   all: from its start signal until none waits or runs;
//! - **sequential producer**: one task calling `enqueue` one job at a time,
//!   N jobs, no worker;
//! - **producer and worker at once**: that producer enqueuing N jobs one by
//!   one while the worker process runs them; end to end, from the start
//!   until the last is done;
//! - **latency**: enqueue → handler start for an idle worker, 2,000 jobs
//!   sent 1 ms apart, p50 and p99 (once, not per round). The worker runs
//!   in this process (the handler reads the same clock as the producer);
//!   the producer enqueues through a queue handle of its own.
//!
//! `--standard` runs this section only.
//!
//! **Other settings, labelled** (one run each):
//!
//! - **enqueue**: N no-op jobs, one `enqueue` per job from 50 concurrent
//!   tasks; and N with `enqueue_many` in batches of 1,000.
//! - **plain processor**: N no-op jobs with empty arguments waiting, run
//!   by 1 (and then 2) worker processes with a plain `JobProcessor` (no
//!   registry), a pool of 16 connections, 16 jobs in flight per process;
//!   and at high concurrency, 512 in flight (reserving up to 256 per call).
//! - **1 ms jobs**: N/3 jobs that each sleep 1 ms, the plain processor, 16
//!   in flight per process, 1 and 2 processes.
//! - **reserve with a backlog**: 100,000 jobs completed (reserved and
//!   finished here, 1,000 at a time; kept: retention raised to 200,000
//!   finished jobs), then `--backlog` (default 1,000,000) waiting jobs; a
//!   reserve of 100 is timed 20 times (each released again), median and
//!   worst.
//!
//! Defaults: `$JOBS_DATABASE_URL` else
//! `postgres://postgres@127.0.0.1:5432/test`; `$JOBS_REDIS_URL` else
//! `redis://127.0.0.1:6379`. Uses schemas and queues named `bench-*`,
//! removed afterwards.

use std::time::{Duration, Instant};

use jobs::prelude::*;
use jobs::{AnyQueue, RedisJobQueue};
use jobs_examples::bench::{self as harness, Drained};

/// The standard job: a small typed payload, nothing to do.
#[job]
async fn bench(name: String, id: u64) -> Result<(), JobError> {
    std::hint::black_box((name, id));
    Ok(())
}

/// Records how long ago (µs, [`harness::micros_now`]) it was enqueued.
#[job]
async fn latency(sent_us: u64) -> Result<(), JobError> {
    harness::record_latency(sent_us);
    Ok(())
}

/// The `i`th job of the standard setting.
fn standard_job(i: usize) -> Job {
    bench::job(format!("job-{i}"), i as u64)
}

/// The settings of a run.
struct Settings {
    postgres: String,
    redis: String,
    n: usize,
    rounds: usize,
    standard_only: bool,
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
    /// Standard setting: default pool, `Registry` worker processes of 16.
    standard: bool,
    queue: AnyQueue,
}

/// A queue handle on `namespace`; `standard`: with the default pool (10
/// connections), else 16 connections.
async fn connect(
    kind: Kind,
    url: &str,
    namespace: &str,
    max_finished: u64,
    standard: bool,
) -> AnyQueue {
    match kind {
        Kind::Postgres => {
            let mut builder = PostgresJobQueue::builder(url)
                .schema(namespace)
                .max_finished(max_finished);
            if !standard {
                builder = builder.max_connections(16);
            }
            AnyQueue::new(builder.connect().await.expect("connect to PostgreSQL"))
        }
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
        Self::open(kind, url, max_finished, false).await
    }

    /// A queue for the standard setting: defaults throughout.
    async fn standard(kind: Kind, url: &str) -> Self {
        Self::open(kind, url, DEFAULT_MAX_FINISHED, true).await
    }

    async fn open(kind: Kind, url: &str, max_finished: u64, standard: bool) -> Self {
        let namespace = format!("bench-{}", JobId::new());
        let queue = connect(kind, url, &namespace, max_finished, standard).await;
        Bench {
            kind,
            url: url.to_owned(),
            namespace,
            max_finished,
            standard,
            queue,
        }
    }

    /// The arguments that make this program a worker process on this
    /// queue: `--worker KIND URL NAMESPACE CONCURRENCY MAX_FINISHED MODE`.
    fn worker_args(&self, concurrency: usize) -> Vec<String> {
        vec![
            "--worker".to_owned(),
            self.kind.as_str().to_owned(),
            self.url.clone(),
            self.namespace.clone(),
            concurrency.to_string(),
            self.max_finished.to_string(),
            if self.standard { "standard" } else { "plain" }.to_owned(),
        ]
    }

    /// How often a drain looks at the counts: a scan on Postgres.
    fn poll(&self) -> Duration {
        match self.kind {
            Kind::Postgres => Duration::from_millis(20),
            Kind::Redis => Duration::from_millis(5),
        }
    }

    async fn drain(&self, n: usize, processes: usize, concurrency: usize) -> Drained {
        let args = self.worker_args(concurrency);
        harness::drain(&self.queue, n, processes, &args, self.poll()).await
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
    let r = harness::enqueue_each(&b.queue, n, 50).await;
    b.remove().await;
    r
}

async fn enqueue_many(kind: Kind, url: &str, n: usize) -> f64 {
    let b = Bench::new(kind, url, DEFAULT_MAX_FINISHED).await;
    let r = harness::rate(n, harness::fill(&b.queue, n, |_| harness::noop_job()).await);
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
    harness::fill(&b.queue, n, job).await;
    let d = b.drain(n, processes, concurrency).await;
    b.remove().await;
    d
}

/// Standard setting: N jobs waiting, then one `Registry` worker process,
/// 16 at a time.
async fn standard_processing(kind: Kind, url: &str, n: usize) -> f64 {
    let b = Bench::standard(kind, url).await;
    harness::fill(&b.queue, n, standard_job).await;
    let d = b.drain(n, 1, harness::STANDARD_IN_FLIGHT).await;
    b.remove().await;
    d.rate
}

/// Standard setting: one task enqueuing N jobs one at a time.
async fn standard_sequential(kind: Kind, url: &str, n: usize) -> f64 {
    let b = Bench::standard(kind, url).await;
    let r = harness::enqueue_sequential(&b.queue, n, standard_job).await;
    b.remove().await;
    r
}

/// Standard setting: the sequential producer while one worker process
/// runs the jobs; end to end.
async fn standard_alongside(kind: Kind, url: &str, n: usize) -> f64 {
    let b = Bench::standard(kind, url).await;
    let args = b.worker_args(harness::STANDARD_IN_FLIGHT);
    let producer = async {
        harness::enqueue_sequential(&b.queue, n, standard_job).await;
    };
    let d = harness::drain_alongside(&b.queue, n, 1, &args, b.poll(), producer).await;
    b.remove().await;
    d.rate
}

/// Standard setting: enqueue → handler start for an idle in-process
/// worker; (p50, p99) in µs.
async fn standard_latency(kind: Kind, url: &str) -> (u64, u64) {
    let b = Bench::standard(kind, url).await;
    let worker_queue = connect(kind, url, &b.namespace, DEFAULT_MAX_FINISHED, true).await;
    let r = harness::latency(worker_queue, &b.queue, latency::job).await;
    b.remove().await;
    r
}

/// Reserve latency of 100 jobs with `waiting` jobs waiting and 100,000
/// finished ones beside them: (median, worst) of 20, and how long filling
/// took.
async fn backlog(kind: Kind, url: &str, waiting: usize) -> (Duration, Duration, f64) {
    let b = Bench::new(kind, url, 200_000).await;
    let finished = 100_000;
    harness::fill(&b.queue, finished, |_| harness::noop_job()).await;
    complete_directly(&b.queue, finished).await;
    let took = harness::fill(&b.queue, waiting, |_| harness::noop_job()).await;
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
        harness::rate(waiting, took),
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
    harness::noop_job()
}

fn one_ms(_: usize) -> Job {
    harness::sleep_job(1)
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
        let standard = args.get(6).map(String::as_str) == Some("standard");
        let queue = connect(kind, &args[2], &args[3], max_finished, standard).await;
        if standard {
            return harness::standard_worker_process(queue).await;
        }
        return harness::worker_process(queue, concurrency).await;
    }
    let mut s = Settings {
        postgres: std::env::var("JOBS_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
        redis: std::env::var("JOBS_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        n: 20_000,
        rounds: 3,
        standard_only: false,
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
            "--rounds" => s.rounds = value().parse::<usize>().expect("--rounds N").max(1),
            "--standard" => s.standard_only = true,
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
    standard(&s).await;
    if s.standard_only {
        return;
    }
    println!(
        "\nother settings (one run each): a plain `JobProcessor` (no registry) and no-op jobs with \
         empty arguments, a pool of 16 connections, the in-flight counts as labelled"
    );
    println!("| case | postgres | redis | pg / redis |");
    println!("|---|---|---|---|");
    let (pg, redis) = both(&s, |k, url| async move { enqueue_each(k, &url, n).await }).await;
    row("enqueue, one job per call (50 tasks)", pg, redis, "jobs/s");
    let (pg, redis) = both(&s, |k, url| async move { enqueue_many(k, &url, n).await }).await;
    row("enqueue_many (batches of 1,000)", pg, redis, "jobs/s");
    for (label, processes, concurrency) in [
        ("plain processor, 1 process, 16 in flight", 1, 16),
        ("plain processor, 2 processes, 16 in flight each", 2, 16),
        (
            "plain processor, 1 process, 512 in flight, batch 256",
            1,
            512,
        ),
        ("plain processor, 2 processes, 512 in flight each", 2, 512),
    ] {
        let (pg, redis) = both(&s, |k, url| async move {
            processing(k, &url, n, processes, concurrency, noop).await
        })
        .await;
        drained_row(label, pg, redis);
    }
    for (label, processes) in [
        (
            "1 ms jobs (N/3), plain processor, 1 process, 16 in flight",
            1,
        ),
        ("1 ms jobs (N/3), plain processor, 2 processes, 16 each", 2),
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

/// The headline: the standard setting, each case on Postgres beside Redis.
async fn standard(s: &Settings) {
    let (n, rounds) = (s.n, s.rounds);
    println!(
        "standard setting: `#[job] async fn bench(name: String, id: u64)` (no-op) dispatched by \
         the Registry, one worker process, {} at a time, default settings (retention of {} \
         finished jobs, batch size, a pool of 10 connections); {n} jobs; median of {rounds} rounds",
        harness::STANDARD_IN_FLIGHT,
        DEFAULT_MAX_FINISHED
    );
    let mut rates: [Vec<f64>; 6] = Default::default();
    for round in 1..=rounds {
        let (pg, redis) = both(
            s,
            |k, url| async move { standard_processing(k, &url, n).await },
        )
        .await;
        let (pg_seq, redis_seq) = both(
            s,
            |k, url| async move { standard_sequential(k, &url, n).await },
        )
        .await;
        let (pg_both, redis_both) =
            both(
                s,
                |k, url| async move { standard_alongside(k, &url, n).await },
            )
            .await;
        println!(
            "  round {round}: processing pg {pg:>7.0} redis {redis:>7.0} | sequential producer pg \
             {pg_seq:>6.0} redis {redis_seq:>6.0} | producer + worker pg {pg_both:>6.0} redis \
             {redis_both:>6.0} jobs/s"
        );
        for (v, r) in rates
            .iter_mut()
            .zip([pg, redis, pg_seq, redis_seq, pg_both, redis_both])
        {
            v.push(r);
        }
    }
    let [pg, redis, pg_seq, redis_seq, pg_both, redis_both] = rates.map(harness::median);
    println!("| standard setting (median of {rounds}) | postgres | redis | pg / redis |");
    println!("|---|---|---|---|");
    row(
        &format!("processing: {n} enqueued first, then 1 worker process"),
        pg,
        redis,
        "jobs/s",
    );
    row(
        "sequential producer: one task, one enqueue at a time",
        pg_seq,
        redis_seq,
        "jobs/s",
    );
    row(
        "producer and worker at once, end to end",
        pg_both,
        redis_both,
        "jobs/s",
    );
    let (pg, redis) = both(s, |k, url| async move { standard_latency(k, &url).await }).await;
    row("latency p50 (see below)", pg.0 as f64, redis.0 as f64, "µs");
    row("latency p99 (see below)", pg.1 as f64, redis.1 as f64, "µs");
    println!(
        "latency: enqueue → handler start, idle in-process worker, {} jobs 1 ms apart",
        harness::LATENCY_JOBS
    );
}
