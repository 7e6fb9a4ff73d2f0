use jobs::prelude::*;

#[job]
async fn word_count(text: String) -> usize {
    text.split_whitespace().count()
}

fn main() {}
