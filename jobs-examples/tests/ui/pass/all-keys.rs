//! Every key, and the names the generated module takes care not to clash with.

use std::time::Duration;

use jobs::prelude::*;

#[job(name = "send_email", priority = "high", retries = 3, timeout = "30s", queue = "emails")]
async fn send_email(to: String, subject: String, body: String) -> Result<(), JobError> {
    let _ = (to, subject, body);
    Ok(())
}

#[job(priority = "low", retries = 0, timeout = "250ms")]
async fn low() {}

#[job(priority = "critical", timeout = "1h 30m")]
async fn critical() {}

#[job(priority = "normal", timeout = "5m", name = "normal-job", queue = "q")]
async fn normal() {}

// Parameters named like the generated code's own names.
#[job]
async fn clashing(target: String, job: u32, args: u8, cx: String, r#type: String) {
    let _ = (target, job, args, cx, r#type);
}

async fn enqueue_all(queue: &MemoryJobQueue) -> Result<(), jobs::Error> {
    send_email::enqueue(queue, "a".into(), "b".into(), "c".into()).await?;
    clashing::enqueue(queue, "t".into(), 1, 2, "c".into(), "type".into()).await?;
    let worker = BackgroundJobWorker::builder().build()?;
    low::enqueue(&worker).await?;
    Ok(())
}

fn main() {
    let job = send_email::job("a".into(), "b".into(), "c".into());
    assert_eq!(job.priority, JobPriority::High);
    assert_eq!(job.max_retries, 3);
    assert_eq!(job.timeout, Some(Duration::from_secs(30)));
    assert_eq!(job.queue, "emails");
    assert_eq!(send_email::registration().queue, Some("emails"));
    assert_eq!(normal::job().queue, "q");
    assert_eq!(critical::job().timeout, Some(Duration::from_secs(5400)));
    assert_eq!(normal::NAME, "normal-job");
    assert_eq!(clashing::job("t".into(), 1, 2, "c".into(), "x".into()).args["type"], "x");
    let _ = enqueue_all;
}
