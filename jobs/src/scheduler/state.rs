//! What a scheduler knows of each task while it holds it: the task, where
//! its schedule stands, its counters, and how that reads as a [`TaskInfo`].

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::task::{PeriodicTask, TaskInfo, TaskOutcome};

/// The first delay before a failed enqueue (an unreachable backend) is tried
/// again; it doubles per failure up to [`MAX_RETRY_DELAY`].
pub(super) const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
pub(super) const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// The tasks, by name.
#[derive(Default)]
pub(super) struct State {
    pub(super) tasks: BTreeMap<String, Entry>,
    pub(super) generations: u64,
}

/// One task and its bookkeeping.
pub(super) struct Entry {
    pub(super) task: PeriodicTask,
    /// Changes when the task is replaced, so a firing in flight does not
    /// update its successor.
    pub(super) generation: u64,
    /// Whether `next` was set against the run's reference (its start, the
    /// store, or an earlier run); until then it is only an estimate.
    pub(super) ready: bool,
    /// The next occurrence to handle.
    pub(super) next: Option<DateTime<Utc>>,
    /// After a failed enqueue: not before this time.
    pub(super) retry_at: Option<DateTime<Utc>>,
    pub(super) retry_delay: Duration,
    pub(super) last_run: Option<DateTime<Utc>>,
    pub(super) run_count: u64,
    pub(super) enqueued_count: u64,
    pub(super) missed_count: u64,
    pub(super) error_count: u64,
    pub(super) last_outcome: Option<TaskOutcome>,
}

impl Entry {
    /// A task just added: not ready, never run.
    pub(super) fn new(task: PeriodicTask, generation: u64) -> Self {
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
        }
    }

    /// The task as [`JobScheduler::tasks`](crate::JobScheduler::tasks)
    /// lists it at `now`.
    pub(super) fn info(&self, now: DateTime<Utc>) -> TaskInfo {
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
