use jobs::prelude::*;

#[job(retries = "3")]
async fn send_email(to: String) {
    let _ = to;
}

#[job(retries = 2.5)]
async fn resize(width: u32) {
    let _ = width;
}

#[job(retries = 5000000000)]
async fn archive(path: String) {
    let _ = path;
}

fn main() {}
