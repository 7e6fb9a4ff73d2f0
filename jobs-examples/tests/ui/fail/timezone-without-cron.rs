use jobs::prelude::*;

#[job(every = "5m", timezone = "Europe/Berlin")]
async fn heartbeat() {}

#[job(timezone = "Europe/Berlin")]
async fn report() {}

fn main() {}
