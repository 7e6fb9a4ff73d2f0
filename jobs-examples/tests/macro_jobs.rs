//! `#[job]` end to end: typed enqueue through the generated module, the
//! registry as the worker's dispatcher, injection of `JobContext` and
//! `Data<T>`, the attribute's defaults, and periodic registrations.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use jobs::prelude::*;
// `ScheduleSpec` is what the generated registration holds: generated code
// names it through `__private`, and so does this test of that code.
use jobs::__private::ScheduleSpec;
use jobs::{Backoff, DEFAULT_MAX_RETRIES, Error};
use jobs_examples::suite::Running;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What `send_email` returns.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct EmailSent {
    to: String,
    words: usize,
}

/// email job, with every key.
#[job(name = "send_email", priority = "high", retries = 3, timeout = "30s")]
pub async fn send_email(to: String, subject: String, body: String) -> Result<EmailSent, JobError> {
    if to.is_empty() {
        return Err(JobError::permanent("no recipient"));
    }
    Ok(EmailSent {
        to,
        words: subject.split_whitespace().count() + body.split_whitespace().count(),
    })
}

/// No keys at all: every default.
#[job]
async fn add(a: i64, b: i64) -> Result<i64, std::num::TryFromIntError> {
    i64::try_from(i128::from(a) + i128::from(b))
}

/// An `Option` parameter may be missing from the arguments.
#[job]
async fn greet(name: String, greeting: Option<String>) -> Result<String, JobError> {
    Ok(format!(
        "{}, {name}",
        greeting.as_deref().unwrap_or("Hello")
    ))
}

/// Fails its first attempt; reports the attempt it succeeded on.
#[job(retries = 2)]
async fn flaky(cx: JobContext, label: String) -> Result<String, JobError> {
    if cx.attempt() < 2 {
        return Err(JobError::retryable(format!(
            "attempt {} of {label} fails",
            cx.attempt()
        )));
    }
    Ok(format!(
        "{label} on attempt {} of job {}",
        cx.attempt(),
        cx.job_name()
    ))
}

/// Shared state for `count`.
#[derive(Default)]
pub struct Counter(AtomicU32);

/// Shared state nobody registers in `worker_without_secret`.
pub struct Secret(&'static str);

/// Returns nothing; takes shared state and a payload.
#[job(priority = "low")]
async fn count(counter: Data<Counter>, by: u32) {
    counter.0.fetch_add(by, Ordering::SeqCst);
}

/// Takes shared state only.
#[job]
async fn reveal(secret: Data<Secret>) -> Result<&'static str, JobError> {
    Ok(secret.0)
}

/// Returns a `JobResult` as is.
#[job(name = "raw-result", priority = "critical")]
async fn raw(ok: bool) -> JobResult {
    if ok {
        JobResult::success(json!({"raw": true}))
    } else {
        JobResult::failure(JobError::retryable("raw failure").with_type("Raw"))
    }
}

mod nested {
    use jobs::prelude::*;

    /// Visible to the crate only; so are its generated items.
    #[job(timeout = "250ms", retries = 0)]
    pub(crate) async fn crate_visible(n: u8) -> Result<u8, JobError> {
        Ok(n.saturating_mul(2))
    }
}

/// Heartbeat state, kept apart from `Counter` because the scheduler may
/// run `heartbeat` whenever a worker is up.
#[derive(Default)]
pub struct Beats(AtomicU32);

/// A periodic job on a fixed interval.
#[job(every = "1h")]
async fn heartbeat(beats: Data<Beats>) {
    beats.0.fetch_add(1, Ordering::SeqCst);
}

/// A periodic job on a cron schedule in a time zone.
#[job(cron = "0 30 2 * * *", timezone = "Europe/Berlin", priority = "low")]
async fn nightly(cx: JobContext) -> Result<String, JobError> {
    Ok(cx.job_name().to_owned())
}

/// A worker with every piece of shared state this binary's jobs take.
fn worker() -> (BackgroundJobWorker, Data<Counter>) {
    let counter = std::sync::Arc::new(Counter::default());
    let worker = BackgroundJobWorker::builder()
        .queue(MemoryJobQueue::new())
        .data_arc(std::sync::Arc::clone(&counter))
        .data(Secret("s3cret"))
        .data(Beats::default())
        .build()
        .expect("worker");
    (worker, Data::from_arc(counter))
}

