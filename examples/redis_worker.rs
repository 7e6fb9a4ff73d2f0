//! A worker process on a Redis queue: the seed's `RedisJobQueue(host, port,
//! db, queue_name)` scenario. Start as many as you like, on as many
//! machines; they share the queue, and each job runs once (again only if
//! its worker dies mid-job).
//!
//! ```text
//! cargo run --features redis --example redis_worker -- redis://127.0.0.1:6379 [queue]
//! ```
//!
//! It handles the jobs `send_email` (`{to, subject, body}`), `sleep`
//! (`{ms}`) and `noop`; with `--demo` it first enqueues a few. Ctrl-C stops
//! it gracefully: running jobs get the shutdown timeout to finish, the rest
//! go back to the queue at once. Set `RUST_LOG=info` (or `debug`) for logs.

use std::time::Duration;

use jobs::prelude::*;
use serde_json::json;

struct DemoProcessor;

impl JobProcessor for DemoProcessor {
    async fn process(&self, job: &Job) -> JobResult {
        match &*job.name {
            "send_email" => {
                let to = job.args["to"].as_str().unwrap_or("?");
                tracing::info!(%to, subject = job.args["subject"].as_str().unwrap_or(""), "sending email");
                tokio::time::sleep(Duration::from_millis(50)).await;
                JobResult::success(json!({ "sent_to": to }))
            }
            "sleep" => {
                let ms = job.args["ms"].as_u64().unwrap_or(100);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                JobResult::success(json!({ "slept_ms": ms }))
            }
            "noop" => JobResult::success(serde_json::Value::Null),
            other => JobResult::failure(JobError::permanent(format!("Unknown job type: {other}"))),
        }
    }
}

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
    let name = positional
        .next()
        .cloned()
        .unwrap_or_else(|| "pythia_jobs".into());

    let queue = RedisJobQueue::connect(&url, &name).await?;
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(DemoProcessor)
        .max_concurrent_jobs(10)
        .polling_interval(Duration::from_millis(500))
        .build()?;

    if demo {
        let jobs = vec![
            Job::new(
                "send_email",
                json!({"to": "urgent@example.com", "subject": "Urgent: System Alert", "body": "..."}),
            )
            .priority(JobPriority::High),
            Job::new("sleep", json!({"ms": 200})),
            Job::new("noop", json!({})).delay(Duration::from_secs(2)),
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
