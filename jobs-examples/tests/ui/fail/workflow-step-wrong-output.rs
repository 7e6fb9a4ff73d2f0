// A step's typed handle carries the output type of the job that makes it:
// handing `count`'s `Step<u64>` to a job that expects a `Step<String>` is
// a compile error.
use jobs::prelude::*;
use jobs::workflow::{Step, Workflow};

#[job]
async fn count() -> Result<u64, JobError> {
    Ok(3)
}

#[job]
async fn shout(word: Step<String>, cx: JobContext) -> Result<String, JobError> {
    Ok(cx.output(&word)?.to_uppercase())
}

fn main() {
    let mut flow = Workflow::new("typed");
    let n = flow.step("count", count::step(), &[]);
    flow.step("shout", shout::step(n), &["count"]);
}
