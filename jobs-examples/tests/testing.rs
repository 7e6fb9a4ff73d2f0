//! `jobs::testing`: the assertions on what was enqueued (and their failure
//! messages), `perform_job` against the worker's own behaviour, `drain` on
//! virtual time, the inline target, named queues, unique and periodic jobs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use jobs::prelude::*;
use jobs::testing::{self, Inline, drain, perform_job, trigger};
use jobs::{Clock, Error, assert_enqueued, refute_enqueued};
use serde_json::json;

#[job(queue = "mailers", priority = "high", retries = 2)]
async fn send_email(to: String, subject: String, copies: u32) -> Result<(), JobError> {
    if to.is_empty() {
        return Err(JobError::permanent("no recipient"));
    }
    let _ = (subject, copies);
    Ok(())
}

#[job]
async fn cleanup(r#type: String) {
    let _ = r#type;
}

/// The virtual-time queue most tests use.
fn paused_queue() -> MemoryJobQueue {
    MemoryJobQueue::builder().clock(Clock::tokio()).build()
}

/// The panic message of a future that should panic.
async fn panic_of<F>(future: F) -> String
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let panic = tokio::spawn(future)
        .await
        .expect_err("the assertion should have failed")
        .into_panic();
    match panic.downcast::<String>() {
        Ok(message) => *message,
        Err(panic) => panic
            .downcast::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    }
}

