use jobs::prelude::*;

#[job(name = "")]
async fn send_email(to: String) {
    let _ = to;
}

#[job(name = " resize ")]
async fn resize(width: u32) {
    let _ = width;
}

fn main() {}
