//! The Redis queue: [`RedisJobQueue`] (cargo feature `redis`).
//!
//! # Key layout
//!
//! Every key of a queue named `NAME` starts with `jobs:{NAME}:`; the braces
//! are a Redis Cluster hash tag, so all keys of one queue live in one slot
//! and the Lua scripts may touch them together.
//!
//! | key                     | type       | holds                                                        |
//! |-------------------------|------------|--------------------------------------------------------------|
//! | `jobs:{NAME}:state`     | hash       | job id → state: `SR\|attempts\|max\|token\|started\|done\|` then patches |
//! | `jobs:{NAME}:jobs`      | hash       | job id → the job's JSON (as enqueued)                        |
//! | `jobs:{NAME}:ready`     | sorted set | ready job ids; score = priority band + sequence (FIFO)       |
//! | `jobs:{NAME}:delayed`   | sorted set | scheduled / retrying job ids; score = due time (µs)          |
//! | `jobs:{NAME}:running`   | sorted set | reserved job ids; score = lease deadline (µs, Redis clock)   |
//! | `jobs:{NAME}:done`      | list       | finished jobs, newest first (`S<id>\|<finish µs>`): retention |
//! | `jobs:{NAME}:counts`    | hash       | status letter → number of jobs; `!` while a recount is due   |
//! | `jobs:{NAME}:seq`       | string     | counter for FIFO sequence numbers and lease tokens           |
//! | `jobs:{NAME}:last_run`  | hash       | periodic task → last occurrence run, ms ([`RedisLastRunStore`]) |
//! | `jobs:{NAME}:wake`      | channel    | pub/sub: job ready (`0`) / due at µs; `revoked` (cancelled)  |
//! | `jobs:{NAME}:ready:<q>` | sorted set | as `ready`, for the named queue `q` (`ready` is `default`'s)  |
//! | `jobs:{NAME}:queues`    | set        | every named queue that had a job                             |
//! | `jobs:{NAME}:paused`    | set        | the paused named queues                                      |
//! | `jobs:{NAME}:meta`      | hash       | job id → flow-control settings (JSON; only jobs that have any) |
//! | `jobs:{NAME}:active`    | hash       | `c:<key>` / `q:<queue>` → running jobs (`q:` once `!q` is set); `f:<queue>`: a worker found it full |
//! | `jobs:{NAME}:held:<k>`  | sorted set | jobs concurrency key `k` holds back; score = their ready score |
//! | `jobs:{NAME}:rheld:<k>` | sorted set | jobs rate key `k` holds back; score = their ready score      |
//! | `jobs:{NAME}:rate:<k>`  | sorted set | starts of rate key `k` in its window (token → start µs)      |
//! | `jobs:{NAME}:started:<q>` | sorted set | starts of queue `q` under a queue rate limit             |
//! | `jobs:{NAME}:wakes`     | sorted set | rate key → when its window lets the next held job start (µs) |
//! | `jobs:{NAME}:unique`    | hash       | unique key → `<holder id>\|<enqueued µs>` (the lock)         |
//! | `jobs:{NAME}:keys`      | set        | the `held`, `rheld`, `rate` and `started` keys made (for purge, list) |
//! | `jobs:{NAME}:events`    | channel    | pub/sub: job events, one JSON array per script call (while anyone listens) |
//! | `jobs:{NAME}:stat:<m>`  | string     | attempts ended in minute `m` (since the epoch): processed × 2³² + failed; expires after 25 h |
//! | `jobs:{NAME}:workers`   | hash       | worker id → its latest report ([`WorkerInfo`] as JSON)      |
//! | `jobs:{NAME}:worker_lapses` | sorted set | worker id → when its report lapses (µs, Redis clock)     |
//! | `jobs:{NAME}:workflows` | set        | the ids of the workflows and batches stored                  |
//! | `jobs:{NAME}:wf:<w>`    | hash       | workflow `w`'s record: name, kind, total, pending, completed, failed, cancelled |
//! | `jobs:{NAME}:wfjobs:<w>` | sorted set | workflow `w`'s steps still kept; score = the order stored   |
//! | `jobs:{NAME}:deps`      | hash       | step id → `<jobs still waited for>\|<due µs>`, while it waits |
//! | `jobs:{NAME}:kids:<id>` | list       | the steps waiting for job `id` (until it ends)               |
//! | `jobs:{NAME}:dres:<id>` | list       | what step `id`'s finished dependencies left, in that order   |
//!
//! # Flow control
//!
//! One queue (one key prefix) serves any number of named queues. Reserve
//! serves the takes in order in one script call: it skips paused queues,
//! counts the queue's running jobs (`active`) against a queue concurrency
//! limit and its starts in the window (`started:<q>`) against a queue rate
//! limit, and moves a job that its own limit holds back out of `ready` into
//! the key's held set, keeping its score. A job that stops running
//! (finish, release, lease recovery, cancel) frees its slots: the earliest
//! held job of its concurrency key goes back to ready, and workers are
//! woken. Jobs a rate key holds go back when its window opens (`wakes`,
//! promoted by reserve, whose answer includes the next such time). A unique
//! job's lock is checked and taken in the enqueue script; a lock whose
//! holder is gone, finished in a status not named, or older than the
//! period is replaced, and retention and purge delete the locks of the jobs
//! they delete.
//!
//! A queue that uses none of it pays one `EXISTS` per call: while none of
//! the flow-control keys (meta, paused, active, wakes, unique, keys)
//! exists, the scripts skip every read and check of them (a pause, a job
//! with settings or a queue concurrency limit writes its key before it
//! takes effect). The
//! running jobs per named queue (`q:<queue>`) are counted only from the
//! first reserve under a queue concurrency limit on, which counts the jobs
//! running then (`!q` in `active` says they are counted; purge removes it,
//! repair keeps it), so a limit set while jobs run holds at once.
//!
//! A job costs two hash fields (state and JSON) plus one entry in one
//! index: `ready` or `delayed` while it waits, `running` while it runs, the
//! `done` list once finished, until the retention cap
//! ([`RedisJobQueueBuilder::max_finished`], 10,000 by default) or the
//! optional age limit deletes it.
//!
//! The state is the job's status letter (`P`ending, `R`unning,
//! `C`ompleted, `F`ailed, re`T`rying, cancelled `X`, `E`xpired), its
//! priority rank (0 = critical), attempts, max retries, the current lease
//! token, and the start and finish times (µs), followed by patches: the
//! results of finished attempts (each `\x1f{"result":..,"last_error":..,
//! "scheduled_at":..}`, applied in order; a failed attempt's also with its
//! number and end time, `{"attempt":..,"at_us":..,`, which make
//! [`Job::errors`], the last 25 kept). Its exact format and limits are
//! in `record.rs`, whose parser and the Lua one (`lua/prelude.lua`) accept
//! the same strings. The state is authoritative for those fields; the JSON
//! is never rewritten by a state change. So the scripts never parse the
//! job's JSON, and the hot ones (reserve, finish) only rewrite the short
//! state: the JSON passes through a script once, on its way to the worker.
//!
//! # Delivery
//!
//! Enqueue, reserve (which first moves due scheduled jobs to ready), finish,
//! release, lease recovery, cancel and retry are each one Lua script, so
//! each is atomic. A reserved job carries a lease (its deadline in
//! `running`) that the worker's heartbeat extends; a job whose lease runs
//! out (its worker died or lost Redis) is put back by the next
//! [`recover_expired`](JobQueue::recover_expired) of any worker, counting the
//! attempt, or failed if it was the last. Each reservation has a fresh token,
//! and `finish`, `release` and `heartbeat` only act while the record still
//! carries that token: a worker whose lease was taken over cannot overwrite
//! the newer attempt. That is at-least-once delivery: a job whose worker dies
//! mid-run runs again.
//!
//! Cancelling a running job (from any process) marks it `Cancelled` and
//! publishes `revoked` on the wake channel: every worker checks its leases at
//! once, and the one running the job drops it.
//!
//! # Speed
//!
//! Reserving takes up to `max` jobs in one script call; finishes that
//! complete at about the same time are sent together in one script call by a
//! background flusher, and so are concurrent single `enqueue`s (each still
//! accepted or refused on its own); `enqueue_many` is one script call up to
//! 2,000 jobs (larger batches are split; see [`RedisJobQueue`]). An idle
//! worker waits on a pub/sub subscription (a dedicated connection) instead
//! of polling; the due time of the next scheduled job bounds its wait, and
//! the polling interval is only a fallback.
//!
//! # Faults
//!
//! Every call is bounded by the queue's timeout (5 s by default): while
//! Redis is unreachable, calls fail with [`Error::Backend`] instead of
//! hanging, the worker backs off, logs and reports itself unhealthy in
//! `health_check`, and the connection is re-established on its own when
//! Redis is back (the scripts' function library, or on servers without
//! functions the scripts, are loaded again if Redis lost them).
//!
//! Redis does not roll back a script that fails half-way, so every script
//! reads and checks before its first write: the type of every key of the
//! queue (a key replaced by a value of another type makes the call fail
//! with `WRONGTYPE` naming the key, and nothing is changed), the sequence
//! counter and the counts, and each job's state against the index it was
//! found in. A record that cannot be right is quarantined: the job is
//! failed (`CorruptRecord`) with an error naming the key and what is wrong
//! with it, by the next reserve or lease recovery that meets it, so no job
//! stays "running" longer than its lease. That covers a state or JSON that
//! does not parse (or a number out of range), a state without JSON or JSON
//! without state, and a running job found waiting in `ready` but not in
//! `running`. A waiting job found in `running` goes back to `ready`. A
//! quarantine marks the counts for a recount (a state edited by hand was not
//! counted as what it says), which [`counts`](QueueAdmin::counts) does
//! before answering; [`RedisJobQueue::repair`] re-indexes jobs that are in
//! no index (after a key was deleted or restored by hand) and recounts.
//!
//! # Workflows and batches
//!
//! A job that is a workflow step ([`Job::step`]) carries `w` in its meta
//! (workflow id, step name, whether it runs always), so a job that is no
//! step costs nothing more. The enqueue script checks the steps of a call
//! (what they depend on is a stored step or earlier in the call; what they
//! block a stored step of the same workflow still waiting) before it
//! writes, and stores a step that waits for unfinished jobs as `P` in no
//! index, with its count in `deps` and its id in the `kids:<id>` list of
//! each job it waits for. Every script that ends a step — finish, cancel,
//! lease recovery, delete and purge by status (of a step not finished:
//! its dependants see it cancelled) — resolves its dependants in the same
//! call: each records the step's result in its `dres:<id>` list, then is
//! placed (ready or delayed) after its last dependency, or cancelled,
//! with a `Cancelled` event, and resolved in turn (a loop in the script)
//! if a dependency did not complete and it does not run always. Scripts
//! are atomic, so a step is released once. A workflow's record and steps
//! go with its last step (retention, delete); purge removes them all. A
//! waiting step is in no index, so `list` and `find_jobs` do not show it
//! until it is ready (`counts` and [`workflow`](QueueAdmin::workflow) do).
//! A push of more than 20,000 jobs that contains steps is refused.
//!
//! # Periodic tasks across processes
//!
//! Schedulers in several processes may run the same periodic tasks on one
//! Redis queue: each occurrence is enqueued once (its job id is derived from
//! the task and the occurrence, and the queue refuses a taken id). Give them
//! [`RedisJobQueue::last_run_store`] so a restarted scheduler catches up on
//! missed runs:
//!
//! ```no_run
//! use jobs::prelude::*;
//!
//! # #[tokio::main] async fn main() -> Result<(), jobs::Error> {
//! let queue = RedisJobQueue::connect("redis://127.0.0.1:6379", "reports").await?;
//! let scheduler = JobScheduler::builder()
//!     .last_run_store(queue.last_run_store())
//!     .build();
//! let worker = BackgroundJobWorker::builder()
//!     .queue(queue)
//!     .scheduler(scheduler)
//!     .build()?;
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use redis::Client;
use redis::aio::ConnectionManager;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{
    CancelOutcome, DeleteOutcome, Enqueue, Enqueued, JobFilter, JobPage, JobQueue, Lease, Outcome,
    QueueAdmin, QueueCounts, QueueInfo, Reservation, THROUGHPUT_MINUTES, Take, Throughput,
    WorkerInfo,
};
use crate::error::{BackendError, Error, Result};
use crate::job::{Job, JobId, JobStatus};

