use jobs::prelude::*;

#[job(priority = "urgent")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
