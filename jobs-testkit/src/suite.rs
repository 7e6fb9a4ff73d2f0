//! The queue behaviour suite: what every backend must do, written once and
//! generic over the queue.
//!
//! Instantiate it in a test file with [`queue_behaviour_suite!`](crate::queue_behaviour_suite), giving an
//! async expression that yields `Some(queue)` (a fresh, empty queue for each
//! test) or `None` to skip.
//!
//! The cases use real time with short delays (tens of milliseconds), so they
//! also run against networked backends; they wait on events and states, and
//! only measure time to check that something did *not* happen too early.

// A case function not listed in `define_suite!` is dead code: refuse it.
#![deny(dead_code)]

use std::collections::HashSet;
use std::time::Duration;

use jobs::{
    BackgroundJobWorker, Backoff, CancelOutcome, Enqueue, Job, JobPriority, JobQueue, JobStatus,
    Outcome, Registry,
};
use serde_json::json;
use tokio::time::Instant;

use crate::admin::*;
use crate::flow::*;
use crate::probe::Probe;
use crate::workflow::*;

/// The longest a case may take before it fails (none takes more than a few
/// seconds on a quiet machine).
const CASE_LIMIT: Duration = Duration::from_secs(120);

// The list of cases, written once. It generates both the exported
// [`queue_behaviour_suite!`] (one `#[tokio::test]` per case) and the public
// `cases` module the tests call. The case functions themselves are private,
// so a case missing from this list is dead code, which this module denies:
// a new case cannot be forgotten, and a listed name that does not exist does
// not compile.
macro_rules! define_suite {
    ($d:tt $($case:ident),* $(,)?) => {
        /// Runs every case of the conformance suite as a
        /// `#[tokio::test]` against queues made by `$make`: an async
        /// expression yielding `Option<Q>` — a fresh, empty queue for each
        /// case, or `None` to skip it (e.g. when the backend's server is
        /// not configured).
        ///
        /// ```ignore
        /// jobs_testkit::queue_behaviour_suite!(async { Some(jobs::MemoryJobQueue::new()) });
        /// ```
        #[macro_export]
        macro_rules! queue_behaviour_suite {
            ($d make:expr) => {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        let Some(queue) = $d make.await else { return };
                        $d crate::suite::cases::$case(queue).await;
                    }
                )*
            };
        }

        /// The cases, one function each; [`queue_behaviour_suite!`] runs
        /// them all.
        pub mod cases {
            use jobs::JobQueue;

            $(
                #[doc = concat!("The case `", stringify!($case), "`.")]
                pub async fn $case<Q: JobQueue + Clone>(queue: Q) {
                    // A case that hangs fails instead of stalling the run.
                    tokio::time::timeout(super::CASE_LIMIT, super::$case(queue))
                        .await
                        .expect(concat!("the case `", stringify!($case), "` took too long"))
                }
            )*
        }

        /// The names of every case, in the order they run.
        pub const CASES: &[&str] = &[$(stringify!($case)),*];
    };
}

define_suite! {$
    priority_order_and_fifo,
    worker_runs_in_priority_order,
    delayed_job_does_not_start_early,
    retries_with_growing_backoff,
    permanent_error_is_not_retried,
    timeout_fails_the_attempt,
    panic_fails_only_that_job,
    cancel_pending_job,
    cancel_running_job,
    retry_failed_job,
    recurring_job_runs_repeatedly,
    expired_job_does_not_run,
    graceful_stop_hands_back_abandoned_jobs,
    stop_mid_backlog_leaves_nothing_running,
    stats_are_exact,
    unknown_job_name_fails,
    bad_input_is_an_error,
    lease_fencing,
    release_returns_job_to_the_front,
    get_list_counts_and_purge,
    duplicate_id_is_rejected,
    idempotent_enqueue_finds_the_first_job,
    too_deep_payload_is_refused_at_enqueue,
    enqueue_many_keeps_order,
    push_wakes_idle_worker,
    // Flow control (`flow.rs`).
    named_queues_route_and_are_served_in_take_order,
    scheduled_job_comes_due_into_its_queue,
    paused_queue_gives_nothing_until_resumed,
    queue_concurrency_limit_holds,
    job_concurrency_limit_holds_and_keeps_place,
    concurrency_by_key_limits_each_key_separately,
    rate_limit_holds_within_window_and_releases,
    queue_rate_limit_holds,
    unique_job_conflicts_and_releases_when_done,
    unique_period_expires,
    unique_in_push_many_per_job,
    unique_states_include_completed,
    snooze_reschedules_without_counting_attempt,
    progress_is_recorded_and_sent,
    events_are_sent_for_state_changes,
    wait_for_returns_final_job,
    cancel_held_job_removes_it,
    nothing_lost_under_limits,
    // Operator tools (`admin.rs`).
    find_jobs_filters_and_pages,
    delete_removes_waiting_and_finished_not_running,
    purge_status_removes_only_that_status,
    throughput_counts_processed_and_failed,
    workers_lists_running_worker_and_forgets_stopped,
    attempt_errors_are_kept,
    // Workflows and batches (`workflow.rs`).
    batch_callbacks_fire_once,
    failed_batch_job_cancels_on_success,
    chain_passes_results,
    diamond_runs_the_join_once,
    failure_cancels_dependants_unless_they_run_always,
    cancel_workflow_cancels_its_steps,
    a_running_step_fans_out,
    adding_to_a_batch_while_open,
    bad_workflows_store_nothing,
    a_worker_runs_a_dag,
}

