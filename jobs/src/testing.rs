//! Testing code that enqueues and runs jobs: assert what was enqueued, run a
//! job as the worker would, drain a queue deterministically, run jobs inline.
//!
//! What Sidekiq's `Sidekiq::Testing`, Oban's `Oban.Testing` and River's
//! `rivertest` give their users:
//!
//! - [`assert_enqueued!`](crate::assert_enqueued) /
//!   [`refute_enqueued!`](crate::refute_enqueued): a job of this kind is (or
//!   is not) waiting, its typed arguments matching in part or in full
//!   (`to = "a@x.com"` compares the field `to` of the job's generated
//!   `Args` with `==`, so a misspelt field does not compile). A failed
//!   assertion panics with every waiting job (name, arguments, queue, due
//!   time) and, for those of the expected kind, which fields differ.
//!   [`enqueued`] lists the typed `Args` of the waiting jobs of one kind.
//!   They work on anything that lists jobs ([`ListJobs`]): the queues, a
//!   worker, an [`Inline`] target.
//! - [`perform_job`]: one attempt of a job, run as the worker runs it (the
//!   same decoding, `Data` injection, timeout, panic isolation and error
//!   classification: the worker's own code), returning the [`JobResult`];
//!   `.data(..)`, `.processor(..)` or `.using(&worker)` set what it runs
//!   with, `.outcome()` says what the worker would do next.
//! - [`drain`]: runs every ready job of a queue or worker to completion,
//!   one at a time, in the order a worker would take them, and counts how
//!   they ended ([`Drained`]). Optionally it runs the jobs those jobs
//!   enqueue, and the scheduled ones and retries too, by moving time
//!   forward: under tokio's paused clock that takes no wall time, so "fails
//!   twice, then succeeds" runs in milliseconds.
//! - [`Inline`]: an [`Enqueue`] target on which `enqueue` runs the job at
//!   once and returns after it finished (Sidekiq's `inline!`).
//! - [`trigger`]: enqueues one occurrence of a periodic (`cron` / `every`)
//!   job by name.
//!
//! # Always compiled
//!
//! The module needs no cargo feature: it adds no dependency and costs
//! nothing unless called, and `#[job]` expands the same whatever the
//! features (every generated `Args` implements [`JobArgs`]). A feature
//! would have to be enabled in every crate whose tests use it, and for doc
//! tests, for no gain.
//!
//! # Virtual time
//!
//! The framework reads the time from a [`Clock`]. Build the queue (or the
//! worker) with [`Clock::tokio`] and run the test under paused time
//! (`#[tokio::test(start_paused = true)]`, which needs tokio's `test-util`
//! feature): [`drain`] then moves time to the next due job instead of
//! waiting, and so do retries' backoff, timeouts and any `sleep` in a job.
//! On the system clock, [`Drain::with_scheduled`] refuses to run, rather
//! than wait in real time.
//!
//! # Example
//!
//! ```rust,standalone_crate
//! use std::sync::atomic::{AtomicU32, Ordering};
//!
//! use jobs::prelude::*;
//! use jobs::testing::{self, drain, perform_job};
//! use jobs::{Clock, assert_enqueued, refute_enqueued};
//!
//! #[job(queue = "mailers", retries = 3)]
//! async fn send_email(to: String, subject: String) -> Result<(), JobError> {
//!     if to.is_empty() {
//!         return Err(JobError::permanent("no recipient"));
//!     }
//!     Ok(())
//! }
//!
//! static CALLS: AtomicU32 = AtomicU32::new(0);
//!
//! #[job]
//! async fn flaky() -> Result<u32, JobError> {
//!     match CALLS.fetch_add(1, Ordering::SeqCst) + 1 {
//!         n @ 1..=2 => Err(JobError::retryable(format!("attempt {n} failed"))),
//!         n => Ok(n),
//!     }
//! }
//!
//! async fn sign_up(queue: &MemoryJobQueue, email: &str) -> Result<(), jobs::Error> {
//!     send_email::enqueue(queue, email.into(), "Welcome".into()).await?;
//!     Ok(())
//! }
//!
//! # fn main() {
//! # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
//! // In a test: `#[tokio::test(start_paused = true)] async fn ..`.
//! let queue = MemoryJobQueue::builder().clock(Clock::tokio()).build();
//! sign_up(&queue, "a@x.com").await.unwrap();
//!
//! assert_enqueued!(queue, send_email, to = "a@x.com");
//! assert_enqueued!(queue, send_email, to = "a@x.com", subject = "Welcome"; queue = "mailers");
//! refute_enqueued!(queue, send_email, to = "b@x.com");
//! let all: Vec<send_email::Args> = testing::enqueued::<send_email::Args>(&queue).await;
//! assert_eq!(all[0].subject, "Welcome");
//!
//! // One attempt, as the worker runs it.
//! let result = perform_job(send_email::job(String::new(), "Hi".into())).await;
//! assert!(!result.success && !result.retryable);
//!
//! // Run everything, retries included, on virtual time.
//! flaky::enqueue(&queue).await.unwrap();
//! let drained = drain(&queue).with_scheduled(true).await.unwrap();
//! assert_eq!((drained.completed, drained.retried, drained.failed), (2, 2, 0));
//! refute_enqueued!(queue, flaky);
//! # });
//! # }
//! ```

use std::collections::HashSet;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::context::{DataMap, JobContext};
use crate::error::{Error, Result};
use crate::job::{DEFAULT_QUEUE, Job, JobId, JobPriority, JobStatus};
use crate::processor::{DynProcessor, JobProcessor};
use crate::queue::erased::DynQueue;
use crate::queue::{Enqueue, Enqueued, Lease, MemoryJobQueue, Outcome, QueueAdmin, Take};
use crate::registry::Registry;
use crate::result::{JobError, JobResult};
use crate::worker::{BackgroundJobWorker, decide, execute, next_run};

pub use crate::registry::JobArgs;

/// The default timeout of a job that sets none, as on a worker built with
/// the defaults.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How many waiting jobs the assertions look at, at most.
const LIST_LIMIT: usize = 100_000;

/// The worker id drains reserve under.
const DRAIN_WORKER: &str = "jobs-testing-drain";

/// The lease a drain takes: long, as nothing heartbeats it.
const DRAIN_LEASE: Duration = Duration::from_secs(24 * 3600);

// ---------------------------------------------------------------------------
// Listing what was enqueued

