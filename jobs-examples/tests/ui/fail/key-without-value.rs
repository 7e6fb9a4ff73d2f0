use jobs::prelude::*;

#[job(priority)]
async fn send_email(to: String) {
    let _ = to;
}

#[job(retries(3))]
async fn resize(width: u32) {
    let _ = width;
}

fn main() {}
