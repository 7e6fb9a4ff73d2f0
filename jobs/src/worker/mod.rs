//! [`BackgroundJobWorker`]: runs jobs from a queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::context::DataMap;
use crate::error::{Error, Result};
use crate::job::{Job, JobId, JobStatus};
use crate::processor::{DynProcessor, JobProcessor};
use crate::queue::erased::DynQueue;
use crate::queue::{CancelOutcome, Enqueue, JobQueue, Lease, MemoryJobQueue, QueueCounts};
use crate::scheduler::JobScheduler;

mod runner;

/// Runs jobs from a queue: up to `max_concurrent_jobs` at once, each with a
/// timeout, retrying failures with backoff, and keeping every job's status
/// up to date in the queue.
///
/// Build it with [`BackgroundJobWorker::builder`]; clones share one worker.
/// Call [`run`](Self::run) (usually in a spawned task) to process jobs until
/// [`stop`](Self::stop) is called.
///
/// ```
/// use jobs::prelude::*;
/// use serde_json::json;
///
/// struct Echo;
/// impl JobProcessor for Echo {
///     async fn process(&self, job: &Job) -> JobResult {
///         JobResult::success(job.args.clone())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), jobs::Error> {
/// let worker = BackgroundJobWorker::builder()
///     .processor(Echo)
///     .max_concurrent_jobs(5)
///     .build()?;
/// let job = worker.submit_job(Job::new("echo", json!({"n": 1}))).await?;
///
/// let running = tokio::spawn(worker.clone().run_owned());
/// let done = worker.wait_for(job.id).await?;
/// assert_eq!(done.status, JobStatus::Completed);
/// worker.stop().await;
/// running.await.unwrap()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BackgroundJobWorker {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    id: String,
    queue: Arc<dyn DynQueue>,
    processor: Arc<dyn DynProcessor>,
    config: Config,
    data: Arc<DataMap>,
    slots: Arc<Semaphore>,
    running: Mutex<HashMap<JobId, Arc<runner::Control>>>,
    tasks: TaskTracker,
    stats: Stats,
    phase: watch::Sender<Phase>,
    stop: CancellationToken,
    report: Mutex<Option<StopReport>>,
    events: broadcast::Sender<JobEvent>,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
    scheduler: JobScheduler,
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    max_concurrent_jobs: usize,
    polling_interval: Duration,
    default_timeout: Option<Duration>,
    shutdown_timeout: Duration,
    lease: Duration,
    batch_size: usize,
    clock: Clock,
}

/// Where a worker is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    /// Built, not yet running.
    Idle,
    /// Taking and running jobs.
    Running,
    /// Stopping: takes no more jobs, waits for running ones.
    Stopping,
    /// Stopped for good.
    Stopped,
}

type Phase = WorkerState;

#[derive(Default)]
struct Stats {
    processed: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    cancelled: AtomicU64,
    expired: AtomicU64,
    timed_out: AtomicU64,
    panicked: AtomicU64,
}

/// What a worker has done since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Jobs that completed successfully.
    pub jobs_processed: u64,
    /// Jobs that failed for good (permanent error or retries exhausted).
    pub jobs_failed: u64,
    /// Failed attempts that were scheduled to run again.
    pub jobs_retried: u64,
    /// Running jobs that were cancelled.
    pub jobs_cancelled: u64,
    /// Jobs that expired before they could run.
    pub jobs_expired: u64,
    /// Attempts that ran past their timeout.
    pub jobs_timed_out: u64,
    /// Attempts that panicked.
    pub jobs_panicked: u64,
}

/// What [`BackgroundJobWorker::get_queue_stats`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueueStats {
    /// Jobs waiting to run (pending or retrying, including scheduled ones).
    pub queue_size: u64,
    /// Jobs this worker is running now.
    pub active_jobs: usize,
    /// How many more jobs this worker could run at once.
    pub available_slots: usize,
    /// The worker's concurrency limit.
    pub max_concurrent_jobs: usize,
    /// Jobs in the queue per status.
    pub counts: QueueCounts,
    /// What this worker has done.
    pub worker_stats: WorkerStats,
}

