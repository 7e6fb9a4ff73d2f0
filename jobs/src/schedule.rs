//! [`Schedule`]: when a periodic task runs, and [`ScheduleSpec`], the
//! constant form a `#[job]` attribute declares one in.
//!
//! The text of a schedule (cron expressions, durations, time zones) is
//! parsed by the `jobs-schedule` crate, which the `#[job]` attribute uses
//! at compile time too: an attribute compiles exactly when [`Schedule`]
//! accepts its schedule, and a rejected one has the same message in both.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use jobs_schedule::{Cron, ErrorKind, Tz};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A day of the week, for [`Schedule::weekly_on`] (chrono's `Weekday`).
pub use chrono::Weekday;

/// A periodic schedule declared on the `#[job]` attribute (`cron = ".."`,
/// with `timezone = ".."`, or `every = ".."`), as the constant the
/// attribute registers in its (hidden) registration record.
/// The attribute has checked it at compile time; [`Schedule::from_spec`]
/// turns it into a [`Schedule`].
#[derive(Clone, Copy, Debug)]
pub enum ScheduleSpec {
    /// A cron expression, in UTC or the named time zone.
    Cron {
        /// The expression, 5 or 6 fields.
        expression: &'static str,
        /// An IANA time zone name, or `None` for UTC.
        timezone: Option<&'static str>,
    },
    /// A fixed interval.
    Every(Duration),
}

/// How many occurrences [`Schedule::due_between`] walks one by one before it
/// jumps straight to the latest one.
const MAX_WALK: u64 = 1024;

/// When a periodic task runs: a fixed interval, or a cron expression in UTC
/// or in a named time zone.
///
/// # Intervals
///
/// [`Schedule::every`] (and [`every_minutes`](Schedule::every_minutes),
/// [`every_hours`](Schedule::every_hours), [`every_days`](Schedule::every_days))
/// fire at whole multiples of the interval counted from the Unix epoch
/// (1970-01-01 00:00 UTC): every 5 minutes means at :00, :05, :10, … of each
/// hour, and every day means at midnight UTC. Anchoring to a fixed point, not
/// to when a process started, is what lets every process compute the same
/// occurrences, so a task is enqueued once per occurrence however many
/// workers run it (see [`JobScheduler`](crate::JobScheduler)).
///
/// # Cron expressions
///
/// [`Schedule::cron`] takes 5 fields (`minute hour day-of-month month
/// day-of-week`) or 6 with seconds first, parsed by the `croner` crate: lists
/// (`1,15`), ranges (`1-5`), steps (`*/10`, `10-50/10`), names (`MON`,
/// `JAN`), `L` (last day of the month, or `5#L` the last Friday), `#` (`1#2`,
/// the second Monday), `W` (nearest weekday) and the nicknames `@hourly`,
/// `@daily`, `@weekly`, `@monthly`, `@yearly`. As in classic cron, a
/// restricted day-of-month and day-of-week match when *either* does; prefix
/// the day of week with `+` (`0 0 1 * +MON`) to require both.
///
/// A cron schedule runs in UTC unless given a time zone
/// ([`in_timezone`](Schedule::in_timezone), [`cron_tz`](Schedule::cron_tz)),
/// and then follows that zone's daylight-saving changes: a time that does not
/// exist on the day the clocks go forward (02:30 in Europe/Berlin) runs at the
/// first instant after the gap (03:00), and a time that happens twice on the
/// day they go back runs once, the first time. Schedules that fire every
/// few minutes or hours keep firing through both halves of a repeated hour,
/// as real time passes.
///
/// # The common schedules
///
/// [`hourly`](Schedule::hourly), [`daily_at`](Schedule::daily_at),
/// [`weekly_on`](Schedule::weekly_on), [`monthly_on`](Schedule::monthly_on)
/// and [`monthly_on_last_day`](Schedule::monthly_on_last_day) are cron
/// expressions, so they display as one and take a time zone.
///
/// # Text form
///
/// A schedule displays, serializes and parses ([`FromStr`]) as `every 5m`,
/// as its cron expression (`0 2 * * *`), or, with a time zone, as
/// `CRON_TZ=Europe/Berlin 30 2 * * *`.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use jobs::Schedule;
///
/// # fn main() -> Result<(), jobs::Error> {
/// let backup = Schedule::daily_at(3, 0)?;
/// let t = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
/// assert_eq!(backup.next_after(t), Some(Utc.with_ymd_and_hms(2024, 5, 2, 3, 0, 0).unwrap()));
/// assert_eq!(backup.to_string(), "0 3 * * *");
///
/// let health = Schedule::every_minutes(5)?;
/// let next: Vec<_> = health.upcoming(t, 2).iter().map(|t| t.format("%H:%M").to_string()).collect();
/// assert_eq!(next, ["12:05", "12:10"]);
///
/// let berlin: Schedule = "CRON_TZ=Europe/Berlin 30 2 * * *".parse()?;
/// assert_eq!(berlin.timezone(), Some("Europe/Berlin"));
/// assert!(Schedule::cron("0 25 * * *").is_err());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Schedule {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Every(Duration),
    Cron(Box<CronSchedule>),
}

