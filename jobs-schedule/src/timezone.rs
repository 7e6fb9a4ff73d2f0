//! IANA time zone names.

use chrono_tz::Tz;

use crate::error::{Error, ErrorKind};

/// Parses an IANA time zone name (`"Europe/Berlin"`, `"America/New_York"`,
/// `"UTC"`), ignoring surrounding whitespace. Names are case-sensitive, as
/// in the tz database.
///
/// ```
/// let tz = jobs_schedule::parse_timezone("America/New_York").unwrap();
/// assert_eq!(tz.name(), "America/New_York");
/// let e = jobs_schedule::parse_timezone("Mars/Olympus").unwrap_err();
/// assert_eq!(
///     e.to_string(),
///     "unknown time zone `Mars/Olympus`; write an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\""
/// );
/// ```
pub fn parse_timezone(name: &str) -> Result<Tz, Error> {
    name.trim().parse::<Tz>().map_err(|_| {
        Error::new(
            ErrorKind::TimeZone,
            name,
            "write an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\"",
        )
    })
}
