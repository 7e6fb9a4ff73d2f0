//! The pieces the backend benchmarks (`redis_bench`, `pg_bench`) share:
//! a no-op processor, filling a queue, worker processes started from the
//! benchmark's own binary, and timing their run through a backlog. Written
//! against [`AnyQueue`], so one benchmark measures every backend the same
//! way.
//!
//! The *standard setting* (each benchmark's headline) is here too: a
//! worker process with the default [`Registry`](jobs::Registry) processor,
//! [`STANDARD_IN_FLIGHT`] jobs at a time and default settings otherwise
//! ([`standard_worker_process`]); a producer enqueuing one job per call
//! ([`enqueue_sequential`]), alone or while a worker runs the jobs
//! ([`drain_alongside`]); and enqueue → handler start latency for an idle
//! in-process worker ([`latency`], with [`record_latency`] called from the
//! benchmark's own `#[job]`).

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use jobs::{AnyQueue, BackgroundJobWorker, Enqueue, Job, JobProcessor, JobResult, QueueAdmin};
use parking_lot::Mutex;

/// Jobs in flight in the standard setting.
pub const STANDARD_IN_FLIGHT: usize = 16;

/// Succeeds at once, or after `sleep_ms` milliseconds if its arguments say
/// so (`{"sleep_ms": 1}`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Noop;

impl JobProcessor for Noop {
    async fn process(&self, job: &Job) -> JobResult {
        if let Some(ms) = job.args.get("sleep_ms").and_then(|v| v.as_u64()) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        JobResult::success(serde_json::Value::Null)
    }
}

/// A no-op job with no arguments.
pub fn noop_job() -> Job {
    Job::new("noop", serde_json::Value::Null)
}

/// A job [`Noop`] runs in `ms` milliseconds.
pub fn sleep_job(ms: u64) -> Job {
    Job::new("sleep", serde_json::json!({ "sleep_ms": ms }))
}

/// `n` per `elapsed`, per second.
pub fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// CPU seconds a process has used so far (Linux `/proc`; 0 elsewhere).
pub fn process_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 (1-based, counting the pid and name).
    (ticks(11) + ticks(12)) / 100.0
}

/// Stores `n` jobs made by `job` with `enqueue_many` in batches of 1,000;
/// how long it took.
pub async fn fill(queue: &AnyQueue, n: usize, job: impl Fn(usize) -> Job) -> Duration {
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        let batch = (n - done).min(1000);
        queue
            .enqueue_many((done..done + batch).map(&job).collect())
            .await
            .expect("enqueue_many");
        done += batch;
    }
    start.elapsed()
}

/// Enqueues `n` no-op jobs one per call from `tasks` concurrent tasks; the
/// rate.
pub async fn enqueue_each(queue: &AnyQueue, n: usize, tasks: usize) -> f64 {
    let per = n / tasks;
    let start = Instant::now();
    let running: Vec<_> = (0..tasks)
        .map(|_| {
            let queue = queue.clone();
            tokio::spawn(async move {
                for _ in 0..per {
                    queue.enqueue(noop_job()).await.expect("enqueue");
                }
            })
        })
        .collect();
    for task in running {
        task.await.expect("an enqueue task");
    }
    rate(per * tasks, start.elapsed())
}

/// The worker side of [`drain`]: a worker on `queue` running [`Noop`],
/// `concurrency` jobs at a time (reserving up to 256 per call), that says
/// `READY` on stdout, starts on a line from stdin and runs until stdin
/// closes. Call it from the benchmark's `main` when it finds the arguments
/// it gave [`drain`].
pub async fn worker_process(queue: AnyQueue, concurrency: usize) {
    let worker = BackgroundJobWorker::builder()
        .queue(queue)
        .processor(Noop)
        .max_concurrent_jobs(concurrency)
        .batch_size(concurrency.min(256))
        .build()
        .expect("worker");
    serve(worker).await;
}

/// [`worker_process`] in the standard setting: the default processor (the
/// `Registry` of the benchmark's `#[job]` functions),
/// [`STANDARD_IN_FLIGHT`] jobs at a time, every other setting (batch size,
/// polling, leases) the default.
pub async fn standard_worker_process(queue: AnyQueue) {
    let worker = BackgroundJobWorker::builder()
        .queue(queue)
        .max_concurrent_jobs(STANDARD_IN_FLIGHT)
        .build()
        .expect("worker");
    serve(worker).await;
}

/// Says `READY`, runs `worker` from the first line on stdin until stdin
/// closes, then stops it.
async fn serve(worker: BackgroundJobWorker) {
    println!("READY");
    std::io::stdout().flush().expect("stdout");
    let mut lines = BufReader::new(std::io::stdin()).lines();
    let _go = lines.next();
    let running = tokio::spawn(worker.clone().run_owned());
    tokio::task::spawn_blocking(move || for _ in lines {})
        .await
        .expect("the stdin reader");
    worker.stop().await;
    running
        .await
        .expect("the worker task")
        .expect("the worker ran");
}

/// What a [`drain`] measured.
#[derive(Clone, Copy, Debug)]
pub struct Drained {
    /// Jobs per second, from the start signal until none waits or runs.
    pub rate: f64,
    /// CPU the worker processes used, in cores (summed over processes).
    pub workers_cpu: f64,
}

