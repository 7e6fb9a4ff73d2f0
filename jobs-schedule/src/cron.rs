//! Cron expressions: 5 fields, or 6 with seconds first, parsed by `croner`,
//! and checked to fire at all.

use croner::Cron;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};
use croner::time::{Weekday, days_in_month};

use crate::error::{Error, ErrorKind};

/// The fields of a 5-field expression, with their allowed values.
const FIELDS_5: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, L, W"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT, #, L"),
];

/// The field a 6-field expression has first.
const SECOND: (&str, &str) = ("second", "0-59");

/// What every never-firing expression is told.
const NEVER: &str = "no date matches it, so it would never run";

/// Parses a cron expression: 5 fields (`minute hour day-of-month month
/// day-of-week`), 6 with seconds first, or a nickname (`@hourly`, `@daily`,
/// `@weekly`, `@monthly`, `@yearly`). Surrounding whitespace is ignored.
///
/// The syntax is `croner`'s: lists (`1,15`), ranges (`1-5`), steps (`*/10`),
/// names (`MON`, `JAN`), `L`, `#`, `W`, and `+` before the day of week to
/// require both days to match. An expression that parses but that no date
/// ever matches (`0 0 30 2 *`, 30 February; `0 0 31 4 *`) is an error too:
/// every date of a 400-year Gregorian cycle, after which the calendar and
/// its weekdays repeat, is checked against it.
///
/// The error names the field that is wrong, where one is wrong on its own:
///
/// ```
/// assert!(jobs_schedule::parse_cron("30 0 2 * * *").is_ok()); // 02:00:30 daily
/// assert!(jobs_schedule::parse_cron("0 0 29 2 *").is_ok()); // leap days
/// let e = jobs_schedule::parse_cron("0 0 2 * * FUNDAY").unwrap_err();
/// assert!(e.message().starts_with("day-of-week field `FUNDAY`"), "{e}");
/// let e = jobs_schedule::parse_cron("0 0 31 4,6 *").unwrap_err();
/// assert!(e.message().starts_with("no date matches it"), "{e}");
/// ```
pub fn parse_cron(expression: &str) -> Result<Cron, Error> {
    let invalid = |message: String| Error::new(ErrorKind::Cron, expression, message);
    let trimmed = expression.trim();
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    if !trimmed.starts_with('@') && !matches!(fields.len(), 5 | 6) {
        return Err(invalid(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second minute \
             hour day-of-month month day-of-week), found {}",
            fields.len()
        )));
    }
    let parser = parser();
    let cron = parser.parse(trimmed).map_err(|e| {
        invalid(field_error(&parser, &fields).unwrap_or_else(|| croner_message(&e)))
    })?;
    if !fires(&cron) {
        return Err(invalid(never_fires(&parser, &fields)));
    }
    Ok(cron)
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// The name and allowed values of field `i` of an expression of `len`
/// fields.
fn field(len: usize, i: usize) -> (&'static str, &'static str) {
    match (len, i) {
        (6, 0) => SECOND,
        (6, i) => FIELDS_5[i - 1],
        (_, i) => FIELDS_5[i],
    }
}

/// The first field that is wrong on its own (the others replaced by `*`),
/// described.
fn field_error(parser: &CronParser, fields: &[&str]) -> Option<String> {
    fields.iter().enumerate().find_map(|(i, text)| {
        let alone: Vec<&str> = (0..fields.len())
            .map(|j| if i == j { *text } else { "*" })
            .collect();
        let error = parser.parse(&alone.join(" ")).err()?;
        let (name, allowed) = field(fields.len(), i);
        Some(format!(
            "{name} field `{text}` (allowed: {allowed}): {}",
            croner_message(&error)
        ))
    })
}

