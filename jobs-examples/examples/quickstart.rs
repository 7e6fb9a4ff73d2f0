//! A "Simple Email Job Processor", written with `#[job]`: one
//! async function becomes a job with typed arguments. Enqueue two emails,
//! run the worker on the in-memory queue, print the results and the stats,
//! exit.
//!
//! Run: `cargo run --example quickstart`

use std::time::Duration;

use jobs::prelude::*;
use serde::Serialize;

/// What `send_email` returns; stored as the job's result.
#[derive(Serialize)]
struct EmailSent {
    email_sent: bool,
    recipient: String,
    subject: String,
}

/// Sends one email. The arguments arrive typed: a job whose payload lacks
/// one of them fails with an error naming the missing field.
#[job(name = "send_email", priority = "high", retries = 3, timeout = "30s")]
async fn send_email(to: String, subject: String, body: String) -> Result<EmailSent, JobError> {
    // A real job would talk SMTP here; simulate the network delay.
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("📧 Email sent to {to}");
    println!("   Subject: {subject}");
    println!("   Body: {}...", body.chars().take(100).collect::<String>());
    Ok(EmailSent {
        email_sent: true,
        recipient: to,
        subject,
    })
}

#[tokio::main]
async fn main() -> Result<(), jobs::Error> {
    jobs_examples::init_tracing();

    // The worker runs every `#[job]` function of the program (its default
    // processor is the registry).
    let worker = BackgroundJobWorker::builder()
        .queue(MemoryJobQueue::new())
        .max_concurrent_jobs(5)
        .polling_interval(Duration::from_secs(1))
        .build()?;

    let ids = [
        send_email::enqueue(
            &worker,
            "new_user@example.com".into(),
            "Welcome to Our Platform!".into(),
            "Thank you for joining us. Get started with your first project.".into(),
        )
        .await?,
        send_email::enqueue(
            &worker,
            "user@example.com".into(),
            "Password Reset Request".into(),
            "Click this link to reset your password: https://example.com/reset".into(),
        )
        .await?,
    ];

    println!("🚀 Starting email job worker...");
    for job in jobs_examples::run_until_done(&worker, &ids).await? {
        jobs_examples::print_outcome(&job);
    }
    jobs_examples::print_stats(&worker.get_queue_stats().await?);
    Ok(())
}
