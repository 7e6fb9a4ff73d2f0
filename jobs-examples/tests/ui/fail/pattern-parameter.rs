use jobs::prelude::*;

#[job]
async fn resize((width, height): (u32, u32)) -> Result<u32, JobError> {
    Ok(width * height)
}

fn main() {}
