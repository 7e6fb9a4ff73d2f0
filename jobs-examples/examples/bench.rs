//! Throughput, latency and memory of the in-memory path, each beside a bare
//! baseline measured in the same process and the same run.
//!
//! Run: `cargo run --release --example bench [-- JOBS ROUNDS [SECTION]]`
//! (SECTION runs one part alone, e.g. under a profiler: `memory`,
//! `standard`, `flow`, `latency` or `other`; `standard-path` and
//! `standard-baseline` run one side of the standard setting alone).
//!
//! **Headline, the standard setting** (what users run): a `#[job] async fn
//! bench(name: String, id: u64)` no-op function dispatched by the
//! `Registry`, 16 jobs at a time, default retention (10,000 finished jobs),
//! N jobs (default 200,000) enqueued first and then processed; the median of
//! ROUNDS rounds (default 5). Its **baseline** is a bare program doing the
//! least a job system must: the same N typed payloads serialised to JSON
//! into a tokio mpsc channel, then received, deserialised and run as spawned
//! tasks, at most 16 at a time (a semaphore).
//!
//! **Flow control**: the standard setting again, beside the same jobs over
//! three named queues each under a queue concurrency limit that does not
//! bind, and beside that with per-job limits too (a per-key concurrency
//! limit and a rate limit on every job, a rate limit on one queue, none
//! binding): what configuring flow control costs. Each run in a process of
//! its own, the order rotating between rounds.
//!
//! **Latency**: enqueue → handler start for an idle worker, over 2,000 jobs
//! sent 1 ms apart, p50 and p99, beside the bare program's.
//!
//! **Other settings, labelled**: the whole path with 64 jobs in flight, a
//! plain processor with empty arguments, every finished job retained and the
//! producer running alongside the worker (best of ROUNDS), beside an
//! unbounded mpsc + serde + spawn baseline; and (first, on a fresh heap) the
//! resident memory per waiting job with 1,000,000 jobs in a `MemoryJobQueue`.
//!
//! Rounds alternate between the path and its baseline, so a noisy neighbour
//! hurts both alike.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use jobs::prelude::*;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore, mpsc};

/// Jobs in flight in the standard setting.
const IN_FLIGHT: usize = 16;

// ---- the standard setting -------------------------------------------------

/// How many `bench` jobs ran, and who to wake when the round's target is met.
static DONE: AtomicUsize = AtomicUsize::new(0);
static TARGET: AtomicUsize = AtomicUsize::new(usize::MAX);
static ALL_DONE: LazyLock<Notify> = LazyLock::new(Notify::new);

fn count_one() {
    if DONE.fetch_add(1, Ordering::Relaxed) + 1 == TARGET.load(Ordering::Relaxed) {
        ALL_DONE.notify_one();
    }
}

/// The standard no-op job: a small typed payload, nothing to do.
#[job]
async fn bench(name: String, id: u64) -> Result<(), JobError> {
    std::hint::black_box((name, id));
    count_one();
    Ok(())
}

/// What the baseline moves: the same payload as `bench`'s arguments.
#[derive(Serialize, Deserialize)]
struct Payload {
    name: String,
    id: u64,
}

fn payload_name(i: usize) -> String {
    format!("job-{i}")
}

/// Enqueues `n` `bench` jobs, then runs a worker (16 at a time) until all
/// ran. Returns the processing time.
async fn standard_path(n: usize) -> Duration {
    let batch: Vec<Job> = (0..n)
        .map(|i| bench::job(payload_name(i), i as u64))
        .collect();
    let worker = BackgroundJobWorker::builder().max_concurrent_jobs(IN_FLIGHT);
    run_standard(batch, worker).await
}

/// The queues of the flow-control setting, with their slots (16 in all).
const FLOW_QUEUES: [(&str, usize); 3] = [("critical", 6), ("default", 5), ("mailers", 5)];

