use jobs::prelude::*;

#[job(concurrency = 0)]
async fn resize(width: u32) {
    let _ = width;
}

fn main() {}
