//! The migrator: applies the migrations of `sql::MIGRATIONS` not recorded in
//! `<schema>.jobs_migrations`, in order, each in its own transaction, under
//! a transaction-level advisory lock keyed by the schema (so concurrent
//! processes apply each once).

use sqlx::postgres::PgPool;
use sqlx::{Acquire, Row};

use sqlx::AssertSqlSafe;

use super::backend;
use super::sql::{self, MIGRATIONS, ident};
use crate::error::Result;

/// Applies what is missing; returns how many migrations ran.
pub(super) async fn run(pool: &PgPool, schema: &str) -> Result<usize> {
    let err = |e| backend("migrate", e);
    let quoted = ident(schema);
    let mut conn = pool.acquire().await.map_err(err)?;
    let mut applied = 0;
    for &(version, name, text) in MIGRATIONS {
        let mut tx = conn.begin().await.map_err(err)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7301))")
            .bind(format!("jobs migrations {schema}"))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {quoted};
             CREATE TABLE IF NOT EXISTS {quoted}.jobs_migrations (
                 version    integer     PRIMARY KEY,
                 name       text        NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );"
        )))
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        let done = sqlx::query(AssertSqlSafe(format!(
            "SELECT 1 AS done FROM {quoted}.jobs_migrations WHERE version = $1"
        )))
        .bind(version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err)?
        .is_some_and(|row| row.get::<i32, _>("done") == 1);
        if done {
            tx.rollback().await.map_err(err)?;
            continue;
        }
        sqlx::raw_sql(AssertSqlSafe(sql::migration(text, schema)))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {quoted}.jobs_migrations (version, name) VALUES ($1, $2)"
        )))
        .bind(version)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        applied += 1;
    }
    Ok(applied)
}

impl super::PostgresJobQueue {
    /// Whether the queue's schema holds the jobs tables: a migration ran in
    /// it before. [`AnyQueue::open`](crate::AnyQueue::open) uses it so an
    /// operator tool with a mistyped schema name says so instead of
    /// creating an empty schema.
    pub async fn schema_exists(&self) -> Result<bool> {
        let shared = self.shared();
        let table = format!("{}.jobs_migrations", ident(&shared.schema));
        let found: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(table)
            .fetch_one(&shared.pool)
            .await
            .map_err(|e| backend("schema_exists", e))?;
        Ok(found.is_some())
    }
}
