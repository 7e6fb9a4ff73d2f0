//! The job model: [`Job`] (which handler runs, with which arguments, and
//! how), its [`JobId`], [`JobPriority`] and [`JobStatus`], and the
//! [`Backoff`] between its retries.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::Error;
use crate::flow::{ConcurrencyLimit, Rate, RateLimit, Unique};
use crate::result::JobResult;
use crate::workflow::StepInfo;

/// The default number of retries after a job's first failed attempt.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// The queue name a backend uses when none is given: a `RedisJobQueue`
/// from `RedisJobQueue::builder(url)` without `.name(..)` keeps its keys
/// under this name.
pub const DEFAULT_QUEUE: &str = "default";

/// A job's unique id (a random UUID v4).
///
/// ```
/// use jobs::JobId;
/// let id = JobId::new();
/// let parsed: JobId = id.to_string().parse().unwrap();
/// assert_eq!(id, parsed);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Uuid);

impl JobId {
    /// A new random id.
    pub fn new() -> Self {
        JobId(Uuid::new_v4())
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for JobId {
    fn from(id: Uuid) -> Self {
        JobId(id)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({})", self.0.hyphenated())
    }
}

impl FromStr for JobId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(JobId)
            .map_err(|e| Error::InvalidArgument(format!("invalid job id `{s}`: {e}")))
    }
}

/// How urgent a job is. Workers always take the most urgent ready job first
/// (`Critical`, then `High`, `Normal`, `Low`), and jobs of one priority in the
/// order they became ready.
///
/// The ordering follows urgency: `Critical > High > Normal > Low`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum JobPriority {
    /// Runs when nothing more urgent is ready.
    Low = 0,
    /// The default.
    #[default]
    Normal = 1,
    /// Runs before normal and low jobs.
    High = 2,
    /// Runs before everything else.
    Critical = 3,
}

impl JobPriority {
    /// All priorities, most urgent first.
    pub const ALL: [JobPriority; 4] = [
        JobPriority::Critical,
        JobPriority::High,
        JobPriority::Normal,
        JobPriority::Low,
    ];

    /// The lower-case name (`"high"`), as used in `#[job(priority = "high")]`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobPriority::Low => "low",
            JobPriority::Normal => "normal",
            JobPriority::High => "high",
            JobPriority::Critical => "critical",
        }
    }

    /// 0 for `Critical` up to 3 for `Low`: the order in which a queue serves
    /// the priorities.
    pub fn rank(self) -> usize {
        3 - self as usize
    }
}

impl fmt::Display for JobPriority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobPriority {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Ok(JobPriority::Low),
            "normal" => Ok(JobPriority::Normal),
            "high" => Ok(JobPriority::High),
            "critical" => Ok(JobPriority::Critical),
            _ => Err(Error::InvalidArgument(format!(
                "unknown priority `{s}`; expected one of `low`, `normal`, `high`, `critical`"
            ))),
        }
    }
}

/// Where a job is in its life.
///
/// `Completed`, `Failed`, `Cancelled` and `Expired` are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting to run: ready now, or scheduled for later.
    Pending,
    /// Reserved by a worker and running.
    Running,
    /// Finished successfully.
    Completed,
    /// Failed for good: a permanent error, or retries exhausted.
    Failed,
    /// Failed an attempt and waits to be retried.
    Retrying,
    /// Cancelled before it could finish.
    Cancelled,
    /// Its `expires_at` passed before it could run.
    Expired,
}

impl JobStatus {
    /// All statuses.
    pub const ALL: [JobStatus; 7] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Retrying,
        JobStatus::Cancelled,
        JobStatus::Expired,
    ];

    /// Whether the job will not change any more (unless retried by hand).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled | JobStatus::Expired
        )
    }

    /// The lower-case name (`"pending"`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Retrying => "retrying",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Expired => "expired",
        }
    }

    /// Position in [`JobStatus::ALL`], for per-status arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::InvalidArgument(format!("unknown job status `{s}`")))
    }
}

