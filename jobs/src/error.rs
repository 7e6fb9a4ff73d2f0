//! The framework's own error type.

use crate::job::JobId;

/// What can go wrong when talking to a queue or a worker (as opposed to
/// [`JobError`](crate::JobError), which is a job's own failure).
#[derive(Clone, Debug, thiserror::Error)]
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

    /// The queue's backend failed: it is unreachable, timed out, or refused
    /// a command. [`Error::is_transient`] tells whether trying again later
    /// may succeed.
    #[error(transparent)]
    Backend(BackendError),

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
    /// A transient backend error from any displayable cause (no source
    /// kept): e.g. a connection refused.
    pub fn backend(cause: impl std::fmt::Display) -> Self {
        Error::Backend(BackendError::new(cause.to_string()))
    }

    /// Whether the same call may succeed if tried again later: a backend
    /// that is unreachable, timed out or restarting. Not for a job that was
    /// refused (invalid, duplicate) or a command the backend rejects.
    ///
    /// A transient error of an enqueue is ambiguous: the job may have been
    /// stored before the connection failed. Retry with the same [`JobId`]
    /// (`Job::id`) so that a retry finds the first attempt's job instead of
    /// creating a second one.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Backend(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// Why a queue's backend failed: a message saying what was being done, the
/// backend's own error as the [`source`](std::error::Error::source), and
/// whether trying again may help.
///
/// Cheap to clone (the source is shared), so one failed round trip can be
/// reported to every caller it carried.
#[derive(Clone, Debug)]
pub struct BackendError {
    message: String,
    transient: bool,
    source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl BackendError {
    /// A transient error with this message and no source.
    pub fn new(message: impl Into<String>) -> Self {
        BackendError {
            message: message.into(),
            transient: true,
            source: None,
        }
    }

    /// Keeps `source` as the cause. The message shown is the one given to
    /// [`new`](Self::new) followed by the source's own message.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(std::sync::Arc::new(source));
        self
    }

    /// Sets whether trying again may succeed (default: yes).
    pub fn transient(mut self, transient: bool) -> Self {
        self.transient = transient;
        self
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// What was being done when it failed.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The source's text is part of the message, so that a plain `{e}`
        // (a log line, a CLI's output) says what the backend answered.
        write!(f, "queue backend error: {}", self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        Error::Backend(e)
    }
}

/// `Result` with the framework's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
