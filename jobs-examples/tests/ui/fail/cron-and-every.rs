use jobs::prelude::*;

#[job(cron = "0 0 2 * * *", every = "5m")]
async fn backup() {}

fn main() {}