/// The result of [`BackgroundJobWorker::health_check`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerHealth {
    /// Whether the worker is running and its queue reachable.
    pub healthy: bool,
    /// Where the worker is in its life.
    pub state: WorkerState,
    /// Whether the queue answered.
    pub queue_reachable: bool,
    /// Jobs running now.
    pub active_jobs: usize,
    /// The latest backend error, if the queue is unreachable.
    pub error: Option<String>,
}

/// What [`BackgroundJobWorker::stop`] left behind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StopReport {
    /// Jobs that were still running when the shutdown timeout passed: their
    /// futures were dropped and they were handed back to the queue, ready to
    /// run again (by another worker, or this one's successor).
    pub abandoned: Vec<JobId>,
}

/// Something that happened to a job in this worker, from
/// [`BackgroundJobWorker::subscribe`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobEvent {
    /// The job.
    pub job_id: JobId,
    /// Its name.
    pub name: String,
    /// What happened.
    pub kind: JobEventKind,
}

/// What happened to a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobEventKind {
    /// An attempt started.
    Started,
    /// It completed successfully.
    Completed,
    /// An attempt failed and it will be retried.
    Retrying,
    /// It failed for good.
    Failed,
    /// It was cancelled while running.
    Cancelled,
    /// It expired before running.
    Expired,
    /// It was handed back to the queue unfinished (shutdown, or its lease
    /// was lost).
    Released,
}

impl JobEventKind {
    /// The job's status after this event.
    pub fn status(self) -> JobStatus {
        match self {
            JobEventKind::Started => JobStatus::Running,
            JobEventKind::Completed => JobStatus::Completed,
            JobEventKind::Retrying => JobStatus::Retrying,
            JobEventKind::Failed => JobStatus::Failed,
            JobEventKind::Cancelled => JobStatus::Cancelled,
            JobEventKind::Expired => JobStatus::Expired,
            JobEventKind::Released => JobStatus::Pending,
        }
    }
}

/// Builds a [`BackgroundJobWorker`].
pub struct WorkerBuilder {
    queue: Option<Arc<dyn DynQueue>>,
    processor: Option<Arc<dyn DynProcessor>>,
    config: Config,
    data: DataMap,
    id: Option<String>,
    scheduler: Option<JobScheduler>,
}

impl WorkerBuilder {
    /// The queue to take jobs from (default: a new [`MemoryJobQueue`]).
    pub fn queue(mut self, queue: impl JobQueue) -> Self {
        self.queue = Some(Arc::new(queue));
        self
    }

    /// The processor that runs jobs (default: the [`Registry`](crate::Registry)
    /// of `#[job]` functions).
    pub fn processor(mut self, processor: impl JobProcessor) -> Self {
        self.processor = Some(Arc::new(processor));
        self
    }

    /// How many jobs may run at once (default 10).
    pub fn max_concurrent_jobs(mut self, n: usize) -> Self {
        self.config.max_concurrent_jobs = n;
        self
    }

    /// How long an idle worker waits before looking at the queue again when
    /// nothing wakes it (default 1 s). Pushes wake it at once; this is only
    /// a fallback.
    pub fn polling_interval(mut self, interval: Duration) -> Self {
        self.config.polling_interval = interval;
        self
    }

