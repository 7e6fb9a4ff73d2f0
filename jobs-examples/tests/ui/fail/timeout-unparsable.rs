use jobs::prelude::*;

#[job(timeout = "30")]
async fn send_email(to: String) {
    let _ = to;
}

#[job(timeout = "half a minute")]
async fn resize(width: u32) {
    let _ = width;
}

#[job(timeout = 30)]
async fn archive(path: String) {
    let _ = path;
}

fn main() {}
