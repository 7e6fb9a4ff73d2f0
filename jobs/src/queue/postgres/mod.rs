//! The PostgreSQL queue: [`PostgresJobQueue`] (cargo feature `postgres`).
//!
//! # Schema
//!
//! Every table of a queue lives in one schema (`jobs` by default,
//! [`PostgresJobQueueBuilder::schema`]), so several applications share a
//! database without meeting. The tables are made by versioned, forward-only
//! migrations (`sql/migrations/NNNN_name.sql`), which
//! [`PostgresJobQueue::migrate`] (and [`connect`](PostgresJobQueue::connect))
//! apply under an advisory lock, each in its own transaction, recording
//! them in `jobs_migrations`: running them again, from any number of
//! processes at once, changes nothing.
//!
//! | table / index      | holds                                                              |
//! |--------------------|--------------------------------------------------------------------|
//! | `jobs`             | one row per job: status, attempts, lease token and deadline, times, result, progress, the failed attempts' errors (`errors`, the last 25); the job as enqueued in `record` (jsonb) |
//! | `jobs_waiting`     | partial index `(queue, priority, run_at, seq)` of the waiting jobs: reserve |
//! | `jobs_running`     | partial index `(lease_until)` of the running jobs: lease recovery  |
//! | `jobs_finished`    | partial index `(completed_at)` of the finished jobs: retention     |
//! | `jobs_created`     | `(status, created_at DESC)`: `list`, `find_jobs`                   |
//! | `jobs_by_name`     | `(status, name, created_at DESC, id DESC)`: `find_jobs` by name    |
//! | `jobs_unique`      | partial index `(unique_key, seq DESC)`: a unique key's holder      |
//! | `jobs_held`        | partial index `(held, priority, run_at, seq)` of the held jobs     |
//! | `slots`            | per concurrency key (or limited queue): its max and running jobs   |
//! | `rates`            | per rate key (or rate-limited queue): its rate and window's starts |
//! | `queues`           | every named queue that had a job, and whether it is paused         |
//! | `last_runs`        | per periodic task, the last occurrence run ([`PostgresLastRunStore`]) |
//! | `throughput`       | attempts ended per minute (and shard: the counting connection), the last 24 hours |
//! | `workers`          | each worker's latest report and when it lapses                     |
//! | `job_seq`, `lease_tokens` | sequences: FIFO order, fencing tokens                       |
//! | `workflows`        | per workflow or batch: its name, kind and counts (total, pending, completed, failed, cancelled) |
//! | `job_deps`         | per (step, dependency): whether the dependency finished, and its status and result once recorded |
//! | `jobs_workflow`    | partial index `(workflow_id, wf_seq)` of the steps: a workflow's steps in stored order |
//! | `jobs_migrations`  | the migrations applied                                             |
//!
//! The columns are authoritative for the state they hold; `record` is never
//! rewritten by a state change (only by `retry`). Each query is one `.sql`
//! file under `sql/`, with a comment on what it does and the index it uses.
//!
//! # Delivery
//!
//! Reserve picks the next waiting jobs of a queue with `FOR UPDATE SKIP
//! LOCKED` in a CTE (concurrent workers take different jobs, none waits, and
//! the update cannot touch more rows than the limit), most urgent first,
//! then in the order they became ready (`run_at`, then `seq`). Each
//! reservation gets a fresh token from `lease_tokens`; `finish`, `release`,
//! `heartbeat` and `progress` only act on a row that still carries it and is
//! still running: a worker whose lease was taken over changes nothing. A job
//! whose lease runs out goes back by the next
//! [`recover_expired`](JobQueue::recover_expired) of any worker, the attempt
//! counted (failed if it was the last): at-least-once delivery.
//!
//! Each operation is one statement (a finish with a recurring job's next
//! run is two, in one transaction), so each is atomic, and an enqueue of
//! many jobs is all or none.
//!
//! Finishes that arrive while one is on its way are sent together, in one
//! statement and one commit; so are concurrent single enqueues of jobs
//! that are not unique (a batch refused because of one of its jobs is sent
//! again job by job, so each enqueue is still accepted or refused on its
//! own). Reserve calls that arrive while one is on its way, with the same
//! takes (queues, in order, and queue-wide limits) and the same lease,
//! share one statement per take for the sum of their maxima, each caller
//! getting at most its own; the flow-control limits are enforced over the
//! whole statement. A reserve commits without waiting for its WAL flush:
//! lost in a crash, it only puts its jobs back to waiting, and the flush
//! of any later finish covers it. Enqueues and finishes wait for theirs,
//! so with the default `synchronous_commit` an acknowledged job or
//! outcome survives a crash of the server.
//!
//! # Wake-ups and events
//!
//! The statements that make a job ready send one `NOTIFY` per statement
//! (not per job) on the channel `<schema>_jobs`; a dedicated connection of
//! each process LISTENs there and wakes its idle workers. Events (started,
//! progress, finished, released) travel on the same channel, sent in the
//! statement that changed the job, so they are delivered when it commits.
//! Notifications are lost while the listener reconnects: the polling
//! interval is the fallback.
//!
//! # Transactional enqueue
//!
//! [`PostgresJobQueue::with_tx`] enqueues inside the caller's own
//! transaction: the job exists if and only if that transaction commits, and
//! the wake-up is delivered at commit, so no worker ever sees a job that was
//! rolled back.
//!
//! # Retention
//!
//! A background task deletes finished jobs beyond
//! [`max_finished`](PostgresJobQueueBuilder::max_finished) and older than
//! [`finished_ttl`](PostgresJobQueueBuilder::finished_ttl), once a second,
//! 1,000 rows per statement (no long transactions).
//!
//! # Periodic tasks across processes
//!
//! Schedulers in several processes may run the same periodic tasks on one
//! schema: each occurrence is enqueued once (its job id is derived from the
//! task and the occurrence, and the primary key refuses a taken id, in the
//! insert itself). Give them [`PostgresJobQueue::last_run_store`] so a
//! restarted scheduler catches up on missed runs:
//!
//! ```no_run
//! use jobs::prelude::*;
//!
//! # #[tokio::main] async fn main() -> Result<(), jobs::Error> {
//! let queue = PostgresJobQueue::connect("postgres://postgres@127.0.0.1/app").await?;
//! let scheduler = JobScheduler::builder()
//!     .last_run_store(queue.last_run_store())
//!     .build();
//! let worker = BackgroundJobWorker::builder()
//!     .queue(queue)
//!     .scheduler(scheduler)
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! # Unique jobs
//!
//! A unique job's key is in its row (`unique_key`, `unique_at`); the holder
//! of a key is the newest job with it. An enqueue with unique jobs runs in
//! a transaction that first takes an advisory lock per key (in key order,
//! so enqueues cannot deadlock), then reads the holders and inserts: two
//! enqueues of one key cannot both store a job. Retention and purge free a
//! key by deleting its holder.
//!
//! # Concurrency limits
//!
//! `slots` has a row per concurrency key (and per queue whose takes limit
//! its concurrency, keyed `\u{1}q:<queue>`) counting its running jobs.
//! Reserve counts the candidates of each key and takes what is free in one
//! `UPDATE` of those rows, whose row locks serialize concurrent reserves
//! of one key (EvalPlanQual re-reads a row another reserve just changed);
//! a queue's row is locked (`FOR UPDATE`) before its candidates are
//! picked. A candidate over its key's limit is *held* (`held` = its key):
//! it leaves the waiting index but keeps its `run_at` and `seq`, so it
//! goes back to its place. Whatever ends a run (finish, release, cancel,
//! lease recovery) gives its slots back in the same statement, then
//! `unhold.sql` puts back as many held jobs per key as there are free
//! slots, waking the workers; lease recovery also runs it, as a backstop
//! for a hold that committed after the finish that freed its slot.
//!
//! # Workflows and batches
//!
//! A step ([`Job::step`]) is a row with `workflow_id` set; while it waits
//! for dependencies it is pending and *held* (`held` = U+0003, a key no
//! concurrency limit may have), so it is out of the waiting index and
//! reserve never sees it; `waiting` counts the jobs it still waits for.
//! Resolution is done by triggers of migration `0008_workflows`, inside the
//! statement that makes a step final — a finish (batched with plain jobs,
//! which the triggers' `WHEN` clauses leave alone), a cancel, a lease
//! recovery failing the last attempt, a delete or purge of a step not
//! finished (its dependants see it cancelled), or a cancel made by
//! resolution itself (the cascade). Per dependant still waiting it records
//! the dependency's status and result in `job_deps`, and decrements
//! `waiting` with an `UPDATE .. RETURNING` on the dependant's row, whose
//! lock serializes concurrent finishes: only the transaction that reaches
//! 0 places it (ready or at its scheduled time, waking the workers). A
//! step stored is checked by its insert trigger (its dependencies exist,
//! the steps it blocks still wait), which locks each dependency's row
//! (`FOR SHARE`) so a dependency cannot end unseen between that read and
//! the commit; a refusal fails the whole statement: nothing stored.
//! Resolution locks several rows (dependency, dependants, workflow), so
//! statements ending steps of two workflows in opposite orders can
//! deadlock; PostgreSQL then aborts one, which is sent again.
//!
//! # Rate limits
//!
//! `rates` has a row per rate key (and per queue whose takes limit its
//! rate) holding the starts in its current window. Reserve locks the rows
//! its candidates need (`FOR UPDATE`, in key order), counts the room in
//! each window, holds the candidates over it (`held` = `\u{2}` + key) and
//! appends the starts it made. A job must pass its concurrency key, then
//! its rate key; what the chosen jobs take is written back, so nothing is
//! taken for a job that was held. An empty reserve, or one that held
//! jobs, runs `unhold.sql`, which also says when the next full window
//! opens: the waiting workers sleep until then, not a polling interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::{Acquire, AssertSqlSafe, Postgres, Row};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{
    CancelOutcome, DeleteOutcome, Enqueue, Enqueued, JobFilter, JobPage, JobQueue, Lease, Outcome,
    QueueAdmin, QueueCounts, QueueInfo, Reservation, THROUGHPUT_MINUTES, Take, Throughput,
    WorkerInfo,
};
use crate::error::{BackendError, Error, Result};
use crate::events::JobEvent;
use crate::job::{Job, JobId, JobStatus};
use crate::workflow::{DependencyResult, WorkflowId, WorkflowKind, WorkflowStatus, WorkflowStep};