    /// The timeout of jobs that set none (default 5 minutes).
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.config.default_timeout = Some(timeout);
        self
    }

    /// Lets jobs that set no timeout run as long as they like.
    pub fn no_default_timeout(mut self) -> Self {
        self.config.default_timeout = None;
        self
    }

    /// How long [`stop`](BackgroundJobWorker::stop) waits for running jobs
    /// before it abandons them (default 30 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// How long a reservation lasts without a heartbeat (default 30 s). A
    /// running job's lease is renewed every third of this; a networked
    /// queue gives the job to another worker when it runs out.
    pub fn lease_duration(mut self, lease: Duration) -> Self {
        self.config.lease = lease;
        self
    }

    /// The most jobs reserved in one call to the queue (default 64).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.config.batch_size = n;
        self
    }

    /// Where the worker reads the time (default: the system clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.config.clock = clock;
        self
    }

    /// Registers shared state that job handlers receive as `Data<T>`.
    pub fn data<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.data.insert(value);
        self
    }

    /// Registers shared state already behind an `Arc`.
    pub fn data_arc<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        self.data.insert_arc(value);
        self
    }

    /// The worker's id in logs and reservations (default: host name, process
    /// id and a random suffix).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Periodic tasks to enqueue while the worker runs (default: a new
    /// scheduler on the worker's clock). The worker adds the schedules its
    /// processor declares (`#[job(cron = "..")]` functions of the
    /// [`Registry`](crate::Registry)) to it when it starts, runs it onto its
    /// queue, and stops it when it stops. Keep a clone to change tasks
    /// meanwhile, or reach it with [`BackgroundJobWorker::scheduler`]. A
    /// scheduler runs in one worker at a time: given to two workers of one
    /// process, it runs in the first that starts.
    pub fn scheduler(mut self, scheduler: JobScheduler) -> Self {
        self.scheduler = Some(scheduler);
        self
    }

    /// The worker, or an error naming the setting that makes no sense.
    pub fn build(self) -> Result<BackgroundJobWorker> {
        let config = self.config;
        let invalid = |what: String| Err(Error::InvalidArgument(what));
        if config.max_concurrent_jobs == 0 {
            return invalid("max_concurrent_jobs must be at least 1".into());
        }
        if config.max_concurrent_jobs > Semaphore::MAX_PERMITS {
            return invalid(format!(
                "max_concurrent_jobs must be at most {}",
                Semaphore::MAX_PERMITS
            ));
        }
        if config.polling_interval.is_zero() {
            return invalid("polling_interval must be longer than zero".into());
        }
        if config.default_timeout == Some(Duration::ZERO) {
            return invalid("default_timeout must be longer than zero".into());
        }
        if config.lease < Duration::from_millis(30) {
            return invalid(format!(
                "lease_duration must be at least 30 ms, got {:?}",
                config.lease
            ));
        }
        if config.batch_size == 0 {
            return invalid("batch_size must be at least 1".into());
        }
        let processor = match self.processor {
            Some(processor) => processor,
            None => Arc::new(crate::registry::Registry::global()?),
        };
        let queue = self
            .queue
            .unwrap_or_else(|| Arc::new(MemoryJobQueue::builder().clock(config.clock).build()));
        let id = self.id.unwrap_or_else(default_worker_id);
        let scheduler = self
            .scheduler
            .unwrap_or_else(|| JobScheduler::builder().clock(config.clock).build());
        Ok(BackgroundJobWorker {
            inner: Arc::new(Inner {
                id,
                queue,
                processor,
                slots: Arc::new(Semaphore::new(config.max_concurrent_jobs)),
                config,
                data: Arc::new(self.data),
                running: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
                stats: Stats::default(),
                phase: watch::Sender::new(Phase::Idle),
                stop: CancellationToken::new(),
                report: Mutex::new(None),
                events: broadcast::Sender::new(1024),
                healthy: AtomicBool::new(true),
                last_error: Mutex::new(None),
                scheduler,
            }),
        })
    }
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    let suffix: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(6)
        .collect();
    format!("{host}-{}-{suffix}", std::process::id())
}

