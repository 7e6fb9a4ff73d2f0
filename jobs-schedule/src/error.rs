//! [`Error`]: what is wrong with a schedule's text.

use std::fmt;

/// What kind of text was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A cron expression ([`parse_cron`](crate::parse_cron)).
    Cron,
    /// A duration ([`parse_duration`](crate::parse_duration)).
    Duration,
    /// An interval: a duration that must be longer than zero
    /// ([`parse_interval`](crate::parse_interval),
    /// [`check_interval`](crate::check_interval)).
    Interval,
    /// An IANA time zone name ([`parse_timezone`](crate::parse_timezone)).
    TimeZone,
    /// A rate, such as `100/min` ([`parse_rate`](crate::parse_rate)).
    Rate,
    /// A queue name ([`check_queue_name`](crate::check_queue_name)).
    QueueName,
}

/// A schedule's text that was rejected: what kind of text, the text itself,
/// and what is wrong with it.
///
/// It displays as one message naming the text, in the style of rustc's
/// (lower case, no final period), which is what the `#[job]` attribute
/// prints:
///
/// ```
/// use jobs_schedule::ErrorKind;
///
/// let e = jobs_schedule::parse_cron("0 25 * * *").unwrap_err();
/// assert_eq!(e.kind(), ErrorKind::Cron);
/// assert_eq!(e.input(), "0 25 * * *");
/// assert_eq!(e.message(), "hour field `25` (allowed: 0-23): number out of bounds");
/// assert_eq!(
///     e.to_string(),
///     "invalid cron expression `0 25 * * *`: hour field `25` (allowed: 0-23): number out of bounds"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    input: String,
    message: String,
}

impl Error {
    pub(crate) fn new(
        kind: ErrorKind,
        input: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error {
            kind,
            input: input.into(),
            message: message.into(),
        }
    }

    /// What kind of text was rejected.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The text as given.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What is wrong with it, without repeating the text: for a caller that
    /// names the text itself (as `jobs::Error::InvalidSchedule` does).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Error {
            kind,
            input,
            message,
        } = self;
        match kind {
            ErrorKind::Cron => write!(f, "invalid cron expression `{input}`: {message}"),
            ErrorKind::Duration => write!(f, "invalid duration `{input}`: {message}"),
            ErrorKind::Interval => write!(f, "invalid interval `{input}`: {message}"),
            ErrorKind::TimeZone => write!(f, "unknown time zone `{input}`; {message}"),
            ErrorKind::Rate => write!(f, "invalid rate `{input}`: {message}"),
            ErrorKind::QueueName if input.is_empty() => write!(f, "invalid queue name: {message}"),
            ErrorKind::QueueName => write!(
                f,
                "invalid queue name `{}`: {message}",
                crate::queue::shown(input)
            ),
        }
    }
}

impl std::error::Error for Error {}
