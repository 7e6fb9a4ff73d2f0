//! [`BackgroundJobWorker`]: runs jobs from a queue.
//!
//! One concern per file:
//!
//! - this file: the worker handle, and what it offers while it lives
//!   (submitting, stopping, stats, health, managing jobs and queues,
//!   events);
//! - `builder`: [`WorkerBuilder`], its defaults and the checks of `build`
//!   (named queues, their concurrency and limits);
//! - `types`: the plain values a worker reports ([`WorkerState`],
//!   [`WorkerStats`], [`QueueStats`], [`WorkerHealth`], [`StopReport`]);
//! - `runner`: the run loop (taking jobs from each named queue, running
//!   each job and writing its progress, heartbeats, shutdown);
//! - `scheduling`: how a worker runs its [`JobScheduler`] (the tasks its
//!   processor declares, onto its own queue).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore, broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::context::DataMap;
use crate::error::{Error, Result};
use crate::job::{Job, JobId, JobStatus};
use crate::processor::DynProcessor;
use crate::queue::erased::DynQueue;
use crate::queue::{CancelOutcome, Enqueue, Enqueued, Lease, QueueInfo, Take};
use crate::scheduler::JobScheduler;

mod builder;
mod runner;
mod scheduling;
mod types;

use crate::events::JobEvent;
pub use builder::WorkerBuilder;
use types::Stats;
pub use types::{QueueStats, StopReport, WorkerHealth, WorkerState, WorkerStats};

// One attempt of a job, as the worker runs it: also what `jobs::testing` runs.
pub(crate) use runner::{decide, execute, next_run};

/// Runs jobs from a queue: up to `max_concurrent_jobs` at once (or, with
/// [named queues](WorkerBuilder::queues), up to each queue's concurrency),
/// each with a timeout, retrying failures with backoff, and keeping every
/// job's status up to date in the queue.
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
    /// The named queues it takes from, in the order given, each with its
    /// own slots.
    lanes: Box<[Lane]>,
    /// The worker-wide cap over all lanes, if one was set beside named
    /// queues.
    cap: Option<Arc<Semaphore>>,
    /// Whether the main loop serves several lanes or a cap: it then waits on
    /// `freed` for a slot to come back.
    multi: bool,
    /// Signalled when a slot comes back (several lanes or a cap only).
    freed: Notify,
    running: Mutex<foldhash::HashMap<JobId, Arc<runner::Control>>>,
    tasks: TaskTracker,
    stats: Stats,
    phase: watch::Sender<WorkerState>,
    stop: CancellationToken,
    report: Mutex<Option<StopReport>>,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
    scheduler: JobScheduler,
}

/// One named queue a worker takes from, and its slots.
pub(crate) struct Lane {
    /// The queue's name and limits; `max` is 1 (what a slot that refills
    /// itself asks for).
    take: Take,
    /// One permit per job of this queue that may run here at once.
    slots: Arc<Semaphore>,
    /// Whether the last reserve from this queue filled every slot it asked
    /// for: while it did, a finishing job takes the next one itself instead
    /// of handing its slot back to the main loop.
    backlog: AtomicBool,
}

impl Lane {
    /// A take of up to `max` jobs from this lane's queue.
    fn take(&self, max: usize) -> Take {
        let mut take = self.take.clone();
        take.max = max;
        take
    }
}

/// A named queue as configured: its name, its concurrency in this worker,
/// its fleet-wide limits.
#[derive(Clone, Debug)]
pub(crate) struct LaneConfig {
    name: std::borrow::Cow<'static, str>,
    concurrency: usize,
    limits: crate::flow::QueueLimits,
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// How many jobs may run at once in all: the cap, or the sum of the
    /// lanes' concurrency.
    max_concurrent_jobs: usize,
    lanes: Vec<LaneConfig>,
    cap: Option<usize>,
    polling_interval: Duration,
    default_timeout: Option<Duration>,
    shutdown_timeout: Duration,
    lease: Duration,
    batch_size: usize,
    /// How often the gauges of the queue's depth are refreshed, if at all.
    metrics_interval: Option<Duration>,
    clock: Clock,
}