fn worker<Q: JobQueue + Clone>(queue: &Q, probe: &Probe) -> jobs::WorkerBuilder {
    BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(probe.clone())
        .polling_interval(Duration::from_millis(200))
}

/// Runs a worker in the background; stops it on drop of the returned guard.
pub struct Running {
    /// The worker.
    pub worker: BackgroundJobWorker,
    task: Option<tokio::task::JoinHandle<jobs::Result<()>>>,
}

impl Running {
    /// Starts `worker.run()` in a task.
    pub fn start(worker: BackgroundJobWorker) -> Self {
        let task = tokio::spawn(worker.clone().run_owned());
        Running {
            worker,
            task: Some(task),
        }
    }

    /// Stops the worker and checks that `run` returned `Ok`.
    pub async fn stop(mut self) -> jobs::StopReport {
        let report = self.worker.stop().await;
        let task = self.task.take().expect("running");
        task.await.expect("worker task").expect("worker run");
        report
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Reserves jobs one at a time and returns their names in order.
async fn drain_names<Q: JobQueue>(queue: &Q) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        let got = queue
            .reserve(
                "suite",
                &[jobs::Take::new(jobs::DEFAULT_QUEUE, 1)],
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        let Some(r) = got.into_iter().next() else {
            return names;
        };
        names.push(
            r.job.args["label"]
                .as_str()
                .unwrap_or(&r.job.name)
                .to_owned(),
        );
        queue
            .finish(
                r.lease,
                Outcome::Completed(jobs::JobResult::success(json!(null))),
                None,
            )
            .await
            .unwrap();
    }
}

/// Critical, High, Normal, Low; FIFO within a level.
async fn priority_order_and_fifo<Q: JobQueue + Clone>(queue: Q) {
    let plan = [
        ("low-1", JobPriority::Low),
        ("normal-1", JobPriority::Normal),
        ("high-1", JobPriority::High),
        ("low-2", JobPriority::Low),
        ("critical-1", JobPriority::Critical),
        ("normal-2", JobPriority::Normal),
        ("high-2", JobPriority::High),
        ("critical-2", JobPriority::Critical),
        ("normal-3", JobPriority::Normal),
    ];
    for (label, priority) in plan {
        queue
            .enqueue(Job::new("ok", json!({ "label": label })).priority(priority))
            .await
            .unwrap();
    }
    assert_eq!(
        drain_names(&queue).await,
        [
            "critical-1",
            "critical-2",
            "high-1",
            "high-2",
            "normal-1",
            "normal-2",
            "normal-3",
            "low-1",
            "low-2"
        ]
    );
}

/// The same order through a worker running one job at a time.
async fn worker_runs_in_priority_order<Q: JobQueue + Clone>(queue: Q) {
    let probe = Probe::new();
    let worker = worker(&queue, &probe)
        .max_concurrent_jobs(1)
        .build()
        .unwrap();
    let mut last = None;
    for (label, priority) in [
        ("a-low", JobPriority::Low),
        ("b-normal", JobPriority::Normal),
        ("c-critical", JobPriority::Critical),
        ("d-high", JobPriority::High),
        ("e-normal", JobPriority::Normal),
    ] {
        let job = Job::new("ok", json!({ "label": label })).priority(priority);
        last = Some(worker.submit_job(job).await.unwrap().id);
    }
    let running = Running::start(worker.clone());
    worker.wait_until_idle().await.unwrap();
    let order: Vec<String> = probe
        .started()
        .iter()
        .map(|a| a.name.clone())
        .collect::<Vec<_>>();
    assert_eq!(order.len(), 5);
    let labels: Vec<String> = {
        let mut labels = Vec::new();
        for attempt in probe.started() {
            let job = worker.get_job(attempt.id).await.unwrap().unwrap();
            labels.push(job.args["label"].as_str().unwrap().to_owned());
        }
        labels
    };
    assert_eq!(
        labels,
        ["c-critical", "d-high", "b-normal", "e-normal", "a-low"]
    );
    assert!(last.is_some());
    running.stop().await;
}

/// A delayed job is not handed out before its time, and runs after it.
async fn delayed_job_does_not_start_early<Q: JobQueue + Clone>(queue: Q) {
    let probe = Probe::new();
    let worker = worker(&queue, &probe).build().unwrap();
    let submitted = Instant::now();
    let delayed = worker
        .submit_job(Job::new("ok", json!({})).delay(Duration::from_millis(400)))
        .await
        .unwrap();
    let now = worker.submit_job(Job::new("ok", json!({}))).await.unwrap();
    let running = Running::start(worker.clone());
    let done_now = worker.wait_for(now.id).await.unwrap();
    assert_eq!(done_now.status, JobStatus::Completed);
    let done = worker.wait_for(delayed.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    let started = probe.attempts_of(delayed.id)[0].at;
    assert!(
        started.duration_since(submitted) >= Duration::from_millis(390),
        "started {:?} after submission",
        started.duration_since(submitted)
    );
    assert!(done.started_at.unwrap() >= done.scheduled_at.unwrap());
    running.stop().await;
}

/// A retryable failure is retried `max_retries` times with growing delays,
/// then the job is `Failed` with its last error kept.
async fn retries_with_growing_backoff<Q: JobQueue + Clone>(queue: Q) {
    let probe = Probe::new();
    let worker = worker(&queue, &probe).build().unwrap();
    let job = Job::new("flaky", json!({ "succeed_on": 99 }))
        .max_retries(3)
        .backoff(Backoff::exponential(Duration::from_millis(40)).without_jitter());
    let job = worker.submit_job(job).await.unwrap();
    let running = Running::start(worker.clone());
    let done = worker.wait_for(job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.attempts, 4, "one attempt plus three retries");
    assert_eq!(
        done.last_error.as_deref(),
        Some("transient failure on attempt 4")
    );
    let attempts = probe.attempts_of(job.id);
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (gap, min) in gaps.iter().zip([40, 80, 160]) {
        assert!(
            *gap >= Duration::from_millis(min - 5),
            "gaps {gaps:?} shorter than the backoff"
        );
    }
    assert_eq!(worker.worker_stats().jobs_retried, 3);
    assert_eq!(worker.worker_stats().jobs_failed, 1);

    // And a flaky job that succeeds on its third attempt ends `Completed`.
    let job = Job::new("flaky", json!({ "succeed_on": 3 }))
        .backoff(Backoff::fixed(Duration::from_millis(10)));
    let job = worker.submit_job(job).await.unwrap();
    let done = worker.wait_for(job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.attempts, 3);
    assert_eq!(done.result.unwrap().result, Some(json!({"attempt": 3})));
    running.stop().await;
}

/// A permanent error fails the job at once.
async fn permanent_error_is_not_retried<Q: JobQueue + Clone>(queue: Q) {
    let probe = Probe::new();
    let worker = worker(&queue, &probe).build().unwrap();
    let job = worker
        .submit_job(Job::new("permanent", json!({})).max_retries(5))
        .await
        .unwrap();
    let running = Running::start(worker.clone());
    let done = worker.wait_for(job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.attempts, 1);
    assert_eq!(done.last_error.as_deref(), Some("permanent failure"));
    let result = done.result.unwrap();
    assert!(!result.retryable);
    assert_eq!(probe.attempts_of(job.id).len(), 1);
    running.stop().await;
}

/// An attempt that runs past its timeout fails (and its future is dropped).
async fn timeout_fails_the_attempt<Q: JobQueue + Clone>(queue: Q) {
    let probe = Probe::new();
    let worker = worker(&queue, &probe).build().unwrap();
    let job = Job::new("hang", json!({}))
        .timeout(Duration::from_millis(100))
        .max_retries(0);
    let job = worker.submit_job(job).await.unwrap();
    let running = Running::start(worker.clone());
    let done = worker.wait_for(job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    let result = done.result.unwrap();
    assert_eq!(result.error_type.as_deref(), Some("Timeout"));
    assert!(
        done.last_error.as_deref().unwrap().contains("timed out"),
        "{:?}",
        done.last_error
    );
    assert_eq!(probe.dropped(), [job.id]);
    assert_eq!(worker.worker_stats().jobs_timed_out, 1);
    running.stop().await;
}

/// A panicking job fails with the panic message; the worker carries on.
async fn panic_fails_only_that_job<Q: JobQueue + Clone>(queue: Q) {
    let probe = Probe::new();
    let worker = worker(&queue, &probe).build().unwrap();
    let boom = worker
        .submit_job(Job::new("panic", json!({})).max_retries(0))
        .await
        .unwrap();
    let running = Running::start(worker.clone());
    let done = worker.wait_for(boom.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(
        done.last_error.as_deref(),
        Some("job panicked: the probe was told to panic")
    );
    assert_eq!(done.result.unwrap().error_type.as_deref(), Some("Panic"));
    // The worker is still taking jobs.
    let after = worker.submit_job(Job::new("ok", json!({}))).await.unwrap();
    assert_eq!(
        worker.wait_for(after.id).await.unwrap().status,
        JobStatus::Completed
    );
    assert!(worker.health_check().await.healthy);
    running.stop().await;
}

/// A waiting job that is cancelled never runs.
async fn cancel_pending_job<Q: JobQueue + Clone>(queue: Q) {
    let probe = Probe::new();
    let worker = worker(&queue, &probe).build().unwrap();
    let later = worker
        .submit_job(Job::new("ok", json!({})).delay(Duration::from_millis(150)))
        .await
        .unwrap();
    let ready = worker.submit_job(Job::new("ok", json!({}))).await.unwrap();
    assert!(worker.cancel_job(later.id).await.unwrap());
    assert!(worker.cancel_job(ready.id).await.unwrap());
    assert!(
        !worker.cancel_job(ready.id).await.unwrap(),
        "cancelling twice is a no-op"
    );
    let marker = worker
        .submit_job(Job::new("ok", json!({})).delay(Duration::from_millis(300)))
        .await
        .unwrap();
    let running = Running::start(worker.clone());
    // Once a job due after the cancelled ones has run, they would have too.
    worker.wait_for(marker.id).await.unwrap();
    for id in [later.id, ready.id] {
        assert_eq!(
            worker.get_job_status(id).await.unwrap(),
            Some(JobStatus::Cancelled)
        );
        assert!(probe.attempts_of(id).is_empty());
    }
    running.stop().await;
}

/// A running job that is cancelled is stopped (its future dropped) and
/// ends `Cancelled`.
async fn cancel_running_job<Q: JobQueue + Clone>(queue: Q) {
    let probe = Probe::new();
    let worker = worker(&queue, &probe).build().unwrap();
    let job = worker
        .submit_job(Job::new("hang", json!({})))
        .await
        .unwrap();
    // A networked backend relays events once its subscription is live.
    let mut events = subscribed(&queue).await;
    let running = Running::start(worker.clone());
    probe.wait_started(job.id, 1).await;
    assert!(worker.cancel_job(job.id).await.unwrap());
    probe.wait_dropped(job.id).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(e) if e.job_id == job.id && e.kind == jobs::JobEventKind::Cancelled => break,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("events stopped: {e}"),
            }
        }
    })
    .await
    .expect("a Cancelled event for the cancelled job");
    let done = worker.wait_for(job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Cancelled);
    assert_eq!(worker.get_queue_stats().await.unwrap().active_jobs, 0);
    assert_eq!(worker.worker_stats().jobs_cancelled, 1);
    running.stop().await;
}