mod batch;
mod builder;
mod conn;
mod last_run;
mod record;
mod scripts;
#[cfg(test)]
mod tests;
mod wake;

use super::wake::Wake;
use batch::{Encoded, EnqueueRequest, FinishEntry, FinishRequest};
pub use builder::RedisJobQueueBuilder;
pub use last_run::RedisLastRunStore;
use record::{Part, Patch};
use scripts::Scripts;

/// A queue in Redis, shared by any number of worker processes.
///
/// Build it from a URL ([`connect`](Self::connect), or
/// [`builder`](Self::builder) for other settings) or, in the classic form,
/// from host, port, database and queue name ([`new`](Self::new)). Clones
/// share one multiplexed connection (a `ConnectionManager`, which reconnects
/// on its own). Every call is bounded by a timeout, so an unreachable Redis
/// is an `Err`, never a hang. See the [module docs](self) for the key
/// layout, the delivery guarantee and what happens on faults.
///
/// `enqueue_many` stores all jobs or none. A batch of up to 2,000 jobs is
/// one script call. A larger one is split so as not to block Redis (about
/// 10 µs of Redis time per job): every id is checked first, then the jobs
/// are stored in chunks of 2,000, each all or nothing. A taken or repeated
/// id still stores nothing; only if another client takes one of the ids
/// between the check and its chunk, or Redis fails between chunks, do the
/// chunks already stored stay (the call returns the `Err`; enqueueing the
/// same jobs again with [`enqueue_idempotent`](Enqueue::enqueue_idempotent)
/// completes it).
///
/// ```no_run
/// use jobs::prelude::*;
/// use jobs::queue::RedisJobQueue;
///
/// # #[tokio::main] async fn main() -> Result<(), jobs::Error> {
/// let queue = RedisJobQueue::connect("redis://127.0.0.1:6379", "emails").await?;
/// let worker = BackgroundJobWorker::builder().queue(queue).build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisJobQueue {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// The wake epoch seen when `reserve` last started.
    seen_epoch: AtomicU64,
    finisher: std::sync::OnceLock<mpsc::UnboundedSender<FinishRequest>>,
    enqueuer: std::sync::OnceLock<mpsc::UnboundedSender<EnqueueRequest>>,
    subscriber: std::sync::OnceLock<()>,
    _stop: DropGuard,
}

