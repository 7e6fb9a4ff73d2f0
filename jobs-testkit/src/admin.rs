//! The admin cases of the conformance suite: what operator tools read and
//! do — filtered pages of jobs, deleting and purging by status, per-minute
//! throughput, the workers alive, each failed attempt's error.
//!
//! The cases are listed in `suite.rs`'s `define_suite!`, which makes them
//! reachable; one missing there is dead code, which this module denies as
//! `suite.rs` does.

#![deny(dead_code)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use jobs::{
    BackgroundJobWorker, DeleteOutcome, Error, Job, JobError, JobFilter, JobId, JobQueue,
    JobResult, JobStatus, Lease, MAX_ATTEMPT_ERRORS, Outcome, Reservation, THROUGHPUT_MINUTES,
    Take, Throughput, Unique, WorkerInfo,
};
use serde_json::json;

use crate::probe::Probe;
use crate::suite::Running;
use crate::{eventually, unique_name};

const LEASE: Duration = Duration::from_secs(30);

/// How long a case waits for something another task does soon.
const PATIENCE: Duration = Duration::from_secs(10);

async fn reserve_one<Q: JobQueue>(queue: &Q) -> Reservation {
    let mut got = queue
        .reserve("admin", &[Take::new(jobs::DEFAULT_QUEUE, 1)], LEASE)
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "one job was ready");
    got.remove(0)
}

async fn finish<Q: JobQueue>(queue: &Q, lease: Lease, outcome: Outcome) {
    assert!(
        queue.finish(lease, outcome, None).await.unwrap(),
        "the lease was held"
    );
}

/// Enqueues `job` and runs it to `outcome` at once (it must be the only
/// job ready in the default queue).
async fn run_to<Q: JobQueue>(queue: &Q, job: Job, outcome: Outcome) -> JobId {
    let id = queue.enqueue(job).await.unwrap();
    let taken = reserve_one(queue).await;
    assert_eq!(taken.job.id, id);
    finish(queue, taken.lease, outcome).await;
    id
}

fn completed() -> Outcome {
    Outcome::Completed(JobResult::success(json!(null)))
}

/// The ids of a page, to compare with what was expected (and show what
/// was found when it differs).
async fn page<Q: JobQueue>(queue: &Q, filter: JobFilter) -> (Vec<JobId>, bool) {
    let page = queue.find_jobs(&filter).await.unwrap();
    (page.jobs.iter().map(|j| j.id).collect(), page.more)
}