/// How long to wait before retrying a failed attempt.
///
/// The default is exponential: 1 s after the first failure, then ×2 per
/// attempt (2 s, 4 s, ...), capped at one hour, each delay stretched by a
/// random 0–25% so that jobs failing together do not retry together.
///
/// ```
/// use std::time::Duration;
/// use jobs::Backoff;
///
/// let backoff = Backoff::exponential(Duration::from_millis(100)).without_jitter();
/// assert_eq!(backoff.delay(1), Duration::from_millis(100));
/// assert_eq!(backoff.delay(3), Duration::from_millis(400));
/// assert_eq!(Backoff::fixed(Duration::from_secs(5)).delay(7), Duration::from_secs(5));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Backoff {
    /// Delay after the first failed attempt.
    #[serde(with = "crate::serde_millis")]
    pub base: Duration,
    /// Growth per further attempt (`1.0` for a fixed delay).
    pub factor: f64,
    /// Upper bound for one delay (before jitter).
    #[serde(with = "crate::serde_millis")]
    pub max: Duration,
    /// Whether to add a random 0–25% to each delay.
    pub jitter: bool,
}

impl Backoff {
    /// Exponential backoff from `base`, doubling per attempt, capped at one hour,
    /// with jitter.
    pub fn exponential(base: Duration) -> Self {
        Backoff {
            base,
            factor: 2.0,
            max: Duration::from_secs(3600),
            jitter: true,
        }
    }

    /// The same delay before every retry, without jitter.
    pub fn fixed(delay: Duration) -> Self {
        Backoff {
            base: delay,
            factor: 1.0,
            max: delay,
            jitter: false,
        }
    }

    /// Sets the growth per attempt.
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Caps a single delay.
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Turns the random stretch off (useful in tests).
    pub fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    /// The delay after failed attempt number `attempt` (1 for the first).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let secs = self.base.as_secs_f64() * self.factor.max(1.0).powi(exponent);
        let capped = secs.min(self.max.as_secs_f64()).max(0.0);
        let stretched = if self.jitter {
            capped * (1.0 + fastrand::f64() * 0.25)
        } else {
            capped
        };
        Duration::try_from_secs_f64(stretched).unwrap_or(self.max)
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return Err(Error::InvalidArgument(format!(
                "backoff factor must be a finite number >= 1, got {}",
                self.factor
            )));
        }
        if self.max < self.base {
            return Err(Error::InvalidArgument(format!(
                "backoff max delay {:?} is shorter than its base delay {:?}",
                self.max, self.base
            )));
        }
        Ok(())
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::exponential(Duration::from_secs(1))
    }
}

