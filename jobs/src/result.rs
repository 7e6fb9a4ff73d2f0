//! How an attempt ends: [`JobResult`] (what a processor returns and a job
//! keeps as its `result`), the error a handler fails with, [`JobError`], and
//! [`Retry`], which says whether and when a failed job runs again.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The outcome of one attempt of a job.
///
/// ```
/// use jobs::{JobError, JobResult};
/// use serde_json::json;
///
/// let ok = JobResult::success(json!({"email_sent": true}));
/// assert!(ok.success);
///
/// let failed = JobResult::failure(JobError::permanent("no such user"));
/// assert!(!failed.success);
/// assert!(!failed.retryable);
/// assert_eq!(failed.error.as_deref(), Some("no such user"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobResult {
    /// Whether the attempt succeeded.
    pub success: bool,
    /// The value the job produced, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// What went wrong, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The kind of error (a type name), when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Whether a failure may be retried. Ignored on success.
    #[serde(default)]
    pub retryable: bool,
    /// Retry no sooner than this, overriding the backoff.
    #[serde(
        default,
        with = "crate::serde_millis::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_after: Option<Duration>,
    /// How long the attempt ran.
    #[serde(
        default,
        with = "crate::serde_millis::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub execution_time: Option<Duration>,
    /// Set when the handler asked to run again later without the attempt
    /// counting ([`JobError::snooze`]): the job waits this long and keeps
    /// its attempts.
    #[serde(
        default,
        with = "crate::serde_millis::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub snooze: Option<Duration>,
}

impl JobResult {
    /// A successful outcome carrying `result` (`Value::Null` for none).
    pub fn success(result: impl Into<Value>) -> Self {
        let result = result.into();
        JobResult {
            success: true,
            result: (!result.is_null()).then_some(result),
            ..JobResult::default()
        }
    }

    /// A successful outcome carrying any serializable value.
    pub fn success_with<T: Serialize>(value: &T) -> Self {
        match serde_json::to_value(value) {
            Ok(value) => JobResult::success(value),
            Err(e) => JobResult::failure(
                JobError::permanent(format!("could not serialize the job's result: {e}"))
                    .with_type("SerializeError"),
            ),
        }
    }

    /// A failed outcome from an error. Whether it is retried follows the
    /// error ([`JobError::permanent`] is not).
    pub fn failure(error: impl Into<JobError>) -> Self {
        let error = error.into();
        JobResult {
            success: false,
            result: None,
            error: Some(error.message),
            error_type: error.error_type,
            retryable: !matches!(error.retry, Retry::Never),
            retry_after: match error.retry {
                Retry::After(delay) => Some(delay),
                _ => None,
            },
            execution_time: None,
            snooze: match error.retry {
                Retry::Snooze(delay) => Some(delay),
                _ => None,
            },
        }
    }

    /// A failed outcome with a message, retryable: short for
    /// `JobResult::failure(JobError::retryable(message))`. To record an
    /// error type as well, build the [`JobError`] and pass it to
    /// [`failure`](Self::failure).
    pub fn error(message: impl Into<String>) -> Self {
        JobResult::failure(JobError::retryable(message))
    }

    /// Sets whether a failure is retried.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }
}

impl From<JobError> for JobResult {
    fn from(error: JobError) -> Self {
        JobResult::failure(error)
    }
}

impl<T: Serialize, E: Into<JobError>> From<Result<T, E>> for JobResult {
    fn from(result: Result<T, E>) -> Self {
        match result {
            Ok(value) => JobResult::success_with(&value),
            Err(error) => JobResult::failure(error),
        }
    }
}

/// Whether and when a failed job is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Retry after the job's backoff delay (the default).
    Backoff,
    /// Retry after this delay instead of the backoff (e.g. a rate limit's
    /// `Retry-After`).
    After(Duration),
    /// Do not retry: the job fails for good.
    Never,
    /// Not a failure: run the job again after this delay, without counting
    /// the attempt ([`JobError::snooze`]).
    Snooze(Duration),
}

