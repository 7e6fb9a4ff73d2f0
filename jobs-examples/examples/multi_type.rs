//! A "Multi-Type Job Processor" with `#[job]`: four job types
//! (email, image, data sync, report), each its own typed function; the
//! generated registry routes by name. Jobs go in with different priorities
//! and one is scheduled for later; a monitor prints the queue and each job's
//! status until all are done.
//!
//! Run: `cargo run --example multi_type`

use std::time::Duration;

use chrono::Utc;
use jobs::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};

/// A stand-in for an HTTP client shared by all jobs (`Data<HttpClient>`).
struct HttpClient {
    timeout: Duration,
}

impl HttpClient {
    async fn get_records(&self, url: &str) -> Result<Vec<Value>, JobError> {
        let request = tokio::time::sleep(Duration::from_millis(200));
        tokio::time::timeout(self.timeout, request)
            .await
            .map_err(|_| JobError::retryable(format!("GET {url} timed out")))?;
        if url.is_empty() {
            return Err(JobError::retryable("empty url"));
        }
        Ok((0..42).map(|i| json!({ "id": i })).collect())
    }

    async fn post(&self, _url: &str, _body: &[Value]) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    }
}

/// Sends an email (simulated).
#[job(priority = "high", timeout = "30s")]
async fn send_email(to: String, subject: String, body: String) -> Result<Value, JobError> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = (subject, body);
    Ok(json!({ "email_sent": true, "recipient": to }))
}

/// Processes an image; takes longer than the other jobs.
#[job(timeout = "5m")]
async fn process_image(
    cx: JobContext,
    image_url: String,
    operations: Option<Vec<String>>,
) -> Result<Value, JobError> {
    let operations = operations.unwrap_or_else(|| vec!["resize".into()]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    Ok(json!({
        "image_processed": true,
        "image_url": image_url,
        "operations": operations,
        "output_url": format!("https://cdn.example.com/processed/{}.jpg", cx.job_id()),
    }))
}

/// What `sync_data` returns.
#[derive(Serialize)]
struct Synced {
    synced: bool,
    records_count: usize,
    source: String,
    destination: String,
}

/// Copies records from one system to another over HTTP.
#[job(priority = "low", retries = 5)]
async fn sync_data(
    http: Data<HttpClient>,
    source: String,
    destination: String,
) -> Result<Synced, JobError> {
    let records = http
        .get_records(&format!("https://api.{source}.com/data"))
        .await?;
    http.post(&format!("https://api.{destination}.com/sync"), &records)
        .await?;
    Ok(Synced {
        synced: true,
        records_count: records.len(),
        source,
        destination,
    })
}

/// Generates a report (simulated).
#[job(timeout = "10m")]
async fn generate_report(
    cx: JobContext,
    report_type: String,
    date_range: String,
) -> Result<Value, JobError> {
    tokio::time::sleep(Duration::from_millis(700)).await;
    Ok(json!({
        "report_generated": true,
        "report_type": report_type,
        "date_range": date_range,
        "download_url": format!("https://reports.example.com/{}.pdf", cx.job_id()),
    }))
}

#[tokio::main]
async fn main() -> Result<(), jobs::Error> {
    jobs_examples::init_tracing();

    let worker = BackgroundJobWorker::builder()
        .queue(MemoryJobQueue::new())
        .data(HttpClient {
            timeout: Duration::from_secs(30),
        })
        .max_concurrent_jobs(10)
        .polling_interval(Duration::from_millis(500))
        .build()?;

    let jobs = [
        // High priority (the attribute's default for this job).
        send_email::job(
            "urgent@example.com".into(),
            "Urgent: System Alert".into(),
            "Critical system alert requiring immediate attention.".into(),
        ),
        // Normal priority.
        process_image::job(
            "https://example.com/upload/image1.jpg".into(),
            Some(vec!["resize".into(), "compress".into(), "watermark".into()]),
        ),
        // Low priority.
        sync_data::job("shopify".into(), "warehouse".into()),
        // Scheduled for later: two seconds rather than minutes keep the
        // example short.
        generate_report::job("monthly_sales".into(), "2024-01-01 to 2024-01-31".into())
            .scheduled_at(Utc::now() + Duration::from_secs(2)),
    ];
    let submitted = jobs_examples::submit_all(&worker, jobs).await?;

    println!("🚀 Starting multi-type job worker...");
    // Monitor until every job is done.
    let finished =
        jobs_examples::monitor_until_done(&worker, &submitted, Duration::from_millis(500)).await?;
    for job in &finished {
        jobs_examples::print_outcome(job);
    }
    Ok(())
}
