//! Every return form a job may have.

use jobs::prelude::*;

#[derive(serde::Serialize)]
struct Sent {
    id: u64,
}

#[job]
async fn result_with_job_error(to: String) -> Result<Sent, JobError> {
    let _ = to;
    Ok(Sent { id: 1 })
}

#[job]
async fn result_with_std_error(text: String) -> Result<u32, std::num::ParseIntError> {
    text.parse()
}

#[job]
async fn result_with_io_error(path: String) -> std::io::Result<String> {
    Ok(path)
}

#[job]
async fn job_result(ok: bool) -> JobResult {
    if ok {
        JobResult::success(serde_json::json!({"ok": true}))
    } else {
        JobResult::error("not ok")
    }
}

#[job]
async fn unit(note: String) {
    let _ = note;
}

#[job]
async fn explicit_unit() -> () {}

#[job]
async fn result_of_unit() -> Result<(), JobError> {
    Ok(())
}

fn main() {
    let _: Job = result_with_job_error::job("a".into());
    let _: Job = result_with_std_error::job("1".into());
    let _: Job = result_with_io_error::job("/tmp".into());
    let _: Job = job_result::job(true);
    let _: Job = unit::job("n".into());
    let _: Job = explicit_unit::job();
    let _: Job = result_of_unit::job();
}
