use jobs::prelude::*;

#[job]
async fn report(db: Data) {
    let _ = db;
}

fn main() {}
