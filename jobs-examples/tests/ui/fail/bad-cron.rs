use jobs::prelude::*;

#[job(cron = "0 61 * * *")]
async fn cleanup() {}

#[job(cron = "0 0 2 * *  * *")]
async fn backup() {}

#[job(cron = "0 0 2 * * FUNDAY")]
async fn report() {}

#[job(cron = "")]
async fn never() {}

fn main() {}
