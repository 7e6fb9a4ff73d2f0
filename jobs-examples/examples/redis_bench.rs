//! Throughput and latency of `RedisJobQueue`, against the raw speed of the
//! same Redis measured in the same run.
//!
//! ```text
//! cargo run --release --features redis --example redis_bench -- \
//!     [URL] [--jobs N] [--rounds R] [--standard] [--backlog N] [--processing-only]
//! ```
//!
//! **Headline, the standard setting** (what users run): a `#[job] async fn
//! bench(name: String, id: u64)` no-op function dispatched by the
//! `Registry`, one worker process (this program run again with
//! `--worker`), 16 jobs at a time, default settings otherwise (retention of
//! 10,000 finished jobs, batch size, polling); the median of R rounds
//! (default 3), each round measuring its baselines too:
//!
//! - **raw**, the baselines: `redis-benchmark -c 1 -P 1 -t lpush,lpop -n
//!   100000 -q` (one client, no pipelining) and the same with 50 clients
//!   (`-c 50 -n 200000`) against the same server; if `redis-benchmark` is
//!   not on `PATH`, the same measured here with 1 and 50 connections;
//! - **processing**: N jobs (default 20,000) enqueued first (`enqueue_many`
//!   in batches of 1,000), then the worker process starts and runs them
//!   all (enqueued → reserved → run → completed, with status tracking):
//!   from its start signal until none waits or runs; beside the raw
//!   1-client and 50-client rates (the mean of LPUSH and LPOP), and the
//!   Redis server's CPU time per job (`used_cpu_user` + `used_cpu_sys`
//!   of `INFO cpu`, before and after; likewise for the producer below);
//! - **sequential producer**: one task calling `enqueue` one job at a time,
//!   N jobs, beside the raw 1-client LPUSH rate;
//! - **producer and worker at once**: that producer enqueuing N jobs one by
//!   one while the worker process runs them; end to end;
//! - **latency**: enqueue → handler start for an idle worker, 2,000 jobs
//!   sent 1 ms apart, p50 and p99 (once, not per round), beside raw LPUSH →
//!   BLPOP on a second connection, 2,000 values 1 ms apart. The worker runs
//!   in this process (the handler reads the same clock as the producer);
//!   the producer enqueues through a queue handle of its own.
//! - **a critical job mid-run**: 100,000 normal jobs waiting, an in-process
//!   worker at work on them; once a tenth is done, 200 critical-priority
//!   jobs are sent 5 ms apart: enqueue → handler start, p50 and p99.
//!
//! `--standard` runs this section only.
//!
//! **Other settings, labelled** (one run each; ratios to the raw 50-client
//! rate), all with a plain `JobProcessor` (no registry) and no-op jobs with
//! empty arguments:
//!
//! - **enqueue**: N jobs, one `enqueue` per job from 50 concurrent tasks;
//!   and N jobs with `enqueue_many` in batches of 1,000.
//! - **processing**: N jobs waiting, then 1 (and then 2) worker processes,
//!   1,024 jobs at a time, reserving up to 256 per call. Then jobs that
//!   each wait 2 ms, 32 at a time per process (the worker is the limit,
//!   not Redis), with 1 and 2 processes (20,000 jobs).
//! - **flow control**: the 1-process run again with the jobs spread over
//!   three named queues (`critical`, `default`, `mailers`; 342 slots of the
//!   process each), each queue under a fleet-wide concurrency limit of
//!   1,000 (`QueueLimits::concurrency`, counted in Redis across all
//!   workers), which does not bind: what configuring flow control costs.
//!   Then the same with per-job limits as well: every job under a per-key
//!   concurrency limit (one of 64 keys, a limit of 1,000) and a
//!   sliding-window rate limit of its name (100,000,000 per second), and
//!   `mailers` under a queue rate limit of the same rate; none binds
//!   either. Each figure is printed with its ratio to the run without flow
//!   control. `--processing-only` runs these and the 1-process run alone.
//! - `--backlog N`: N waiting jobs, Redis memory per waiting job
//!   (`INFO memory` before and after), then 2 worker processes run them.
//!
//! URL defaults to `$JOBS_REDIS_URL`, else `redis://127.0.0.1:6379`. Uses
//! queues named `bench-*`, purged afterwards.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::AnyQueue;
use jobs::prelude::*;
use jobs_examples::bench::{self as harness, Noop, noop_job, process_cpu, rate};

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

