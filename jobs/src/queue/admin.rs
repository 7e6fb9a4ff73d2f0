//! What operator tools read and do beyond the worker protocol: filtered,
//! paginated job lists, per-minute throughput, the workers alive.
//!
//! The CLI and the dashboard use only these and the rest of
//! [`QueueAdmin`](super::QueueAdmin); every backend implements them.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::Job;
use crate::job::JobStatus;

/// How many minutes of throughput a backend keeps: the last 24 hours.
pub const THROUGHPUT_MINUTES: usize = 24 * 60;

/// The most jobs one [`QueueAdmin::find_jobs`](super::QueueAdmin::find_jobs)
/// page holds; a larger limit is lowered to this.
pub const MAX_PAGE: usize = 1_000;

/// Which jobs [`QueueAdmin::find_jobs`](super::QueueAdmin::find_jobs)
/// returns: those matching every filter that is set, newest first (by
/// `created_at`, then id), `limit` of them after skipping `offset`.
///
/// ```
/// use jobs::{JobFilter, JobStatus};
/// let filter = JobFilter::new().status(JobStatus::Failed).name("send_email").page(50, 25);
/// assert_eq!((filter.offset, filter.limit), (50, 25));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobFilter {
    /// Only jobs with this status.
    pub status: Option<JobStatus>,
    /// Only jobs of this name (exact).
    pub name: Option<String>,
    /// Only jobs of this named queue.
    pub queue: Option<String>,
    /// How many matching jobs to skip, newest first.
    pub offset: usize,
    /// How many to return at most (default 50, at most [`MAX_PAGE`]).
    pub limit: usize,
}

impl Default for JobFilter {
    fn default() -> Self {
        Self {
            status: None,
            name: None,
            queue: None,
            offset: 0,
            limit: 50,
        }
    }
}

impl JobFilter {
    /// Every job, the newest 50.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only jobs with `status`.
    pub fn status(mut self, status: JobStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only jobs named `name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Only jobs of the named queue `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Skips `offset` matching jobs and returns up to `limit`.
    pub fn page(mut self, offset: usize, limit: usize) -> Self {
        self.offset = offset;
        self.limit = limit;
        self
    }

    /// The limit a backend applies: `limit`, at most [`MAX_PAGE`].
    pub fn capped_limit(&self) -> usize {
        self.limit.min(MAX_PAGE)
    }

    /// Whether `job` passes the status, name and queue filters.
    pub fn matches(&self, job: &Job) -> bool {
        self.status.is_none_or(|s| job.status == s)
            && self.name.as_deref().is_none_or(|n| job.name == n)
            && self.queue.as_deref().is_none_or(|q| job.queue == q)
    }
}

/// One page of [`QueueAdmin::find_jobs`](super::QueueAdmin::find_jobs).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobPage {
    /// The jobs, newest first.
    pub jobs: Vec<Job>,
    /// Whether more jobs match after this page.
    pub more: bool,
}

impl JobPage {
    /// A page of `jobs`; `more` if further jobs match.
    pub fn new(jobs: Vec<Job>, more: bool) -> Self {
        Self { jobs, more }
    }

    /// Sorts `found` (every job matching a filter) newest first and cuts
    /// out the filter's page: for backends that gather candidates first.
    pub fn cut(mut found: Vec<Job>, filter: &JobFilter) -> Self {
        found.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.id.cmp(&a.id))
        });
        let limit = filter.capped_limit();
        let more = found.len() > filter.offset.saturating_add(limit);
        let jobs = found.into_iter().skip(filter.offset).take(limit).collect();
        Self { jobs, more }
    }
}

/// What [`QueueAdmin::delete`](super::QueueAdmin::delete) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DeleteOutcome {
    /// The job was removed.
    Deleted,
    /// The job is running and was left alone: cancel it first.
    Running,
    /// No such job.
    NotFound,
}

