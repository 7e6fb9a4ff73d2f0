//! The framework's own error type.

use crate::job::JobId;

/// What can go wrong when talking to a queue or a worker (as opposed to
/// [`JobError`](crate::JobError), which is a job's own failure).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument that makes no sense (zero concurrency, a bad id, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A job whose settings make no sense; it was not enqueued.
    #[error("invalid job {id}: {message}")]
    InvalidJob {
        /// The job's id.
        id: JobId,
        /// What is wrong.
        message: String,
    },

    /// A job's arguments could not be serialized.
    #[error("could not serialize the arguments of job `{name}`: {message}")]
    Serialize {
        /// The job's name.
        name: String,
        /// The serializer's message.
        message: String,
    },

    /// A job's arguments did not fit the handler's parameters.
    #[error("invalid arguments for job `{name}`: {message}")]
    Deserialize {
        /// The job's name.
        name: String,
        /// The deserializer's message (names the field and what was expected).
        message: String,
    },

    /// A job with this id is already in the queue (enqueueing is idempotent
    /// per id: the earlier job stands).
    #[error("a job with id {0} is already in the queue")]
    Duplicate(JobId),

    /// A schedule that makes no sense: a cron expression that does not
    /// parse, an unknown time zone, a zero interval.
    #[error("invalid schedule `{schedule}`: {message}")]
    InvalidSchedule {
        /// The schedule as written (the cron expression, or `every ..`).
        schedule: String,
        /// What is wrong with it.
        message: String,
    },

    /// The worker was stopped and takes no more jobs.
    #[error("the worker is stopped and takes no more jobs")]
    Stopped,

    /// `run` was called on a worker that is already running.
    #[error("the worker is already running")]
    AlreadyRunning,

    /// No job with this id is known to the queue.
    #[error("no job with id {0}")]
    NotFound(JobId),

    /// A handler asks for shared state that was not registered on the worker.
    #[error("{0}")]
    MissingData(String),

    /// The registry of `#[job]` handlers is inconsistent (e.g. one name
    /// registered twice).
    #[error("{0}")]
    Registry(String),

    /// The queue's backend failed (e.g. Redis is unreachable).
    #[error("queue backend error: {0}")]
    Backend(String),

    /// A stored job record could not be read.
    #[error("corrupt job record {key}: {message}")]
    Corrupt {
        /// Where the record is stored.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl Error {
    /// A backend error from any displayable cause.
    pub fn backend(cause: impl std::fmt::Display) -> Self {
        Error::Backend(cause.to_string())
    }
}

/// `Result` with the framework's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
