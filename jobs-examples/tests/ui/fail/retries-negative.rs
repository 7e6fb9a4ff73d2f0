use jobs::prelude::*;

#[job(retries = -1)]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
