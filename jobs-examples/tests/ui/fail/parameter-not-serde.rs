use jobs::prelude::*;

struct Recipient {
    address: String,
}

#[job]
async fn send_email(to: Recipient, subject: String) -> Result<(), JobError> {
    let _ = (to.address, subject);
    Ok(())
}

fn main() {}
