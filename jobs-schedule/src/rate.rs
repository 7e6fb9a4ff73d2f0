//! Rates (`"100/min"`, `"10/s"`, `"5/30s"`): at most N per period, for rate
//! limits.

use std::time::Duration;

use crate::duration::parse_duration;
use crate::error::{Error, ErrorKind};

/// Parses a rate: a positive count, a slash, and a period — a unit alone
/// (`s`, `sec`, `second`, `m`, `min`, `minute`, `h`, `hour`, `d`, `day`, and
/// their plurals) or a duration as [`parse_duration`] reads it (`30s`,
/// `1h 30m`). Returns the count and the period.
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(jobs_schedule::parse_rate("100/min").unwrap(), (100, Duration::from_secs(60)));
/// assert_eq!(jobs_schedule::parse_rate("5 / 30s").unwrap(), (5, Duration::from_secs(30)));
/// let e = jobs_schedule::parse_rate("100/fortnight").unwrap_err();
/// assert_eq!(
///     e.to_string(),
///     "invalid rate `100/fortnight`: unknown period `fortnight`; write a unit (s, min, h, day) or a duration such as \"30s\""
/// );
/// assert_eq!(
///     jobs_schedule::parse_rate("0/s").unwrap_err().message(),
///     "the count must be at least 1"
/// );
/// ```
pub fn parse_rate(text: &str) -> Result<(u32, Duration), Error> {
    let err = |message: String| Error::new(ErrorKind::Rate, text, message);
    let Some((count, period)) = text.split_once('/') else {
        return Err(err(
            "write a count and a period, such as \"100/min\" or \"10/s\"".into(),
        ));
    };
    let (count, period) = (count.trim(), period.trim());
    let count: u32 = count.parse().map_err(|_| {
        err(format!(
            "`{count}` is not a count (a whole number up to {})",
            u32::MAX
        ))
    })?;
    if count == 0 {
        return Err(err("the count must be at least 1".into()));
    }
    let period = match period {
        "s" | "sec" | "secs" | "second" | "seconds" => Duration::from_secs(1),
        "m" | "min" | "mins" | "minute" | "minutes" => Duration::from_secs(60),
        "h" | "hr" | "hour" | "hours" => Duration::from_secs(3600),
        "d" | "day" | "days" => Duration::from_secs(86_400),
        other if other.starts_with(|c: char| c.is_ascii_digit()) => {
            parse_duration(other).map_err(|e| err(format!("the period {}", e.message())))?
        }
        other => {
            return Err(err(format!(
                "unknown period `{other}`; write a unit (s, min, h, day) or a duration such as \"30s\""
            )));
        }
    };
    if period < Duration::from_millis(1) {
        return Err(err("the period must be at least 1ms".into()));
    }
    Ok((count, period))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_durations() {
        assert_eq!(parse_rate("10/s").unwrap(), (10, Duration::from_secs(1)));
        assert_eq!(
            parse_rate("1/hour").unwrap(),
            (1, Duration::from_secs(3600))
        );
        assert_eq!(
            parse_rate("2/1h 30m").unwrap(),
            (2, Duration::from_secs(5400))
        );
        assert_eq!(
            parse_rate("3/250ms").unwrap(),
            (3, Duration::from_millis(250))
        );
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            "100",
            "/s",
            "x/s",
            "-1/s",
            "0/s",
            "1/0s",
            "1/fortnight",
            "1/",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad} was accepted");
        }
    }
}
