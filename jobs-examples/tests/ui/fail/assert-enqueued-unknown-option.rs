use jobs::prelude::*;
use jobs::refute_enqueued;

#[job]
async fn send_email(to: String) {
    let _ = to;
}

// Options come after a `;`; a misspelt one names no option.
async fn check(queue: MemoryJobQueue) {
    refute_enqueued!(queue, send_email, to = "a@x.com"; queu = "mailers");
}

fn main() {
    let _ = check;
}
