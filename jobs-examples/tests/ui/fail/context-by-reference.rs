use jobs::prelude::*;

#[job]
async fn report(cx: &JobContext) {
    let _ = cx.attempt();
}

fn main() {}
