//! Metrics and traces: what `jobs` reports about the jobs it enqueues and
//! runs, for Prometheus-style dashboards and for distributed tracing.
//!
//! # Metrics
//!
//! Every queue and worker reports through the [`metrics`](https://docs.rs/metrics)
//! facade, so the numbers go wherever the application's recorder sends them
//! (Prometheus with `metrics-exporter-prometheus`, StatsD, OpenTelemetry,
//! ..). Nothing is recorded until the application installs a recorder; until
//! then each job costs one look-up of its cached (no-op) handles.
//!
//! | name | kind | labels | what |
//! | --- | --- | --- | --- |
//! | `jobs_enqueued_total` | counter | `queue`, `name` | jobs stored by an enqueue (a unique job's conflict is not) |
//! | `jobs_started_total` | counter | `queue`, `name` | attempts a worker started |
//! | `jobs_finished_total` | counter | `queue`, `name`, `outcome` | attempts that ended, by `outcome`: `completed`, `retried`, `failed`, `snoozed`, `cancelled`, `expired` |
//! | `jobs_run_seconds` | histogram | `queue`, `name` | how long an attempt ran (timeouts and panics included) |
//! | `jobs_wait_seconds` | histogram | `queue`, `name` | from when the job was due (enqueued, or scheduled for, or retried at) to the start of the attempt |
//! | `jobs_queue_depth` | gauge | `queue`, `status` | jobs of a named queue by status; `status="ready"`: ready to run now |
//! | `jobs_queue_paused` | gauge | `queue` | 1 while the queue is paused, else 0 |
//! | `jobs_stored` | gauge | `status` | the jobs the backend holds, by status (`pending`, `scheduled`, `running`, `retrying`, `completed`, `failed`, `cancelled`, `expired`) |
//!
//! One counter of finished attempts with an `outcome` label, rather than a
//! counter per outcome, keeps every attempt in one series family:
//! `sum by (outcome) (rate(jobs_finished_total[5m]))` is the whole picture,
//! and `jobs_finished_total{outcome="failed"}` the failures alone. An
//! attempt that expired before it ran counts in `jobs_finished_total`
//! but not in `jobs_started_total`; one handed back unfinished (at
//! shutdown, or its lease lost) in `jobs_started_total` only.
//!
//! The gauges come from the backend ([`QueueAdmin::queues`] and
//! [`QueueAdmin::counts`]), read by each running worker every
//! [`metrics_interval`](crate::WorkerBuilder::metrics_interval)
//! (5 s by default), never per job.
//!
//! Install the recorder at start-up, before jobs are enqueued or run: a
//! `(queue, name)` pair's handles are resolved when it is first seen, and
//! resolved again only every `metrics_interval`.
//! [`describe_metrics`] gives the recorder each metric's description and
//! unit (a worker calls it when it starts).
//!
//! The metrics are always compiled in, like the `tracing` calls: the
//! `metrics` crate is small, and an application (or a library between it and
//! `jobs`) then never has to remember to turn a feature on to see its jobs.
//!
//! # Traces across the enqueue → run hop
//!
//! With the `opentelemetry` feature, enqueueing a job inside a span that
//! has an OpenTelemetry context (through `tracing-opentelemetry`) stores
//! that context in the job's [`metadata`](crate::Job::metadata) as W3C
//! Trace Context headers, under [`TRACEPARENT`] and [`TRACESTATE`]. The
//! worker that runs the job — in this process or another — makes the job's
//! `job` span a child of it. A job whose metadata already holds a
//! `traceparent` keeps it (a context set by hand, say from an incoming
//! request, wins).
//! Retries and snoozes of a job keep its context (each attempt's span is a
//! child of the enqueuing span); the next run of a recurring job
//! ([`Job::every`](crate::Job::every)) does not get it, so it starts a trace
//! of its own.
//!
//! Enqueues that count and carry the trace context are those through
//! [`Enqueue::enqueue`], [`Enqueue::enqueue_many`],
//! [`Enqueue::enqueue_idempotent`], the `#[job]` functions' `enqueue`, a
//! worker (every method, `submit_job` included) and the scheduler.
//! [`Enqueue::push`] on a queue itself is the backend's raw entry point:
//! call [`enqueuing`] and [`enqueued`] around it when calling it directly.
//!
//! [`QueueAdmin::queues`]: crate::QueueAdmin::queues
//! [`QueueAdmin::counts`]: crate::QueueAdmin::counts
//! [`Enqueue::enqueue`]: crate::Enqueue::enqueue
//! [`Enqueue::enqueue_many`]: crate::Enqueue::enqueue_many
//! [`Enqueue::enqueue_idempotent`]: crate::Enqueue::enqueue_idempotent
//! [`Enqueue::push`]: crate::Enqueue::push

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::metrics::{Counter, Histogram, Unit};
use parking_lot::Mutex;

