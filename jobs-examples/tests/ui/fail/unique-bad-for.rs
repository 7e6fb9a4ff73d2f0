use jobs::prelude::*;

#[job(unique(for = "10 fortnights"))]
async fn digest(user_id: u64) {
    let _ = user_id;
}

#[job(unique(for = "0s"))]
async fn report(month: String) {
    let _ = month;
}

#[job(unique = "soon")]
async fn rebuild(index: String) {
    let _ = index;
}

fn main() {}
