//! Counting executions in PostgreSQL, for tests with several worker
//! processes: a table beside the queue's (in its schema) with a row per job
//! id and per process, so double or lost runs show after any process died.

use jobs::prelude::*;
use serde_json::json;
use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

/// The runs table of `schema`.
pub(crate) fn runs_table(schema: &str) -> String {
    format!("\"{schema}\".test_runs")
}

/// Creates the runs table of `schema` (the queue's migrations made the
/// schema).
pub(crate) async fn create_runs(pool: &PgPool, schema: &str) {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {} (
             id   uuid    NOT NULL,
             pid  integer NOT NULL,
             runs integer NOT NULL,
             PRIMARY KEY (id, pid)
         )",
        runs_table(schema)
    )))
    .execute(pool)
    .await
    .unwrap();
}

/// Counts one run of `id` in this process.
pub(crate) async fn count_run(pool: &PgPool, schema: &str, id: JobId) -> Result<(), sqlx::Error> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} AS r (id, pid, runs) VALUES ($1, $2, 1)
         ON CONFLICT (id, pid) DO UPDATE SET runs = r.runs + 1",
        runs_table(schema)
    )))
    .bind(*id.as_uuid())
    .bind(std::process::id() as i32)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Runs per job id, all processes together.
pub(crate) async fn runs_by_id(pool: &PgPool, schema: &str) -> HashMap<JobId, i64> {
    sqlx::query(AssertSqlSafe(format!(
        "SELECT id, sum(runs)::int8 AS runs FROM {} GROUP BY id",
        runs_table(schema)
    )))
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|row| {
        (
            JobId::from(row.get::<sqlx::types::Uuid, _>("id")),
            row.get::<i64, _>("runs"),
        )
    })
    .collect()
}

/// Runs per process id.
#[allow(dead_code)]
pub(crate) async fn runs_by_pid(pool: &PgPool, schema: &str) -> HashMap<u32, i64> {
    sqlx::query(AssertSqlSafe(format!(
        "SELECT pid, sum(runs)::int8 AS runs FROM {} GROUP BY pid",
        runs_table(schema)
    )))
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get::<i32, _>("pid") as u32, row.get::<i64, _>("runs")))
    .collect()
}

/// A processor that counts each run of a job in the runs table and
/// succeeds (a failed count is a retryable failure).
#[allow(dead_code)]
#[derive(Clone)]
pub(crate) struct CountRuns {
    pub(crate) pool: PgPool,
    pub(crate) schema: String,
}

impl JobProcessor for CountRuns {
    async fn process(&self, job: &Job) -> JobResult {
        match count_run(&self.pool, &self.schema, job.id).await {
            Ok(()) => JobResult::success(json!(null)),
            Err(e) => JobResult::failure(JobError::retryable(e.to_string())),
        }
    }
}
