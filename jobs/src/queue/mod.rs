//! Queues: the [`Enqueue`] and [`JobQueue`] traits, and the in-memory
//! [`MemoryJobQueue`].
//!
//! # The protocol
//!
//! A worker never *pops* a job; it *reserves* one. The job stays owned by the
//! queue, marked `Running` under a [`Lease`], until the worker reports how the
//! attempt ended with [`JobQueue::finish`] or hands it back with
//! [`JobQueue::release`]. A networked queue lets a lease expire when its
//! worker stops sending [`JobQueue::heartbeat`]s, and
//! [`JobQueue::recover_expired`] puts such jobs back: a crashed worker's job
//! runs again (at-least-once delivery). The lease's token fences the old
//! worker: once a job was taken from it, its late `finish` changes nothing.

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use serde_json::Value;
use tokio::sync::broadcast;

use crate::error::{Error, Result};
use crate::events::JobEvent;
use crate::flow::QueueLimits;
use crate::job::{AttemptError, Job, JobId, JobStatus};
use crate::result::JobResult;
use crate::workflow::{DependencyResult, WorkflowId, WorkflowStatus};

mod admin;
mod any;
pub(crate) mod erased;
mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod wake;

pub use admin::{
    DeleteOutcome, JobFilter, JobPage, MAX_PAGE, THROUGHPUT_MINUTES, Throughput, WorkerInfo,
};
pub use any::AnyQueue;
pub use memory::{MemoryJobQueue, MemoryJobQueueBuilder};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresJobQueue, PostgresJobQueueBuilder, PostgresLastRunStore, PostgresTx};
#[cfg(feature = "redis")]
pub use redis::{RedisJobQueue, RedisJobQueueBuilder, RedisLastRunStore};

/// How many finished jobs a queue keeps for inspection by default, on every
/// backend (the oldest go first; see each builder's `max_finished`).
pub const DEFAULT_MAX_FINISHED: u64 = 10_000;

/// Something jobs can be pushed onto: every queue, and the worker.
///
/// The typed `enqueue` helpers that `#[job]` generates take any `Enqueue`.
pub trait Enqueue: Send + Sync {
    /// Pushes one job and says what happened: stored, or — for a
    /// [unique](crate::Unique) job whose twin exists — not stored, with the
    /// existing job's id and [`Enqueued::conflict`](Enqueued#structfield.conflict) set. A job whose
    /// settings make no sense (see [`Job::validate`]) is an `Err` and is not
    /// stored; so is a job whose id is taken ([`Error::Duplicate`]).
    fn push(&self, job: Job) -> impl Future<Output = Result<Enqueued>> + Send;

    /// Pushes many jobs at once (in one round trip where the backend
    /// allows), each as [`push`](Self::push) would, in order. Either all are
    /// stored (but for unique conflicts, decided per job, earlier jobs of
    /// the same batch included) or none is (a backend that splits very
    /// large batches says what it guarantees for them, as `RedisJobQueue`
    /// does).
    fn push_many(&self, jobs: Vec<Job>) -> impl Future<Output = Result<Vec<Enqueued>>> + Send;

    /// Pushes one job; returns its id (for a unique job whose twin exists,
    /// the twin's id). See [`push`](Self::push).
    ///
    /// Counted in `jobs_enqueued_total`, and with the `opentelemetry`
    /// feature carrying the current span's trace context (see
    /// [`telemetry`](crate::telemetry)).
    fn enqueue(&self, mut job: Job) -> impl Future<Output = Result<JobId>> + Send {
        // Inside the future: the span it runs in is the enqueuing one (as in
        // `queue.enqueue(job).instrument(span)`).
        async move {
            let metric = crate::telemetry::enqueuing(&mut job);
            let pushed = self.push(job).await?;
            crate::telemetry::enqueued(&metric, &pushed);
            Ok(pushed.id)
        }
    }

    /// Pushes many jobs at once; returns their ids in order. See
    /// [`push_many`](Self::push_many). Counted and traced as
    /// [`enqueue`](Self::enqueue) is.
    fn enqueue_many(&self, mut jobs: Vec<Job>) -> impl Future<Output = Result<Vec<JobId>>> + Send {
        async move {
            let metrics: Vec<_> = jobs.iter_mut().map(crate::telemetry::enqueuing).collect();
            let pushed = self.push_many(jobs).await?;
            for (metric, pushed) in metrics.iter().zip(&pushed) {
                crate::telemetry::enqueued(metric, pushed);
            }
            Ok(pushed.into_iter().map(|e| e.id).collect())
        }
    }

