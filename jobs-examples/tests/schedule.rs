//! Schedule arithmetic: intervals, cron expressions, the common schedules,
//! month ends, leap years, daylight-saving changes, text forms and errors.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use jobs::__private::ScheduleSpec;
use jobs::{Schedule, Weekday};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn err(result: Result<Schedule, jobs::Error>) -> String {
    match result {
        Ok(s) => panic!("expected an error, got {s}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_fires_on_a_grid_anchored_at_the_epoch() {
    let s = Schedule::every(Duration::from_secs(300)).unwrap();
    assert_eq!(
        s.upcoming(utc(2024, 6, 1, 10, 2, 30), 3),
        [
            utc(2024, 6, 1, 10, 5, 0),
            utc(2024, 6, 1, 10, 10, 0),
            utc(2024, 6, 1, 10, 15, 0)
        ]
    );
    // Strictly after.
    assert_eq!(
        s.next_after(utc(2024, 6, 1, 10, 5, 0)),
        Some(utc(2024, 6, 1, 10, 10, 0))
    );
    assert_eq!(Schedule::every_minutes(5).unwrap(), s);
    assert_eq!(
        Schedule::every_hours(6)
            .unwrap()
            .upcoming(utc(2024, 6, 1, 10, 0, 0), 2),
        [utc(2024, 6, 1, 12, 0, 0), utc(2024, 6, 1, 18, 0, 0)]
    );
    assert_eq!(
        Schedule::every_days(1)
            .unwrap()
            .next_after(utc(2024, 6, 1, 10, 0, 0)),
        Some(utc(2024, 6, 2, 0, 0, 0))
    );
    // Sub-second intervals work too.
    let fast = Schedule::every(Duration::from_millis(250)).unwrap();
    let t = utc(2024, 6, 1, 0, 0, 0);
    assert_eq!(
        fast.next_after(t),
        Some(t + chrono::Duration::milliseconds(250))
    );
}

#[test]
fn zero_intervals_are_errors() {
    assert!(err(Schedule::every(Duration::ZERO)).contains("longer than zero"));
    assert!(Schedule::every_minutes(0).is_err());
    assert!(Schedule::every_hours(0).is_err());
    assert!(Schedule::every_days(0).is_err());
}

#[test]
fn cron_with_five_and_six_fields() {
    let quarter = Schedule::cron("*/15 * * * *").unwrap();
    assert_eq!(
        quarter.upcoming(utc(2024, 6, 1, 10, 7, 0), 3),
        [
            utc(2024, 6, 1, 10, 15, 0),
            utc(2024, 6, 1, 10, 30, 0),
            utc(2024, 6, 1, 10, 45, 0)
        ]
    );
    let with_seconds = Schedule::cron("30 0 2 * * *").unwrap();
    assert_eq!(
        with_seconds.next_after(utc(2024, 6, 1, 10, 0, 0)),
        Some(utc(2024, 6, 2, 2, 0, 30))
    );
    let every_ten_seconds = Schedule::cron("*/10 * * * * *").unwrap();
    assert_eq!(
        every_ten_seconds.upcoming(utc(2024, 6, 1, 0, 0, 5), 2),
        [utc(2024, 6, 1, 0, 0, 10), utc(2024, 6, 1, 0, 0, 20)]
    );
    // Weekdays by name, business hours.
    let business = Schedule::cron("0 9-17 * * MON-FRI").unwrap();
    // 2024-06-01 is a Saturday.
    assert_eq!(
        business.next_after(utc(2024, 6, 1, 12, 0, 0)),
        Some(utc(2024, 6, 3, 9, 0, 0))
    );
    assert_eq!(
        Schedule::cron("@daily")
            .unwrap()
            .next_after(utc(2024, 6, 1, 12, 0, 0)),
        Some(utc(2024, 6, 2, 0, 0, 0))
    );
}

#[test]
fn the_common_schedules() {
    let t = utc(2024, 1, 1, 10, 30, 0); // a Monday
    assert_eq!(
        Schedule::hourly().upcoming(t, 2),
        [utc(2024, 1, 1, 11, 0, 0), utc(2024, 1, 1, 12, 0, 0)]
    );
    let daily = Schedule::daily_at(2, 0).unwrap();
    assert_eq!(daily.to_string(), "0 2 * * *");
    assert_eq!(
        daily.upcoming(t, 2),
        [utc(2024, 1, 2, 2, 0, 0), utc(2024, 1, 3, 2, 0, 0)]
    );
    assert_eq!(
        Schedule::daily_at(10, 45).unwrap().next_after(t),
        Some(utc(2024, 1, 1, 10, 45, 0))
    );
    let weekly = Schedule::weekly_on(Weekday::Fri, 17, 30).unwrap();
    assert_eq!(
        weekly.upcoming(t, 2),
        [utc(2024, 1, 5, 17, 30, 0), utc(2024, 1, 12, 17, 30, 0)]
    );
    let sunday = Schedule::weekly_on(Weekday::Sun, 0, 0).unwrap();
    assert_eq!(sunday.next_after(t), Some(utc(2024, 1, 7, 0, 0, 0)));
    let monthly = Schedule::monthly_on(15, 8, 0).unwrap();
    assert_eq!(
        monthly.upcoming(t, 3),
        [
            utc(2024, 1, 15, 8, 0, 0),
            utc(2024, 2, 15, 8, 0, 0),
            utc(2024, 3, 15, 8, 0, 0)
        ]
    );
}

#[test]
fn month_ends() {
    // The 31st: months without one are skipped, as in cron.
    let on_31st = Schedule::monthly_on(31, 0, 0).unwrap();
    assert_eq!(
        on_31st.upcoming(utc(2024, 1, 1, 0, 0, 0), 4),
        [
            utc(2024, 1, 31, 0, 0, 0),
            utc(2024, 3, 31, 0, 0, 0),
            utc(2024, 5, 31, 0, 0, 0),
            utc(2024, 7, 31, 0, 0, 0)
        ]
    );
    // The last day of every month.
    let last = Schedule::monthly_on_last_day(23, 0).unwrap();
    assert_eq!(
        last.upcoming(utc(2024, 1, 1, 0, 0, 0), 4),
        [
            utc(2024, 1, 31, 23, 0, 0),
            utc(2024, 2, 29, 23, 0, 0),
            utc(2024, 3, 31, 23, 0, 0),
            utc(2024, 4, 30, 23, 0, 0)
        ]
    );
    assert_eq!(
        last.next_after(utc(2023, 2, 1, 0, 0, 0)),
        Some(utc(2023, 2, 28, 23, 0, 0))
    );
    // Across a year end.
    assert_eq!(
        Schedule::daily_at(0, 0)
            .unwrap()
            .next_after(utc(2024, 12, 31, 12, 0, 0)),
        Some(utc(2025, 1, 1, 0, 0, 0))
    );
}

#[test]
fn leap_years() {
    let feb_29 = Schedule::cron("0 12 29 2 *").unwrap();
    assert_eq!(
        feb_29.upcoming(utc(2023, 1, 1, 0, 0, 0), 3),
        [
            utc(2024, 2, 29, 12, 0, 0),
            utc(2028, 2, 29, 12, 0, 0),
            utc(2032, 2, 29, 12, 0, 0)
        ]
    );
    // 2100 is not a leap year.
    assert_eq!(
        feb_29.next_after(utc(2096, 3, 1, 0, 0, 0)),
        Some(utc(2104, 2, 29, 12, 0, 0))
    );
    let on_29th = Schedule::monthly_on(29, 0, 0).unwrap();
    assert_eq!(
        on_29th.upcoming(utc(2023, 1, 30, 0, 0, 0), 1),
        [utc(2023, 3, 29, 0, 0, 0)]
    );
    assert_eq!(
        on_29th.upcoming(utc(2024, 1, 30, 0, 0, 0), 1),
        [utc(2024, 2, 29, 0, 0, 0)]
    );
}

#[test]
fn berlin_spring_forward() {
    // 2024-03-31: clocks jump from 02:00 CET to 03:00 CEST; 02:30 does not exist.
    let s = Schedule::daily_at(2, 30)
        .unwrap()
        .in_timezone("Europe/Berlin")
        .unwrap();
    assert_eq!(
        s.upcoming(utc(2024, 3, 29, 12, 0, 0), 3),
        [
            utc(2024, 3, 30, 1, 30, 0), // 02:30 CET
            utc(2024, 3, 31, 1, 0, 0),  // 03:00 CEST, the first instant after the gap
            utc(2024, 4, 1, 0, 30, 0),  // 02:30 CEST
        ]
    );
    // A time outside the gap just moves by the offset.
    let nine = Schedule::cron_tz("0 9 * * *", "Europe/Berlin").unwrap();
    assert_eq!(
        nine.upcoming(utc(2024, 3, 30, 12, 0, 0), 2),
        [utc(2024, 3, 31, 7, 0, 0), utc(2024, 4, 1, 7, 0, 0)]
    );
    // An hourly schedule has one hour fewer that night, no gap and no double.
    let hourly = Schedule::hourly().in_timezone("Europe/Berlin").unwrap();
    assert_eq!(
        hourly.upcoming(utc(2024, 3, 30, 23, 30, 0), 3),
        [
            utc(2024, 3, 31, 0, 0, 0), // 01:00 CET
            utc(2024, 3, 31, 1, 0, 0), // 03:00 CEST
            utc(2024, 3, 31, 2, 0, 0), // 04:00 CEST
        ]
    );
}

#[test]
fn berlin_fall_back() {
    // 2024-10-27: clocks go back from 03:00 CEST to 02:00 CET; 02:30 happens twice.
    let s = Schedule::cron_tz("30 2 * * *", "Europe/Berlin").unwrap();
    let runs = s.upcoming(utc(2024, 10, 26, 12, 0, 0), 2);
    assert_eq!(
        runs,
        [
            utc(2024, 10, 27, 0, 30, 0), // 02:30 CEST, once
            utc(2024, 10, 28, 1, 30, 0), // 02:30 CET
        ]
    );
    // Nothing in the second 02:30 (01:30 UTC) of that day.
    assert_eq!(
        s.next_after(utc(2024, 10, 27, 0, 30, 0)),
        Some(utc(2024, 10, 28, 1, 30, 0))
    );
    // An hourly schedule runs in both halves of the repeated hour.
    let hourly = Schedule::hourly().in_timezone("Europe/Berlin").unwrap();
    assert_eq!(
        hourly.upcoming(utc(2024, 10, 26, 23, 30, 0), 4),
        [
            utc(2024, 10, 27, 0, 0, 0), // 02:00 CEST
            utc(2024, 10, 27, 1, 0, 0), // 02:00 CET
            utc(2024, 10, 27, 2, 0, 0), // 03:00 CET
            utc(2024, 10, 27, 3, 0, 0), // 04:00 CET
        ]
    );
}

#[test]
fn upcoming_gives_n_increasing_times() {
    let s = Schedule::cron("0 */6 * * *").unwrap();
    let times = s.upcoming(utc(2024, 1, 1, 1, 0, 0), 10);
    assert_eq!(times.len(), 10);
    assert!(
        times
            .windows(2)
            .all(|w| w[1] - w[0] == chrono::Duration::hours(6))
    );
    assert!(s.upcoming(utc(2024, 1, 1, 1, 0, 0), 0).is_empty());
}

#[test]
fn bad_expressions_are_clear_errors() {
    let e = err(Schedule::cron("0 25 * * *"));
    assert!(
        e.contains("`0 25 * * *`") && e.contains("hour field `25`"),
        "{e}"
    );
    let e = err(Schedule::cron("61 * * * * *"));
    assert!(e.contains("second field `61`"), "{e}");
    let e = err(Schedule::cron("* * *"));
    assert!(e.contains("`* * *`") && e.contains("found 3"), "{e}");
    let e = err(Schedule::cron("0 0 1 1 * 2030"));
    assert!(e.contains("day-of-week field `2030`"), "{e}");
    let e = err(Schedule::cron("0 0 * * * * *"));
    assert!(e.contains("found 7"), "{e}");
    let e = err(Schedule::cron("every day"));
    assert!(e.contains("`every day`"), "{e}");
    let e = err(Schedule::cron("0 9 * * FUNDAY"));
    assert!(
        e.contains("`0 9 * * FUNDAY`") && e.contains("day-of-week"),
        "{e}"
    );
    let e = err(Schedule::cron("0 0 30 2 *"));
    assert!(
        e.contains("`0 0 30 2 *`") && e.contains("no date matches"),
        "{e}"
    );
    let e = err(Schedule::cron(""));
    assert!(e.contains("found 0"), "{e}");
    let e = err(Schedule::cron_tz("0 2 * * *", "Mars/Olympus"));
    assert!(e.contains("Mars/Olympus") && e.contains("time zone"), "{e}");
    let e = err(Schedule::every_days(1)
        .unwrap()
        .in_timezone("Europe/Berlin"));
    assert!(
        e.contains("every 1day") && e.contains("no time zone"),
        "{e}"
    );
    let e = err(Schedule::daily_at(24, 0));
    assert!(e.contains("hour 24"), "{e}");
    let e = err(Schedule::daily_at(3, 60));
    assert!(e.contains("minute 60"), "{e}");
    let e = err(Schedule::monthly_on(32, 0, 0));
    assert!(e.contains("day of month 32"), "{e}");
    assert!(Schedule::monthly_on(0, 0, 0).is_err());
    assert!(Schedule::weekly_on(Weekday::Mon, 7, 99).is_err());
}

#[test]
fn text_form_and_serde_round_trip() {
    let schedules = [
        Schedule::every(Duration::from_secs(300)).unwrap(),
        Schedule::every(Duration::from_millis(1500)).unwrap(),
        Schedule::every_days(2).unwrap(),
        Schedule::hourly(),
        Schedule::daily_at(2, 0).unwrap(),
        Schedule::cron("*/10 * * * * *").unwrap(),
        Schedule::cron_tz("30 2 * * *", "Europe/Berlin").unwrap(),
        Schedule::monthly_on_last_day(23, 59).unwrap(),
    ];
    for s in schedules {
        let text = s.to_string();
        let parsed: Schedule = text.parse().unwrap();
        assert_eq!(parsed, s, "{text}");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        let back: Schedule = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert_eq!(
            back.next_after(utc(2024, 10, 26, 12, 0, 0)),
            s.next_after(utc(2024, 10, 26, 12, 0, 0))
        );
    }
    assert_eq!(
        Schedule::every(Duration::from_secs(5400))
            .unwrap()
            .to_string(),
        "every 1h 30m"
    );
    assert_eq!(
        "every 90s".parse::<Schedule>().unwrap().interval(),
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        "CRON_TZ=Europe/Berlin 0 9 * * *"
            .parse::<Schedule>()
            .unwrap()
            .timezone(),
        Some("Europe/Berlin")
    );
    assert_eq!(
        "TZ=UTC 0 9 * * *".parse::<Schedule>().unwrap().timezone(),
        Some("UTC")
    );
    assert!("every soon".parse::<Schedule>().is_err());
    assert!("every 0s".parse::<Schedule>().is_err());
    assert!(serde_json::from_str::<Schedule>("\"0 99 * * *\"").is_err());
}

#[test]
fn from_the_attribute_spec() {
    let spec = ScheduleSpec::Cron {
        expression: "0 3 * * *",
        timezone: Some("Europe/Berlin"),
    };
    let s = Schedule::from_spec(&spec).unwrap();
    assert_eq!(s.expression(), Some("0 3 * * *"));
    assert_eq!(s.timezone(), Some("Europe/Berlin"));
    let s = Schedule::from_spec(&ScheduleSpec::Every(Duration::from_secs(60))).unwrap();
    assert_eq!(s.interval(), Some(Duration::from_secs(60)));
    assert!(
        Schedule::from_spec(&ScheduleSpec::Cron {
            expression: "nope",
            timezone: None
        })
        .is_err()
    );
}
