//! A "Job Status Dashboard": a `JobManager` over a worker that
//! summarises the queue and the worker's health, lists jobs by status,
//! retries the failed ones, cancels pending ones by name, and monitors in a
//! loop. An upload job fails while a (simulated) storage outage lasts; after
//! the outage the manager retries it and it succeeds. Two reports scheduled
//! for later are cancelled.
//!
//! Run: `cargo run --example monitoring`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use jobs::prelude::*;
use jobs::{WorkerHealth, queue::QueueCounts};
use serde_json::{Value, json};

/// Manages and monitors the jobs of one worker.
struct JobManager {
    worker: BackgroundJobWorker,
}

/// A snapshot for a dashboard.
struct JobSummary {
    timestamp: String,
    queue_stats: QueueStats,
    worker_health: WorkerHealth,
}

impl JobManager {
    fn new(worker: BackgroundJobWorker) -> Self {
        JobManager { worker }
    }

    /// The queue's statistics and the worker's health.
    async fn get_job_summary(&self) -> Result<JobSummary, jobs::Error> {
        Ok(JobSummary {
            timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            queue_stats: self.worker.get_queue_stats().await?,
            worker_health: self.worker.health_check().await,
        })
    }

    /// Jobs with a status (or all), oldest first, at most 100.
    async fn list_jobs_by_status(
        &self,
        status: Option<JobStatus>,
    ) -> Result<Vec<Job>, jobs::Error> {
        self.worker.list_jobs(status, 100).await
    }

    /// Puts every failed job back in the queue; returns how many.
    async fn retry_failed_jobs(&self) -> Result<usize, jobs::Error> {
        let mut retried = 0;
        for job in self.list_jobs_by_status(Some(JobStatus::Failed)).await? {
            if self.worker.retry_job(job.id).await? {
                retried += 1;
            }
        }
        Ok(retried)
    }

    /// Cancels pending jobs, only those with one of `names` if given;
    /// returns how many.
    async fn cancel_pending_jobs(&self, names: Option<&[&str]>) -> Result<usize, jobs::Error> {
        let mut cancelled = 0;
        for job in self.list_jobs_by_status(Some(JobStatus::Pending)).await? {
            if names.is_none_or(|names| names.contains(&&*job.name))
                && self.worker.cancel_job(job.id).await?
            {
                cancelled += 1;
            }
        }
        Ok(cancelled)
    }

    /// Prints a summary every `interval`, `rounds` times.
    async fn monitor_continuously(&self, interval: Duration, rounds: usize) {
        println!("📊 Starting continuous job monitoring...");
        for _ in 0..rounds {
            match self.print_summary().await {
                Ok(()) => {}
                Err(e) => println!("❌ Monitor error: {e}"),
            }
            tokio::time::sleep(interval).await;
        }
    }

    async fn print_summary(&self) -> Result<(), jobs::Error> {
        let summary = self.get_job_summary().await?;
        let stats = &summary.queue_stats;
        println!("\n--- Job Summary at {} ---", summary.timestamp);
        println!("Queue Size: {}", stats.queue_size);
        println!("Active Jobs: {}", stats.active_jobs);
        println!("Available Slots: {}", stats.available_slots);
        println!("Jobs Processed: {}", stats.worker_stats.jobs_processed);
        println!("Jobs Failed: {}", stats.worker_stats.jobs_failed);
        println!(
            "Worker Health: {}",
            if summary.worker_health.healthy {
                "✅ Healthy"
            } else {
                "❌ Unhealthy"
            }
        );
        print_counts(&stats.counts);
        for status in [JobStatus::Running, JobStatus::Pending, JobStatus::Failed] {
            let jobs = self.list_jobs_by_status(Some(status)).await?;
            if !jobs.is_empty() {
                println!("{}: {} jobs", status.as_str().to_uppercase(), jobs.len());
                for job in jobs.iter().take(3) {
                    println!("  - {} (ID: {})", job.name, job.id);
                }
            }
        }
        Ok(())
    }
}

fn print_counts(counts: &QueueCounts) {
    println!(
        "By status: pending={} running={} retrying={} completed={} failed={} cancelled={}",
        counts.pending,
        counts.running,
        counts.retrying,
        counts.completed,
        counts.failed,
        counts.cancelled
    );
}

/// Whether the (simulated) file storage is down.
struct StorageOutage(AtomicBool);

/// Sends an email (simulated).
#[job]
async fn send_email(to: String) -> Result<Value, JobError> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(json!({ "email_sent": true, "recipient": to }))
}

/// Processes an image (simulated).
#[job]
async fn process_image(image_url: String) -> Result<Value, JobError> {
    tokio::time::sleep(Duration::from_millis(600)).await;
    Ok(json!({ "image_processed": true, "image_url": image_url }))
}

/// Uploads a file; fails while the storage is down. No automatic retries:
/// an operator retries it from the dashboard.
#[job(retries = 0)]
async fn upload_file(storage: Data<StorageOutage>, path: String) -> Result<Value, JobError> {
    if storage.0.load(Ordering::SeqCst) {
        return Err(JobError::retryable("storage unavailable (503)"));
    }
    Ok(json!({ "uploaded": path }))
}

/// Generates a report (simulated).
#[job]
async fn generate_report(report_type: String) -> Result<Value, JobError> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(json!({ "report_generated": true, "report_type": report_type }))
}

#[tokio::main]
async fn main() -> Result<(), jobs::Error> {
    jobs_examples::init_tracing();

    let outage = Arc::new(StorageOutage(AtomicBool::new(true)));
    let worker = BackgroundJobWorker::builder()
        .data_arc(Arc::clone(&outage))
        .max_concurrent_jobs(4)
        .build()?;
    let manager = JobManager::new(worker.clone());

    send_email::enqueue(&worker, "test@example.com".into()).await?;
    process_image::enqueue(&worker, "test.jpg".into()).await?;
    let upload = upload_file::enqueue(&worker, "exports/2024-01.csv".into()).await?;
    // Two reports for later; the manager cancels them below.
    for report_type in ["daily", "weekly"] {
        worker
            .submit_job(generate_report::job(report_type.into()).delay(Duration::from_secs(3600)))
            .await?;
    }

    let running = jobs_examples::start(&worker);
    let monitor = manager.monitor_continuously(Duration::from_millis(400), 3);
    let upload_failed = worker.wait_for(upload);
    let ((), failed) = tokio::join!(monitor, upload_failed);
    println!();
    jobs_examples::print_outcome(&failed?);

    let cancelled = manager
        .cancel_pending_jobs(Some(&["generate_report"]))
        .await?;
    println!("🚫 Cancelled {cancelled} pending report(s)");

    println!("🔧 Storage is back; retrying failed jobs");
    outage.0.store(false, Ordering::SeqCst);
    let retried = manager.retry_failed_jobs().await?;
    println!("🔁 Retried {retried} failed job(s)");
    jobs_examples::print_outcome(&worker.wait_for(upload).await?);

    worker.wait_until_idle().await?;
    manager.print_summary().await?;
    running.stop().await?;
    Ok(())
}
