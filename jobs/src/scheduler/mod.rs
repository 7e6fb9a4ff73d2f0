//! [`JobScheduler`]: enqueues periodic tasks on their schedules.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::job::{Job, JobId, JobStatus};
use crate::processor::DynProcessor;
use crate::queue::Enqueue;
use crate::queue::erased::DynQueue;
use crate::schedule::Schedule;

/// The namespace of the UUID v5 ids of scheduled occurrences.
const OCCURRENCE_NAMESPACE: Uuid = Uuid::from_u128(0xcae6_d7e4_ca03_443e_a291_7064_67bd_389b);

/// The longest the scheduler sleeps before it looks at the clock again, so a
/// system clock that jumps (suspend, NTP) is noticed within this time.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// The first delay before a failed enqueue (an unreachable backend) is tried
/// again; it doubles per failure up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// What a task does about occurrences it missed while no scheduler ran it
/// (a restart, a suspended process, an unreachable queue).
///
/// An occurrence counts as missed when the scheduler handles it more than
/// the [grace period](SchedulerBuilder::grace_period) after it was due.
/// Either way, a task never floods the queue with one job per missed
/// occurrence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedRuns {
    /// Run once now for all the missed occurrences (the job is the one of
    /// the latest of them), then go on with the schedule. The default: a
    /// nightly backup missed during a deploy still happens.
    #[default]
    RunOnce,
    /// Skip them and wait for the next occurrence: for work that is only
    /// worth doing on time (a health check, a "good morning" email).
    Skip,
}

/// A named periodic task: which job to enqueue, and when.
///
/// Each occurrence enqueues a copy of the template `job` with a
/// deterministic id (see [`occurrence_id`](PeriodicTask::occurrence_id)), no
/// `scheduled_at`, and two metadata entries: `periodic_task` (the task's
/// name) and `occurrence` (the occurrence's time, RFC 3339).
///
/// ```
/// use jobs::{Job, MissedRuns, PeriodicTask, Schedule};
/// use serde_json::json;
///
/// # fn main() -> Result<(), jobs::Error> {
/// let task = PeriodicTask::new(
///     "cleanup_logs",
///     Schedule::daily_at(2, 0)?,
///     Job::new("cleanup_logs", json!({"older_than_days": 30})),
/// )
/// .missed_runs(MissedRuns::Skip);
/// assert_eq!(task.name, "cleanup_logs");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PeriodicTask {
    /// The task's name, unique within a scheduler. It is part of every
    /// occurrence's job id, so it must be the same in every process that
    /// runs the task.
    pub name: String,
    /// When it runs.
    pub schedule: Schedule,
    /// The job enqueued at each occurrence (a template: its id and
    /// `scheduled_at` are replaced).
    pub job: Job,
    /// What to do about missed occurrences.
    pub missed_runs: MissedRuns,
    /// Whether it runs (a disabled task stays listed).
    pub enabled: bool,
}

impl PeriodicTask {
    /// A task that enqueues `job` at every occurrence of `schedule`.
    pub fn new(name: impl Into<String>, schedule: Schedule, job: Job) -> Self {
        PeriodicTask {
            name: name.into(),
            schedule,
            job,
            missed_runs: MissedRuns::default(),
            enabled: true,
        }
    }

    /// Sets what to do about missed occurrences.
    pub fn missed_runs(mut self, policy: MissedRuns) -> Self {
        self.missed_runs = policy;
        self
    }

    /// Adds the task disabled: listed, but not run until enabled.
    pub fn disabled(mut self) -> Self {
        self.enabled = false;
        self
    }

    /// The id of the job enqueued for the occurrence at `at`: the UUID v5
    /// of `"{name}@{at in RFC 3339}"`. Every process computes the same id
    /// for the same occurrence, and a queue stores a job id once, so an
    /// occurrence is enqueued once however many schedulers run the task.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use jobs::{Job, PeriodicTask, Schedule};
    ///
    /// let task = PeriodicTask::new("report", Schedule::hourly(), Job::new("report", serde_json::Value::Null));
    /// let at = Utc.with_ymd_and_hms(2024, 1, 1, 9, 0, 0).unwrap();
    /// assert_eq!(task.occurrence_id(at), task.occurrence_id(at));
    /// assert_ne!(task.occurrence_id(at), task.occurrence_id(at + chrono::Duration::hours(1)));
    /// ```
    pub fn occurrence_id(&self, at: DateTime<Utc>) -> JobId {
        occurrence_id(&self.name, at)
    }

