//! Flow control: the limits a job or a queue sets on when it may start
//! ([`ConcurrencyLimit`], [`RateLimit`], [`QueueLimits`]), and
//! [`Unique`] jobs.
//!
//! Limits are held fleet-wide by the backend (across every worker process
//! on one Redis; exactly, per process, on the in-memory queue). A job held
//! back by a limit is not started, not counted as an attempt, and keeps its
//! place: it starts as soon as the limit lets it, before jobs that became
//! ready after it.
//!
//! A limit's `key` names what is limited. `#[job(concurrency = 2)]` limits
//! the job's name (key `"<name>"`); `#[job(concurrency = 1, key =
//! account_id)]` limits each value of the parameter (key
//! `"<name>:<JSON of the value>"`): one at a time per account, any number of
//! accounts at once. Jobs of different names that give the same key share
//! the limit.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;
use crate::job::JobStatus;

/// At most `max` jobs with this `key` run at once, fleet-wide.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConcurrencyLimit {
    /// What is limited: jobs with the same key share the limit.
    pub key: String,
    /// How many may run at once (at least 1).
    pub max: u32,
}

/// At most `max` starts per `period`: a count and a period, written
/// `"100/min"`, `"10/s"` or `"5/30s"` (see [`jobs_schedule::parse_rate`]).
///
/// ```
/// use std::time::Duration;
/// use jobs::Rate;
///
/// let rate: Rate = "100/min".parse().unwrap();
/// assert_eq!((rate.max, rate.period), (100, Duration::from_secs(60)));
/// assert_eq!(rate.to_string(), "100/1m");
/// assert!("0/s".parse::<Rate>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rate {
    /// How many starts per period (at least 1).
    pub max: u32,
    /// The period (sliding: any window of this length holds at most `max`
    /// starts).
    #[serde(with = "crate::serde_millis")]
    pub period: Duration,
}

impl Rate {
    /// At most `max` per `period`.
    pub fn new(max: u32, period: Duration) -> Self {
        Rate { max, period }
    }

    /// Parses `"100/min"`; the same as `str::parse`.
    pub fn parse(text: &str) -> Result<Rate, Error> {
        text.parse()
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max == 0 {
            return Err("a rate limit's count must be at least 1".into());
        }
        if self.period < Duration::from_millis(1) {
            return Err("a rate limit's period must be at least 1ms".into());
        }
        Ok(())
    }
}

impl FromStr for Rate {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (max, period) =
            jobs_schedule::parse_rate(s).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        Ok(Rate { max, period })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.max,
            jobs_schedule::format_duration(self.period)
        )
    }
}

/// At most `rate.max` jobs with this `key` start per `rate.period`,
/// fleet-wide.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RateLimit {
    /// What is limited: jobs with the same key share the limit.
    pub key: String,
    /// How many starts per period.
    #[serde(flatten)]
    pub rate: Rate,
}

/// Limits on a whole named queue, set on the worker with
/// `WorkerBuilder::queue_limits`: every worker taking from the queue should
/// set the same ones (each passes its own to the backend when it reserves).
///
/// ```
/// use jobs::QueueLimits;
///
/// let limits = QueueLimits::new().concurrency(5).rate("100/min".parse().unwrap());
/// assert_eq!(limits.concurrency, Some(5));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueueLimits {
    /// At most this many of the queue's jobs run at once, fleet-wide.
    pub concurrency: Option<u32>,
    /// At most this many of the queue's jobs start per period, fleet-wide.
    pub rate: Option<Rate>,
}

impl QueueLimits {
    /// No limits.
    pub fn new() -> Self {
        QueueLimits::default()
    }

    /// At most `max` of the queue's jobs running at once, fleet-wide.
    pub fn concurrency(mut self, max: u32) -> Self {
        self.concurrency = Some(max);
        self
    }

    /// At most `rate.max` starts per `rate.period`, fleet-wide.
    pub fn rate(mut self, rate: Rate) -> Self {
        self.rate = Some(rate);
        self
    }

    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        self.concurrency.is_none() && self.rate.is_none()
    }

    /// An error for a limit of zero.
    pub fn validate(&self) -> Result<(), Error> {
        if self.concurrency == Some(0) {
            return Err(Error::InvalidArgument(
                "a queue's concurrency limit must be at least 1".into(),
            ));
        }
        if let Some(rate) = &self.rate {
            rate.validate().map_err(Error::InvalidArgument)?;
        }
        Ok(())
    }
}

/// The statuses in which a unique job blocks another with the same key:
/// pending (scheduled ones included), running and retrying.
pub const DEFAULT_UNIQUE_STATES: [JobStatus; 3] =
    [JobStatus::Pending, JobStatus::Running, JobStatus::Retrying];

/// A unique job: while a job with the same `key` exists in one of `states`
/// (and, with a `period`, was enqueued less than `period` ago), enqueueing
/// another does not create a job; it returns the existing job's id, with
/// [`Enqueued::conflict`](crate::queue::Enqueued::conflict) set.
///
/// The check and the insert are one atomic step on every backend: two
/// processes enqueueing the same key at once create one job.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Unique {
    /// What makes two jobs the same: by default the name and all the
    /// arguments; with `by`, the name and the named arguments.
    pub key: String,
    /// How long the uniqueness lasts after the first job was enqueued;
    /// `None`: as long as that job is in one of `states`.
    #[serde(
        default,
        with = "crate::serde_millis::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub period: Option<Duration>,
    /// In which statuses the existing job blocks a new one (by default
    /// [`DEFAULT_UNIQUE_STATES`]). Add `Completed` to also refuse a job whose
    /// twin already ran (within `period`).
    pub states: Vec<JobStatus>,
}

impl Unique {
    /// Uniqueness by `key`, in the default states, with no period.
    pub fn new(key: impl Into<String>) -> Self {
        Unique {
            key: key.into(),
            period: None,
            states: DEFAULT_UNIQUE_STATES.to_vec(),
        }
    }

    /// Uniqueness lasts at most `period` after the first job was enqueued.
    pub fn period(mut self, period: Duration) -> Self {
        self.period = Some(period);
        self
    }

    /// The statuses in which the existing job blocks a new one.
    pub fn states(mut self, states: impl IntoIterator<Item = JobStatus>) -> Self {
        self.states = states.into_iter().collect();
        self
    }

    /// Whether a job in `status` blocks a new one.
    pub fn blocks(&self, status: JobStatus) -> bool {
        self.states.contains(&status)
    }
}

/// The key that `#[job]` derives from a job's name and typed values: the
/// name, a colon, and the values' JSON (canonical: object keys sorted).
///
/// ```
/// use serde_json::json;
///
/// assert_eq!(jobs::flow::key("sync", &json!(42)), "sync:42");
/// assert_eq!(jobs::flow::key("sync", &json!(["a", 1])), r#"sync:["a",1]"#);
/// ```
pub fn key(name: &str, value: &Value) -> String {
    format!("{name}:{value}")
}

/// The run-time fallback for processor-style jobs: the key of the value at
/// `pointer` (a JSON pointer such as `"/account_id"`) in `args`, as
/// [`key`] makes it; `None` if there is no such value.
///
/// ```
/// use serde_json::json;
///
/// let args = json!({"account_id": 7, "full": true});
/// assert_eq!(jobs::flow::key_at("sync", &args, "/account_id").as_deref(), Some("sync:7"));
/// assert_eq!(jobs::flow::key_at("sync", &args, "/missing"), None);
/// ```
pub fn key_at(name: &str, args: &Value, pointer: &str) -> Option<String> {
    args.pointer(pointer).map(|v| key(name, v))
}
