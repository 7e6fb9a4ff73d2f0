//! The job model: serde round trips, ordering, defaults, backoff, errors.

use std::time::Duration;

use jobs::prelude::*;
use jobs::{Backoff, Retry};
use serde::de::DeserializeOwned;
use serde_json::json;

fn round_trip<T: serde::Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let text = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, value, "{text}");
}

#[test]
fn every_type_round_trips_through_json() {
    let now = chrono::Utc::now();
    let mut job = Job::new("send_email", json!({"to": "a@example.com", "n": 3}))
        .priority(JobPriority::Critical)
        .max_retries(7)
        .backoff(
            Backoff::exponential(Duration::from_millis(250)).max_delay(Duration::from_secs(60)),
        )
        .timeout(Duration::from_secs(30))
        .scheduled_at(now)
        .expires_at(now + chrono::Duration::hours(1))
        .every(Duration::from_secs(300))
        .tag("welcome")
        .meta("tenant", 42);
    job.status = JobStatus::Retrying;
    job.attempts = 2;
    job.started_at = Some(now);
    job.last_error = Some("smtp timeout".into());
    job.result = Some(Box::new(JobResult::failure(
        JobError::retry_after("busy", Duration::from_secs(5)).with_type("Busy"),
    )));
    round_trip(&job);
    round_trip(&Job::new("bare", serde_json::Value::Null));
    round_trip(&job.id);
    for priority in JobPriority::ALL {
        round_trip(&priority);
    }
    for status in JobStatus::ALL {
        round_trip(&status);
        assert_eq!(status.as_str().parse::<JobStatus>().unwrap(), status);
    }
    round_trip(&JobResult::success(json!({"ok": true})));
    round_trip(&Backoff::fixed(Duration::from_secs(2)));
    assert_eq!(
        serde_json::to_value(JobPriority::High).unwrap(),
        json!("high")
    );
    assert_eq!(
        serde_json::to_value(JobStatus::Completed).unwrap(),
        json!("completed")
    );
}

#[test]
fn minimal_json_gets_the_defaults() {
    let id = JobId::new();
    let job: Job = serde_json::from_value(json!({
        "id": id.to_string(),
        "name": "noop",
        "created_at": "2026-01-01T00:00:00Z",
    }))
    .unwrap();
    assert_eq!(job.id, id);
    assert_eq!(job.priority, JobPriority::Normal);
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.max_retries, 3);
    assert_eq!(job.args, serde_json::Value::Null);
}

/// A stored record's `queue` is its named queue, kept on a round trip; a
/// job in the default queue is written without the key (so records stored
/// before named queues load into the default queue).
#[test]
fn a_stored_record_keeps_its_queue_and_the_default_queue_is_not_written() {
    let id = JobId::new();
    let stored = json!({
        "id": id.to_string(),
        "name": "send_email",
        "args": {"to": "a@example.com"},
        "priority": "high",
        "queue": "x",
        "status": "retrying",
        "attempts": 2,
        "max_retries": 5,
        "timeout": 30000,
        "created_at": "2026-01-01T00:00:00Z",
        "last_error": "smtp timeout",
        "tags": ["welcome"],
    });
    let job: Job = serde_json::from_value(stored).unwrap();
    assert_eq!(job.id, id);
    assert_eq!(job.name, "send_email");
    assert_eq!(job.args, json!({"to": "a@example.com"}));
    assert_eq!(job.priority, JobPriority::High);
    assert_eq!(job.status, JobStatus::Retrying);
    assert_eq!(job.attempts, 2);
    assert_eq!(job.max_retries, 5);
    assert_eq!(job.timeout, Some(Duration::from_secs(30)));
    assert_eq!(job.last_error.as_deref(), Some("smtp timeout"));
    assert_eq!(job.tags, ["welcome"]);

    assert_eq!(job.queue, "x");
    let written = serde_json::to_value(&job).unwrap();
    assert_eq!(written["queue"], "x");
    let default = serde_json::to_value(Job::new("send_email", json!({}))).unwrap();
    assert!(default.get("queue").is_none(), "{default}");
    assert_eq!(serde_json::from_value::<Job>(written).unwrap(), job);
}

#[test]
fn defaults_are_three_retries_and_exponential_backoff() {
    let job = Job::new("x", json!({}));
    assert_eq!(job.max_retries, 3);
    assert_eq!(job.priority, JobPriority::Normal);
    let backoff = job.effective_backoff();
    assert_eq!(backoff.base, Duration::from_secs(1));
    assert_eq!(backoff.factor, 2.0);
    assert!(backoff.jitter);
    for attempt in 1..=5 {
        let delay = backoff.delay(attempt).as_secs_f64();
        let base = 2f64.powi(attempt as i32 - 1);
        assert!(
            delay >= base && delay <= base * 1.25,
            "attempt {attempt}: {delay}"
        );
    }
}

#[test]
fn priorities_order_by_urgency() {
    assert!(JobPriority::Critical > JobPriority::High);
    assert!(JobPriority::High > JobPriority::Normal);
    assert!(JobPriority::Normal > JobPriority::Low);
    assert_eq!("HIGH".parse::<JobPriority>().unwrap(), JobPriority::High);
    let err = "urgent".parse::<JobPriority>().unwrap_err().to_string();
    assert!(err.contains("`low`, `normal`, `high`, `critical`"), "{err}");
}

#[test]
fn backoff_is_capped() {
    let backoff = Backoff::exponential(Duration::from_secs(1))
        .max_delay(Duration::from_secs(10))
        .without_jitter();
    assert_eq!(backoff.delay(1), Duration::from_secs(1));
    assert_eq!(backoff.delay(4), Duration::from_secs(8));
    assert_eq!(backoff.delay(5), Duration::from_secs(10));
    assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(10));
}

#[test]
fn job_errors_say_whether_to_retry() {
    #[derive(Debug)]
    struct SmtpDown;
    impl std::fmt::Display for SmtpDown {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("smtp server down")
        }
    }
    impl std::error::Error for SmtpDown {}

    fn send() -> Result<(), JobError> {
        Err(SmtpDown)?
    }
    let err = send().unwrap_err();
    assert_eq!(err.retry(), Retry::Backoff);
    assert_eq!(err.error_type(), Some("SmtpDown"));
    let result = JobResult::failure(err);
    assert!(!result.success && result.retryable);
    assert_eq!(result.error.as_deref(), Some("smtp server down"));
    assert_eq!(result.error_type.as_deref(), Some("SmtpDown"));

    let result = JobResult::failure(JobError::permanent("bad address"));
    assert!(!result.retryable);

    let result: JobResult = Ok::<_, JobError>(json!({"sent": 1})).into();
    assert!(result.success);
    assert_eq!(result.result, Some(json!({"sent": 1})));
}

#[test]
fn recurring_jobs_make_their_next_run() {
    let now = chrono::Utc::now();
    let job = Job::new("tick", json!({}))
        .scheduled_at(now)
        .every(Duration::from_secs(60));
    let next = job.next_occurrence(now).unwrap();
    assert_ne!(next.id, job.id);
    assert_eq!(next.scheduled_at, Some(now + chrono::Duration::seconds(60)));
    assert_eq!(next.status, JobStatus::Pending);
    assert_eq!(next.attempts, 0);
    // Long after: the next run is now, not a backlog of missed runs.
    let later = now + chrono::Duration::hours(5);
    assert_eq!(
        job.next_occurrence(later).unwrap().scheduled_at,
        Some(later)
    );
    assert!(Job::new("once", json!({})).next_occurrence(now).is_none());
}
