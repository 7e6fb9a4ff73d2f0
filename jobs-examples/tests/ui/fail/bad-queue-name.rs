use jobs::prelude::*;

#[job(queue = "mail ers")]
async fn mail(to: String) {
    let _ = to;
}

#[job(queue = "")]
async fn resize(width: u32) {
    let _ = width;
}

fn main() {}
