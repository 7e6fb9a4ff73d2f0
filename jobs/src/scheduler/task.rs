//! The task model: [`PeriodicTask`] (what to enqueue, when, and what to do
//! about missed occurrences) and how a scheduler reports on a task
//! ([`TaskInfo`], [`TaskOutcome`]).
//!
//! A leaf: it knows jobs and schedules, nothing of the scheduler that runs
//! tasks or of the processors that declare them, so both can name
//! [`PeriodicTask`] without depending on each other.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::job::{Job, JobId, JobStatus};
use crate::schedule::Schedule;

/// The namespace of the UUID v5 ids of scheduled occurrences.
const OCCURRENCE_NAMESPACE: Uuid = Uuid::from_u128(0xcae6_d7e4_ca03_443e_a291_7064_67bd_389b);

/// What a task does about occurrences it missed while no scheduler ran it
/// (a restart, a suspended process, an unreachable queue).
///
/// An occurrence counts as missed when the scheduler handles it more than
/// the [grace period](crate::SchedulerBuilder::grace_period) after it was
/// due. Either way, a task never floods the queue with one job per missed
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

    /// Whether a scheduler can take this task: a name, and a job that makes
    /// sense and is not recurring itself.
    pub(super) fn validate(&self) -> Result<()> {
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
    /// Enqueueing failed with this error. A transient backend error (an
    /// unreachable server) is tried again with backoff; other errors give
    /// the occurrence up.
    Error(String),
}

/// A task as [`JobScheduler::tasks`](crate::JobScheduler::tasks) lists it.
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
}
