use jobs::prelude::*;

#[job(queue = "sync", key = account_id)]
async fn sync_account(account_id: u64) {
    let _ = account_id;
}

fn main() {}
