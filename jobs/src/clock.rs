//! Where the framework reads the time from.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};

/// The source of "now" for queues, workers and schedulers.
///
/// [`Clock::system`] (the default) reads the system clock. [`Clock::tokio`]
/// follows tokio's clock, so tests can run under `tokio::time::pause()` and
/// move time forward with `tokio::time::advance` instead of waiting: delayed
/// jobs, backoff, timeouts and schedules all see the same time.
///
/// ```
/// use jobs::Clock;
/// let before = Clock::system().now();
/// assert!(Clock::system().now() >= before);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    kind: Kind,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Kind {
    #[default]
    System,
    Tokio,
}

impl Clock {
    /// The system clock.
    pub const fn system() -> Self {
        Clock { kind: Kind::System }
    }

    /// Tokio's clock, anchored to the system time at its first use in the
    /// process. Under `tokio::time::pause()` it stands still until advanced.
    pub const fn tokio() -> Self {
        Clock { kind: Kind::Tokio }
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        match self.kind {
            Kind::System => Utc::now(),
            Kind::Tokio => {
                static ANCHOR: OnceLock<(DateTime<Utc>, tokio::time::Instant)> = OnceLock::new();
                let (wall, anchor) =
                    *ANCHOR.get_or_init(|| (Utc::now(), tokio::time::Instant::now()));
                let now = tokio::time::Instant::now();
                // Runtimes paused at different moments may stand before the
                // anchor: measure both ways so time still moves forward.
                let offset = match now.checked_duration_since(anchor) {
                    Some(ahead) => chrono::Duration::from_std(ahead),
                    None => chrono::Duration::from_std(anchor - now).map(|behind| -behind),
                };
                wall + offset.unwrap_or_else(|_| chrono::Duration::zero())
            }
        }
    }

    /// Whether this is [`Clock::tokio`].
    pub(crate) fn is_tokio(&self) -> bool {
        self.kind == Kind::Tokio
    }

    /// How long from now until `at` (zero if it is past).
    pub fn until(&self, at: DateTime<Utc>) -> std::time::Duration {
        (at - self.now()).to_std().unwrap_or_default()
    }
}