/// A unit of background work: which handler to run (`name`), with which
/// arguments (`args`, a JSON object of named values), and how (priority,
/// retries, timeout, schedule).
///
/// Build one with [`Job::new`] and the builder methods, or with the typed
/// `job(..)` helper that `#[job]` generates.
///
/// ```
/// use std::time::Duration;
/// use jobs::{Job, JobPriority, JobStatus};
/// use serde_json::json;
///
/// let job = Job::new("send_email", json!({"to": "a@example.com"}))
///     .priority(JobPriority::High)
///     .max_retries(5)
///     .timeout(Duration::from_secs(30))
///     .delay(Duration::from_secs(60));
/// assert_eq!(job.status, JobStatus::Pending);
/// assert!(job.scheduled_at.is_some());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Job {
    /// Unique id.
    pub id: JobId,
    /// The handler this job routes to.
    pub name: Cow<'static, str>,
    /// When it was created. (Serialised right after `id` and `name`, so a
    /// reader of the stored JSON, such as the Redis scripts ordering jobs
    /// by age, finds it at the start.)
    pub created_at: DateTime<Utc>,
    /// The arguments, as a JSON object of named values (like keyword arguments).
    #[serde(default)]
    pub args: Value,
    /// How urgent it is.
    #[serde(default)]
    pub priority: JobPriority,
    /// Where it is in its life.
    #[serde(default = "pending")]
    pub status: JobStatus,
    /// How many attempts have started so far.
    #[serde(default)]
    pub attempts: u32,
    /// How many times a failed attempt is retried (so at most
    /// `max_retries + 1` attempts run).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// How long to wait between attempts; `None` means the default
    /// exponential backoff. Boxed: few jobs set one, and a job waiting in
    /// memory carries a pointer for it rather than the 48-byte struct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Box<Backoff>>,
    /// How long one attempt may run; `None` means the worker's default.
    #[serde(
        default,
        with = "crate::serde_millis::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Do not run before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Do not run after this time: the job becomes `Expired` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// For recurring jobs: the interval after which the next run is enqueued.
    #[serde(
        default,
        with = "crate::serde_millis::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub every: Option<Duration>,
    /// When its latest attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a final status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// The error of the latest failed attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The outcome of the latest finished attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Box<JobResult>>,
    /// The error of each failed attempt, oldest first (the latest is also
    /// [`last_error`](Self::last_error)): the last [`MAX_ATTEMPT_ERRORS`]
    /// attempts' at most, on every backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<AttemptError>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Free-form data that travels with the job.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, Value>,
    /// The named queue it waits in ([`DEFAULT_QUEUE`] unless set): a worker
    /// takes jobs from the queues it names.
    #[serde(default = "default_queue", skip_serializing_if = "is_default_queue")]
    pub queue: Cow<'static, str>,
    // The flow-control fields are behind pointers: most jobs have none, a
    // job waiting in memory should cost a pointer for each, not the
    // struct, and a copy of a job (each reservation) shares them.
    /// At most so many jobs with its key run at once, fleet-wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Arc<ConcurrencyLimit>>,
    /// At most so many jobs with its key start per period, fleet-wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<Arc<RateLimit>>,
    /// Enqueueing it while a job with the same unique key exists returns
    /// that job instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique: Option<Arc<Unique>>,
    /// The latest progress its running attempt reported
    /// ([`JobContext::progress`](crate::JobContext::progress)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Box<Value>>,
    /// The workflow or batch this job is a step of, and the steps it waits
    /// for ([`workflow`](crate::workflow)); `None` for a job on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Arc<StepInfo>>,
    /// Why the arguments could not be serialised, for a job that a
    /// `#[job]` function's `job(..)` made from them: [`Job::validate`], and
    /// so every enqueue, refuses the job with it. Never stored.
    /// (A thin pointer, one word: it is almost never set, and every job
    /// waiting in memory carries the field.)
    #[serde(skip)]
    #[allow(clippy::box_collection)] // Boxed on purpose: a thin pointer.
    args_error: Option<Box<String>>,
}

/// How one failed attempt of a job ended: [`Job::errors`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AttemptError {
    /// Which attempt (1 for the first).
    pub attempt: u32,
    /// When it ended.
    pub at: DateTime<Utc>,
    /// The error it ended with.
    pub error: String,
}

/// How many failed attempts' errors a job keeps ([`Job::errors`]): the
/// latest ones; older ones are dropped as new ones come.
pub const MAX_ATTEMPT_ERRORS: usize = 25;

impl AttemptError {
    /// Attempt number `attempt` failed at `at` with `error`.
    pub fn new(attempt: u32, at: DateTime<Utc>, error: impl Into<String>) -> Self {
        Self {
            attempt,
            at,
            error: error.into(),
        }
    }
}

/// How deeply `args` and each `metadata` value may nest (arrays and
/// objects): a worker reading the job's JSON back must stay within
/// serde_json's recursion limit of 128 (127 levels), of which the job object
/// and its metadata map take two.
pub(crate) const MAX_JSON_DEPTH: usize = 125;

/// The nesting depth of a JSON value (a scalar is 0, `[]` is 1), counted
/// without recursion so that a deep value cannot overflow the stack, and
/// without allocating for a value whose members are all scalars.
fn json_depth(value: &Value) -> usize {
    let nested = |v: &&Value| matches!(v, Value::Array(_) | Value::Object(_));
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = Vec::new();
    let mut next = Some((value, 0));
    while let Some((value, depth)) = next.take().or_else(|| stack.pop()) {
        let depth = depth + 1;
        match value {
            Value::Array(items) => stack.extend(items.iter().filter(nested).map(|v| (v, depth))),
            Value::Object(map) => stack.extend(map.values().filter(nested).map(|v| (v, depth))),
            _ => continue,
        }
        deepest = deepest.max(depth);
    }
    deepest
}