#[derive(Clone)]
struct CronSchedule {
    expression: String,
    cron: Cron,
    timezone: Option<Tz>,
}

fn invalid(schedule: impl Into<String>, message: impl Into<String>) -> Error {
    Error::InvalidSchedule {
        schedule: schedule.into(),
        message: message.into(),
    }
}

/// A schedule's text that `jobs-schedule` rejected, as [`Error::InvalidSchedule`]
/// on `schedule`. Where `schedule` is the rejected text itself (a cron
/// expression, an interval), the message does not repeat it; where the text
/// is a part of it (a time zone, the duration of `every ..`), it names it.
fn rejected(schedule: impl Into<String>, e: jobs_schedule::Error) -> Error {
    let message = match e.kind() {
        ErrorKind::Cron | ErrorKind::Interval => e.message().to_owned(),
        _ => e.to_string(),
    };
    invalid(schedule, message)
}

fn check_hm(schedule: &str, hour: u32, minute: u32) -> Result<()> {
    if hour > 23 {
        return Err(invalid(
            schedule,
            format!("hour {hour} is out of range (0-23)"),
        ));
    }
    if minute > 59 {
        return Err(invalid(
            schedule,
            format!("minute {minute} is out of range (0-59)"),
        ));
    }
    Ok(())
}

fn nanos(t: DateTime<Utc>) -> i128 {
    i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos())
}

fn from_nanos(n: i128) -> Option<DateTime<Utc>> {
    let secs = i64::try_from(n.div_euclid(1_000_000_000)).ok()?;
    let sub = u32::try_from(n.rem_euclid(1_000_000_000)).ok()?;
    DateTime::from_timestamp(secs, sub)
}

impl Schedule {
    /// Every `interval`, at whole multiples of it counted from the Unix epoch
    /// (so every process agrees on the occurrences). A zero interval is an
    /// error.
    ///
    /// ```
    /// use std::time::Duration;
    /// use jobs::Schedule;
    ///
    /// let s = Schedule::every(Duration::from_secs(90)).unwrap();
    /// assert_eq!(s.to_string(), "every 1m 30s");
    /// assert!(Schedule::every(Duration::ZERO).is_err());
    /// ```
    pub fn every(interval: Duration) -> Result<Schedule> {
        let interval = jobs_schedule::check_interval(interval)
            .map_err(|e| rejected(format!("every {}", e.input()), e))?;
        Ok(Schedule {
            kind: Kind::Every(interval),
        })
    }

    /// Every `n` minutes (at :00, :05, … for `n = 5`). Zero is an error.
    pub fn every_minutes(n: u32) -> Result<Schedule> {
        Schedule::every(Duration::from_secs(u64::from(n) * 60))
    }

    /// Every `n` hours, counted from midnight UTC. Zero is an error.
    pub fn every_hours(n: u32) -> Result<Schedule> {
        Schedule::every(Duration::from_secs(u64::from(n) * 3600))
    }

    /// Every `n` days at midnight UTC, counted from 1970-01-01 (for a daily
    /// run at a local time, use [`daily_at`](Schedule::daily_at) with a time
    /// zone). Zero is an error.
    pub fn every_days(n: u32) -> Result<Schedule> {
        Schedule::every(Duration::from_secs(u64::from(n) * 86_400))
    }

