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

#[job(every = "5m", queue = "maintenance")]
async fn heartbeat(cx: JobContext, db: Data<Database>) {
    let _ = (cx, db);
}

#[job(every = "250ms")]
async fn fast() {}

fn main() {
    assert!(matches!(
        five_fields_in_berlin::registration().schedule,
        Some(ScheduleSpec::Cron { expression: "30 2 * * MON-FRI", timezone: Some("Europe/Berlin") })
    ));
    assert!(matches!(
        heartbeat::registration().schedule,
        Some(ScheduleSpec::Every(d)) if d == Duration::from_secs(300)
    ));
    let _ = (six_fields::job(), nickname::job(), fast::job());
}
