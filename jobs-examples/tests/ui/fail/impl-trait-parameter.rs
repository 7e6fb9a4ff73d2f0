use jobs::prelude::*;

#[job]
async fn greet(name: impl Into<String>) -> Result<String, JobError> {
    Ok(name.into())
}

fn main() {}