/// Anything whose jobs can be listed: the queues ([`MemoryJobQueue`] and,
/// with the `redis` feature, `RedisJobQueue`), a [`BackgroundJobWorker`]
/// (its queue), an [`Inline`] target, and references and `Arc`s of those.
/// What the assertions of this module read. Another backend implements it
/// by calling its [`QueueAdmin::list`].
pub trait ListJobs: Send + Sync {
    /// Up to `limit` jobs with `status` (any if `None`), as
    /// [`QueueAdmin::list`].
    fn list_jobs(
        &self,
        status: Option<JobStatus>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Job>>> + Send;
}

impl ListJobs for MemoryJobQueue {
    fn list_jobs(
        &self,
        status: Option<JobStatus>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Job>>> + Send {
        QueueAdmin::list(self, status, limit)
    }
}

#[cfg(feature = "redis")]
impl ListJobs for crate::queue::RedisJobQueue {
    fn list_jobs(
        &self,
        status: Option<JobStatus>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Job>>> + Send {
        QueueAdmin::list(self, status, limit)
    }
}

impl<T: ListJobs + ?Sized> ListJobs for &T {
    fn list_jobs(
        &self,
        status: Option<JobStatus>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Job>>> + Send {
        (**self).list_jobs(status, limit)
    }
}

impl<T: ListJobs + ?Sized> ListJobs for Arc<T> {
    fn list_jobs(
        &self,
        status: Option<JobStatus>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Job>>> + Send {
        (**self).list_jobs(status, limit)
    }
}

impl ListJobs for BackgroundJobWorker {
    fn list_jobs(
        &self,
        status: Option<JobStatus>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Job>>> + Send {
        self.list_jobs(status, limit)
    }
}

impl ListJobs for Inline {
    fn list_jobs(
        &self,
        status: Option<JobStatus>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Job>>> + Send {
        QueueAdmin::list(&self.queue, status, limit)
    }
}

/// The jobs waiting in `target` (pending or retrying, scheduled ones
/// included), the first due first.
///
/// ```
/// use jobs::prelude::*;
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let queue = MemoryJobQueue::new();
/// queue.enqueue(Job::new("later", json!({})).delay(std::time::Duration::from_secs(60))).await.unwrap();
/// queue.enqueue(Job::new("now", json!({}))).await.unwrap();
/// let names: Vec<String> = jobs::testing::waiting(&queue).await.into_iter().map(|j| j.name.into_owned()).collect();
/// assert_eq!(names, ["now", "later"]);
/// # }
/// ```
///
/// # Panics
///
/// If the jobs cannot be listed (the backend is unreachable).
pub async fn waiting<T: ListJobs + ?Sized>(target: &T) -> Vec<Job> {
    let listed = async {
        let mut jobs = target
            .list_jobs(Some(JobStatus::Pending), LIST_LIMIT)
            .await?;
        jobs.extend(
            target
                .list_jobs(Some(JobStatus::Retrying), LIST_LIMIT)
                .await?,
        );
        Ok::<_, Error>(jobs)
    };
    let mut jobs = match listed.await {
        Ok(jobs) => jobs,
        Err(e) => panic!("jobs::testing: could not list the waiting jobs: {e}"),
    };
    jobs.sort_by(|a, b| {
        (a.due_at(), a.created_at, a.id.to_string()).cmp(&(
            b.due_at(),
            b.created_at,
            b.id.to_string(),
        ))
    });
    jobs
}

/// The arguments of every waiting job of kind `A` in `target` (pending or
/// retrying, scheduled ones included), the first due first, decoded as the
/// worker decodes them.
///
/// ```rust,standalone_crate
/// use jobs::prelude::*;
///
/// #[job]
/// async fn send_email(to: String) {}
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let queue = MemoryJobQueue::new();
/// send_email::enqueue(&queue, "a@x.com".into()).await.unwrap();
/// let sent = jobs::testing::enqueued::<send_email::Args>(&queue).await;
/// assert_eq!(sent.len(), 1);
/// assert_eq!(sent[0].to, "a@x.com");
/// # }
/// ```
///
/// # Panics
///
/// If the jobs cannot be listed, or a job of this kind has arguments that
/// do not decode (the message says which and why).
pub async fn enqueued<A: JobArgs>(target: &(impl ListJobs + ?Sized)) -> Vec<A> {
    waiting(target)
        .await
        .iter()
        .filter(|job| job.name == A::NAME)
        .map(|job| match crate::__private::deserialize_args::<A>(job) {
            Ok(args) => args,
            Err(e) => panic!(
                "jobs::testing::enqueued: job {} has arguments {} that do not decode: {}",
                job.id,
                job.args,
                e.message()
            ),
        })
        .collect()
}

/// Asserts that a job of a kind is waiting in a queue (pending or retrying,
/// scheduled ones included), its typed arguments matching in part or in
/// full. Use it in an `async` test: it awaits the listing.
///
/// ```text
/// assert_enqueued!(target, job_path, field = value, ..; option = value, ..)
/// ```
///
/// - `target`: anything that implements [`ListJobs`](crate::testing::ListJobs)
///   (a queue, a worker, an [`Inline`](crate::testing::Inline)).
/// - `job_path`: the `#[job]` function (its generated module), e.g.
///   `send_email` or `mailer::send_email`.
/// - `field = value`: compares the field of the job's generated `Args`
///   with `value` using `==` (the value needs `Debug`, for the message).
///   Fields left out match anything; a field the job does not have does not
///   compile.
/// - after a `;`, options: `queue = "name"`, `priority = JobPriority::High`,
///   `scheduled_at = time` (the job's due time, exactly),
///   `scheduled_between = (from, to)` (due in that span, both ends
///   included), `count = n` (exactly `n` matching jobs, instead of at least
///   one).
///
/// On failure it panics with the expected job and every waiting job: name,
/// arguments, queue, priority and due time, and for each job of the expected
/// kind the fields (and options) that differ.
///
/// ```rust,standalone_crate
/// use jobs::prelude::*;
/// use jobs::assert_enqueued;
///
/// #[job(queue = "mailers")]
/// async fn send_email(to: String, subject: String) {}
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let queue = MemoryJobQueue::new();
/// send_email::enqueue(&queue, "a@x.com".into(), "Hi".into()).await.unwrap();
/// assert_enqueued!(queue, send_email);
/// assert_enqueued!(queue, send_email, to = "a@x.com");
/// assert_enqueued!(queue, send_email, to = "a@x.com", subject = "Hi"; queue = "mailers", count = 1);
/// # }
/// ```
#[macro_export]
macro_rules! assert_enqueued {
    ($target:expr, $($job:ident)::+ $(, $field:ident = $value:expr)* $(; $($option:ident = $option_value:expr),+ )? $(,)?) => {
        $crate::__testing_check!(true, $target, $($job)::+ $(, $field = $value)* $(; $($option = $option_value),+ )?)
    };
}

/// Asserts that no job of a kind, matching these arguments, is waiting in a
/// queue: the opposite of [`assert_enqueued!`](crate::assert_enqueued),
/// with the same arguments and options (`count` aside). Without fields, no
/// job of the kind may wait at all. On failure it panics with the jobs that
/// match.
///
/// ```rust,standalone_crate
/// use jobs::prelude::*;
/// use jobs::refute_enqueued;
///
/// #[job]
/// async fn send_email(to: String) {}
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let queue = MemoryJobQueue::new();
/// refute_enqueued!(queue, send_email);
/// send_email::enqueue(&queue, "a@x.com".into()).await.unwrap();
/// refute_enqueued!(queue, send_email, to = "b@x.com");
/// # }
/// ```
#[macro_export]
macro_rules! refute_enqueued {
    ($target:expr, $($job:ident)::+ $(, $field:ident = $value:expr)* $(; $($option:ident = $option_value:expr),+ )? $(,)?) => {
        $crate::__testing_check!(false, $target, $($job)::+ $(, $field = $value)* $(; $($option = $option_value),+ )?)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __testing_check {
    ($present:expr, $target:expr, $($job:ident)::+ $(, $field:ident = $value:expr)* $(; $($option:ident = $option_value:expr),+ )?) => {{
        type __JobsTestingArgs = $($job)::+::Args;
        $crate::testing::__macro::check::<__JobsTestingArgs, _>(
            &$target,
            $crate::testing::__macro::Expect::<__JobsTestingArgs>::new(
                $present,
                ::core::concat!(
                    ::core::stringify!($target), ", ",
                    ::core::stringify!($($job)::+)
                    $(, ", ", ::core::stringify!($field), " = ", ::core::stringify!($value))*
                ),
                ::core::file!(),
                ::core::line!(),
            )
            $(.field($crate::testing::__macro::field(
                ::core::stringify!($field),
                $value,
                |args: &__JobsTestingArgs, expected| args.$field == *expected,
            )))*
            $($(.$option($option_value))+)?,
        )
        .await
    }};
}

/// What the assertion macros expand to. Not a public API.
#[doc(hidden)]
pub mod __macro {
    use super::*;

    /// One `field = value` of an assertion.
    pub struct Field<A> {
        name: &'static str,
        expected: String,
        matches: Box<dyn Fn(&A) -> bool + Send + Sync>,
    }

    /// A `field = value`: the field's name, the value, and how to compare.
    pub fn field<A, V>(
        name: &'static str,
        value: V,
        compare: impl Fn(&A, &V) -> bool + Send + Sync + 'static,
    ) -> Field<A>
    where
        V: fmt::Debug + Send + Sync + 'static,
    {
        Field {
            name: name.trim_start_matches("r#"),
            expected: format!("{value:?}"),
            matches: Box::new(move |args| compare(args, &value)),
        }
    }

    /// What an assertion expects.
    pub struct Expect<A> {
        present: bool,
        call: &'static str,
        file: &'static str,
        line: u32,
        fields: Vec<Field<A>>,
        queue: Option<String>,
        priority: Option<JobPriority>,
        scheduled_at: Option<DateTime<Utc>>,
        scheduled_between: Option<(DateTime<Utc>, DateTime<Utc>)>,
        count: Option<usize>,
    }

    impl<A: JobArgs> Expect<A> {
        /// An expectation with no fields nor options.
        pub fn new(present: bool, call: &'static str, file: &'static str, line: u32) -> Self {
            Expect {
                present,
                call,
                file,
                line,
                fields: Vec::new(),
                queue: None,
                priority: None,
                scheduled_at: None,
                scheduled_between: None,
                count: None,
            }
        }

        /// Adds a `field = value`.
        pub fn field(mut self, field: Field<A>) -> Self {
            self.fields.push(field);
            self
        }

        /// `queue = ".."`: the job's named queue.
        pub fn queue(mut self, queue: impl Into<String>) -> Self {
            self.queue = Some(queue.into());
            self
        }

        /// `priority = ..`: the job's priority.
        pub fn priority(mut self, priority: JobPriority) -> Self {
            self.priority = Some(priority);
            self
        }

        /// `scheduled_at = ..`: when the job is due, exactly.
        pub fn scheduled_at(mut self, at: DateTime<Utc>) -> Self {
            self.scheduled_at = Some(at);
            self
        }

        /// `scheduled_between = (from, to)`: due at `from` or later, and at
        /// `to` or earlier.
        pub fn scheduled_between(mut self, (from, to): (DateTime<Utc>, DateTime<Utc>)) -> Self {
            self.scheduled_between = Some((from, to));
            self
        }

        /// `count = n`: exactly `n` matching jobs.
        pub fn count(mut self, count: usize) -> Self {
            self.count = Some(count);
            self
        }

        /// Why `job` (of the expected kind) does not match: the fields and
        /// options that differ; empty if it matches.
        fn differences(&self, job: &Job) -> Vec<String> {
            let mut differences = Vec::new();
            if !self.fields.is_empty() {
                match crate::__private::deserialize_args::<A>(job) {
                    Ok(args) => {
                        for field in &self.fields {
                            if !(field.matches)(&args) {
                                let found = job
                                    .args
                                    .get(field.name)
                                    .map_or_else(|| "nothing".to_owned(), |v| v.to_string());
                                differences.push(format!(
                                    "{}: expected {}, found {found}",
                                    field.name, field.expected
                                ));
                            }
                        }
                    }
                    Err(e) => {
                        differences.push(format!("its arguments do not decode: {}", e.message()))
                    }
                }
            }
            if let Some(queue) = &self.queue {
                if job.queue != queue.as_str() {
                    differences.push(format!("queue: expected {queue:?}, found {:?}", job.queue));
                }
            }
            if let Some(priority) = self.priority {
                if job.priority != priority {
                    differences.push(format!(
                        "priority: expected {priority:?}, found {:?}",
                        job.priority
                    ));
                }
            }
            if let Some(at) = self.scheduled_at {
                if job.due_at() != at {
                    differences.push(format!(
                        "scheduled_at: expected {}, found {}",
                        at.to_rfc3339(),
                        job.due_at().to_rfc3339()
                    ));
                }
            }
            if let Some((from, to)) = self.scheduled_between {
                let due = job.due_at();
                if due < from || due > to {
                    differences.push(format!(
                        "scheduled_between: expected from {} to {}, found {}",
                        from.to_rfc3339(),
                        to.to_rfc3339(),
                        due.to_rfc3339()
                    ));
                }
            }
            differences
        }
    }

    /// Runs an assertion; panics with the message on failure.
    pub async fn check<A: JobArgs, T: ListJobs + ?Sized>(target: &T, expect: Expect<A>) {
        let jobs = waiting(target).await;
        let matching: Vec<&Job> = jobs
            .iter()
            .filter(|job| job.name == A::NAME && expect.differences(job).is_empty())
            .collect();
        let macro_name = if expect.present {
            "assert_enqueued!"
        } else {
            "refute_enqueued!"
        };
        let failure = match (expect.present, expect.count) {
            (true, Some(count)) if matching.len() != count => Some(format!(
                "expected {count} waiting job(s) matching, found {}",
                matching.len()
            )),
            (true, None) if matching.is_empty() => Some("no waiting job matches".to_owned()),
            (false, _) if !matching.is_empty() => Some(format!(
                "{} waiting job(s) match, expected none",
                matching.len()
            )),
            _ => None,
        };
        let Some(failure) = failure else {
            return;
        };
        let mut message = format!(
            "{macro_name}({}) failed at {}:{}: {failure}\n",
            expect.call, expect.file, expect.line
        );
        message.push_str(&format!("  expected: {}", A::NAME));
        if !expect.fields.is_empty() {
            let fields: Vec<String> = expect
                .fields
                .iter()
                .map(|f| format!("{}: {}", f.name, f.expected))
                .collect();
            message.push_str(&format!(" {{ {} }}", fields.join(", ")));
        }
        if let Some(queue) = &expect.queue {
            message.push_str(&format!(", queue {queue:?}"));
        }
        if let Some(priority) = expect.priority {
            message.push_str(&format!(", priority {priority:?}"));
        }
        if let Some(at) = expect.scheduled_at {
            message.push_str(&format!(", due {}", at.to_rfc3339()));
        }
        if let Some((from, to)) = expect.scheduled_between {
            message.push_str(&format!(
                ", due from {} to {}",
                from.to_rfc3339(),
                to.to_rfc3339()
            ));
        }
        message.push('\n');
        if jobs.is_empty() {
            message.push_str("  waiting: none (no job is pending or retrying)\n");
        } else {
            message.push_str(&format!("  waiting ({}):\n", jobs.len()));
            for job in &jobs {
                let mark = if matching.iter().any(|m| m.id == job.id) {
                    "="
                } else {
                    "-"
                };
                message.push_str(&format!("  {mark} {}\n", describe(job)));
                if job.name == A::NAME && expect.present {
                    for difference in expect.differences(job) {
                        message.push_str(&format!("      {difference}\n"));
                    }
                }
            }
        }
        panic!("{message}");
    }
}

/// One line about a job: name, arguments, queue, priority, due time, status.
fn describe(job: &Job) -> String {
    let due = match job.scheduled_at {
        Some(at) => format!("due {}", at.to_rfc3339()),
        None => "ready".to_owned(),
    };
    format!(
        "{} {} (queue {:?}, priority {:?}, {due}, {}, attempts {})",
        job.name,
        job.args,
        job.queue,
        job.priority,
        job.status.as_str(),
        job.attempts
    )
}

// ---------------------------------------------------------------------------
// Running jobs

/// What runs jobs the way a worker does: the queue, processor, shared state,
/// default timeout and clock.
#[derive(Clone)]
struct Harness {
    queue: Arc<dyn DynQueue>,
    processor: Arc<dyn DynProcessor>,
    data: Arc<DataMap>,
    default_timeout: Option<Duration>,
    clock: Clock,
    /// The worker's named queues, if it has any configured.
    queues: Vec<String>,
    /// Whether jobs run as they are enqueued ([`Inline`]).
    inline: bool,
    /// A worker's scheduler, whose tasks [`trigger`] finds first.
    scheduler: Option<crate::JobScheduler>,
    /// Whether it is a worker's that runs (a drain refuses to take its jobs).
    running: bool,
    /// Whether a drain first checks the processor's shared state, as a
    /// worker does before it starts (a worker's drain only: elsewhere a
    /// missing `Data<T>` fails the job that needs it).
    check_data: bool,
}

/// The processor of a target that names none: the `#[job]` registry.
fn global_registry() -> Arc<dyn DynProcessor> {
    match Registry::global() {
        Ok(registry) => Arc::new(registry),
        Err(e) => panic!("jobs::testing: the `#[job]` registry is invalid: {e}"),
    }
}

impl Harness {
    fn memory(queue: &MemoryJobQueue) -> Self {
        Harness {
            queue: Arc::new(queue.clone()),
            processor: global_registry(),
            data: Arc::default(),
            default_timeout: Some(DEFAULT_TIMEOUT),
            clock: queue.clock(),
            queues: Vec::new(),
            inline: false,
            scheduler: None,
            running: false,
            check_data: false,
        }
    }

    fn worker(worker: &BackgroundJobWorker) -> Self {
        let parts = worker.parts();
        Harness {
            queue: parts.queue,
            processor: parts.processor,
            data: parts.data,
            default_timeout: parts.default_timeout,
            clock: parts.clock,
            queues: parts.queues,
            inline: false,
            scheduler: Some(parts.scheduler),
            running: !matches!(
                worker.state(),
                crate::WorkerState::Idle | crate::WorkerState::Stopped
            ),
            check_data: true,
        }
    }

    /// One reserved job: run, and its outcome recorded, as the worker does.
    async fn run(&self, job: Job, lease: Lease, report: &mut Drained) -> Result<()> {
        let now = self.clock.now();
        let outcome = if job.expires_at.is_some_and(|at| at <= now) {
            Outcome::Expired
        } else {
            let mut cx = JobContext::new(&job, Arc::clone(&self.data), CancellationToken::new());
            if job.step.as_ref().is_some_and(|s| s.has_dependencies()) {
                cx = cx.with_results(self.queue.dependency_results(job.id).await?);
            }
            let timeout = job.timeout.or(self.default_timeout);
            let attempt = execute(&*self.processor, &job, &cx, timeout).await;
            if let Some(progress) = cx.last_progress() {
                // As in a worker, progress that cannot be written does not
                // change the outcome.
                let _ = self.queue.progress(lease, progress).await;
            }
            decide(self.clock, &job, attempt.result)
        };
        report.count(&outcome);
        let next = next_run(&job, &outcome, now);
        self.queue
            .finish(lease, outcome, next.map(Box::new))
            .await?;
        Ok(())
    }
}

/// What [`drain`] and [`trigger`] run on: a [`MemoryJobQueue`] (its jobs
/// run by the `#[job]` registry, with no shared state, on the queue's
/// clock), a [`BackgroundJobWorker`] (its queue, processor, shared state,
/// default timeout, clock and named queues; a worker that runs is refused,
/// as the two would race for the jobs) or an [`Inline`] target.
pub trait Drainable: Send + Sync {
    /// What runs the jobs.
    fn source(&self) -> Source;
}

/// What a [`Drainable`] runs its jobs with (opaque).
#[derive(Clone)]
pub struct Source {
    harness: Harness,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("clock", &self.harness.clock)
            .field("queues", &self.harness.queues)
            .finish_non_exhaustive()
    }
}

impl Drainable for MemoryJobQueue {
    fn source(&self) -> Source {
        Source {
            harness: Harness::memory(self),
        }
    }
}

impl Drainable for BackgroundJobWorker {
    fn source(&self) -> Source {
        Source {
            harness: Harness::worker(self),
        }
    }
}

impl Drainable for Inline {
    fn source(&self) -> Source {
        Source {
            harness: self.harness.clone(),
        }
    }
}

impl<T: Drainable + ?Sized> Drainable for &T {
    fn source(&self) -> Source {
        (**self).source()
    }
}

impl<T: Drainable + ?Sized> Drainable for Arc<T> {
    fn source(&self) -> Source {
        (**self).source()
    }
}

/// How a [`drain`] went: how the attempts it ran ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Drained {
    /// Attempts that succeeded: the job is `Completed`.
    pub completed: usize,
    /// Attempts that failed for good: the job is `Failed`.
    pub failed: usize,
    /// Attempts that failed and will be retried: the job is `Retrying`.
    pub retried: usize,
    /// Attempts that snoozed ([`JobError::snooze`]).
    pub snoozed: usize,
    /// Jobs that had expired before they could run: the job is `Expired`.
    pub expired: usize,
    /// Attempts that ended cancelled.
    pub cancelled: usize,
}

impl Drained {
    /// How many attempts ran (or, for expired jobs, were due).
    pub fn attempts(&self) -> usize {
        self.completed + self.failed + self.retried + self.snoozed + self.expired + self.cancelled
    }

    fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Completed(_) => self.completed += 1,
            Outcome::Failed(_) => self.failed += 1,
            Outcome::Retry { .. } => self.retried += 1,
            Outcome::Snoozed { .. } => self.snoozed += 1,
            Outcome::Expired => self.expired += 1,
            _ => self.cancelled += 1,
        }
    }
}

/// Runs the ready jobs of `target` to completion: see [`Drain`] for the
/// options. Await it (it is a builder that implements [`IntoFuture`]).
///
/// ```rust,standalone_crate
/// use jobs::prelude::*;
/// use jobs::testing::drain;
///
/// #[job]
/// async fn add(a: i64, b: i64) -> Result<i64, JobError> { Ok(a + b) }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), jobs::Error> {
/// let queue = MemoryJobQueue::new();
/// let id = add::enqueue(&queue, 2, 3).await?;
/// let drained = drain(&queue).await?;
/// assert_eq!(drained.completed, 1);
/// let job = queue.get(id).await?.unwrap();
/// assert_eq!(job.result.unwrap().result, Some(serde_json::json!(5)));
/// # Ok(()) }
/// ```
pub fn drain<T: Drainable + ?Sized>(target: &T) -> Drain {
    Drain {
        harness: target.source().harness,
        queues: None,
        new_jobs: false,
        scheduled: false,
        horizon: Duration::from_secs(24 * 3600),
        max_attempts: 10_000,
        only: None,
    }
}

/// Runs every ready job of a queue or worker, one at a time, the way a
/// worker would (the same run path: decoding, `Data`, timeout, panics,
/// retries and backoff, snoozes, recurring jobs' next runs), until none is
/// left; made by [`drain`], run by awaiting it.
///
/// By default it runs the jobs that are ready when it starts, and retries
/// of theirs that are due at once. (On a paused tokio clock, a job enqueued
/// with no schedule counts as ready: its creation time, read from the
/// system clock, is a little ahead of the paused one, and the drain moves
/// time up to it.) Options:
///
/// - [`with_new_jobs`](Self::with_new_jobs): also the jobs those jobs
///   enqueue (and the next runs of recurring jobs);
/// - [`with_scheduled`](Self::with_scheduled): also jobs due later, and
///   retries after their backoff, by moving time forward up to a
///   [`horizon`](Self::horizon) (see [virtual time](self#virtual-time));
/// - [`queues`](Self::queues): only these named queues.
///
/// It returns how the attempts ended ([`Drained`]), or an error if the queue
/// fails, if a drained worker's shared state is missing (as the worker
/// would refuse to start; on a queue, a job whose `Data<T>` is missing fails
/// as it would in a worker), or if more than [`max_attempts`](Self::max_attempts)
/// attempts ran (a job that keeps enqueueing more).
#[must_use = "a drain does nothing until awaited"]
pub struct Drain {
    harness: Harness,
    queues: Option<Vec<String>>,
    new_jobs: bool,
    scheduled: bool,
    horizon: Duration,
    max_attempts: usize,
    /// Only these jobs (an [`Inline`] enqueue).
    only: Option<HashSet<JobId>>,
}

impl fmt::Debug for Drain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("queues", &self.queues)
            .field("new_jobs", &self.new_jobs)
            .field("scheduled", &self.scheduled)
            .field("horizon", &self.horizon)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl Drain {
    /// Only the jobs of these named queues (default: every queue the
    /// backend knows, or a worker's configured queues).
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.queues = Some(queues.into_iter().map(Into::into).collect());
        self
    }

