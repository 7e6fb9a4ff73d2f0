//! Throughput of `RedisJobQueue`, against the raw speed of the same Redis
//! measured in the same run.
//!
//! ```text
//! cargo run --release --features redis --example redis_bench -- [URL] [--jobs N] [--backlog N]
//! ```
//!
//! - **raw**: `redis-benchmark -t lpush,lpop -q` (50 clients, no
//!   pipelining) against the same server; if `redis-benchmark` is not on
//!   `PATH`, the same measured here with 50 connections.
//! - **enqueue**: N jobs, one `enqueue` per job from 50 concurrent tasks;
//!   and N jobs with `enqueue_many` in batches of 1,000.
//! - **processing**: N no-op jobs waiting, then 1 (and then 2) worker
//!   processes (this program run again with `--worker`; 1,024 jobs at a
//!   time, reserving up to 256 per call) start and run them
//!   all: enqueued → reserved → run → completed, with status tracking and
//!   the default retention of finished jobs. Then jobs that each wait 2 ms,
//!   32 at a time per process (the worker is the limit, not Redis), with 1
//!   and 2 processes.
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
//!   control.
//! - `--backlog N`: N waiting jobs, Redis memory per waiting job
//!   (`INFO memory` before and after), then 2 worker processes run them.
//!
//! URL defaults to `$JOBS_REDIS_URL`, else `redis://127.0.0.1:6379`. Uses
//! queues named `bench-*`, purged afterwards.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::prelude::*;
use jobs_examples::bench::{Noop, noop_job, process_cpu, rate};

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
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Flow => "flow",
            Mode::Limited => "limited",
        }
    }
}

/// `--worker URL QUEUE CONCURRENCY MODE`: a worker process that starts on
/// "GO" from stdin and runs until stdin closes.
async fn worker_process(url: &str, name: &str, concurrency: usize, mode: Mode) {
    let queue = RedisJobQueue::connect(url, name).await.expect("connect");
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

/// LPUSH and LPOP rates from `redis-benchmark`, or measured here.
async fn raw_rates(url: &str) -> (f64, f64, &'static str) {
    let info = redis::Client::open(url).unwrap();
    let addr = info.get_connection_info().addr().to_string();
    let (host, port) = addr.rsplit_once(':').unwrap_or(("127.0.0.1", "6379"));
    let output = Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "-t", "lpush,lpop", "-q"])
        .args(["-c", "50", "-P", "1", "-n", "200000"])
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
                "redis-benchmark -t lpush,lpop -q -c 50 -n 200000",
            );
        }
    }
    // Fallback: 50 connections, one command at a time each.
    let key = format!("bench-raw-{}", JobId::new());
    let mut rates = [0.0; 2];
    for (i, command) in ["LPUSH", "LPOP"].into_iter().enumerate() {
        let n = 200_000;
        let per = n / 50;
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..50 {
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
        rates[i] = rate(per * 50, start.elapsed());
    }
    (
        rates[0],
        rates[1],
        "measured here: 50 connections, no pipelining",
    )
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
            _ => Mode::Plain,
        };
        return worker_process(&args[1], &args[2], concurrency, mode).await;
    }
    let mut url =
        std::env::var("JOBS_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut n = 100_000;
    let mut backlog_n = None;
    let mut processing_only = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--jobs" => n = it.next().and_then(|v| v.parse().ok()).expect("--jobs N"),
            "--backlog" => backlog_n = it.next().and_then(|v| v.parse().ok()),
            "--processing-only" => processing_only = true,
            other => url = other.to_owned(),
        }
    }
    let url = Arc::new(url);
    println!("jobs Redis benchmark on {url}: {n} no-op jobs per measurement");

    if processing_only {
        let one = processing(&url, n, 1).await;
        println!("processing, 1 worker process: {one:.0} jobs/s");
        print_flow(&url, n, one).await;
        return;
    }
    let (push, pop, how) = raw_rates(&url).await;
    let raw = (push + pop) / 2.0;
    println!("raw Redis ({how}): LPUSH {push:.0}/s, LPOP {pop:.0}/s, mean {raw:.0}/s");

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
        "processing, 1 worker process:              {one:>8.0} jobs/s  ({:.0}% of raw)",
        100.0 * one / raw
    );
    print_flow(&url, n, one).await;
    let two = processing(&url, n, 2).await;
    println!(
        "processing, 2 worker processes:            {two:>8.0} jobs/s  ({:.0}% of raw, x{:.2} of one process)",
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