fn default_queue() -> Cow<'static, str> {
    Cow::Borrowed(DEFAULT_QUEUE)
}

// serde's `skip_serializing_if` passes the field itself, by reference.
#[allow(clippy::ptr_arg)]
fn is_default_queue(queue: &Cow<'static, str>) -> bool {
    queue == DEFAULT_QUEUE
}

/// The longest queue name, in bytes.
pub const MAX_QUEUE_NAME: usize = jobs_schedule::MAX_QUEUE_NAME;

/// Checks a queue name: 1 to [`MAX_QUEUE_NAME`] bytes of ASCII letters,
/// digits, `_`, `-`, `.` and `:` (with
/// [`jobs_schedule::check_queue_name`], which `#[job(queue = "..")]` checks
/// at compile time too).
///
/// ```
/// assert!(jobs::check_queue_name("mailers").is_ok());
/// assert!(jobs::check_queue_name("").is_err());
/// assert!(jobs::check_queue_name("a b").is_err());
/// ```
pub fn check_queue_name(name: &str) -> Result<(), Error> {
    jobs_schedule::check_queue_name(name).map_err(|e| Error::InvalidArgument(e.to_string()))
}

fn pending() -> JobStatus {
    JobStatus::Pending
}

fn default_max_retries() -> u32 {
    DEFAULT_MAX_RETRIES
}

impl Job {
    /// Adds a failed attempt's error to [`errors`](Self::errors), dropping
    /// the oldest beyond [`MAX_ATTEMPT_ERRORS`].
    pub(crate) fn push_error(&mut self, error: AttemptError) {
        self.errors.push(error);
        self.keep_last_errors();
    }

    /// Drops the oldest of [`errors`](Self::errors) beyond
    /// [`MAX_ATTEMPT_ERRORS`].
    pub(crate) fn keep_last_errors(&mut self) {
        let over = self.errors.len().saturating_sub(MAX_ATTEMPT_ERRORS);
        if over > 0 {
            self.errors.drain(..over);
        }
    }
    /// A pending job for handler `name` with the given arguments (a JSON
    /// object of named values; `Value::Null` for none), with the defaults:
    /// normal priority, 3 retries, exponential backoff,
    /// the worker's timeout, ready now.
    pub fn new(name: impl Into<Cow<'static, str>>, args: Value) -> Self {
        Job {
            id: JobId::new(),
            name: name.into(),
            args,
            priority: JobPriority::Normal,
            status: JobStatus::Pending,
            attempts: 0,
            max_retries: DEFAULT_MAX_RETRIES,
            backoff: None,
            timeout: None,
            scheduled_at: None,
            expires_at: None,
            every: None,
            created_at: crate::clock::Clock::system().now(),
            started_at: None,
            completed_at: None,
            last_error: None,
            result: None,
            errors: Vec::new(),
            tags: Vec::new(),
            metadata: BTreeMap::new(),
            queue: Cow::Borrowed(DEFAULT_QUEUE),
            concurrency: None,
            rate_limit: None,
            unique: None,
            progress: None,
            step: None,
            args_error: None,
        }
    }

    /// Marks the job as one whose arguments failed to serialise with
    /// `message` (its `args` stay as given, normally `Null`).
    pub(crate) fn args_error(mut self, message: String) -> Self {
        self.args_error = Some(Box::new(message));
        self
    }

    /// A job whose arguments are any serializable value (usually a struct
    /// with named fields).
    pub fn with_args<A: Serialize>(
        name: impl Into<Cow<'static, str>>,
        args: &A,
    ) -> Result<Self, Error> {
        let name = name.into();
        let args = serde_json::to_value(args).map_err(|e| Error::Serialize {
            name: name.to_string(),
            message: e.to_string(),
        })?;
        Ok(Job::new(name, args))
    }

    /// Puts the job in the named queue `queue` (by default
    /// [`DEFAULT_QUEUE`]).
    pub fn queue(mut self, queue: impl Into<Cow<'static, str>>) -> Self {
        self.queue = queue.into();
        self
    }