    /// Also runs the jobs that the drained jobs enqueue, and the next runs
    /// of recurring jobs (default: only the jobs waiting when it started).
    pub fn with_new_jobs(mut self, yes: bool) -> Self {
        self.new_jobs = yes;
        self
    }

    /// Also runs jobs due later and retries after their backoff, by moving
    /// time forward to each (default: only ready jobs). Needs a queue or
    /// worker on [`Clock::tokio`], under paused time (see
    /// [virtual time](self#virtual-time)); on the system clock the drain is
    /// an `Err(Error::InvalidArgument)`, and so is one that would wait in
    /// real time.
    pub fn with_scheduled(mut self, yes: bool) -> Self {
        self.scheduled = yes;
        self
    }

    /// With [`with_scheduled`](Self::with_scheduled): how far past the
    /// drain's start to move time, at most (default: 24 hours). Jobs due
    /// later stay waiting.
    pub fn horizon(mut self, horizon: Duration) -> Self {
        self.horizon = horizon;
        self
    }

    /// How many attempts may run before the drain gives up with an error
    /// (default: 10 000): a guard against jobs that enqueue jobs forever.
    pub fn max_attempts(mut self, max: usize) -> Self {
        self.max_attempts = max;
        self
    }

    /// Runs the jobs with `processor` instead of the target's.
    pub fn processor(mut self, processor: impl JobProcessor) -> Self {
        self.harness.processor = Arc::new(processor);
        self
    }