/// What the background tasks share with the queue handles.
struct Shared {
    name: String,
    keys: Keys,
    client: Client,
    conn: ConnectionManager,
    scripts: &'static Scripts,
    /// Single enqueues on their way to Redis (`batch::OnTheWay`).
    enqueues_on_the_way: std::sync::atomic::AtomicUsize,
    /// Whether the server runs functions (`conn.rs`), learned on first use.
    functions: std::sync::atomic::AtomicU8,
    timeout: Duration,
    max_finished: u64,
    finished_ttl_us: i64,
    wake: Wake,
    /// Signalled when a running job was cancelled (by any process).
    revoked: Notify,
    /// Job events relayed from the events channel (see `subscribe`).
    events: tokio::sync::broadcast::Sender<crate::events::JobEvent>,
    /// Set by the first `subscribe`: the subscriber task listens to the
    /// events channel from then on (`events_on` tells it at once).
    events_wanted: std::sync::atomic::AtomicBool,
    events_on: Notify,
    stop: CancellationToken,
}

/// The keys of one queue (see the key layout in the module docs).
struct Keys {
    jobs: String,
    state: String,
    ready: String,
    delayed: String,
    running: String,
    done: String,
    counts: String,
    seq: String,
    last_run: String,
    wake: String,
    meta: String,
    queues: String,
    paused: String,
    active: String,
    wakes: String,
    unique: String,
    keys: String,
    events: String,
    workers: String,
    worker_lapses: String,
}

impl Keys {
    fn new(name: &str) -> Self {
        let key = |suffix: &str| format!("jobs:{{{name}}}:{suffix}");
        Keys {
            jobs: key("jobs"),
            state: key("state"),
            ready: key("ready"),
            delayed: key("delayed"),
            running: key("running"),
            done: key("done"),
            counts: key("counts"),
            seq: key("seq"),
            last_run: key("last_run"),
            wake: key("wake"),
            meta: key("meta"),
            queues: key("queues"),
            paused: key("paused"),
            active: key("active"),
            wakes: key("wakes"),
            unique: key("unique"),
            keys: key("keys"),
            events: key("events"),
            workers: key("workers"),
            worker_lapses: key("worker_lapses"),
        }
    }

    /// `jobs:{NAME}:`, the start of every key of the queue.
    fn prefix(&self) -> &str {
        self.jobs.strip_suffix("jobs").unwrap_or(&self.jobs)
    }

    /// The key of the part of a record at fault.
    fn of(&self, part: Part) -> &str {
        match part {
            Part::State => &self.state,
            Part::Json => &self.jobs,
        }
    }
}

/// What [`RedisJobQueue::repair`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairReport {
    /// Jobs put back in the index their state calls for (waiting jobs in
    /// `ready`, running ones in `running` with their lease run out).
    pub reindexed: u64,
    /// Jobs failed because their record cannot be right (a state that does
    /// not parse, a state without JSON or JSON without state).
    pub quarantined: u64,
    /// The counts after the recount.
    pub counts: QueueCounts,
}

impl RedisJobQueue {
    /// Connects to `url` (`redis://host:port/db`) and uses the queue `name`
    /// (see [`RedisJobQueueBuilder::name`] for the names allowed).
    pub async fn connect(url: &str, name: &str) -> Result<Self> {
        Self::builder(url).name(name).connect().await
    }

    /// The classic form: `RedisJobQueue(host, port, db, queue_name)`.
    pub async fn new(host: &str, port: u16, db: u32, name: &str) -> Result<Self> {
        Self::connect(&format!("redis://{host}:{port}/{db}"), name).await
    }

    /// A builder for the queue at `url`, with the defaults: queue name
    /// `"default"`, 5 s timeout per call, 10,000 finished jobs kept. Its
    /// [`build`](RedisJobQueueBuilder::build) connects lazily,
    /// [`connect`](RedisJobQueueBuilder::connect) at once.
    pub fn builder(url: &str) -> RedisJobQueueBuilder {
        RedisJobQueueBuilder::new(url)
    }

