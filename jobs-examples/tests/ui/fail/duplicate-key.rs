use jobs::prelude::*;

#[job(priority = "high", retries = 3, priority = "low")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