async fn run_one(job: Job) -> Job {
    let (worker, _) = worker();
    let id = worker.submit_job(job).await.unwrap().id;
    let running = Running::start(worker.clone());
    let done = worker.wait_for(id).await.unwrap();
    running.stop().await;
    done
}

#[tokio::test]
async fn typed_enqueue_runs_and_stores_the_result() {
    let (worker, _) = worker();
    let running = Running::start(worker.clone());
    let id = send_email::enqueue(
        &worker,
        "ada@example.com".into(),
        "Welcome aboard".into(),
        "Glad to have you".into(),
    )
    .await
    .unwrap();
    let done = worker.wait_for(id).await.unwrap();
    running.stop().await;

    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.last_error);
    assert_eq!(done.name, "send_email");
    assert_eq!(
        done.args,
        json!({"to": "ada@example.com", "subject": "Welcome aboard", "body": "Glad to have you"})
    );
    let result = done.result.expect("result stored");
    assert!(result.success);
    assert_eq!(
        result.result,
        Some(json!({"to": "ada@example.com", "words": 6}))
    );
}

#[tokio::test]
async fn enqueue_onto_a_queue_and_the_generated_names() {
    let queue = MemoryJobQueue::new();
    let id = add::enqueue(&queue, 2, 3).await.unwrap();
    let stored = queue.get(id).await.unwrap().expect("stored");
    assert_eq!(stored.name, add::NAME);
    assert_eq!(add::NAME, "add");
    assert_eq!(send_email::NAME, "send_email");
    assert_eq!(raw::NAME, "raw-result");
    assert_eq!(stored.args, json!({"a": 2, "b": 3}));

    let args: add::Args = stored.args_as().unwrap();
    assert_eq!((args.a, args.b), (2, 3));
    let job = add::Args { a: 1, b: 1 }.into_job();
    assert_eq!(job.args, json!({"a": 1, "b": 1}));
}

#[tokio::test]
async fn a_handler_is_an_ordinary_function_in_unit_tests() {
    let sent = send_email("bo@example.com".into(), "a b".into(), "c".into())
        .await
        .unwrap();
    assert_eq!(
        sent,
        EmailSent {
            to: "bo@example.com".into(),
            words: 3
        }
    );
    let error = send_email(String::new(), String::new(), String::new())
        .await
        .unwrap_err();
    assert!(!error.is_retryable());
    assert_eq!(add(i64::MAX, 1).await.ok(), None);
    assert_eq!(nested::crate_visible(21).await.unwrap(), 42);
}

#[tokio::test]
async fn the_context_reports_the_attempt_on_retry() {
    // The context is injected, not part of the payload: `job` takes `label` only.
    let job = flaky::job("sync".into()).backoff(Backoff::fixed(Duration::from_millis(1)));
    assert_eq!(job.args, json!({"label": "sync"}));
    assert_eq!(job.max_retries, 2);
    let done = run_one(job).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.last_error);
    assert_eq!(done.attempts, 2);
    assert_eq!(
        done.result.unwrap().result,
        Some(json!("sync on attempt 2 of job flaky"))
    );
}

#[tokio::test]
async fn shared_state_is_injected() {
    let (worker, counter) = worker();
    let running = Running::start(worker.clone());
    let first = count::enqueue(&worker, 2).await.unwrap();
    let second = count::enqueue(&worker, 5).await.unwrap();
    let secret = reveal::enqueue(&worker).await.unwrap();
    for id in [first, second] {
        let done = worker.wait_for(id).await.unwrap();
        assert_eq!(done.status, JobStatus::Completed, "{:?}", done.last_error);
        // `()` is a success without a value.
        assert_eq!(done.result.unwrap().result, None);
    }
    let revealed = worker.wait_for(secret).await.unwrap();
    running.stop().await;
    assert_eq!(counter.0.load(Ordering::SeqCst), 7);
    assert_eq!(revealed.result.unwrap().result, Some(json!("s3cret")));
}

