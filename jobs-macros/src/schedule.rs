//! Compile-time checks of durations, cron expressions and time zones, with
//! the parsers the runtime uses (`humantime`, `croner`, `chrono-tz`), so an
//! attribute that compiles never fails to schedule at start-up.
//!
//! The cron check and its messages mirror `Schedule::cron` in
//! `jobs/src/schedule.rs`: this crate cannot call it (`jobs` depends on
//! this crate), so a change to one belongs in the other; the `bad-cron` UI
//! case and `tests/schedule.rs` pin both messages.

use std::time::Duration;

use croner::parser::{CronParser, Seconds, Year};

/// Parses `"250ms"`, `"30s"`, `"5m"`, `"1h 30m"`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!(
            "invalid duration `{text}`: {e}; write a number and a unit, such as \"250ms\", \"30s\", \"5m\" or \"1h\""
        )
    })
}

/// The fields of a 5-field expression, with their allowed values (as in
/// `jobs::Schedule`).
const FIELDS_5: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, L, W"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT, #, L"),
];

/// Checks a cron expression the way `jobs::Schedule::cron` parses it (5
/// fields, or 6 with seconds first); the error names the offending field.
pub(crate) fn check_cron(expression: &str) -> Result<(), String> {
    let trimmed = expression.trim();
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    if !trimmed.starts_with('@') && !matches!(fields.len(), 5 | 6) {
        return Err(format!(
            "invalid cron expression `{expression}`: expected 5 fields (minute hour day-of-month \
             month day-of-week) or 6 (second minute hour day-of-month month day-of-week), found {}",
            fields.len()
        ));
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build();
    let Err(error) = parser.parse(trimmed) else {
        return Ok(());
    };
    // Find the field that is wrong on its own, to name it.
    for (i, field) in fields.iter().enumerate() {
        let alone: Vec<&str> = (0..fields.len())
            .map(|j| if i == j { *field } else { "*" })
            .collect();
        if let Err(field_error) = parser.parse(&alone.join(" ")) {
            let (name, allowed) = if fields.len() == 6 {
                if i == 0 {
                    ("second", "0-59")
                } else {
                    FIELDS_5[i - 1]
                }
            } else {
                FIELDS_5[i]
            };
            return Err(format!(
                "invalid cron expression `{expression}`: {name} field `{field}` (allowed: {allowed}): {}",
                croner_message(&field_error)
            ));
        }
    }
    Err(format!(
        "invalid cron expression `{expression}`: {}",
        croner_message(&error)
    ))
}

fn croner_message(e: &croner::errors::CronError) -> String {
    use croner::errors::CronError;
    let message = match e {
        CronError::InvalidPattern(m) | CronError::ComponentError(m) => m.clone(),
        CronError::IllegalCharacters(m) => format!("illegal characters: {m}"),
        other => other.to_string(),
    };
    // croner writes sentences ("Number out of bounds."); rustc's style is
    // lower case without a final period.
    let message = message.trim().trim_end_matches('.');
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Checks an IANA time zone name.
pub(crate) fn check_timezone(name: &str) -> Result<(), String> {
    match name.parse::<chrono_tz::Tz>() {
        Ok(_) if name.trim() == name => Ok(()),
        _ => Err(format!(
            "unknown time zone `{name}`; write an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\""
        )),
    }
}
