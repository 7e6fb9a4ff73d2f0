use jobs::prelude::*;

#[job]
async fn send_email(to: &str, attachments: &[u8]) -> Result<(), JobError> {
    let _ = (to, attachments);
    Ok(())
}

fn main() {}
