use jobs::prelude::*;

// The signature is rejected (no `async`), yet the module is still generated:
// the uses below report no error of their own.
#[job]
fn send_email(to: String, cx: JobContext) -> Result<(), JobError> {
    let _ = (to, cx);
    Ok(())
}

fn main() {
    let name: &str = send_email::NAME;
    let job: jobs::Job = send_email::job("a@example.com".into());
    let args = send_email::Args {
        to: "b@example.com".into(),
    };
    let _ = (name, job, args.into_job());
    let _ = async {
        let queue = jobs::MemoryJobQueue::new();
        let id: jobs::JobId = send_email::enqueue(&queue, "c@example.com".into())
            .await
            .unwrap();
        let _ = id;
    };
}