/// Starts `processes` copies of this program with `worker_args` (which
/// must make it call [`worker_process`] or [`standard_worker_process`]),
/// lets them run the `n` jobs waiting in `queue`, and times it: from the
/// start signal until no job waits or runs. Looks at the queue's counts
/// every `poll`.
pub async fn drain(
    queue: &AnyQueue,
    n: usize,
    processes: usize,
    worker_args: &[String],
    poll: Duration,
) -> Drained {
    drain_alongside(queue, n, processes, worker_args, poll, async {}).await
}

/// As [`drain`], and `producer` runs from the start signal on, beside the
/// workers: the clock stops when it has finished and no job waits or runs,
/// so `n` counts what was waiting before and what it enqueued.
pub async fn drain_alongside(
    queue: &AnyQueue,
    n: usize,
    processes: usize,
    worker_args: &[String],
    poll: Duration,
    producer: impl Future<Output = ()>,
) -> Drained {
    let exe = std::env::current_exe().expect("this program");
    let mut children = Vec::new();
    for _ in 0..processes {
        let mut child = Command::new(&exe)
            .args(worker_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn a worker process");
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        assert_eq!(
            out.next().expect("a line").expect("the worker's output"),
            "READY"
        );
        children.push(child);
    }
    let start = Instant::now();
    for child in &mut children {
        writeln!(child.stdin.as_mut().expect("piped stdin"), "GO").expect("start a worker");
    }
    producer.await;
    loop {
        let counts = queue.counts().await.expect("counts");
        if counts.waiting() + counts.running == 0 {
            break;
        }
        tokio::time::sleep(poll).await;
    }
    let elapsed = start.elapsed();
    let workers_cpu =
        children.iter().map(|c| process_cpu(c.id())).sum::<f64>() / elapsed.as_secs_f64();
    for mut child in children {
        drop(child.stdin.take());
        child.wait().expect("a worker process");
    }
    Drained {
        rate: rate(n, elapsed),
        workers_cpu,
    }
}

/// Enqueues the `n` jobs `job` makes, one `enqueue` call at a time from
/// one task (each waits for the one before); the rate.
pub async fn enqueue_sequential(queue: &AnyQueue, n: usize, job: impl Fn(usize) -> Job) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        queue.enqueue(job(i)).await.expect("enqueue");
    }
    rate(n, start.elapsed())
}

// ---- latency ------------------------------------------------------------

/// The instant latencies are measured from (this process only).
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
/// Enqueue → start latencies recorded so far, in microseconds.
static LATENCIES: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Microseconds since this process's benchmark epoch: what a latency job
/// carries as its enqueue time.
pub fn micros_now() -> u64 {
    EPOCH.elapsed().as_micros() as u64
}

/// Records one latency: now minus `sent_us` (from [`micros_now`] at
/// enqueue). Call it first thing in the benchmark's latency `#[job]`.
pub fn record_latency(sent_us: u64) {
    let waited = micros_now().saturating_sub(sent_us);
    LATENCIES.lock().push(waited);
}

/// Takes the latencies recorded so far (and clears them).
pub fn take_latencies() -> Vec<u64> {
    std::mem::take(&mut *LATENCIES.lock())
}

/// How many latencies are recorded so far.
pub fn latencies_recorded() -> usize {
    LATENCIES.lock().len()
}

/// Jobs a [`latency`] run sends.
pub const LATENCY_JOBS: usize = 2_000;

/// Enqueue → handler start for an idle worker, in this process: a worker
/// on `worker_queue` (the default `Registry` processor,
/// [`STANDARD_IN_FLIGHT`] at a time, default settings) is started and left
/// idle for half a second; then [`LATENCY_JOBS`] jobs made by `job` (from
/// [`micros_now`]) are enqueued on `producer`, a handle of its own, 1 ms
/// apart. The handler must call [`record_latency`]. Returns (p50, p99) in
/// microseconds.
pub async fn latency(
    worker_queue: AnyQueue,
    producer: &AnyQueue,
    job: impl Fn(u64) -> Job,
) -> (u64, u64) {
    LazyLock::force(&EPOCH);
    LATENCIES.lock().clear();
    let worker = BackgroundJobWorker::builder()
        .queue(worker_queue)
        .max_concurrent_jobs(STANDARD_IN_FLIGHT)
        .build()
        .expect("worker");
    let running = tokio::spawn(worker.clone().run_owned());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    for _ in 0..LATENCY_JOBS {
        tick.tick().await;
        producer.enqueue(job(micros_now())).await.expect("enqueue");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while LATENCIES.lock().len() < LATENCY_JOBS {
        assert!(Instant::now() < deadline, "latency jobs did not all run");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.stop().await;
    running
        .await
        .expect("the worker task")
        .expect("the worker ran");
    percentiles(std::mem::take(&mut *LATENCIES.lock()))
}

/// (p50, p99) of `samples` (0s if empty).
pub fn percentiles(mut samples: Vec<u64>) -> (u64, u64) {
    if samples.is_empty() {
        return (0, 0);
    }
    samples.sort_unstable();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    (at(0.50), at(0.99))
}

/// The median of `values` (0 if empty).
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
