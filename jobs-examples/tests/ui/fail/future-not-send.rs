use std::rc::Rc;

use jobs::prelude::*;

async fn pause() {}

#[job]
async fn count_words(text: String) -> Result<usize, JobError> {
    let shared = Rc::new(text);
    pause().await;
    Ok(shared.split_whitespace().count())
}

fn main() {}