/// `retry_job` puts a failed job back, and it can then succeed.
async fn retry_failed_job<Q: JobQueue + Clone>(queue: Q) {
    let probe = Probe::new();
    let worker = worker(&queue, &probe).build().unwrap();
    let job = worker
        .submit_job(Job::new("toggle", json!({})))
        .await
        .unwrap();
    let running = Running::start(worker.clone());
    assert_eq!(
        worker.wait_for(job.id).await.unwrap().status,
        JobStatus::Failed
    );
    let waiting = worker
        .submit_job(Job::new("ok", json!({})).delay(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(
        !worker.retry_job(waiting.id).await.unwrap(),
        "a waiting job is not retried"
    );
    assert!(!worker.retry_job(jobs::JobId::new()).await.unwrap());
    probe.set_ok(true);
    assert!(worker.retry_job(job.id).await.unwrap());
    let done = worker.wait_for(job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.attempts, 1, "attempts restart from zero on retry_job");
    assert_eq!(probe.attempts_of(job.id).len(), 2);
    assert!(
        !worker.retry_job(job.id).await.unwrap(),
        "a completed job is not retried"
    );
    running.stop().await;
}

/// A recurring job enqueues its next run each time one finishes.
async fn recurring_job_runs_repeatedly<Q: JobQueue + Clone>(queue: Q) {
    let probe = Probe::new();
    let worker = worker(&queue, &probe).build().unwrap();
    let first = worker
        .submit_job(Job::new("ok", json!({"tick": true})).every(Duration::from_millis(60)))
        .await
        .unwrap();
    let running = Running::start(worker.clone());
    let mut events = probe.subscribe();
    while probe.started().len() < 4 {
        let _ = tokio::time::timeout(Duration::from_millis(100), events.recv()).await;
    }
    let runs = probe.started();
    let ids: HashSet<_> = runs.iter().map(|a| a.id).collect();
    assert_eq!(ids.len(), runs.len(), "each run is a job of its own");
    assert_eq!(runs[0].id, first.id);
    // The series is anchored to due times, not start times: a run that
    // started late (a loaded machine) may be followed sooner by the next.
    // What must hold is that no run starts before it is due, and that each
    // run is due at least one interval after the one before.
    let mut dues = Vec::new();
    for run in &runs {
        let job = worker.get_job(run.id).await.unwrap().expect("run is kept");
        let due = job.due_at();
        let started = job.started_at.expect("the run started");
        assert!(started >= due, "a run started before it was due: {job:?}");
        dues.push(due);
    }
    for pair in dues.windows(2) {
        assert!(
            pair[1] - pair[0] >= chrono::Duration::milliseconds(60),
            "runs due closer than the interval: {dues:?}"
        );
    }
    assert_eq!(
        worker.get_job_status(first.id).await.unwrap(),
        Some(JobStatus::Completed)
    );
    // Exactly one next run exists at any time; cancelling it ends the series.
    // The run found may finish before the cancel reaches it (a slower
    // backend widens that window): then its successor is the live one.
    let mut cancelled = false;
    for _ in 0..20 {
        let live: Vec<_> = worker
            .list_jobs(None, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|j| !j.status.is_final())
            .collect();
        assert_eq!(live.len(), 1, "exactly one next run: {live:?}");
        if worker.cancel_job(live[0].id).await.unwrap() {
            cancelled = true;
            break;
        }
    }
    assert!(cancelled, "a live run could be cancelled");
    running.stop().await;
    let live = worker.list_jobs(None, 100).await.unwrap();
    assert!(live.iter().all(|j| j.status.is_final()), "{live:?}");
}

/// A job past its `expires_at` becomes `Expired` without running.
async fn expired_job_does_not_run<Q: JobQueue + Clone>(queue: Q) {
    let probe = Probe::new();
    let worker = worker(&queue, &probe).build().unwrap();
    let now = chrono::Utc::now();
    let job = Job::new("ok", json!({}))
        .delay(Duration::from_millis(100))
        .expires_at(now + chrono::Duration::milliseconds(20));
    let job = worker.submit_job(job).await.unwrap();
    let running = Running::start(worker.clone());
    let done = worker.wait_for(job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Expired);
    assert!(probe.attempts_of(job.id).is_empty());
    assert_eq!(worker.worker_stats().jobs_expired, 1);
    running.stop().await;
}

/// A worker stopped in the middle of a backlog of quick jobs leaves
/// nothing behind: every outcome it counted is recorded, and the jobs it
/// had reserved but not started (a reserve on its way, or jobs a slot took
/// ahead) are handed back at once, not left running until their leases
/// expire. Stopped three times, so that a stop lands while a reserve is on
/// its way or a slot holds jobs it has not started.
async fn stop_mid_backlog_leaves_nothing_running<Q: JobQueue + Clone>(queue: Q) {
    let (mut pushed, mut counted) = (0, 0);
    for round in 1..=3 {
        // A backlog for this round (a fast backend may have run the last).
        let n = 1_000;
        queue
            .push_many((0..n).map(|_| Job::new("ok", json!({}))).collect())
            .await
            .unwrap();
        pushed += n;
        let probe = Probe::new();
        let worker = worker(&queue, &probe)
            .max_concurrent_jobs(1)
            .build()
            .unwrap();
        let running = Running::start(worker.clone());
        crate::eventually("this worker ran jobs", Duration::from_secs(30), || async {
            worker.worker_stats().jobs_processed >= 100
        })
        .await;
        let report = running.stop().await;
        assert!(report.abandoned.is_empty(), "{:?}", report.abandoned);
        counted += worker.worker_stats().jobs_processed;
        let counts = queue.counts().await.unwrap();
        assert_eq!(counts.running, 0, "round {round}: {counts:?}");
        assert_eq!(counts.completed, counted, "round {round}: {counts:?}");
        assert_eq!(counts.pending + counts.completed, pushed, "{counts:?}");
    }
}

/// `stop` waits for running jobs up to the shutdown timeout, then drops
/// the rest and hands them back to the queue.
async fn graceful_stop_hands_back_abandoned_jobs<Q: JobQueue + Clone>(queue: Q) {
    let probe = Probe::new();
    let worker = worker(&queue, &probe)
        .shutdown_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let quick = worker
        .submit_job(Job::new("sleep", json!({"ms": 100})))
        .await
        .unwrap();
    let stuck = worker
        .submit_job(Job::new("hang", json!({})))
        .await
        .unwrap();
    let running = Running::start(worker.clone());
    probe.wait_started(quick.id, 1).await;
    probe.wait_started(stuck.id, 1).await;
    let report = running.stop().await;
    assert_eq!(report.abandoned, [stuck.id]);
    assert!(probe.dropped().contains(&stuck.id));
    assert_eq!(
        worker.get_job_status(quick.id).await.unwrap(),
        Some(JobStatus::Completed),
        "a job that finished within the shutdown timeout completed"
    );
    let back = worker.get_job(stuck.id).await.unwrap().unwrap();
    assert_eq!(
        back.status,
        JobStatus::Pending,
        "the abandoned job is waiting again"
    );
    assert_eq!(back.attempts, 0, "the abandoned attempt does not count");
    // The stopped worker takes no more jobs.
    assert!(matches!(
        worker.submit_job(Job::new("ok", json!({}))).await,
        Err(jobs::Error::Stopped)
    ));
    assert!(matches!(worker.run().await, Err(jobs::Error::Stopped)));
    // The next worker picks the job up.
    let probe2 = Probe::new();
    let next = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(probe2.clone())
        .build()
        .unwrap();
    let running = Running::start(next.clone());
    probe2.wait_started(stuck.id, 1).await;
    assert!(next.cancel_job(stuck.id).await.unwrap());
    running.stop().await;
}

/// Stats after a known mix of outcomes.
async fn stats_are_exact<Q: JobQueue + Clone>(queue: Q) {
    let probe = Probe::new();
    let worker = worker(&queue, &probe).build().unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            worker
                .submit_job(Job::new("ok", json!({})))
                .await
                .unwrap()
                .id,
        );
    }
    for _ in 0..2 {
        ids.push(
            worker
                .submit_job(Job::new("permanent", json!({})))
                .await
                .unwrap()
                .id,
        );
    }
    let flaky = Job::new("flaky", json!({"succeed_on": 2}))
        .backoff(Backoff::fixed(Duration::from_millis(10)));
    ids.push(worker.submit_job(flaky).await.unwrap().id);
    let waiting = Job::new("ok", json!({})).delay(Duration::from_secs(3600));
    worker.submit_job(waiting).await.unwrap();

    let stats = worker.get_queue_stats().await.unwrap();
    assert_eq!(stats.queue_size, 9);
    assert_eq!(stats.counts.scheduled, 1);

    let running = Running::start(worker.clone());
    for id in &ids {
        worker.wait_for(*id).await.unwrap();
    }
    let stats = worker.get_queue_stats().await.unwrap();
    assert_eq!(stats.worker_stats.jobs_processed, 6);
    assert_eq!(stats.worker_stats.jobs_failed, 2);
    assert_eq!(stats.worker_stats.jobs_retried, 1);
    assert_eq!(stats.queue_size, 1, "only the scheduled job waits");
    assert_eq!(stats.active_jobs, 0);
    assert_eq!(stats.available_slots, stats.max_concurrent_jobs);
    assert_eq!(stats.counts.completed, 6);
    assert_eq!(stats.counts.failed, 2);
    assert_eq!(stats.counts.pending, 1);
    running.stop().await;
}

