use jobs::prelude::*;

#[job(unique(by = [user_id, knid]))]
async fn digest(user_id: u64, kind: String) {
    let _ = (user_id, kind);
}

fn main() {}