    fn from_shared(shared: Shared) -> Self {
        let stop = shared.stop.clone().drop_guard();
        let queue = RedisJobQueue {
            inner: Arc::new(Inner {
                shared: Arc::new(shared),
                seen_epoch: AtomicU64::new(u64::MAX),
                finisher: std::sync::OnceLock::new(),
                enqueuer: std::sync::OnceLock::new(),
                subscriber: std::sync::OnceLock::new(),
                _stop: stop,
            }),
        };
        // Subscribed from the start, so that the wake-up a (re)subscription
        // makes (jobs may have come while it was not listening) comes
        // before the first reserve, not in the middle of a wait.
        queue.ensure_subscriber();
        queue
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.inner.shared.name
    }

    /// The Redis key of the hash holding each job's JSON (id → JSON).
    pub fn jobs_key(&self) -> &str {
        &self.inner.shared.keys.jobs
    }

    /// The Redis key of the hash holding each job's state (id → state).
    pub fn state_key(&self) -> &str {
        &self.inner.shared.keys.state
    }

    /// A [`RedisLastRunStore`] in this queue's Redis, so that periodic tasks
    /// catch up on missed runs across restarts.
    pub fn last_run_store(&self) -> RedisLastRunStore {
        RedisLastRunStore {
            shared: Arc::clone(&self.inner.shared),
        }
    }

    /// Waiting jobs (pending or retrying).
    pub async fn len(&self) -> Result<u64> {
        Ok(self.counts().await?.waiting())
    }

    /// Whether no job is waiting.
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// Checks every job of the queue against the indexes, and recounts: for
    /// after a key of the queue was deleted, restored or edited by hand
    /// (the scripts find and fix inconsistent jobs on their own only where
    /// they meet them, in `ready` and `running`).
    ///
    /// A waiting job in no index goes back to `ready`, due now; a running
    /// job missing from `running` goes back in it with its lease run out, so
    /// that the next lease recovery retries it (or fails it, if that was its
    /// last attempt); a record that does not parse, a state without JSON and
    /// JSON without state are failed with an error naming the key. Then the
    /// counts are recomputed from the states.
    ///
    /// One script call, atomic, of O(jobs): it blocks Redis for about 7 µs
    /// per job kept (0.75 s per 100,000 on a 2-core development machine):
    /// run it when needed, not routinely. Needs Redis 6.2 or later.
    pub async fn repair(&self) -> Result<RepairReport> {
        let shared = self.shared();
        let call = shared.common().call(&shared.scripts.repair);
        let (reindexed, quarantined): (u64, u64) = shared.call("repair", &call).await?;
        if reindexed + quarantined > 0 {
            tracing::warn!(queue = %shared.name, reindexed, quarantined, "repaired the queue's records");
        }
        Ok(RepairReport {
            reindexed,
            quarantined,
            counts: self.counts().await?,
        })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// A call of `lua/workers.lua` doing `op`.
    fn workers_call(&self, op: &str) -> redis::ScriptInvocation<'_> {
        let shared = self.shared();
        let mut call = shared.scripts.workers.prepare_invoke();
        call.key(&shared.keys.workers)
            .key(&shared.keys.worker_lapses)
            .arg(op);
        call
    }

    fn finisher(&self) -> &mpsc::UnboundedSender<FinishRequest> {
        self.inner.finisher.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(batch::flush_finishes(Arc::clone(&self.inner.shared), rx));
            tx
        })
    }

    fn enqueuer(&self) -> &mpsc::UnboundedSender<EnqueueRequest> {
        self.inner.enqueuer.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(batch::flush_enqueues(Arc::clone(&self.inner.shared), rx));
            tx
        })
    }

    fn ensure_subscriber(&self) {
        self.inner.subscriber.get_or_init(|| {
            tokio::spawn(wake::subscribe(Arc::clone(&self.inner.shared)));
        });
    }

    /// Jobs from `id, state, JSON` triples, as the scripts return them; a
    /// job that does not parse shows as a placeholder.
    fn decode_all(&self, triples: Vec<Vec<u8>>) -> Vec<Job> {
        let keys = &self.shared().keys;
        let mut out = Vec::with_capacity(triples.len() / 3);
        let mut it = triples.into_iter();
        while let (Some(id), Some(state), Some(body)) = (it.next(), it.next(), it.next()) {
            let Some(id) = parse_id(&id) else { continue };
            out.push(match record::decode(id, &state, &body) {
                Ok((job, _)) => job,
                Err(bad) => {
                    let message = record::corrupt_message(keys.of(bad.part), id, &bad.reason);
                    record::placeholder(id, &state, &body, message)
                }
            });
        }
        out
    }

    /// Fails reserved jobs whose records the worker could not read (the
    /// script accepted their states, so their JSON is at fault), unless
    /// their state changed since.
    async fn quarantine(&self, corrupt: Vec<(JobId, Vec<u8>, record::Corrupt)>) {
        let shared = self.shared();
        for (id, state, bad) in corrupt {
            let key = shared.keys.of(bad.part);
            tracing::error!(job = %id, error = %record::corrupt_message(key, id, &bad.reason), "failing a job whose record is corrupt");
            let mut call = shared.common().call(&shared.scripts.quarantine);
            call.arg(id.to_string())
                .arg(&state[..])
                .arg(key)
                .arg(&bad.reason);
            if let Err(e) = shared.call::<i64>("quarantine", &call).await {
                tracing::error!(job = %id, error = %e, "could not fail a corrupt job; it is retried when its lease expires");
            }
        }
    }
}

/// How many entries beyond the first `offset + limit + 1` matches
/// `find_jobs` looks at per index, at most.
const FIND_SCAN: usize = 10_000;

/// How many jobs one `purge_status` script call deletes at most (and how
/// many entries it looks at).
const PURGE_CHUNK: usize = 1_000;

fn lease_us(lease: Duration) -> i64 {
    i64::try_from(lease.as_micros()).unwrap_or(i64::MAX / 4)
}

