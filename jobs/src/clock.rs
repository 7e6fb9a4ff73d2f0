//! Where the framework reads the time from.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

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
            Kind::System => system_now(),
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

/// `Utc::now()`, the same instant, with the calendar date of the current
/// day worked out once per day and thread instead of on every read: the
/// date arithmetic was most of the cost of a read, and a worker reads the
/// clock a few times per job. (The system clock has no leap seconds, so a
/// day is always 86,400 of its seconds.)
fn system_now() -> DateTime<Utc> {
    thread_local! {
        static TODAY: Cell<Option<(u64, NaiveDate)>> = const { Cell::new(None) };
    }
    let Ok(since) = SystemTime::now().duration_since(UNIX_EPOCH) else {
        return Utc::now();
    };
    let secs = since.as_secs();
    let (day, of_day) = (secs / 86_400, (secs % 86_400) as u32);
    let date = match TODAY.get() {
        Some((today, date)) if today == day => date,
        _ => {
            let Some(date) = i64::try_from(secs)
                .ok()
                .and_then(|secs| DateTime::from_timestamp(secs, 0))
                .map(|at| at.date_naive())
            else {
                return Utc::now();
            };
            TODAY.set(Some((day, date)));
            date
        }
    };
    match NaiveTime::from_num_seconds_from_midnight_opt(of_day, since.subsec_nanos()) {
        Some(time) => NaiveDateTime::new(date, time).and_utc(),
        None => Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_reads_what_chrono_reads() {
        // Twice: the first read works out the day, the second reuses it.
        for _ in 0..2 {
            let before = Utc::now();
            let now = Clock::system().now();
            let after = Utc::now();
            assert!(
                before <= now && now <= after,
                "{before} <= {now} <= {after}"
            );
        }
    }
}