/// Status, name and queue filters, newest first, pages with `more` right,
/// an offset beyond the end empty; a page's jobs are the jobs `get` shows.
pub(crate) async fn find_jobs_filters_and_pages<Q: JobQueue + Clone>(queue: Q) {
    let base = Utc::now() - chrono::Duration::hours(1);
    let mut ids = Vec::new();
    for i in 0..5i64 {
        let name = if i % 2 == 0 { "alpha" } else { "beta" };
        let mut job = Job::new(name, json!({ "i": i }));
        // Distinct creation times, the oldest first.
        job.created_at = base + chrono::Duration::milliseconds(1500 * i + 7);
        if i == 4 {
            job = job.queue("other");
        }
        ids.push(job.id);
        queue.enqueue(job).await.unwrap();
    }
    // The oldest runs and completes; the others wait.
    let first = reserve_one(&queue).await;
    assert_eq!(first.job.id, ids[0]);
    finish(&queue, first.lease, completed()).await;
    let [a0, a1, a2, a3, a4] = [ids[0], ids[1], ids[2], ids[3], ids[4]];
    // A scheduled job is found with the waiting ones (among which it is
    // the newest).
    let mut later = Job::new("gamma", json!({})).delay(Duration::from_secs(3600));
    later.created_at = base + chrono::Duration::seconds(60);
    let s = queue.enqueue(later).await.unwrap();
    assert_eq!(
        page(
            &queue,
            JobFilter::new().status(JobStatus::Pending).page(0, 2)
        )
        .await,
        (vec![s, a4], true)
    );
    assert_eq!(
        page(&queue, JobFilter::new().name("gamma")).await,
        (vec![s], false)
    );
    assert_eq!(queue.delete(s).await.unwrap(), DeleteOutcome::Deleted);

    assert_eq!(
        page(&queue, JobFilter::new()).await,
        (vec![a4, a3, a2, a1, a0], false)
    );
    assert_eq!(
        page(&queue, JobFilter::new().page(0, 2)).await,
        (vec![a4, a3], true)
    );
    assert_eq!(
        page(&queue, JobFilter::new().page(2, 2)).await,
        (vec![a2, a1], true)
    );
    assert_eq!(
        page(&queue, JobFilter::new().page(4, 2)).await,
        (vec![a0], false)
    );
    assert_eq!(
        page(&queue, JobFilter::new().page(10, 2)).await,
        (vec![], false)
    );
    assert_eq!(
        page(&queue, JobFilter::new().page(0, 5)).await,
        (vec![a4, a3, a2, a1, a0], false),
        "a page holding exactly the rest has no more"
    );

    assert_eq!(
        page(&queue, JobFilter::new().status(JobStatus::Pending)).await,
        (vec![a4, a3, a2, a1], false)
    );
    assert_eq!(
        page(&queue, JobFilter::new().status(JobStatus::Completed)).await,
        (vec![a0], false)
    );
    assert_eq!(
        page(&queue, JobFilter::new().status(JobStatus::Failed)).await,
        (vec![], false)
    );
    assert_eq!(
        page(&queue, JobFilter::new().name("alpha")).await,
        (vec![a4, a2, a0], false)
    );
    assert_eq!(
        page(&queue, JobFilter::new().name("beta").page(0, 1)).await,
        (vec![a3], true)
    );
    assert_eq!(
        page(&queue, JobFilter::new().name("nobody")).await,
        (vec![], false)
    );
    assert_eq!(
        page(&queue, JobFilter::new().queue("other")).await,
        (vec![a4], false)
    );
    assert_eq!(
        page(&queue, JobFilter::new().queue(jobs::DEFAULT_QUEUE)).await,
        (vec![a3, a2, a1, a0], false)
    );
    assert_eq!(
        page(
            &queue,
            JobFilter::new().status(JobStatus::Pending).name("alpha")
        )
        .await,
        (vec![a4, a2], false)
    );
    assert_eq!(
        page(
            &queue,
            JobFilter::new()
                .status(JobStatus::Pending)
                .name("alpha")
                .queue(jobs::DEFAULT_QUEUE)
        )
        .await,
        (vec![a2], false)
    );

    // The jobs of a page are whole, as `get` shows them.
    let found = queue.find_jobs(&JobFilter::new()).await.unwrap();
    for job in &found.jobs {
        let got = queue.get(job.id).await.unwrap().expect("the job exists");
        assert_eq!(&got, job);
    }
    let done = &found.jobs[4];
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.args, json!({ "i": 0 }));
    assert_eq!(found.jobs[0].queue, "other");
}

