//! A "Simple Email Job Processor", ported one-to-one in the
//! class-based style: a `JobProcessor` reads the arguments out of `job.args`.
//! Submit two emails, run the worker, print the results and the stats, exit.
//! (`quickstart` is the same program written with `#[job]`.)
//!
//! Run: `cargo run --example email_processor`

use std::time::Duration;

use jobs::prelude::*;
use serde_json::json;

/// Where emails are sent from.
struct SmtpConfig {
    from_email: String,
}

/// Sends emails.
struct EmailJobProcessor {
    smtp: SmtpConfig,
}

impl EmailJobProcessor {
    async fn send_email(&self, to: &str, subject: &str, body: &str) {
        // A real processor would talk SMTP here; simulate the network delay.
        tokio::time::sleep(Duration::from_millis(500)).await;
        println!("📧 Email sent to {to} (from {})", self.smtp.from_email);
        println!("   Subject: {subject}");
        println!("   Body: {}...", body.chars().take(100).collect::<String>());
    }
}

impl JobProcessor for EmailJobProcessor {
    async fn process(&self, job: &Job) -> JobResult {
        let field = |name: &str| job.args.get(name).and_then(|v| v.as_str());
        let (Some(to), Some(subject), Some(body)) = (field("to"), field("subject"), field("body"))
        else {
            return JobResult::failure(JobError::permanent("Missing required email parameters"));
        };
        self.send_email(to, subject, body).await;
        JobResult::success(json!({"email_sent": true, "recipient": to, "subject": subject}))
    }
}

#[tokio::main]
async fn main() -> Result<(), jobs::Error> {
    jobs_examples::init_tracing();

    let processor = EmailJobProcessor {
        smtp: SmtpConfig {
            from_email: "noreply@example.com".into(),
        },
    };
    let worker = BackgroundJobWorker::builder()
        .queue(MemoryJobQueue::new())
        .processor(processor)
        .max_concurrent_jobs(5)
        .polling_interval(Duration::from_secs(1))
        .build()?;

    let welcome = Job::new(
        "send_email",
        json!({
            "to": "new_user@example.com",
            "subject": "Welcome to Our Platform!",
            "body": "Thank you for joining us. Get started with your first project.",
        }),
    );
    let reset = Job::new(
        "send_email",
        json!({
            "to": "user@example.com",
            "subject": "Password Reset Request",
            "body": "Click this link to reset your password: https://example.com/reset",
        }),
    );
    let ids = [
        worker.submit_job(welcome).await?.id,
        worker.submit_job(reset).await?.id,
    ];

    println!("🚀 Starting email job worker...");
    for job in jobs_examples::run_until_done(&worker, &ids).await? {
        jobs_examples::print_outcome(&job);
    }
    jobs_examples::print_stats(&worker.get_queue_stats().await?);
    Ok(())
}
