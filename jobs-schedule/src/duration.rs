//! Durations (`"30s"`, `"1h 30m"`) and intervals (durations longer than
//! zero).

use std::time::Duration;

use crate::error::{Error, ErrorKind};

/// Parses a duration written as numbers with units, as `humantime` reads
/// them: `"250ms"`, `"30s"`, `"5m"`, `"1h 30m"`, `"2days"`. Surrounding
/// whitespace is ignored; zero is allowed (see [`parse_interval`]).
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(jobs_schedule::parse_duration("250ms").unwrap(), Duration::from_millis(250));
/// let e = jobs_schedule::parse_duration("often").unwrap_err();
/// assert_eq!(
///     e.to_string(),
///     "invalid duration `often`: expected number at 0; write a number and a unit, such as \"250ms\", \"30s\", \"5m\" or \"1h\""
/// );
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        Error::new(
            ErrorKind::Duration,
            text,
            format!("{e}; write a number and a unit, such as \"250ms\", \"30s\", \"5m\" or \"1h\""),
        )
    })
}

/// Parses an interval: a duration, as [`parse_duration`] reads it, that is
/// longer than zero.
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(jobs_schedule::parse_interval("5m").unwrap(), Duration::from_secs(300));
/// let e = jobs_schedule::parse_interval("0m").unwrap_err();
/// assert_eq!(e.to_string(), "invalid interval `0m`: an interval must be longer than zero");
/// ```
pub fn parse_interval(text: &str) -> Result<Duration, Error> {
    let interval = parse_duration(text)?;
    if interval.is_zero() {
        return Err(zero(text));
    }
    Ok(interval)
}

/// Checks that an interval is longer than zero; the error names it as
/// [`format_duration`] writes it.
///
/// ```
/// use std::time::Duration;
///
/// assert!(jobs_schedule::check_interval(Duration::from_secs(1)).is_ok());
/// let e = jobs_schedule::check_interval(Duration::ZERO).unwrap_err();
/// assert_eq!(e.message(), "an interval must be longer than zero");
/// ```
pub fn check_interval(interval: Duration) -> Result<Duration, Error> {
    if interval.is_zero() {
        return Err(zero(&format_duration(interval)));
    }
    Ok(interval)
}

fn zero(text: &str) -> Error {
    Error::new(
        ErrorKind::Interval,
        text,
        "an interval must be longer than zero",
    )
}

/// Writes a duration the way [`parse_duration`] reads it back: `"1m 30s"`,
/// `"1day"`, `"1s 500ms"`.
///
/// ```
/// use std::time::Duration;
///
/// let text = jobs_schedule::format_duration(Duration::from_secs(90));
/// assert_eq!(text, "1m 30s");
/// assert_eq!(jobs_schedule::parse_duration(&text).unwrap(), Duration::from_secs(90));
/// ```
pub fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}
