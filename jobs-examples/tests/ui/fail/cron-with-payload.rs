use jobs::prelude::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct Database;

#[job(cron = "0 0 2 * * *")]
async fn backup(target: String, cx: JobContext, db: Data<Database>) {
    let _ = (target, cx, db);
}

fn main() {}
