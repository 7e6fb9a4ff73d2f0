use jobs::prelude::*;

struct Pool;

#[job(rate_limit = "5/min", key = pool)]
async fn sync_account(account_id: u64, pool: Data<Pool>) {
    let _ = (account_id, &*pool);
}

fn main() {}