    /// A cron expression, 5 fields or 6 with seconds first, in UTC. An
    /// expression that does not parse, or that no date ever matches
    /// (`0 0 30 2 *`, 30 February), is an error naming it and, where it
    /// can, the field; its message is the one a `#[job(cron = "..")]`
    /// attribute with that expression fails to compile with.
    ///
    /// ```
    /// use jobs::Schedule;
    ///
    /// assert!(Schedule::cron("*/15 9-17 * * MON-FRI").is_ok());
    /// assert!(Schedule::cron("30 0 2 * * *").is_ok()); // 02:00:30 daily
    /// let err = Schedule::cron("0 25 * * *").unwrap_err().to_string();
    /// assert!(err.contains("`0 25 * * *`") && err.contains("hour"), "{err}");
    /// ```
    pub fn cron(expression: &str) -> Result<Schedule> {
        let cron = jobs_schedule::parse_cron(expression).map_err(|e| rejected(expression, e))?;
        Ok(Schedule {
            kind: Kind::Cron(Box::new(CronSchedule {
                expression: expression.trim().to_owned(),
                cron,
                timezone: None,
            })),
        })
    }

    /// A cron expression in an IANA time zone (`"Europe/Berlin"`).
    ///
    /// ```
    /// use jobs::Schedule;
    ///
    /// let s = Schedule::cron_tz("0 9 * * *", "America/New_York").unwrap();
    /// assert_eq!(s.to_string(), "CRON_TZ=America/New_York 0 9 * * *");
    /// assert!(Schedule::cron_tz("0 9 * * *", "Mars/Olympus").is_err());
    /// ```
    pub fn cron_tz(expression: &str, timezone: &str) -> Result<Schedule> {
        Schedule::cron(expression)?.in_timezone(timezone)
    }

    /// This cron schedule in an IANA time zone (`"Europe/Berlin"`, `"UTC"`).
    /// An unknown zone is an error, and so is an interval schedule, which
    /// runs at fixed intervals whatever the local time.
    ///
    /// ```
    /// use jobs::Schedule;
    ///
    /// let s = Schedule::daily_at(2, 30).unwrap().in_timezone("Europe/Berlin").unwrap();
    /// assert_eq!(s.timezone(), Some("Europe/Berlin"));
    /// assert!(Schedule::every_days(1).unwrap().in_timezone("Europe/Berlin").is_err());
    /// ```
    pub fn in_timezone(self, timezone: &str) -> Result<Schedule> {
        match self.kind {
            Kind::Every(_) => Err(invalid(
                self.to_string(),
                "an interval schedule runs at fixed intervals and has no time zone; use a cron \
                 schedule such as `Schedule::daily_at(h, m)?.in_timezone(..)`",
            )),
            Kind::Cron(mut cron) => {
                let tz = jobs_schedule::parse_timezone(timezone)
                    .map_err(|e| rejected(&cron.expression, e))?;
                cron.timezone = Some(tz);
                Ok(Schedule {
                    kind: Kind::Cron(cron),
                })
            }
        }
    }

    /// At the start of every hour (`0 * * * *`).
    pub fn hourly() -> Schedule {
        Schedule::cron("0 * * * *").expect("a valid expression")
    }

    /// Every day at `hour:minute` (`minute hour * * *`).
    pub fn daily_at(hour: u32, minute: u32) -> Result<Schedule> {
        let expression = format!("{minute} {hour} * * *");
        check_hm(&expression, hour, minute)?;
        Schedule::cron(&expression)
    }

    /// Every week on `day` at `hour:minute` (`minute hour * * day`).
    ///
    /// ```
    /// use jobs::{Schedule, Weekday};
    ///
    /// let s = Schedule::weekly_on(Weekday::Mon, 8, 0).unwrap();
    /// assert_eq!(s.to_string(), "0 8 * * 1");
    /// ```
    pub fn weekly_on(day: Weekday, hour: u32, minute: u32) -> Result<Schedule> {
        let expression = format!("{minute} {hour} * * {}", day.num_days_from_sunday());
        check_hm(&expression, hour, minute)?;
        Schedule::cron(&expression)
    }

