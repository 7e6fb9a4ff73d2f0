use jobs::prelude::*;

#[job(cron = "0 30 2 * * *", timezone = "Europe/Atlantis")]
async fn nightly() {}

fn main() {}