/// Waiting, scheduled and finished jobs are deleted from everywhere (a
/// unique key is freed: the same unique job can be enqueued again); a
/// running one is left alone; an unknown id is not found.
pub(crate) async fn delete_removes_waiting_and_finished_not_running<Q: JobQueue + Clone>(queue: Q) {
    let done = run_to(&queue, Job::new("ok", json!({ "n": 1 })), completed()).await;
    let running_id = queue
        .enqueue(Job::new("ok", json!({ "n": 2 })))
        .await
        .unwrap();
    let running = reserve_one(&queue).await;
    assert_eq!(running.job.id, running_id);
    let waiting = queue
        .enqueue(Job::new("ok", json!({ "n": 3 })))
        .await
        .unwrap();
    let later = queue
        .enqueue(Job::new("ok", json!({ "n": 4 })).delay(Duration::from_secs(3600)))
        .await
        .unwrap();
    let key = unique_name("delete");
    let unique = || Job::new("ok", json!({ "n": 5 })).unique(Unique::new(key.clone()));
    let held = queue.push(unique()).await.unwrap();
    assert!(!held.conflict);
    let twin = queue.push(unique()).await.unwrap();
    assert!(twin.conflict, "the key is held");

    for id in [waiting, later, done, held.id] {
        assert_eq!(queue.delete(id).await.unwrap(), DeleteOutcome::Deleted);
        assert!(queue.get(id).await.unwrap().is_none(), "{id} is gone");
        assert_eq!(queue.delete(id).await.unwrap(), DeleteOutcome::NotFound);
    }
    assert_eq!(
        queue.delete(running_id).await.unwrap(),
        DeleteOutcome::Running
    );
    assert_eq!(
        queue.get(running_id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    assert_eq!(
        queue.delete(JobId::new()).await.unwrap(),
        DeleteOutcome::NotFound
    );

    // The unique key was freed with its holder.
    let again = queue.push(unique()).await.unwrap();
    assert!(!again.conflict, "the deleted job's key is free");

    let counts = queue.counts().await.unwrap();
    assert_eq!(
        (
            counts.pending,
            counts.scheduled,
            counts.running,
            counts.completed
        ),
        (1, 0, 1, 0),
        "{counts:?}"
    );
    // The deleted jobs are in no index: only the new unique job is
    // handed out, then nothing.
    finish(&queue, running.lease, completed()).await;
    let next = reserve_one(&queue).await;
    assert_eq!(next.job.id, again.id);
    finish(&queue, next.lease, completed()).await;
    let none = queue
        .reserve("admin", &[Take::new(jobs::DEFAULT_QUEUE, 10)], LEASE)
        .await
        .unwrap();
    assert!(none.is_empty(), "a deleted job was handed out");
    assert!(
        queue
            .find_jobs(&JobFilter::new())
            .await
            .unwrap()
            .jobs
            .iter()
            .all(|j| j.id == running_id || j.id == again.id)
    );
}

/// Purging a status removes every job of it and nothing else (in more than
/// one chunk where the backend works in chunks); `Running` is refused.
pub(crate) async fn purge_status_removes_only_that_status<Q: JobQueue + Clone>(queue: Q) {
    let failed = Outcome::Failed(JobResult::failure(JobError::permanent("no")));
    let c1 = run_to(&queue, Job::new("ok", json!({})), completed()).await;
    let c2 = run_to(&queue, Job::new("ok", json!({})), completed()).await;
    let f1 = run_to(&queue, Job::new("ok", json!({})), failed).await;
    let running_id = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    let running = reserve_one(&queue).await;
    assert_eq!(running.job.id, running_id);
    let key = unique_name("purge");
    let unique = || Job::new("ok", json!({ "u": 1 })).unique(Unique::new(key.clone()));
    assert!(!queue.push(unique()).await.unwrap().conflict);
    let many: Vec<Job> = (0..2_500)
        .map(|n| Job::new("ok", json!({ "n": n })))
        .collect();
    queue.enqueue_many(many).await.unwrap();

    match queue.purge_status(JobStatus::Running).await {
        Err(Error::InvalidArgument(_)) => {}
        other => panic!("purging running jobs: {other:?}"),
    }
    assert_eq!(queue.purge_status(JobStatus::Completed).await.unwrap(), 2);
    for id in [c1, c2] {
        assert!(queue.get(id).await.unwrap().is_none());
    }
    let counts = queue.counts().await.unwrap();
    assert_eq!(
        (
            counts.completed,
            counts.failed,
            counts.pending,
            counts.running
        ),
        (0, 1, 2_501, 1),
        "{counts:?}"
    );
    assert_eq!(queue.purge_status(JobStatus::Pending).await.unwrap(), 2_501);
    let counts = queue.counts().await.unwrap();
    assert_eq!(
        (
            counts.completed,
            counts.failed,
            counts.pending,
            counts.running
        ),
        (0, 1, 0, 1),
        "{counts:?}"
    );
    assert_eq!(
        queue.get(f1).await.unwrap().unwrap().status,
        JobStatus::Failed
    );
    assert_eq!(queue.purge_status(JobStatus::Pending).await.unwrap(), 0);
    assert!(
        !queue.push(unique()).await.unwrap().conflict,
        "the purged job's unique key is free"
    );
    assert_eq!(queue.purge_status(JobStatus::Failed).await.unwrap(), 1);
    // The running job is untouched and finishes.
    finish(&queue, running.lease, completed()).await;
    assert_eq!(
        queue.get(running_id).await.unwrap().unwrap().status,
        JobStatus::Completed
    );
}

/// A worker runs 3 jobs that succeed and 2 that fail for good: the minutes
/// show 5 processed, 2 failed; the series has the length asked for, whole
/// minutes one apart, the current one last.
pub(crate) async fn throughput_counts_processed_and_failed<Q: JobQueue + Clone>(queue: Q) {
    let before: u64 = queue
        .throughput(5)
        .await
        .unwrap()
        .iter()
        .map(|t| t.processed)
        .sum();
    assert_eq!(before, 0, "a new queue has processed nothing");
    let probe = Probe::new();
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(probe.clone())
        .polling_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for name in ["ok", "permanent", "ok", "permanent", "ok"] {
        ids.push(
            worker
                .submit_job(Job::new(name, json!({})))
                .await
                .unwrap()
                .id,
        );
    }
    let running = Running::start(worker.clone());
    for id in ids {
        worker.wait_for(id).await.unwrap();
    }
    running.stop().await;

    // The finishes may straddle a minute: sum the last few.
    let series = queue.throughput(5).await.unwrap();
    assert_eq!(series.len(), 5);
    let processed: u64 = series.iter().map(|t| t.processed).sum();
    let failed: u64 = series.iter().map(|t| t.failed).sum();
    assert_eq!((processed, failed), (5, 2), "{series:?}");
    for pair in series.windows(2) {
        assert_eq!(
            pair[1].minute - pair[0].minute,
            chrono::Duration::minutes(1)
        );
    }
    let last = series.last().unwrap().minute;
    assert_eq!(last, Throughput::minute_of(last), "whole minutes");
    let now = Utc::now();
    assert!(
        (now - last).num_seconds().abs() <= 120,
        "the last minute {last} is the current one ({now})"
    );
    assert_eq!(queue.throughput(1).await.unwrap().len(), 1);
    assert!(queue.throughput(0).await.unwrap().is_empty());
    assert_eq!(
        queue.throughput(100_000).await.unwrap().len(),
        THROUGHPUT_MINUTES
    );
}

/// A running worker is listed, as it reported itself (host, pid, queues,
/// concurrency); once stopped it is not. A report lapses after its time
/// to live.
pub(crate) async fn workers_lists_running_worker_and_forgets_stopped<Q: JobQueue + Clone>(
    queue: Q,
) {
    let id = unique_name("worker");
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(Probe::new())
        .id(id.clone())
        .max_concurrent_jobs(3)
        .lease_duration(Duration::from_millis(900))
        .polling_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let running = Running::start(worker);
    let listed = || async {
        queue
            .workers()
            .await
            .unwrap()
            .into_iter()
            .find(|w| w.id == id)
    };
    eventually("the worker is listed", PATIENCE, || async {
        listed().await.is_some()
    })
    .await;
    let me = listed().await.unwrap();
    assert_eq!(me.pid, std::process::id());
    assert!(!me.host.is_empty());
    assert_eq!(me.queues, [jobs::DEFAULT_QUEUE]);
    assert_eq!(me.concurrency, 3);
    assert!(me.last_seen >= me.started_at);
    running.stop().await;
    eventually("the stopped worker is not listed", PATIENCE, || async {
        listed().await.is_none()
    })
    .await;

    // A report lapses on its own.
    let mut other = WorkerInfo::new(unique_name("lapsing"));
    other.queues = vec!["media".into()];
    queue
        .report_worker(&other, Duration::from_millis(300))
        .await
        .unwrap();
    let found = queue.workers().await.unwrap();
    let seen = found
        .iter()
        .find(|w| w.id == other.id)
        .expect("the report is listed at once");
    assert_eq!(seen.queues, ["media"]);
    eventually("the lapsed report is not listed", PATIENCE, || async {
        queue
            .workers()
            .await
            .unwrap()
            .iter()
            .all(|w| w.id != other.id)
    })
    .await;
    // And one removed goes at once.
    queue.report_worker(&other, LEASE).await.unwrap();
    assert!(
        queue
            .workers()
            .await
            .unwrap()
            .iter()
            .any(|w| w.id == other.id)
    );
    queue.remove_worker(&other.id).await.unwrap();
    assert!(
        queue
            .workers()
            .await
            .unwrap()
            .iter()
            .all(|w| w.id != other.id)
    );
}

/// A job that fails twice, then succeeds, has two errors, of attempts 1
/// and 2, with their texts; one that fails more than
/// [`MAX_ATTEMPT_ERRORS`] times keeps the latest.
pub(crate) async fn attempt_errors_are_kept<Q: JobQueue + Clone>(queue: Q) {
    let probe = Probe::new();
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(probe)
        .polling_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let job = Job::new("flaky", json!({ "succeed_on": 3 }))
        .max_retries(3)
        .backoff(jobs::Backoff::exponential(Duration::from_millis(20)).without_jitter());
    let id = worker.submit_job(job).await.unwrap().id;
    let running = Running::start(worker.clone());
    let done = worker.wait_for(id).await.unwrap();
    running.stop().await;
    assert_eq!(done.status, JobStatus::Completed);
    let errors: Vec<(u32, &str)> = done
        .errors
        .iter()
        .map(|e| (e.attempt, e.error.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            (1, "transient failure on attempt 1"),
            (2, "transient failure on attempt 2")
        ]
    );
    assert!(done.errors[0].at <= done.errors[1].at);
    assert!(done.errors[1].at <= done.completed_at.unwrap() + chrono::Duration::seconds(1));
    let page = queue
        .find_jobs(&JobFilter::new().status(JobStatus::Completed))
        .await
        .unwrap();
    assert_eq!(page.jobs[0].errors, done.errors, "find_jobs shows them too");

    // Many failures: the latest are kept.
    let tries = MAX_ATTEMPT_ERRORS as u32 + 6;
    let id = queue
        .enqueue(Job::new("x", json!({})).max_retries(tries))
        .await
        .unwrap();
    for attempt in 1..=tries {
        let taken = reserve_one(&queue).await;
        assert_eq!((taken.job.id, taken.job.attempts), (id, attempt));
        let outcome = if attempt < tries {
            Outcome::Retry {
                result: JobResult::failure(JobError::retryable(format!("boom {attempt}"))),
                at: Utc::now() - chrono::Duration::seconds(1),
            }
        } else {
            Outcome::Failed(JobResult::failure(JobError::permanent("last")))
        };
        finish(&queue, taken.lease, outcome).await;
    }
    let job = queue.get(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.errors.len(), MAX_ATTEMPT_ERRORS);
    let first = tries - MAX_ATTEMPT_ERRORS as u32 + 1;
    let attempts: Vec<u32> = job.errors.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, (first..=tries).collect::<Vec<_>>());
    assert_eq!(job.errors[0].error, format!("boom {first}"));
    assert_eq!(job.errors.last().unwrap().error, "last");
    let at: Vec<DateTime<Utc>> = job.errors.iter().map(|e| e.at).collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "{at:?}");

    // Retried by hand, the job keeps its errors, and the next failure
    // (attempt 1 again) joins them, the oldest going.
    assert!(queue.retry(id).await.unwrap());
    let again = queue.get(id).await.unwrap().unwrap();
    assert_eq!(again.errors, job.errors);
    let taken = reserve_one(&queue).await;
    assert_eq!((taken.job.id, taken.job.attempts), (id, 1));
    let outcome = Outcome::Failed(JobResult::failure(JobError::permanent("again")));
    finish(&queue, taken.lease, outcome).await;
    let job = queue.get(id).await.unwrap().unwrap();
    assert_eq!(job.errors.len(), MAX_ATTEMPT_ERRORS);
    assert_eq!(job.errors[0].attempt, first + 1);
    let last = job.errors.last().unwrap();
    assert_eq!((last.attempt, last.error.as_str()), (1, "again"));
}