mod batch;
mod builder;
mod last_run;
mod listen;
mod migrate;
mod row;
mod sql;
#[cfg(test)]
mod tests;
mod tx;

pub use builder::PostgresJobQueueBuilder;
pub use last_run::PostgresLastRunStore;
pub use tx::PostgresTx;

use super::wake::Wake;
use row::Batch;
use sql::Sql;

/// The default schema.
pub const DEFAULT_SCHEMA: &str = "jobs";

/// A queue in PostgreSQL, shared by any number of worker processes.
///
/// Build it from a URL ([`connect`](Self::connect), or
/// [`builder`](Self::builder) for other settings) or from a pool the
/// application already has ([`PostgresJobQueueBuilder::pool`]). Clones
/// share one pool and one listener. Every call is bounded by a timeout, so
/// an unreachable database is an `Err`, never a hang. See the [module
/// docs](self) for the schema and the guarantees.
///
/// ```no_run
/// use jobs::prelude::*;
///
/// # #[tokio::main] async fn main() -> Result<(), jobs::Error> {
/// let queue = PostgresJobQueue::connect("postgres://postgres@127.0.0.1/app").await?;
/// let worker = BackgroundJobWorker::builder().queue(queue).build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresJobQueue {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// Finish reports, to the task that sends them in batches.
    finisher: tokio::sync::mpsc::UnboundedSender<batch::FinishRequest>,
    /// Single enqueues, to the task that sends them in batches.
    enqueuer: tokio::sync::mpsc::UnboundedSender<batch::EnqueueRequest>,
    /// Reserve calls, to the task that merges those of the same takes.
    reserver: tokio::sync::mpsc::UnboundedSender<batch::ReserveRequest>,
    /// The wake epoch at the start of the last reserve.
    seen_epoch: AtomicU64,
    /// Stops the listener and the pruner when the last clone goes.
    _stop: DropGuard,
}

pub(super) struct Shared {
    pool: PgPool,
    schema: String,
    channel: String,
    sql: Sql,
    timeout: Duration,
    max_finished: u64,
    finished_ttl_us: i64,
    wake: Wake,
    revoked: Notify,
    events: broadcast::Sender<JobEvent>,
    stop: CancellationToken,
}

/// A database error, saying what was being done.
fn backend(what: &str, e: sqlx::Error) -> Error {
    let transient = matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_)
    );
    Error::Backend(
        BackendError::new(format!("postgres: {what}"))
            .with_source(e)
            .transient(transient),
    )
}