fn parse_id(raw: &[u8]) -> Option<JobId> {
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// A job validated and encoded for the scripts.
fn encode(job: &Job) -> Result<Encoded> {
    job.validate()?;
    let (state, body) = record::encode(job).map_err(|e| Error::Serialize {
        name: job.name.to_string(),
        message: e.to_string(),
    })?;
    Ok(Encoded {
        id: job.id,
        state,
        body,
        due_us: record::due_micros(job),
        rank: job.priority.rank(),
        meta: record::meta(job),
        links: record::links(job),
    })
}

/// Waits for a background flusher's answer, at most twice the timeout.
async fn answer<T>(shared: &Shared, what: &str, rx: oneshot::Receiver<Result<T>>) -> Result<T> {
    match tokio::time::timeout(shared.timeout * 2, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(Error::Backend(BackendError::new(format!(
            "redis: the {what} flusher stopped before answering"
        )))),
        Err(_) => Err(shared.timed_out(what)),
    }
}

impl Enqueue for RedisJobQueue {
    /// A single enqueue goes at once when no other is on its way;
    /// concurrent ones are sent together (one script call for all that
    /// queued up while the previous call was on its way); each is still
    /// accepted or refused on its own.
    async fn push(&self, job: Job) -> Result<Enqueued> {
        let encoded = encode(&job)?;
        let shared = self.shared();
        if !encoded.links.is_empty() {
            // A workflow step is checked against the stored steps: on its
            // own, all or nothing (the batched single enqueues take any job
            // whose id is free).
            return shared
                .enqueue_all(std::slice::from_ref(&encoded))
                .await?
                .pop()
                .ok_or_else(|| Error::Backend(BackendError::new("redis: no answer to enqueue")));
        }
        if let Some(_on_the_way) = batch::OnTheWay::alone(&shared.enqueues_on_the_way) {
            // Nothing on its way: sent at once, from this task.
            let id = encoded.id;
            return match shared
                .enqueue_batch(std::iter::once(&encoded), batch::Mode::Each)
                .await?
            {
                Ok(pushed) => pushed.first().map_or_else(
                    || {
                        Err(Error::Backend(BackendError::new(
                            "redis: no answer to enqueue",
                        )))
                    },
                    |p| p.enqueued(id),
                ),
                Err(taken) => Err(Error::Duplicate(taken)),
            };
        }
        let (reply, rx) = oneshot::channel();
        let request = EnqueueRequest {
            job: encoded,
            reply,
        };
        match self.enqueuer().send(request) {
            Ok(()) => answer(shared, "enqueue", rx).await,
            // The flusher is gone (its runtime shut down): send directly.
            Err(mpsc::error::SendError(r)) => shared
                .enqueue_all(std::slice::from_ref(&r.job))
                .await?
                .pop()
                .ok_or_else(|| Error::Backend(BackendError::new("redis: no answer to enqueue"))),
        }
    }

    /// All or none, in one script call up to 2,000 jobs; see
    /// [`RedisJobQueue`] for larger batches.
    async fn push_many(&self, jobs: Vec<Job>) -> Result<Vec<Enqueued>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut seen = std::collections::HashSet::with_capacity(jobs.len());
        let mut encoded = Vec::with_capacity(jobs.len());
        for job in &jobs {
            if !seen.insert(job.id) {
                return Err(Error::Duplicate(job.id));
            }
            encoded.push(encode(job)?);
        }
        self.shared().enqueue_all(&encoded).await
    }
}

impl JobQueue for RedisJobQueue {
    async fn reserve(
        &self,
        _worker: &str,
        takes: &[Take],
        lease: Duration,
    ) -> Result<Vec<Reservation>> {
        let shared = self.shared();
        self.inner
            .seen_epoch
            .store(shared.wake.epoch(), Ordering::Release);
        let mut call = shared.common().call(&shared.scripts.reserve);
        call.arg(lease_us(lease));
        for take in takes {
            crate::job::check_queue_name(&take.queue)?;
            take.limits.validate()?;
            let (rate_max, rate_period) = take
                .limits
                .rate
                .map_or((0, 0), |r| (r.max, record::micros(r.period)));
            call.arg(take.queue.as_ref())
                .arg(take.max.min(1000))
                .arg(take.limits.concurrency.unwrap_or(0))
                .arg(rate_max)
                .arg(rate_period);
        }
        let reply: Vec<Vec<u8>> = shared.call("reserve", &call).await?;
        let mut it = reply.into_iter();
        let next_due = it
            .next()
            .and_then(|d| std::str::from_utf8(&d).ok()?.parse::<f64>().ok())
            .filter(|d| *d >= 0.0)
            .map_or(i64::MAX, |d| d as i64);
        shared.wake.set_next_due(next_due);
        let mut out = Vec::with_capacity(it.len() / 3);
        let mut corrupt = Vec::new();
        while let (Some(id), Some(state), Some(body)) = (it.next(), it.next(), it.next()) {
            let Some(id) = parse_id(&id) else { continue };
            match record::decode(id, &state, &body) {
                Ok((job, token)) => out.push(Reservation::new(job, Lease { job_id: id, token })),
                Err(bad) => corrupt.push((id, state, bad)),
            }
        }
        if !corrupt.is_empty() {
            self.quarantine(corrupt).await;
        }
        Ok(out)
    }

    async fn wait_for_jobs(&self, timeout: Duration) {
        self.ensure_subscriber();
        let seen = self.inner.seen_epoch.load(Ordering::Acquire);
        self.shared().wake.wait(seen, timeout).await
    }