    /// Pushes one job, or finds it already there: a job whose id is taken
    /// is taken to be this one, stored by an earlier try, and its id is
    /// returned as if it had been stored now.
    ///
    /// This makes retrying an enqueue safe. An enqueue that returned a
    /// transient `Err` (a timeout while the backend froze or restarted) may
    /// still have stored the job, to run later; retrying it with
    /// `enqueue_idempotent` and the same job (the same [`Job::id`]; give
    /// the job a stable id with [`Job::idempotency_key`]) returns the first
    /// try's job instead of storing a second one. The guarantee holds while
    /// the first job is still kept: pending, running, or among the finished
    /// jobs the queue retains (`max_finished`); once it was dropped from
    /// retention, the same id is stored afresh.
    ///
    /// ```
    /// use jobs::prelude::*;
    /// use serde_json::json;
    ///
    /// # #[tokio::main] async fn main() -> Result<(), jobs::Error> {
    /// let queue = MemoryJobQueue::new();
    /// let job = || Job::new("charge", json!({"order": 42})).idempotency_key("order-42");
    /// let first = queue.enqueue_idempotent(job()).await?;
    /// // A retry (say, after a timeout) finds the first one.
    /// assert_eq!(queue.enqueue_idempotent(job()).await?, first);
    /// assert_eq!(queue.counts().await?.pending, 1);
    /// # Ok(()) }
    /// ```
    fn enqueue_idempotent(&self, job: Job) -> impl Future<Output = Result<JobId>> + Send {
        let id = job.id;
        let pushed = self.enqueue(job);
        async move {
            match pushed.await {
                Err(crate::Error::Duplicate(taken)) if taken == id => Ok(id),
                other => other,
            }
        }
    }
}

impl<T: Enqueue + ?Sized> Enqueue for &T {
    fn push(&self, job: Job) -> impl Future<Output = Result<Enqueued>> + Send {
        (**self).push(job)
    }

    fn push_many(&self, jobs: Vec<Job>) -> impl Future<Output = Result<Vec<Enqueued>>> + Send {
        (**self).push_many(jobs)
    }

    // Forwarded, so that a target's own counting is not done twice.
    fn enqueue(&self, job: Job) -> impl Future<Output = Result<JobId>> + Send {
        (**self).enqueue(job)
    }

    fn enqueue_many(&self, jobs: Vec<Job>) -> impl Future<Output = Result<Vec<JobId>>> + Send {
        (**self).enqueue_many(jobs)
    }
}

impl<T: Enqueue + ?Sized> Enqueue for std::sync::Arc<T> {
    fn push(&self, job: Job) -> impl Future<Output = Result<Enqueued>> + Send {
        (**self).push(job)
    }

    fn push_many(&self, jobs: Vec<Job>) -> impl Future<Output = Result<Vec<Enqueued>>> + Send {
        (**self).push_many(jobs)
    }

    // Forwarded, so that a target's own counting is not done twice.
    fn enqueue(&self, job: Job) -> impl Future<Output = Result<JobId>> + Send {
        (**self).enqueue(job)
    }

    fn enqueue_many(&self, jobs: Vec<Job>) -> impl Future<Output = Result<Vec<JobId>>> + Send {
        (**self).enqueue_many(jobs)
    }
}

/// What [`Enqueue::push`] did with one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Enqueued {
    /// The job's id: the new job's, or for a conflict the existing one's.
    pub id: JobId,
    /// Whether a [unique](crate::Unique) job with the same key existed, so
    /// nothing was stored (Oban's `conflict?`).
    pub conflict: bool,
}

impl Enqueued {
    /// A job that was stored.
    pub fn new(id: JobId) -> Self {
        Enqueued {
            id,
            conflict: false,
        }
    }

    /// A unique job that was not stored because `existing` matched it.
    pub fn conflict(existing: JobId) -> Self {
        Enqueued {
            id: existing,
            conflict: true,
        }
    }
}

/// What a worker asks of one named queue when it reserves: up to `max`
/// jobs, within the queue's fleet-wide `limits`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Take {
    /// The queue's name.
    pub queue: Cow<'static, str>,
    /// At most this many jobs from it.
    pub max: usize,
    /// The queue's own limits, as this worker was configured.
    pub limits: QueueLimits,
}