    /// Every month on day `day` (1-31) at `hour:minute` (`minute hour day * *`).
    ///
    /// As in cron, a month without that day is skipped: `monthly_on(31, ..)`
    /// runs in the seven months that have a 31st, and `monthly_on(29, ..)`
    /// skips February except in leap years. For the last day of every month
    /// use [`monthly_on_last_day`](Schedule::monthly_on_last_day).
    pub fn monthly_on(day: u32, hour: u32, minute: u32) -> Result<Schedule> {
        let expression = format!("{minute} {hour} {day} * *");
        if !(1..=31).contains(&day) {
            return Err(invalid(
                expression,
                format!("day of month {day} is out of range (1-31)"),
            ));
        }
        check_hm(&expression, hour, minute)?;
        Schedule::cron(&expression)
    }

    /// Every month on its last day at `hour:minute` (`minute hour L * *`).
    pub fn monthly_on_last_day(hour: u32, minute: u32) -> Result<Schedule> {
        let expression = format!("{minute} {hour} L * *");
        check_hm(&expression, hour, minute)?;
        Schedule::cron(&expression)
    }

    /// The schedule a `#[job(cron = "..", timezone = "..")]` or
    /// `#[job(every = "..")]` attribute declared. Hidden, like
    /// `ScheduleSpec`: for the registry and tests of generated code.
    #[doc(hidden)]
    pub fn from_spec(spec: &ScheduleSpec) -> Result<Schedule> {
        match *spec {
            ScheduleSpec::Cron {
                expression,
                timezone: None,
            } => Schedule::cron(expression),
            ScheduleSpec::Cron {
                expression,
                timezone: Some(timezone),
            } => Schedule::cron_tz(expression, timezone),
            ScheduleSpec::Every(interval) => Schedule::every(interval),
        }
    }

    /// The first occurrence strictly after `t`, or `None` if there is none
    /// (only past year 9999).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Every(interval) => {
                let step = interval.as_nanos() as i128;
                from_nanos((nanos(t).div_euclid(step) + 1) * step)
            }
            Kind::Cron(cron) => cron.find(t, false),
        }
    }

    /// The next `n` occurrences after `after`.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use jobs::Schedule;
    ///
    /// let t = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    /// let hours: Vec<u32> = Schedule::hourly().upcoming(t, 3).iter()
    ///     .map(|t| chrono::Timelike::hour(t)).collect();
    /// assert_eq!(hours, [1, 2, 3]);
    /// ```
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut t = after;
        while out.len() < n {
            match self.next_after(t) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }

    /// The latest occurrence at or before `t`.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Every(interval) => {
                let step = interval.as_nanos() as i128;
                from_nanos(nanos(t).div_euclid(step) * step)
            }
            Kind::Cron(cron) => cron.find(t, true),
        }
    }

    /// The occurrences from `first` (an occurrence) up to `now`: the latest
    /// of them and how many there are (counted exactly up to 1024, at least
    /// that many beyond).
    pub(crate) fn due_between(
        &self,
        first: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> (DateTime<Utc>, u64) {
        if first > now {
            return (first, 0);
        }
        match &self.kind {
            Kind::Every(interval) => {
                let step = interval.as_nanos() as i128;
                let latest = nanos(now).div_euclid(step) * step;
                let count = (latest - nanos(first)).div_euclid(step) + 1;
                let latest = from_nanos(latest).unwrap_or(first);
                (latest, u64::try_from(count.max(1)).unwrap_or(u64::MAX))
            }
            Kind::Cron(_) => {
                let mut latest = first;
                let mut count = 1;
                while let Some(next) = self.next_after(latest) {
                    if next > now {
                        break;
                    }
                    if count >= MAX_WALK {
                        latest = self
                            .latest_at_or_before(now)
                            .filter(|l| *l >= latest)
                            .unwrap_or(next);
                        break;
                    }
                    latest = next;
                    count += 1;
                }
                (latest, count)
            }
        }
    }

    /// The interval of an interval schedule.
    pub fn interval(&self) -> Option<Duration> {
        match &self.kind {
            Kind::Every(interval) => Some(*interval),
            Kind::Cron(_) => None,
        }
    }

    /// The cron expression of a cron schedule, as written.
    pub fn expression(&self) -> Option<&str> {
        match &self.kind {
            Kind::Every(_) => None,
            Kind::Cron(cron) => Some(&cron.expression),
        }
    }

    /// The time zone of a cron schedule given one (`None` means UTC).
    pub fn timezone(&self) -> Option<&'static str> {
        match &self.kind {
            Kind::Cron(cron) => cron.timezone.map(|tz| tz.name()),
            Kind::Every(_) => None,
        }
    }
}