    /// Adds shared state (`Data<T>`) for the jobs, beside the target's.
    pub fn data<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        Arc::make_mut(&mut self.harness.data).insert(value);
        self
    }

    /// The queues to take from, in order: the given ones, a worker's, or
    /// every one the backend knows (the default queue first).
    async fn queue_names(&self) -> Result<Vec<String>> {
        if let Some(queues) = &self.queues {
            return Ok(queues.clone());
        }
        if !self.harness.queues.is_empty() {
            return Ok(self.harness.queues.clone());
        }
        let mut names = vec![DEFAULT_QUEUE.to_owned()];
        for info in self.harness.queue.queues().await? {
            if !names.contains(&info.name) {
                names.push(info.name);
            }
        }
        Ok(names)
    }

    /// The waiting jobs this drain may run, in `queues`.
    async fn candidates(
        &self,
        queues: &[String],
        snapshot: &Option<HashSet<JobId>>,
    ) -> Result<Vec<Job>> {
        let mut jobs = self
            .harness
            .queue
            .list(Some(JobStatus::Pending), LIST_LIMIT)
            .await?;
        jobs.extend(
            self.harness
                .queue
                .list(Some(JobStatus::Retrying), LIST_LIMIT)
                .await?,
        );
        jobs.retain(|job| {
            queues.iter().any(|q| *q == job.queue)
                && snapshot.as_ref().is_none_or(|ids| ids.contains(&job.id))
        });
        Ok(jobs)
    }