    /// The job enqueued for the occurrence at `occurrence`, created at `now`.
    pub fn job_for(&self, occurrence: DateTime<Utc>, now: DateTime<Utc>) -> Job {
        let mut job = self.job.clone();
        job.id = self.occurrence_id(occurrence);
        job.status = JobStatus::Pending;
        job.attempts = 0;
        job.created_at = now;
        job.scheduled_at = None;
        job.started_at = None;
        job.completed_at = None;
        job.last_error = None;
        job.result = None;
        job.metadata
            .insert("periodic_task".into(), self.name.clone().into());
        job.metadata
            .insert("occurrence".into(), timestamp(occurrence).into());
        job
    }

    fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::InvalidArgument(
                "a periodic task needs a name".into(),
            ));
        }
        if self.job.every.is_some() {
            return Err(Error::InvalidArgument(format!(
                "periodic task `{}`: its job must not be recurring itself (`every`); the schedule \
                 decides when it runs",
                self.name
            )));
        }
        self.job
            .validate()
            .map_err(|e| Error::InvalidArgument(format!("periodic task `{}`: {e}", self.name)))
    }
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn occurrence_id(task: &str, at: DateTime<Utc>) -> JobId {
    let key = format!("{task}@{}", timestamp(at));
    JobId::from(Uuid::new_v5(&OCCURRENCE_NAMESPACE, key.as_bytes()))
}

/// What the latest occurrence of a task did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskOutcome {
    /// This scheduler enqueued the occurrence's job.
    Enqueued(JobId),
    /// The queue already had the occurrence's job: another scheduler (another
    /// worker process) enqueued it first. Not an error.
    Duplicate(JobId),
    /// Enqueueing failed with this error. An unreachable backend is tried
    /// again with backoff; other errors give the occurrence up.
    Error(String),
}

/// A task as [`JobScheduler::tasks`] lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskInfo {
    /// The task's name.
    pub name: String,
    /// The name of the job it enqueues.
    pub job_name: String,
    /// When it runs.
    pub schedule: Schedule,
    /// What it does about missed occurrences.
    pub missed_runs: MissedRuns,
    /// Whether it runs.
    pub enabled: bool,
    /// When it runs next (`None` while disabled).
    pub next_run: Option<DateTime<Utc>>,
    /// The latest occurrence that ran (enqueued here or by another
    /// scheduler).
    pub last_run: Option<DateTime<Utc>>,
    /// Occurrences that ran: enqueued here, or found already enqueued by
    /// another scheduler.
    pub run_count: u64,
    /// Of those, the ones this scheduler enqueued.
    pub enqueued_count: u64,
    /// Occurrences not run on their own: folded into one catch-up run
    /// ([`MissedRuns::RunOnce`]) or skipped ([`MissedRuns::Skip`]).
    pub missed_count: u64,
    /// Failed attempts to enqueue.
    pub error_count: u64,
    /// What the latest attempt did.
    pub last_outcome: Option<TaskOutcome>,
}

/// Remembers when each task last ran, so that a restarted scheduler knows
/// which occurrences it missed while it was down.
///
/// Without a store, a scheduler only knows what happened in its own
/// process: after a restart, the first occurrence after the start is the
/// next run and nothing counts as missed. With one shared by all processes
/// (a table, a Redis hash), a task whose occurrence fell into the downtime
/// runs once on start ([`MissedRuns::RunOnce`]) or skips it
/// ([`MissedRuns::Skip`]).
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use chrono::{DateTime, Utc};
/// use jobs::LastRunStore;
///
/// #[derive(Default)]
/// struct MyStore(Mutex<HashMap<String, DateTime<Utc>>>);
///
/// impl LastRunStore for MyStore {
///     async fn load(&self, task: &str) -> Result<Option<DateTime<Utc>>, jobs::Error> {
///         Ok(self.0.lock().unwrap().get(task).copied())
///     }
///     async fn save(&self, task: &str, occurrence: DateTime<Utc>) -> Result<(), jobs::Error> {
///         let mut map = self.0.lock().unwrap();
///         let slot = map.entry(task.to_owned()).or_insert(occurrence);
///         *slot = (*slot).max(occurrence);
///         Ok(())
///     }
/// }
/// ```
pub trait LastRunStore: Send + Sync + 'static {
    /// The latest occurrence of `task` that ran, if any is known.
    fn load(&self, task: &str) -> impl Future<Output = Result<Option<DateTime<Utc>>>> + Send;

    /// Records that the occurrence at `occurrence` of `task` ran. Should keep
    /// the later of the stored time and this one (several processes save).
    fn save(
        &self,
        task: &str,
        occurrence: DateTime<Utc>,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// A [`LastRunStore`] in memory, shared by its clones: survives a
/// scheduler, not the process (useful in tests, and to hand state from one
/// scheduler to the next within a process).
#[derive(Clone, Debug, Default)]
pub struct MemoryLastRunStore {
    runs: Arc<Mutex<HashMap<String, DateTime<Utc>>>>,
}

impl MemoryLastRunStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl LastRunStore for MemoryLastRunStore {
    async fn load(&self, task: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(self.runs.lock().get(task).copied())
    }

    async fn save(&self, task: &str, occurrence: DateTime<Utc>) -> Result<()> {
        let mut runs = self.runs.lock();
        let slot = runs.entry(task.to_owned()).or_insert(occurrence);
        *slot = (*slot).max(occurrence);
        Ok(())
    }
}

trait DynStore: Send + Sync + 'static {
    fn load<'a>(&'a self, task: &'a str) -> BoxFuture<'a, Result<Option<DateTime<Utc>>>>;
    fn save<'a>(&'a self, task: &'a str, occurrence: DateTime<Utc>) -> BoxFuture<'a, Result<()>>;
}