impl CronSchedule {
    /// The first match after `t` (`inclusive`: the latest at or before it).
    fn find(&self, t: DateTime<Utc>, backwards_inclusive: bool) -> Option<DateTime<Utc>> {
        // Cron works in whole seconds: drop the fraction so that "strictly
        // after 01:59:59.5" finds 02:00:00, and results never carry one.
        let t = t.with_nanosecond(0)?;
        let find = |cron: &Cron| -> Option<DateTime<Utc>> {
            match self.timezone {
                None if backwards_inclusive => cron.find_previous_occurrence(&t, true).ok(),
                None => cron.find_next_occurrence(&t, false).ok(),
                Some(tz) => {
                    let local = t.with_timezone(&tz);
                    let found = if backwards_inclusive {
                        cron.find_previous_occurrence(&local, true)
                    } else {
                        cron.find_next_occurrence(&local, false)
                    };
                    found.ok().map(|d| d.with_timezone(&Utc))
                }
            }
        };
        find(&self.cron)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Every(interval) => {
                write!(f, "every {}", jobs_schedule::format_duration(*interval))
            }
            Kind::Cron(cron) => match cron.timezone {
                Some(tz) => write!(f, "CRON_TZ={} {}", tz.name(), cron.expression),
                None => f.write_str(&cron.expression),
            },
        }
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schedule").field(&self.to_string()).finish()
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        match (&self.kind, &other.kind) {
            (Kind::Every(a), Kind::Every(b)) => a == b,
            (Kind::Cron(a), Kind::Cron(b)) => {
                a.expression == b.expression && a.timezone == b.timezone
            }
            _ => false,
        }
    }
}

impl Eq for Schedule {}

impl Hash for Schedule {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match &self.kind {
            Kind::Every(interval) => interval.hash(state),
            Kind::Cron(cron) => {
                cron.expression.hash(state);
                cron.timezone.map(|tz| tz.name()).hash(state);
            }
        }
    }
}

impl FromStr for Schedule {
    type Err = Error;

    /// Parses `every 5m` (any duration `humantime` reads: `90s`, `1h 30m`,
    /// `2days`), a cron expression, or `CRON_TZ=Zone/Name <cron expression>`.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("every ") {
            let interval = jobs_schedule::parse_interval(rest).map_err(|e| rejected(s, e))?;
            return Schedule::every(interval);
        }
        let zoned = s.strip_prefix("CRON_TZ=").or_else(|| s.strip_prefix("TZ="));
        if let Some(rest) = zoned {
            let Some((timezone, expression)) = rest.split_once(char::is_whitespace) else {
                return Err(invalid(
                    s,
                    "expected `CRON_TZ=Zone/Name` followed by a cron expression",
                ));
            };
            let tz = jobs_schedule::parse_timezone(timezone).map_err(|e| rejected(s, e))?;
            return Schedule::cron(expression)?.in_timezone(tz.name());
        }
        Schedule::cron(s)
    }
}

impl TryFrom<&ScheduleSpec> for Schedule {
    type Error = Error;

    fn try_from(spec: &ScheduleSpec) -> Result<Self> {
        Schedule::from_spec(spec)
    }
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn every_is_aligned_to_the_epoch() {
        let s = Schedule::every_minutes(5).unwrap();
        assert_eq!(
            s.next_after(utc(2024, 1, 1, 10, 3, 17)),
            Some(utc(2024, 1, 1, 10, 5, 0))
        );
        // Strictly after an occurrence.
        assert_eq!(
            s.next_after(utc(2024, 1, 1, 10, 5, 0)),
            Some(utc(2024, 1, 1, 10, 10, 0))
        );
        assert_eq!(
            s.latest_at_or_before(utc(2024, 1, 1, 10, 5, 0)),
            Some(utc(2024, 1, 1, 10, 5, 0))
        );
    }

