use jobs::prelude::*;

#[job(prio = "high")]
async fn send_email(to: String) {
    let _ = to;
}

#[job(max_attempts = 3)]
async fn resize(width: u32) {
    let _ = width;
}

#[job(queues = "mailers")]
async fn welcome(to: String) {
    let _ = to;
}

fn main() {}
