//! The daily report as a workflow: sync data from three sources in
//! parallel, then generate the report from their typed results, then email
//! it. Then a batch: import ten rows, with a callback once all completed
//! and one once all finished. Prints each step as it happens and the
//! workflow's counts, and exits.
//!
//! Run: `cargo run --example workflow` (in memory). With a URL
//! (`redis://..`, `postgres://..`) and the matching feature, the same runs
//! on that backend: `cargo run --example workflow --features redis --
//! redis://127.0.0.1:6379/`.

use std::time::Duration;

use jobs::prelude::*;
use jobs::workflow::{Batch, Step, Workflow};
use jobs::{AnyQueue, JobContext};
use serde::{Deserialize, Serialize};

/// What one source's sync returns.
#[derive(Debug, Serialize, Deserialize)]
struct Synced {
    source: String,
    rows: u64,
}

/// The report `generate_report` makes.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    rows: u64,
    sources: Vec<String>,
    download_url: String,
}

/// Pulls the day's data from one source.
#[job(retries = 2, timeout = "30s")]
async fn sync_source(source: String) -> Result<Synced, JobError> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rows = 1_000 * (source.len() as u64);
    println!("🔄 synced {rows} rows from {source}");
    Ok(Synced { source, rows })
}

/// Builds the report from what the syncs returned: each `Step<Synced>` is
/// read back as a `Synced`, checked by the compiler against `sync_source`.
#[job(timeout = "1m")]
async fn generate_report(
    kind: String,
    sources: Vec<Step<Synced>>,
    cx: JobContext,
) -> Result<Report, JobError> {
    let mut report = Report {
        rows: 0,
        sources: Vec::new(),
        download_url: format!("https://reports.example.com/{}.pdf", cx.job_id()),
    };
    for source in &sources {
        let synced = cx.output(source)?;
        report.rows += synced.rows;
        report.sources.push(synced.source);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!(
        "📊 {kind} report: {} rows from {:?}",
        report.rows, report.sources
    );
    Ok(report)
}

/// Emails the report.
#[job(priority = "high", retries = 3)]
async fn email_report(to: String, report: Step<Report>, cx: JobContext) -> Result<(), JobError> {
    let report = cx.output(&report)?;
    println!("📧 sent {} to {to}", report.download_url);
    Ok(())
}

/// One row of the import batch.
#[job]
async fn import_row(row: u32) -> Result<u32, JobError> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(row * 2)
}

/// The batch's callback once every row completed: it sees every result.
#[job]
async fn import_succeeded(cx: JobContext) -> Result<u32, JobError> {
    let total: u32 = cx
        .results()
        .iter()
        .filter_map(|r| r.output().and_then(|v| v.as_u64()))
        .map(|v| v as u32)
        .sum();
    println!(
        "✅ import succeeded: {} rows, checksum {total}",
        cx.results().len()
    );
    Ok(total)
}

/// The batch's callback once every row finished, whatever the outcome.
#[job]
async fn import_finished(cx: JobContext) -> Result<(), JobError> {
    let failed = cx
        .results()
        .iter()
        .filter(|r| r.status != JobStatus::Completed)
        .count();
    println!("🏁 import finished ({failed} failed)");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), jobs::Error> {
    jobs_examples::init_tracing();
    let queue = match std::env::args().nth(1) {
        Some(url) => AnyQueue::connect_to(&url, Some("workflow-example")).await?,
        None => AnyQueue::new(MemoryJobQueue::new()),
    };
    println!("backend: {}", queue.backend());
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .max_concurrent_jobs(8)
        .build()?;
    let running = tokio::spawn(worker.clone().run_owned());

    // Sync three sources side by side, then the report, then the email.
    let mut daily = Workflow::new("daily_report");
    let sources: Vec<Step<Synced>> = ["sales", "crm", "analytics"]
        .into_iter()
        .map(|s| daily.step(s, sync_source::step(s.into()), &[]))
        .collect();
    let report = daily.step(
        "report",
        generate_report::step("daily".into(), sources),
        &["sales", "crm", "analytics"],
    );
    let email = daily.step(
        "email",
        email_report::step("manager@example.com".into(), report.clone()),
        &["report"],
    );
    let id = daily.enqueue(&worker).await?;
    let sent = worker.wait_for(email.id()).await?;
    println!("email step: {}", sent.status);
    let status = queue.workflow(id).await?.expect("stored");
    println!(
        "workflow {}: {} steps, {} completed, {} failed",
        status.name, status.total, status.completed, status.failed
    );
    for step in &status.steps {
        println!("  {:<10} {:<16} {}", step.name, step.job_name, step.status);
    }
    let report = queue.get(report.id()).await?.expect("kept");
    println!(
        "report result: {}",
        report.result.and_then(|r| r.result).unwrap_or_default()
    );

    // A batch of ten rows with its two callbacks.
    let mut import = Batch::new("import");
    for row in 0..10 {
        import.add(import_row::job(row));
    }
    import.on_success(import_succeeded::job());
    import.on_complete(import_finished::job());
    let batch = import.enqueue(&worker).await?;
    let mut events = queue.subscribe();
    loop {
        let status = queue.workflow(batch).await?.expect("stored");
        if status.is_finished() {
            println!(
                "batch {}: {} jobs, {} completed, {} failed, {} cancelled",
                status.name, status.total, status.completed, status.failed, status.cancelled
            );
            break;
        }
        // Look again at the next event (or after a while: events can be lost).
        let _ = tokio::time::timeout(Duration::from_millis(500), events.recv()).await;
    }

    let report = worker.stop().await;
    running.await.expect("worker task")?;
    println!("stopped: {report:?}");
    let _ = queue.purge().await;
    Ok(())
}
