//! [`JobScheduler`]: enqueues periodic tasks on their schedules.
//!
//! One concern per file:
//!
//! - `task`: the task model, [`PeriodicTask`] and [`MissedRuns`], and what
//!   the scheduler reports of a task, [`TaskInfo`] and [`TaskOutcome`];
//! - `store`: [`LastRunStore`], where last runs survive a restart, and
//!   [`MemoryLastRunStore`];
//! - `builder`: [`SchedulerBuilder`];
//! - `state`: the scheduler's bookkeeping of each task;
//! - `run`: the firing and catch-up loop behind [`JobScheduler::run`];
//! - this file: the handle, and adding, removing, enabling and listing tasks.
//!
//! The scheduler enqueues onto any [`Enqueue`](crate::Enqueue) target and knows nothing of
//! workers, processors or the registry: a worker runs its scheduler through
//! `crate::worker`, which adds the tasks its processor declares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::error::{Error, Result};

mod builder;
mod run;
mod state;
mod store;
pub(crate) mod task;

pub use builder::SchedulerBuilder;
use state::{Entry, FIRST_RETRY_DELAY, State};
use store::DynStore;
pub use store::{LastRunStore, MemoryLastRunStore};
pub use task::{MissedRuns, PeriodicTask, TaskInfo, TaskOutcome};

/// Enqueues named periodic tasks on their schedules: health checks every
/// five minutes, a cleanup at 02:00, a backup at 03:00.
///
/// Add [`PeriodicTask`]s, then either [`run`](JobScheduler::run) it onto
/// any [`Enqueue`](crate::Enqueue) target (a queue, a worker), or give it to a worker with
/// [`WorkerBuilder::scheduler`](crate::WorkerBuilder::scheduler), which runs
/// it while the worker runs — together with the periodic tasks its
/// processor declares ([`JobProcessor::periodic_tasks`](crate::JobProcessor::periodic_tasks):
/// for a [`Registry`](crate::Registry), its `#[job(cron = "..")]` /
/// `#[job(every = "..")]` functions and its fallback's tasks). Clones share one scheduler: keep one to
/// add, remove, enable or disable tasks while it runs; it wakes at once to
/// take the change into account.
///
/// A job made recurring with [`Job::every`](crate::Job::every) is the other way to repeat work:
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
/// long as it keeps the ids of finished jobs at least a schedule period
/// (every backend keeps its latest
/// [`DEFAULT_MAX_FINISHED`](crate::queue::DEFAULT_MAX_FINISHED), 10,000,
/// finished jobs unless told otherwise). The processes'
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
/// What a fresh scheduler takes as "last run": the later of the last run
/// recorded in its [`LastRunStore`], if it has one, and the last run in
/// this process (a scheduler that is stopped and run again catches up);
/// with neither, nothing: the first occurrence after the start is the next
/// run. Disabling a task and
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
        SchedulerBuilder::new()
    }

    /// The scheduler's clock.
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// Adds a task. An error if a task with that name exists, or its job
    /// makes no sense (see [`Job::validate`](crate::Job::validate); it must also not be recurring
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
        state.tasks.insert(name, Entry::new(task, generation));
        drop(state);
        self.inner.changed.notify_one();
        Ok(())
    }

    /// Adds every task whose name is not taken yet: a task added by hand
    /// overrides one a worker's processor declares (a `#[job]` attribute's
    /// schedule).
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

    /// A copy of one task, by name (`jobs::testing::trigger` enqueues an
    /// occurrence of it).
    pub(crate) fn task_by_name(&self, name: &str) -> Option<PeriodicTask> {
        let state = self.inner.state.lock();
        state.tasks.get(name).map(|entry| entry.task.clone())
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
