use jobs::prelude::*;

#[job]
async unsafe fn send_email(to: String) {
    let _ = to;
}

fn main() {}