impl<S: LastRunStore> DynStore for S {
    fn load<'a>(&'a self, task: &'a str) -> BoxFuture<'a, Result<Option<DateTime<Utc>>>> {
        Box::pin(LastRunStore::load(self, task))
    }

    fn save<'a>(&'a self, task: &'a str, occurrence: DateTime<Utc>) -> BoxFuture<'a, Result<()>> {
        Box::pin(LastRunStore::save(self, task, occurrence))
    }
}

/// Builds a [`JobScheduler`].
pub struct SchedulerBuilder {
    clock: Clock,
    grace: Duration,
    store: Option<Arc<dyn DynStore>>,
}

impl SchedulerBuilder {
    /// Where the scheduler reads the time (default: the system clock). Use
    /// [`Clock::tokio`] in tests with `tokio::time::pause()`.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// How late an occurrence may be handled and still count as on time
    /// rather than missed (default one minute). See [`MissedRuns`].
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Remembers last runs in `store`, so that a restarted scheduler catches
    /// up on what it missed (see [`LastRunStore`]).
    pub fn last_run_store(mut self, store: impl LastRunStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The scheduler.
    pub fn build(self) -> JobScheduler {
        JobScheduler {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                changed: Notify::new(),
                running: AtomicBool::new(false),
                clock: self.clock,
                grace: chrono::Duration::from_std(self.grace).unwrap_or(chrono::Duration::MAX),
                store: self.store,
            }),
        }
    }
}