#[tokio::test]
async fn assertions_match_typed_fields_partly_or_fully_and_options() {
    let queue = MemoryJobQueue::new();
    refute_enqueued!(queue, send_email);
    send_email::enqueue(&queue, "a@x.com".into(), "Hi".into(), 2)
        .await
        .unwrap();
    send_email::enqueue(&queue, "b@x.com".into(), "Hi".into(), 1)
        .await
        .unwrap();
    cleanup::enqueue(&queue, "tmp".into()).await.unwrap();

    assert_enqueued!(queue, send_email);
    assert_enqueued!(queue, send_email, to = "a@x.com");
    assert_enqueued!(
        queue,
        send_email,
        to = "a@x.com",
        subject = "Hi",
        copies = 2
    );
    assert_enqueued!(queue, send_email, subject = "Hi"; count = 2);
    assert_enqueued!(queue, send_email, to = String::from("b@x.com"); queue = "mailers", priority = JobPriority::High, count = 1);
    assert_enqueued!(queue, self::cleanup, r#type = "tmp");
    refute_enqueued!(queue, send_email, to = "c@x.com");
    refute_enqueued!(queue, send_email, to = "a@x.com", copies = 1);
    refute_enqueued!(queue, send_email; queue = "default");

    let all = testing::enqueued::<send_email::Args>(&queue).await;
    let recipients: Vec<&str> = all.iter().map(|a| a.to.as_str()).collect();
    assert_eq!(recipients, ["a@x.com", "b@x.com"]);
    assert_eq!(testing::enqueued::<cleanup::Args>(&queue).await.len(), 1);

    // Ran jobs no longer wait.
    assert_eq!(drain(&queue).await.unwrap().completed, 3);
    refute_enqueued!(queue, send_email);
    assert!(
        testing::enqueued::<send_email::Args>(&queue)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_failed_assertion_shows_what_was_enqueued_and_what_differs() {
    let queue = MemoryJobQueue::new();
    send_email::enqueue(&queue, "b@x.com".into(), "Hi".into(), 1)
        .await
        .unwrap();
    cleanup::enqueue(&queue, "tmp".into()).await.unwrap();

    let q = queue.clone();
    let message = panic_of(async move {
        assert_enqueued!(q, send_email, to = "a@x.com", copies = 1);
    })
    .await;
    assert!(
        message.starts_with(
            "assert_enqueued!(q, send_email, to = \"a@x.com\", copies = 1) failed at jobs-examples/tests/testing.rs:"
        ),
        "{message}"
    );
    assert!(message.contains(": no waiting job matches\n"), "{message}");
    assert!(
        message.contains("  expected: send_email { to: \"a@x.com\", copies: 1 }\n"),
        "{message}"
    );
    assert!(message.contains("  waiting (2):\n"), "{message}");
    assert!(
        message.contains(
            "  - send_email {\"copies\":1,\"subject\":\"Hi\",\"to\":\"b@x.com\"} (queue \"mailers\", priority High, ready, pending, attempts 0)\n      to: expected \"a@x.com\", found \"b@x.com\"\n"
        ),
        "{message}"
    );
    // `copies` matched, so it is not listed as a difference.
    assert!(!message.contains("copies: expected"), "{message}");
    assert!(
        message.contains("  - cleanup {\"type\":\"tmp\"} (queue \"default\""),
        "{message}"
    );

    // An option that differs is named too.
    let q = queue.clone();
    let message = panic_of(async move {
        assert_enqueued!(q, send_email, to = "b@x.com"; queue = "default");
    })
    .await;
    assert!(
        message.contains("queue: expected \"default\", found \"mailers\""),
        "{message}"
    );

    // A count that is off.
    let q = queue.clone();
    let message = panic_of(async move {
        assert_enqueued!(q, send_email; count = 2);
    })
    .await;
    assert!(
        message.contains("expected 2 waiting job(s) matching, found 1"),
        "{message}"
    );

    // An empty queue says so.
    let empty = MemoryJobQueue::new();
    let message = panic_of(async move {
        assert_enqueued!(empty, cleanup);
    })
    .await;
    assert!(
        message.contains("waiting: none (no job is pending or retrying)"),
        "{message}"
    );
}

#[tokio::test]
async fn a_failed_refutation_shows_the_jobs_that_match() {
    let queue = MemoryJobQueue::new();
    send_email::enqueue(&queue, "a@x.com".into(), "Hi".into(), 1)
        .await
        .unwrap();
    let message = panic_of(async move {
        refute_enqueued!(queue, send_email, to = "a@x.com");
    })
    .await;
    assert!(
        message.starts_with("refute_enqueued!(queue, send_email, to = \"a@x.com\") failed at "),
        "{message}"
    );
    assert!(
        message.contains("1 waiting job(s) match, expected none"),
        "{message}"
    );
    assert!(message.contains("  = send_email {"), "{message}");
}

#[tokio::test]
#[should_panic(expected = "no waiting job matches")]
async fn assert_enqueued_panics_when_nothing_matches() {
    let queue = MemoryJobQueue::new();
    assert_enqueued!(queue, cleanup, r#type = "tmp");
}

#[tokio::test]
async fn arguments_that_do_not_decode_are_reported() {
    let queue = MemoryJobQueue::new();
    queue
        .enqueue(Job::new(send_email::NAME, json!({"to": 5})))
        .await
        .unwrap();
    let q = queue.clone();
    let message = panic_of(async move {
        assert_enqueued!(q, send_email, to = "a@x.com");
    })
    .await;
    assert!(
        message.contains("its arguments do not decode: invalid arguments for job `send_email`: field `to`: invalid type: integer `5`, expected a string"),
        "{message}"
    );
    let message = panic_of(async move {
        testing::enqueued::<send_email::Args>(&queue).await;
    })
    .await;
    assert!(message.contains("do not decode"), "{message}");
}

// --- perform_job ------------------------------------------------------------

struct Greeting(String);

#[job]
async fn greet(name: String, greeting: Data<Greeting>) -> Result<String, JobError> {
    Ok(format!("{}, {name}", greeting.0))
}

#[job(timeout = "5s")]
async fn slow(seconds: u64) {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
}

#[job]
async fn explode() {
    panic!("boom");
}

#[job]
async fn later(cx: JobContext) -> Result<u32, JobError> {
    if cx.attempt() == 1 {
        Err(JobError::snooze(Duration::from_secs(30)))
    } else {
        Ok(cx.attempt())
    }
}

#[tokio::test]
async fn perform_job_runs_one_attempt_as_the_worker_does() {
    let ok = perform_job(send_email::job("a@x.com".into(), "Hi".into(), 1)).await;
    assert!(ok.success, "{ok:?}");
    assert!(ok.execution_time.is_some());

    let permanent = perform_job(send_email::job(String::new(), "Hi".into(), 1)).await;
    assert!(!permanent.success && !permanent.retryable);
    assert_eq!(permanent.error.as_deref(), Some("no recipient"));

    let greeted = perform_job(greet::job("Ada".into()))
        .data(Greeting("Hello".into()))
        .await;
    assert_eq!(greeted.result, Some(json!("Hello, Ada")));

    let missing = perform_job(greet::job("Ada".into())).await;
    assert_eq!(missing.error_type.as_deref(), Some("MissingData"));
    assert!(!missing.retryable);

    let panicked = perform_job(explode::job()).await;
    assert_eq!(panicked.error_type.as_deref(), Some("Panic"));
    assert_eq!(panicked.error.as_deref(), Some("job panicked: boom"));
    assert!(panicked.retryable);

    let unknown = perform_job(Job::new("no_such_job", json!({}))).await;
    assert_eq!(
        unknown.error.as_deref(),
        Some("Unknown job type: no_such_job")
    );

    // What the worker would do next.
    match perform_job(send_email::job(String::new(), "Hi".into(), 1))
        .outcome()
        .await
    {
        jobs::Outcome::Failed(result) => assert_eq!(result.error.as_deref(), Some("no recipient")),
        other => panic!("{other:?}"),
    }
    match perform_job(explode::job()).outcome().await {
        jobs::Outcome::Retry { result, .. } => {
            assert_eq!(result.error_type.as_deref(), Some("Panic"))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        perform_job(later::job()).outcome().await,
        jobs::Outcome::Snoozed { .. }
    ));
    let snoozed = perform_job(later::job()).await;
    assert_eq!(snoozed.snooze, Some(Duration::from_secs(30)));
    let second = perform_job(later::job().tap_attempts(1)).await;
    assert_eq!(second.result, Some(json!(2)));
}

/// Sets a job's attempts, as if it ran before.
trait TapAttempts {
    fn tap_attempts(self, attempts: u32) -> Self;
}

impl TapAttempts for Job {
    fn tap_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }
}

#[tokio::test(start_paused = true)]
async fn perform_job_enforces_the_timeout_on_virtual_time() {
    let wall = std::time::Instant::now();
    let timed_out = perform_job(slow::job(60)).await;
    assert_eq!(timed_out.error_type.as_deref(), Some("Timeout"));
    assert_eq!(timed_out.error.as_deref(), Some("job timed out after 5s"));
    assert!(perform_job(slow::job(1)).await.success);
    assert!(wall.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn an_undecodable_payload_fails_as_it_does_in_a_worker() {
    let bad = || Job::new(send_email::NAME, json!({"to": "a@x.com", "copies": "two"}));
    let performed = perform_job(bad()).await;

    let worker = BackgroundJobWorker::builder()
        .processor(Registry::from_registrations([send_email::registration()]).unwrap())
        .build()
        .unwrap();
    let id = worker.submit_job(bad()).await.unwrap().id;
    let running = tokio::spawn(worker.clone().run_owned());
    let done = tokio::time::timeout(Duration::from_secs(10), worker.wait_for(id))
        .await
        .unwrap()
        .unwrap();
    worker.stop().await;
    running.await.unwrap().unwrap();

    let by_worker = done.result.unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(performed.error, by_worker.error);
    assert_eq!(performed.error_type, by_worker.error_type);
    assert_eq!(performed.retryable, by_worker.retryable);
    assert!(
        performed
            .error
            .as_deref()
            .unwrap()
            .starts_with("invalid arguments for job `send_email`: field `"),
        "{performed:?}"
    );
}

// --- drain -----------------------------------------------------------------

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

/// Fails twice, then succeeds; backoff 10 s, 20 s.
#[job(retries = 5)]
async fn flaky_sync() -> Result<u32, JobError> {
    let n = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if n <= 2 {
        return Err(JobError::retryable(format!("attempt {n} failed")));
    }
    Ok(n)
}

#[tokio::test(start_paused = true)]
async fn fails_twice_then_succeeds_on_virtual_time() {
    let queue = paused_queue();
    let job = flaky_sync::job()
        .backoff(jobs::Backoff::exponential(Duration::from_secs(10)).without_jitter());
    let id = queue.enqueue(job).await.unwrap();
    let wall = std::time::Instant::now();

    // Without scheduled jobs, the retry waits.
    let first = drain(&queue).await.unwrap();
    assert_eq!((first.retried, first.completed), (1, 0));
    let waiting = queue.get(id).await.unwrap().unwrap();
    assert_eq!(waiting.status, JobStatus::Retrying);
    let start = waiting.started_at.unwrap();
    let retry_at = start + chrono::Duration::seconds(10);
    assert_eq!(waiting.scheduled_at, Some(retry_at));
    assert_enqueued!(queue, flaky_sync; scheduled_at = retry_at);
    assert_enqueued!(queue, flaky_sync; scheduled_between = (start, retry_at));
    refute_enqueued!(queue, flaky_sync; scheduled_between = (start, retry_at - chrono::Duration::seconds(1)));
    let q = queue.clone();
    let message = panic_of(async move {
        assert_enqueued!(q, flaky_sync; scheduled_between = (start, start + chrono::Duration::seconds(1)));
    })
    .await;
    assert!(
        message.contains("scheduled_between: expected from "),
        "{message}"
    );

    let rest = drain(&queue).with_scheduled(true).await.unwrap();
    assert_eq!((rest.retried, rest.completed, rest.failed), (1, 1, 0));
    let done = queue.get(id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.attempts, 3);
    assert_eq!(done.result.unwrap().result, Some(json!(3)));
    // 10 s, then 20 s of backoff, on the virtual clock.
    let elapsed = done.completed_at.unwrap() - start;
    assert!(
        elapsed >= chrono::Duration::seconds(30) && elapsed < chrono::Duration::seconds(31),
        "{elapsed}"
    );
    assert!(
        wall.elapsed() < Duration::from_secs(5),
        "{:?}",
        wall.elapsed()
    );
}

#[tokio::test]
async fn a_drain_that_would_move_the_system_clock_is_refused() {
    let queue = MemoryJobQueue::new();
    cleanup::enqueue(&queue, "x".into()).await.unwrap();
    let err = drain(&queue).with_scheduled(true).await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("Clock::tokio()")),
        "{err}"
    );
    // Nothing ran, nothing was lost.
    assert_enqueued!(queue, cleanup, r#type = "x");
}

#[tokio::test(start_paused = true)]
async fn scheduled_jobs_run_up_to_the_horizon() {
    let queue = paused_queue();
    let start = Clock::tokio().now();
    let hours = |h: i64| start + chrono::Duration::hours(h);
    let soon = queue
        .enqueue(cleanup::job("soon".into()).scheduled_at(hours(1)))
        .await
        .unwrap();
    let far = queue
        .enqueue(cleanup::job("far".into()).scheduled_at(hours(72)))
        .await
        .unwrap();
    assert_eq!(drain(&queue).await.unwrap().attempts(), 0);

    let drained = drain(&queue).with_scheduled(true).await.unwrap();
    assert_eq!(drained.completed, 1);
    let done = queue.get(soon).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert!(done.started_at.unwrap() >= hours(1));
    assert!(done.started_at.unwrap() < hours(1) + chrono::Duration::seconds(1));
    assert_eq!(
        queue.get(far).await.unwrap().unwrap().status,
        JobStatus::Pending
    );
    assert_enqueued!(queue, cleanup, r#type = "far");

    let drained = drain(&queue)
        .with_scheduled(true)
        .horizon(Duration::from_secs(4 * 24 * 3600))
        .await
        .unwrap();
    assert_eq!(drained.completed, 1);
    refute_enqueued!(queue, cleanup);
}

#[job]
async fn fan_out(n: u32, queue: Data<MemoryJobQueue>) -> Result<(), JobError> {
    for i in 0..n {
        leaf::enqueue(&*queue, i)
            .await
            .map_err(JobError::from_error)?;
    }
    Ok(())
}

#[job]
async fn leaf(i: u32) {
    let _ = i;
}

#[tokio::test]
async fn jobs_enqueued_by_drained_jobs_run_only_when_asked() {
    let queue = MemoryJobQueue::new();
    fan_out::enqueue(&queue, 3).await.unwrap();
    let drained = drain(&queue).data(queue.clone()).await.unwrap();
    assert_eq!(drained.completed, 1);
    assert_enqueued!(queue, leaf; count = 3);
    assert_enqueued!(queue, leaf, i = 2);

    fan_out::enqueue(&queue, 2).await.unwrap();
    let drained = drain(&queue)
        .data(queue.clone())
        .with_new_jobs(true)
        .await
        .unwrap();
    // The three leaves left before, the fan-out, and its two leaves.
    assert_eq!(drained.completed, 6);
    refute_enqueued!(queue, leaf);
    assert_eq!(queue.counts().await.unwrap().completed, 7);
}

#[job]
async fn forever(queue: Data<MemoryJobQueue>) -> Result<(), JobError> {
    forever::enqueue(&*queue)
        .await
        .map_err(JobError::from_error)?;
    Ok(())
}

#[tokio::test]
async fn a_drain_that_never_ends_stops_with_an_error() {
    let queue = MemoryJobQueue::new();
    forever::enqueue(&queue).await.unwrap();
    let err = drain(&queue)
        .data(queue.clone())
        .with_new_jobs(true)
        .max_attempts(50)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("more than 50 attempts")),
        "{err}"
    );
    // The job that was still to run waits; nothing is left reserved.
    assert_eq!(queue.counts().await.unwrap().running, 0);
    assert_enqueued!(queue, forever; count = 1);
}

#[job(queue = "reports")]
async fn report(month: u32) {
    let _ = month;
}

#[tokio::test]
async fn drain_takes_only_the_named_queues_asked_for() {
    let queue = MemoryJobQueue::new();
    report::enqueue(&queue, 1).await.unwrap();
    cleanup::enqueue(&queue, "a".into()).await.unwrap();
    send_email::enqueue(&queue, "a@x.com".into(), "Hi".into(), 1)
        .await
        .unwrap();

    let drained = drain(&queue).queues(["reports"]).await.unwrap();
    assert_eq!(drained.completed, 1);
    refute_enqueued!(queue, report);
    assert_enqueued!(queue, cleanup);
    assert_enqueued!(queue, send_email; queue = "mailers");

    // Every queue by default.
    assert_eq!(drain(&queue).await.unwrap().completed, 2);
}

#[job(unique(for = "1h", states = [pending, running, retrying, completed]))]
async fn rebuild_index(index: String) {
    let _ = index;
}

#[tokio::test]
async fn unique_jobs_are_asserted_once() {
    let queue = MemoryJobQueue::new();
    let first = rebuild_index::enqueue(&queue, "users".into())
        .await
        .unwrap();
    let twin = rebuild_index::enqueue(&queue, "users".into())
        .await
        .unwrap();
    assert_eq!(first, twin);
    rebuild_index::enqueue(&queue, "orders".into())
        .await
        .unwrap();
    assert_enqueued!(queue, rebuild_index, index = "users"; count = 1);
    assert_enqueued!(queue, rebuild_index; count = 2);
    assert_eq!(drain(&queue).await.unwrap().completed, 2);

    // Inline: the twin of a job that ran within the hour neither stores nor runs.
    let inline = Inline::new();
    let ran = rebuild_index::enqueue(&inline, "users".into())
        .await
        .unwrap();
    let again = inline
        .push(rebuild_index::job("users".into()))
        .await
        .unwrap();
    assert!(again.conflict);
    assert_eq!(again.id, ran);
    assert_eq!(inline.queue().counts().await.unwrap().completed, 1);
}

static SNOOZES: AtomicU32 = AtomicU32::new(0);

#[job]
async fn snoozy(cx: JobContext) -> Result<u32, JobError> {
    if SNOOZES.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err(JobError::snooze(Duration::from_secs(60)));
    }
    Ok(cx.attempt())
}

#[tokio::test(start_paused = true)]
async fn snoozed_and_expired_jobs_are_counted() {
    let queue = paused_queue();
    let expired = cleanup::job("late".into()).expires_at(Clock::tokio().now());
    queue.enqueue(expired).await.unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    let id = snoozy::enqueue(&queue).await.unwrap();
    let first = drain(&queue).await.unwrap();
    assert_eq!((first.snoozed, first.expired, first.completed), (1, 1, 0));
    assert_enqueued!(queue, snoozy);
    let rest = drain(&queue).with_scheduled(true).await.unwrap();
    assert_eq!((rest.snoozed, rest.completed), (0, 1));
    // A snooze does not count as an attempt: the second run is attempt 1 again.
    let job = queue.get(id).await.unwrap().unwrap();
    assert_eq!(job.result.unwrap().result, Some(json!(1)));
}

// --- through a worker -----------------------------------------------------

#[job(queue = "billing")]
async fn charge(cents: u64, greeting: Data<Greeting>) -> Result<String, JobError> {
    Ok(format!("{} {cents}", greeting.0))
}

#[tokio::test]
async fn assertions_and_drain_work_through_a_worker() {
    let worker = BackgroundJobWorker::builder()
        .processor(
            Registry::from_registrations([charge::registration(), cleanup::registration()])
                .unwrap(),
        )
        .queues([("billing", 2)])
        .data(Greeting("charged".into()))
        .build()
        .unwrap();
    let id = charge::enqueue(&worker, 500).await.unwrap();
    cleanup::enqueue(&worker, "elsewhere".into()).await.unwrap();
    assert_enqueued!(worker, charge, cents = 500; queue = "billing");

    // The worker's queues, processor and shared state.
    let drained = drain(&worker).await.unwrap();
    assert_eq!(drained.completed, 1);
    let job = worker.get_job(id).await.unwrap().unwrap();
    assert_eq!(job.result.unwrap().result, Some(json!("charged 500")));
    // `cleanup` is in a queue this worker does not take.
    assert_enqueued!(worker, cleanup);
    assert_eq!(worker.state(), jobs::WorkerState::Idle);

    // One attempt with the worker's processor and shared state.
    let performed = perform_job(charge::job(7)).using(&worker).await;
    assert_eq!(performed.result, Some(json!("charged 7")));

    // A reference works as well as the value.
    let by_ref = &worker;
    assert_enqueued!(by_ref, cleanup, r#type = "elsewhere");

    // A running worker is not drained behind its back.
    let running = tokio::spawn(worker.clone().run_owned());
    tokio::time::timeout(Duration::from_secs(10), async {
        while worker.state() != jobs::WorkerState::Running {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let err = drain(&worker).await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("while the worker runs")),
        "{err}"
    );
    worker.stop().await;
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn drain_refuses_a_worker_whose_shared_state_is_missing() {
    let worker = BackgroundJobWorker::builder()
        .processor(Registry::from_registrations([charge::registration()]).unwrap())
        .build()
        .unwrap();
    charge::enqueue(&worker, 1).await.unwrap();
    let err = drain(&worker).await.unwrap_err();
    assert!(matches!(err, Error::MissingData(_)), "{err}");
    assert_enqueued!(worker, charge, cents = 1);
}

// --- inline ------------------------------------------------------------------

static NESTED: AtomicU32 = AtomicU32::new(0);

#[job]
async fn parent(inline: Data<Inline>) -> Result<u32, JobError> {
    child::enqueue(&*inline, 7)
        .await
        .map_err(JobError::from_error)?;
    // The child already ran.
    Ok(NESTED.load(Ordering::SeqCst))
}

#[job]
async fn child(n: u32) {
    NESTED.fetch_add(n, Ordering::SeqCst);
}

#[tokio::test]
async fn inline_runs_each_job_before_enqueue_returns() {
    let inline = Inline::new();
    let id = send_email::enqueue(&inline, "a@x.com".into(), "Hi".into(), 1)
        .await
        .unwrap();
    let job = inline.queue().get(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    refute_enqueued!(inline, send_email);

    // Whatever its schedule.
    let later = inline
        .enqueue(cleanup::job("later".into()).delay(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(
        inline.queue().get(later).await.unwrap().unwrap().status,
        JobStatus::Completed
    );

    // A failure is not retried inline: it waits for its retry.
    let failed = send_email::enqueue(&inline, String::new(), "Hi".into(), 1)
        .await
        .unwrap();
    let failed = inline.queue().get(failed).await.unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("no recipient"));
    let retried = explode::enqueue(&inline).await.unwrap();
    assert_eq!(
        inline.queue().get(retried).await.unwrap().unwrap().status,
        JobStatus::Retrying
    );
    assert_enqueued!(inline, explode);
}

#[tokio::test]
async fn jobs_enqueued_inline_by_a_job_run_before_it_continues() {
    let inline = Inline::new();
    let shared = inline.clone();
    let inline = inline.data(shared);
    let id = parent::enqueue(&inline).await.unwrap();
    let job = inline.queue().get(id).await.unwrap().unwrap();
    assert_eq!(job.result.unwrap().result, Some(json!(7)));
    assert_eq!(inline.queue().counts().await.unwrap().completed, 2);
}

// --- periodic ---------------------------------------------------------------

static NIGHTLY: AtomicU32 = AtomicU32::new(0);

#[job(cron = "0 0 2 * * *", queue = "maintenance")]
async fn nightly_report() {
    NIGHTLY.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test]
async fn a_cron_job_is_triggered_by_name() {
    let queue = MemoryJobQueue::new();
    let id = trigger(&queue, "nightly_report").await.unwrap();
    assert_enqueued!(queue, nightly_report; queue = "maintenance");
    let job = queue.get(id).await.unwrap().unwrap();
    assert_eq!(job.metadata["periodic_task"], json!("nightly_report"));
    let before = NIGHTLY.load(Ordering::SeqCst);
    assert_eq!(drain(&queue).await.unwrap().completed, 1);
    assert_eq!(NIGHTLY.load(Ordering::SeqCst), before + 1);

    // Inline, it runs at once; twice is twice.
    let inline = Inline::new();
    trigger(&inline, "nightly_report").await.unwrap();
    trigger(&inline, "nightly_report").await.unwrap();
    assert_eq!(inline.queue().counts().await.unwrap().completed, 2);

    // On a worker, a task added to its scheduler by hand is found too.
    let worker = BackgroundJobWorker::builder()
        .processor(
            Registry::from_registrations([cleanup::registration(), nightly_report::registration()])
                .unwrap(),
        )
        .queues([("default", 1), ("maintenance", 1)])
        .build()
        .unwrap();
    let task = jobs::PeriodicTask::new(
        "hourly_cleanup",
        Schedule::hourly(),
        cleanup::job("hourly".into()),
    );
    worker.scheduler().add(task).unwrap();
    trigger(&worker, "hourly_cleanup").await.unwrap();
    trigger(&worker, "nightly_report").await.unwrap();
    assert_enqueued!(worker, cleanup, r#type = "hourly");
    assert_enqueued!(worker, nightly_report);
    assert_eq!(drain(&worker).await.unwrap().completed, 2);
    let err = trigger(&worker, "weekly").await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("hourly_cleanup, nightly_report")),
        "{err}"
    );

    let err = trigger(&queue, "nightly").await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("no periodic task `nightly`") && m.contains("nightly_report")),
        "{err}"
    );
}

static TICKS: AtomicU32 = AtomicU32::new(0);

#[job]
async fn tick() {
    TICKS.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(start_paused = true)]
async fn a_recurring_job_runs_each_occurrence_up_to_the_horizon() {
    let queue = paused_queue();
    // Due now on the virtual clock (a job's creation time is the system
    // clock's, which runs ahead of a paused one).
    let first = tick::job()
        .scheduled_at(Clock::tokio().now())
        .every(Duration::from_secs(600));
    queue.enqueue(first).await.unwrap();
    let drained = drain(&queue)
        .with_new_jobs(true)
        .with_scheduled(true)
        .horizon(Duration::from_secs(3600))
        .await
        .unwrap();
    // At 0, 10, .., 60 minutes.
    assert_eq!(drained.completed, 7);
    assert_eq!(TICKS.load(Ordering::SeqCst), 7);
    // The next one waits.
    assert_enqueued!(queue, tick; count = 1);
}

#[tokio::test]
async fn wall_time_of_a_drain_is_small() {
    let queue = Arc::new(MemoryJobQueue::new());
    for i in 0..200 {
        leaf::enqueue(&*queue, i).await.unwrap();
    }
    let wall = std::time::Instant::now();
    assert_eq!(drain(&queue).await.unwrap().completed, 200);
    assert!(wall.elapsed() < Duration::from_secs(10));
}

// --- the seed guide's "Testing Background Jobs", with these tools ---------

/// The guide's class-based email processor.
struct EmailJobProcessor;

impl JobProcessor for EmailJobProcessor {
    async fn process(&self, job: &Job) -> JobResult {
        let (Some(to), Some(_), Some(_)) = (
            job.args["to"].as_str(),
            job.args["subject"].as_str(),
            job.args["body"].as_str(),
        ) else {
            return JobResult::error("Missing required email parameters");
        };
        JobResult::success(json!({"email_sent": true, "recipient": to}))
    }
}

#[tokio::test]
async fn seed_successful_email_job() {
    let job = Job::new(
        "test_email",
        json!({"to": "test@example.com", "subject": "Test", "body": "Test body"}),
    );
    let result = perform_job(job).processor(EmailJobProcessor).await;
    assert!(result.success);
    let value = result.result.unwrap();
    assert_eq!(value["email_sent"], json!(true));
    assert_eq!(value["recipient"], json!("test@example.com"));
}

#[tokio::test]
async fn seed_missing_email_parameters() {
    let job = Job::new("test_email", json!({"to": "test@example.com"}));
    let result = perform_job(job).processor(EmailJobProcessor).await;
    assert!(!result.success);
    assert!(
        result
            .error
            .unwrap()
            .contains("Missing required email parameters")
    );
}

#[job(name = "test_job", priority = "high")]
async fn test_job() {}

#[tokio::test]
async fn seed_job_queue_operations() {
    let queue = MemoryJobQueue::new();
    let id = test_job::enqueue(&queue).await.unwrap();
    assert_eq!(queue.len(), 1);
    assert_enqueued!(queue, test_job; priority = JobPriority::High, count = 1);
    let drained = drain(&queue).await.unwrap();
    assert_eq!(drained.completed, 1);
    let job = queue.get(id).await.unwrap().unwrap();
    assert_eq!((job.id, job.priority), (id, JobPriority::High));
    assert!(queue.is_empty());
}

// --- another backend ----------------------------------------------------------

/// The same tools on Redis: assertions on the queue, a drain through a
/// worker on it. Skips without `JOBS_REDIS_URL`.
#[cfg(feature = "redis")]
#[tokio::test]
async fn assertions_and_drain_work_on_redis_through_a_worker() {
    let Some(url) = jobs_examples::redis_url() else {
        return;
    };
    let name = jobs_examples::unique_name("testing");
    let queue = jobs::RedisJobQueue::connect(&url, &name).await.unwrap();
    send_email::enqueue(&queue, "a@x.com".into(), "Hi".into(), 1)
        .await
        .unwrap();
    send_email::enqueue(&queue, String::new(), "Hi".into(), 1)
        .await
        .unwrap();
    assert_enqueued!(queue, send_email, to = "a@x.com"; queue = "mailers");
    assert_enqueued!(queue, send_email, subject = "Hi"; count = 2);

    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(Registry::from_registrations([send_email::registration()]).unwrap())
        .queues([("mailers", 1)])
        .build()
        .unwrap();
    let drained = drain(&worker).await.unwrap();
    assert_eq!((drained.completed, drained.failed), (1, 1));
    refute_enqueued!(queue, send_email);
    refute_enqueued!(worker, send_email);
    queue.purge().await.unwrap();
}
