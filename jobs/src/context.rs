//! What a running job can see besides its arguments: [`JobContext`] and
//! shared state ([`Data`]).

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::job::{Job, JobId};
use crate::result::JobError;
use crate::workflow::{DependencyResult, Step, StepInfo};

/// Facts about the running attempt, and its cancellation signal.
///
/// A `#[job]` function gets it by taking a parameter of this type; a
/// [`JobProcessor`](crate::JobProcessor) gets it in
/// [`process_with`](crate::JobProcessor::process_with).
#[derive(Clone)]
pub struct JobContext {
    id: JobId,
    name: Cow<'static, str>,
    attempt: u32,
    max_retries: u32,
    cancellation: CancellationToken,
    data: Arc<DataMap>,
    progress: Arc<dyn HasProgress>,
    step: Option<Arc<StepInfo>>,
    results: Arc<[DependencyResult]>,
}

impl JobContext {
    /// The context of an attempt of `job`, with shared `data`.
    ///
    /// Progress it is given is only recorded
    /// ([`last_progress`](Self::last_progress)); a worker's contexts send it
    /// to the queue.
    pub fn new(job: &Job, data: Arc<DataMap>, cancellation: CancellationToken) -> Self {
        JobContext::with_progress(job, data, cancellation, Arc::new(Progress::new()))
    }

    /// The context the worker makes: progress goes to `progress`, which the
    /// worker writes to the queue.
    pub(crate) fn with_progress(
        job: &Job,
        data: Arc<DataMap>,
        cancellation: CancellationToken,
        progress: Arc<dyn HasProgress>,
    ) -> Self {
        JobContext {
            id: job.id,
            name: job.name.clone(),
            attempt: job.attempts.max(1),
            max_retries: job.max_retries,
            cancellation,
            data,
            progress,
            step: job.step.clone(),
            results: Arc::new([]),
        }
    }

    /// The context with `results` as what the job's dependencies left (the
    /// worker loads them before it runs a workflow step; a unit test of a
    /// step sets them here).
    pub fn with_results(mut self, results: Vec<DependencyResult>) -> Self {
        self.results = results.into();
        self
    }

    /// The workflow or batch step this job is, if it is one
    /// ([`workflow`](crate::workflow)).
    pub fn step(&self) -> Option<&StepInfo> {
        self.step.as_deref()
    }

    /// What the steps this job waited for left: each one's status and
    /// result, in the order they finished. Empty for a job that is no step.
    pub fn results(&self) -> &[DependencyResult] {
        &self.results
    }

    /// What the dependency named `step` left, if this job waited for it.
    pub fn results_of(&self, step: &str) -> Option<&DependencyResult> {
        self.results.iter().find(|r| r.step == step)
    }

    /// The output of a dependency, typed by the job that produced it: `step`
    /// is the handle [`Workflow::step`](crate::workflow::Workflow::step)
    /// returned. A permanent `JobError` if the step is not a dependency of
    /// this job, did not complete, or left a value that does not fit `T`.
    pub fn output<T: serde::de::DeserializeOwned>(&self, step: &Step<T>) -> Result<T, JobError> {
        crate::workflow::output_of(&self.results, step)
    }

    /// A context for calling a handler outside a worker (in a unit test):
    /// attempt 1, no shared state, never cancelled; progress is recorded
    /// ([`last_progress`](Self::last_progress)).
    pub fn detached(job: &Job) -> Self {
        JobContext::new(job, Arc::default(), CancellationToken::new())
    }

    /// The job's id.
    pub fn job_id(&self) -> JobId {
        self.id
    }

    /// The job's name.
    pub fn job_name(&self) -> &str {
        &self.name
    }

    /// Which attempt this is: 1 for the first run, 2 for the first retry...
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// How many retries the job has in all.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// Whether this is the last attempt (no retry follows a failure).
    pub fn is_last_attempt(&self) -> bool {
        self.attempt > self.max_retries
    }

    /// Whether this attempt was stopped: the job was cancelled, the queue
    /// no longer holds it for this worker (its lease was lost), or the
    /// worker's shutdown timeout passed while it ran. The worker drops the
    /// job's future at that moment, so this is for work the job handed on
    /// with a clone of its context (a spawned task, a blocking thread),
    /// which should stop once it turns true. A detached context is never
    /// stopped.
    pub fn is_cancelled(&self) -> bool {
        self.cancellation.is_cancelled()
    }

    /// Resolves when this attempt is stopped (see
    /// [`is_cancelled`](Self::is_cancelled)).
    pub async fn cancelled(&self) {
        self.cancellation.cancelled().await
    }