    async fn run(self) -> Result<Drained> {
        let harness = &self.harness;
        if harness.running {
            return Err(Error::InvalidArgument(
                "drain(&worker) while the worker runs would race it for the jobs: drain a worker that was not started, or stop it first"
                    .into(),
            ));
        }
        if harness.check_data {
            harness.processor.check_data(&harness.data)?;
        }
        if self.scheduled && !harness.clock.is_tokio() {
            return Err(Error::InvalidArgument(
                "drain(..).with_scheduled(true) moves time forward, and this queue reads the system clock: \
                 build the queue (or worker) with `.clock(Clock::tokio())` and run the test under paused time \
                 (`#[tokio::test(start_paused = true)]`)"
                    .into(),
            ));
        }
        let queues = self.queue_names().await?;
        // The jobs it may run: those waiting now, unless new ones count too.
        let snapshot = match (&self.only, self.new_jobs) {
            (Some(only), _) => Some(only.clone()),
            (None, true) => None,
            (None, false) => Some(
                self.candidates(&queues, &None)
                    .await?
                    .into_iter()
                    .map(|job| job.id)
                    .collect(),
            ),
        };
        let end = harness
            .clock
            .now()
            .checked_add_signed(
                chrono::Duration::from_std(self.horizon).unwrap_or(chrono::Duration::MAX),
            )
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut report = Drained::default();
        // Jobs reserved that this drain does not run: handed back at the end.
        let mut held: Vec<Lease> = Vec::new();
        let mut paused = false;
        let result = async {
            loop {
                let queues = match &self.queues {
                    Some(_) => queues.clone(),
                    None if self.new_jobs => self.queue_names().await?,
                    None => queues.clone(),
                };
                let mut progressed = false;
                for name in &queues {
                    let take = Take::new(name.clone(), 1);
                    let mut reserved = harness
                        .queue
                        .reserve(DRAIN_WORKER, std::slice::from_ref(&take), DRAIN_LEASE)
                        .await?;
                    if reserved.len() > 1 {
                        let surplus: Vec<Lease> = reserved.drain(1..).map(|r| r.lease).collect();
                        harness.queue.release(&surplus).await?;
                    }
                    let Some(reservation) = reserved.pop() else {
                        continue;
                    };
                    progressed = true;
                    if snapshot
                        .as_ref()
                        .is_some_and(|ids| !ids.contains(&reservation.job.id))
                    {
                        held.push(reservation.lease);
                    } else {
                        harness
                            .run(reservation.job, reservation.lease, &mut report)
                            .await?;
                        if report.attempts() > self.max_attempts {
                            return Err(Error::InvalidArgument(format!(
                                "drain ran more than {} attempts and jobs are still waiting: a job that keeps enqueueing jobs? \
                                 raise `max_attempts`, or drain without `with_new_jobs`",
                                self.max_attempts
                            )));
                        }
                    }
                    break;
                }
                if progressed {
                    continue;
                }
                // Nothing could be reserved: move time to the next job due.
                // Without `with_scheduled`, only to a job that has no
                // schedule: it was meant to be ready when enqueued, but its
                // creation time is the system clock's, which runs ahead of
                // a paused tokio clock.
                let now = harness.clock.now();
                let next = self
                    .candidates(&queues, &snapshot)
                    .await?
                    .iter()
                    .filter(|job| self.scheduled || job.scheduled_at.is_none())
                    .map(Job::due_at)
                    .filter(|at| *at > now)
                    .min();
                match next {
                    Some(at) if at <= end || !self.scheduled => {
                        advance(harness.clock, at, &mut paused).await?
                    }
                    _ => return Ok(()),
                }
            }
        }
        .await;
        if !held.is_empty() {
            harness.queue.release(&held).await?;
        }
        result.map(|()| report)
    }
}

impl IntoFuture for Drain {
    type Output = Result<Drained>;
    type IntoFuture = BoxFuture<'static, Result<Drained>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// Real time a drain lets pass while it moves time forward, before it
/// concludes that time is not paused.
const REAL_WAIT: Duration = Duration::from_millis(250);

/// Moves tokio's time to `at`. Under paused time the sleep returns as soon
/// as the runtime is idle; otherwise a thread notices that real time passes
/// and the drain stops with an error instead of waiting.
async fn advance(clock: Clock, at: DateTime<Utc>, paused: &mut bool) -> Result<()> {
    let wait = clock.until(at) + Duration::from_millis(1);
    if *paused || wait <= REAL_WAIT {
        tokio::time::sleep(wait).await;
        return Ok(());
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(REAL_WAIT);
        let _ = tx.send(());
    });
    let real = std::time::Instant::now();
    tokio::select! {
        biased;
        _ = tokio::time::sleep(wait) => {
            *paused = real.elapsed() < REAL_WAIT;
            Ok(())
        }
        _ = rx => Err(Error::InvalidArgument(format!(
            "drain(..).with_scheduled(true) would wait {wait:?} in real time for the next job: \
             run the test under paused time (`#[tokio::test(start_paused = true)]`)"
        ))),
    }
}

/// Runs one attempt of `job` as the worker would — the same decoding,
/// `Data` injection, timeout, panic isolation and error classification (it
/// is the worker's code) — without a queue or a worker, and returns its
/// [`JobResult`]. Await it; set shared state or another processor first.
///
/// The job runs as its first attempt (or the one after `job.attempts`).
/// Arguments that do not decode fail permanently with the worker's message;
/// a job no handler has fails with `Unknown job type: NAME`; a job whose
/// arguments could not be serialised (which every enqueue refuses) fails
/// with that error, and an expired job with an `Expired` error, without
/// running.
///
/// ```rust,standalone_crate
/// use jobs::prelude::*;
/// use jobs::testing::perform_job;
/// use serde_json::json;
///
/// struct Mailer { from: String }
///
/// #[job]
/// async fn send_email(to: String, mailer: Data<Mailer>) -> Result<String, JobError> {
///     Ok(format!("{} -> {to}", mailer.from))
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let result = perform_job(send_email::job("a@x.com".into()))
///     .data(Mailer { from: "noreply@x.com".into() })
///     .await;
/// assert_eq!(result.result, Some(json!("noreply@x.com -> a@x.com")));
///
/// // A payload the handler cannot decode fails as it would in a worker.
/// let bad = perform_job(Job::new(send_email::NAME, json!({"to": 5}))).await;
/// assert!(!bad.success && !bad.retryable);
/// assert_eq!(bad.error_type.as_deref(), Some("InvalidArguments"));
/// # }
/// ```
pub fn perform_job(job: Job) -> Perform {
    Perform {
        job,
        processor: None,
        data: DataMap::new(),
        default_timeout: Some(DEFAULT_TIMEOUT),
        clock: Clock::system(),
    }
}

/// One attempt of a job, made by [`perform_job`], run by awaiting it (or
/// [`outcome`](Self::outcome)).
#[must_use = "a job is performed when awaited"]
pub struct Perform {
    job: Job,
    processor: Option<Arc<dyn DynProcessor>>,
    data: DataMap,
    default_timeout: Option<Duration>,
    clock: Clock,
}

impl fmt::Debug for Perform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Perform")
            .field("job", &self.job)
            .field("data", &self.data)
            .field("default_timeout", &self.default_timeout)
            .finish_non_exhaustive()
    }
}

impl Perform {
    /// Adds shared state (`Data<T>`) for the job.
    pub fn data<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.data.insert(value);
        self
    }

