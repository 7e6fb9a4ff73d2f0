//! A worker process on a PostgreSQL queue. Start as many as you like, on
//! as many machines; they share the queue (a schema of the database), and
//! each job runs once (again only if its worker dies mid-job).
//!
//! ```text
//! cargo run --features postgres --example postgres_worker -- postgres://postgres@127.0.0.1/app [schema]
//! cargo run --features postgres --example postgres_worker -- --demo [URL]
//! ```
//!
//! The URL comes from the first argument, else `JOBS_DATABASE_URL`. It
//! runs the `#[job]` functions `send_welcome(user_id, email)` and
//! `noop()`. Ctrl-C stops it gracefully.
//!
//! `--demo` shows transactional enqueue: it creates a `users` table in the
//! schema `jobs_demo`, then in one transaction inserts a user and enqueues
//! its welcome email and commits (the job runs), and in another does the
//! same and rolls back (neither the user nor the job exists, and no worker
//! ever sees the job); it prints both outcomes and exits by itself. Set
//! `RUST_LOG=info` for the worker's logs.

use std::time::Duration;

use jobs::prelude::*;
use serde_json::{Value, json};

/// Sends a welcome email (simulated).
#[job(retries = 3, timeout = "30s")]
async fn send_welcome(user_id: i64, email: String) -> Result<Value, JobError> {
    tracing::info!(user_id, %email, "sending the welcome email");
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(json!({ "welcomed": email }))
}

/// Does nothing.
#[job]
async fn noop() {}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let demo = args.iter().any(|a| a == "--demo");
    let mut positional = args.iter().filter(|a| !a.starts_with("--"));
    let Some(url) = positional
        .next()
        .cloned()
        .or_else(|| std::env::var("JOBS_DATABASE_URL").ok())
    else {
        eprintln!(
            "postgres_worker needs a database URL: pass it as the first argument \
             or set JOBS_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/app)"
        );
        std::process::exit(2);
    };
    let default_schema = if demo { "jobs_demo" } else { "jobs" };
    let schema = positional.next().cloned().unwrap_or(default_schema.into());

    let queue = PostgresJobQueue::builder(&url)
        .schema(&schema)
        .connect()
        .await
        .map_err(|e| format!("cannot use the queue in schema `{schema}` at {url}: {e}"))?;
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .max_concurrent_jobs(16)
        .build()?;
    let running = tokio::spawn(worker.clone().run_owned());

    if demo {
        run_demo(&queue, &worker).await?;
    } else {
        println!(
            "worker {} on {url} schema `{schema}`: Ctrl-C to stop",
            worker.id()
        );
        tokio::signal::ctrl_c().await?;
        println!("stopping...");
    }
    let report = worker.stop().await;
    running.await??;
    let stats = worker.worker_stats();
    println!(
        "stopped: {} processed, {} failed, {} retried, {} handed back",
        stats.jobs_processed,
        stats.jobs_failed,
        stats.jobs_retried,
        report.abandoned.len()
    );
    Ok(())
}

/// A user and their welcome email, committed; another, rolled back.
async fn run_demo(
    queue: &PostgresJobQueue,
    worker: &BackgroundJobWorker,
) -> Result<(), Box<dyn std::error::Error>> {
    let users = format!("\"{}\".users", queue.schema());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {users} (id bigserial PRIMARY KEY, email text NOT NULL)"
    )))
    .execute(queue.pool())
    .await?;
    let insert = format!("INSERT INTO {users} (email) VALUES ($1) RETURNING id");

    // Committed: the user and the job exist, and the job runs.
    let mut tx = queue.pool().begin().await?;
    let email = "ada@example.com".to_owned();
    let id: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(insert.clone()))
        .bind(&email)
        .fetch_one(&mut *tx)
        .await?;
    let committed = send_welcome::enqueue(&queue.with_tx(&mut tx), id, email).await?;
    tx.commit().await?;
    println!("committed: user {id} and job {committed}");

    // Rolled back: neither exists.
    let mut tx = queue.pool().begin().await?;
    let email = "bob@example.com".to_owned();
    let id: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(insert))
        .bind(&email)
        .fetch_one(&mut *tx)
        .await?;
    let rolled_back = send_welcome::enqueue(&queue.with_tx(&mut tx), id, email).await?;
    tx.rollback().await?;
    println!("rolled back: user {id} and job {rolled_back}");

    let done = tokio::time::timeout(Duration::from_secs(30), worker.wait_for(committed))
        .await
        .map_err(|_| "the committed job did not finish within 30 s")??;
    jobs_examples::print_outcome_as("committed job", &done);
    match queue.get(rolled_back).await? {
        None => println!("🚫 rolled-back job: never stored, never run"),
        Some(job) => println!("❗ rolled-back job exists: {job:?}"),
    }
    let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {users} WHERE email = 'bob@example.com'"
    )))
    .fetch_one(queue.pool())
    .await?;
    println!("users named bob@example.com: {left}");
    Ok(())
}