/// Whether `e` is a deadlock (or serialization failure) the database
/// broke by aborting this statement: nothing of it was done, and sending it
/// again is safe. Resolving workflow steps locks several rows (a
/// dependency's, its dependants', the workflow's), so two statements ending
/// steps of two workflows in opposite orders can deadlock.
fn deadlocked(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "40P01" || code == "40001")
}

/// How many times a deadlocked statement is sent again.
const DEADLOCK_RETRIES: usize = 8;

/// The `InvalidArgument` error for a workflow step the database refused
/// (SQLSTATE `JW001`, raised by `jobs_step_stored`: a dependency that does
/// not exist, a blocked step that no longer waits).
fn refused(e: &sqlx::Error) -> Option<Error> {
    let db = e.as_database_error()?;
    if db.code().as_deref() != Some("JW001") {
        return None;
    }
    Some(Error::InvalidArgument(db.message().to_owned()))
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4)
}

impl Shared {
    fn timed_out(&self, what: &str) -> Error {
        Error::Backend(BackendError::new(format!(
            "postgres: {what} timed out after {:?}",
            self.timeout
        )))
    }

    /// Runs `fut` within the timeout.
    async fn bounded<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = std::result::Result<T, sqlx::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(result) => result.map_err(|e| backend(what, e)),
            Err(_) => Err(self.timed_out(what)),
        }
    }

    /// Runs the future `make` makes within the timeout, again (a fresh
    /// one) while the database aborts it for a deadlock.
    async fn bounded_retry<T, F, Fut>(&self, what: &str, mut make: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, sqlx::Error>>,
    {
        let mut tries = 0;
        loop {
            match tokio::time::timeout(self.timeout, make()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) if deadlocked(&e) && tries < DEADLOCK_RETRIES => tries += 1,
                Ok(Err(e)) => return Err(backend(what, e)),
                Err(_) => return Err(self.timed_out(what)),
            }
        }
    }

    /// Stores a batch on `conn` (a connection of the pool or the caller's
    /// transaction): all or none, but for unique conflicts. A batch with
    /// unique jobs takes their keys' locks first, so `conn` must be in a
    /// transaction then (the locks last until it ends).
    async fn insert(&self, conn: &mut PgConnection, jobs: &[Job]) -> Result<Vec<Enqueued>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut batch = Batch::of(jobs)?;
        let mut answers: Vec<Enqueued> = jobs.iter().map(|j| Enqueued::new(j.id)).collect();
        if batch.unique_keys.iter().any(Option::is_some) {
            let keep = self.check_unique(&mut *conn, jobs, &mut answers).await?;
            if !keep.iter().any(|k| *k) {
                return Ok(answers);
            }
            batch.retain(&keep);
        }
        let query = batch.bind(sqlx::query(sql::safe(&self.sql.enqueue)));
        match tokio::time::timeout(self.timeout, query.execute(&mut *conn)).await {
            Ok(Ok(_)) => Ok(answers),
            Ok(Err(e)) => Err(duplicate(&e, jobs)
                .or_else(|| refused(&e))
                .unwrap_or_else(|| backend("enqueue", e))),
            Err(_) => Err(self.timed_out("enqueue")),
        }
    }

    /// Locks the batch's unique keys and decides, in order, which jobs a
    /// twin blocks (an earlier job of the batch included): those get a
    /// conflict answer and are left out (`false`).
    async fn check_unique(
        &self,
        conn: &mut PgConnection,
        jobs: &[Job],
        answers: &mut [Enqueued],
    ) -> Result<Vec<bool>> {
        let keys: Vec<String> = jobs
            .iter()
            .filter_map(|j| j.unique.as_ref().map(|u| u.key.clone()))
            .collect();
        self.bounded(
            "enqueue",
            sqlx::query(sql::safe(&self.sql.unique_lock))
                .bind(&keys)
                .execute(&mut *conn),
        )
        .await?;
        let rows = self
            .bounded(
                "enqueue",
                sqlx::query(sql::safe(&self.sql.unique_holders))
                    .bind(&keys)
                    .fetch_all(&mut *conn),
            )
            .await?;
        let now: DateTime<Utc> = rows.first().map(|r| r.get("now")).unwrap_or_else(Utc::now);
        // key → (holder, its status, when it took the key)
        let mut holders = std::collections::HashMap::new();
        for row in &rows {
            let Some(key) = row.get::<Option<String>, _>("unique_key") else {
                continue;
            };
            let status = row::status_of(&row.get::<String, _>("status"));
            let at: Option<DateTime<Utc>> = row.get("unique_at");
            if let Some(status) = status {
                let id = JobId::from(row.get::<uuid::Uuid, _>("id"));
                holders.insert(key, (id, status, at.unwrap_or(now)));
            }
        }
        let mut keep = vec![true; jobs.len()];
        for (i, job) in jobs.iter().enumerate() {
            let Some(unique) = &job.unique else { continue };
            if let Some(&(holder, status, at)) = holders.get(&unique.key) {
                let within = unique.period.is_none_or(|period| {
                    chrono::Duration::from_std(period)
                        .ok()
                        .and_then(|p| at.checked_add_signed(p))
                        .is_none_or(|end| end > now)
                });
                if unique.blocks(status) && within {
                    answers[i] = Enqueued::conflict(holder);
                    keep[i] = false;
                    continue;
                }
            }
            holders.insert(unique.key.clone(), (job.id, JobStatus::Pending, now));
        }
        Ok(keep)
    }

    /// [`insert`](Self::insert) on a connection of the pool, in a
    /// transaction if the batch has unique jobs; again if a batch with
    /// workflow steps deadlocked (their trigger locks the rows they name).
    async fn insert_pooled(&self, jobs: &[Job]) -> Result<Vec<Enqueued>> {
        let mut tries = 0;
        loop {
            match self.insert_pooled_once(jobs).await {
                Err(Error::Backend(e))
                    if tries < DEADLOCK_RETRIES
                        && std::error::Error::source(&e)
                            .and_then(|s| s.downcast_ref::<sqlx::Error>())
                            .is_some_and(deadlocked) =>
                {
                    tries += 1;
                }
                done => return done,
            }
        }
    }

    async fn insert_pooled_once(&self, jobs: &[Job]) -> Result<Vec<Enqueued>> {
        let unique = jobs.iter().any(|j| j.unique.is_some());
        let work = async {
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(|e| backend("enqueue", e))?;
            if !unique {
                return self.insert(&mut conn, jobs).await;
            }
            let mut tx = conn.begin().await.map_err(|e| backend("enqueue", e))?;
            let answers = self.insert(&mut tx, jobs).await?;
            tx.commit().await.map_err(|e| backend("enqueue", e))?;
            Ok(answers)
        };
        match tokio::time::timeout(self.timeout * 2, work).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out("enqueue")),
        }
    }

    /// Puts held jobs back where slots are free (`unhold.sql`), if `rows`
    /// (of a statement with a `freed` column) gave any slot back.
    async fn unhold_after(&self, rows: &[PgRow]) -> Result<()> {
        if rows.iter().any(|r| r.get::<i64, _>("freed") > 0) {
            self.unhold().await?;
        }
        Ok(())
    }

    /// Puts held jobs back where limits have room (`unhold.sql`), and
    /// tells the waiting workers when the next full rate window opens.
    async fn unhold(&self) -> Result<u64> {
        let row = self
            .bounded(
                "unhold",
                sqlx::query(sql::safe(&self.sql.unhold)).fetch_one(&self.pool),
            )
            .await?;
        if let Some(opens) = row.get::<Option<i64>, _>("next_open_us") {
            self.wake.wake(opens.max(1));
        }
        Ok(row.get::<i64, _>("back").max(0) as u64)
    }

    /// Reserves up to `max` (at most [`batch::MAX_RESERVE`]) jobs of
    /// `take`'s queue under `lease`, in one `reserve.sql` statement (after
    /// upserting the rows of the take's queue-wide limits).
    pub(super) async fn reserve_take(
        &self,
        take: &Take,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<(Job, u64)>> {
        let slots_key = match take.limits.concurrency {
            Some(limit) => {
                let key = format!("\u{1}q:{}", take.queue);
                self.bounded(
                    "reserve",
                    sqlx::query(sql::safe(&self.sql.queue_slots))
                        .bind(&key)
                        .bind(i32::try_from(limit).unwrap_or(i32::MAX))
                        .execute(&self.pool),
                )
                .await?;
                Some(key)
            }
            None => None,
        };
        let rates_key = match take.limits.rate {
            Some(rate) => {
                let key = format!("\u{1}q:{}", take.queue);
                self.bounded(
                    "reserve",
                    sqlx::query(sql::safe(&self.sql.queue_rates))
                        .bind(&key)
                        .bind(i32::try_from(rate.max).unwrap_or(i32::MAX))
                        .bind(micros(rate.period))
                        .execute(&self.pool),
                )
                .await?;
                Some(key)
            }
            None => None,
        };
        let max = max.min(batch::MAX_RESERVE);
        let rows = self
            .bounded(
                "reserve",
                sqlx::query(sql::safe(&self.sql.reserve))
                    .bind(take.queue.as_ref())
                    .bind(i64::try_from(max).unwrap_or(1000))
                    .bind(micros(lease))
                    .bind(slots_key)
                    .bind(rates_key)
                    .fetch_all(&self.pool),
            )
            .await?;
        if rows.is_empty() || rows.iter().any(|r| r.get::<i64, _>("held") > 0) {
            // Held jobs may have room now (a slot freed while they were
            // being held), and the waiting workers need the time the
            // next full rate window opens.
            self.unhold().await?;
        }
        Ok(self.decode_all(rows).await)
    }

    /// Gives the jobs of `leases` back (`release.sql`); how many leases
    /// still held.
    pub(super) async fn release_leases(&self, leases: &[Lease]) -> Result<usize> {
        if leases.is_empty() {
            return Ok(0);
        }
        let ids: Vec<uuid::Uuid> = leases.iter().map(|l| *l.job_id.as_uuid()).collect();
        let tokens: Vec<i64> = leases.iter().map(|l| l.token as i64).collect();
        let rows = self
            .bounded(
                "release",
                sqlx::query(sql::safe(&self.sql.release))
                    .bind(&ids)
                    .bind(&tokens)
                    .fetch_all(&self.pool),
            )
            .await?;
        self.unhold_after(&rows).await?;
        Ok(rows.len())
    }

    /// Decodes rows of whole jobs; a row that does not parse is failed in
    /// place (its job only) and left out.
    pub(super) async fn decode_all(&self, rows: Vec<PgRow>) -> Vec<(Job, u64)> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            match row::decode(&row) {
                Ok(decoded) => out.push(decoded),
                Err(reason) => {
                    let id: Option<uuid::Uuid> = row.try_get("id").ok();
                    tracing::error!(schema = %self.schema, ?id, %reason, "a job row that does not parse");
                    if let Some(id) = id {
                        self.quarantine(id, &reason).await;
                    }
                }
            }
        }
        out
    }

    /// Fails a job whose row cannot be read.
    async fn quarantine(&self, id: uuid::Uuid, reason: &str) {
        let sql = format!(
            "UPDATE {}.jobs SET status = 'F', completed_at = now(), lease_until = NULL, \
             last_error = $2 WHERE id = $1",
            sql::ident(&self.schema)
        );
        let message = format!("the stored job cannot be read: {reason}");
        let done = self
            .bounded(
                "quarantine",
                sqlx::query(AssertSqlSafe(sql))
                    .bind(id)
                    .bind(message)
                    .execute(&self.pool),
            )
            .await;
        if let Err(e) = done {
            tracing::error!(schema = %self.schema, error = %e, "could not fail a corrupt job");
        }
    }

    async fn prune_once(&self, limit: i64) -> Result<u64> {
        let row = self
            .bounded(
                "prune",
                sqlx::query(sql::safe(&self.sql.prune))
                    .bind(i64::try_from(self.max_finished).unwrap_or(i64::MAX))
                    .bind(self.finished_ttl_us)
                    .bind(limit)
                    .fetch_one(&self.pool),
            )
            .await?;
        Ok(row.get::<i64, _>("removed").max(0) as u64)
    }
}

