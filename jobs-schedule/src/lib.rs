//! How the [`jobs`](https://docs.rs/jobs) framework reads schedules and
//! the rest of its settings' text: cron expressions, durations and
//! intervals, IANA time zones, rates (`"100/min"`) and queue names.
//!
//! Both the runtime (`jobs::Schedule`) and the `#[job]` attribute
//! (`jobs-macros`, at compile time) parse through these functions, so an
//! attribute compiles exactly when the runtime would accept its schedule,
//! and a rejected one gets the same message in both places. The functions
//! return plain values and an [`Error`] that says what is wrong; the runtime
//! wraps it into its own error type, the attribute puts it on the literal.
//!
//! ```
//! use std::time::Duration;
//!
//! assert_eq!(jobs_schedule::parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
//! assert!(jobs_schedule::parse_cron("*/15 9-17 * * MON-FRI").is_ok());
//! assert_eq!(jobs_schedule::parse_timezone("Europe/Berlin").unwrap().name(), "Europe/Berlin");
//!
//! // 30 February never comes: an error, not a schedule that never fires.
//! let e = jobs_schedule::parse_cron("0 0 30 2 *").unwrap_err();
//! assert_eq!(
//!     e.to_string(),
//!     "invalid cron expression `0 0 30 2 *`: no date matches it, so it would never run: \
//!      day-of-month `30` does not occur in month `2`"
//! );
//! ```
//!
//! Parsing is done by `croner` (cron), `humantime` (durations) and
//! `chrono-tz` (time zones); [`Cron`] and [`Tz`] are their types.

mod cron;
mod duration;
mod error;
mod queue;
mod rate;
mod timezone;

pub use chrono_tz::Tz;
pub use croner::Cron;

pub use cron::parse_cron;
pub use duration::{check_interval, format_duration, parse_duration, parse_interval};
pub use error::{Error, ErrorKind};
pub use queue::{MAX_QUEUE_NAME, check_queue_name};
pub use rate::parse_rate;
pub use timezone::parse_timezone;