/// The named queues of the flow-control measurement.
const FLOW_QUEUES: [&str; 3] = ["critical", "default", "mailers"];

/// A rate limit far above any rate reached here.
fn loose_rate() -> jobs::Rate {
    jobs::Rate::new(100_000_000, Duration::from_secs(1))
}

/// A no-op job of the flow-control measurement, in one of three queues.
fn flow_job(i: usize) -> Job {
    noop_job().queue(FLOW_QUEUES[i % 3])
}

/// [`flow_job`] with per-job limits too: a per-key concurrency limit (one
/// of 64 keys, a limit of 1,000) and a rate limit of its name, neither of
/// which binds.
fn limited_job(i: usize) -> Job {
    flow_job(i)
        .concurrency_by(1_000, jobs::flow::key("noop", &serde_json::json!(i % 64)))
        .rate_limit(loose_rate())
}

/// How a worker process takes jobs.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// From the default queue, no limits.
    Plain,
    /// From the three queues of [`FLOW_QUEUES`] (`concurrency` slots split
    /// between them), each under a queue concurrency limit that does not
    /// bind.
    Flow,
    /// As `Flow`, and `mailers` under a queue rate limit that does not bind.
    Limited,
    /// The standard setting: the `Registry`, 16 at a time, defaults
    /// otherwise (the concurrency argument is ignored).
    Standard,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Flow => "flow",
            Mode::Limited => "limited",
            Mode::Standard => "standard",
        }
    }
}

/// `--worker URL QUEUE CONCURRENCY MODE`: a worker process that starts on
/// "GO" from stdin and runs until stdin closes.
async fn worker_process(url: &str, name: &str, concurrency: usize, mode: Mode) {
    let queue = RedisJobQueue::connect(url, name).await.expect("connect");
    if mode == Mode::Standard {
        return harness::standard_worker_process(AnyQueue::new(queue)).await;
    }
    let mut builder = BackgroundJobWorker::builder()
        .queue(queue)
        .processor(Noop)
        .batch_size(concurrency.min(256));
    if mode == Mode::Plain {
        builder = builder.max_concurrent_jobs(concurrency);
    } else {
        let share = concurrency.div_ceil(FLOW_QUEUES.len());
        builder = builder.queues(FLOW_QUEUES.map(|q| (q, share)));
        for q in FLOW_QUEUES {
            let mut limits = jobs::QueueLimits::new().concurrency(1_000);
            if mode == Mode::Limited && q == "mailers" {
                limits = limits.rate(loose_rate());
            }
            builder = builder.queue_limits(q, limits);
        }
    }
    let worker = builder.build().expect("worker");
    println!("READY");
    std::io::stdout().flush().unwrap();
    let mut lines = BufReader::new(std::io::stdin()).lines();
    let _go = lines.next();
    let running = tokio::spawn(worker.clone().run_owned());
    // Until the parent closes stdin.
    tokio::task::spawn_blocking(move || for _ in lines {})
        .await
        .unwrap();
    worker.stop().await;
    running.await.unwrap().unwrap();
}

/// LPUSH and LPOP rates with `clients` clients, no pipelining, `n`
/// requests each: from `redis-benchmark`, or measured here with `clients`
/// connections. Also says which.
async fn raw_rates(url: &str, clients: usize, n: usize) -> (f64, f64, String) {
    let info = redis::Client::open(url).unwrap();
    let addr = info.get_connection_info().addr().to_string();
    let (host, port) = addr.rsplit_once(':').unwrap_or(("127.0.0.1", "6379"));
    let (c, n_arg) = (clients.to_string(), n.to_string());
    let output = Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "-t", "lpush,lpop", "-q"])
        .args(["-c", &c, "-P", "1", "-n", &n_arg])
        .stderr(Stdio::null())
        .output();
    if let Ok(output) = output {
        let text = String::from_utf8_lossy(&output.stdout);
        let find = |name: &str| -> Option<f64> {
            text.split(['\r', '\n'])
                .rfind(|l| {
                    l.starts_with(&format!("{name}: ")) && l.contains("requests per second")
                })?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        };
        if let (Some(push), Some(pop)) = (find("LPUSH"), find("LPOP")) {
            return (
                push,
                pop,
                format!("redis-benchmark -c {clients} -P 1 -t lpush,lpop -n {n} -q"),
            );
        }
    }
    // Fallback: `clients` connections, one command at a time each.
    let key = format!("bench-raw-{}", JobId::new());
    let mut rates = [0.0; 2];
    for (i, command) in ["LPUSH", "LPOP"].into_iter().enumerate() {
        let per = n / clients;
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let client = info.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                for _ in 0..per {
                    let mut cmd = redis::cmd(command);
                    cmd.arg(&key);
                    if command == "LPUSH" {
                        cmd.arg("xxx");
                    }
                    let _: redis::Value = cmd.query_async(&mut conn).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        rates[i] = rate(per * clients, start.elapsed());
    }
    (
        rates[0],
        rates[1],
        format!("measured here: {clients} connection(s), no pipelining"),
    )
}