/// A job whose name no handler has fails with `Unknown job type: NAME`.
async fn unknown_job_name_fails<Q: JobQueue + Clone>(queue: Q) {
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(Registry::empty())
        .build()
        .unwrap();
    let job = worker
        .submit_job(Job::new("no_such_job", json!({})))
        .await
        .unwrap();
    let running = Running::start(worker.clone());
    let done = worker.wait_for(job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.attempts, 1, "an unknown job is not retried");
    assert_eq!(
        done.last_error.as_deref(),
        Some("Unknown job type: no_such_job")
    );
    running.stop().await;
}

/// Settings that make no sense are an `Err`, never a panic, and nothing is
/// stored.
async fn bad_input_is_an_error<Q: JobQueue + Clone>(queue: Q) {
    let bad = [
        Job::new("ok", json!({})).every(Duration::ZERO),
        Job::new("ok", json!({})).timeout(Duration::ZERO),
        Job::new("", json!({})),
        Job::new("ok", json!([1, 2])),
        Job::new("ok", json!({})).backoff(Backoff::exponential(Duration::from_secs(1)).factor(0.5)),
    ];
    for job in bad {
        let err = queue.enqueue(job.clone()).await.unwrap_err();
        assert!(
            matches!(err, jobs::Error::InvalidJob { .. }),
            "{job:?} gave {err:?}"
        );
    }
    let err = queue
        .enqueue_many(vec![
            Job::new("ok", json!({})),
            Job::new("ok", json!({})).every(Duration::ZERO),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, jobs::Error::InvalidJob { .. }));
    assert_eq!(
        queue.counts().await.unwrap(),
        Default::default(),
        "nothing stored"
    );

    for builder in [
        BackgroundJobWorker::builder().max_concurrent_jobs(0),
        BackgroundJobWorker::builder().polling_interval(Duration::ZERO),
        BackgroundJobWorker::builder().default_timeout(Duration::ZERO),
        BackgroundJobWorker::builder().lease_duration(Duration::ZERO),
    ] {
        assert!(matches!(
            builder.processor(Probe::new()).build(),
            Err(jobs::Error::InvalidArgument(_))
        ));
    }
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(Probe::new())
        .build()
        .unwrap();
    worker.stop().await;
    assert!(matches!(
        worker.enqueue(Job::new("ok", json!({}))).await,
        Err(jobs::Error::Stopped)
    ));
}

