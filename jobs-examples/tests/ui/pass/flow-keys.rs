//! The flow-control keys, together and apart.

use std::time::Duration;

use jobs::prelude::*;

struct Pool;

#[job(
    name = "sync",
    queue = "sync.accounts",
    concurrency = 2,
    rate_limit = "100/min",
    key = account_id,
    unique(by = [account_id, kind], for = "10m", states = [pending, running, retrying, completed]),
    priority = "high"
)]
async fn sync_account(account_id: u64, kind: String, cx: JobContext, pool: Data<Pool>) {
    let _ = (account_id, kind, cx, &*pool);
}

#[job(unique = "1h", rate_limit = "5 / 30s")]
async fn report(month: String) {
    let _ = month;
}

#[job(unique, concurrency = 1)]
async fn rebuild() {}

#[job(unique(), queue = "q:1")]
async fn empty_unique(x: u8) {
    let _ = x;
}

#[job(unique(by = []))]
async fn by_name_alone(x: u8) {
    let _ = x;
}

#[job(cron = "0 0 2 * * *", queue = "nightly", concurrency = 1, unique(for = "1h"))]
async fn nightly() {}

fn main() {
    let job = sync_account::job(7, "full".into());
    assert_eq!(job.queue, "sync.accounts");
    assert_eq!(job.concurrency.as_ref().unwrap().key, "sync:7");
    assert_eq!(job.rate_limit.as_ref().unwrap().rate.period, Duration::from_secs(60));
    assert_eq!(job.unique.as_ref().unwrap().key, r#"sync:[7,"full"]"#);
    assert_eq!(report::job("may".into()).rate_limit.unwrap().rate.max, 5);
    assert_eq!(rebuild::job().unique.unwrap().key, "rebuild:{}");
    assert_eq!(empty_unique::job(1).unique.unwrap().period, None);
    assert_eq!(by_name_alone::job(1).unique.unwrap().key, "by_name_alone:[]");
    assert_eq!(nightly::registration().queue, Some("nightly"));
}