impl BackgroundJobWorker {
    /// A builder with the defaults: a new in-memory queue, the `#[job]`
    /// registry as processor, 10 jobs at once, 1 s polling fallback, 5 min
    /// default timeout, 30 s shutdown timeout.
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder {
            queue: None,
            processor: None,
            config: Config {
                max_concurrent_jobs: 10,
                polling_interval: Duration::from_secs(1),
                default_timeout: Some(Duration::from_secs(300)),
                shutdown_timeout: Duration::from_secs(30),
                lease: Duration::from_secs(30),
                batch_size: 64,
                clock: Clock::system(),
            },
            data: DataMap::new(),
            id: None,
            scheduler: None,
        }
    }

    /// The worker's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The scheduler of the worker's periodic tasks.
    pub fn scheduler(&self) -> &JobScheduler {
        &self.inner.scheduler
    }

    /// Where the worker is in its life.
    pub fn state(&self) -> WorkerState {
        *self.inner.phase.borrow()
    }

    /// Submits a job; returns it as stored (pending, or scheduled). An
    /// `Err` if the job's settings make no sense or the worker was stopped.
    pub async fn submit_job(&self, job: Job) -> Result<Job> {
        self.check_open()?;
        let stored = job.clone();
        self.inner.queue.enqueue(job).await?;
        Ok(stored)
    }

    fn check_open(&self) -> Result<()> {
        match self.state() {
            WorkerState::Stopping | WorkerState::Stopped => Err(Error::Stopped),
            _ => Ok(()),
        }
    }

    /// Runs jobs until [`stop`](Self::stop) is called; then waits for
    /// running jobs (up to the shutdown timeout), hands back the rest, and
    /// calls the processor's `shutdown`. Returns an error if the worker is
    /// already running or was stopped, or if the processor's `startup`
    /// fails.
    pub async fn run(&self) -> Result<()> {
        runner::run(&self.inner).await
    }

    /// [`run`](Self::run), taking the worker by value: handy for
    /// `tokio::spawn(worker.clone().run_owned())`.
    pub async fn run_owned(self) -> Result<()> {
        self.run().await
    }

    /// Stops the worker gracefully: it takes no more jobs, waits for the
    /// running ones up to the shutdown timeout, then drops the rest and hands
    /// them back to the queue, and returns which those were. Waits until
    /// [`run`](Self::run) has returned. Calling it again returns the same
    /// report.
    pub async fn stop(&self) -> StopReport {
        let mut phase = self.inner.phase.subscribe();
        let mut was = WorkerState::Idle;
        self.inner.phase.send_modify(|phase| {
            was = *phase;
            *phase = match *phase {
                WorkerState::Idle => WorkerState::Stopped,
                WorkerState::Running => WorkerState::Stopping,
                other => other,
            };
        });
        self.inner.stop.cancel();
        if was == WorkerState::Idle {
            return StopReport::default();
        }
        let _ = phase.wait_for(|p| *p == WorkerState::Stopped).await;
        self.inner.report.lock().clone().unwrap_or_default()
    }

    /// The queue's size, the worker's slots and its counters.
    pub async fn get_queue_stats(&self) -> Result<QueueStats> {
        let counts = self.inner.queue.counts().await?;
        let active_jobs = self.inner.running.lock().len();
        let max = self.inner.config.max_concurrent_jobs;
        Ok(QueueStats {
            queue_size: counts.waiting(),
            active_jobs,
            available_slots: max.saturating_sub(active_jobs),
            max_concurrent_jobs: max,
            counts,
            worker_stats: self.worker_stats(),
        })
    }

    /// What this worker has done since it was built.
    pub fn worker_stats(&self) -> WorkerStats {
        let s = &self.inner.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            jobs_processed: get(&s.processed),
            jobs_failed: get(&s.failed),
            jobs_retried: get(&s.retried),
            jobs_cancelled: get(&s.cancelled),
            jobs_expired: get(&s.expired),
            jobs_timed_out: get(&s.timed_out),
            jobs_panicked: get(&s.panicked),
        }
    }

    /// A job's status, or `None` if the queue does not know it.
    pub async fn get_job_status(&self, id: JobId) -> Result<Option<JobStatus>> {
        Ok(self.inner.queue.get(id).await?.map(|job| job.status))
    }

    /// A job in its current state.
    pub async fn get_job(&self, id: JobId) -> Result<Option<Job>> {
        self.inner.queue.get(id).await
    }

    /// Up to `limit` jobs with `status` (all if `None`), newest first.
    pub async fn list_jobs(&self, status: Option<JobStatus>, limit: usize) -> Result<Vec<Job>> {
        self.inner.queue.list(status, limit).await
    }

    /// Puts a failed (or cancelled, or expired) job back in the queue.
    /// Returns `false` if it is not in such a state.
    pub async fn retry_job(&self, id: JobId) -> Result<bool> {
        self.inner.queue.retry(id).await
    }

    /// Cancels a job: a waiting one will not run; a running one is stopped
    /// (its future dropped) wherever it runs. Returns `false` if the job had
    /// already finished or does not exist.
    pub async fn cancel_job(&self, id: JobId) -> Result<bool> {
        let outcome = self.inner.queue.cancel(id).await?;
        if outcome == CancelOutcome::CancelledRunning {
            runner::revoke(&self.inner, id, runner::StopReason::Cancelled);
        }
        Ok(outcome.is_cancelled())
    }

    /// Whether the worker is running and its queue answers.
    pub async fn health_check(&self) -> WorkerHealth {
        let state = self.state();
        let ping = self.inner.queue.ping().await;
        let queue_reachable = ping.is_ok() && self.inner.healthy.load(Ordering::Relaxed);
        let error = match ping {
            Err(e) => Some(e.to_string()),
            Ok(()) if !queue_reachable => self.inner.last_error.lock().clone(),
            Ok(()) => None,
        };
        WorkerHealth {
            healthy: queue_reachable && matches!(state, WorkerState::Idle | WorkerState::Running),
            state,
            queue_reachable,
            active_jobs: self.inner.running.lock().len(),
            error,
        }
    }

    /// Events about the jobs this worker runs, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.events.subscribe()
    }

    /// Waits until a job reaches a final status (completed, failed,
    /// cancelled, expired) and returns it. Works for jobs run by other
    /// workers too (it then looks every polling interval).
    pub async fn wait_for(&self, id: JobId) -> Result<Job> {
        let mut events = self.subscribe();
        loop {
            match self.inner.queue.get(id).await? {
                Some(job) if job.status.is_final() => return Ok(job),
                Some(_) => {}
                None => return Err(Error::NotFound(id)),
            }
            // Look again on news of this job, or every polling interval (it
            // may run in another process).
            let news = async {
                loop {
                    match events.recv().await {
                        Ok(event) if event.job_id != id => {}
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(self.inner.config.polling_interval, news).await;
        }
    }

    /// Waits until the queue has no waiting or running job (useful in
    /// examples and tests). Scheduled jobs count as waiting.
    pub async fn wait_until_idle(&self) -> Result<()> {
        let mut events = self.subscribe();
        loop {
            let counts = self.inner.queue.counts().await?;
            if counts.waiting() + counts.running == 0 {
                return Ok(());
            }
            tokio::select! {
                _ = events.recv() => {}
                _ = tokio::time::sleep(self.inner.config.polling_interval) => {}
            }
        }
    }

    /// Removes every job from the queue, in every state. Returns how many.
    pub async fn purge_queue(&self) -> Result<u64> {
        self.inner.queue.purge().await
    }

    /// Leases of the jobs running now (for tests and diagnostics).
    pub fn running_leases(&self) -> Vec<Lease> {
        self.inner
            .running
            .lock()
            .values()
            .map(|c| c.lease)
            .collect()
    }
}

impl Enqueue for BackgroundJobWorker {
    async fn enqueue(&self, job: Job) -> Result<JobId> {
        self.check_open()?;
        self.inner.queue.enqueue(job).await
    }

    async fn enqueue_many(&self, jobs: Vec<Job>) -> Result<Vec<JobId>> {
        self.check_open()?;
        self.inner.queue.enqueue_many(jobs).await
    }
}

impl std::fmt::Debug for BackgroundJobWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundJobWorker")
            .field("id", &self.inner.id)
            .field("state", &self.state())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}