/// Raw LPUSH → BLPOP latency: values pushed 1 ms apart on one connection,
/// popped by a blocking loop on another; (p50, p99) in µs.
async fn raw_latency(url: &str) -> (u64, u64) {
    let client = redis::Client::open(url).unwrap();
    let key = format!("bench-raw-latency-{}", JobId::new());
    let mut popper = client.get_multiplexed_async_connection().await.unwrap();
    let mut pusher = client.get_multiplexed_async_connection().await.unwrap();
    let popping = {
        let key = key.clone();
        tokio::spawn(async move {
            let mut samples = Vec::with_capacity(harness::LATENCY_JOBS);
            while samples.len() < harness::LATENCY_JOBS {
                let (_, sent): (String, u64) = redis::cmd("BLPOP")
                    .arg(&key)
                    .arg(0)
                    .query_async(&mut popper)
                    .await
                    .unwrap();
                samples.push(harness::micros_now().saturating_sub(sent));
            }
            samples
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    for _ in 0..harness::LATENCY_JOBS {
        tick.tick().await;
        let _: () = redis::cmd("LPUSH")
            .arg(&key)
            .arg(harness::micros_now())
            .query_async(&mut pusher)
            .await
            .unwrap();
    }
    harness::percentiles(popping.await.unwrap())
}

/// A fresh bench queue, as a `RedisJobQueue` (for [`remove`]) and as the
/// `AnyQueue` the shared helpers take.
async fn standard_queue(url: &str) -> (RedisJobQueue, AnyQueue) {
    let queue = RedisJobQueue::connect(url, &format!("bench-{}", JobId::new()))
        .await
        .unwrap();
    let any = AnyQueue::new(queue.clone());
    (queue, any)
}

fn standard_worker_args(url: &str, queue: &RedisJobQueue) -> Vec<String> {
    vec![
        "--worker".into(),
        url.into(),
        queue.name().into(),
        harness::STANDARD_IN_FLIGHT.to_string(),
        Mode::Standard.as_str().into(),
    ]
}

/// Standard setting: N jobs waiting, then one `Registry` worker process,
/// 16 at a time.
/// Returns the rate and the Redis server's CPU time per job (µs).
async fn standard_processing(url: &str, n: usize) -> (f64, f64) {
    let (queue, any) = standard_queue(url).await;
    harness::fill(&any, n, standard_job).await;
    let args = standard_worker_args(url, &queue);
    let cpu = redis_cpu(url).await;
    let d = harness::drain(&any, n, 1, &args, Duration::from_millis(5)).await;
    let cpu = (redis_cpu(url).await - cpu) * 1e6 / n as f64;
    remove(url, &queue).await;
    (d.rate, cpu)
}

/// Standard setting: one task enqueuing N jobs one at a time.
/// Returns the rate and the Redis server's CPU time per job (µs).
async fn standard_sequential(url: &str, n: usize) -> (f64, f64) {
    let (queue, any) = standard_queue(url).await;
    let cpu = redis_cpu(url).await;
    let r = harness::enqueue_sequential(&any, n, standard_job).await;
    let cpu = (redis_cpu(url).await - cpu) * 1e6 / n as f64;
    remove(url, &queue).await;
    (r, cpu)
}

/// Standard setting: the sequential producer while one worker process
/// runs the jobs; end to end.
async fn standard_alongside(url: &str, n: usize) -> f64 {
    let (queue, any) = standard_queue(url).await;
    let args = standard_worker_args(url, &queue);
    let producer = async {
        harness::enqueue_sequential(&any, n, standard_job).await;
    };
    let d = harness::drain_alongside(&any, n, 1, &args, Duration::from_millis(5), producer).await;
    remove(url, &queue).await;
    d.rate
}

/// Standard setting: enqueue → handler start for an idle in-process
/// worker; (p50, p99) in µs.
async fn standard_latency(url: &str) -> (u64, u64) {
    let (queue, any) = standard_queue(url).await;
    let worker_queue = RedisJobQueue::connect(url, queue.name()).await.unwrap();
    let r = harness::latency(AnyQueue::new(worker_queue), &any, latency::job).await;
    remove(url, &queue).await;
    r
}

/// Jobs waiting when the critical jobs of [`standard_critical`] arrive.
const CRITICAL_BACKLOG: usize = 100_000;

/// Critical jobs sent in the middle of the run, 5 ms apart.
const CRITICAL_JOBS: usize = 200;

/// Standard setting: enqueue → handler start of a critical-priority job
/// sent while an in-process worker works through [`CRITICAL_BACKLOG`]
/// normal jobs; (p50, p99) in µs, and how many normal jobs were still
/// waiting when the last critical one started.
async fn standard_critical(url: &str) -> (u64, u64, u64) {
    let (queue, any) = standard_queue(url).await;
    harness::fill(&any, CRITICAL_BACKLOG, standard_job).await;
    let worker_queue = RedisJobQueue::connect(url, queue.name()).await.unwrap();
    let worker = BackgroundJobWorker::builder()
        .queue(worker_queue)
        .max_concurrent_jobs(harness::STANDARD_IN_FLIGHT)
        .build()
        .unwrap();
    harness::micros_now();
    harness::take_latencies();
    let running = tokio::spawn(worker.clone().run_owned());
    // Under way: a tenth of the backlog done.
    while queue.counts().await.unwrap().completed < CRITICAL_BACKLOG as u64 / 10 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    for _ in 0..CRITICAL_JOBS {
        tick.tick().await;
        let job = latency::job(harness::micros_now()).priority(JobPriority::Critical);
        any.enqueue(job).await.unwrap();
    }
    while harness::latencies_recorded() < CRITICAL_JOBS {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let left = queue.counts().await.unwrap().pending;
    worker.stop().await;
    running.await.unwrap().unwrap();
    remove(url, &queue).await;
    let (p50, p99) = harness::percentiles(harness::take_latencies());
    (p50, p99, left)
}

/// What the standard section measured that later sections compare with.
struct Raw {
    /// Mean of LPUSH and LPOP, 50 clients (median of the rounds).
    fifty: f64,
}

/// The headline: the standard setting beside the raw rates, `rounds`
/// rounds.
async fn standard(url: &str, n: usize, rounds: usize) -> Raw {
    println!(
        "standard setting: `#[job] async fn bench(name: String, id: u64)` (no-op) dispatched by \
         the Registry, one worker process, {} at a time, default settings (retention of {} \
         finished jobs, batch size); {n} jobs; median of {rounds} rounds",
        harness::STANDARD_IN_FLIGHT,
        jobs::queue::DEFAULT_MAX_FINISHED
    );
    let mut v: [Vec<f64>; 9] = Default::default();
    let (mut how1, mut how50) = (String::new(), String::new());
    for round in 1..=rounds {
        let (push1, pop1, how) = raw_rates(url, 1, 100_000).await;
        how1 = how;
        let (push50, pop50, how) = raw_rates(url, 50, 200_000).await;
        how50 = how;
        let (processing, processing_cpu) = standard_processing(url, n).await;
        let (sequential, sequential_cpu) = standard_sequential(url, n).await;
        let alongside = standard_alongside(url, n).await;
        println!(
            "  round {round}: raw 1 client LPUSH {push1:.0} LPOP {pop1:.0}, 50 clients LPUSH \
             {push50:.0} LPOP {pop50:.0} | processing {processing:.0} (Redis CPU \
             {processing_cpu:.1} µs/job) | sequential producer {sequential:.0} (Redis CPU \
             {sequential_cpu:.1} µs/job) | producer + worker {alongside:.0} jobs/s"
        );
        for (v, r) in v.iter_mut().zip([
            push1,
            pop1,
            push50,
            pop50,
            processing,
            sequential,
            alongside,
            processing_cpu,
            sequential_cpu,
        ]) {
            v.push(r);
        }
    }
    let [
        push1,
        pop1,
        push50,
        pop50,
        processing,
        sequential,
        alongside,
        processing_cpu,
        sequential_cpu,
    ] = v.map(harness::median);
    let (raw1, raw50) = ((push1 + pop1) / 2.0, (push50 + pop50) / 2.0);
    println!("medians:");
    println!(
        "  raw, 1 client ({how1}):    LPUSH {push1:>7.0}/s  LPOP {pop1:>7.0}/s  mean {raw1:>7.0}/s"
    );
    println!(
        "  raw, 50 clients ({how50}): LPUSH {push50:>7.0}/s  LPOP {pop50:>7.0}/s  mean {raw50:>7.0}/s"
    );
    println!(
        "  processing ({n} enqueued first, then 1 worker process): {processing:>7.0} jobs/s  \
         ({:.2}× raw 1-client, {:.2}× raw 50-client); Redis CPU {processing_cpu:.1} µs per job",
        processing / raw1,
        processing / raw50
    );
    println!(
        "  sequential producer (one task, one enqueue at a time):  {sequential:>7.0} jobs/s  \
         ({:.2}× raw 1-client LPUSH); Redis CPU {sequential_cpu:.1} µs per job",
        sequential / push1
    );
    println!(
        "  producer and worker at once, end to end:                {alongside:>7.0} jobs/s  \
         ({:.2}× raw 1-client, {:.2}× raw 50-client)",
        alongside / raw1,
        alongside / raw50
    );
    let (p50, p99) = standard_latency(url).await;
    let (raw_p50, raw_p99) = raw_latency(url).await;
    println!(
        "  latency, enqueue → handler start, idle in-process worker, {} jobs 1 ms apart: \
         p50 {p50} µs, p99 {p99} µs  (raw LPUSH → BLPOP: p50 {raw_p50} µs, p99 {raw_p99} µs)",
        harness::LATENCY_JOBS
    );
    let (c50, c99, left) = standard_critical(url).await;
    println!(
        "  critical-priority job sent mid-run ({CRITICAL_JOBS} of them 5 ms apart, \
         {CRITICAL_BACKLOG} normal jobs waiting at the start, in-process worker): enqueue → \
         handler start p50 {c50} µs, p99 {c99} µs ({left} normal jobs still waiting after)"
    );
    Raw { fifty: raw50 }
}

async fn enqueue_single(url: &str, n: usize) -> f64 {
    let queue = RedisJobQueue::connect(url, &format!("bench-{}", JobId::new()))
        .await
        .unwrap();
    let start = Instant::now();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let queue = queue.clone();
            tokio::spawn(async move {
                for _ in 0..n / 50 {
                    queue.enqueue(noop_job()).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let r = rate(n / 50 * 50, start.elapsed());
    remove(url, &queue).await;
    r
}

/// Purges a bench queue and deletes its sequence counter too.
async fn remove(url: &str, queue: &RedisJobQueue) {
    queue.purge().await.unwrap();
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("jobs:{{{}}}:seq", queue.name()))
        .query_async(&mut conn)
        .await
        .unwrap();
}

async fn fill(queue: &RedisJobQueue, n: usize) -> Duration {
    fill_with(queue, n, |_| noop_job()).await
}

async fn fill_with(queue: &RedisJobQueue, n: usize, job: impl Fn(usize) -> Job) -> Duration {
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        let batch = (n - done).min(1000);
        queue
            .enqueue_many((done..done + batch).map(&job).collect())
            .await
            .unwrap();
        done += batch;
    }
    start.elapsed()
}

async fn enqueue_many(url: &str, n: usize) -> f64 {
    let queue = RedisJobQueue::connect(url, &format!("bench-{}", JobId::new()))
        .await
        .unwrap();
    let r = rate(n, fill(&queue, n).await);
    remove(url, &queue).await;
    r
}

async fn processing(url: &str, n: usize, processes: usize) -> f64 {
    let name = format!("bench-{}", JobId::new());
    let queue = RedisJobQueue::connect(url, &name).await.unwrap();
    fill(&queue, n).await;
    let r = drain(url, &queue, n, processes, 1024).await;
    remove(url, &queue).await;
    r
}

/// As [`processing`] with one process, the jobs spread over three named
/// queues with limits configured that do not bind (per-job ones too in
/// [`Mode::Limited`]).
async fn processing_flow(url: &str, n: usize, mode: Mode) -> f64 {
    let name = format!("bench-{}", JobId::new());
    let queue = RedisJobQueue::connect(url, &name).await.unwrap();
    if mode == Mode::Limited {
        fill_with(&queue, n, limited_job).await;
    } else {
        fill_with(&queue, n, flow_job).await;
    }
    let r = drain_with(url, &queue, n, 1, 1024, mode).await;
    remove(url, &queue).await;
    r
}

/// `n` jobs that each wait `ms` (I/O-bound work), `concurrency` at a time
/// per process: the worker, not Redis, is the limit.
async fn processing_slow(
    url: &str,
    n: usize,
    ms: u64,
    concurrency: usize,
    processes: usize,
) -> f64 {
    let name = format!("bench-{}", JobId::new());
    let queue = RedisJobQueue::connect(url, &name).await.unwrap();
    let jobs: Vec<Job> = (0..n)
        .map(|_| Job::new("sleep", serde_json::json!({ "sleep_ms": ms })))
        .collect();
    for chunk in jobs.chunks(1000) {
        queue.enqueue_many(chunk.to_vec()).await.unwrap();
    }
    let r = drain(url, &queue, n, processes, concurrency).await;
    remove(url, &queue).await;
    r
}

/// Runs the `n` jobs waiting in `queue` with worker processes; the rate.
async fn drain(
    url: &str,
    queue: &RedisJobQueue,
    n: usize,
    processes: usize,
    concurrency: usize,
) -> f64 {
    drain_with(url, queue, n, processes, concurrency, Mode::Plain).await
}

/// [`drain`], with workers taking jobs as `mode` says.
async fn drain_with(
    url: &str,
    queue: &RedisJobQueue,
    n: usize,
    processes: usize,
    concurrency: usize,
    mode: Mode,
) -> f64 {
    let name = queue.name().to_owned();
    let exe = std::env::current_exe().unwrap();
    let mut children = Vec::new();
    for _ in 0..processes {
        let mut child = Command::new(&exe)
            .args([
                "--worker",
                url,
                &name,
                &concurrency.to_string(),
                mode.as_str(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn a worker process");
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(out.next().unwrap().unwrap(), "READY");
        children.push(child);
    }
    let redis_cpu_before = redis_cpu(url).await;
    let start = Instant::now();
    for child in &mut children {
        writeln!(child.stdin.as_mut().unwrap(), "GO").unwrap();
    }
    loop {
        let counts = queue.counts().await.unwrap();
        // All were enqueued before the start: done when none waits or runs.
        if counts.waiting() + counts.running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    let redis_busy = (redis_cpu(url).await - redis_cpu_before) / elapsed.as_secs_f64();
    let workers_busy: Vec<String> = children
        .iter()
        .map(|c| {
            format!(
                "{:.0}%",
                100.0 * process_cpu(c.id()) / elapsed.as_secs_f64()
            )
        })
        .collect();
    println!(
        "    (CPU while processing: redis-server {:.0}% of a core, worker process(es) {})",
        100.0 * redis_busy,
        workers_busy.join(" + ")
    );
    for mut child in children {
        drop(child.stdin.take());
        child.wait().unwrap();
    }
    rate(n, elapsed)
}

/// CPU seconds the Redis server has used (`INFO cpu`).
async fn redis_cpu(url: &str) -> f64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            matches!(k, "used_cpu_sys" | "used_cpu_user").then(|| v.trim().parse::<f64>().ok())?
        })
        .sum()
}

async fn used_memory(url: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn backlog(url: &str, n: usize) {
    let name = format!("bench-{}", JobId::new());
    let queue = RedisJobQueue::connect(url, &name).await.unwrap();
    let before = used_memory(url).await;
    let took = fill(&queue, n).await;
    let after = used_memory(url).await;
    let counts = queue.counts().await.unwrap();
    println!(
        "backlog: {} waiting jobs enqueued in {:.1} s ({:.0} jobs/s); Redis memory {:.0} bytes per waiting job",
        counts.pending,
        took.as_secs_f64(),
        rate(n, took),
        after.saturating_sub(before) as f64 / n as f64
    );
    let start = Instant::now();
    let reserved = queue
        .reserve(
            "bench",
            &[jobs::Take::new(jobs::DEFAULT_QUEUE, 100)],
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    println!(
        "backlog: reserving {} of them took {:?}",
        reserved.len(),
        start.elapsed()
    );
    let leases: Vec<_> = reserved.iter().map(|r| r.lease).collect();
    queue.release(&leases).await.unwrap();
    let r = drain(url, &queue, n, 2, 1024).await;
    println!("backlog: processed by 2 worker processes at {r:.0} jobs/s");
    remove(url, &queue).await;
}

/// The flow-control runs, each beside `one`, the run without.
async fn print_flow(url: &str, n: usize, one: f64) {
    let flow = processing_flow(url, n, Mode::Flow).await;
    println!(
        "  with flow control (3 named queues, each with a concurrency limit that does not bind): {flow:.0} jobs/s vs {one:.0} without ({:.0}%)",
        100.0 * flow / one
    );
    let limited = processing_flow(url, n, Mode::Limited).await;
    println!(
        "  and per-job limits too (per-key concurrency, rate limit; a queue rate limit): {limited:.0} jobs/s vs {one:.0} without ({:.0}%)",
        100.0 * limited / one
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        let concurrency = args.get(3).and_then(|c| c.parse().ok()).unwrap_or(1024);
        let mode = match args.get(4).map(String::as_str) {
            Some("flow") => Mode::Flow,
            Some("limited") => Mode::Limited,
            Some("standard") => Mode::Standard,
            _ => Mode::Plain,
        };
        return worker_process(&args[1], &args[2], concurrency, mode).await;
    }
    let mut url =
        std::env::var("JOBS_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut n = 20_000;
    let mut rounds = 3;
    let mut standard_only = false;
    let mut backlog_n = None;
    let mut processing_only = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--jobs" => n = it.next().and_then(|v| v.parse().ok()).expect("--jobs N"),
            "--backlog" => backlog_n = it.next().and_then(|v| v.parse().ok()),
            "--processing-only" => processing_only = true,
            "--rounds" => {
                rounds = it
                    .next()
                    .and_then(|v| v.parse::<usize>().ok())
                    .expect("--rounds N")
                    .max(1)
            }
            "--standard" => standard_only = true,
            other => url = other.to_owned(),
        }
    }
    let url = Arc::new(url);
    println!("jobs Redis benchmark on {url}: {n} jobs per measurement");

    if processing_only {
        let one = processing(&url, n, 1).await;
        println!("processing, 1 worker process: {one:.0} jobs/s");
        print_flow(&url, n, one).await;
        return;
    }
    let raw = standard(&url, n, rounds).await.fifty;
    if standard_only {
        return;
    }
    println!(
        "\nother settings (one run each; % of the raw 50-client mean): a plain `JobProcessor` (no \
         registry), no-op jobs with empty arguments"
    );
    let single = enqueue_single(&url, n).await;
    println!(
        "enqueue (one job per call, 50 tasks):      {single:>8.0} jobs/s  ({:.0}% of raw)",
        100.0 * single / raw
    );
    let many = enqueue_many(&url, n).await;
    println!(
        "enqueue_many (batches of 1,000):           {many:>8.0} jobs/s  ({:.0}% of raw)",
        100.0 * many / raw
    );
    let one = processing(&url, n, 1).await;
    println!(
        "processing, 1 worker process, 1,024 at a time: {one:>8.0} jobs/s  ({:.0}% of raw)",
        100.0 * one / raw
    );
    print_flow(&url, n, one).await;
    let two = processing(&url, n, 2).await;
    println!(
        "processing, 2 worker processes, 1,024 each:    {two:>8.0} jobs/s  ({:.0}% of raw, x{:.2} of one process)",
        100.0 * two / raw,
        two / one
    );
    let (slow_n, ms, conc) = (20_000, 2, 32);
    let slow_one = processing_slow(&url, slow_n, ms, conc, 1).await;
    let slow_two = processing_slow(&url, slow_n, ms, conc, 2).await;
    println!(
        "processing {ms} ms jobs, {conc} at a time per process: 1 process {slow_one:.0} jobs/s, 2 processes {slow_two:.0} jobs/s (x{:.2})",
        slow_two / slow_one
    );
    if let Some(b) = backlog_n {
        backlog(&url, b).await;
    }
}
