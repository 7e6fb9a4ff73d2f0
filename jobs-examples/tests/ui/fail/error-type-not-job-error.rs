use jobs::prelude::*;

struct NotAnError;

#[job]
async fn parse(text: String) -> Result<u32, NotAnError> {
    text.parse().map_err(|_| NotAnError)
}

fn main() {}