    /// Shared state registered on the worker, if any of type `T` was.
    pub fn data<T: Send + Sync + 'static>(&self) -> Option<Data<T>> {
        self.data.get::<T>()
    }

    /// All shared state.
    pub fn data_map(&self) -> &Arc<DataMap> {
        &self.data
    }

    /// Reports how far the job got: any JSON value (a fraction, a count, an
    /// object). Cheap and never blocks: call it as often as you like.
    ///
    /// A worker writes it to the job's record, where
    /// `get_job` shows it as [`Job::progress`], and the queue sends a
    /// [`JobEventKind::Progress`](crate::JobEventKind::Progress) event with
    /// it. Writes are rate-limited per job: at most one every 250 ms; values
    /// reported in between are coalesced (only the latest is kept), and the
    /// latest value is always written while the job still runs — at the
    /// latest just before its outcome is recorded. Nothing is written once
    /// the attempt has ended, and the last value stays on the record after
    /// the job finished.
    ///
    /// A [detached](Self::detached) context only records the value.
    ///
    /// ```
    /// use jobs::{Job, JobContext};
    /// use serde_json::json;
    ///
    /// let job = Job::new("import", json!({}));
    /// let cx = JobContext::detached(&job);
    /// for done in 1..=10 {
    ///     cx.progress(json!({"done": done, "of": 10}));
    /// }
    /// assert_eq!(cx.last_progress(), Some(json!({"done": 10, "of": 10})));
    /// ```
    pub fn progress(&self, value: impl Into<Value>) {
        self.progress.progress().report(value.into());
    }

    /// The latest value given to [`progress`](Self::progress) in this
    /// attempt, if any.
    pub fn last_progress(&self) -> Option<Value> {
        self.progress.progress().latest.lock().clone()
    }
}

/// What holds a running attempt's [`Progress`] (the worker keeps it with
/// the rest of what it tracks of a job, so a job costs no extra
/// allocation).
pub(crate) trait HasProgress: Send + Sync + 'static {
    fn progress(&self) -> &Progress;
}

/// The progress a job reported: the latest value, and whether it was
/// written yet.
#[derive(Default)]
pub(crate) struct Progress {
    latest: Mutex<Option<Value>>,
    /// Set by a report, cleared when the writer takes the value.
    dirty: AtomicBool,
    /// The writer, waiting for a report.
    waker: AtomicWaker,
}

impl HasProgress for Progress {
    fn progress(&self) -> &Progress {
        self
    }
}

impl Progress {
    pub(crate) fn new() -> Self {
        Progress::default()
    }

    fn report(&self, value: Value) {
        let old = self.latest.lock().replace(value);
        // Dropped outside the lock.
        drop(old);
        if !self.dirty.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// Ready with the latest unwritten value once there is one.
    pub(crate) fn poll_unwritten(&self, cx: &mut Context<'_>) -> Poll<Value> {
        if let Some(value) = self.take_unwritten() {
            return Poll::Ready(value);
        }
        self.waker.register(cx.waker());
        match self.take_unwritten() {
            Some(value) => Poll::Ready(value),
            None => Poll::Pending,
        }
    }

    /// The latest value, if it was not written yet.
    pub(crate) fn take_unwritten(&self) -> Option<Value> {
        if !self.dirty.load(Ordering::Acquire) {
            return None;
        }
        let latest = self.latest.lock();
        // Cleared under the lock: a report after this sets it again.
        self.dirty.store(false, Ordering::Release);
        latest.clone()
    }
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("attempt", &self.attempt)
            .field("cancelled", &self.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Shared state a job handler receives by type, registered on the worker
/// with `BackgroundJobWorker::builder().data(value)`: a database pool, an
/// HTTP client, a configuration. Cheap to clone (an `Arc`).
///
/// ```
/// use jobs::Data;
/// struct Config { from: String }
/// let config = Data::new(Config { from: "noreply@example.com".into() });
/// assert_eq!(config.from, "noreply@example.com");
/// ```
pub struct Data<T: ?Sized>(Arc<T>);

impl<T> Data<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Data(Arc::new(value))
    }
}

impl<T: ?Sized> Data<T> {
    /// Wraps a shared value.
    pub fn from_arc(value: Arc<T>) -> Self {
        Data(value)
    }

    /// The shared value.
    pub fn into_arc(self) -> Arc<T> {
        self.0
    }
}

impl<T: ?Sized> Clone for Data<T> {
    fn clone(&self) -> Self {
        Data(Arc::clone(&self.0))
    }
}

impl<T: ?Sized> Deref for Data<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Data<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// Shared state by type, as registered on a worker.
#[derive(Clone, Default)]
pub struct DataMap {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl DataMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the value of type `T`.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// Adds (or replaces) a shared value of type `T`.
    pub fn insert_arc<T: Send + Sync + 'static>(&mut self, value: Arc<T>) {
        self.values.insert(TypeId::of::<T>(), value);
    }

    /// The value of type `T`, if registered.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<Data<T>> {
        let value = self.values.get(&TypeId::of::<T>())?;
        Arc::clone(value).downcast::<T>().ok().map(Data)
    }

    /// Whether a value of this type is registered.
    pub fn contains(&self, type_id: TypeId) -> bool {
        self.values.contains_key(&type_id)
    }

    /// How many values are registered.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl fmt::Debug for DataMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataMap")
            .field("len", &self.values.len())
            .finish()
    }
}
