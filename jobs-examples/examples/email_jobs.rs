//! Email jobs with `#[job]`: the SMTP settings are shared state
//! injected into the handler (`Data<SmtpConfig>`), the email fields are the
//! typed payload. Shows the welcome and password-reset emails, an email
//! scheduled a moment later, and what happens to a payload that lacks a
//! field (the job fails at once, naming it; the worker carries on).
//!
//! Run: `cargo run --example email_jobs`

use std::time::Duration;

use jobs::prelude::*;
use serde::Serialize;
use serde_json::json;

/// SMTP settings, registered once on the worker with `.data(..)`.
struct SmtpConfig {
    smtp_server: String,
    smtp_port: u16,
    from_email: String,
}

/// What `send_email` returns; stored as the job's result.
#[derive(Serialize)]
struct EmailSent {
    email_sent: bool,
    recipient: String,
    subject: String,
}

/// Sends an email through the configured SMTP server (simulated).
#[job(name = "send_email", retries = 3, timeout = "30s")]
async fn send_email(
    smtp: Data<SmtpConfig>,
    to: String,
    subject: String,
    body: String,
) -> Result<EmailSent, JobError> {
    if !to.contains('@') {
        // Retrying cannot fix this one.
        return Err(JobError::permanent(format!("invalid recipient: {to}")));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!(
        "📧 Email sent to {to} from {} via {}:{}",
        smtp.from_email, smtp.smtp_server, smtp.smtp_port
    );
    println!("   Subject: {subject}");
    println!("   Body: {}...", body.chars().take(60).collect::<String>());
    Ok(EmailSent {
        email_sent: true,
        recipient: to,
        subject,
    })
}

#[tokio::main]
async fn main() -> Result<(), jobs::Error> {
    jobs_examples::init_tracing();

    let worker = BackgroundJobWorker::builder()
        .queue(MemoryJobQueue::new())
        .data(SmtpConfig {
            smtp_server: "smtp.example.com".into(),
            smtp_port: 587,
            from_email: "noreply@example.com".into(),
        })
        .max_concurrent_jobs(5)
        .build()?;

    // Typed enqueue: the compiler checks the arguments.
    let welcome = send_email::enqueue(
        &worker,
        "new_user@example.com".into(),
        "Welcome to Our Platform!".into(),
        "Thank you for joining us. Get started with your first project.".into(),
    )
    .await?;
    let reset = send_email::enqueue(
        &worker,
        "user@example.com".into(),
        "Password Reset Request".into(),
        "Click this link to reset your password: https://example.com/reset".into(),
    )
    .await?;
    // `job(..)` builds the job with the attribute's defaults, to adjust
    // before submitting: here, send the reminder a second later.
    let reminder = worker
        .submit_job(
            send_email::job(
                "user@example.com".into(),
                "Did you reset your password?".into(),
                "Your reset link expires in one hour.".into(),
            )
            .delay(Duration::from_secs(1)),
        )
        .await?
        .id;
    let invalid = send_email::enqueue(
        &worker,
        "not-an-address".into(),
        "Hello".into(),
        "...".into(),
    )
    .await?;
    // A payload from elsewhere (another service, an old release) that lacks
    // fields: it fails permanently with an error naming the field.
    let malformed = worker
        .submit_job(Job::new(
            send_email::NAME,
            json!({"to": "someone@example.com"}),
        ))
        .await?
        .id;

    println!("🚀 Starting email job worker...");
    let running = tokio::spawn(worker.clone().run_owned());
    for (label, id) in [
        ("welcome", welcome),
        ("password reset", reset),
        ("reminder", reminder),
        ("invalid recipient", invalid),
        ("malformed payload", malformed),
    ] {
        let job = worker.wait_for(id).await?;
        match (&job.status, &job.last_error) {
            (JobStatus::Completed, _) => println!("✅ {label}: completed"),
            (status, Some(error)) => println!(
                "❌ {label}: {status} after {} attempt(s): {error}",
                job.attempts
            ),
            (status, None) => println!("❔ {label}: {status}"),
        }
    }

    let stats = worker.get_queue_stats().await?;
    println!(
        "📊 processed={} failed={} retried={}",
        stats.worker_stats.jobs_processed,
        stats.worker_stats.jobs_failed,
        stats.worker_stats.jobs_retried,
    );
    worker.stop().await;
    running.await.expect("worker task")?;
    Ok(())
}