use crate::job::{Job, JobStatus};
use crate::queue::{Enqueued, Outcome, QueueCounts, QueueInfo};

/// `jobs_enqueued_total`: jobs stored by an enqueue.
pub const ENQUEUED_TOTAL: &str = "jobs_enqueued_total";
/// `jobs_started_total`: attempts started.
pub const STARTED_TOTAL: &str = "jobs_started_total";
/// `jobs_finished_total`: attempts ended, by `outcome`.
pub const FINISHED_TOTAL: &str = "jobs_finished_total";
/// `jobs_run_seconds`: how long attempts ran.
pub const RUN_SECONDS: &str = "jobs_run_seconds";
/// `jobs_wait_seconds`: from due to start.
pub const WAIT_SECONDS: &str = "jobs_wait_seconds";
/// `jobs_queue_depth`: jobs of a named queue by status.
pub const QUEUE_DEPTH: &str = "jobs_queue_depth";
/// `jobs_queue_paused`: 1 while a queue is paused.
pub const QUEUE_PAUSED: &str = "jobs_queue_paused";
/// `jobs_stored`: the jobs a backend holds, by status.
pub const STORED: &str = "jobs_stored";

/// The metadata key of the W3C `traceparent` header a job carries (feature
/// `opentelemetry`).
pub const TRACEPARENT: &str = "traceparent";
/// The metadata key of the W3C `tracestate` header a job carries, when the
/// enqueuing span has one (feature `opentelemetry`).
pub const TRACESTATE: &str = "tracestate";

/// Gives the installed recorder each metric's description and unit. Call it
/// after installing the recorder (a worker calls it when it starts).
///
/// ```
/// jobs::telemetry::describe_metrics();
/// ```
pub fn describe_metrics() {
    ::metrics::describe_counter!(
        ENQUEUED_TOTAL,
        Unit::Count,
        "Jobs stored by an enqueue (unique conflicts excluded)."
    );
    ::metrics::describe_counter!(
        STARTED_TOTAL,
        Unit::Count,
        "Job attempts started by a worker."
    );
    ::metrics::describe_counter!(
        FINISHED_TOTAL,
        Unit::Count,
        "Job attempts ended, by outcome (completed, retried, failed, snoozed, cancelled, expired)."
    );
    ::metrics::describe_histogram!(RUN_SECONDS, Unit::Seconds, "How long a job attempt ran.");
    ::metrics::describe_histogram!(
        WAIT_SECONDS,
        Unit::Seconds,
        "Time from when a job was due to the start of its attempt."
    );
    ::metrics::describe_gauge!(
        QUEUE_DEPTH,
        Unit::Count,
        "Jobs of a named queue by status (ready: ready to run now)."
    );
    ::metrics::describe_gauge!(QUEUE_PAUSED, "1 while the named queue is paused.");
    ::metrics::describe_gauge!(STORED, Unit::Count, "Jobs the backend holds, by status.");
}

/// How an attempt ended, as `jobs_finished_total` labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    Completed = 0,
    Retried = 1,
    Failed = 2,
    Snoozed = 3,
    Cancelled = 4,
    Expired = 5,
}

impl Finish {
    const ALL: [Finish; 6] = [
        Finish::Completed,
        Finish::Retried,
        Finish::Failed,
        Finish::Snoozed,
        Finish::Cancelled,
        Finish::Expired,
    ];

    fn label(self) -> &'static str {
        match self {
            Finish::Completed => "completed",
            Finish::Retried => "retried",
            Finish::Failed => "failed",
            Finish::Snoozed => "snoozed",
            Finish::Cancelled => "cancelled",
            Finish::Expired => "expired",
        }
    }

    pub(crate) fn of(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Completed(_) => Finish::Completed,
            Outcome::Retry { .. } => Finish::Retried,
            Outcome::Failed(_) => Finish::Failed,
            Outcome::Snoozed { .. } => Finish::Snoozed,
            Outcome::Cancelled => Finish::Cancelled,
            Outcome::Expired => Finish::Expired,
        }
    }
}

