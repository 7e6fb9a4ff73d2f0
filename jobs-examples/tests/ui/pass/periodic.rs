//! Periodic jobs: cron (5 or 6 fields, nicknames, time zones) and intervals.

use std::time::Duration;

use jobs::__private::ScheduleSpec;
use jobs::prelude::*;

struct Database;

#[job(cron = "0 0 2 * * *")]
async fn six_fields() {}

#[job(cron = "30 2 * * MON-FRI", timezone = "Europe/Berlin")]
async fn five_fields_in_berlin(cx: JobContext) -> Result<u32, JobError> {
    Ok(cx.attempt())
}

#[job(cron = "@daily", timezone = "UTC", priority = "low")]
async fn nickname(db: Data<Database>) {
    let _ = &*db;
}

#[job(every = "5m", priority = "low")]
async fn heartbeat(cx: JobContext, db: Data<Database>) {
    let _ = (cx, db);
}

#[job(every = "250ms")]
async fn fast() {}

// Rare, but they come: 29 February, and 29 February on a Monday (2016, 2044).
#[job(cron = "0 0 29 2 *")]
async fn leap_day() {}

#[job(cron = "0 0 12 29 2 +MON")]
async fn leap_monday() {}

fn main() {
    assert!(matches!(
        five_fields_in_berlin::registration().schedule,
        Some(ScheduleSpec::Cron { expression: "30 2 * * MON-FRI", timezone: Some("Europe/Berlin") })
    ));
    assert!(matches!(
        heartbeat::registration().schedule,
        Some(ScheduleSpec::Every(d)) if d == Duration::from_secs(300)
    ));
    let _ = (six_fields::job(), nickname::job(), fast::job(), leap_day::job(), leap_monday::job());
}
