//! A worker process on a Redis queue: `RedisJobQueue(host, port,
//! db, queue_name)` scenario. Start as many as you like, on as many
//! machines; they share the queue, and each job runs once (again only if
//! its worker dies mid-job).
//!
//! ```text
//! cargo run --features redis --example redis_worker -- redis://127.0.0.1:6379 [queue]
//! ```
//!
//! It runs the `#[job]` functions `send_email(to, subject, body)`,
//! `sleep(ms)` and `noop()`; with `--demo` it first enqueues a few. Ctrl-C stops
//! it gracefully: running jobs get the shutdown timeout to finish, the rest
//! go back to the queue at once. Set `RUST_LOG=info` (or `debug`) for logs.

use std::time::Duration;

use jobs::prelude::*;
use jobs::queue::RedisJobQueue;
use serde_json::{Value, json};

/// Sends an email (simulated).
#[job(priority = "high", timeout = "30s")]
async fn send_email(to: String, subject: String, body: String) -> Result<Value, JobError> {
    tracing::info!(%to, %subject, "sending email");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = body;
    Ok(json!({ "sent_to": to }))
}

/// Sleeps for `ms` milliseconds.
#[job]
async fn sleep(ms: u64) -> Result<Value, JobError> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(json!({ "slept_ms": ms }))
}

/// Does nothing.
#[job]
async fn noop() {}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let demo = args.iter().any(|a| a == "--demo");
    let mut positional = args.iter().filter(|a| !a.starts_with("--"));
    let url = positional
        .next()
        .cloned()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let name = positional.next().cloned().unwrap_or_else(|| "jobs".into());

    let queue = RedisJobQueue::connect(&url, &name).await?;
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .max_concurrent_jobs(10)
        .polling_interval(Duration::from_millis(500))
        .build()?;

    if demo {
        let jobs = vec![
            send_email::job(
                "urgent@example.com".into(),
                "Urgent: System Alert".into(),
                "...".into(),
            ),
            sleep::job(200),
            noop::job().delay(Duration::from_secs(2)),
        ];
        let ids = queue.enqueue_many(jobs).await?;
        println!("enqueued {} demo jobs", ids.len());
    }

    let running = tokio::spawn(worker.clone().run_owned());
    println!(
        "worker {} on {url} queue `{name}`: Ctrl-C to stop",
        worker.id()
    );
    tokio::signal::ctrl_c().await?;
    println!("stopping...");
    let report = worker.stop().await;
    running.await??;
    let stats = worker.worker_stats();
    println!(
        "stopped: {} processed, {} failed, {} retried, {} handed back",
        stats.jobs_processed,
        stats.jobs_failed,
        stats.jobs_retried,
        report.abandoned.len()
    );
    Ok(())
}