/// The `Duplicate` error for a unique violation of the primary key (its
/// detail names the id taken).
fn duplicate(e: &sqlx::Error, jobs: &[Job]) -> Option<Error> {
    let db = e.as_database_error()?;
    if db.code().as_deref() != Some("23505") || db.constraint() != Some("jobs_pkey") {
        return None;
    }
    let detail = db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .and_then(|pg| pg.detail().map(str::to_owned))
        .unwrap_or_default();
    let taken = jobs
        .iter()
        .find(|j| detail.contains(&j.id.to_string()))
        .or(jobs.first())?;
    Some(Error::Duplicate(taken.id))
}

impl PostgresJobQueue {
    /// Connects to the database at `url`, with the default schema (`jobs`),
    /// and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder(url).connect().await
    }

    /// Settings for a queue on the database at `url`.
    pub fn builder(url: &str) -> PostgresJobQueueBuilder {
        PostgresJobQueueBuilder::new(url)
    }

    fn from_shared(shared: Shared) -> Self {
        let shared = Arc::new(shared);
        let stop = shared.stop.clone().drop_guard();
        tokio::spawn(listen::listen(shared.clone()));
        tokio::spawn(listen::prune(shared.clone()));
        let (finisher, finishes) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(batch::flush_finishes(shared.clone(), finishes));
        let (enqueuer, enqueues) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(batch::flush_enqueues(shared.clone(), enqueues));
        let (reserver, reserves) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(batch::flush_reserves(shared.clone(), reserves));
        PostgresJobQueue {
            inner: Arc::new(Inner {
                shared,
                finisher,
                enqueuer,
                reserver,
                seen_epoch: AtomicU64::new(u64::MAX),
                _stop: stop,
            }),
        }
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The schema its tables are in.
    pub fn schema(&self) -> &str {
        &self.shared().schema
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.shared().pool
    }

    /// A [`PostgresLastRunStore`] in this queue's schema, so that periodic
    /// tasks catch up on missed runs across restarts.
    pub fn last_run_store(&self) -> PostgresLastRunStore {
        PostgresLastRunStore {
            shared: Arc::clone(&self.inner.shared),
        }
    }

    /// Applies the migrations not applied yet (see the [module
    /// docs](self)); safe to run from many processes at once.
    pub async fn migrate(&self) -> Result<()> {
        migrate::run(&self.shared().pool, &self.shared().schema)
            .await
            .map(|_| ())
    }

    /// Drops the queue's schema and everything in it. For tests and
    /// uninstalling; the queue is unusable afterwards (until `migrate`).
    pub async fn drop_schema(&self) -> Result<()> {
        let shared = self.shared();
        let sql = format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            sql::ident(&shared.schema)
        );
        shared
            .bounded(
                "drop schema",
                sqlx::raw_sql(AssertSqlSafe(sql)).execute(&shared.pool),
            )
            .await?;
        Ok(())
    }

    /// Enqueues inside the caller's transaction: the jobs pushed through
    /// the returned handle exist if and only if `tx` commits, and waiting
    /// workers are woken at commit. The handle is an [`Enqueue`], so the
    /// `enqueue` helpers `#[job]` generates take it.
    ///
    /// ```no_run
    /// use jobs::prelude::*;
    /// use serde_json::json;
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let queue = PostgresJobQueue::connect("postgres://postgres@127.0.0.1/app").await?;
    /// let mut tx = queue.pool().begin().await?;
    /// sqlx::query("INSERT INTO users (email) VALUES ('a@example.com')")
    ///     .execute(&mut *tx)
    ///     .await?;
    /// queue
    ///     .with_tx(&mut tx)
    ///     .enqueue(Job::new("welcome", json!({"to": "a@example.com"})))
    ///     .await?;
    /// tx.commit().await?; // the user and the job, or neither
    /// # Ok(()) }
    /// ```
    pub fn with_tx<'a, 'c>(
        &'a self,
        tx: &'a mut sqlx::Transaction<'c, Postgres>,
    ) -> PostgresTx<'a, 'c> {
        PostgresTx::new(self, tx)
    }
}

