use jobs::prelude::*;

#[job(timeout = "0s")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
