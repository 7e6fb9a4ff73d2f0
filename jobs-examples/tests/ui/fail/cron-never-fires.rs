use jobs::prelude::*;

// 30 February: the expression parses, but no date ever matches it.
#[job(cron = "0 0 30 2 *")]
async fn never() {}

// 31 April, with seconds.
#[job(cron = "0 0 0 31 4 *")]
async fn nor_this() {}

// `+`: the 1st of a month is never its fifth Friday.
#[job(cron = "0 9 1 * +FRI#5")]
async fn nor_that() {}

fn main() {}