impl std::fmt::Debug for PostgresJobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresJobQueue")
            .field("schema", &self.shared().schema)
            .finish_non_exhaustive()
    }
}

impl Enqueue for PostgresJobQueue {
    /// Sent with the other single enqueues that come meanwhile, in one
    /// statement (see `batch`); a unique job on its own, in a transaction,
    /// and a workflow step on its own.
    async fn push(&self, job: Job) -> Result<Enqueued> {
        let shared = self.shared();
        if job.unique.is_none() && job.step.is_none() {
            // Checked here, so a job that cannot be stored fails alone.
            Batch::of(std::slice::from_ref(&job))?;
            let (reply, answer) = tokio::sync::oneshot::channel();
            if let Err(e) = self
                .inner
                .enqueuer
                .send(batch::EnqueueRequest { job, reply })
            {
                // The batcher is gone (its runtime shut down): store directly.
                let job = e.0.job;
                let mut done = shared.insert_pooled(std::slice::from_ref(&job)).await?;
                return done.pop().ok_or_else(|| {
                    Error::Backend(BackendError::new("postgres: no answer to enqueue"))
                });
            }
            return match tokio::time::timeout(shared.timeout * 3, answer).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Err(Error::Backend(BackendError::new(
                    "postgres: the enqueue batcher stopped",
                ))),
                Err(_) => Err(shared.timed_out("enqueue")),
            };
        }
        let mut done = shared.insert_pooled(std::slice::from_ref(&job)).await?;
        done.pop()
            .ok_or_else(|| Error::Backend(BackendError::new("postgres: no answer to enqueue")))
    }

    /// All or none, in one statement.
    async fn push_many(&self, jobs: Vec<Job>) -> Result<Vec<Enqueued>> {
        let shared = self.shared();
        shared.insert_pooled(&jobs).await
    }
}

/// The outcome code, result, last error and due time `finish.sql` takes.
pub(super) type FinishArgs = (
    &'static str,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
);

/// The arguments of `finish.sql` for `outcome`.
fn finish_args(outcome: &Outcome) -> Result<FinishArgs> {
    let json = |result: &crate::result::JobResult| {
        serde_json::to_string(result).map_err(|e| Error::Serialize {
            name: "job result".into(),
            message: e.to_string(),
        })
    };
    Ok(match outcome {
        Outcome::Completed(result) => ("C", Some(json(result)?), None, None),
        Outcome::Retry { result, at } => (
            "T",
            Some(json(result)?),
            result.error.clone(),
            Some(row::ceil_micros(*at)),
        ),
        Outcome::Failed(result) => ("F", Some(json(result)?), result.error.clone(), None),
        Outcome::Cancelled => ("X", None, None, None),
        Outcome::Expired => ("E", None, None, None),
        Outcome::Snoozed { at } => ("S", None, None, Some(row::ceil_micros(*at))),
    })
}

