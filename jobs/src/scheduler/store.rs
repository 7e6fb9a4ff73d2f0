//! Where a scheduler remembers last runs across restarts: the
//! [`LastRunStore`] trait, [`MemoryLastRunStore`], and the boxed view the
//! scheduler keeps.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use parking_lot::Mutex;

use crate::error::Result;

/// Remembers when each task last ran, so that a restarted scheduler knows
/// which occurrences it missed while it was down.
///
/// Without a store, a scheduler only knows what happened in its own
/// process: after a restart, the first occurrence after the start is the
/// next run and nothing counts as missed. With one shared by all processes
/// (a table, a Redis hash), a task whose occurrence fell into the downtime
/// runs once on start ([`MissedRuns::RunOnce`](crate::MissedRuns::RunOnce))
/// or skips it ([`MissedRuns::Skip`](crate::MissedRuns::Skip)).
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use chrono::{DateTime, Utc};
/// use jobs::LastRunStore;
///
/// #[derive(Default)]
/// struct MyStore(Mutex<HashMap<String, DateTime<Utc>>>);
///
/// impl LastRunStore for MyStore {
///     async fn load(&self, task: &str) -> Result<Option<DateTime<Utc>>, jobs::Error> {
///         Ok(self.0.lock().unwrap().get(task).copied())
///     }
///     async fn save(&self, task: &str, occurrence: DateTime<Utc>) -> Result<(), jobs::Error> {
///         let mut map = self.0.lock().unwrap();
///         let slot = map.entry(task.to_owned()).or_insert(occurrence);
///         *slot = (*slot).max(occurrence);
///         Ok(())
///     }
/// }
/// ```
pub trait LastRunStore: Send + Sync + 'static {
    /// The latest occurrence of `task` that ran, if any is known.
    fn load(&self, task: &str) -> impl Future<Output = Result<Option<DateTime<Utc>>>> + Send;

    /// Records that the occurrence at `occurrence` of `task` ran. Should keep
    /// the later of the stored time and this one (several processes save).
    fn save(
        &self,
        task: &str,
        occurrence: DateTime<Utc>,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// A [`LastRunStore`] in memory, shared by its clones: survives a
/// scheduler, not the process (useful in tests, and to hand state from one
/// scheduler to the next within a process).
#[derive(Clone, Debug, Default)]
pub struct MemoryLastRunStore {
    runs: Arc<Mutex<HashMap<String, DateTime<Utc>>>>,
}

impl MemoryLastRunStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl LastRunStore for MemoryLastRunStore {
    async fn load(&self, task: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(self.runs.lock().get(task).copied())
    }

    async fn save(&self, task: &str, occurrence: DateTime<Utc>) -> Result<()> {
        let mut runs = self.runs.lock();
        let slot = runs.entry(task.to_owned()).or_insert(occurrence);
        *slot = (*slot).max(occurrence);
        Ok(())
    }
}

/// A dyn-compatible view of [`LastRunStore`], as the scheduler holds it.
pub(super) trait DynStore: Send + Sync + 'static {
    fn load<'a>(&'a self, task: &'a str) -> BoxFuture<'a, Result<Option<DateTime<Utc>>>>;
    fn save<'a>(&'a self, task: &'a str, occurrence: DateTime<Utc>) -> BoxFuture<'a, Result<()>>;
}

impl<S: LastRunStore> DynStore for S {
    fn load<'a>(&'a self, task: &'a str) -> BoxFuture<'a, Result<Option<DateTime<Utc>>>> {
        Box::pin(LastRunStore::load(self, task))
    }

    fn save<'a>(&'a self, task: &'a str, occurrence: DateTime<Utc>) -> BoxFuture<'a, Result<()>> {
        Box::pin(LastRunStore::save(self, task, occurrence))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[tokio::test]
    async fn the_memory_store_keeps_the_latest_run() {
        let store = MemoryLastRunStore::new();
        assert_eq!(LastRunStore::load(&store, "t").await.unwrap(), None);
        LastRunStore::save(&store, "t", utc(2024, 1, 1, 2, 0, 0))
            .await
            .unwrap();
        LastRunStore::save(&store, "t", utc(2023, 1, 1, 2, 0, 0))
            .await
            .unwrap();
        assert_eq!(
            LastRunStore::load(&store.clone(), "t").await.unwrap(),
            Some(utc(2024, 1, 1, 2, 0, 0))
        );
    }
}
