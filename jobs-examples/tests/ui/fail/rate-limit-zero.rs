use jobs::prelude::*;

#[job(rate_limit = "0/s")]
async fn mail(to: String) {
    let _ = to;
}

fn main() {}
