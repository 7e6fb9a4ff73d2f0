//! [`JobEvent`]s: what happened to a job, as a queue reports it to
//! [`QueueAdmin::subscribe`](crate::QueueAdmin::subscribe) (and a worker to
//! `BackgroundJobWorker::subscribe`), from whichever process ran the job.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::{Job, JobId, JobStatus};

/// Something that happened to a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobEvent {
    /// The job.
    pub job_id: JobId,
    /// Its name.
    pub name: String,
    /// What happened.
    pub kind: JobEventKind,
    /// For [`JobEventKind::Progress`], the progress reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Value>,
}

impl JobEvent {
    /// An event of `kind` for the job `job_id` named `name`.
    pub fn new(job_id: JobId, name: impl Into<String>, kind: JobEventKind) -> Self {
        JobEvent {
            job_id,
            name: name.into(),
            kind,
            progress: None,
        }
    }

    /// An event of `kind` for `job`.
    pub fn of(job: &Job, kind: JobEventKind) -> Self {
        JobEvent::new(job.id, job.name.to_string(), kind)
    }

    /// Sets the progress carried.
    pub fn with_progress(mut self, progress: Value) -> Self {
        self.progress = Some(progress);
        self
    }
}

/// What happened to a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum JobEventKind {
    /// An attempt started.
    Started,
    /// The running attempt reported progress.
    Progress,
    /// It completed successfully.
    Completed,
    /// An attempt failed and it will be retried.
    Retrying,
    /// The attempt asked to run again later without counting (snooze).
    Snoozed,
    /// It failed for good.
    Failed,
    /// It was cancelled.
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
            JobEventKind::Started | JobEventKind::Progress => JobStatus::Running,
            JobEventKind::Completed => JobStatus::Completed,
            JobEventKind::Retrying => JobStatus::Retrying,
            JobEventKind::Failed => JobStatus::Failed,
            JobEventKind::Cancelled => JobStatus::Cancelled,
            JobEventKind::Expired => JobStatus::Expired,
            JobEventKind::Released | JobEventKind::Snoozed => JobStatus::Pending,
        }
    }

    /// Whether the job is over after this event.
    pub fn is_final(self) -> bool {
        self.status().is_final()
    }

    /// The event a finished attempt's outcome makes.
    pub fn of_outcome(outcome: &crate::queue::Outcome) -> Self {
        use crate::queue::Outcome;
        match outcome {
            Outcome::Completed(_) => JobEventKind::Completed,
            Outcome::Retry { .. } => JobEventKind::Retrying,
            Outcome::Failed(_) => JobEventKind::Failed,
            Outcome::Cancelled => JobEventKind::Cancelled,
            Outcome::Expired => JobEventKind::Expired,
            Outcome::Snoozed { .. } => JobEventKind::Snoozed,
        }
    }
}