/// The standard setting with flow control configured but not binding: the
/// jobs spread over three named queues, each under a queue concurrency
/// limit of 1,000; with `per_job`, also each job under a concurrency limit
/// per key (one of 64 keys, a limit of 1,000) and a rate limit of its name,
/// and one queue under a queue rate limit — all far above what the run
/// reaches.
async fn flow_path(n: usize, per_job: bool) -> Duration {
    let rate: jobs::Rate = "100000000/s".parse().expect("rate");
    let batch: Vec<Job> = (0..n)
        .map(|i| {
            let job = bench::job(payload_name(i), i as u64).queue(FLOW_QUEUES[i % 3].0);
            if per_job {
                let key = jobs::flow::key("bench", &serde_json::json!(i % 64));
                job.concurrency_by(1_000, key).rate_limit(rate)
            } else {
                job
            }
        })
        .collect();
    let mut worker = BackgroundJobWorker::builder().queues(FLOW_QUEUES);
    for (queue, _) in FLOW_QUEUES {
        let mut limits = jobs::QueueLimits::new().concurrency(1_000);
        if per_job && queue == "mailers" {
            limits = limits.rate(rate);
        }
        worker = worker.queue_limits(queue, limits);
    }
    run_standard(batch, worker).await
}

/// Enqueues `batch`, then runs a worker built from `worker` until all ran.
async fn run_standard(batch: Vec<Job>, worker: jobs::WorkerBuilder) -> Duration {
    let n = batch.len();
    let queue = MemoryJobQueue::new();
    queue.enqueue_many(batch).await.expect("enqueue");
    DONE.store(0, Ordering::Relaxed);
    TARGET.store(n, Ordering::Relaxed);
    let worker = worker.queue(queue).build().expect("worker");
    let start = Instant::now();
    let running = tokio::spawn(worker.clone().run_owned());
    ALL_DONE.notified().await;
    let elapsed = start.elapsed();
    worker.stop().await;
    running.await.expect("worker task").expect("worker");
    elapsed
}

/// The bare program: serialised payloads in a channel, received,
/// deserialised and spawned, 16 at a time.
async fn standard_baseline(n: usize) -> Duration {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    for i in 0..n {
        let payload = Payload {
            name: payload_name(i),
            id: i as u64,
        };
        tx.send(serde_json::to_vec(&payload).expect("serialize"))
            .expect("send");
    }
    drop(tx);
    let done = Arc::new(AtomicUsize::new(0));
    let all_done = Arc::new(Notify::new());
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let start = Instant::now();
    let consumer = {
        let done = Arc::clone(&done);
        let all_done = Arc::clone(&all_done);
        tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                let permit = Arc::clone(&slots).acquire_owned().await.expect("open");
                let done = Arc::clone(&done);
                let all_done = Arc::clone(&all_done);
                tokio::spawn(async move {
                    let payload: Payload = serde_json::from_slice(&bytes).expect("deserialize");
                    std::hint::black_box(payload);
                    drop(permit);
                    if done.fetch_add(1, Ordering::Relaxed) + 1 == n {
                        all_done.notify_one();
                    }
                });
            }
        })
    };
    all_done.notified().await;
    let elapsed = start.elapsed();
    consumer.await.expect("consumer");
    elapsed
}

// ---- latency --------------------------------------------------------------

/// The instant every latency is measured from.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
/// Enqueue → start latencies of `latency` jobs, in microseconds.
static LATENCIES: Mutex<Vec<u64>> = Mutex::new(Vec::new());

fn micros_since_epoch() -> u64 {
    EPOCH.elapsed().as_micros() as u64
}

/// Records how long ago (µs since [`EPOCH`]) it was enqueued.
#[job]
async fn latency(sent_us: u64) -> Result<(), JobError> {
    let waited = micros_since_epoch().saturating_sub(sent_us);
    LATENCIES.lock().push(waited);
    count_one();
    Ok(())
}

const LATENCY_JOBS: usize = 2_000;

