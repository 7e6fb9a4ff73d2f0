//! Other attributes stay on the function; `#[cfg]` also applies to the module.

use jobs::prelude::*;

/// A documented job.
#[job(name = "documented")]
#[allow(clippy::unused_async)]
#[inline]
async fn documented(n: u32) -> Result<u32, JobError> {
    Ok(n)
}

#[job]
#[cfg(any())]
async fn compiled_out(n: NoSuchType) {}

#[jobs::job]
async fn by_path() {}

fn main() {
    let _ = documented::job(1);
    let _ = by_path::job();
}
