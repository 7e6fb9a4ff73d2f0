use jobs::prelude::*;

#[job]
async fn report(n: u32) -> Result<u32, JobError>
where
    u32: Copy,
{
    Ok(n)
}

fn main() {}