/// A lease that was taken over cannot record an outcome.
async fn lease_fencing<Q: JobQueue + Clone>(queue: Q) {
    let id = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    let lease = Duration::from_secs(30);
    let first = queue
        .reserve("a", &[jobs::Take::new(jobs::DEFAULT_QUEUE, 1)], lease)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(first.job.status, JobStatus::Running);
    assert_eq!(first.job.attempts, 1);
    assert!(first.job.started_at.is_some());
    // Handed back and taken again: the first lease is stale.
    assert_eq!(queue.release(&[first.lease]).await.unwrap(), 1);
    let second = queue
        .reserve("b", &[jobs::Take::new(jobs::DEFAULT_QUEUE, 1)], lease)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.job.id, id);
    assert_ne!(second.lease.token, first.lease.token);
    assert_eq!(
        queue
            .heartbeat(&[first.lease, second.lease], lease)
            .await
            .unwrap(),
        [first.lease],
        "the stale lease is reported as no longer held"
    );
    let stale = queue
        .finish(
            first.lease,
            Outcome::Failed(jobs::JobResult::error("late")),
            None,
        )
        .await
        .unwrap();
    assert!(!stale, "a stale lease's outcome is ignored");
    assert_eq!(
        queue.get(id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    assert!(
        queue
            .finish(
                second.lease,
                Outcome::Completed(jobs::JobResult::success(json!(1))),
                None
            )
            .await
            .unwrap()
    );
    let done = queue.get(id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.attempts, 1);
    assert!(done.completed_at.is_some());
    // A cancelled running job's lease is revoked too.
    let id = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    let r = queue
        .reserve("a", &[jobs::Take::new(jobs::DEFAULT_QUEUE, 1)], lease)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        queue.cancel(id).await.unwrap(),
        CancelOutcome::CancelledRunning
    );
    assert_eq!(queue.heartbeat(&[r.lease], lease).await.unwrap(), [r.lease]);
    assert!(
        !queue
            .finish(
                r.lease,
                Outcome::Completed(jobs::JobResult::success(json!(1))),
                None
            )
            .await
            .unwrap()
    );
    assert_eq!(
        queue.get(id).await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
}

/// Released jobs go back to the head of their priority.
async fn release_returns_job_to_the_front<Q: JobQueue + Clone>(queue: Q) {
    for label in ["one", "two", "three"] {
        queue
            .enqueue(Job::new("ok", json!({ "label": label })))
            .await
            .unwrap();
    }
    let taken = queue
        .reserve(
            "a",
            &[jobs::Take::new(jobs::DEFAULT_QUEUE, 2)],
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(taken.len(), 2);
    let leases: Vec<_> = taken.iter().map(|r| r.lease).collect();
    assert_eq!(queue.release(&leases).await.unwrap(), 2);
    assert_eq!(drain_names(&queue).await, ["one", "two", "three"]);
}

/// Management: get, list by status (newest first, limited), counts, purge.
async fn get_list_counts_and_purge<Q: JobQueue + Clone>(queue: Q) {
    let mut ids = Vec::new();
    for n in 0..5 {
        let job = Job::new("ok", json!({ "n": n }))
            .tag("suite")
            .meta("origin", "test");
        ids.push(queue.enqueue(job).await.unwrap());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let stored = queue.get(ids[0]).await.unwrap().unwrap();
    assert_eq!(stored.args, json!({"n": 0}));
    assert_eq!(stored.tags, ["suite"]);
    assert_eq!(stored.metadata["origin"], json!("test"));
    assert!(queue.get(jobs::JobId::new()).await.unwrap().is_none());

    let r = queue
        .reserve(
            "a",
            &[jobs::Take::new(jobs::DEFAULT_QUEUE, 1)],
            Duration::from_secs(30),
        )
        .await
        .unwrap()
        .remove(0);
    assert_eq!(r.job.id, ids[0]);
    queue
        .finish(r.lease, Outcome::Failed(jobs::JobResult::error("x")), None)
        .await
        .unwrap();
    queue.cancel(ids[1]).await.unwrap();

    let pending = queue.list(Some(JobStatus::Pending), 2).await.unwrap();
    assert_eq!(
        pending.iter().map(|j| j.id).collect::<Vec<_>>(),
        [ids[4], ids[3]],
        "newest first, limited"
    );
    assert_eq!(queue.list(None, 100).await.unwrap().len(), 5);
    let failed = queue.list(Some(JobStatus::Failed), 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].last_error.as_deref(), Some("x"));

    let counts = queue.counts().await.unwrap();
    assert_eq!(
        (
            counts.pending,
            counts.failed,
            counts.cancelled,
            counts.running
        ),
        (3, 1, 1, 0)
    );
    assert_eq!(counts.waiting(), 3);
    assert_eq!(queue.purge().await.unwrap(), 5);
    assert_eq!(queue.counts().await.unwrap(), Default::default());
    assert!(queue.get(ids[4]).await.unwrap().is_none());
    assert!(
        queue
            .reserve(
                "a",
                &[jobs::Take::new(jobs::DEFAULT_QUEUE, 10)],
                Duration::from_secs(30)
            )
            .await
            .unwrap()
            .is_empty()
    );
}

/// Enqueueing a job whose id is already stored is `Error::Duplicate` and
/// leaves the first job as it was.
async fn duplicate_id_is_rejected<Q: JobQueue + Clone>(queue: Q) {
    let job = Job::new("ok", json!({"first": true}));
    queue.enqueue(job.clone()).await.unwrap();
    let mut again = job.clone();
    again.args = json!({"first": false});
    assert!(matches!(
        queue.enqueue(again).await,
        Err(jobs::Error::Duplicate(id)) if id == job.id
    ));
    assert_eq!(
        queue.get(job.id).await.unwrap().unwrap().args,
        json!({"first": true})
    );
    assert_eq!(queue.counts().await.unwrap().pending, 1);
}

/// A retried enqueue with `enqueue_idempotent` (the same id, from
/// `Job::idempotency_key`) returns the first job's id and stores nothing
/// more; a different key is a different job.
async fn idempotent_enqueue_finds_the_first_job<Q: JobQueue + Clone>(queue: Q) {
    let job = || Job::new("ok", json!({"order": 42})).idempotency_key("order-42");
    let first = queue.enqueue_idempotent(job()).await.unwrap();
    assert_eq!(queue.enqueue_idempotent(job()).await.unwrap(), first);
    assert!(matches!(
        queue.enqueue(job()).await,
        Err(jobs::Error::Duplicate(id)) if id == first
    ));
    let other = queue
        .enqueue_idempotent(Job::new("ok", json!({"order": 43})).idempotency_key("order-43"))
        .await
        .unwrap();
    assert_ne!(other, first);
    assert_eq!(queue.counts().await.unwrap().pending, 2);
}

/// Arguments nested deeper than a worker can read back are refused at
/// enqueue, naming the limit, and nothing is stored; the limit itself is
/// accepted.
async fn too_deep_payload_is_refused_at_enqueue<Q: JobQueue + Clone>(queue: Q) {
    fn nested(depth: usize) -> serde_json::Value {
        let mut value = json!(1);
        for _ in 0..depth {
            value = json!([value]);
        }
        value
    }
    let ok = queue
        .enqueue(Job::new("ok", json!({ "v": nested(124) })))
        .await
        .unwrap();
    let err = queue
        .enqueue(Job::new("ok", json!({ "v": nested(200) })))
        .await
        .unwrap_err();
    assert!(matches!(err, jobs::Error::InvalidJob { .. }), "{err:?}");
    assert!(err.to_string().contains("125"), "{err}");
    let counts = queue.counts().await.unwrap();
    assert_eq!(counts.pending, 1);
    assert!(queue.get(ok).await.unwrap().is_some());
}

/// `enqueue_many` stores all jobs, in order.
async fn enqueue_many_keeps_order<Q: JobQueue + Clone>(queue: Q) {
    let jobs: Vec<Job> = (0..50)
        .map(|n| Job::new("ok", json!({ "label": format!("{n:02}") })))
        .collect();
    let ids = queue.enqueue_many(jobs.clone()).await.unwrap();
    assert_eq!(ids, jobs.iter().map(|j| j.id).collect::<Vec<_>>());
    let expected: Vec<String> = (0..50).map(|n| format!("{n:02}")).collect();
    assert_eq!(drain_names(&queue).await, expected);
}

/// A push wakes an idle worker at once, long before the polling interval.
async fn push_wakes_idle_worker<Q: JobQueue + Clone>(queue: Q) {
    let probe = Probe::new();
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(probe.clone())
        .polling_interval(Duration::from_secs(30))
        .build()
        .unwrap();
    let running = Running::start(worker.clone());
    // Let the worker find the queue empty and go to sleep.
    let warmup = worker.submit_job(Job::new("ok", json!({}))).await.unwrap();
    worker.wait_for(warmup.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let pushed = Instant::now();
    let job = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    probe.wait_started(job, 1).await;
    let latency = probe.attempts_of(job)[0].at - pushed;
    assert!(
        latency < Duration::from_secs(5),
        "took {latency:?}: the push did not wake the worker"
    );
    running.stop().await;
}