impl BackgroundJobWorker {
    /// A builder with the defaults: a new in-memory queue, the `#[job]`
    /// registry as processor, 10 jobs at once, 1 s polling fallback, 5 min
    /// default timeout, 30 s shutdown timeout.
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::new()
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
    pub async fn submit_job(&self, mut job: Job) -> Result<Job> {
        self.check_open()?;
        let metric = crate::telemetry::enqueuing(&mut job);
        let stored = job.clone();
        let pushed = self.inner.queue.push(job).await?;
        crate::telemetry::enqueued(&metric, &pushed);
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
    /// calls the processor's `shutdown`. Returns an error, without running a
    /// job, if the worker is already running or was stopped, if the
    /// processor's shared state is missing
    /// ([`JobProcessor::check_data`](crate::JobProcessor::check_data)), if
    /// the periodic tasks it declares are invalid, or if its `startup` fails.
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
        self.inner.stats.snapshot()
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
    /// (its future dropped) wherever it runs — when it runs in this worker,
    /// by the time this returns. Returns `false` if the job had already
    /// finished or does not exist.
    pub async fn cancel_job(&self, id: JobId) -> Result<bool> {
        let outcome = self.inner.queue.cancel(id).await?;
        if outcome == CancelOutcome::CancelledRunning {
            runner::revoke(&self.inner, id, runner::StopReason::Cancelled).await;
        }
        Ok(outcome.is_cancelled())
    }

    /// A workflow or batch: its counts and kept steps
    /// ([`QueueAdmin::workflow`](crate::QueueAdmin::workflow)).
    pub async fn get_workflow(
        &self,
        id: crate::workflow::WorkflowId,
    ) -> Result<Option<crate::workflow::WorkflowStatus>> {
        self.inner.queue.workflow(id).await
    }

    /// Cancels every step of a workflow or batch that has not finished
    /// ([`QueueAdmin::cancel_workflow`](crate::QueueAdmin::cancel_workflow));
    /// its steps running in this worker are stopped by the time this
    /// returns. Returns how many steps were cancelled.
    pub async fn cancel_workflow(&self, id: crate::workflow::WorkflowId) -> Result<u64> {
        let before = self.inner.queue.workflow(id).await?;
        let cancelled = self.inner.queue.cancel_workflow(id).await?;
        for step in before.iter().flat_map(|w| &w.steps) {
            if step.status == JobStatus::Running {
                runner::revoke(&self.inner, step.job_id, runner::StopReason::Cancelled).await;
            }
        }
        Ok(cancelled)
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

    /// Events of the queue's jobs from now on — started, progress,
    /// finished, released — whichever worker runs them: the queue's own
    /// ([`QueueAdmin::subscribe`](crate::QueueAdmin::subscribe)). Events
    /// are best-effort (a lagging receiver loses some): look at
    /// [`get_job`](Self::get_job) for the truth.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.queue.subscribe()
    }

    /// Waits until a job reaches a final status (completed, failed,
    /// cancelled, expired) and returns it, wherever it runs: it looks again
    /// on each event of the job from the queue, and every polling interval
    /// in case an event was lost.
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

    /// Pauses the named queue fleet-wide (see
    /// [`QueueAdmin::pause_queue`](crate::QueueAdmin::pause_queue)): no
    /// worker takes its jobs until it is resumed; running ones finish.
    /// Returns `false` if it was paused already.
    pub async fn pause_queue(&self, queue: &str) -> Result<bool> {
        crate::job::check_queue_name(queue)?;
        self.inner.queue.pause_queue(queue).await
    }

    /// Resumes a paused queue. Returns `false` if it was not paused.
    pub async fn resume_queue(&self, queue: &str) -> Result<bool> {
        crate::job::check_queue_name(queue)?;
        self.inner.queue.resume_queue(queue).await
    }

    /// The named queues the backend knows of, sorted by name, with whether
    /// each is paused and how many jobs are ready in it.
    pub async fn queues(&self) -> Result<Vec<QueueInfo>> {
        self.inner.queue.queues().await
    }

    /// How many jobs this worker runs at once at most: its
    /// `max_concurrent_jobs`, or with named queues the sum of their
    /// concurrency (or the cap, if lower).
    pub fn max_concurrent_jobs(&self) -> usize {
        self.inner.config.max_concurrent_jobs
    }

    /// The names of the queues this worker takes jobs from, in its order.
    pub fn queue_names(&self) -> Vec<&str> {
        self.inner.lanes.iter().map(|l| &*l.take.queue).collect()
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

/// Every method counts the jobs it stores in `jobs_enqueued_total` and, with
/// the `opentelemetry` feature, stores the current span's trace context in
/// them (see [`telemetry`](crate::telemetry)).
impl Enqueue for BackgroundJobWorker {
    async fn push(&self, mut job: Job) -> Result<Enqueued> {
        self.check_open()?;
        let metric = crate::telemetry::enqueuing(&mut job);
        let pushed = self.inner.queue.push(job).await?;
        crate::telemetry::enqueued(&metric, &pushed);
        Ok(pushed)
    }

    async fn push_many(&self, mut jobs: Vec<Job>) -> Result<Vec<Enqueued>> {
        self.check_open()?;
        let metrics: Vec<_> = jobs.iter_mut().map(crate::telemetry::enqueuing).collect();
        let pushed = self.inner.queue.push_many(jobs).await?;
        for (metric, pushed) in metrics.iter().zip(&pushed) {
            crate::telemetry::enqueued(metric, pushed);
        }
        Ok(pushed)
    }

    // `push` counts already.
    async fn enqueue(&self, job: Job) -> Result<JobId> {
        self.push(job).await.map(|e| e.id)
    }

    async fn enqueue_many(&self, jobs: Vec<Job>) -> Result<Vec<JobId>> {
        let pushed = self.push_many(jobs).await?;
        Ok(pushed.into_iter().map(|e| e.id).collect())
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

/// What `jobs::testing` needs of a worker to run its jobs the way it would:
/// its queue, processor, shared state, default timeout, clock, named queues
/// and scheduler.
pub(crate) struct Parts {
    pub(crate) queue: Arc<dyn DynQueue>,
    pub(crate) processor: Arc<dyn DynProcessor>,
    pub(crate) data: Arc<DataMap>,
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) clock: Clock,
    pub(crate) queues: Vec<String>,
    pub(crate) scheduler: JobScheduler,
}

impl BackgroundJobWorker {
    pub(crate) fn parts(&self) -> Parts {
        let inner = &self.inner;
        Parts {
            queue: Arc::clone(&inner.queue),
            processor: Arc::clone(&inner.processor),
            data: Arc::clone(&inner.data),
            default_timeout: inner.config.default_timeout,
            clock: inner.config.clock,
            queues: inner
                .lanes
                .iter()
                .map(|l| l.take.queue.to_string())
                .collect(),
            scheduler: inner.scheduler.clone(),
        }
    }
}