    /// At most `max` jobs of this name run at once, fleet-wide.
    pub fn concurrency(self, max: u32) -> Self {
        let key = self.name.to_string();
        self.concurrency_by(max, key)
    }

    /// At most `max` jobs with `key` run at once, fleet-wide (a partition:
    /// build the key with [`flow::key`](crate::flow::key) from the value
    /// that partitions, as `#[job(key = ..)]` does).
    pub fn concurrency_by(mut self, max: u32, key: impl Into<String>) -> Self {
        self.concurrency = Some(Arc::new(ConcurrencyLimit {
            key: key.into(),
            max,
        }));
        self
    }

    /// At most `rate.max` jobs of this name start per `rate.period`,
    /// fleet-wide.
    pub fn rate_limit(self, rate: Rate) -> Self {
        let key = self.name.to_string();
        self.rate_limit_by(rate, key)
    }

    /// At most `rate.max` jobs with `key` start per `rate.period`,
    /// fleet-wide.
    pub fn rate_limit_by(mut self, rate: Rate, key: impl Into<String>) -> Self {
        self.rate_limit = Some(Arc::new(RateLimit {
            key: key.into(),
            rate,
        }));
        self
    }

    /// Makes the job unique as `unique` says.
    pub fn unique(mut self, unique: Unique) -> Self {
        self.unique = Some(Arc::new(unique));
        self
    }

    /// Makes the job unique by its name and all its arguments, for at most
    /// `period`, in the default states (pending, running, retrying).
    ///
    /// ```
    /// use std::time::Duration;
    /// use jobs::prelude::*;
    /// use serde_json::json;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), jobs::Error> {
    /// let queue = MemoryJobQueue::new();
    /// let job = || Job::new("digest", json!({"user": 7})).unique_for(Duration::from_secs(600));
    /// let first = queue.push(job()).await?;
    /// let second = queue.push(job()).await?;
    /// assert!(!first.conflict && second.conflict);
    /// assert_eq!(second.id, first.id);
    /// # Ok(()) }
    /// ```
    pub fn unique_for(self, period: Duration) -> Self {
        let key = crate::flow::key(&self.name, &self.args);
        self.unique(Unique::new(key).period(period))
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: JobPriority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets how many times a failed attempt is retried (0: never).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Sets the delay between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(Box::new(backoff));
        self
    }

    /// Sets how long one attempt may run.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Runs the job no earlier than `at`.
    pub fn scheduled_at(mut self, at: DateTime<Utc>) -> Self {
        self.scheduled_at = Some(at);
        self
    }

    /// Runs the job no earlier than `delay` from now.
    pub fn delay(mut self, delay: Duration) -> Self {
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        self.scheduled_at = Some(
            self.created_at
                .checked_add_signed(delay)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        );
        self
    }

