use jobs::prelude::*;

#[job(every = "often")]
async fn heartbeat() {}

#[job(every = "0m")]
async fn poll() {}

fn main() {}