/// The error a job handler fails with.
///
/// Any `std::error::Error` converts into it with `?`, as a retryable error
/// whose type is recorded. Say in the type what should happen next:
/// [`JobError::permanent`] is never retried, [`JobError::retry_after`] is
/// retried after a given delay, everything else is retried with the job's
/// backoff until its retries run out.
///
/// ```
/// use std::time::Duration;
/// use jobs::{JobError, Retry};
///
/// fn parse(input: &str) -> Result<u32, JobError> {
///     let n: u32 = input.parse()?; // ParseIntError -> retryable JobError
///     if n == 0 {
///         return Err(JobError::permanent("zero is not a valid user id"));
///     }
///     Ok(n)
/// }
///
/// assert_eq!(parse("x").unwrap_err().retry(), Retry::Backoff);
/// assert_eq!(parse("0").unwrap_err().retry(), Retry::Never);
/// let limited = JobError::retry_after("rate limited", Duration::from_secs(30));
/// assert_eq!(limited.retry(), Retry::After(Duration::from_secs(30)));
/// ```
pub struct JobError {
    message: String,
    error_type: Option<String>,
    retry: Retry,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl JobError {
    /// A retryable error with a message: the job is tried again after its
    /// backoff delay, until its retries run out.
    pub fn retryable(message: impl Into<String>) -> Self {
        JobError {
            message: message.into(),
            error_type: None,
            retry: Retry::Backoff,
            source: None,
        }
    }

    /// An error that is not retried: the job fails at once.
    pub fn permanent(message: impl Into<String>) -> Self {
        JobError {
            retry: Retry::Never,
            ..JobError::retryable(message)
        }
    }

    /// A retryable error whose next attempt waits `delay` instead of the
    /// backoff.
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> Self {
        JobError {
            retry: Retry::After(delay),
            ..JobError::retryable(message)
        }
    }

    /// Not a failure: "not now, try again in `delay`". The job goes back to
    /// waiting for `delay` without counting the attempt (its retries are
    /// not used up) and without recording an error — unlike
    /// [`retry_after`](Self::retry_after), which is a failed attempt. For a
    /// resource that is busy, or data that is not there yet.
    ///
    /// ```
    /// use std::time::Duration;
    /// use jobs::{JobError, JobResult, Retry};
    ///
    /// let later = JobError::snooze(Duration::from_secs(5));
    /// assert_eq!(later.retry(), Retry::Snooze(Duration::from_secs(5)));
    /// assert_eq!(JobResult::failure(later).snooze, Some(Duration::from_secs(5)));
    /// ```
    pub fn snooze(delay: Duration) -> Self {
        JobError {
            retry: Retry::Snooze(delay),
            ..JobError::retryable(format!(
                "snoozed for {}",
                jobs_schedule::format_duration(delay)
            ))
        }
    }

    /// Wraps an error value, recording its type name.
    pub fn from_error<E: std::error::Error + Send + Sync + 'static>(error: E) -> Self {
        JobError {
            message: error.to_string(),
            error_type: Some(short_type_name::<E>().to_owned()),
            retry: Retry::Backoff,
            source: Some(Box::new(error)),
        }
    }

    /// Sets the error type (shown as `error_type` in the result).
    pub fn with_type(mut self, error_type: impl Into<String>) -> Self {
        self.error_type = Some(error_type.into());
        self
    }

    /// Makes the error permanent (not retried).
    pub fn into_permanent(mut self) -> Self {
        self.retry = Retry::Never;
        self
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error type, if known.
    pub fn error_type(&self) -> Option<&str> {
        self.error_type.as_deref()
    }

    /// What happens next.
    pub fn retry(&self) -> Retry {
        self.retry
    }

    /// Whether the job may be retried.
    pub fn is_retryable(&self) -> bool {
        self.retry != Retry::Never
    }

    /// The wrapped error, if this was made from one.
    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    // Keep the last path segment of the outermost type: `std::num::ParseIntError`
    // becomes `ParseIntError`, generic arguments are dropped.
    let head = full.split('<').next().unwrap_or(full);
    head.rsplit("::").next().unwrap_or(head)
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobError")
            .field("message", &self.message)
            .field("error_type", &self.error_type)
            .field("retry", &self.retry)
            .finish()
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Any error converts into a retryable [`JobError`], so `?` works in handlers.
impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    fn from(error: E) -> Self {
        JobError::from_error(error)
    }
}
