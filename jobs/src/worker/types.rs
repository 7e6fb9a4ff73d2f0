//! What a worker reports: its [`WorkerState`], [`WorkerStats`] (and the
//! counters behind them), [`QueueStats`], [`WorkerHealth`] and the
//! [`StopReport`] of a shutdown. Plain values, serialisable where a
//! dashboard would want them.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::job::JobId;
use crate::queue::QueueCounts;

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
    /// Attempts that asked to run again later without counting
    /// ([`JobError::snooze`](crate::JobError::snooze)); not failures, so not
    /// in `jobs_retried` or `jobs_failed`.
    pub jobs_snoozed: u64,
}

/// What [`BackgroundJobWorker::get_queue_stats`](super::BackgroundJobWorker::get_queue_stats) returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueueStats {
    /// Jobs waiting to run (pending or retrying, including scheduled ones).
    pub queue_size: u64,
    /// Jobs this worker is running now.
    pub active_jobs: usize,
    /// How many more jobs this worker could run at once.
    pub available_slots: usize,
    /// The worker's concurrency limit (with named queues: the sum of their
    /// concurrency, or the cap if lower).
    pub max_concurrent_jobs: usize,
    /// Jobs in the queue per status.
    pub counts: QueueCounts,
    /// What this worker has done.
    pub worker_stats: WorkerStats,
}

/// The result of [`BackgroundJobWorker::health_check`](super::BackgroundJobWorker::health_check).
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

/// What [`BackgroundJobWorker::stop`](super::BackgroundJobWorker::stop) left behind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StopReport {
    /// Jobs that were still running when the shutdown timeout passed: their
    /// futures were dropped and they were handed back to the queue, ready to
    /// run again (by another worker, or this one's successor).
    pub abandoned: Vec<JobId>,
}

/// The counters behind [`WorkerStats`], bumped by the run loop.
#[derive(Default)]
pub(super) struct Stats {
    pub(super) processed: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) cancelled: AtomicU64,
    pub(super) expired: AtomicU64,
    pub(super) timed_out: AtomicU64,
    pub(super) panicked: AtomicU64,
    pub(super) snoozed: AtomicU64,
}

impl Stats {
    /// What the counters say now.
    pub(super) fn snapshot(&self) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            jobs_processed: get(&self.processed),
            jobs_failed: get(&self.failed),
            jobs_retried: get(&self.retried),
            jobs_cancelled: get(&self.cancelled),
            jobs_expired: get(&self.expired),
            jobs_timed_out: get(&self.timed_out),
            jobs_panicked: get(&self.panicked),
            jobs_snoozed: get(&self.snoozed),
        }
    }
}
