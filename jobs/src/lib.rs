//! Typed background jobs for Rust.
//!
//! Write an async function, put `#[job]` on it, and get a registered
//! handler, a typed way to enqueue it, and a worker runtime that runs it
//! with priorities, retries with backoff, timeouts, schedules and status
//! tracking — on an in-memory queue in one process ([`MemoryJobQueue`]) or,
//! with the `redis` feature, on Redis across many processes.
//!
//! ```rust,standalone_crate,no_run
//! use jobs::prelude::*;
//!
//! #[job(priority = "high", retries = 3, timeout = "30s")]
//! async fn send_email(to: String, subject: String) -> Result<(), JobError> {
//!     // ... talk SMTP; an `Err` is retried with backoff ...
//!     # let _ = (to, subject);
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), jobs::Error> {
//!     let worker = BackgroundJobWorker::builder().build()?;
//!     let id = send_email::enqueue(&worker, "a@example.com".into(), "Hi".into()).await?;
//!     let running = tokio::spawn(worker.clone().run_owned());
//!     println!("{:?}", worker.wait_for(id).await?.status);
//!     worker.stop().await;
//!     running.await.unwrap()
//! }
//! ```
//!
//! Where to look:
//!
//! - [`job`](macro@job): the attribute, every key and what it generates.
//! - [`BackgroundJobWorker`]: running jobs, and managing them (status,
//!   cancel, retry, stats, health).
//! - [`Job`], [`JobResult`], [`JobError`]: the job model and outcomes.
//! - [`queue`]: the [`JobQueue`] protocol a worker speaks, the
//!   [`QueueAdmin`] operations (get, list, cancel, retry, counts, purge,
//!   ping), [`MemoryJobQueue`] and, with the `redis` feature,
//!   `RedisJobQueue`.
//! - [`Schedule`] and [`JobScheduler`]: periodic tasks.
//! - [`JobProcessor`]: the class-based style, routing on `job.name`; the
//!   [`Registry`] is the processor of the `#[job]` functions.
//! - [`JobContext`] and [`Data`]: what a running job sees besides its
//!   arguments.
//!
//! The README has a tour, and `jobs-examples/examples/` a program for every
//! scenario.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod clock;
mod context;
mod error;
mod events;
pub mod flow;
mod job;
mod processor;
pub mod queue;
mod registry;
mod result;
mod schedule;
mod scheduler;
mod serde_millis;
pub mod telemetry;
pub mod testing;
mod worker;
pub mod workflow;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use clock::Clock;
pub use context::{Data, DataMap, JobContext};
pub use error::{BackendError, Error, Result};
pub use events::{JobEvent, JobEventKind};
pub use flow::{ConcurrencyLimit, QueueLimits, Rate, RateLimit, Unique};
pub use job::{
    AttemptError, Backoff, DEFAULT_MAX_RETRIES, DEFAULT_QUEUE, Job, JobId, JobPriority, JobStatus,
    MAX_ATTEMPT_ERRORS, MAX_QUEUE_NAME, check_queue_name,
};
pub use processor::JobProcessor;
pub use queue::{
    AnyQueue, CancelOutcome, DeleteOutcome, Enqueue, Enqueued, JobFilter, JobPage, JobQueue, Lease,
    MAX_PAGE, MemoryJobQueue, Outcome, QueueAdmin, QueueCounts, QueueInfo, Reservation,
    THROUGHPUT_MINUTES, Take, Throughput, WorkerInfo,
};
#[cfg(feature = "postgres")]
pub use queue::{PostgresJobQueue, PostgresJobQueueBuilder, PostgresLastRunStore, PostgresTx};
#[cfg(feature = "redis")]
pub use queue::{RedisJobQueue, RedisJobQueueBuilder, RedisLastRunStore};
// `JobRegistration`, `DataNeed`, `HandlerFn` and `ScheduleSpec` exist for
// the code `#[job]` generates: reachable through `__private`, not here.
pub use registry::{JobArgs, Registry};
pub use result::{JobError, JobResult, Retry};
pub use schedule::{Schedule, Weekday};
pub use scheduler::{
    JobScheduler, LastRunStore, MemoryLastRunStore, MissedRuns, PeriodicTask, SchedulerBuilder,
    TaskInfo, TaskOutcome,
};
pub use worker::{
    BackgroundJobWorker, QueueStats, StopReport, WorkerBuilder, WorkerHealth, WorkerState,
    WorkerStats,
};

#[doc = include_str!("job_attribute.md")]
pub use jobs_macros::job;

/// The names most programs need: `use jobs::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "postgres")]
    pub use crate::PostgresJobQueue;
    #[cfg(feature = "redis")]
    pub use crate::RedisJobQueue;
    pub use crate::workflow::{Batch, Step, Workflow};
    pub use crate::{
        BackgroundJobWorker, Data, Enqueue, Job, JobContext, JobError, JobId, JobPriority,
        JobProcessor, JobQueue, JobResult, JobScheduler, JobStatus, MemoryJobQueue, MissedRuns,
        PeriodicTask, QueueAdmin, QueueStats, Registry, Schedule, job,
    };
}