/// The metric handles of one `(queue, name)` pair, registered once.
pub(crate) struct JobMetrics {
    queue: Cow<'static, str>,
    name: Cow<'static, str>,
    /// The [`GENERATION`] it was registered in.
    generation: u64,
    enqueued: Counter,
    started: Counter,
    finished: [Counter; 6],
    run: Histogram,
    wait: Histogram,
}

impl JobMetrics {
    /// Takes the job, not `&str`s: cloning its `Cow`s keeps a static name
    /// (what `#[job]` gives) borrowed.
    fn register(job: &Job, generation: u64) -> Self {
        let (queue, name) = (&job.queue, &job.name);
        let labels = [("queue", queue.clone()), ("name", name.clone())];
        let finished = Finish::ALL.map(|finish| {
            ::metrics::counter!(
                FINISHED_TOTAL,
                "queue" => queue.clone(),
                "name" => name.clone(),
                "outcome" => finish.label()
            )
        });
        JobMetrics {
            queue: queue.clone(),
            name: name.clone(),
            generation,
            enqueued: ::metrics::counter!(ENQUEUED_TOTAL, &labels),
            started: ::metrics::counter!(STARTED_TOTAL, &labels),
            finished,
            run: ::metrics::histogram!(RUN_SECONDS, &labels),
            wait: ::metrics::histogram!(WAIT_SECONDS, &labels),
        }
    }

    pub(crate) fn started(&self, wait: Duration) {
        self.started.increment(1);
        self.wait.record(wait);
    }

    pub(crate) fn ran(&self, took: Duration) {
        self.run.record(took);
    }

    pub(crate) fn finished(&self, finish: Finish) {
        self.finished[finish as usize].increment(1);
    }
}

type ByName = foldhash::HashMap<Cow<'static, str>, Arc<JobMetrics>>;

/// The handles of every `(queue, name)` seen, by queue then name (so a look-up
/// borrows the job's strings and allocates nothing).
static HANDLES: LazyLock<Mutex<foldhash::HashMap<Cow<'static, str>, ByName>>> =
    LazyLock::new(Default::default);

/// Bumped by [`refresh_handles`]: handles of an older generation are looked
/// up again.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// How many `(queue, name)` pairs each thread keeps at hand.
const RECENT: usize = 4;

thread_local! {
    /// The handles this thread used last, and where the next one goes: most
    /// workloads run a few job types, so the shared map (a lock and two
    /// hashes) is rarely needed.
    static RECENT_HANDLES: RefCell<([Option<Arc<JobMetrics>>; RECENT], usize)> =
        const { RefCell::new(([const { None }; RECENT], 0)) };
}

/// The handles of a job's `(queue, name)`.
pub(crate) fn job_metrics(job: &Job) -> Arc<JobMetrics> {
    let generation = GENERATION.load(Ordering::Relaxed);
    RECENT_HANDLES.with(|recent| {
        let mut recent = recent.borrow_mut();
        let found =
            recent.0.iter().flatten().find(|m| {
                m.generation == generation && *m.name == *job.name && *m.queue == *job.queue
            });
        if let Some(found) = found {
            return Arc::clone(found);
        }
        let found = shared_job_metrics(job, generation);
        let (slots, next) = &mut *recent;
        slots[*next] = Some(Arc::clone(&found));
        *next = (*next + 1) % RECENT;
        found
    })
}

fn shared_job_metrics(job: &Job, generation: u64) -> Arc<JobMetrics> {
    if let Some(found) = HANDLES
        .lock()
        .get(&*job.queue)
        .and_then(|names| names.get(&*job.name))
        .filter(|m| m.generation == generation)
    {
        return Arc::clone(found);
    }
    // Registered outside the lock: the recorder may take its own locks.
    let made = Arc::new(JobMetrics::register(job, generation));
    let mut handles = HANDLES.lock();
    let names = handles.entry(job.queue.clone()).or_default();
    let entry = names
        .entry(job.name.clone())
        .or_insert_with(|| Arc::clone(&made));
    if entry.generation != generation {
        *entry = made;
    }
    Arc::clone(entry)
}

