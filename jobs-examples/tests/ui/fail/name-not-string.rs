use jobs::prelude::*;

#[job(name = send_email)]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
