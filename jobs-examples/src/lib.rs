//! Shared helpers for the examples and integration tests of the `jobs`
//! workspace. Not published.
//!
//! The examples run a worker and report what it did in one way, written
//! here once:
//!
//! - [`submit_all`] submits jobs and says so, one line each;
//! - [`start`] runs a worker on a task of its own until
//!   [`RunningWorker::stop`]; [`run_until_done`] runs one until some jobs
//!   have finished, and [`monitor_until_done`] does the same while printing
//!   the queue and each job's status;
//! - [`print_outcome`] and [`print_outcome_as`] print how a job ended (one
//!   line, [`outcome`]), [`print_stats`] the queue's statistics.
//!
//! [`bench`](mod@bench) holds what the backend benchmarks share.
//!
//! The conformance suite and the multi-process helpers are in
//! `jobs-testkit`; this crate re-exports the test helpers under their old
//! paths for the tests here.

use std::time::Duration;

pub mod bench;

use jobs::{BackgroundJobWorker, Job, JobId, JobStatus, QueueStats, StopReport};
use tokio::task::JoinHandle;

pub use jobs_testkit::{child, database_url, probe, redis_url, suite, unique_name};

// The README's examples compile as doc tests of this crate.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Logs to stderr through `tracing`, at the level `RUST_LOG` says (default
/// `warn`): what every example calls first.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
}

/// Submits `jobs` to `worker` in order, printing a line for each (name, id,
/// priority). Returns them as stored, for [`monitor_until_done`].
pub async fn submit_all(
    worker: &BackgroundJobWorker,
    jobs: impl IntoIterator<Item = Job>,
) -> jobs::Result<Vec<Job>> {
    let mut submitted = Vec::new();
    for job in jobs {
        let job = worker.submit_job(job).await?;
        println!(
            "📝 Submitted job: {} (ID: {}, priority {})",
            job.name, job.id, job.priority
        );
        submitted.push(job);
    }
    Ok(submitted)
}

/// A worker running on a task of its own, from [`start`]. Stop it with
/// [`stop`](Self::stop); dropped without, the task runs on until the
/// runtime ends.
#[must_use = "stop the worker with `RunningWorker::stop`"]
#[derive(Debug)]
pub struct RunningWorker {
    worker: BackgroundJobWorker,
    task: JoinHandle<jobs::Result<()>>,
}

/// Starts `worker` on a task of its own (`worker.run()`, spawned).
///
/// ```
/// use jobs::prelude::*;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), jobs::Error> {
/// let worker = BackgroundJobWorker::builder().build()?;
/// let running = jobs_examples::start(&worker);
/// // ... submit jobs, wait for them ...
/// let report = running.stop().await?;
/// assert!(report.abandoned.is_empty());
/// # Ok(()) }
/// ```
pub fn start(worker: &BackgroundJobWorker) -> RunningWorker {
    RunningWorker {
        worker: worker.clone(),
        task: tokio::spawn(worker.clone().run_owned()),
    }
}

impl RunningWorker {
    /// Stops the worker gracefully ([`BackgroundJobWorker::stop`]) and waits
    /// for its task. Returns which jobs were handed back unfinished, or the
    /// error `run` ended with (a processor's failed `startup`, missing
    /// shared state, ..). A worker stopped before its task got to run ran
    /// nothing and hands nothing back: that is a clean stop too.
    ///
    /// # Panics
    ///
    /// If the worker's task panicked.
    pub async fn stop(self) -> jobs::Result<StopReport> {
        let report = self.worker.stop().await;
        match self.task.await.expect("the worker task panicked") {
            Ok(()) | Err(jobs::Error::Stopped) => Ok(report),
            Err(e) => Err(e),
        }
    }
}

