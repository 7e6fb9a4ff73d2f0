//! Named queues and flow control on the in-memory queue: a worker taking
//! from four queues, each with its own concurrency; a per-account limit of
//! one sync at a time; a rate-limited mailer; a unique report whose queue
//! is paused until the rest is done; a job that snoozes; progress.
//! Exits by itself.
//!
//! Run: `cargo run --example flow_control`

use std::time::{Duration, Instant};

use jobs::prelude::*;
use jobs::{JobEventKind, QueueLimits};

/// Charges run in their own queue, so a backlog of emails never delays them.
#[job(queue = "critical", priority = "high")]
async fn charge_card(order: u64) -> Result<(), JobError> {
    println!("💳 charged order {order}");
    Ok(())
}

/// One sync per account at a time (any number of accounts at once): two
/// syncs of one account would fight over its cursor.
#[job(concurrency = 1, key = account_id)]
async fn sync_account(account_id: u64, page: u32) -> Result<(), JobError> {
    println!("🔄 account {account_id}: page {page} started");
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!("🔄 account {account_id}: page {page} done");
    Ok(())
}

/// The mail provider allows 5 sends a second.
#[job(queue = "mailers", rate_limit = "5/s")]
async fn send_newsletter(to: String) -> Result<(), JobError> {
    println!("📧 newsletter to {to}");
    Ok(())
}

/// At most one report per day waits or runs at a time: enqueueing it again
/// finds the first.
#[job(queue = "reports", unique = "1h")]
async fn daily_report(day: String, cx: JobContext) -> Result<(), JobError> {
    for step in 1..=4 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        cx.progress(f64::from(step) / 4.0);
    }
    println!("📊 report for {day} written");
    Ok(())
}

/// Waits for an upstream export: not there yet means "not now", not a
/// failure, so the attempt does not count.
#[job]
async fn import_export(cx: JobContext) -> Result<(), JobError> {
    static CHECKS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    if CHECKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 2 {
        println!(
            "⏳ export not ready; snoozing 200ms (attempt {} not counted)",
            cx.attempt()
        );
        return Err(JobError::snooze(Duration::from_millis(200)));
    }
    println!("📥 export imported (attempt {})", cx.attempt());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), jobs::Error> {
    jobs_examples::init_tracing();
    let queue = MemoryJobQueue::new();
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .queues([
            ("critical", 4),
            ("default", 8),
            ("mailers", 2),
            ("reports", 1),
        ])
        // A queue-wide limit, on top of the job's own: at most 10 mails a
        // second from this queue, whatever is in it.
        .queue_limits("mailers", QueueLimits::new().rate("10/s".parse()?))
        .build()?;

    // Reports wait until the rest is done.
    worker.pause_queue("reports").await?;
    let report = queue.push(daily_report::job("2026-12-02".into())).await?;
    let again = queue.push(daily_report::job("2026-12-02".into())).await?;
    println!(
        "daily_report enqueued twice: one job ({}), second push a conflict: {}",
        report.id == again.id,
        again.conflict
    );

    let mut ids = Vec::new();
    for page in 1..=3 {
        for account in [1, 2] {
            ids.push(sync_account::enqueue(&worker, account, page).await?);
        }
    }
    for i in 1..=10 {
        ids.push(send_newsletter::enqueue(&worker, format!("reader{i}@example.com")).await?);
    }
    ids.push(charge_card::enqueue(&worker, 42).await?);
    ids.push(import_export::enqueue(&worker).await?);

    let started = Instant::now();
    let running = jobs_examples::start(&worker);
    for id in &ids {
        worker.wait_for(*id).await?;
    }
    println!("everything but the report done in {:?}", started.elapsed());
    for q in worker.queues().await? {
        println!(
            "  queue {:<9} paused: {:<5} ready: {}",
            q.name, q.paused, q.ready
        );
    }

    let mut events = worker.subscribe();
    worker.resume_queue("reports").await?;
    loop {
        let event = events.recv().await.expect("events");
        if event.job_id != report.id {
            continue;
        }
        match event.kind {
            JobEventKind::Progress => println!("  report progress: {}", event.progress.unwrap()),
            kind if kind.is_final() => break,
            _ => {}
        }
    }
    let report = worker.get_job(report.id).await?.expect("kept");
    println!(
        "report: {:?}, progress {}",
        report.status,
        report.progress.unwrap()
    );
    running.stop().await?;
    Ok(())
}
