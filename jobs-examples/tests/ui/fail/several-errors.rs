use jobs::prelude::*;

#[job(priority = "urgent", retries = -1, timeout = "soon", colour = "blue")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {
    // The module is still generated: no "cannot find" error here.
    let _ = send_email::job("a@example.com".into());
}