fn percentiles(mut samples: Vec<u64>) -> (u64, u64) {
    samples.sort_unstable();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    (at(0.50), at(0.99))
}

async fn latency_path() -> (u64, u64) {
    LATENCIES.lock().clear();
    DONE.store(0, Ordering::Relaxed);
    TARGET.store(LATENCY_JOBS, Ordering::Relaxed);
    let worker = BackgroundJobWorker::builder()
        .max_concurrent_jobs(IN_FLIGHT)
        .build()
        .expect("worker");
    let running = tokio::spawn(worker.clone().run_owned());
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    for _ in 0..LATENCY_JOBS {
        tick.tick().await;
        latency::enqueue(&worker, micros_since_epoch())
            .await
            .expect("enqueue");
    }
    ALL_DONE.notified().await;
    worker.stop().await;
    running.await.expect("worker task").expect("worker");
    percentiles(std::mem::take(&mut *LATENCIES.lock()))
}

async fn latency_baseline() -> (u64, u64) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let samples = Arc::new(Mutex::new(Vec::with_capacity(LATENCY_JOBS)));
    let consumer = {
        let samples = Arc::clone(&samples);
        tokio::spawn(async move {
            let mut tasks = Vec::with_capacity(LATENCY_JOBS);
            while let Some(bytes) = rx.recv().await {
                let samples = Arc::clone(&samples);
                tasks.push(tokio::spawn(async move {
                    let sent: u64 = serde_json::from_slice(&bytes).expect("deserialize");
                    samples
                        .lock()
                        .push(micros_since_epoch().saturating_sub(sent));
                }));
            }
            for task in tasks {
                task.await.expect("task");
            }
        })
    };
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    for _ in 0..LATENCY_JOBS {
        tick.tick().await;
        tx.send(serde_json::to_vec(&micros_since_epoch()).expect("serialize"))
            .expect("send");
    }
    drop(tx);
    consumer.await.expect("consumer");
    percentiles(std::mem::take(&mut *samples.lock()))
}

// ---- other settings -------------------------------------------------------

/// Counts completed no-op jobs and wakes the bench when all are done.
#[derive(Clone)]
struct Noop {
    done: Arc<AtomicUsize>,
    target: usize,
    all_done: Arc<Notify>,
}

impl JobProcessor for Noop {
    async fn process(&self, _job: &Job) -> JobResult {
        if self.done.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            self.all_done.notify_one();
        }
        JobResult::success(serde_json::Value::Null)
    }
}

fn noop_job() -> Job {
    Job::new("noop", serde_json::Value::Null)
}

/// 64 in flight, a plain processor, all finished jobs kept, the producer
/// running alongside.
async fn wide_path(n: usize) -> Duration {
    let noop = Noop {
        done: Arc::default(),
        target: n,
        all_done: Arc::new(Notify::new()),
    };
    let queue = MemoryJobQueue::builder().max_finished(n as u64).build();
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(noop.clone())
        .max_concurrent_jobs(64)
        .build()
        .expect("worker");
    let running = jobs_examples::start(&worker);
    let start = Instant::now();
    let producer = tokio::spawn(async move {
        for _ in 0..n {
            queue.enqueue(noop_job()).await.expect("enqueue");
        }
    });
    noop.all_done.notified().await;
    let elapsed = start.elapsed();
    producer.await.expect("producer");
    running.stop().await.expect("worker");
    elapsed
}

/// Unbounded mpsc + serde round trip of each job + a spawned no-op task.
async fn wide_baseline(n: usize) -> Duration {
    let done = Arc::new(AtomicUsize::new(0));
    let all_done = Arc::new(Notify::new());
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
    let start = Instant::now();
    let producer = tokio::spawn(async move {
        for _ in 0..n {
            let bytes = serde_json::to_vec(&noop_job()).expect("serialize");
            tx.send(bytes).await.expect("send");
        }
    });
    let consumer = {
        let done = Arc::clone(&done);
        let all_done = Arc::clone(&all_done);
        tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                let job: Job = serde_json::from_slice(&bytes).expect("deserialize");
                let done = Arc::clone(&done);
                let all_done = Arc::clone(&all_done);
                tokio::spawn(async move {
                    std::hint::black_box(&job);
                    if done.fetch_add(1, Ordering::Relaxed) + 1 == n {
                        all_done.notify_one();
                    }
                });
            }
        })
    };
    all_done.notified().await;
    let elapsed = start.elapsed();
    producer.await.expect("producer");
    consumer.await.expect("consumer");
    elapsed
}

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