#[tokio::test]
async fn missing_shared_state_fails_the_job_naming_the_type() {
    let registry = Registry::global().unwrap();
    let result = registry.process(&reveal::job()).await;
    assert!(!result.success);
    assert!(!result.retryable);
    assert_eq!(result.error_type.as_deref(), Some("MissingData"));
    let error = result.error.unwrap();
    assert!(
        error.contains("job `reveal` takes `Data<macro_jobs::Secret>`"),
        "{error}"
    );
    assert!(error.contains(".data(value)"), "{error}");
}

#[tokio::test]
async fn a_worker_without_the_shared_state_refuses_to_start() {
    let worker = BackgroundJobWorker::builder()
        .queue(MemoryJobQueue::new())
        .data(Counter::default())
        .data(Beats::default())
        .build()
        .unwrap();
    let error = worker.run().await.unwrap_err();
    assert!(matches!(error, Error::MissingData(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("`macro_jobs::Secret` (needed by `reveal`)"),
        "{message}"
    );
    assert!(!message.contains("Counter"), "{message}");
    assert_eq!(worker.state(), jobs::WorkerState::Stopped);
}

/// Shared state only the `Bookkeeping` fallback needs.
pub struct Ledger;

/// A class-based processor that checks for its own shared state.
struct Bookkeeping;

impl JobProcessor for Bookkeeping {
    async fn process(&self, _job: &Job) -> JobResult {
        JobResult::success(json!(null))
    }

    fn check_data(&self, data: &jobs::DataMap) -> Result<(), Error> {
        if data.contains(std::any::TypeId::of::<Ledger>()) {
            Ok(())
        } else {
            Err(Error::MissingData(
                "the bookkeeping processor needs a `Ledger`; add it with `.data(Ledger)`".into(),
            ))
        }
    }
}

#[tokio::test]
async fn a_worker_whose_fallback_lacks_its_shared_state_refuses_to_start() {
    let worker = |ledger: bool, secret: bool| {
        let mut builder = BackgroundJobWorker::builder()
            .queue(MemoryJobQueue::new())
            .processor(Registry::global().unwrap().fallback(Bookkeeping))
            .data(Counter::default())
            .data(Beats::default());
        if ledger {
            builder = builder.data(Ledger);
        }
        if secret {
            builder = builder.data(Secret("s3cret"));
        }
        builder.build().unwrap()
    };

    // The functions have their state, the fallback not: its error, as it is.
    // `run` returns at once when the worker refuses to start; the timeout
    // only turns a worker that started by mistake into a failure.
    let refused = |worker: BackgroundJobWorker| async move {
        tokio::time::timeout(Duration::from_secs(10), worker.run())
            .await
            .expect("the worker should refuse to start, not run")
            .unwrap_err()
    };
    let without_ledger = worker(false, true);
    let error = refused(without_ledger.clone()).await;
    assert!(matches!(error, Error::MissingData(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the bookkeeping processor needs a `Ledger`; add it with `.data(Ledger)`"
    );
    assert_eq!(without_ledger.state(), jobs::WorkerState::Stopped);

    // Both lack something: one error names both.
    let message = refused(worker(false, false)).await.to_string();
    assert!(
        message.contains("`macro_jobs::Secret` (needed by `reveal`)")
            && message.contains("the bookkeeping processor needs a `Ledger`"),
        "{message}"
    );

    // Everything registered: it starts and runs jobs.
    let complete = worker(true, true);
    let id = add::enqueue(&complete, 1, 2).await.unwrap();
    let running = Running::start(complete.clone());
    let done = complete.wait_for(id).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.last_error);
    running.stop().await;
}

#[tokio::test]
async fn a_payload_that_does_not_fit_fails_naming_job_and_field() {
    let wrong_type = run_one(Job::new(
        "send_email",
        json!({"to": 5, "subject": "s", "body": "b"}),
    ))
    .await;
    assert_eq!(wrong_type.status, JobStatus::Failed);
    assert_eq!(wrong_type.attempts, 1, "a bad payload is not retried");
    assert_eq!(
        wrong_type.last_error.as_deref(),
        Some(
            "invalid arguments for job `send_email`: field `to`: invalid type: integer `5`, expected a string"
        )
    );
    assert_eq!(
        wrong_type.result.unwrap().error_type.as_deref(),
        Some("InvalidArguments")
    );

    let missing = run_one(Job::new("send_email", json!({"subject": "s", "body": "b"}))).await;
    assert_eq!(missing.status, JobStatus::Failed);
    assert_eq!(
        missing.last_error.as_deref(),
        Some("invalid arguments for job `send_email`: missing field `to`")
    );

    let overflow = run_one(Job::new("add", json!({"a": 1, "b": 1e40}))).await;
    assert_eq!(
        overflow.last_error.as_deref(),
        Some(
            "invalid arguments for job `add`: field `b`: invalid type: floating point `1e+40`, expected i64"
        )
    );
}

#[tokio::test]
async fn an_unknown_name_fails_permanently() {
    let done = run_one(Job::new("no_such_job", json!({}))).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.attempts, 1);
    assert_eq!(
        done.last_error.as_deref(),
        Some("Unknown job type: no_such_job")
    );
}

#[tokio::test]
async fn return_forms_become_results() {
    let ok = run_one(raw::job(true)).await;
    assert_eq!(ok.status, JobStatus::Completed);
    assert_eq!(ok.result.unwrap().result, Some(json!({"raw": true})));

    let failed = run_one(raw::job(false).max_retries(0)).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("raw failure"));
    assert_eq!(failed.result.unwrap().error_type.as_deref(), Some("Raw"));

    let permanent = run_one(send_email::job(String::new(), "s".into(), "b".into())).await;
    assert_eq!(permanent.status, JobStatus::Failed);
    assert_eq!(permanent.attempts, 1, "a permanent error is not retried");
    assert_eq!(permanent.last_error.as_deref(), Some("no recipient"));

    // An error type of one's own converts with `Into<JobError>`.
    let overflow = run_one(add::job(i64::MAX, 1).max_retries(0)).await;
    assert_eq!(overflow.status, JobStatus::Failed);
    assert_eq!(
        overflow.result.unwrap().error_type.as_deref(),
        Some("TryFromIntError")
    );
}

#[test]
fn the_attribute_sets_the_defaults_of_job() {
    let job = send_email::job("a".into(), "b".into(), "c".into());
    assert_eq!(job.name, "send_email");
    assert_eq!(job.priority, JobPriority::High);
    assert_eq!(job.max_retries, 3);
    assert_eq!(job.timeout, Some(Duration::from_secs(30)));

    let plain = add::job(1, 2);
    let reference = Job::new("add", json!({"a": 1, "b": 2}));
    assert_eq!(plain.name, "add");
    assert_eq!(plain.priority, JobPriority::Normal);
    assert_eq!(plain.max_retries, DEFAULT_MAX_RETRIES);
    assert_eq!(plain.timeout, reference.timeout);

    let nested = nested::crate_visible::job(4);
    assert_eq!(nested.timeout, Some(Duration::from_millis(250)));
    assert_eq!(nested.max_retries, 0);
    assert_eq!(count::job(1).priority, JobPriority::Low);
    assert_eq!(raw::job(true).priority, JobPriority::Critical);
    // The builder still overrides them.
    assert_eq!(
        send_email::job("a".into(), "b".into(), "c".into())
            .priority(JobPriority::Low)
            .priority,
        JobPriority::Low
    );
}

#[test]
fn the_registry_holds_every_job_of_the_program() {
    let registry = Registry::new().unwrap();
    assert_eq!(
        registry.names(),
        [
            "add",
            "count",
            "crate_visible",
            "flaky",
            "greet",
            "heartbeat",
            "nightly",
            "raw-result",
            "reveal",
            "send_email"
        ]
    );
    let email = registry.get("send_email").unwrap();
    assert_eq!(email.function, "macro_jobs::send_email");
    assert!(email.file.ends_with("macro_jobs.rs"), "{}", email.file);
    assert_eq!(email.data.len(), 0);
    let reveal = registry.get("reveal").unwrap();
    assert_eq!(reveal.data.len(), 1);
    assert_eq!((reveal.data[0].type_name)(), "macro_jobs::Secret");
    assert_eq!(
        nested::crate_visible::registration().function,
        "macro_jobs::nested::crate_visible"
    );
}

#[test]
fn periodic_jobs_are_registered_with_their_schedules() {
    let registry = Registry::new().unwrap();
    let nightly = registry.get("nightly").unwrap();
    assert!(matches!(
        nightly.schedule,
        Some(ScheduleSpec::Cron {
            expression: "0 30 2 * * *",
            timezone: Some("Europe/Berlin")
        })
    ));
    assert!(matches!(
        registry.get("heartbeat").unwrap().schedule,
        Some(ScheduleSpec::Every(d)) if d == Duration::from_secs(3600)
    ));
    assert!(registry.get("add").unwrap().schedule.is_none());

    let tasks = registry.periodic_tasks().unwrap();
    let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["heartbeat", "nightly"]);
    let nightly = &tasks[1];
    assert_eq!(nightly.schedule.expression(), Some("0 30 2 * * *"));
    assert_eq!(nightly.schedule.timezone(), Some("Europe/Berlin"));
    assert_eq!(nightly.job.name, "nightly");
    assert_eq!(nightly.job.priority, JobPriority::Low);
    assert_eq!(
        tasks[0].schedule.interval(),
        Some(Duration::from_secs(3600))
    );
}

