//! [`PostgresLastRunStore`]: the last run of each periodic task, in
//! PostgreSQL.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Shared, sql};
use crate::error::Result;
use crate::scheduler::LastRunStore;

/// A [`LastRunStore`] in PostgreSQL (the table `last_runs` of the queue's
/// schema), shared by every process: a restarted scheduler catches up on
/// the occurrences it missed, per its [`MissedRuns`](crate::MissedRuns)
/// policy. Get one with
/// [`PostgresJobQueue::last_run_store`](super::PostgresJobQueue::last_run_store).
///
/// Times are kept to the microsecond. A save keeps the later of the stored
/// time and the new one, in one statement, so schedulers in several
/// processes may save in any order.
#[derive(Clone)]
pub struct PostgresLastRunStore {
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for PostgresLastRunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresLastRunStore")
            .field("schema", &self.shared.schema)
            .finish()
    }
}

impl LastRunStore for PostgresLastRunStore {
    async fn load(&self, task: &str) -> Result<Option<DateTime<Utc>>> {
        let shared = &self.shared;
        shared
            .bounded(
                "last_run",
                sqlx::query_scalar(sql::safe(&shared.sql.last_run_load))
                    .bind(task)
                    .fetch_optional(&shared.pool),
            )
            .await
    }

    async fn save(&self, task: &str, occurrence: DateTime<Utc>) -> Result<()> {
        let shared = &self.shared;
        shared
            .bounded(
                "last_run",
                sqlx::query(sql::safe(&shared.sql.last_run_save))
                    .bind(task)
                    .bind(occurrence)
                    .execute(&shared.pool),
            )
            .await?;
        Ok(())
    }
}
