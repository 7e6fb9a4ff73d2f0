//! A "Multi-Type Job Processor": one processor routing on
//! `job.name` (email, image, sync, report), jobs with different priorities,
//! and a report scheduled for later, with a monitor printing the queue.
//!
//! Run: `cargo run --example processor`

use std::time::Duration;

use jobs::prelude::*;
use serde_json::json;

/// Handles several kinds of job, routing on the job's name.
struct MultiTypeJobProcessor;

impl MultiTypeJobProcessor {
    async fn handle_email(&self, job: &Job) -> JobResult {
        tokio::time::sleep(Duration::from_millis(500)).await; // simulate sending
        JobResult::success(json!({"email_sent": true, "recipient": job.args["to"]}))
    }

    async fn handle_image(&self, job: &Job) -> JobResult {
        let operations = job
            .args
            .get("operations")
            .cloned()
            .unwrap_or(json!(["resize"]));
        tokio::time::sleep(Duration::from_millis(800)).await; // images take longer
        JobResult::success(json!({
            "image_processed": true,
            "image_url": job.args["image_url"],
            "operations": operations,
            "output_url": format!("https://cdn.example.com/processed/{}.jpg", job.id),
        }))
    }

    async fn handle_sync(&self, job: &Job) -> JobResult {
        // A real processor would call the source's and destination's APIs.
        tokio::time::sleep(Duration::from_millis(300)).await;
        JobResult::success(json!({
            "synced": true,
            "records_count": 42,
            "source": job.args["source"],
            "destination": job.args["destination"],
        }))
    }

    async fn handle_report(&self, job: &Job) -> JobResult {
        tokio::time::sleep(Duration::from_millis(1000)).await; // reports take time
        JobResult::success(json!({
            "report_generated": true,
            "report_type": job.args["type"],
            "date_range": job.args["date_range"],
            "download_url": format!("https://reports.example.com/{}.pdf", job.id),
        }))
    }
}

impl JobProcessor for MultiTypeJobProcessor {
    async fn process(&self, job: &Job) -> JobResult {
        match &*job.name {
            "send_email" => self.handle_email(job).await,
            "process_image" => self.handle_image(job).await,
            "sync_data" => self.handle_sync(job).await,
            "generate_report" => self.handle_report(job).await,
            other => JobResult::failure(JobError::permanent(format!("Unknown job type: {other}"))),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), jobs::Error> {
    jobs_examples::init_tracing();

    let worker = BackgroundJobWorker::builder()
        .queue(MemoryJobQueue::new())
        .processor(MultiTypeJobProcessor)
        .max_concurrent_jobs(2)
        .polling_interval(Duration::from_millis(500))
        .build()?;

    let jobs = [
        // High priority email.
        Job::new(
            "send_email",
            json!({
                "to": "urgent@example.com",
                "subject": "Urgent: System Alert",
                "body": "Critical system alert requiring immediate attention.",
            }),
        )
        .priority(JobPriority::High),
        // Normal priority image processing.
        Job::new(
            "process_image",
            json!({
                "image_url": "https://example.com/upload/image1.jpg",
                "operations": ["resize", "compress", "watermark"],
            }),
        ),
        // Low priority data sync.
        Job::new(
            "sync_data",
            json!({"source": "shopify", "destination": "warehouse"}),
        )
        .priority(JobPriority::Low),
        // A report scheduled for later (a real one might wait five minutes; two
        // seconds keep the example short).
        Job::new(
            "generate_report",
            json!({"type": "monthly_sales", "date_range": "2024-01-01 to 2024-01-31"}),
        )
        .delay(Duration::from_secs(2)),
    ];

    let submitted = jobs_examples::submit_all(&worker, jobs).await?;

    println!("🚀 Starting multi-type job worker...");
    // Monitor until every job has finished.
    let finished =
        jobs_examples::monitor_until_done(&worker, &submitted, Duration::from_millis(500)).await?;
    for job in &finished {
        jobs_examples::print_outcome(job);
    }
    Ok(())
}
