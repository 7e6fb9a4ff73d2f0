use jobs::prelude::*;

#[job(rate_limit = "100/fortnight")]
async fn mail(to: String) {
    let _ = to;
}

fn main() {}
