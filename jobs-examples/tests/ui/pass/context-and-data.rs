//! Injected parameters, in any position and spelled with any path.

use std::sync::Mutex;

use jobs::prelude::*;

struct Database {
    rows: Mutex<Vec<String>>,
}

struct Mailer;

#[job]
async fn insert(cx: JobContext, row: String, db: Data<Database>) -> Result<usize, JobError> {
    let mut rows = db.rows.lock().unwrap();
    rows.push(format!("{row} (attempt {})", cx.attempt()));
    Ok(rows.len())
}

#[job]
async fn fully_qualified(
    db: jobs::Data<Database>,
    mailer: ::jobs::Data<Mailer>,
    cx: jobs::JobContext,
    mut count: u32,
) -> Result<u32, JobError> {
    let _ = (db.rows.lock().unwrap().len(), &*mailer, cx.job_id());
    count += 1;
    Ok(count)
}

#[job]
async fn only_injected(cx: JobContext, mailer: Data<Mailer>) {
    let _ = (cx.is_cancelled(), &*mailer);
}

fn main() {
    // Only the payload is in `Args`, `job` and `enqueue`.
    let args = insert::Args { row: "r".into() };
    let _: Job = args.into_job();
    let _: Job = insert::job("r".into());
    let _: Job = fully_qualified::job(1);
    let _: Job = only_injected::job();
    let registration = only_injected::registration();
    assert_eq!(registration.data.len(), 1);
    assert_eq!(fully_qualified::registration().data.len(), 2);
}
