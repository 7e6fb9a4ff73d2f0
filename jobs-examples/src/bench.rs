//! The pieces the backend benchmarks (`redis_bench`, `pg_bench`) share:
//! a no-op processor, filling a queue, worker processes started from the
//! benchmark's own binary, and timing their run through a backlog. Written
//! against [`AnyQueue`], so one benchmark measures every backend the same
//! way.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jobs::{AnyQueue, BackgroundJobWorker, Enqueue, Job, JobProcessor, JobResult, QueueAdmin};

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
/// must make it call [`worker_process`]), lets them run the `n` jobs
/// waiting in `queue`, and times it: from the start signal until no job
/// waits or runs.
pub async fn drain(
    queue: &AnyQueue,
    n: usize,
    processes: usize,
    worker_args: &[String],
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
    loop {
        let counts = queue.counts().await.expect("counts");
        if counts.waiting() + counts.running == 0 {
            break;
        }
        // Not too often: counting is a scan on some backends.
        tokio::time::sleep(Duration::from_millis(50)).await;
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

/// The median of `values` (0 if empty).
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
