use jobs::prelude::*;

#[job(concurrency = 1, key = acount_id)]
async fn sync_account(account_id: u64, full: bool) {
    let _ = (account_id, full);
}

#[job(rate_limit = "10/s", key = user)]
async fn notify(message: String) {
    let _ = message;
}

fn main() {}