impl JobQueue for PostgresJobQueue {
    /// Sent with the other reserves of the same takes and lease that come
    /// meanwhile: one statement per take for all of them (see `batch`).
    async fn reserve(
        &self,
        _worker: &str,
        takes: &[Take],
        lease: Duration,
    ) -> Result<Vec<Reservation>> {
        let shared = self.shared();
        // Noted before the request is queued, so before the statement that
        // answers it starts: a wake-up meanwhile ends the next wait at once.
        self.inner
            .seen_epoch
            .store(shared.wake.epoch(), Ordering::Release);
        for take in takes {
            crate::job::check_queue_name(&take.queue)?;
            take.limits.validate()?;
        }
        if takes.iter().all(|take| take.max == 0) {
            return Ok(Vec::new());
        }
        let (request, reply) = batch::ReserveRequest::new(takes, lease);
        match self.inner.reserver.send(request) {
            Ok(()) => match tokio::time::timeout(batch::reserve_wait(shared, takes), reply).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Err(Error::Backend(BackendError::new(
                    "postgres: the reserve batcher stopped",
                ))),
                // The jobs reserved for this call, if any, are released
                // when the batcher finds nobody waiting for them.
                Err(_) => Err(shared.timed_out("reserve")),
            },
            // The batcher is gone (its runtime shut down): reserve directly.
            Err(tokio::sync::mpsc::error::SendError(request)) => Ok(shared
                .reserve_group(std::slice::from_ref(&request))
                .await?
                .pop()
                .unwrap_or_default()),
        }
    }

    async fn wait_for_jobs(&self, timeout: Duration) {
        let seen = self.inner.seen_epoch.load(Ordering::Acquire);
        self.shared().wake.wait(seen, timeout).await
    }

    async fn heartbeat(&self, leases: &[Lease], lease: Duration) -> Result<Vec<Lease>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let shared = self.shared();
        let ids: Vec<uuid::Uuid> = leases.iter().map(|l| *l.job_id.as_uuid()).collect();
        let tokens: Vec<i64> = leases.iter().map(|l| l.token as i64).collect();
        let rows = shared
            .bounded(
                "heartbeat",
                sqlx::query(sql::safe(&shared.sql.heartbeat))
                    .bind(&ids)
                    .bind(&tokens)
                    .bind(micros(lease))
                    .fetch_all(&shared.pool),
            )
            .await?;
        let held: std::collections::HashSet<(uuid::Uuid, i64)> = rows
            .iter()
            .map(|r| (r.get::<uuid::Uuid, _>("id"), r.get::<i64, _>("token")))
            .collect();
        Ok(leases
            .iter()
            .filter(|l| !held.contains(&(*l.job_id.as_uuid(), l.token as i64)))
            .copied()
            .collect())
    }

    /// Sent with the other finishes that come meanwhile, in one statement
    /// (see `batch`).
    async fn finish(&self, lease: Lease, outcome: Outcome, next: Option<Job>) -> Result<bool> {
        let shared = self.shared();
        let (request, reply) = batch::FinishRequest::new(lease, &outcome, next)?;
        match self.inner.finisher.send(request) {
            Ok(()) => match tokio::time::timeout(shared.timeout * 2, reply).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Err(Error::Backend(BackendError::new(
                    "postgres: the finish batcher stopped",
                ))),
                Err(_) => Err(shared.timed_out("finish")),
            },
            // The batcher is gone (its runtime shut down): report directly.
            Err(tokio::sync::mpsc::error::SendError(request)) => shared
                .finish_batch(std::slice::from_ref(&request))
                .await
                .map(|held| held.first().copied().unwrap_or(false)),
        }
    }

    async fn progress(&self, lease: Lease, progress: serde_json::Value) -> Result<bool> {
        let value = serde_json::to_string(&progress).map_err(|e| Error::Serialize {
            name: "job progress".into(),
            message: e.to_string(),
        })?;
        let shared = self.shared();
        let rows = shared
            .bounded(
                "progress",
                sqlx::query(sql::safe(&shared.sql.progress))
                    .bind(*lease.job_id.as_uuid())
                    .bind(lease.token as i64)
                    .bind(value)
                    .fetch_all(&shared.pool),
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn release(&self, leases: &[Lease]) -> Result<usize> {
        self.shared().release_leases(leases).await
    }

    async fn recover_expired(&self) -> Result<usize> {
        let shared = self.shared();
        let row = shared
            .bounded_retry("recover_expired", || {
                sqlx::query(sql::safe(&shared.sql.recover)).fetch_one(&shared.pool)
            })
            .await?;
        let n = row.get::<i64, _>("recovered").max(0) as usize;
        // Also the backstop for a slot freed while a reserve was holding
        // jobs of its key (that reserve's hold committed after the
        // finish looked for held jobs).
        shared.unhold().await?;
        if n > 0 {
            tracing::warn!(schema = %shared.schema, recovered = n, "jobs of lost workers returned to the queue");
        }
        Ok(n)
    }

    /// Resolves when a running job was cancelled by any process (a `r`
    /// notification), so the worker checks its leases at once.
    async fn revocations(&self) {
        self.shared().revoked.notified().await;
    }

    /// Upserts the report in the `workers` table, lapsing after `ttl` by
    /// the database's clock.
    async fn report_worker(&self, info: &WorkerInfo, ttl: Duration) -> Result<()> {
        let mut info = info.clone();
        info.last_seen = Utc::now();
        let report = serde_json::to_string(&info).map_err(|e| Error::Serialize {
            name: "worker report".into(),
            message: e.to_string(),
        })?;
        let shared = self.shared();
        shared
            .bounded(
                "report_worker",
                sqlx::query(sql::safe(&shared.sql.report_worker))
                    .bind(&info.id)
                    .bind(report)
                    .bind(micros(ttl))
                    .execute(&shared.pool),
            )
            .await?;
        Ok(())
    }

    async fn remove_worker(&self, id: &str) -> Result<()> {
        let shared = self.shared();
        shared
            .bounded(
                "remove_worker",
                sqlx::query(sql::safe(&shared.sql.remove_worker))
                    .bind(id)
                    .execute(&shared.pool),
            )
            .await?;
        Ok(())
    }

    /// Read from `job_deps` (`dependency_results.sql`).
    async fn dependency_results(&self, id: JobId) -> Result<Vec<DependencyResult>> {
        let shared = self.shared();
        let rows = shared
            .bounded(
                "dependency_results",
                sqlx::query(sql::safe(&shared.sql.dependency_results))
                    .bind(*id.as_uuid())
                    .fetch_all(&shared.pool),
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(status) = row::status_of(&row.get::<String, _>("status")) else {
                continue;
            };
            let result = match row.get::<Option<String>, _>("result") {
                Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                    Error::Backend(
                        BackendError::new(format!(
                            "postgres: a stored result of a dependency of job {id} does not \
                             parse: {e}"
                        ))
                        .transient(false),
                    )
                })?),
                None => None,
            };
            out.push(
                DependencyResult::new(
                    JobId::from(row.get::<uuid::Uuid, _>("parent")),
                    row.get::<String, _>("step"),
                    status,
                )
                .with_result(result),
            );
        }
        Ok(out)
    }
}