/// How many attempts finished in one minute, fleet-wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Throughput {
    /// The start of the minute (UTC, whole minute).
    pub minute: DateTime<Utc>,
    /// Attempts that ended, however they ended (completed, failed,
    /// retried, cancelled or expired while running, or lost with their
    /// worker on a networked backend; not snoozed).
    pub processed: u64,
    /// Of those, attempts that ended in an error (failed for good, or to be
    /// retried, a lost one included).
    pub failed: u64,
}

impl Throughput {
    /// `processed` and `failed` attempts in the minute starting `minute`.
    pub fn new(minute: DateTime<Utc>, processed: u64, failed: u64) -> Self {
        Self {
            minute,
            processed,
            failed,
        }
    }

    /// The start of the minute `at` falls in.
    pub fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
        at.duration_trunc(TimeDelta::minutes(1)).unwrap_or(at)
    }

    /// The `minutes` whole minutes ending with the one `now` falls in,
    /// oldest first, each with the counts `known` has for it (zero for a
    /// minute it lacks): how a backend fills the gaps of what it stored.
    pub fn series(
        now: DateTime<Utc>,
        minutes: usize,
        known: impl IntoIterator<Item = Throughput>,
    ) -> Vec<Throughput> {
        let minutes = minutes.min(THROUGHPUT_MINUTES);
        let last = Self::minute_of(now);
        let mut series: Vec<Throughput> = (0..minutes)
            .rev()
            .map(|back| Throughput::new(last - TimeDelta::minutes(back as i64), 0, 0))
            .collect();
        let Some(first) = series.first().map(|t| t.minute) else {
            return series;
        };
        for t in known {
            let minute = Self::minute_of(t.minute);
            if minute < first || minute > last {
                continue;
            }
            let index = ((minute - first).num_minutes()) as usize;
            series[index].processed += t.processed;
            series[index].failed += t.failed;
        }
        series
    }
}

/// A worker as it reports itself to its queue, for operators to see
/// ([`QueueAdmin::workers`](super::QueueAdmin::workers)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// The worker's id (see `WorkerBuilder::id`).
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it last reported itself.
    pub last_seen: DateTime<Utc>,
    /// How many jobs it was running then.
    pub running: u32,
    /// How many it runs at once at most.
    pub concurrency: u32,
    /// The named queues it takes from.
    pub queues: Vec<String>,
}

impl WorkerInfo {
    /// A worker `id` on this host and process, started now.
    pub fn new(id: impl Into<String>) -> Self {
        let now = Utc::now();
        Self {
            id: id.into(),
            host: hostname(),
            pid: std::process::id(),
            started_at: now,
            last_seen: now,
            running: 0,
            concurrency: 0,
            queues: Vec::new(),
        }
    }
}

/// This machine's name, as the environment or the kernel gives it.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_fills_gaps_and_drops_what_is_out_of_range() {
        let now = "2026-01-01T10:30:40Z".parse::<DateTime<Utc>>().unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let series = Throughput::series(
            now,
            3,
            [
                Throughput::new(at("2026-01-01T10:30:00Z"), 5, 1),
                Throughput::new(at("2026-01-01T10:28:00Z"), 2, 0),
                Throughput::new(at("2026-01-01T10:27:00Z"), 9, 9),
            ],
        );
        let got: Vec<_> = series
            .iter()
            .map(|t| (t.minute.format("%H:%M").to_string(), t.processed, t.failed))
            .collect();
        assert_eq!(
            got,
            [
                ("10:28".to_owned(), 2, 0),
                ("10:29".to_owned(), 0, 0),
                ("10:30".to_owned(), 5, 1)
            ]
        );
    }

    #[test]
    fn a_page_is_cut_newest_first() {
        let mut jobs = Vec::new();
        for i in 0..5 {
            let mut job = Job::new("x", serde_json::json!(i));
            job.created_at = DateTime::<Utc>::from_timestamp(1_000 + i, 0).unwrap();
            jobs.push(job);
        }
        let page = JobPage::cut(jobs, &JobFilter::new().page(1, 2));
        let args: Vec<_> = page.jobs.iter().map(|j| j.args.clone()).collect();
        assert_eq!(args, [serde_json::json!(3), serde_json::json!(2)]);
        assert!(page.more);
    }
}