impl Take {
    /// Up to `max` jobs from `queue`, with no queue-wide limits.
    pub fn new(queue: impl Into<Cow<'static, str>>, max: usize) -> Self {
        Take {
            queue: queue.into(),
            max,
            limits: QueueLimits::default(),
        }
    }

    /// Sets the queue-wide limits.
    pub fn limits(mut self, limits: QueueLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// One named queue as [`QueueAdmin::queues`] sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueueInfo {
    /// Its name.
    pub name: String,
    /// Whether it is paused ([`QueueAdmin::pause_queue`]).
    pub paused: bool,
    /// Jobs ready to run now (not scheduled for later, not held back by a
    /// limit).
    pub ready: u64,
}

impl QueueInfo {
    /// A queue's info.
    pub fn new(name: impl Into<String>, paused: bool, ready: u64) -> Self {
        QueueInfo {
            name: name.into(),
            paused,
            ready,
        }
    }
}

/// A worker's hold on a reserved job: the job's id and the reservation's
/// token. Only the current holder's `finish` or `release` take effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lease {
    /// The reserved job.
    pub job_id: JobId,
    /// Unique per reservation: fences workers whose lease was taken over.
    pub token: u64,
}

/// A job handed to a worker by [`JobQueue::reserve`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Reservation {
    /// The job, as it is now stored: `Running`, with `attempts` counting this
    /// attempt and `started_at` set.
    pub job: Job,
    /// The worker's hold on it.
    pub lease: Lease,
}

impl Reservation {
    /// A reservation of `job` under `lease`.
    pub fn new(job: Job, lease: Lease) -> Self {
        Reservation { job, lease }
    }
}

/// How one attempt of a job ended, as reported by the worker.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// It succeeded: the job becomes `Completed`.
    Completed(JobResult),
    /// It failed and will be tried again at `at`: the job becomes `Retrying`.
    Retry {
        /// The failed attempt's result.
        result: JobResult,
        /// When the next attempt becomes ready.
        at: DateTime<Utc>,
    },
    /// It failed for good: the job becomes `Failed`.
    Failed(JobResult),
    /// It was cancelled while running: the job becomes `Cancelled`.
    Cancelled,
    /// Its `expires_at` had passed: the job becomes `Expired`.
    Expired,
    /// The handler asked to run again at `at` without the attempt counting
    /// ([`JobError::snooze`](crate::JobError::snooze)): the job waits again,
    /// `Pending` (or `Retrying` if an earlier attempt failed), with its
    /// attempt count back where it was before this attempt.
    Snoozed {
        /// When it becomes ready again.
        at: DateTime<Utc>,
    },
}

impl Outcome {
    /// The status the job has after this outcome.
    pub fn status(&self) -> JobStatus {
        match self {
            Outcome::Completed(_) => JobStatus::Completed,
            Outcome::Retry { .. } => JobStatus::Retrying,
            Outcome::Failed(_) => JobStatus::Failed,
            Outcome::Cancelled => JobStatus::Cancelled,
            Outcome::Expired => JobStatus::Expired,
            // As a released job: pending unless an earlier attempt failed.
            Outcome::Snoozed { .. } => JobStatus::Pending,
        }
    }

    /// Applies the outcome to a job record.
    pub fn apply(&self, job: &mut Job, now: DateTime<Utc>) {
        job.status = self.status();
        match self {
            Outcome::Snoozed { at } => {
                job.attempts = job.attempts.saturating_sub(1);
                if job.attempts > 0 {
                    job.status = JobStatus::Retrying;
                }
                job.scheduled_at = Some(*at);
                job.started_at = None;
            }
            Outcome::Completed(result) => {
                job.result = Some(Box::new(result.clone()));
            }
            Outcome::Retry { result, at } => {
                job.last_error.clone_from(&result.error);
                let error = AttemptError::new(
                    job.attempts,
                    now,
                    result.error.as_deref().unwrap_or("failed"),
                );
                job.push_error(error);
                job.result = Some(Box::new(result.clone()));
                job.scheduled_at = Some(*at);
            }
            Outcome::Failed(result) => {
                job.last_error.clone_from(&result.error);
                let error = AttemptError::new(
                    job.attempts,
                    now,
                    result.error.as_deref().unwrap_or("failed"),
                );
                job.push_error(error);
                job.result = Some(Box::new(result.clone()));
            }
            Outcome::Cancelled => {}
            Outcome::Expired => {}
        }
        if job.status.is_final() {
            job.completed_at = Some(now);
        }
    }
}