    async fn heartbeat(&self, leases: &[Lease], lease: Duration) -> Result<Vec<Lease>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let shared = self.shared();
        let mut call = shared.common().call(&shared.scripts.heartbeat);
        call.arg(lease_us(lease));
        for l in leases {
            call.arg(l.job_id.to_string()).arg(l.token);
        }
        let lost: Vec<usize> = shared.call("heartbeat", &call).await?;
        Ok(lost
            .into_iter()
            .filter_map(|i| leases.get(i.checked_sub(1)?).copied())
            .collect())
    }

    async fn finish(&self, lease: Lease, outcome: Outcome, next: Option<Job>) -> Result<bool> {
        if next.as_ref().is_some_and(|n| n.step.is_some()) {
            return Err(Error::InvalidArgument(
                "the job that follows a finished one cannot be a workflow step".into(),
            ));
        }
        let next = next.as_ref().map(encode).transpose()?;
        let (patch, at_us) = match &outcome {
            Outcome::Completed(result) => (
                Patch {
                    result: Some(Cow::Borrowed(result)),
                    ..Patch::default()
                },
                0,
            ),
            Outcome::Retry { result, at } => (
                Patch {
                    result: Some(Cow::Borrowed(result)),
                    last_error: result.error.as_deref().map(Cow::Borrowed),
                    scheduled_at: Some(*at),
                    ..Patch::default()
                },
                record::micros_ceil(*at),
            ),
            Outcome::Failed(result) => (
                Patch {
                    result: Some(Cow::Borrowed(result)),
                    last_error: result.error.as_deref().map(Cow::Borrowed),
                    ..Patch::default()
                },
                0,
            ),
            Outcome::Snoozed { at } => (
                Patch {
                    scheduled_at: Some(*at),
                    ..Patch::default()
                },
                record::micros_ceil(*at),
            ),
            _ => (Patch::default(), 0),
        };
        let patch =
            if patch.result.is_none() && patch.last_error.is_none() && patch.scheduled_at.is_none()
            {
                Vec::new()
            } else {
                serde_json::to_vec(&patch).map_err(|e| Error::Serialize {
                    name: "job result".into(),
                    message: e.to_string(),
                })?
            };
        let entry = FinishEntry {
            id: lease.job_id,
            token: lease.token,
            // `S`: snoozed (the script works out Pending or Retrying).
            status: match outcome {
                Outcome::Snoozed { .. } => b'S',
                _ => record::status_code(outcome.status()),
            },
            patch,
            at_us,
            next,
        };
        let (reply, rx) = oneshot::channel();
        match self.finisher().send(FinishRequest { entry, reply }) {
            Ok(()) => answer(self.shared(), "finish", rx).await,
            // The flusher is gone (its runtime shut down): report directly.
            Err(mpsc::error::SendError(request)) => self
                .shared()
                .finish_batch(std::slice::from_ref(&request.entry))
                .await
                .map(|r| r.first().copied().unwrap_or(false)),
        }
    }

    async fn progress(&self, lease: Lease, progress: serde_json::Value) -> Result<bool> {
        let value = serde_json::to_vec(&progress).map_err(|e| Error::Serialize {
            name: "job progress".into(),
            message: e.to_string(),
        })?;
        let shared = self.shared();
        let mut call = shared.common().call(&shared.scripts.progress);
        call.arg(lease.job_id.to_string())
            .arg(lease.token)
            .arg(&value[..]);
        let held: i64 = shared.call("progress", &call).await?;
        Ok(held == 1)
    }

    async fn release(&self, leases: &[Lease]) -> Result<usize> {
        if leases.is_empty() {
            return Ok(0);
        }
        let shared = self.shared();
        let mut call = shared.common().call(&shared.scripts.release);
        for l in leases {
            call.arg(l.job_id.to_string()).arg(l.token);
        }
        shared.call("release", &call).await
    }

    async fn recover_expired(&self) -> Result<usize> {
        let shared = self.shared();
        let call = shared.common().call(&shared.scripts.recover);
        let (mut n, orphaned): (usize, u8) = shared.call("recover_expired", &call).await?;
        if orphaned == 1 {
            // A running job lost its entry in the running index: nothing
            // else would ever meet it. `repair` puts it back with its lease
            // run out, and a second pass recovers it now.
            tracing::warn!(queue = %shared.name, "a running job is in no index; repairing the queue");
            self.repair().await?;
            let again: (usize, u8) = shared.call("recover_expired", &call).await?;
            n += again.0;
        }
        if n > 0 {
            tracing::warn!(queue = %shared.name, recovered = n, "jobs of lost workers returned to the queue");
        }
        Ok(n)
    }

    /// Resolves when a running job was cancelled by any process (a message
    /// on the wake channel), so the worker checks its leases at once.
    async fn revocations(&self) {
        self.ensure_subscriber();
        self.shared().revoked.notified().await;
    }

    /// Stores the report in `jobs:{NAME}:workers`, lapsing after `ttl` by
    /// the Redis clock (`jobs:{NAME}:worker_lapses`).
    async fn report_worker(&self, info: &WorkerInfo, ttl: Duration) -> Result<()> {
        let mut info = info.clone();
        info.last_seen = Utc::now();
        let json = serde_json::to_vec(&info).map_err(|e| Error::Serialize {
            name: "worker report".into(),
            message: e.to_string(),
        })?;
        let mut call = self.workers_call("report");
        call.arg(&info.id).arg(json).arg(lease_us(ttl));
        let _: i64 = self.shared().call("report_worker", &call).await?;
        Ok(())
    }

    async fn remove_worker(&self, id: &str) -> Result<()> {
        let mut call = self.workers_call("remove");
        call.arg(id);
        let _: i64 = self.shared().call("remove_worker", &call).await?;
        Ok(())
    }

    /// The `dres:<id>` list: one entry per dependency that finished, in
    /// that order (written by the script that finished it).
    async fn dependency_results(
        &self,
        id: JobId,
    ) -> Result<Vec<crate::workflow::DependencyResult>> {
        let shared = self.shared();
        let key = format!("{}dres:{id}", shared.keys.prefix());
        let raw: Vec<Vec<u8>> = shared
            .call(
                "dependency_results",
                &*redis::cmd("LRANGE").arg(&key).arg(0).arg(-1),
            )
            .await?;
        raw.iter()
            .map(|entry| {
                record::dependency_result(entry).ok_or_else(|| {
                    Error::Backend(BackendError::new(format!(
                        "redis: {key} holds an entry that does not parse: {:?}",
                        String::from_utf8_lossy(entry)
                    )))
                })
            })
            .collect()
    }
}

impl QueueAdmin for RedisJobQueue {
    /// Adds the queue to the paused set (`jobs:{NAME}:paused`).
    async fn pause_queue(&self, queue: &str) -> Result<bool> {
        crate::job::check_queue_name(queue)?;
        let shared = self.shared();
        let added: i64 = shared
            .call(
                "pause_queue",
                &*redis::cmd("SADD").arg(&shared.keys.paused).arg(queue),
            )
            .await?;
        Ok(added == 1)
    }

    /// Removes the queue from the paused set, and wakes the waiting
    /// workers of every process.
    async fn resume_queue(&self, queue: &str) -> Result<bool> {
        crate::job::check_queue_name(queue)?;
        let shared = self.shared();
        let removed: i64 = shared
            .call(
                "resume_queue",
                &*redis::cmd("SREM").arg(&shared.keys.paused).arg(queue),
            )
            .await?;
        if removed == 1 {
            let _: i64 = shared
                .call(
                    "resume_queue",
                    &*redis::cmd("PUBLISH").arg(&shared.keys.wake).arg("0"),
                )
                .await?;
        }
        Ok(removed == 1)
    }