#[tokio::test]
async fn a_periodic_job_runs_with_no_arguments() {
    let done = run_one(nightly::job()).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.last_error);
    assert_eq!(done.result.unwrap().result, Some(json!("nightly")));
    // As the scheduler enqueues it: `Value::Null` arguments.
    let done = run_one(Job::new("nightly", serde_json::Value::Null)).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.last_error);
}

#[tokio::test]
async fn an_optional_parameter_may_be_missing() {
    let done = run_one(Job::new("greet", json!({"name": "Ada"}))).await;
    assert_eq!(done.result.unwrap().result, Some(json!("Hello, Ada")));
    let done = run_one(greet::job("Bo".into(), Some("Hi".into()))).await;
    assert_eq!(done.result.unwrap().result, Some(json!("Hi, Bo")));
    // A required one may not.
    let done = run_one(Job::new("greet", json!({"greeting": "Hi"}))).await;
    assert_eq!(
        done.last_error.as_deref(),
        Some("invalid arguments for job `greet`: missing field `name`")
    );
}

/// A class-based processor for the names no `#[job]` function has.
struct Legacy;

impl JobProcessor for Legacy {
    async fn process(&self, job: &Job) -> JobResult {
        match &*job.name {
            "legacy_report" => JobResult::success(json!({"legacy": job.args["n"]})),
            other => JobResult::failure(JobError::permanent(format!("Legacy cannot run {other}"))),
        }
    }
}

