use jobs::prelude::*;

#[job(unique(states = [pending, done]))]
async fn digest(user_id: u64) {
    let _ = user_id;
}

#[job(unique(states = [Pending, "running"]))]
async fn report(month: String) {
    let _ = month;
}

fn main() {}