    /// One script call: the record `wf:<id>` and the steps of
    /// `wfjobs:<id>` still kept, with what each waits for.
    async fn workflow(
        &self,
        id: crate::workflow::WorkflowId,
    ) -> Result<Option<crate::workflow::WorkflowStatus>> {
        use crate::workflow::{WorkflowKind, WorkflowStatus, WorkflowStep};
        let shared = self.shared();
        let mut call = shared.common().call(&shared.scripts.workflow);
        call.arg(id.to_string());
        let reply: Vec<Vec<u8>> = shared.call("workflow", &call).await?;
        if reply.len() < 7 {
            return Ok(None);
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let number = |b: &[u8]| {
            std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0)
                .max(0) as u64
        };
        let kind = match &reply[1][..] {
            b"batch" => WorkflowKind::Batch,
            _ => WorkflowKind::Workflow,
        };
        let mut status = WorkflowStatus::new(id, text(&reply[0]), kind);
        status.total = number(&reply[2]);
        status.pending = number(&reply[3]);
        status.completed = number(&reply[4]);
        status.failed = number(&reply[5]);
        status.cancelled = number(&reply[6]);
        let keys = &shared.keys;
        for step in reply[7..].chunks(4) {
            let [raw_id, state, body, waits] = step else {
                continue;
            };
            let Some(job_id) = parse_id(raw_id) else {
                continue;
            };
            let job = match record::decode(job_id, state, body) {
                Ok((job, _)) => job,
                Err(bad) => {
                    let message = record::corrupt_message(keys.of(bad.part), job_id, &bad.reason);
                    record::placeholder(job_id, state, body, message)
                }
            };
            let waiting_on = waits.split(|b| *b == b'|').next().map_or(0, number);
            if let Some(step) = WorkflowStep::of(&job, waiting_on) {
                status.steps.push(step);
            }
        }
        Ok(Some(status))
    }