/// Enqueues named periodic tasks on their schedules: health checks every
/// five minutes, a cleanup at 02:00, a backup at 03:00.
///
/// Add [`PeriodicTask`]s, then either [`run`](JobScheduler::run) it onto
/// any [`Enqueue`] target (a queue, a worker), or give it to a worker with
/// [`WorkerBuilder::scheduler`](crate::WorkerBuilder::scheduler), which runs
/// it while the worker runs — together with the schedules of the
/// `#[job(cron = "..")]` / `#[job(every = "..")]` functions of its
/// [`Registry`](crate::Registry). Clones share one scheduler: keep one to
/// add, remove, enable or disable tasks while it runs; it wakes at once to
/// take the change into account.
///
/// A job made recurring with [`Job::every`] is the other way to repeat work:
/// its next run is enqueued when a run finishes, so runs drift with their
/// durations and each chain lives in the queue. A scheduler's occurrences
/// are fixed by the clock (02:00 every day), survive an empty queue, can be
/// listed, disabled and changed by name, and are enqueued once however many
/// workers run them.
///
/// # Exactly once across processes
///
/// Each occurrence is enqueued with a deterministic job id, the UUID v5 of
/// `"{task name}@{occurrence time}"` ([`PeriodicTask::occurrence_id`]), and
/// queues refuse a second job with an id they hold
/// ([`Error::Duplicate`]). So when several worker processes share a queue
/// (Redis) and each runs the same scheduled tasks, every occurrence is
/// enqueued by whichever comes first; the others see the duplicate and record
/// [`TaskOutcome::Duplicate`]. Nothing else is needed from the backend, as
/// long as it keeps the ids of finished jobs at least a schedule period (the
/// in-memory queue keeps its latest 10,000 finished jobs). The processes'
/// clocks need not agree exactly: the occurrence times come from the
/// schedule, not from the clock.
///
/// # Missed occurrences
///
/// The scheduler sleeps until the next due occurrence. If it handles one
/// more than the grace period late, or finds several due at once (after a
/// suspended process, an unreachable queue, or a restart with a
/// [`LastRunStore`]), the task's [`MissedRuns`] policy decides: run once or
/// skip; never one job per missed occurrence. An unreachable queue is
/// retried with backoff (1 s doubling up to a minute).
///
/// What a fresh scheduler takes as "last run": the last run recorded in its
/// [`LastRunStore`] if it has one, else the last run in this process (a
/// scheduler that is stopped and run again catches up), else nothing: the
/// first occurrence after the start is the next run. Disabling a task and
/// enabling it again does not count the time in between as missed.
///
/// ```
/// use std::time::Duration;
/// use jobs::prelude::*;
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), jobs::Error> {
/// let scheduler = JobScheduler::new();
/// scheduler.add(PeriodicTask::new(
///     "health_check",
///     Schedule::every_minutes(5)?,
///     Job::new("health_check", json!({})),
/// ))?;
/// scheduler.add(PeriodicTask::new(
///     "backup_database",
///     Schedule::daily_at(3, 0)?,
///     Job::new("backup_database", json!({})).priority(JobPriority::High),
/// ))?;
/// for task in scheduler.tasks() {
///     println!("{:<16} {:<12} next {:?}", task.name, task.schedule.to_string(), task.next_run);
/// }
///
/// // Run it on its own onto a queue (or give it to a worker with
/// // `BackgroundJobWorker::builder().scheduler(scheduler)`):
/// let queue = MemoryJobQueue::new();
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let running = tokio::spawn({
///     let (scheduler, queue) = (scheduler.clone(), queue.clone());
///     async move { scheduler.run(&queue, async { let _ = stopped.await; }).await }
/// });
/// // ... later, keeping `scheduler` to change tasks while it runs:
/// scheduler.disable("health_check");
/// let _ = stop.send(());
/// running.await.unwrap()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JobScheduler {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    changed: Notify,
    running: AtomicBool,
    clock: Clock,
    grace: chrono::Duration,
    store: Option<Arc<dyn DynStore>>,
}

#[derive(Default)]
struct State {
    tasks: BTreeMap<String, Entry>,
    generations: u64,
}

struct Entry {
    task: PeriodicTask,
    /// Changes when the task is replaced, so a firing in flight does not
    /// update its successor.
    generation: u64,
    /// Whether `next` was set against the run's reference (its start, the
    /// store, or an earlier run); until then it is only an estimate.
    ready: bool,
    /// The next occurrence to handle.
    next: Option<DateTime<Utc>>,
    /// After a failed enqueue: not before this time.
    retry_at: Option<DateTime<Utc>>,
    retry_delay: Duration,
    last_run: Option<DateTime<Utc>>,
    run_count: u64,
    enqueued_count: u64,
    missed_count: u64,
    error_count: u64,
    last_outcome: Option<TaskOutcome>,
}

impl Entry {
    fn info(&self, now: DateTime<Utc>) -> TaskInfo {
        let next_run = if !self.task.enabled {
            None
        } else if self.ready {
            match (self.next, self.retry_at) {
                (Some(next), Some(retry)) => Some(next.max(retry)),
                (next, _) => next,
            }
        } else {
            // Not running: what a start now would make of it (without the
            // store, which takes a round trip).
            let reference = self.last_run.unwrap_or(now);
            self.task.schedule.next_after(reference)
        };
        TaskInfo {
            name: self.task.name.clone(),
            job_name: self.task.job.name.to_string(),
            schedule: self.task.schedule.clone(),
            missed_runs: self.task.missed_runs,
            enabled: self.task.enabled,
            next_run,
            last_run: self.last_run,
            run_count: self.run_count,
            enqueued_count: self.enqueued_count,
            missed_count: self.missed_count,
            error_count: self.error_count,
            last_outcome: self.last_outcome.clone(),
        }
    }
}

/// One occurrence to enqueue.
struct Firing {
    name: String,
    generation: u64,
    occurrence: DateTime<Utc>,
    job: Job,
}

impl Default for JobScheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl JobScheduler {
    /// A scheduler with no tasks, on the system clock, without a
    /// [`LastRunStore`].
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for a scheduler with a clock, a grace period or a store.
    pub fn builder() -> SchedulerBuilder {
        SchedulerBuilder {
            clock: Clock::system(),
            grace: Duration::from_secs(60),
            store: None,
        }
    }

    /// The scheduler's clock.
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// Adds a task. An error if a task with that name exists, or its job
    /// makes no sense (see [`Job::validate`]; it must also not be recurring
    /// itself).
    pub fn add(&self, task: PeriodicTask) -> Result<()> {
        task.validate()?;
        let mut state = self.inner.state.lock();
        if state.tasks.contains_key(&task.name) {
            return Err(Error::InvalidArgument(format!(
                "a periodic task named `{}` already exists",
                task.name
            )));
        }
        state.generations += 1;
        let generation = state.generations;
        let name = task.name.clone();
        state.tasks.insert(
            name,
            Entry {
                task,
                generation,
                ready: false,
                next: None,
                retry_at: None,
                retry_delay: FIRST_RETRY_DELAY,
                last_run: None,
                run_count: 0,
                enqueued_count: 0,
                missed_count: 0,
                error_count: 0,
                last_outcome: None,
            },
        );
        drop(state);
        self.inner.changed.notify_one();
        Ok(())
    }

    /// Adds every task whose name is not taken yet (a task added by hand
    /// overrides the schedule a `#[job]` attribute declared).
    pub(crate) fn add_declared(&self, tasks: Vec<PeriodicTask>) -> Result<()> {
        for task in tasks {
            if self.inner.state.lock().tasks.contains_key(&task.name) {
                tracing::debug!(task = %task.name, "a periodic task of this name exists; the declared schedule is not added");
                continue;
            }
            self.add(task)?;
        }
        Ok(())
    }

    /// Removes a task; returns it, or `None` if there is none of that name.
    pub fn remove(&self, name: &str) -> Option<PeriodicTask> {
        let removed = self.inner.state.lock().tasks.remove(name);
        self.inner.changed.notify_one();
        removed.map(|entry| entry.task)
    }

    /// Enables a task: it runs from its next occurrence on (the time it was
    /// disabled does not count as missed). Returns `false` if there is no
    /// task of that name.
    pub fn enable(&self, name: &str) -> bool {
        self.set_enabled(name, true)
    }

    /// Disables a task: it stays listed but does not run until enabled.
    /// Returns `false` if there is no task of that name.
    pub fn disable(&self, name: &str) -> bool {
        self.set_enabled(name, false)
    }

    fn set_enabled(&self, name: &str, enabled: bool) -> bool {
        let now = self.inner.clock.now();
        let running = self.is_running();
        let mut state = self.inner.state.lock();
        let Some(entry) = state.tasks.get_mut(name) else {
            return false;
        };
        if entry.task.enabled != enabled {
            entry.task.enabled = enabled;
            entry.retry_at = None;
            entry.retry_delay = FIRST_RETRY_DELAY;
            if enabled {
                entry.next = entry.task.schedule.next_after(now);
                // While running, now is the reference; otherwise the next
                // start decides.
                entry.ready = running;
            } else {
                entry.next = None;
            }
        }
        drop(state);
        self.inner.changed.notify_one();
        true
    }

    /// Every task with its next and last run, counts and latest outcome,
    /// by name.
    pub fn tasks(&self) -> Vec<TaskInfo> {
        let now = self.inner.clock.now();
        let state = self.inner.state.lock();
        state.tasks.values().map(|entry| entry.info(now)).collect()
    }

    /// One task, by name.
    pub fn task(&self, name: &str) -> Option<TaskInfo> {
        let now = self.inner.clock.now();
        self.inner.state.lock().tasks.get(name).map(|e| e.info(now))
    }

    /// How many tasks there are.
    pub fn len(&self) -> usize {
        self.inner.state.lock().tasks.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.inner.state.lock().tasks.is_empty()
    }

    /// Whether [`run`](Self::run) is running.
    pub fn is_running(&self) -> bool {
        self.inner.running.load(Ordering::Acquire)
    }

    /// Enqueues each task's occurrences onto `target` as they come due, until
    /// `stop` completes (pass `token.cancelled()` of a cancellation token, a
    /// `ctrl_c()` future, a channel's receive...). Returns an error only if
    /// this scheduler is already running.
    ///
    /// ```
    /// use std::time::Duration;
    /// use jobs::prelude::*;
    /// use serde_json::json;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), jobs::Error> {
    /// tokio::time::pause();
    /// let scheduler = JobScheduler::builder().clock(jobs::Clock::tokio()).build();
    /// scheduler.add(PeriodicTask::new("tick", Schedule::every(Duration::from_secs(10))?, Job::new("tick", json!({}))))?;
    /// let queue = MemoryJobQueue::new();
    /// // Stops after 35 s: three or four occurrences, depending on where the
    /// // 10-second grid falls.
    /// scheduler.run(&queue, tokio::time::sleep(Duration::from_secs(35))).await?;
    /// let runs = scheduler.task("tick").unwrap().run_count;
    /// assert!((3..=4).contains(&runs));
    /// assert_eq!(queue.counts().await?.pending, runs);
    /// # Ok(()) }
    /// ```
    pub async fn run<E: Enqueue>(&self, target: &E, stop: impl Future<Output = ()>) -> Result<()> {
        if self.inner.running.swap(true, Ordering::AcqRel) {
            return Err(Error::InvalidArgument(
                "this scheduler is already running".into(),
            ));
        }
        let _running = RunningGuard(&self.inner.running);
        {
            let mut state = self.inner.state.lock();
            for entry in state.tasks.values_mut() {
                entry.ready = false;
            }
        }
        tracing::debug!(tasks = self.len(), "scheduler started");
        tokio::pin!(stop);
        loop {
            // Set up the wake-up before looking, so no change is lost.
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();

            self.prepare().await;
            let now = self.inner.clock.now();
            let (firings, wake) = self.collect(now);
            if firings.is_empty() {
                let nap = wake.map_or(MAX_SLEEP, |at| self.inner.clock.until(at).min(MAX_SLEEP));
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    _ = &mut changed => {}
                    _ = tokio::time::sleep(nap) => {}
                }
                continue;
            }
            for firing in firings {
                let result = tokio::select! {
                    biased;
                    _ = &mut stop => {
                        tracing::debug!("scheduler stopped");
                        return Ok(());
                    }
                    result = target.enqueue(firing.job.clone()) => result,
                };
                self.record(firing, result).await;
            }
        }
        tracing::debug!("scheduler stopped");
        Ok(())
    }

    /// Sets each task that is not yet ready against its reference: the
    /// store's last run, this process's last run, or now.
    async fn prepare(&self) {
        let pending: Vec<(String, u64)> = {
            let state = self.inner.state.lock();
            state
                .tasks
                .values()
                .filter(|e| !e.ready && e.task.enabled)
                .map(|e| (e.task.name.clone(), e.generation))
                .collect()
        };
        for (name, generation) in pending {
            let stored = match &self.inner.store {
                Some(store) => match store.load(&name).await {
                    Ok(stored) => stored,
                    Err(e) => {
                        tracing::warn!(task = %name, error = %e, "could not load the task's last run; starting from now");
                        None
                    }
                },
                None => None,
            };
            let now = self.inner.clock.now();
            let mut state = self.inner.state.lock();
            let Some(entry) = state.tasks.get_mut(&name) else {
                continue;
            };
            if entry.generation != generation || entry.ready || !entry.task.enabled {
                continue;
            }
            let reference = match (stored, entry.last_run) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if let Some(last) = reference {
                entry.last_run = Some(last);
            }
            entry.next = entry.task.schedule.next_after(reference.unwrap_or(now));
            entry.ready = true;
        }
    }

    /// The occurrences due at `now`, and when to look next otherwise.
    fn collect(&self, now: DateTime<Utc>) -> (Vec<Firing>, Option<DateTime<Utc>>) {
        let mut firings = Vec::new();
        let mut wake: Option<DateTime<Utc>> = None;
        let mut earliest = |at: DateTime<Utc>| {
            wake = Some(wake.map_or(at, |w| w.min(at)));
        };
        let mut state = self.inner.state.lock();
        for entry in state.tasks.values_mut() {
            if !entry.task.enabled || !entry.ready {
                continue;
            }
            let Some(first) = entry.next else { continue };
            if let Some(retry) = entry.retry_at.filter(|r| *r > now) {
                earliest(retry.max(first));
                continue;
            }
            if first > now {
                earliest(first);
                continue;
            }
            let task = &entry.task;
            let (latest, due) = task.schedule.due_between(first, now);
            let late = now - latest > self.inner.grace;
            if late && task.missed_runs == MissedRuns::Skip {
                entry.missed_count += due;
                entry.next = task.schedule.next_after(now);
                entry.retry_at = None;
                tracing::info!(task = %task.name, missed = due, next = ?entry.next, "skipped missed occurrences");
                if let Some(next) = entry.next {
                    earliest(next);
                }
                continue;
            }
            let folded = due.saturating_sub(1);
            entry.missed_count += folded;
            if late || folded > 0 {
                tracing::info!(task = %task.name, occurrence = %latest, missed = due, "running once for missed occurrences");
            }
            // The occurrences before `latest` are settled; a retry starts here.
            entry.next = Some(latest);
            firings.push(Firing {
                name: task.name.clone(),
                generation: entry.generation,
                occurrence: latest,
                job: task.job_for(latest, now),
            });
        }
        firings.sort_by_key(|f| f.occurrence);
        (firings, wake)
    }

    /// Records how enqueueing an occurrence went.
    async fn record(&self, firing: Firing, result: Result<JobId>) {
        let now = self.inner.clock.now();
        let mut save = false;
        {
            let mut state = self.inner.state.lock();
            let Some(entry) = state
                .tasks
                .get_mut(&firing.name)
                .filter(|e| e.generation == firing.generation)
            else {
                return;
            };
            let advance = |entry: &mut Entry| {
                entry.next = if entry.task.enabled {
                    entry.task.schedule.next_after(firing.occurrence)
                } else {
                    None
                };
                entry.retry_at = None;
                entry.retry_delay = FIRST_RETRY_DELAY;
            };
            match result {
                Ok(id) => {
                    tracing::info!(task = %firing.name, occurrence = %firing.occurrence, job_id = %id, "periodic task enqueued");
                    entry.last_outcome = Some(TaskOutcome::Enqueued(id));
                    entry.run_count += 1;
                    entry.enqueued_count += 1;
                    entry.last_run = Some(firing.occurrence);
                    advance(entry);
                    save = true;
                }
                Err(Error::Duplicate(id)) => {
                    tracing::debug!(task = %firing.name, occurrence = %firing.occurrence, job_id = %id, "occurrence already enqueued by another scheduler");
                    entry.last_outcome = Some(TaskOutcome::Duplicate(id));
                    entry.run_count += 1;
                    entry.last_run = Some(firing.occurrence);
                    advance(entry);
                    save = true;
                }
                Err(e) if e.is_transient() => {
                    let delay = entry.retry_delay;
                    tracing::warn!(task = %firing.name, occurrence = %firing.occurrence, error = %e, retry_in = ?delay, "could not enqueue the periodic task; will retry");
                    entry.last_outcome = Some(TaskOutcome::Error(e.to_string()));
                    entry.error_count += 1;
                    entry.retry_at = Some(
                        now + chrono::Duration::from_std(delay)
                            .unwrap_or(chrono::Duration::MAX / 2),
                    );
                    entry.retry_delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
                Err(e) => {
                    tracing::error!(task = %firing.name, occurrence = %firing.occurrence, error = %e, "could not enqueue the periodic task; occurrence given up");
                    entry.last_outcome = Some(TaskOutcome::Error(e.to_string()));
                    entry.error_count += 1;
                    advance(entry);
                }
            }
        }
        if save {
            if let Some(store) = &self.inner.store {
                if let Err(e) = store.save(&firing.name, firing.occurrence).await {
                    tracing::warn!(task = %firing.name, error = %e, "could not save the task's last run");
                }
            }
        }
    }

    /// Runs the scheduler for a worker: onto its queue, until `stop`.
    /// Returns `None` (and logs) if this scheduler already runs elsewhere.
    pub(crate) fn spawn_for_worker(
        &self,
        queue: Arc<dyn DynQueue>,
        stop: CancellationToken,
        worker: &str,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if self.is_running() {
            tracing::info!(
                worker,
                "the scheduler already runs elsewhere; this worker does not run it"
            );
            return None;
        }
        let scheduler = self.clone();
        let worker = worker.to_owned();
        Some(tokio::spawn(async move {
            let target = QueueTarget(queue);
            if let Err(e) = scheduler.run(&target, stop.cancelled_owned()).await {
                tracing::info!(worker, error = %e, "the worker's scheduler did not start");
            }
        }))
    }

    /// Adds the periodic tasks a worker's processor declares.
    pub(crate) fn add_from_processor(&self, processor: &dyn DynProcessor) -> Result<()> {
        self.add_declared(processor.periodic_tasks()?)
    }
}

impl std::fmt::Debug for JobScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.inner.state.lock().tasks.keys().cloned().collect();
        f.debug_struct("JobScheduler")
            .field("tasks", &names)
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

struct RunningGuard<'a>(&'a AtomicBool);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// A worker's type-erased queue as an [`Enqueue`] target.
struct QueueTarget(Arc<dyn DynQueue>);

impl Enqueue for QueueTarget {
    fn enqueue(&self, job: Job) -> impl Future<Output = Result<JobId>> + Send {
        self.0.enqueue(job)
    }

    fn enqueue_many(&self, jobs: Vec<Job>) -> impl Future<Output = Result<Vec<JobId>>> + Send {
        self.0.enqueue_many(jobs)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn occurrence_ids_are_uuid_v5_of_name_and_time() {
        let id = occurrence_id("cleanup_logs", utc(2024, 1, 1, 2, 0, 0));
        assert_eq!(id.as_uuid().get_version_num(), 5);
        let expected = Uuid::new_v5(&OCCURRENCE_NAMESPACE, b"cleanup_logs@2024-01-01T02:00:00Z");
        assert_eq!(id, JobId::from(expected));
        let fraction = utc(2024, 1, 1, 2, 0, 0) + chrono::Duration::milliseconds(250);
        let expected = Uuid::new_v5(
            &OCCURRENCE_NAMESPACE,
            b"cleanup_logs@2024-01-01T02:00:00.250Z",
        );
        assert_eq!(
            occurrence_id("cleanup_logs", fraction),
            JobId::from(expected)
        );
        assert_ne!(
            occurrence_id("cleanup_logs", utc(2024, 1, 1, 2, 0, 0)),
            occurrence_id("backup", utc(2024, 1, 1, 2, 0, 0))
        );
    }

    #[test]
    fn the_job_of_an_occurrence_is_a_fresh_copy_of_the_template() {
        let mut template = Job::new("report", json!({"to": "team"})).tag("daily");
        template.status = JobStatus::Failed;
        template.attempts = 3;
        template.last_error = Some("old".into());
        template.scheduled_at = Some(utc(2020, 1, 1, 0, 0, 0));
        let task = PeriodicTask::new("report", Schedule::hourly(), template);
        let at = utc(2024, 1, 1, 9, 0, 0);
        let now = at + chrono::Duration::seconds(1);
        let job = task.job_for(at, now);
        assert_eq!(job.id, task.occurrence_id(at));
        assert_eq!(job.status, JobStatus::Pending);
        assert_eq!((job.attempts, job.last_error.as_deref()), (0, None));
        assert_eq!(job.scheduled_at, None);
        assert_eq!(job.created_at, now);
        assert_eq!(job.args, json!({"to": "team"}));
        assert_eq!(job.tags, ["daily"]);
        assert_eq!(job.metadata["periodic_task"], "report");
        assert_eq!(job.metadata["occurrence"], "2024-01-01T09:00:00Z");
    }

    /// A scheduler with one ready task whose next occurrence is `next`.
    fn with_task(schedule: Schedule, policy: MissedRuns, next: DateTime<Utc>) -> JobScheduler {
        let scheduler = JobScheduler::new();
        scheduler
            .add(PeriodicTask::new("t", schedule, Job::new("t", json!({}))).missed_runs(policy))
            .unwrap();
        let mut state = scheduler.inner.state.lock();
        let entry = state.tasks.get_mut("t").unwrap();
        entry.ready = true;
        entry.next = Some(next);
        drop(state);
        scheduler
    }

    #[test]
    fn collect_fires_on_time_and_says_when_to_wake() {
        let hourly = Schedule::every(Duration::from_secs(3600)).unwrap();
        let next = utc(2024, 1, 1, 10, 0, 0);
        let scheduler = with_task(hourly, MissedRuns::RunOnce, next);
        let (firings, wake) = scheduler.collect(utc(2024, 1, 1, 9, 59, 0));
        assert!(firings.is_empty());
        assert_eq!(wake, Some(next));
        let (firings, _) = scheduler.collect(utc(2024, 1, 1, 10, 0, 1));
        assert_eq!(firings.len(), 1);
        assert_eq!(firings[0].occurrence, next);
        assert_eq!(scheduler.task("t").unwrap().missed_count, 0);
    }

    #[test]
    fn collect_applies_the_missed_run_policy() {
        let hourly = Schedule::every(Duration::from_secs(3600)).unwrap();
        let next = utc(2024, 1, 1, 10, 0, 0);
        // Four occurrences due (10:00 to 13:00), the latest 30 minutes late.
        let now = utc(2024, 1, 1, 13, 30, 0);

        let run_once = with_task(hourly.clone(), MissedRuns::RunOnce, next);
        let (firings, _) = run_once.collect(now);
        assert_eq!(firings.len(), 1);
        assert_eq!(firings[0].occurrence, utc(2024, 1, 1, 13, 0, 0));
        assert_eq!(run_once.task("t").unwrap().missed_count, 3);

        let skip = with_task(hourly, MissedRuns::Skip, next);
        let (firings, wake) = skip.collect(now);
        assert!(firings.is_empty());
        let info = skip.task("t").unwrap();
        assert_eq!(info.missed_count, 4);
        assert_eq!(info.next_run, Some(utc(2024, 1, 1, 14, 0, 0)));
        assert_eq!(wake, Some(utc(2024, 1, 1, 14, 0, 0)));
    }

    #[tokio::test]
    async fn the_memory_store_keeps_the_latest_run() {
        let store = MemoryLastRunStore::new();
        assert_eq!(LastRunStore::load(&store, "t").await.unwrap(), None);
        LastRunStore::save(&store, "t", utc(2024, 1, 1, 2, 0, 0))
            .await
            .unwrap();
        LastRunStore::save(&store, "t", utc(2023, 1, 1, 2, 0, 0))
            .await
            .unwrap();
        assert_eq!(
            LastRunStore::load(&store.clone(), "t").await.unwrap(),
            Some(utc(2024, 1, 1, 2, 0, 0))
        );
    }
}