#[tokio::test]
async fn functions_and_an_explicit_processor_combine() {
    let worker = BackgroundJobWorker::builder()
        .queue(MemoryJobQueue::new())
        .processor(Registry::global().unwrap().fallback(Legacy))
        .data(Counter::default())
        .data(Secret("s3cret"))
        .data(Beats::default())
        .build()
        .unwrap();
    let by_function = add::enqueue(&worker, 2, 3).await.unwrap();
    let by_processor = worker
        .submit_job(Job::new("legacy_report", json!({"n": 7})))
        .await
        .unwrap()
        .id;
    let neither = worker
        .submit_job(Job::new("nobody", json!({})))
        .await
        .unwrap()
        .id;
    let running = Running::start(worker.clone());
    let result = |job: Job| job.result.and_then(|r| r.result);
    assert_eq!(
        result(worker.wait_for(by_function).await.unwrap()),
        Some(json!(5))
    );
    assert_eq!(
        result(worker.wait_for(by_processor).await.unwrap()),
        Some(json!({"legacy": 7}))
    );
    let neither = worker.wait_for(neither).await.unwrap();
    assert_eq!(neither.status, JobStatus::Failed);
    assert_eq!(
        neither.last_error.as_deref(),
        Some("Legacy cannot run nobody")
    );
    running.stop().await;
}