    async fn queues(&self) -> Result<Vec<QueueInfo>> {
        let shared = self.shared();
        let call = shared.common().call(&shared.scripts.queues);
        let flat: Vec<String> = shared.call("queues", &call).await?;
        let mut out: Vec<QueueInfo> = flat
            .chunks(3)
            .filter_map(|c| match c {
                [name, paused, ready] => Some(QueueInfo::new(
                    name.clone(),
                    paused == "1",
                    ready.parse().unwrap_or(0),
                )),
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Events from every process using this queue, relayed from the
    /// `jobs:{NAME}:events` channel (the scripts publish there while anyone
    /// listens). Events sent before the subscription reached Redis are not
    /// seen.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<crate::events::JobEvent> {
        let shared = self.shared();
        let rx = shared.events.subscribe();
        if !shared.events_wanted.swap(true, Ordering::AcqRel) {
            shared.events_on.notify_one();
        }
        self.ensure_subscriber();
        rx
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>> {
        let shared = self.shared();
        let mut call = shared.common().call(&shared.scripts.get);
        call.arg(id.to_string());
        let triples: Vec<Vec<u8>> = shared.call("get", &call).await?;
        Ok(self.decode_all(triples).pop())
    }

    async fn list(&self, status: Option<JobStatus>, limit: usize) -> Result<Vec<Job>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let shared = self.shared();
        let waiting = matches!(
            status,
            None | Some(JobStatus::Pending) | Some(JobStatus::Retrying)
        );
        let running = matches!(status, None | Some(JobStatus::Running));
        let finished = status.is_none_or(JobStatus::is_final);
        let flag = |b: bool| if b { "1" } else { "0" };
        let wanted = status.filter(|s| s.is_final()).map_or(String::new(), |s| {
            char::from(record::status_code(s)).to_string()
        });
        // Candidates: the newest of each index, in one consistent snapshot,
        // then filtered and sorted by creation time.
        let mut call = shared.common().call(&shared.scripts.list);
        call.arg(limit)
            .arg(flag(waiting))
            .arg(flag(running))
            .arg(flag(finished))
            .arg(wanted);
        let triples: Vec<Vec<u8>> = shared.call("list", &call).await?;
        let mut seen = std::collections::HashSet::new();
        let mut found: Vec<Job> = self
            .decode_all(triples)
            .into_iter()
            .filter(|job| seen.insert(job.id) && status.is_none_or(|s| job.status == s))
            .collect();
        found.sort_by_key(|job| std::cmp::Reverse(job.created_at));
        found.truncate(limit);
        Ok(found)
    }

    /// Reads the candidates from the indexes in one script call (one
    /// consistent snapshot) and returns only the page. The candidates are
    /// the first `offset + limit + 1` matching jobs of each index in its
    /// own order — each named queue's ready jobs per priority (last ready
    /// first), the jobs limits hold back, the scheduled ones (latest due
    /// first), the running ones, the finished ones kept (last finished
    /// first) — sorted by creation time. So the page is exact where those
    /// orders agree with creation order (jobs that became ready when
    /// created and were not retried, and for the newest finished ones);
    /// a waiting job retried long after it was created may be missed on a
    /// deep page.
    ///
    /// The cost is O(candidates): about `offset + limit` per index, the
    /// JSON of each read. A status or queue filter that rejects entries
    /// makes an index be read further; a name filter reads each entry's
    /// JSON to check it; each index is read for at most 10,000 entries
    /// beyond the first `offset + limit + 1` matches (so a name matching
    /// fewer jobs than that, far back in a long index, may be missed).
    async fn find_jobs(&self, filter: &JobFilter) -> Result<JobPage> {
        let shared = self.shared();
        let limit = filter.capped_limit();
        if filter
            .queue
            .as_deref()
            .is_some_and(|q| crate::job::check_queue_name(q).is_err())
        {
            // No job can be in a queue of that name (as on every backend).
            return Ok(JobPage::new(Vec::new(), false));
        }
        let status = filter.status.map_or(String::new(), |s| {
            char::from(record::status_code(s)).to_string()
        });
        let mut call = shared.common().call(&shared.scripts.find);
        call.arg(status)
            .arg(filter.name.as_deref().unwrap_or(""))
            .arg(filter.queue.as_deref().unwrap_or(""))
            .arg(filter.offset.min(1 << 40))
            .arg(limit)
            .arg(FIND_SCAN);
        let mut reply: Vec<Vec<u8>> = shared.call("find_jobs", &call).await?;
        if reply.is_empty() {
            return Ok(JobPage::new(Vec::new(), false));
        }
        let more = reply.remove(0) == b"1";
        Ok(JobPage::new(self.decode_all(reply), more))
    }

    /// One script call: the job's records and its place in every index go
    /// together, and its unique lock is freed.
    async fn delete(&self, id: JobId) -> Result<DeleteOutcome> {
        let shared = self.shared();
        let mut call = shared.common().call(&shared.scripts.delete);
        call.arg(id.to_string());
        let code: String = shared.call("delete", &call).await?;
        Ok(match code.as_str() {
            "D" => DeleteOutcome::Deleted,
            "R" => DeleteOutcome::Running,
            _ => DeleteOutcome::NotFound,
        })
    }

    /// Deletes up to 1,000 jobs per script call, as many calls as it
    /// takes, so that Redis serves other clients in between: finished jobs
    /// found in the retention list, waiting ones by a scan of every job's
    /// state (O(jobs) in all). Jobs that reach the status while it runs
    /// may stay.
    async fn purge_status(&self, status: JobStatus) -> Result<u64> {
        if status == JobStatus::Running {
            return Err(Error::InvalidArgument(
                "running jobs cannot be purged: cancel them".into(),
            ));
        }
        let shared = self.shared();
        let letter = char::from(record::status_code(status)).to_string();
        let mut cursor = "0".to_owned();
        let mut removed = 0;
        loop {
            let mut call = shared.common().call(&shared.scripts.purge_status);
            call.arg(&letter).arg(&cursor).arg(PURGE_CHUNK);
            let (n, next): (u64, String) = shared.call("purge_status", &call).await?;
            removed += n;
            if next.is_empty() {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// Counted by the finish and lease recovery scripts, once per call,
    /// in per-minute keys that expire after 25 hours; the minutes are those
    /// of the Redis clock.
    async fn throughput(&self, minutes: usize) -> Result<Vec<Throughput>> {
        let minutes = minutes.min(THROUGHPUT_MINUTES);
        let shared = self.shared();
        let mut call = shared.common().call(&shared.scripts.throughput);
        call.arg(minutes);
        let reply: Vec<String> = shared.call("throughput", &call).await?;
        let mut it = reply.into_iter();
        let current: i64 = it.next().and_then(|m| m.parse().ok()).unwrap_or_default();
        let now = chrono::DateTime::from_timestamp(current * 60, 0).unwrap_or_else(Utc::now);
        let known = it.enumerate().filter_map(|(back, packed)| {
            let packed: i64 = packed.parse().ok()?;
            let at = chrono::DateTime::from_timestamp((current - back as i64) * 60, 0)?;
            Some(Throughput::new(
                at,
                (packed >> 32).max(0) as u64,
                (packed & 0xffff_ffff) as u64,
            ))
        });
        Ok(Throughput::series(now, minutes, known))
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let call = self.workers_call("list");
        let reports: Vec<Vec<u8>> = self.shared().call("workers", &call).await?;
        let mut alive: Vec<WorkerInfo> = reports
            .iter()
            .filter_map(|json| serde_json::from_slice(json).ok())
            .collect();
        alive.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(alive)
    }

    async fn cancel(&self, id: JobId) -> Result<CancelOutcome> {
        let shared = self.shared();
        let mut call = shared.common().call(&shared.scripts.cancel);
        call.arg(id.to_string());
        let code: String = shared.call("cancel", &call).await?;
        Ok(match code.as_bytes().first() {
            None => CancelOutcome::NotFound,
            Some(b'P') => CancelOutcome::Cancelled,
            Some(b'R') => CancelOutcome::CancelledRunning,
            Some(&c) => {
                CancelOutcome::AlreadyFinished(record::status_of(c).unwrap_or(JobStatus::Failed))
            }
        })
    }

    async fn retry(&self, id: JobId) -> Result<bool> {
        let shared = self.shared();
        for _ in 0..10 {
            let mut call = shared.common().call(&shared.scripts.get);
            call.arg(id.to_string());
            let triple: Vec<Vec<u8>> = shared.call("retry", &call).await?;
            let [_, state, body] = &triple[..] else {
                return Ok(false);
            };
            let Ok((mut job, _)) = record::decode(id, state, body) else {
                // A corrupt job cannot be run again.
                return Ok(false);
            };
            if !job.reset_for_retry(Utc::now()) {
                return Ok(false);
            }
            let fresh = encode(&job)?;
            let mut call = shared.common().call(&shared.scripts.retry);
            call.arg(id.to_string())
                .arg(&state[..])
                .arg(&fresh.state)
                .arg(&fresh.body[..])
                .arg(fresh.due_us)
                .arg(fresh.rank);
            let answer: String = shared.call("retry", &call).await?;
            match answer.as_str() {
                "ok" => return Ok(true),
                "gone" => return Ok(false),
                _ => continue,
            }
        }
        Err(Error::Backend(BackendError::new(format!(
            "redis: job {id} kept changing while it was being retried"
        ))))
    }

    async fn counts(&self) -> Result<QueueCounts> {
        let shared = self.shared();
        let call = shared.common().call(&shared.scripts.counts);
        let flat: Vec<String> = shared.call("counts", &call).await?;
        let mut counts = QueueCounts::default();
        for pair in flat.chunks(2) {
            let [code, n] = pair else { continue };
            let n = n.parse::<i64>().unwrap_or(0).max(0) as u64;
            match code.as_bytes() {
                b"S" => counts.scheduled = n,
                [c] => {
                    if let Some(status) = record::status_of(*c) {
                        counts.set(status, n);
                    }
                }
                _ => {}
            }
        }
        Ok(counts)
    }

    async fn purge(&self) -> Result<u64> {
        let shared = self.shared();
        let call = shared.common().call(&shared.scripts.purge);
        shared.call("purge", &call).await
    }

    async fn ping(&self) -> Result<()> {
        let _: String = self.shared().call("ping", &redis::cmd("PING")).await?;
        Ok(())
    }
}

impl std::fmt::Debug for RedisJobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisJobQueue")
            .field("name", &self.inner.shared.name)
            .finish_non_exhaustive()
    }
}