/// What [`QueueAdmin::cancel`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The job was waiting and is now `Cancelled`; it will not run.
    Cancelled,
    /// The job was running; it is now `Cancelled`, and the worker running it
    /// stops it (its lease is revoked, so its result is discarded).
    CancelledRunning,
    /// The job had already finished with this status; nothing changed.
    AlreadyFinished(JobStatus),
    /// No such job.
    NotFound,
}

impl CancelOutcome {
    /// Whether the call cancelled the job.
    pub fn is_cancelled(self) -> bool {
        matches!(
            self,
            CancelOutcome::Cancelled | CancelOutcome::CancelledRunning
        )
    }
}

/// How many jobs a queue holds, per status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueueCounts {
    /// Waiting to run (ready now or scheduled).
    pub pending: u64,
    /// Of the waiting jobs (pending or retrying), those due later.
    pub scheduled: u64,
    /// Reserved by a worker.
    pub running: u64,
    /// Waiting to be retried.
    pub retrying: u64,
    /// Finished successfully (those still kept for inspection).
    pub completed: u64,
    /// Failed for good (those still kept).
    pub failed: u64,
    /// Cancelled (those still kept).
    pub cancelled: u64,
    /// Expired (those still kept).
    pub expired: u64,
}

impl QueueCounts {
    /// Jobs that are waiting to run: pending and retrying.
    pub fn waiting(&self) -> u64 {
        self.pending + self.retrying
    }

    /// The count for one status.
    pub fn get(&self, status: JobStatus) -> u64 {
        match status {
            JobStatus::Pending => self.pending,
            JobStatus::Running => self.running,
            JobStatus::Completed => self.completed,
            JobStatus::Failed => self.failed,
            JobStatus::Retrying => self.retrying,
            JobStatus::Cancelled => self.cancelled,
            JobStatus::Expired => self.expired,
        }
    }

    /// Sets the count for one status.
    pub fn set(&mut self, status: JobStatus, count: u64) {
        let slot = match status {
            JobStatus::Pending => &mut self.pending,
            JobStatus::Running => &mut self.running,
            JobStatus::Completed => &mut self.completed,
            JobStatus::Failed => &mut self.failed,
            JobStatus::Retrying => &mut self.retrying,
            JobStatus::Cancelled => &mut self.cancelled,
            JobStatus::Expired => &mut self.expired,
        };
        *slot = count;
    }
}

