use jobs::assert_enqueued;
use jobs::prelude::*;

#[job]
async fn send_email(to: String) {
    let _ = to;
}

// A misspelt argument is a field the job's `Args` does not have.
async fn check(queue: MemoryJobQueue) {
    assert_enqueued!(queue, send_email, too = "a@x.com");
}

fn main() {
    let _ = check;
}