async fn memory_per_waiting_job(n: usize) -> f64 {
    let before = resident_bytes();
    let queue = MemoryJobQueue::new();
    let mut batch = Vec::with_capacity(10_000);
    for _ in 0..n / 10_000 {
        batch.extend((0..10_000).map(|_| noop_job()));
        queue
            .enqueue_many(std::mem::take(&mut batch))
            .await
            .expect("enqueue");
    }
    assert_eq!(queue.len(), n / 10_000 * 10_000);
    let after = resident_bytes();
    drop(queue);
    (after.saturating_sub(before)) as f64 / n as f64
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    let mid = rates.len() / 2;
    if rates.len() % 2 == 1 {
        rates[mid]
    } else {
        (rates[mid - 1] + rates[mid]) / 2.0
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5).max(1);
    let only = args.next();
    let run = |section: &str| only.as_deref().is_none_or(|only| only == section);
    LazyLock::force(&EPOCH);

    // First, while the heap is fresh: later rounds leave freed memory that
    // the allocator reuses, which would hide the queue's own cost.
    if run("memory") {
        let waiting = 1_000_000;
        let per_job = memory_per_waiting_job(waiting).await;
        println!(
            "resident memory per waiting job ({waiting} waiting no-op jobs): {per_job:.0} bytes \
             (a `Job` is {} bytes of it)\n",
            std::mem::size_of::<Job>()
        );
    }
    if run("standard") {
        standard(n, rounds).await;
    }
    // One side of the standard setting alone, ROUNDS times (for a
    // profiler: its instructions are the path's, or the baseline's, only).
    if only.as_deref() == Some("standard-path") {
        for _ in 0..rounds {
            println!("rate {:.0}", rate(n, standard_path(n).await));
        }
    }
    if only.as_deref() == Some("standard-baseline") {
        for _ in 0..rounds {
            println!("rate {:.0}", rate(n, standard_baseline(n).await));
        }
    }
    if run("flow") {
        flow(n, rounds).await;
    }
    // One run, in a process of its own, for `flow`.
    if only.as_deref() == Some("flow-plain") {
        println!("rate {}", rate(n, standard_path(n).await));
    }
    if only.as_deref() == Some("flow-queues") {
        println!("rate {}", rate(n, flow_path(n, false).await));
    }
    if only.as_deref() == Some("flow-limits") {
        println!("rate {}", rate(n, flow_path(n, true).await));
    }
    if run("latency") {
        latency_section().await;
    }
    if run("other") {
        other(n, rounds).await;
    }
}

/// The headline: the standard setting beside its baseline.
async fn standard(n: usize, rounds: usize) {
    println!(
        "jobs in-memory benchmark, standard setting: `#[job] fn bench(name: String, id: u64)`, \
         {IN_FLIGHT} at a time, default retention, {n} jobs enqueued then processed, median of {rounds} rounds"
    );
    let (mut paths, mut bases) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let base = rate(n, standard_baseline(n).await);
        let path = rate(n, standard_path(n).await);
        println!("  round {round}: whole path {path:>9.0} jobs/s   baseline {base:>9.0} jobs/s");
        paths.push(path);
        bases.push(base);
    }
    let (path, base) = (median(paths), median(bases));
    println!("whole path (reserve → dispatch → typed call → complete): {path:>9.0} jobs/s");
    println!("baseline (mpsc + serde + spawn, {IN_FLIGHT} at a time):      {base:>9.0} jobs/s");
    println!("ratio: {:.2}× the baseline", path / base);
}

