//! Scheduled maintenance jobs ("cron-like job scheduling"), with
//! `#[job(cron = ..)]` and `#[job(every = ..)]`: a health check every 5
//! minutes, log cleanup daily at 02:00 UTC, a database backup daily at 03:00
//! UTC (high priority) and the daily report at 09:00 Berlin time, plus a
//! heartbeat every 2 seconds (added through the `JobScheduler` API) so that
//! something fires while the example runs. It prints the task list, runs for about six seconds, prints
//! the list again and stops.
//!
//! Run with `cargo run --example scheduled` (`RUST_LOG=info` shows the
//! scheduler's log lines).

use std::time::Duration;

use chrono::Utc;
use jobs::TaskInfo;
use jobs::prelude::*;
use serde_json::{Value, json};

/// Checks the system's health, every 5 minutes.
#[job(every = "5m")]
async fn health_check() -> Result<Value, JobError> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(json!({
        "task": "health_check",
        "status": "healthy",
        "services_checked": ["database", "cache", "api", "queue"],
    }))
}

/// Cleans up log files older than 30 days, daily at 02:00 UTC.
#[job(cron = "0 0 2 * * *")]
async fn cleanup_logs() -> Result<Value, JobError> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(json!({
        "task": "log_cleanup",
        "deleted_files": 15,
        "freed_space": "2.5GB",
    }))
}

/// Backs up the database, daily at 03:00 UTC, with high priority.
#[job(cron = "0 0 3 * * *", priority = "high", timeout = "1h")]
async fn backup_database() -> Result<Value, JobError> {
    tokio::time::sleep(Duration::from_secs(10)).await;
    let backup_file = format!("backup_{}.sql", Utc::now().format("%Y%m%d_%H%M%S"));
    Ok(json!({
        "task": "database_backup",
        "backup_file": backup_file,
        "size": "1.2GB",
    }))
}

/// Sends the daily report to stakeholders at 09:00, Berlin time.
#[job(cron = "0 9 * * *", timezone = "Europe/Berlin")]
async fn send_daily_report() -> Result<Value, JobError> {
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(json!({
        "task": "daily_report",
        "recipients": ["manager@example.com", "team@example.com"],
        "metrics_included": ["users", "revenue", "errors"],
    }))
}

/// A heartbeat, scheduled below through the `JobScheduler` API rather than
/// the attribute (the two mix freely).
#[job]
async fn heartbeat(cx: JobContext) -> Result<Value, JobError> {
    Ok(json!({ "task": "heartbeat", "job": cx.job_id().to_string() }))
}

fn print_tasks(tasks: &[TaskInfo]) {
    println!(
        "   {:<18} {:<32} {:<20} {:<20} {:>4}",
        "task", "schedule", "next run (UTC)", "last run (UTC)", "runs"
    );
    let time = |t: Option<chrono::DateTime<Utc>>| {
        t.map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
    };
    for task in tasks {
        println!(
            "📅 {:<18} {:<32} {:<20} {:<20} {:>4}",
            task.name,
            task.schedule.to_string(),
            time(task.next_run),
            time(task.last_run),
            task.run_count
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), jobs::Error> {
    jobs_examples::init_tracing();

    // The worker runs every `#[job]` function; those with `cron`/`every`
    // become periodic tasks of its scheduler.
    let worker = BackgroundJobWorker::builder()
        .max_concurrent_jobs(3)
        .polling_interval(Duration::from_secs(1))
        .shutdown_timeout(Duration::from_secs(1))
        .build()?;
    let scheduler = worker.scheduler().clone();
    // One more task by hand: a heartbeat every 2 seconds, to see the
    // scheduler at work while the example runs.
    scheduler.add(
        PeriodicTask::new(
            "heartbeat",
            Schedule::every(Duration::from_secs(2))?,
            heartbeat::job(),
        )
        .missed_runs(MissedRuns::Skip),
    )?;

    println!("Declared with #[job] (the worker adds them to its scheduler when it starts):");
    for task in Registry::global()?.periodic_tasks()? {
        let next: Vec<String> = task
            .schedule
            .upcoming(Utc::now(), 2)
            .iter()
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .collect();
        println!(
            "📅 {:<18} {:<32} next: {}",
            task.name,
            task.schedule.to_string(),
            next.join(", ")
        );
    }
    let mut events = worker.subscribe();
    let running = jobs_examples::start(&worker);
    println!("\n⏰ Starting scheduled job worker (for about 6 seconds)...");

    let deadline = tokio::time::sleep(Duration::from_secs(6));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            event = events.recv() => match event {
                Ok(event) if event.kind.status().is_final() => {
                    if let Some(job) = worker.get_job(event.job_id).await? {
                        let label = format!("{} ({})", event.name, Utc::now().format("%H:%M:%S"));
                        jobs_examples::print_outcome_as(&label, &job);
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        }
    }

    let report = running.stop().await?;
    if !report.abandoned.is_empty() {
        println!(
            "↩️  {} unfinished job(s) handed back to the queue",
            report.abandoned.len()
        );
    }
    println!("\n🛑 Worker stopped.\n");
    print_tasks(&scheduler.tasks());
    Ok(())
}