/// Runs `worker` until every job in `ids` has finished (completed, failed,
/// cancelled or expired), then stops it. Returns the finished jobs, in the
/// order of `ids`.
///
/// ```
/// use jobs::prelude::*;
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), jobs::Error> {
/// let worker = BackgroundJobWorker::builder().build()?;
/// // No `#[job]` is called `nobody`: the job fails at once, permanently.
/// let id = worker.submit_job(Job::new("nobody", json!({}))).await?.id;
/// let finished = jobs_examples::run_until_done(&worker, &[id]).await?;
/// assert_eq!(finished[0].status, JobStatus::Failed);
/// // ❌ nobody: failed after 1 attempt(s): Unknown job type: nobody
/// jobs_examples::print_outcome(&finished[0]);
/// # Ok(()) }
/// ```
pub async fn run_until_done(worker: &BackgroundJobWorker, ids: &[JobId]) -> jobs::Result<Vec<Job>> {
    let running = start(worker);
    let finished = wait_for_all(worker, ids).await;
    // Stop in any case, so an error waiting does not leave the worker running.
    let stopped = running.stop().await;
    let finished = finished?;
    stopped?;
    Ok(finished)
}

/// Like [`run_until_done`] for jobs as [`submit_job`] returned them, printing
/// every `every` the queue's statistics ([`print_stats`]) and each job's
/// status (through `get_job_status`), and once more when all have finished:
/// the seed's monitor loop.
///
/// [`submit_job`]: BackgroundJobWorker::submit_job
pub async fn monitor_until_done(
    worker: &BackgroundJobWorker,
    jobs: &[Job],
    every: Duration,
) -> jobs::Result<Vec<Job>> {
    let running = start(worker);
    let monitored = monitor(worker, jobs, every).await;
    let stopped = running.stop().await;
    let finished = monitored?;
    stopped?;
    Ok(finished)
}

async fn monitor(
    worker: &BackgroundJobWorker,
    jobs: &[Job],
    every: Duration,
) -> jobs::Result<Vec<Job>> {
    let ids: Vec<JobId> = jobs.iter().map(|job| job.id).collect();
    let finished = wait_for_all(worker, &ids);
    tokio::pin!(finished);
    loop {
        if print_statuses(worker, jobs).await? {
            // All final: this returns at once.
            return finished.await;
        }
        tokio::select! {
            done = &mut finished => {
                print_statuses(worker, jobs).await?;
                return done;
            }
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Prints the stats and each job's status; returns whether all are final.
async fn print_statuses(worker: &BackgroundJobWorker, jobs: &[Job]) -> jobs::Result<bool> {
    print_stats(&worker.get_queue_stats().await?);
    let mut all_final = true;
    for job in jobs {
        match worker.get_job_status(job.id).await? {
            Some(status) => {
                println!("   Job {}: {status}", job.name);
                all_final &= status.is_final();
            }
            None => println!("   Job {}: gone", job.name),
        }
    }
    Ok(all_final)
}

async fn wait_for_all(worker: &BackgroundJobWorker, ids: &[JobId]) -> jobs::Result<Vec<Job>> {
    let mut finished = Vec::with_capacity(ids.len());
    for &id in ids {
        finished.push(worker.wait_for(id).await?);
    }
    Ok(finished)
}

/// One line saying where `job` is, under `label`: for a completed job its
/// result (and the attempt it succeeded on, if not the first), for a failed
/// one its attempts and last error.
///
/// ```
/// use jobs::prelude::*;
/// use serde_json::json;
///
/// let mut job = Job::new("send_email", json!({"to": "a@example.com"}));
/// assert_eq!(jobs_examples::outcome("welcome", &job), "⏳ welcome: pending");
///
/// job.status = JobStatus::Completed;
/// job.attempts = 2;
/// job.result = Some(Box::new(JobResult::success(json!({"sent": true}))));
/// assert_eq!(
///     jobs_examples::outcome("welcome", &job),
///     r#"✅ welcome: completed on attempt 2 → {"sent":true}"#
/// );
///
/// job.status = JobStatus::Failed;
/// job.last_error = Some("invalid recipient".into());
/// assert_eq!(
///     jobs_examples::outcome("welcome", &job),
///     "❌ welcome: failed after 2 attempt(s): invalid recipient"
/// );
/// ```
pub fn outcome(label: &str, job: &Job) -> String {
    match job.status {
        JobStatus::Completed => {
            let attempt = if job.attempts > 1 {
                format!(" on attempt {}", job.attempts)
            } else {
                String::new()
            };
            let result = job
                .result
                .as_ref()
                .and_then(|result| result.result.as_ref())
                .map(|value| format!(" → {value}"))
                .unwrap_or_default();
            format!("✅ {label}: completed{attempt}{result}")
        }
        JobStatus::Failed => format!(
            "❌ {label}: failed after {} attempt(s): {}",
            job.attempts,
            job.last_error.as_deref().unwrap_or("no error recorded")
        ),
        JobStatus::Cancelled => format!("🚫 {label}: cancelled"),
        JobStatus::Expired => format!("⌛ {label}: expired before it could run"),
        status => format!("⏳ {label}: {status}"),
    }
}

/// Prints how `job` ended ([`outcome`]), under its name.
pub fn print_outcome(job: &Job) {
    print_outcome_as(&job.name, job);
}

/// Prints how `job` ended ([`outcome`]), under `label` (when several jobs
/// share a name).
pub fn print_outcome_as(label: &str, job: &Job) {
    println!("{}", outcome(label, job));
}

/// Prints the queue's statistics from
/// [`get_queue_stats`](BackgroundJobWorker::get_queue_stats) on one line:
/// waiting jobs, the worker's active jobs and free slots, and its counters.
pub fn print_stats(stats: &QueueStats) {
    println!(
        "📊 queue_size={} active_jobs={} available_slots={} processed={} failed={} retried={}",
        stats.queue_size,
        stats.active_jobs,
        stats.available_slots,
        stats.worker_stats.jobs_processed,
        stats.worker_stats.jobs_failed,
        stats.worker_stats.jobs_retried,
    );
}
