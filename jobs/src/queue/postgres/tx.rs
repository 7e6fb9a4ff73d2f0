//! [`PostgresTx`]: enqueueing inside the caller's transaction.

use sqlx::{Postgres, Transaction};
use tokio::sync::Mutex;

use super::PostgresJobQueue;
use crate::error::Result;
use crate::job::Job;
use crate::queue::{Enqueue, Enqueued};

/// Enqueues into the caller's transaction; from
/// [`PostgresJobQueue::with_tx`]. The jobs exist if and only if the
/// transaction commits; workers are woken at commit (NOTIFY is
/// transactional), so none ever sees a job that was rolled back.
///
/// A failed enqueue (a taken id, say) fails the statement, which in
/// PostgreSQL aborts the transaction: roll it back.
pub struct PostgresTx<'a, 'c> {
    queue: &'a PostgresJobQueue,
    tx: Mutex<&'a mut Transaction<'c, Postgres>>,
}

impl<'a, 'c> PostgresTx<'a, 'c> {
    pub(super) fn new(queue: &'a PostgresJobQueue, tx: &'a mut Transaction<'c, Postgres>) -> Self {
        PostgresTx {
            queue,
            tx: Mutex::new(tx),
        }
    }
}

impl std::fmt::Debug for PostgresTx<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTx")
            .field("schema", &self.queue.schema())
            .finish_non_exhaustive()
    }
}

impl Enqueue for PostgresTx<'_, '_> {
    async fn push(&self, job: Job) -> Result<Enqueued> {
        let mut done = self.push_many(vec![job]).await?;
        Ok(done.remove(0))
    }

    /// All or none, in one statement of the transaction.
    async fn push_many(&self, jobs: Vec<Job>) -> Result<Vec<Enqueued>> {
        let mut tx = self.tx.lock().await;
        self.queue.shared().insert(&mut tx, &jobs).await
    }
}