/// The standard setting with and without flow control configured.
async fn flow(n: usize, rounds: usize) {
    println!(
        "\nflow control configured, not binding: the standard setting (one queue, no limits) \
         beside the same jobs over three named queues (6 + 5 + 5 slots) each under a queue \
         concurrency limit, and beside that with per-job limits too (a per-key concurrency \
         limit and a rate limit on every job, one queue rate-limited); each run in a fresh \
         process, the order rotating; median of {rounds} rounds"
    );
    const RUNS: [&str; 3] = ["flow-plain", "flow-queues", "flow-limits"];
    let mut rates: [Vec<f64>; 3] = Default::default();
    for round in 0..rounds {
        // Each run in a fresh process (on a fresh heap), the order
        // rotating, so none runs on what another left or always first.
        let mut got = [0.0; 3];
        for k in 0..RUNS.len() {
            let i = (round + k) % RUNS.len();
            got[i] = run_alone(n, RUNS[i]);
        }
        println!(
            "  round {}: one queue {:>9.0}   queue limits {:>9.0}   per-job limits too {:>9.0} jobs/s",
            round + 1,
            got[0],
            got[1],
            got[2]
        );
        for (rates, got) in rates.iter_mut().zip(got) {
            rates.push(got);
        }
    }
    let [plain, queues, limits] = rates.map(median);
    println!("one queue, no limits:                {plain:>9.0} jobs/s");
    println!(
        "three queues with queue limits:      {queues:>9.0} jobs/s  ({:.0}% of without)",
        100.0 * queues / plain
    );
    println!(
        "  and per-job limits too:            {limits:>9.0} jobs/s  ({:.0}% of without)",
        100.0 * limits / plain
    );
}

/// Runs `section` (`flow-plain`, `flow-queues` or `flow-limits`: one run of
/// N jobs) in a child process of this program and returns the rate it
/// printed.
fn run_alone(n: usize, section: &str) -> f64 {
    let exe = std::env::current_exe().expect("this program's path");
    let out = std::process::Command::new(exe)
        .args([n.to_string(), "1".into(), section.into()])
        .output()
        .expect("run the benchmark's child process");
    assert!(out.status.success(), "the {section} run failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("rate ")?.trim().parse().ok())
        .expect("the child prints its rate")
}

/// Enqueue → handler start for an idle worker.
async fn latency_section() {
    println!(
        "\nlatency, enqueue → handler start, idle worker, {LATENCY_JOBS} jobs 1 ms apart (µs):"
    );
    let (base50, base99) = latency_baseline().await;
    let (p50, p99) = latency_path().await;
    println!("  whole path: p50 {p50:>5}  p99 {p99:>5}");
    println!("  baseline:   p50 {base50:>5}  p99 {base99:>5}");
}

/// The wide setting, labelled: 64 in flight, producer alongside.
async fn other(n: usize, rounds: usize) {
    println!(
        "\nother setting: 64 in flight, a plain processor with empty args, every finished job kept, \
         producer alongside the worker, best of {rounds} rounds"
    );
    let (mut best_path, mut best_base) = (Duration::MAX, Duration::MAX);
    for round in 1..=rounds {
        let base = wide_baseline(n).await;
        let path = wide_path(n).await;
        println!(
            "  round {round}: whole path {:>9.0} jobs/s   baseline {:>9.0} jobs/s",
            rate(n, path),
            rate(n, base)
        );
        best_path = best_path.min(path);
        best_base = best_base.min(base);
    }
    let (path, base) = (rate(n, best_path), rate(n, best_base));
    println!("whole path (enqueue → reserve → dispatch → complete): {path:>9.0} jobs/s");
    println!("baseline (mpsc + serde round trip + spawned task):     {base:>9.0} jobs/s");
    println!("ratio: {:.0}% of the baseline", 100.0 * path / base);
}