/// A queue backend: where jobs wait, and how workers take them.
///
/// Implemented by [`MemoryJobQueue`] and, with the `redis` feature,
/// `RedisJobQueue`. The worker knows nothing else of a backend; see the
/// [module docs](self) for the reservation protocol.
///
/// The trait holds the protocol a worker runs; what an operator does with
/// the jobs (look up, list, cancel, retry, count, purge) is the
/// [`QueueAdmin`] supertrait, which tools that only inspect a queue (a
/// dashboard, a CLI) take on its own. A backend implements both; the
/// conformance suite in `jobs-testkit` checks both.
pub trait JobQueue: Enqueue + QueueAdmin + 'static {
    /// Reserves ready jobs for `worker`: from each queue of `takes`, in the
    /// order given, up to its `max`, most urgent first (and in the order
    /// they became ready within a priority). Each is marked `Running`, its
    /// `attempts` counted, under a lease of `lease`. Returns at once,
    /// possibly with none.
    ///
    /// A paused queue gives nothing. A job that a limit holds back (its
    /// queue's [`Take::limits`], its own [`Job::concurrency`] or
    /// [`Job::rate_limit`]) is not reserved and not counted, and keeps its
    /// place: it is reserved, ahead of jobs that became ready after it, once
    /// the limit lets it — a finished job frees a concurrency slot, a rate
    /// window passes — and the queue wakes waiting workers then.
    fn reserve(
        &self,
        worker: &str,
        takes: &[Take],
        lease: Duration,
    ) -> impl Future<Output = Result<Vec<Reservation>>> + Send;

    /// Waits until a job may be ready: one was pushed, a scheduled one came
    /// due, a limit or a pause that held jobs back lifted, or `timeout`
    /// passed (the polling fallback). May return early, but must not return
    /// at once merely because jobs wait that limits or pauses hold back.
    fn wait_for_jobs(&self, timeout: Duration) -> impl Future<Output = ()> + Send;

    /// Records a running job's progress (any JSON value, e.g. a fraction)
    /// on its record, where [`QueueAdmin::get`] shows it, and sends a
    /// [`JobEventKind::Progress`](crate::JobEventKind::Progress) event.
    /// Returns `false` (and changes nothing) if the lease is no longer
    /// held. The worker rate-limits the calls a chatty job makes.
    fn progress(&self, lease: Lease, progress: Value) -> impl Future<Output = Result<bool>> + Send;

    /// Extends the leases of jobs still running by `lease`. Returns the
    /// leases that are no longer held — the job was cancelled, or its lease
    /// expired and was taken over — so the worker can stop those jobs.
    fn heartbeat(
        &self,
        leases: &[Lease],
        lease: Duration,
    ) -> impl Future<Output = Result<Vec<Lease>>> + Send;

    /// Records how an attempt ended, and, for a recurring job, atomically
    /// enqueues `next`, its next run. Returns `false` (and changes nothing)
    /// if the lease is no longer held.
    fn finish(
        &self,
        lease: Lease,
        outcome: Outcome,
        next: Option<Job>,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Hands reserved jobs back: ready again at once, the attempt not
    /// counted. Used by a stopping worker. Returns how many were released.
    fn release(&self, leases: &[Lease]) -> impl Future<Output = Result<usize>> + Send;

    /// Puts the jobs whose lease expired (their worker died) back in the
    /// queue, or fails them if that was their last attempt. Returns how many.
    fn recover_expired(&self) -> impl Future<Output = Result<usize>> + Send;

    /// Resolves when a job running under this queue may have been cancelled
    /// (or taken over) from elsewhere, e.g. by another process, so that the
    /// worker checks its leases with a [`heartbeat`](Self::heartbeat) at once
    /// instead of at its next period. The default never resolves: leases
    /// are then checked every heartbeat period.
    fn revocations(&self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }

    /// Records that a worker is alive, as `info` describes it, until `ttl`
    /// passes without another report ([`QueueAdmin::workers`] lists it
    /// until then). Workers call it every heartbeat period.
    fn report_worker(
        &self,
        info: &WorkerInfo,
        ttl: Duration,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Forgets a worker that stopped.
    fn remove_worker(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// What the dependencies of workflow step `id` left when they finished
    /// ([`workflow`](crate::workflow)): each one's status and result, in the
    /// order they finished — the steps it was enqueued with and any added
    /// later ([`Workflow::before`](crate::workflow::Workflow::before)).
    /// Empty for a job that waits for nothing. The worker loads them before
    /// it runs a step ([`JobContext::results`](crate::JobContext::results));
    /// they are kept with the job, so they outlive the dependencies' own
    /// records.
    fn dependency_results(
        &self,
        id: JobId,
    ) -> impl Future<Output = Result<Vec<DependencyResult>>> + Send;
}

/// What an operator does with a queue's jobs: look them up, list, cancel,
/// retry, count and purge them. Every [`JobQueue`] is one; the worker's
/// management methods (`get_job`, `cancel_job`, ..) call these.
pub trait QueueAdmin: Send + Sync {
    /// One job by id, in its current state.
    fn get(&self, id: JobId) -> impl Future<Output = Result<Option<Job>>> + Send;

    /// Up to `limit` jobs with `status` (any status if `None`), most recent
    /// first.
    fn list(
        &self,
        status: Option<JobStatus>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Job>>> + Send;

    /// One page of the jobs matching `filter` (status, name, queue), newest
    /// first (by `created_at`, then id); [`JobPage::more`] says whether
    /// another page follows.
    fn find_jobs(&self, filter: &JobFilter) -> impl Future<Output = Result<JobPage>> + Send;

    /// Removes a job that is not running — waiting, scheduled or finished —
    /// as if it never existed (a unique key it held is freed). A running job
    /// is left alone ([`DeleteOutcome::Running`]): cancel it first.
    fn delete(&self, id: JobId) -> impl Future<Output = Result<DeleteOutcome>> + Send;

    /// Removes every job with `status`, which must not be `Running`
    /// (`Err(InvalidArgument)`): e.g. all completed jobs, or every job
    /// waiting. Returns how many were removed.
    fn purge_status(&self, status: JobStatus) -> impl Future<Output = Result<u64>> + Send;

    /// Attempts processed and failed per minute, fleet-wide, for the last
    /// `minutes` minutes (at most [`THROUGHPUT_MINUTES`]), oldest first,
    /// the current minute last; minutes without any are zeros.
    fn throughput(&self, minutes: usize) -> impl Future<Output = Result<Vec<Throughput>>> + Send;

    /// The workers alive: each that reported itself
    /// ([`JobQueue::report_worker`]) within its time to live, by id.
    fn workers(&self) -> impl Future<Output = Result<Vec<WorkerInfo>>> + Send;

    /// Cancels a waiting or running job.
    fn cancel(&self, id: JobId) -> impl Future<Output = Result<CancelOutcome>> + Send;

    /// Puts a `Failed`, `Cancelled` or `Expired` job back in the queue with
    /// its attempts reset. Returns `false` if the job is not in such a state.
    fn retry(&self, id: JobId) -> impl Future<Output = Result<bool>> + Send;

    /// How many jobs there are per status.
    fn counts(&self) -> impl Future<Output = Result<QueueCounts>> + Send;

    /// Removes every job, in every state. Returns how many were removed.
    fn purge(&self) -> impl Future<Output = Result<u64>> + Send;

    /// Whether the backend is reachable.
    fn ping(&self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Pauses the named queue, fleet-wide: workers in every process stop
    /// taking its jobs (within their polling interval at most; at once where
    /// the backend can tell them), running ones finish, and jobs can still
    /// be enqueued. The paused state is stored in the backend, so it
    /// outlives worker restarts. Returns `false` if it was paused already.
    fn pause_queue(&self, queue: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Resumes a paused queue, waking waiting workers. Returns `false` if it
    /// was not paused.
    fn resume_queue(&self, queue: &str) -> impl Future<Output = Result<bool>> + Send;

    /// The named queues the backend knows of (any that ever had a job, or
    /// is paused), sorted by name.
    fn queues(&self) -> impl Future<Output = Result<Vec<QueueInfo>>> + Send;

    /// A workflow or batch: its counts, and its steps whose jobs are still
    /// kept. `None` if it is unknown (or every job of it was dropped).
    fn workflow(
        &self,
        id: WorkflowId,
    ) -> impl Future<Output = Result<Option<WorkflowStatus>>> + Send;

    /// Cancels every step of a workflow or batch that has not finished —
    /// waiting, held back by its dependencies, or running — so nothing of
    /// it runs any more, a batch's callbacks included. Returns how many
    /// steps it cancelled;
    /// [`Error::InvalidArgument`] if the workflow is unknown.
    fn cancel_workflow(&self, id: WorkflowId) -> impl Future<Output = Result<u64>> + Send {
        async move {
            let unknown = || Error::InvalidArgument(format!("no workflow {id}"));
            let before = self.workflow(id).await?.ok_or_else(unknown)?;
            // Dependants first (the steps are listed in the order stored,
            // dependencies before dependants): a step that runs always must
            // not be released by the cancel of what it waits for.
            for step in before.steps.iter().rev().filter(|s| !s.status.is_final()) {
                self.cancel(step.job_id).await?;
            }
            let after = self.workflow(id).await?.ok_or_else(unknown)?;
            Ok(after.cancelled.saturating_sub(before.cancelled))
        }
    }

    /// Events of this queue's jobs — started, progress, finished, released
    /// — from every process using the backend (a networked backend relays
    /// them; events sent while a subscriber lags or reconnects are lost, so
    /// look at [`get`](Self::get) for the truth).
    fn subscribe(&self) -> broadcast::Receiver<JobEvent>;

    /// Waits until the job reaches a final status (from any process) and
    /// returns it. `Err(NotFound)` if no such job exists.
    fn wait_for(&self, id: JobId) -> impl Future<Output = Result<Job>> + Send {
        async move {
            let mut events = self.subscribe();
            loop {
                match self.get(id).await? {
                    Some(job) if job.status.is_final() => return Ok(job),
                    Some(_) => {}
                    None => return Err(Error::NotFound(id)),
                }
                // Wait for an event of this job that ends it, or look again
                // after a while (an event may be lost).
                let deadline = tokio::time::sleep(Duration::from_secs(1));
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        _ = &mut deadline => break,
                        event = events.recv() => match event {
                            Ok(e) if e.job_id == id && e.kind.is_final() => break,
                            Ok(_) => {}
                            Err(broadcast::error::RecvError::Lagged(_)) => break,
                            Err(broadcast::error::RecvError::Closed) => {
                                (&mut deadline).await;
                                break;
                            }
                        },
                    }
                }
            }
        }
    }
}
