//! Best practices with `#[job]`: shared resources (a database
//! pool and an HTTP client) are created once, registered on the worker and
//! injected into handlers as `Data<T>`; jobs are idempotent (a sync that
//! already ran does nothing); errors say whether a retry can help (a
//! temporary failure is retried with backoff, a permanent one is not). A
//! worker missing a resource refuses to start and names it.
//!
//! Run: `cargo run --example resources`

use std::collections::HashSet;
use std::time::Duration;

use jobs::prelude::*;
use parking_lot::Mutex;
use serde_json::{Value, json};

/// A stand-in for a database pool.
struct DbPool {
    synced: Mutex<HashSet<String>>,
}

impl DbPool {
    async fn connect(url: &str) -> DbPool {
        println!("🔌 Database pool connected to {url}");
        DbPool {
            synced: Mutex::new(HashSet::new()),
        }
    }

    async fn already_synced(&self, sync_id: &str) -> bool {
        self.synced.lock().contains(sync_id)
    }

    async fn record_sync(&self, sync_id: &str) {
        self.synced.lock().insert(sync_id.to_owned());
    }

    async fn close(&self) {
        println!("🔌 Database pool closed");
    }
}

/// A stand-in for an HTTP client.
struct HttpClient {
    user_agent: &'static str,
}

impl HttpClient {
    async fn fetch_records(&self, source: &str) -> Vec<Value> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        (0..3)
            .map(|i| json!({ "source": source, "n": i, "agent": self.user_agent }))
            .collect()
    }
}

/// Copies records once per `sync_id`: running it again is harmless.
#[job(retries = 3)]
async fn sync_data(
    db: Data<DbPool>,
    http: Data<HttpClient>,
    sync_id: String,
    source: String,
) -> Result<Value, JobError> {
    if db.already_synced(&sync_id).await {
        return Ok(json!("Already synced"));
    }
    let records = http.fetch_records(&source).await;
    db.record_sync(&sync_id).await;
    Ok(json!({ "sync_id": sync_id, "records": records.len() }))
}

/// How a payment can fail.
#[derive(Debug, thiserror::Error)]
enum PaymentError {
    /// The provider is overloaded; trying again later may work.
    #[error("payment provider busy, try again")]
    Busy,
    /// The card was declined; retrying will not change that.
    #[error("card declined: {0}")]
    Declined(String),
}

impl PaymentError {
    /// Says whether a retry can help: a busy provider yes, a declined card
    /// no. (Any `std::error::Error` converts into a retryable `JobError`
    /// with `?`; this keeps the source and picks the kind.)
    fn into_job_error(self) -> JobError {
        let permanent = matches!(self, PaymentError::Declined(_));
        let error = JobError::from_error(self);
        if permanent {
            error.into_permanent()
        } else {
            error
        }
    }
}

/// Charges a card. The provider is busy on the first attempt.
#[job(retries = 3)]
async fn charge_card(cx: JobContext, card: String, cents: u64) -> Result<Value, JobError> {
    charge(&card, cents, cx.attempt())
        .await
        .map_err(PaymentError::into_job_error)
}

async fn charge(card: &str, cents: u64, attempt: u32) -> Result<Value, PaymentError> {
    if card.ends_with("0002") {
        return Err(PaymentError::Declined("insufficient funds".into()));
    }
    if attempt == 1 {
        return Err(PaymentError::Busy);
    }
    Ok(json!({ "charged": cents, "attempt": attempt }))
}

#[tokio::main]
async fn main() -> Result<(), jobs::Error> {
    jobs_examples::init_tracing();

    // A worker that lacks the resources its jobs take refuses to start,
    // naming them, before it runs anything.
    let incomplete = BackgroundJobWorker::builder().build()?;
    if let Err(e) = incomplete.run().await {
        println!("🛑 {e}");
    }

    // Start-up: create the resources once and hand them to the worker.
    let db = std::sync::Arc::new(DbPool::connect("postgres://localhost/app").await);
    let worker = BackgroundJobWorker::builder()
        .data_arc(std::sync::Arc::clone(&db))
        .data(HttpClient {
            user_agent: "jobs-example/1.0",
        })
        .build()?;
    let running = jobs_examples::start(&worker);

    let first = sync_data::enqueue(&worker, "sync-42".into(), "shopify".into()).await?;
    jobs_examples::print_outcome_as("first sync", &worker.wait_for(first).await?);
    // The same sync delivered again (at-least-once delivery, a user
    // clicking twice): it notices and does nothing.
    let again = sync_data::enqueue(&worker, "sync-42".into(), "shopify".into()).await?;
    jobs_examples::print_outcome_as("same sync again", &worker.wait_for(again).await?);

    let ok = charge_card::enqueue(&worker, "4242 4242 4242 4242".into(), 1999).await?;
    let declined = charge_card::enqueue(&worker, "4000 0000 0000 0002".into(), 1999).await?;
    for id in [ok, declined] {
        let job = worker.wait_for(id).await?;
        jobs_examples::print_outcome_as(&format!("charge {}", job.args["card"]), &job);
    }

    // Shutdown: stop the worker, then release the resources.
    running.stop().await?;
    db.close().await;
    Ok(())
}