    #[test]
    fn due_between_counts_and_finds_the_latest() {
        let s = Schedule::every_minutes(5).unwrap();
        let (latest, count) = s.due_between(utc(2024, 1, 1, 10, 5, 0), utc(2024, 1, 1, 10, 27, 0));
        assert_eq!((latest, count), (utc(2024, 1, 1, 10, 25, 0), 5));
        let c = Schedule::cron("*/5 * * * *").unwrap();
        let (latest, count) = c.due_between(utc(2024, 1, 1, 10, 5, 0), utc(2024, 1, 1, 10, 27, 0));
        assert_eq!((latest, count), (utc(2024, 1, 1, 10, 25, 0), 5));
        // Past the walking limit it jumps to the latest.
        let s = Schedule::cron("* * * * * *").unwrap();
        let (latest, count) = s.due_between(utc(2024, 1, 1, 0, 0, 0), utc(2024, 1, 1, 5, 0, 0));
        assert_eq!(latest, utc(2024, 1, 1, 5, 0, 0));
        assert_eq!(count, MAX_WALK);
    }

    #[test]
    fn sub_second_inputs_are_handled() {
        let s = Schedule::cron("0 2 * * *").unwrap();
        let t = utc(2024, 1, 1, 1, 59, 59) + chrono::Duration::milliseconds(900);
        assert_eq!(s.next_after(t), Some(utc(2024, 1, 1, 2, 0, 0)));
        let t = utc(2024, 1, 1, 2, 0, 0) + chrono::Duration::milliseconds(1);
        assert_eq!(s.next_after(t), Some(utc(2024, 1, 2, 2, 0, 0)));
    }

    /// The attribute `#[job(cron = "0 0 30 2 *")]` fails to compile with
    /// `jobs_schedule::parse_cron`'s error (the `cron-never-fires` UI
    /// case); the runtime refuses the same expression with the same
    /// message.
    #[test]
    fn never_matching_expression_is_an_error() {
        for expression in ["0 0 30 2 *", "0 0 31 4 *", "0 0 0 30 FEB *"] {
            let shared = jobs_schedule::parse_cron(expression).unwrap_err();
            let err = Schedule::cron(expression).unwrap_err();
            let Error::InvalidSchedule { schedule, message } = &err else {
                panic!("{err:?}");
            };
            assert_eq!(
                (schedule.as_str(), message.as_str()),
                (expression, shared.message())
            );
            assert_eq!(
                err.to_string(),
                format!("invalid schedule `{expression}`: {}", shared.message())
            );
            assert!(message.starts_with("no date matches it"), "{message}");
        }
        assert_eq!(
            jobs_schedule::parse_cron("0 0 30 2 *")
                .unwrap_err()
                .to_string(),
            "invalid cron expression `0 0 30 2 *`: no date matches it, so it would never run: \
             day-of-month `30` does not occur in month `2`"
        );
        // And the rare but real ones stay schedules.
        assert!(Schedule::cron("0 0 29 2 *").is_ok());
        assert!(Schedule::cron_tz("0 0 29 2 +MON", "Europe/Berlin").is_ok());
    }

    /// Every other rejection also carries the shared message.
    #[test]
    fn errors_carry_the_shared_messages() {
        let message = |result: Result<Schedule>| match result {
            Err(Error::InvalidSchedule { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        let shared = jobs_schedule::parse_cron("0 61 * * *").unwrap_err();
        assert_eq!(message(Schedule::cron("0 61 * * *")), shared.message());
        let shared = jobs_schedule::parse_timezone("Europe/Atlantis").unwrap_err();
        assert_eq!(
            message(Schedule::cron_tz("0 2 * * *", "Europe/Atlantis")),
            shared.to_string()
        );
        let shared = jobs_schedule::check_interval(Duration::ZERO).unwrap_err();
        assert_eq!(message(Schedule::every(Duration::ZERO)), shared.message());
        assert_eq!(message("every 0m".parse()), shared.message());
        let shared = jobs_schedule::parse_duration("often").unwrap_err();
        assert_eq!(message("every often".parse()), shared.to_string());
    }
}