    /// Adds shared state already in an `Arc`.
    pub fn data_arc<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        self.data.insert_arc(value);
        self
    }

    /// Runs the job as `target` would: with a worker's processor, shared
    /// state, default timeout and clock (or a queue's clock, or an
    /// [`Inline`] target's processor and shared state). Shared state added
    /// before is replaced; add more after.
    pub fn using<T: Drainable + ?Sized>(mut self, target: &T) -> Self {
        let harness = target.source().harness;
        self.processor = Some(harness.processor);
        self.data = (*harness.data).clone();
        self.default_timeout = harness.default_timeout;
        self.clock = harness.clock;
        self
    }

    /// Runs the job with `processor` (default: the `#[job]` registry).
    pub fn processor(mut self, processor: impl JobProcessor) -> Self {
        self.processor = Some(Arc::new(processor));
        self
    }

    /// The timeout of a job that sets none (default: 5 minutes, a worker's
    /// default); `None`: no timeout.
    pub fn default_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// Where the retry and snooze times of [`outcome`](Self::outcome) are
    /// read from (default: the system clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Runs it, and returns what a worker would do next: complete, retry at
    /// a time, fail, snooze until a time, or expire.
    pub async fn outcome(self) -> Outcome {
        self.run().await.1
    }

    /// The attempt's result (none for a job that did not run) and outcome.
    async fn run(self) -> (JobResult, Outcome) {
        let Perform {
            mut job,
            processor,
            data,
            default_timeout,
            clock,
        } = self;
        let now = clock.now();
        if let Err(e) = job.validate() {
            let result =
                JobResult::failure(JobError::permanent(e.to_string()).with_type("InvalidJob"));
            return (result.clone(), Outcome::Failed(result));
        }
        if job.expires_at.is_some_and(|at| at <= now) {
            let result = JobResult::failure(
                JobError::permanent("the job expired before it could run").with_type("Expired"),
            );
            return (result, Outcome::Expired);
        }
        // As a reservation leaves it.
        job.attempts = job.attempts.saturating_add(1);
        job.status = JobStatus::Running;
        job.started_at = Some(now);
        let processor = processor.unwrap_or_else(global_registry);
        let cx = JobContext::new(&job, Arc::new(data), CancellationToken::new());
        let timeout = job.timeout.or(default_timeout);
        let attempt = execute(&*processor, &job, &cx, timeout).await;
        let result = attempt.result.clone();
        (result, decide(clock, &job, attempt.result))
    }
}

impl IntoFuture for Perform {
    type Output = JobResult;
    type IntoFuture = BoxFuture<'static, JobResult>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.run().await.0 })
    }
}

// ---------------------------------------------------------------------------
// Inline

