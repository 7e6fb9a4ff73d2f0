use jobs::prelude::*;

#[job(concurrency = 1, key = cx)]
async fn sync_account(account_id: u64, cx: JobContext) {
    let _ = (account_id, cx);
}

fn main() {}