/// croner writes sentences ("Number out of bounds."); the messages here are
/// in rustc's style, lower case without a final period.
fn croner_message(e: &CronError) -> String {
    let message = match e {
        CronError::InvalidPattern(m) | CronError::ComponentError(m) => m.clone(),
        CronError::IllegalCharacters(m) => format!("illegal characters: {m}"),
        other => other.to_string(),
    };
    let message = message.trim().trim_end_matches('.');
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Whether any instant matches: some time of day (every parsed time field
/// has a value) on some date of the years 2000-2399. The Gregorian calendar
/// repeats every 400 years, weekdays included (146,097 days are 20,871
/// weeks), so a date pattern that matches no day of one cycle matches none
/// ever. croner's own search would give up only at its year limit (5000).
fn fires(cron: &Cron) -> bool {
    let pattern = &cron.pattern;
    let time = (0..24).any(|h| matches!(pattern.hour_match(h), Ok(true)))
        && (0..60).any(|m| matches!(pattern.minute_match(m), Ok(true)))
        && (0..60).any(|s| matches!(pattern.second_match(s), Ok(true)));
    if !time {
        return false;
    }
    // 2000-01-01 was a Saturday.
    let mut first_of_month = Weekday::Saturday;
    for year in 2000..2400 {
        for month in 1..=12 {
            let length = days_in_month(year, month);
            if matches!(pattern.month_match(month), Ok(true)) {
                let matches = (1..=length).any(|day| {
                    let weekday = first_of_month.shift(day as i32 - 1);
                    matches!(pattern.day_match(year, month, day, weekday), Ok(true))
                });
                if matches {
                    return true;
                }
            }
            first_of_month = first_of_month.shift(length as i32);
        }
    }
    false
}

/// Why an expression that parses never fires: a day of month that the
/// months do not have, or days of month and week that never meet.
fn never_fires(parser: &CronParser, fields: &[&str]) -> String {
    let Some(offset) = fields.len().checked_sub(5) else {
        return NEVER.to_owned();
    };
    let (day, month, weekday) = (fields[offset + 2], fields[offset + 3], fields[offset + 4]);
    let mut any_weekday = fields.to_vec();
    any_weekday[offset + 4] = "*";
    match parser.parse(&any_weekday.join(" ")) {
        Ok(cron) if !fires(&cron) => {
            format!("{NEVER}: day-of-month `{day}` does not occur in month `{month}`")
        }
        Ok(_) if day != "*" => format!(
            "{NEVER}: day-of-month `{day}` and day-of-week `{weekday}` never fall on the same date"
        ),
        _ => NEVER.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(expression: &str) -> String {
        parse_cron(expression).unwrap_err().message().to_owned()
    }

    #[test]
    fn never_firing_expressions_are_errors() {
        assert_eq!(
            message("0 0 30 2 *"),
            "no date matches it, so it would never run: day-of-month `30` does not occur in month `2`"
        );
        assert_eq!(
            message("0 0 0 31 4 *"),
            "no date matches it, so it would never run: day-of-month `31` does not occur in month `4`"
        );
        assert!(message("0 0 31 2,4,6,9,11 *").contains("does not occur"));
        assert!(message("0 0 30,31 FEB *").contains("does not occur"));
        // `+`: both days must match, and the 1st is never a fifth Friday.
        assert_eq!(
            message("0 0 1 * +FRI#5"),
            "no date matches it, so it would never run: day-of-month `1` and day-of-week `+FRI#5` never fall on the same date"
        );
    }

    #[test]
    fn rare_expressions_fire() {
        for expression in [
            "0 0 29 2 *",    // leap days
            "0 0 29 2 +MON", // a leap day on a Monday: 2016, 2044, ..
            "0 0 * 2 FRI#5", // a fifth Friday in February: 2008, 2036, ..
            "0 0 31 * *",    // seven months
            "0 0 30 2 MON",  // either day: every Monday in February
            "0 0 L 2 *",     // the last day of February
            "0 0 LW * *",    // the last weekday of the month
            "0 0 15W 2 *",   // the weekday nearest the 15th
            "@yearly",
            "@hourly",
        ] {
            assert!(parse_cron(expression).is_ok(), "{expression}");
        }
    }

    #[test]
    fn the_field_at_fault_is_named() {
        assert_eq!(
            message("61 * * * * *"),
            "second field `61` (allowed: 0-59): number out of bounds"
        );
        assert_eq!(
            message("0 25 * * *"),
            "hour field `25` (allowed: 0-23): number out of bounds"
        );
        assert!(message("0 0 1 1 * 2030").starts_with("day-of-week field `2030`"));
        assert!(message("* * *").ends_with("found 3"));
        assert!(message("").ends_with("found 0"));
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert!(parse_cron("  0 2 * * *\n").is_ok());
        let e = parse_cron(" 0 25 * * * ").unwrap_err();
        assert_eq!(e.input(), " 0 25 * * * ");
    }
}