/// An [`Enqueue`] target that runs each job as it is enqueued, and returns
/// after it finished (Sidekiq's `inline!`, Oban's `:inline` mode): for tests
/// that want the side effects of the code under test at once.
///
/// Each job is stored in an in-memory queue ([`queue`](Self::queue), where
/// its status and result can be looked up) and runs one attempt, through the
/// worker's run path, whatever its schedule (`delay`, `scheduled_at` are
/// ignored). A failed attempt is not retried: the job is left `Retrying` or
/// `Failed`, and `enqueue` still returns its id (look at its result, or
/// [`drain`] the target with [`with_scheduled`](Drain::with_scheduled) to
/// run the retries). A unique job whose twin exists is not stored and does
/// not run, as on any queue. Jobs enqueued on this target by a running job
/// run inline too, before that job continues.
///
/// ```rust,standalone_crate
/// use jobs::prelude::*;
/// use jobs::testing::Inline;
///
/// #[job]
/// async fn add(a: i64, b: i64) -> Result<i64, JobError> { Ok(a + b) }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), jobs::Error> {
/// let inline = Inline::new();
/// let id = add::enqueue(&inline, 2, 3).await?;
/// // Already done.
/// let job = inline.queue().get(id).await?.unwrap();
/// assert_eq!(job.status, JobStatus::Completed);
/// assert_eq!(job.result.unwrap().result, Some(serde_json::json!(5)));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Inline {
    queue: MemoryJobQueue,
    harness: Harness,
}

impl fmt::Debug for Inline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inline")
            .field("waiting", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl Default for Inline {
    fn default() -> Self {
        Inline::new()
    }
}

impl Inline {
    /// Runs jobs with the `#[job]` registry, no shared state, on the system
    /// clock.
    pub fn new() -> Self {
        Inline::on(MemoryJobQueue::new())
    }

    /// Stores jobs in `queue` (for instance one on [`Clock::tokio`]).
    pub fn on(queue: MemoryJobQueue) -> Self {
        let mut harness = Harness::memory(&queue);
        harness.inline = true;
        Inline { queue, harness }
    }

    /// Runs jobs with `processor` instead of the `#[job]` registry.
    pub fn processor(mut self, processor: impl JobProcessor) -> Self {
        self.harness.processor = Arc::new(processor);
        self
    }

    /// Adds shared state (`Data<T>`) for the jobs (the clones made before
    /// keep what they had).
    pub fn data<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        Arc::make_mut(&mut self.harness.data).insert(value);
        self
    }

    /// The in-memory queue the jobs are stored in.
    pub fn queue(&self) -> &MemoryJobQueue {
        &self.queue
    }

    async fn push_one(&self, mut job: Job) -> Result<Enqueued> {
        job.scheduled_at = None;
        let queue = job.queue.to_string();
        let enqueued = Enqueue::push(&self.queue, job).await?;
        if !enqueued.conflict {
            let drain = Drain {
                harness: self.harness.clone(),
                queues: Some(vec![queue]),
                new_jobs: false,
                scheduled: false,
                horizon: Duration::ZERO,
                max_attempts: usize::MAX,
                only: Some(HashSet::from([enqueued.id])),
            };
            drain.into_future().await?;
        }
        Ok(enqueued)
    }
}

impl Enqueue for Inline {
    fn push(&self, job: Job) -> impl Future<Output = Result<Enqueued>> + Send {
        // Boxed: a job may enqueue (and so run) more jobs inline.
        let pushed: BoxFuture<'_, Result<Enqueued>> = Box::pin(self.push_one(job));
        pushed
    }

    fn push_many(&self, jobs: Vec<Job>) -> impl Future<Output = Result<Vec<Enqueued>>> + Send {
        let pushed: BoxFuture<'_, Result<Vec<Enqueued>>> = Box::pin(async move {
            for job in &jobs {
                job.validate()?;
            }
            let mut all = Vec::with_capacity(jobs.len());
            for job in jobs {
                all.push(self.push_one(job).await?);
            }
            Ok(all)
        });
        pushed
    }
}

// ---------------------------------------------------------------------------
// Periodic jobs

/// Enqueues one occurrence of the periodic task `task` (a `#[job]` with
/// `cron` or `every`, named after the job; a task the processor declares;
/// on a worker, a task added to its scheduler) on `target`, now, as the scheduler would when it comes due;
/// returns the job's id. On an [`Inline`] target it runs at once; on a queue
/// or worker, [`drain`] runs it.
///
/// ```rust,standalone_crate
/// use jobs::prelude::*;
/// use jobs::testing::{drain, trigger};
///
/// #[job(cron = "0 0 2 * * *")]
/// async fn nightly_cleanup() {}
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), jobs::Error> {
/// let queue = MemoryJobQueue::new();
/// let id = trigger(&queue, "nightly_cleanup").await?;
/// assert_eq!(drain(&queue).await?.completed, 1);
/// assert_eq!(queue.get(id).await?.unwrap().status, JobStatus::Completed);
/// # Ok(()) }
/// ```
///
/// With no task of that name, it is an `Err(Error::InvalidArgument)` that
/// names the known ones, and nothing is enqueued.
pub async fn trigger<T: Drainable + ?Sized>(target: &T, task: &str) -> Result<JobId> {
    let harness = target.source().harness;
    // A task added to a worker's scheduler by hand wins over a declared one,
    // as when the worker starts.
    let found = match harness
        .scheduler
        .as_ref()
        .and_then(|s| s.task_by_name(task))
    {
        Some(found) => found,
        None => {
            let tasks = harness.processor.periodic_tasks()?;
            match tasks.into_iter().find(|t| t.name == task) {
                Some(found) => found,
                None => {
                    let mut names: Vec<String> = harness
                        .processor
                        .periodic_tasks()?
                        .into_iter()
                        .map(|t| t.name)
                        .chain(
                            harness
                                .scheduler
                                .iter()
                                .flat_map(|s| s.tasks())
                                .map(|t| t.name),
                        )
                        .collect();
                    names.sort_unstable();
                    names.dedup();
                    return Err(Error::InvalidArgument(format!(
                        "no periodic task `{task}`; the known ones: {}",
                        if names.is_empty() {
                            "none".to_owned()
                        } else {
                            names.join(", ")
                        }
                    )));
                }
            }
        }
    };
    let now = harness.clock.now();
    let mut job = found.job_for(now, now);
    // A fresh id: triggering twice at one instant runs twice.
    job.id = JobId::new();
    let id = job.id;
    let queue = job.queue.to_string();
    harness.queue.push(job).await?;
    if harness.inline {
        Drain {
            harness,
            queues: Some(vec![queue]),
            new_jobs: false,
            scheduled: false,
            horizon: Duration::ZERO,
            max_attempts: usize::MAX,
            only: Some(HashSet::from([id])),
        }
        .await?;
    }
    Ok(id)
}
