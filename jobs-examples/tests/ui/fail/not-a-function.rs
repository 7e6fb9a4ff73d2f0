use jobs::prelude::*;

#[job]
struct SendEmail {
    to: String,
}

fn main() {}
