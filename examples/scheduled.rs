//! Scheduled maintenance jobs, the seed's "Cron-Like Job Scheduling": a
//! health check every 5 minutes, log cleanup daily at 02:00, a database
//! backup daily at 03:00 (high priority) and the daily report at 09:00 (all
//! UTC), plus a heartbeat every 2 seconds so that something fires while the
//! example runs. It prints the task list, runs for about six seconds, prints
//! the list again and stops.
//!
//! Run with `cargo run --example scheduled` (`RUST_LOG=info` shows the
//! scheduler's log lines).

use std::time::Duration;

use chrono::Utc;
use jobs::prelude::*;
use jobs::{JobEventKind, TaskInfo};
use serde_json::json;

/// Handles the scheduled maintenance jobs, routing on `job.name`.
struct ScheduledJobProcessor;

impl ScheduledJobProcessor {
    /// Cleans up log files older than 30 days (simulated).
    async fn cleanup_old_logs(&self) -> JobResult {
        tokio::time::sleep(Duration::from_secs(2)).await;
        JobResult::success(json!({
            "task": "log_cleanup",
            "deleted_files": 15,
            "freed_space": "2.5GB",
        }))
    }

    /// Backs up the database (simulated).
    async fn backup_database(&self) -> JobResult {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let backup_file = format!("backup_{}.sql", Utc::now().format("%Y%m%d_%H%M%S"));
        JobResult::success(json!({
            "task": "database_backup",
            "backup_file": backup_file,
            "size": "1.2GB",
        }))
    }

    /// Sends the daily report to stakeholders (simulated).
    async fn send_daily_report(&self) -> JobResult {
        tokio::time::sleep(Duration::from_secs(3)).await;
        JobResult::success(json!({
            "task": "daily_report",
            "recipients": ["manager@example.com", "team@example.com"],
            "metrics_included": ["users", "revenue", "errors"],
        }))
    }

    /// Checks the system's health (simulated).
    async fn perform_health_check(&self) -> JobResult {
        tokio::time::sleep(Duration::from_secs(1)).await;
        JobResult::success(json!({
            "task": "health_check",
            "status": "healthy",
            "services_checked": ["database", "cache", "api", "queue"],
        }))
    }
}

impl JobProcessor for ScheduledJobProcessor {
    async fn process(&self, job: &Job) -> JobResult {
        match &*job.name {
            "cleanup_logs" => self.cleanup_old_logs().await,
            "backup_database" => self.backup_database().await,
            "send_daily_report" => self.send_daily_report().await,
            "health_check" => self.perform_health_check().await,
            "heartbeat" => JobResult::success(json!({
                "task": "heartbeat",
                "occurrence": job.metadata.get("occurrence"),
            })),
            other => JobResult::error(format!("Unknown scheduled job: {other}")),
        }
    }
}

fn print_tasks(tasks: &[TaskInfo]) {
    println!(
        "   {:<18} {:<12} {:<20} {:<20} {:>4}",
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
            "📅 {:<18} {:<12} {:<20} {:<20} {:>4}",
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();

    let scheduler = JobScheduler::new();
    // Health check every 5 minutes; a late one is not worth running.
    scheduler.add(
        PeriodicTask::new(
            "health_check",
            Schedule::every_minutes(5)?,
            Job::new("health_check", json!({})),
        )
        .missed_runs(MissedRuns::Skip),
    )?;
    // Log cleanup daily at 2 AM.
    scheduler.add(PeriodicTask::new(
        "cleanup_logs",
        Schedule::daily_at(2, 0)?,
        Job::new("cleanup_logs", json!({})),
    ))?;
    // Database backup daily at 3 AM, high priority.
    scheduler.add(PeriodicTask::new(
        "backup_database",
        Schedule::daily_at(3, 0)?,
        Job::new("backup_database", json!({})).priority(JobPriority::High),
    ))?;
    // Daily report at 9 AM. For a local time, add
    // `.in_timezone("Europe/Berlin")?` to the schedule.
    scheduler.add(PeriodicTask::new(
        "send_daily_report",
        Schedule::daily_at(9, 0)?,
        Job::new("send_daily_report", json!({})),
    ))?;
    // A heartbeat every 2 seconds, to see the scheduler at work.
    scheduler.add(
        PeriodicTask::new(
            "heartbeat",
            Schedule::every(Duration::from_secs(2))?,
            Job::new("heartbeat", json!({})),
        )
        .missed_runs(MissedRuns::Skip),
    )?;

    let worker = BackgroundJobWorker::builder()
        .processor(ScheduledJobProcessor)
        .max_concurrent_jobs(3)
        .polling_interval(Duration::from_secs(1))
        .shutdown_timeout(Duration::from_secs(1))
        .scheduler(scheduler.clone())
        .build()?;

    print_tasks(&scheduler.tasks());
    let mut events = worker.subscribe();
    let running = tokio::spawn(worker.clone().run_owned());
    println!("\n⏰ Starting scheduled job worker (for about 6 seconds)...");

    let deadline = tokio::time::sleep(Duration::from_secs(6));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            event = events.recv() => match event {
                Ok(event) if event.kind == JobEventKind::Completed => {
                    let job = worker.get_job(event.job_id).await?;
                    let result = job.and_then(|j| j.result).and_then(|r| r.result);
                    println!(
                        "✅ {} completed at {}: {}",
                        event.name,
                        Utc::now().format("%H:%M:%S"),
                        result.unwrap_or_default()
                    );
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        }
    }

    let report = worker.stop().await;
    running.await.expect("the worker task panicked")?;
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