impl QueueAdmin for PostgresJobQueue {
    async fn get(&self, id: JobId) -> Result<Option<Job>> {
        let shared = self.shared();
        let rows = shared
            .bounded(
                "get",
                sqlx::query(sql::safe(&shared.sql.get))
                    .bind(*id.as_uuid())
                    .fetch_all(&shared.pool),
            )
            .await?;
        Ok(self
            .shared()
            .decode_all(rows)
            .await
            .pop()
            .map(|(job, _)| job))
    }

    async fn list(&self, status: Option<JobStatus>, limit: usize) -> Result<Vec<Job>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let shared = self.shared();
        let rows = shared
            .bounded(
                "list",
                sqlx::query(sql::safe(&shared.sql.list))
                    .bind(status.map(row::status_code))
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&shared.pool),
            )
            .await?;
        Ok(self
            .shared()
            .decode_all(rows)
            .await
            .into_iter()
            .map(|(job, _)| job)
            .collect())
    }

    /// One statement (`find.sql`): per status wanted, its newest
    /// `offset + limit + 1` matching rows in index order (`jobs_created`,
    /// or `jobs_by_name` with a name filter), merged. So a page reads about
    /// `offset + limit` rows per status; a queue filter, which no index
    /// serves, reads on until enough rows match.
    async fn find_jobs(&self, filter: &JobFilter) -> Result<JobPage> {
        let shared = self.shared();
        let limit = filter.capped_limit();
        let offset = i64::try_from(filter.offset).unwrap_or(i64::MAX / 4);
        let codes: Vec<&str> = match filter.status {
            Some(status) => vec![row::status_code(status)],
            None => JobStatus::ALL
                .iter()
                .map(|s| row::status_code(*s))
                .collect(),
        };
        let text = match filter.name {
            Some(_) => &shared.sql.find_by_name,
            None => &shared.sql.find,
        };
        let rows = shared
            .bounded(
                "find_jobs",
                sqlx::query(sql::safe(text))
                    .bind(codes)
                    .bind(filter.name.as_deref())
                    .bind(filter.queue.as_deref())
                    .bind(offset.saturating_add(limit as i64 + 1))
                    .bind(offset)
                    .bind(limit as i64 + 1)
                    .fetch_all(&shared.pool),
            )
            .await?;
        let mut jobs: Vec<Job> = self
            .shared()
            .decode_all(rows)
            .await
            .into_iter()
            .map(|(job, _)| job)
            .collect();
        let more = jobs.len() > limit;
        jobs.truncate(limit);
        Ok(JobPage::new(jobs, more))
    }

    /// One statement: the row is locked, then deleted unless running.
    async fn delete(&self, id: JobId) -> Result<DeleteOutcome> {
        let shared = self.shared();
        let row = shared
            .bounded_retry("delete", || {
                sqlx::query(sql::safe(&shared.sql.delete))
                    .bind(*id.as_uuid())
                    .fetch_optional(&shared.pool)
            })
            .await?;
        Ok(match row {
            None => DeleteOutcome::NotFound,
            Some(row) if row.get::<i64, _>("deleted") > 0 => DeleteOutcome::Deleted,
            Some(_) => DeleteOutcome::Running,
        })
    }

    /// In statements of up to 5,000 rows each (short transactions), until
    /// none is left.
    async fn purge_status(&self, status: JobStatus) -> Result<u64> {
        if status == JobStatus::Running {
            return Err(Error::InvalidArgument(
                "running jobs cannot be purged: cancel them".into(),
            ));
        }
        const CHUNK: i64 = 5_000;
        let shared = self.shared();
        let mut removed = 0;
        loop {
            let row = shared
                .bounded_retry("purge_status", || {
                    sqlx::query(sql::safe(&shared.sql.purge_status))
                        .bind(row::status_code(status))
                        .bind(CHUNK)
                        .fetch_one(&shared.pool)
                })
                .await?;
            let n = row.get::<i64, _>("removed").max(0);
            removed += n as u64;
            if n < CHUNK {
                return Ok(removed);
            }
        }
    }

    /// Counted by the finish and lease recovery statements, once each, in
    /// the `throughput` table; the minutes are those of the database's
    /// clock.
    async fn throughput(&self, minutes: usize) -> Result<Vec<Throughput>> {
        let minutes = minutes.min(THROUGHPUT_MINUTES);
        let shared = self.shared();
        let rows = shared
            .bounded(
                "throughput",
                sqlx::query(sql::safe(&shared.sql.throughput))
                    .bind(minutes as i32)
                    .fetch_all(&shared.pool),
            )
            .await?;
        let now = rows
            .first()
            .map(|r| r.get::<DateTime<Utc>, _>("now"))
            .unwrap_or_else(Utc::now);
        let known = rows.iter().filter_map(|r| {
            let minute: Option<DateTime<Utc>> = r.get("minute");
            let processed: i64 = r.get::<Option<i64>, _>("processed").unwrap_or(0);
            let failed: i64 = r.get::<Option<i64>, _>("failed").unwrap_or(0);
            Some(Throughput::new(
                minute?,
                processed.max(0) as u64,
                failed.max(0) as u64,
            ))
        });
        Ok(Throughput::series(now, minutes, known))
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let shared = self.shared();
        let rows = shared
            .bounded(
                "workers",
                sqlx::query(sql::safe(&shared.sql.workers)).fetch_all(&shared.pool),
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_str(&r.get::<String, _>("report")).ok())
            .collect())
    }

    async fn cancel(&self, id: JobId) -> Result<CancelOutcome> {
        let shared = self.shared();
        let rows = shared
            .bounded_retry("cancel", || {
                sqlx::query(sql::safe(&shared.sql.cancel))
                    .bind(*id.as_uuid())
                    .fetch_all(&shared.pool)
            })
            .await?;
        shared.unhold_after(&rows).await?;
        if let Some(row) = rows.first() {
            let was: String = row.get("was");
            return Ok(if was == "R" {
                CancelOutcome::CancelledRunning
            } else {
                CancelOutcome::Cancelled
            });
        }
        let status = sqlx::query(AssertSqlSafe(format!(
            "SELECT status::text AS status FROM {}.jobs WHERE id = $1",
            sql::ident(&shared.schema)
        )))
        .bind(*id.as_uuid())
        .fetch_optional(&shared.pool);
        Ok(match shared.bounded("cancel", status).await? {
            None => CancelOutcome::NotFound,
            Some(row) => CancelOutcome::AlreadyFinished(
                row::status_of(&row.get::<String, _>("status")).unwrap_or(JobStatus::Failed),
            ),
        })
    }

    async fn retry(&self, id: JobId) -> Result<bool> {
        let shared = self.shared();
        for _ in 0..10 {
            let rows = shared
                .bounded(
                    "retry",
                    sqlx::query(sql::safe(&shared.sql.get))
                        .bind(*id.as_uuid())
                        .fetch_all(&shared.pool),
                )
                .await?;
            let Some(row) = rows.first() else {
                return Ok(false);
            };
            let Ok((mut job, token)) = row::decode(row) else {
                // A corrupt job cannot be run again.
                return Ok(false);
            };
            let was = row::status_code(job.status);
            if !job.reset_for_retry(Utc::now()) {
                return Ok(false);
            }
            let record = serde_json::to_string(&job).map_err(|e| Error::Serialize {
                name: job.name.to_string(),
                message: e.to_string(),
            })?;
            let updated = shared
                .bounded(
                    "retry",
                    sqlx::query(sql::safe(&shared.sql.retry))
                        .bind(*id.as_uuid())
                        .bind(was)
                        .bind(token as i64)
                        .bind(record)
                        .fetch_all(&shared.pool),
                )
                .await?;
            if !updated.is_empty() {
                return Ok(true);
            }
        }
        Err(Error::Backend(BackendError::new(format!(
            "postgres: job {id} kept changing while it was being retried"
        ))))
    }

    async fn counts(&self) -> Result<QueueCounts> {
        let shared = self.shared();
        let rows = shared
            .bounded(
                "counts",
                sqlx::query(sql::safe(&shared.sql.counts)).fetch_all(&shared.pool),
            )
            .await?;
        let mut counts = QueueCounts::default();
        for row in rows {
            let n = row.get::<i64, _>("n").max(0) as u64;
            counts.scheduled += row.get::<i64, _>("later").max(0) as u64;
            if let Some(status) = row::status_of(&row.get::<String, _>("status")) {
                counts.set(status, n);
            }
        }
        Ok(counts)
    }

    async fn purge(&self) -> Result<u64> {
        let shared = self.shared();
        let row = shared
            .bounded(
                "purge",
                sqlx::query(sql::safe(&shared.sql.purge)).fetch_one(&shared.pool),
            )
            .await?;
        Ok(row.get::<i64, _>("removed").max(0) as u64)
    }

    async fn ping(&self) -> Result<()> {
        let shared = self.shared();
        shared
            .bounded("ping", sqlx::query("SELECT 1").execute(&shared.pool))
            .await?;
        Ok(())
    }

    async fn pause_queue(&self, queue: &str) -> Result<bool> {
        crate::job::check_queue_name(queue)?;
        let shared = self.shared();
        let rows = shared
            .bounded(
                "pause_queue",
                sqlx::query(sql::safe(&shared.sql.pause))
                    .bind(queue)
                    .fetch_all(&shared.pool),
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn resume_queue(&self, queue: &str) -> Result<bool> {
        crate::job::check_queue_name(queue)?;
        let shared = self.shared();
        let rows = shared
            .bounded(
                "resume_queue",
                sqlx::query(sql::safe(&shared.sql.resume))
                    .bind(queue)
                    .fetch_all(&shared.pool),
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// One statement (`workflow.sql`): the counts and the steps kept.
    async fn workflow(&self, id: WorkflowId) -> Result<Option<WorkflowStatus>> {
        let shared = self.shared();
        let rows = shared
            .bounded(
                "workflow",
                sqlx::query(sql::safe(&shared.sql.workflow))
                    .bind(*id.as_uuid())
                    .fetch_all(&shared.pool),
            )
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let kind = match first.get::<String, _>("wf_kind").as_str() {
            "batch" => WorkflowKind::Batch,
            _ => WorkflowKind::Workflow,
        };
        let count = |name: &str| first.get::<i64, _>(name).max(0) as u64;
        let mut status = WorkflowStatus::new(id, first.get::<String, _>("wf_name"), kind);
        status.total = count("wf_total");
        status.pending = count("wf_pending");
        status.completed = count("wf_completed");
        status.failed = count("wf_failed");
        status.cancelled = count("wf_cancelled");
        let waiting: Vec<u64> = rows
            .iter()
            .filter(|r| r.get::<Option<uuid::Uuid>, _>("id").is_some())
            .map(|r| r.get::<Option<i32>, _>("waiting_on").unwrap_or(0).max(0) as u64)
            .collect();
        let steps: Vec<PgRow> = rows
            .into_iter()
            .filter(|r| r.get::<Option<uuid::Uuid>, _>("id").is_some())
            .collect();
        if steps.is_empty() {
            // Its last step went (the record goes with it, in the trigger).
            return Ok(None);
        }
        for (row, waiting_on) in steps.iter().zip(waiting) {
            // A row that does not parse is left out (decode_all fails it).
            if let Ok((job, _)) = row::decode(row) {
                status.steps.extend(WorkflowStep::of(&job, waiting_on));
            }
        }
        Ok(Some(status))
    }

    async fn queues(&self) -> Result<Vec<QueueInfo>> {
        let shared = self.shared();
        let rows = shared
            .bounded(
                "queues",
                sqlx::query(sql::safe(&shared.sql.queues)).fetch_all(&shared.pool),
            )
            .await?;
        let mut out: Vec<QueueInfo> = rows
            .iter()
            .map(|row| {
                QueueInfo::new(
                    row.get::<String, _>("name"),
                    row.get::<bool, _>("paused"),
                    row.get::<i64, _>("ready").max(0) as u64,
                )
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Events from every process using this schema, relayed from its
    /// channel. Events sent before the listener connected are not seen.
    fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.shared().events.subscribe()
    }
}