    /// Makes the job expire (not run) if it has not started by `at`.
    pub fn expires_at(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Makes the job recurring: each time a run finishes, the next one is
    /// enqueued, due `interval` after the finished run was due (or at once,
    /// if that time has passed). See [`next_occurrence`](Self::next_occurrence).
    pub fn every(mut self, interval: Duration) -> Self {
        self.every = Some(interval);
        self
    }

    /// Makes a finished job (`Failed`, `Cancelled` or `Expired`) a fresh
    /// waiting one, as an operator's retry does: `Pending`, no attempts
    /// counted, no start, finish or schedule, and no expiry if it had
    /// passed by `now`. Its last error and result stay, for the record.
    /// Returns `false`, changing nothing, for a job in any other state.
    /// Every backend's `retry` goes through this.
    pub fn reset_for_retry(&mut self, now: DateTime<Utc>) -> bool {
        if !matches!(
            self.status,
            JobStatus::Failed | JobStatus::Cancelled | JobStatus::Expired
        ) {
            return false;
        }
        self.status = JobStatus::Pending;
        self.attempts = 0;
        self.completed_at = None;
        self.started_at = None;
        self.scheduled_at = None;
        if self.expires_at.is_some_and(|at| at <= now) {
            self.expires_at = None;
        }
        true
    }

    /// Gives the job an id derived from its name and `key` (a UUID v5), so
    /// that the same logical enqueue always has the same id: a queue stores
    /// it once, and a retried enqueue with
    /// [`Enqueue::enqueue_idempotent`](crate::queue::Enqueue::enqueue_idempotent)
    /// finds the first one instead of adding another. Pick a key that names
    /// the work (an order number, a message id), not the attempt.
    ///
    /// ```
    /// use jobs::Job;
    /// use serde_json::json;
    ///
    /// let a = Job::new("charge", json!({"order": 42})).idempotency_key("order-42");
    /// let b = Job::new("charge", json!({"order": 42})).idempotency_key("order-42");
    /// let other = Job::new("refund", json!({"order": 42})).idempotency_key("order-42");
    /// assert_eq!(a.id, b.id);
    /// assert_ne!(a.id, other.id);
    /// ```
    pub fn idempotency_key(mut self, key: impl AsRef<[u8]>) -> Self {
        /// The namespace of idempotency-key ids (fixed: ids must not change
        /// between releases).
        const IDEMPOTENCY_NAMESPACE: Uuid =
            Uuid::from_u128(0x5b0c_2f6e_8d1a_4c3b_9e7f_1a2b_3c4d_5e6f);
        // The name's length, the name, then the key: distinct (name, key)
        // pairs give distinct input.
        let mut input = Vec::with_capacity(8 + self.name.len() + key.as_ref().len());
        input.extend_from_slice(&(self.name.len() as u64).to_le_bytes());
        input.extend_from_slice(self.name.as_bytes());
        input.extend_from_slice(key.as_ref());
        self.id = JobId(Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, &input));
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Adds a metadata entry.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The arguments as a typed value.
    pub fn args_as<A: serde::de::DeserializeOwned>(&self) -> Result<A, Error> {
        A::deserialize(&self.args).map_err(|e| Error::Deserialize {
            name: self.name.to_string(),
            message: e.to_string(),
        })
    }

    /// The backoff in effect (the job's own or the default).
    pub fn effective_backoff(&self) -> Backoff {
        self.backoff.as_deref().copied().unwrap_or_default()
    }

    /// Checks that the job's settings make sense: a name, an `every` and a
    /// `timeout` longer than zero, a sane backoff, arguments that are a JSON
    /// object (or null), `args` and `metadata` values nested at most 125
    /// levels deep (what a worker can read back), and arguments that were
    /// serialised (a `#[job]` function's `job(..)` whose arguments failed to
    /// serialise makes a job that is refused here with [`Error::Serialize`],
    /// as [`Job::with_args`] would have returned). Queues call this on
    /// enqueue, so a bad job is an `Err` there and never reaches a worker.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(message) = &self.args_error {
            return Err(Error::Serialize {
                name: self.name.to_string(),
                message: message.to_string(),
            });
        }
        if self.name.trim().is_empty() {
            return Err(Error::InvalidJob {
                id: self.id,
                message: "the job name is empty".into(),
            });
        }
        if self.every == Some(Duration::ZERO) {
            return Err(Error::InvalidJob {
                id: self.id,
                message: format!("job `{}`: `every` must be longer than zero", self.name),
            });
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err(Error::InvalidJob {
                id: self.id,
                message: format!("job `{}`: `timeout` must be longer than zero", self.name),
            });
        }
        let invalid = |message: String| Error::InvalidJob {
            id: self.id,
            message: format!("job `{}`: {message}", self.name),
        };
        check_queue_name(&self.queue).map_err(|e| match e {
            Error::InvalidArgument(m) => invalid(m),
            other => other,
        })?;
        if let Some(limit) = &self.concurrency {
            if limit.max == 0 {
                return Err(invalid("a concurrency limit must be at least 1".into()));
            }
            if limit.key.is_empty() {
                return Err(invalid("a concurrency limit's key is empty".into()));
            }
        }
        if let Some(limit) = &self.rate_limit {
            limit.rate.validate().map_err(&invalid)?;
            if limit.key.is_empty() {
                return Err(invalid("a rate limit's key is empty".into()));
            }
        }
        if let Some(unique) = &self.unique {
            if unique.key.is_empty() {
                return Err(invalid("a unique job's key is empty".into()));
            }
            if unique.states.is_empty() {
                return Err(invalid(
                    "a unique job names no states to be unique in".into(),
                ));
            }
            if unique.period == Some(Duration::ZERO) {
                return Err(invalid(
                    "a unique job's period must be longer than zero".into(),
                ));
            }
        }
        if let Some(step) = &self.step {
            if self.unique.is_some() || self.every.is_some() {
                return Err(invalid(format!(
                    "it is step `{}` of workflow `{}` and {}: a step cannot be",
                    step.name,
                    step.workflow_name,
                    if self.unique.is_some() {
                        "unique"
                    } else {
                        "recurring"
                    }
                )));
            }
        }
        if let Some(backoff) = &self.backoff {
            backoff.validate().map_err(|e| Error::InvalidJob {
                id: self.id,
                message: format!("job `{}`: {e}", self.name),
            })?;
        }
        for (what, value) in std::iter::once(("args", &self.args))
            .chain(self.metadata.values().map(|v| ("metadata", v)))
        {
            if json_depth(value) > MAX_JSON_DEPTH {
                return Err(Error::InvalidJob {
                    id: self.id,
                    message: format!(
                        "job `{}`: its {what} are nested deeper than {MAX_JSON_DEPTH} levels, \
                         which a worker could not read back (the JSON reader's recursion \
                         limit is 128, the job's own fields included)",
                        self.name
                    ),
                });
            }
        }
        if !matches!(self.args, Value::Null | Value::Object(_)) {
            return Err(Error::InvalidJob {
                id: self.id,
                message: format!(
                    "job `{}`: args must be a JSON object of named values (or null)",
                    self.name
                ),
            });
        }
        Ok(())
    }

    /// When the job becomes ready to run (its schedule, or its creation).
    pub fn due_at(&self) -> DateTime<Utc> {
        self.scheduled_at.unwrap_or(self.created_at)
    }

    /// The next run of a recurring job, or `None` if the job is not
    /// recurring (no `every`) or the next due time would overflow.
    ///
    /// The next run is this job with a new id, created `now`, `Pending`, no
    /// attempts, no start, finish, error or result; its name, arguments,
    /// priority, retries, backoff, timeout, interval, tags and metadata are
    /// kept. It is due `every` after this run was due, or `now` if that time
    /// has already passed: a run that finishes late, or after a pause, is
    /// followed by one run at once, never by a burst of the runs it missed.
    /// An expiry moves by as much as the due time does, so each run has the
    /// same window to start in.
    ///
    /// ```
    /// use std::time::Duration;
    /// use chrono::{TimeZone, Utc};
    /// use jobs::Job;
    ///
    /// let due = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
    /// let job = Job::new("report", serde_json::Value::Null)
    ///     .scheduled_at(due)
    ///     .every(Duration::from_secs(3600));
    ///
    /// // Finished on time: the next run is due an hour after this one was.
    /// let next = job.next_occurrence(due + Duration::from_secs(60)).unwrap();
    /// assert_eq!(next.scheduled_at, Some(due + Duration::from_secs(3600)));
    /// assert_ne!(next.id, job.id);
    ///
    /// // Finished three hours late: the next run is due at once.
    /// let late = due + Duration::from_secs(3 * 3600);
    /// assert_eq!(job.next_occurrence(late).unwrap().scheduled_at, Some(late));
    ///
    /// assert!(Job::new("once", serde_json::Value::Null).next_occurrence(late).is_none());
    /// ```
    pub fn next_occurrence(&self, now: DateTime<Utc>) -> Option<Job> {
        let every = self.every?;
        let step = chrono::Duration::from_std(every).ok()?;
        let mut due = self.due_at().checked_add_signed(step)?;
        if due < now {
            due = now;
        }
        let expires_at = self
            .expires_at
            .and_then(|at| at.checked_add_signed(due - self.due_at()));
        Some(Job {
            id: JobId::new(),
            status: JobStatus::Pending,
            expires_at,
            attempts: 0,
            scheduled_at: Some(due),
            created_at: now,
            started_at: None,
            completed_at: None,
            last_error: None,
            result: None,
            ..self.clone()
        })
    }
}
