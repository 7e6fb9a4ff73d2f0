//! Throughput and memory of the in-memory path, against a bare baseline
//! measured in the same run.
//!
//! Run: `cargo run --release --example bench [-- JOBS ROUNDS]`
//!
//! - **whole path**: N no-op jobs through enqueue → reserve → dispatch →
//!   complete, with status tracking, on a `MemoryJobQueue` and a
//!   `BackgroundJobWorker` (default concurrency), a producer task enqueueing
//!   while the worker runs.
//! - **baseline**: the same N jobs through a tokio mpsc channel; each is
//!   serialised to JSON by the producer, deserialised by the consumer
//!   (the round trip a job system must at least do to move a job), and run
//!   as a spawned no-op task.
//! - **memory**: resident memory per waiting job with 1,000,000 no-op jobs
//!   in a `MemoryJobQueue`.
//!
//! Both rates are the best of ROUNDS runs (default 5), alternating, so a
//! noisy neighbour hurts both alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jobs::prelude::*;
use tokio::sync::{Notify, mpsc};

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

async fn whole_path(n: usize) -> Duration {
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

async fn baseline(n: usize) -> Duration {
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

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);

    println!("jobs in-memory benchmark: {n} no-op jobs, best of {rounds} rounds");
    let (mut best_path, mut best_base) = (Duration::MAX, Duration::MAX);
    for round in 1..=rounds {
        let base = baseline(n).await;
        let path = whole_path(n).await;
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

    let waiting = 1_000_000;
    let per_job = memory_per_waiting_job(waiting).await;
    println!("resident memory per waiting job ({waiting} waiting): {per_job:.0} bytes");
}
