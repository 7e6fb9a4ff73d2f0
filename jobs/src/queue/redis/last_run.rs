//! [`RedisLastRunStore`]: the last run of each periodic task, in Redis.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Shared;
use crate::error::Result;
use crate::scheduler::LastRunStore;

/// A [`LastRunStore`] in Redis (the hash `jobs:{NAME}:last_run`), shared by
/// every process: a restarted scheduler catches up on the occurrences it
/// missed, per its [`MissedRuns`](crate::MissedRuns) policy. Get one with
/// [`RedisJobQueue::last_run_store`](super::RedisJobQueue::last_run_store).
#[derive(Clone)]
pub struct RedisLastRunStore {
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisLastRunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLastRunStore")
            .field("key", &self.shared.keys.last_run)
            .finish()
    }
}

impl LastRunStore for RedisLastRunStore {
    async fn load(&self, task: &str) -> Result<Option<DateTime<Utc>>> {
        let shared = &self.shared;
        let mut cmd = redis::cmd("HGET");
        cmd.arg(&shared.keys.last_run).arg(task);
        let ms: Option<i64> = shared.call("last_run", &cmd).await?;
        Ok(ms.and_then(DateTime::<Utc>::from_timestamp_millis))
    }

    async fn save(&self, task: &str, occurrence: DateTime<Utc>) -> Result<()> {
        let shared = &self.shared;
        let mut call = shared.scripts.save_last_run.prepare_invoke();
        call.key(&shared.keys.last_run)
            .arg(task)
            .arg(occurrence.timestamp_millis());
        let _: i64 = shared.call("last_run", &call).await?;
        Ok(())
    }
}