/// Forgets the cached handles, so that the next job resolves them again
/// with the recorder installed then (and names no longer seen go).
pub(crate) fn refresh_handles() {
    let mut handles = HANDLES.lock();
    handles.clear();
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Prepares a job about to be pushed: with the `opentelemetry` feature,
/// stores the current span's trace context in its metadata (unless it has a
/// `traceparent` already). Returns the handle that [`enqueued`] counts with.
///
/// The `Enqueue` methods that count call it; a caller of a backend's raw
/// [`Enqueue::push`](crate::Enqueue::push) can too.
pub fn enqueuing(job: &mut Job) -> EnqueueMetric {
    #[cfg(feature = "opentelemetry")]
    otel::inject(job);
    EnqueueMetric(job_metrics(job))
}

/// Counts a job pushed after [`enqueuing`] in `jobs_enqueued_total`, unless
/// it was a unique job's conflict (nothing was stored).
pub fn enqueued(metric: &EnqueueMetric, pushed: &Enqueued) {
    if !pushed.conflict {
        metric.0.enqueued.increment(1);
    }
}

/// What [`enqueuing`] returns: the job's `jobs_enqueued_total` handle.
#[derive(Clone)]
pub struct EnqueueMetric(Arc<JobMetrics>);

impl std::fmt::Debug for EnqueueMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnqueueMetric").finish_non_exhaustive()
    }
}

/// How long a reserved job waited: from when it was due (its
/// `scheduled_at`, else its `created_at`) to its start.
pub(crate) fn waited(job: &Job, now: chrono::DateTime<chrono::Utc>) -> Duration {
    let due = job.scheduled_at.unwrap_or(job.created_at);
    let started = job.started_at.unwrap_or(now);
    (started - due).to_std().unwrap_or(Duration::ZERO)
}

/// Sets the gauges from what the backend reported.
pub(crate) fn record_depth(counts: Option<&QueueCounts>, queues: Option<&[QueueInfo]>) {
    if let Some(counts) = counts {
        for status in [
            JobStatus::Pending,
            JobStatus::Running,
            JobStatus::Retrying,
            JobStatus::Completed,
            JobStatus::Failed,
            JobStatus::Cancelled,
            JobStatus::Expired,
        ] {
            ::metrics::gauge!(STORED, "status" => status_label(status))
                .set(counts.get(status) as f64);
        }
        ::metrics::gauge!(STORED, "status" => "scheduled").set(counts.scheduled as f64);
    }
    for queue in queues.unwrap_or_default() {
        let name = queue.name.clone();
        ::metrics::gauge!(QUEUE_DEPTH, "queue" => name.clone(), "status" => "ready")
            .set(queue.ready as f64);
        ::metrics::gauge!(QUEUE_PAUSED, "queue" => name).set(if queue.paused { 1.0 } else { 0.0 });
    }
}

fn status_label(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Pending => "pending",
        JobStatus::Running => "running",
        JobStatus::Completed => "completed",
        JobStatus::Failed => "failed",
        JobStatus::Retrying => "retrying",
        JobStatus::Cancelled => "cancelled",
        JobStatus::Expired => "expired",
    }
}

#[cfg(feature = "opentelemetry")]
pub(crate) mod otel {
    //! The W3C trace context in a job's metadata.

    use std::collections::BTreeMap;

    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use serde_json::Value;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::TRACEPARENT;
    use crate::job::Job;

    struct Metadata<'a>(&'a mut BTreeMap<String, Value>);

    impl Injector for Metadata<'_> {
        fn set(&mut self, key: &str, value: String) {
            self.0.insert(key.to_owned(), Value::String(value));
        }
    }

    struct ReadMetadata<'a>(&'a BTreeMap<String, Value>);

    impl Extractor for ReadMetadata<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(Value::as_str)
        }

        fn keys(&self) -> Vec<&str> {
            self.0
                .iter()
                .filter(|(_, v)| v.is_string())
                .map(|(k, _)| k.as_str())
                .collect()
        }
    }

    /// Stores the current span's context in the job, if it has one and
    /// the job carries none yet.
    pub(crate) fn inject(job: &mut Job) {
        if job.metadata.contains_key(TRACEPARENT) {
            return;
        }
        let cx = tracing::Span::current().context();
        if !cx.span().span_context().is_valid() {
            return;
        }
        TraceContextPropagator::new().inject_context(&cx, &mut Metadata(&mut job.metadata));
    }

    /// Makes `span` (the job's, not yet entered) a child of the context the
    /// job carries, if any.
    pub(crate) fn set_parent(span: &tracing::Span, job: &Job) {
        if !job.metadata.contains_key(TRACEPARENT) {
            return;
        }
        let cx = TraceContextPropagator::new().extract(&ReadMetadata(&job.metadata));
        if !cx.span().span_context().is_valid() {
            tracing::debug!(job = %job.id, "the job's traceparent is not valid; its span has no remote parent");
            return;
        }
        if let Err(e) = span.set_parent(cx) {
            tracing::debug!(job = %job.id, error = %e, "could not set the job span's parent");
        }
    }
}
