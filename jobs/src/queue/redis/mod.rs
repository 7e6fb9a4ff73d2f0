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
//! | `jobs:{NAME}:state`     | hash       | job id → state: `S R\|attempts\|max\|token\|started\|done\|` + results |
//! | `jobs:{NAME}:jobs`      | hash       | job id → the job's JSON (as enqueued)                        |
//! | `jobs:{NAME}:ready`     | sorted set | ready job ids; score = priority band + sequence (FIFO)       |
//! | `jobs:{NAME}:delayed`   | sorted set | scheduled / retrying job ids; score = due time (µs)          |
//! | `jobs:{NAME}:running`   | sorted set | reserved job ids; score = lease deadline (µs, Redis clock)   |
//! | `jobs:{NAME}:done`      | list       | finished jobs, newest first (`S<id>\|<finish µs>`): retention |
//! | `jobs:{NAME}:counts`    | hash       | status letter → number of jobs                               |
//! | `jobs:{NAME}:seq`       | string     | counter for FIFO sequence numbers and lease tokens           |
//! | `jobs:{NAME}:last_run`  | hash       | periodic task → last occurrence run ([`RedisLastRunStore`])  |
//! | `jobs:{NAME}:wake`      | channel    | pub/sub: job ready (`0`) / due at µs; `revoked` (cancelled)  |
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
//! token, and the start and finish times (µs), followed by the results of
//! finished attempts (`\x1f{"result":..,"last_error":..,"scheduled_at":..}`,
//! applied in order). It is authoritative for those fields; the JSON is
//! never rewritten by a state change. So the scripts never parse JSON, and
//! the hot ones (reserve, finish) only rewrite the short state: the job's
//! JSON passes through a script once, on its way to the worker.
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
//! accepted or refused on its own); `enqueue_many` is one script call. An
//! idle worker waits on a pub/sub subscription (a dedicated connection)
//! instead of polling; the due time of the next scheduled job bounds its
//! wait, and the polling interval is only a fallback.
//!
//! # Faults
//!
//! Every call is bounded by the queue's timeout (5 s by default): while
//! Redis is unreachable, calls fail with [`Error::Backend`] instead of
//! hanging, the worker backs off, logs and reports itself unhealthy in
//! `health_check`, and the connection is re-established on its own when
//! Redis is back (scripts are reloaded if Redis lost them). A job whose JSON
//! or state was corrupted (hand-edited) is failed with an error naming the
//! key and the job when a worker reserves it; the worker carries on.
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
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{
    CancelOutcome, Enqueue, JobQueue, Lease, Outcome, QueueAdmin, QueueCounts, Reservation,
};
use crate::error::{BackendError, Error, Result};
use crate::job::{Job, JobId, JobStatus};
use crate::result::JobResult;
use crate::scheduler::LastRunStore;

mod record;
mod scripts;

use record::Patch;
use scripts::Scripts;

/// The most finish reports, or single enqueues, sent in one script call.
const MAX_BATCH: usize = 512;

/// A queue in Redis, shared by any number of worker processes.
///
/// Build it from a URL ([`connect`](Self::connect), [`from_url`](Self::from_url),
/// [`builder`](Self::builder)) or, in the classic form, from host, port, database
/// and queue name ([`new`](Self::new)). Clones share one multiplexed
/// connection (a `ConnectionManager`, which reconnects on its own). Every
/// call is bounded by a timeout, so an unreachable Redis is an `Err`, never
/// a hang. See the [module docs](self) for the key layout and the delivery
/// guarantee.
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
    scripts: Scripts,
    timeout: Duration,
    max_finished: u64,
    finished_ttl_us: i64,
    wake: Wake,
    /// Signalled when a running job was cancelled (by any process).
    revoked: Notify,
    stop: CancellationToken,
}

/// Wake-ups for idle workers, fed by the pub/sub subscription.
struct Wake {
    notify: Notify,
    /// Bumped on every wake message (and on each (re)subscription).
    epoch: AtomicU64,
    /// The earliest known due time of a scheduled job (µs), or `i64::MAX`.
    next_due_us: AtomicI64,
}

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
        }
    }
}

/// Builds a [`RedisJobQueue`] with non-default settings.
#[derive(Clone, Debug)]
pub struct RedisJobQueueBuilder {
    url: String,
    name: String,
    timeout: Duration,
    connect_timeout: Duration,
    max_finished: u64,
    finished_ttl: Option<Duration>,
}

impl RedisJobQueueBuilder {
    /// The queue's name (default `"default"`): queues of different names on
    /// one Redis are independent.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How long one call to Redis may take before it is an error (default
    /// 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long connecting may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Keeps at most this many finished jobs (the oldest go first; default
    /// 10,000). Periodic tasks rely on the ids of recent finished jobs to
    /// enqueue each occurrence once: keep at least one schedule period's
    /// worth.
    pub fn max_finished(mut self, max: u64) -> Self {
        self.max_finished = max;
        self
    }

    /// Forgets finished jobs older than this.
    pub fn finished_ttl(mut self, ttl: Duration) -> Self {
        self.finished_ttl = Some(ttl);
        self
    }

    fn prepare(self) -> Result<(Client, ConnectionManagerConfig, Shared)> {
        if self.name.is_empty() || self.name.contains(['{', '}']) {
            return Err(Error::InvalidArgument(format!(
                "invalid queue name `{}`: it must be non-empty and contain no braces",
                self.name
            )));
        }
        if self.timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "the Redis timeout must be longer than zero".into(),
            ));
        }
        let client = Client::open(self.url.as_str())
            .map_err(|e| Error::InvalidArgument(format!("invalid Redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let ttl_us = self
            .finished_ttl
            .map_or(0, |ttl| i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(backend)?;
        Ok((
            client.clone(),
            config,
            Shared {
                keys: Keys::new(&self.name),
                name: self.name,
                client: client.clone(),
                conn,
                scripts: Scripts::new(),
                timeout: self.timeout,
                max_finished: self.max_finished,
                finished_ttl_us: ttl_us,
                wake: Wake {
                    notify: Notify::new(),
                    epoch: AtomicU64::new(0),
                    next_due_us: AtomicI64::new(i64::MAX),
                },
                revoked: Notify::new(),
                stop: CancellationToken::new(),
            },
        ))
    }

    /// The queue, connecting lazily on first use (so it can be built while
    /// Redis is down). Needs a tokio runtime.
    pub fn build(self) -> Result<RedisJobQueue> {
        let (_, _, shared) = self.prepare()?;
        Ok(RedisJobQueue::from_shared(shared))
    }

    /// The queue, once Redis answered a `PING`.
    pub async fn connect(self) -> Result<RedisJobQueue> {
        let timeout = self.connect_timeout + self.timeout;
        let (client, config, mut shared) = self.prepare()?;
        let conn =
            tokio::time::timeout(timeout, ConnectionManager::new_with_config(client, config))
                .await
                .map_err(|_| {
                    Error::Backend(BackendError::new(format!(
                        "connecting to Redis timed out after {timeout:?}"
                    )))
                })?
                .map_err(backend)?;
        shared.conn = conn;
        let queue = RedisJobQueue::from_shared(shared);
        queue.ping().await?;
        Ok(queue)
    }
}

fn backend(e: RedisError) -> Error {
    // Connection-level failures (refused, reset, timed out, a server that
    // is loading or failing over) may pass; a command Redis refuses will not.
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::BusyLoading
                    | redis::ServerErrorKind::TryAgain
                    | redis::ServerErrorKind::MasterDown
                    | redis::ServerErrorKind::ClusterDown
                    | redis::ServerErrorKind::ReadOnly
            )
        );
    Error::Backend(
        BackendError::new("redis")
            .with_source(e)
            .transient(transient),
    )
}

impl RedisJobQueue {
    /// Connects to `url` (`redis://host:port/db`) and uses the queue `name`.
    pub async fn connect(url: &str, name: &str) -> Result<Self> {
        Self::builder(url).name(name).connect().await
    }

    /// The queue `name` at `url`, connecting lazily on first use.
    pub fn from_url(url: &str, name: &str) -> Result<Self> {
        Self::builder(url).name(name).build()
    }

    /// The classic form: `RedisJobQueue(host, port, db, queue_name)`.
    pub async fn new(host: &str, port: u16, db: u32, name: &str) -> Result<Self> {
        Self::connect(&format!("redis://{host}:{port}/{db}"), name).await
    }

    /// A builder for the queue at `url`, with the defaults: queue name
    /// `"default"`, 5 s timeout per call, 10,000 finished jobs kept.
    pub fn builder(url: &str) -> RedisJobQueueBuilder {
        RedisJobQueueBuilder {
            url: url.to_owned(),
            name: crate::job::DEFAULT_QUEUE.to_owned(),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            max_finished: super::DEFAULT_MAX_FINISHED,
            finished_ttl: None,
        }
    }

    fn from_shared(shared: Shared) -> Self {
        let stop = shared.stop.clone().drop_guard();
        RedisJobQueue {
            inner: Arc::new(Inner {
                shared: Arc::new(shared),
                seen_epoch: AtomicU64::new(u64::MAX),
                finisher: std::sync::OnceLock::new(),
                enqueuer: std::sync::OnceLock::new(),
                subscriber: std::sync::OnceLock::new(),
                _stop: stop,
            }),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.inner.shared.name
    }

    /// The Redis key of the hash holding each job's JSON (id → JSON).
    pub fn jobs_key(&self) -> &str {
        &self.inner.shared.keys.jobs
    }

    /// A [`LastRunStore`] in this queue's Redis, so that periodic tasks
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

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    fn finisher(&self) -> &mpsc::UnboundedSender<FinishRequest> {
        self.inner.finisher.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(flush_finishes(Arc::clone(&self.inner.shared), rx));
            tx
        })
    }

    fn enqueuer(&self) -> &mpsc::UnboundedSender<EnqueueRequest> {
        self.inner.enqueuer.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(flush_enqueues(Arc::clone(&self.inner.shared), rx));
            tx
        })
    }

    fn ensure_subscriber(&self) {
        self.inner.subscriber.get_or_init(|| {
            tokio::spawn(subscribe(Arc::clone(&self.inner.shared)));
        });
    }

    /// Jobs from `id, state, JSON` triples, as the scripts return them; a
    /// job that does not parse shows as a placeholder.
    fn decode_all(&self, triples: Vec<Vec<u8>>) -> Vec<Job> {
        let mut out = Vec::with_capacity(triples.len() / 3);
        let mut it = triples.into_iter();
        while let (Some(id), Some(state), Some(body)) = (it.next(), it.next(), it.next()) {
            let Some(id) = parse_id(&id) else { continue };
            out.push(match record::decode(id, &state, &body) {
                Ok((job, _)) => job,
                Err(reason) => {
                    record::placeholder(id, &state, &body, &reason, &self.shared().keys.jobs)
                }
            });
        }
        out
    }

    /// Fails jobs whose records did not parse after they were reserved.
    async fn fail_corrupt(&self, corrupt: Vec<(Lease, String)>) {
        for (lease, reason) in corrupt {
            let message = record::corrupt_message(&self.shared().keys.jobs, lease.job_id, &reason);
            tracing::error!(job = %lease.job_id, error = %message, "failing a job whose record is corrupt");
            let result = JobResult::failure(
                crate::result::JobError::permanent(message).with_type("CorruptRecord"),
            );
            if let Err(e) = self.finish(lease, Outcome::Failed(result), None).await {
                tracing::error!(job = %lease.job_id, error = %e, "could not fail a corrupt job; it is retried when its lease expires");
            }
        }
    }
}

impl Shared {
    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Runs a script invocation under the timeout. A call refused because
    /// the connection was down (so it never reached Redis) is tried once
    /// more, on the fresh connection the refusal set up: the first call
    /// after an outage succeeds.
    async fn script<T: redis::FromRedisValue>(
        &self,
        what: &str,
        call: &redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        let mut retried = false;
        loop {
            let mut conn = self.conn();
            match tokio::time::timeout(self.timeout, call.invoke_async(&mut conn)).await {
                Ok(Err(e)) if !retried && e.is_connection_refusal() => retried = true,
                Ok(result) => return result.map_err(backend),
                Err(_) => return Err(self.timed_out(what)),
            }
        }
    }

    /// [`script`](Self::script) for a plain command.
    async fn cmd<T: redis::FromRedisValue>(&self, what: &str, cmd: &redis::Cmd) -> Result<T> {
        let mut retried = false;
        loop {
            let mut conn = self.conn();
            match tokio::time::timeout(self.timeout, cmd.query_async(&mut conn)).await {
                Ok(Err(e)) if !retried && e.is_connection_refusal() => retried = true,
                Ok(result) => return result.map_err(backend),
                Err(_) => return Err(self.timed_out(what)),
            }
        }
    }

    fn timed_out(&self, what: &str) -> Error {
        Error::Backend(BackendError::new(format!(
            "redis: {what} timed out after {:?}",
            self.timeout
        )))
    }

    /// The keys and arguments every queue script takes.
    fn common(&self) -> scripts::Common<'_> {
        let k = &self.keys;
        scripts::Common {
            keys: [
                &k.jobs, &k.state, &k.ready, &k.delayed, &k.running, &k.done, &k.seq, &k.counts,
            ],
            channel: &k.wake,
            max_finished: self.max_finished,
            finished_ttl_us: self.finished_ttl_us,
        }
    }

    async fn finish_batch(&self, entries: &[FinishEntry]) -> Result<Vec<bool>> {
        let mut call = self.common().call(&self.scripts.finish);
        for e in entries {
            // The status, with `+` if the next job's 5 values follow.
            let status = [e.status, b'+'];
            call.arg(e.id.to_string())
                .arg(e.token)
                .arg(&status[..if e.next.is_some() { 2 } else { 1 }])
                .arg(&e.patch[..])
                .arg(e.at_us);
            if let Some(next) = &e.next {
                call.arg(next.id.to_string())
                    .arg(&next.state)
                    .arg(&next.body[..])
                    .arg(next.due_us)
                    .arg(next.rank);
            }
        }
        let res: Vec<i64> = self.script("finish", &call).await?;
        Ok(res.into_iter().map(|r| r == 1).collect())
    }
}

/// One finish report, encoded for the script.
struct FinishEntry {
    id: JobId,
    token: u64,
    status: u8,
    patch: Vec<u8>,
    at_us: i64,
    next: Option<NextJob>,
}

struct NextJob {
    id: JobId,
    state: String,
    body: Vec<u8>,
    due_us: i64,
    rank: usize,
}

struct FinishRequest {
    entry: FinishEntry,
    reply: oneshot::Sender<Result<bool>>,
}

/// Waits for a request, then takes whatever else is queued (up to
/// [`MAX_BATCH`]) into `batch`. `false` once the queue is dropped.
async fn next_batch<T>(
    shared: &Shared,
    rx: &mut mpsc::UnboundedReceiver<T>,
    batch: &mut Vec<T>,
) -> bool {
    let first = tokio::select! {
        biased;
        first = rx.recv() => first,
        _ = shared.stop.cancelled() => None,
    };
    let Some(first) = first else { return false };
    batch.push(first);
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(request) => batch.push(request),
            Err(_) => break,
        }
    }
    true
}

/// Sends finish reports in batches: whatever queued up while the previous
/// batch was on its way goes in the next script call.
async fn flush_finishes(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<FinishRequest>) {
    let mut batch: Vec<FinishRequest> = Vec::new();
    while next_batch(&shared, &mut rx, &mut batch).await {
        let (entries, replies): (Vec<FinishEntry>, Vec<oneshot::Sender<Result<bool>>>) =
            batch.drain(..).map(|r| (r.entry, r.reply)).unzip();
        match shared.finish_batch(&entries).await {
            Ok(results) => {
                for (reply, held) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(held));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Keeps a pub/sub subscription to the queue's wake channel and turns its
/// messages into wake-ups; resubscribes with backoff when Redis goes away.
async fn subscribe(shared: Arc<Shared>) {
    let mut delay = Duration::from_millis(100);
    loop {
        let connected = async {
            let mut pubsub = shared.client.get_async_pubsub().await?;
            pubsub.subscribe(&shared.keys.wake).await?;
            Ok::<_, RedisError>(pubsub)
        };
        let attempt = tokio::select! {
            _ = shared.stop.cancelled() => return,
            attempt = tokio::time::timeout(shared.timeout, connected) => attempt,
        };
        match attempt {
            Ok(Ok(pubsub)) => {
                delay = Duration::from_millis(100);
                // Jobs may have come while we were not listening.
                wake(&shared, 0);
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        _ = shared.stop.cancelled() => return,
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    let payload: String = message.get_payload().unwrap_or_default();
                    if payload == "revoked" {
                        shared.revoked.notify_one();
                    } else {
                        wake(&shared, payload.parse().unwrap_or(0));
                    }
                }
                tracing::debug!(queue = %shared.name, "wake subscription lost; resubscribing");
            }
            Ok(Err(e)) => {
                tracing::debug!(queue = %shared.name, error = %e, "wake subscription failed")
            }
            Err(_) => tracing::debug!(queue = %shared.name, "wake subscription timed out"),
        }
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

fn wake(shared: &Shared, due_us: i64) {
    if due_us > 0 {
        shared.wake.next_due_us.fetch_min(due_us, Ordering::AcqRel);
    }
    shared.wake.epoch.fetch_add(1, Ordering::AcqRel);
    shared.wake.notify.notify_waiters();
}

fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

fn lease_us(lease: Duration) -> i64 {
    i64::try_from(lease.as_micros()).unwrap_or(i64::MAX / 4)
}

fn parse_id(raw: &[u8]) -> Option<JobId> {
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// One job of a batch of independent single enqueues.
struct EnqueueRequest {
    id: JobId,
    state: String,
    body: Vec<u8>,
    due_us: i64,
    rank: usize,
    reply: oneshot::Sender<Result<JobId>>,
}

impl Shared {
    /// Stores jobs in one script call. `each`: independent jobs, a taken id
    /// fails only its own job; else all or nothing. Returns per job whether
    /// it was stored.
    async fn enqueue_batch(
        &self,
        jobs: impl Iterator<Item = (JobId, &str, &[u8], i64, usize)>,
        each: bool,
    ) -> Result<std::result::Result<Vec<bool>, JobId>> {
        let mut call = self.common().call(&self.scripts.enqueue);
        call.arg(if each { "each" } else { "all" });
        let mut first = None;
        for (id, state, body, due_us, rank) in jobs {
            first.get_or_insert(id);
            call.arg(id.to_string())
                .arg(state)
                .arg(body)
                .arg(due_us)
                .arg(rank);
        }
        let reply: Vec<String> = self.script("enqueue", &call).await?;
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(Ok(Vec::new())),
            Some("each") => Ok(Ok(reply[1..].iter().map(|r| r == "1").collect())),
            Some("dup") => Ok(Err(reply
                .get(1)
                .and_then(|id| id.parse().ok())
                .or(first)
                .unwrap_or_default())),
            _ => Err(Error::Backend(BackendError::new(format!(
                "redis: unexpected reply to enqueue: {reply:?}"
            )))),
        }
    }
}

/// Sends single enqueues in batches: whatever queued up while the previous
/// batch was on its way goes in the next script call.
async fn flush_enqueues(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<EnqueueRequest>) {
    let mut batch: Vec<EnqueueRequest> = Vec::new();
    while next_batch(&shared, &mut rx, &mut batch).await {
        let result = shared
            .enqueue_batch(
                batch
                    .iter()
                    .map(|r| (r.id, r.state.as_str(), &r.body[..], r.due_us, r.rank)),
                true,
            )
            .await;
        match result {
            Ok(Ok(stored)) => {
                for (request, stored) in batch.drain(..).zip(stored) {
                    let answer = if stored {
                        Ok(request.id)
                    } else {
                        Err(Error::Duplicate(request.id))
                    };
                    let _ = request.reply.send(answer);
                }
            }
            Ok(Err(_)) => unreachable!("`each` mode reports per job"),
            Err(e) => {
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

fn encode(job: &Job) -> Result<(String, Vec<u8>)> {
    record::encode(job).map_err(|e| Error::Serialize {
        name: job.name.to_string(),
        message: e.to_string(),
    })
}

impl Enqueue for RedisJobQueue {
    /// Concurrent single enqueues are sent together (one script call for
    /// all that queued up while the previous call was on its way); each is
    /// still accepted or refused on its own.
    async fn enqueue(&self, job: Job) -> Result<JobId> {
        job.validate()?;
        let (state, body) = encode(&job)?;
        let (reply, answer) = oneshot::channel();
        let request = EnqueueRequest {
            id: job.id,
            state,
            body,
            due_us: record::due_micros(&job),
            rank: job.priority.rank(),
            reply,
        };
        let shared = self.shared();
        match self.enqueuer().send(request) {
            Ok(()) => match tokio::time::timeout(shared.timeout * 2, answer).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(Error::Backend(BackendError::new(
                    "the enqueue flusher stopped before answering",
                ))),
                Err(_) => Err(Error::Backend(BackendError::new("enqueue timed out"))),
            },
            // The flusher is gone (its runtime shut down): send directly.
            Err(mpsc::error::SendError(r)) => {
                let one = std::iter::once((r.id, r.state.as_str(), &r.body[..], r.due_us, r.rank));
                match shared.enqueue_batch(one, false).await? {
                    Ok(_) => Ok(r.id),
                    Err(id) => Err(Error::Duplicate(id)),
                }
            }
        }
    }

    async fn enqueue_many(&self, jobs: Vec<Job>) -> Result<Vec<JobId>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut seen = std::collections::HashSet::with_capacity(jobs.len());
        let mut encoded = Vec::with_capacity(jobs.len());
        for job in &jobs {
            job.validate()?;
            if !seen.insert(job.id) {
                return Err(Error::Duplicate(job.id));
            }
            let (state, body) = encode(job)?;
            encoded.push((
                job.id,
                state,
                body,
                record::due_micros(job),
                job.priority.rank(),
            ));
        }
        let stored = self
            .shared()
            .enqueue_batch(
                encoded.iter().map(|(id, state, body, due, rank)| {
                    (*id, state.as_str(), &body[..], *due, *rank)
                }),
                false,
            )
            .await?;
        match stored {
            Ok(_) => Ok(jobs.iter().map(|j| j.id).collect()),
            Err(id) => Err(Error::Duplicate(id)),
        }
    }
}

impl JobQueue for RedisJobQueue {
    async fn reserve(
        &self,
        _worker: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Reservation>> {
        let shared = self.shared();
        self.inner
            .seen_epoch
            .store(shared.wake.epoch.load(Ordering::Acquire), Ordering::Release);
        let mut call = shared.common().call(&shared.scripts.reserve);
        call.arg(max.clamp(1, 1000)).arg(lease_us(lease));
        let reply: Vec<Vec<u8>> = shared.script("reserve", &call).await?;
        let mut it = reply.into_iter();
        let next_due = it
            .next()
            .and_then(|d| std::str::from_utf8(&d).ok()?.parse::<f64>().ok())
            .filter(|d| *d >= 0.0)
            .map_or(i64::MAX, |d| d as i64);
        shared.wake.next_due_us.store(next_due, Ordering::Release);
        let mut out = Vec::with_capacity(it.len() / 3);
        let mut corrupt = Vec::new();
        while let (Some(id), Some(state), Some(body)) = (it.next(), it.next(), it.next()) {
            let Some(id) = parse_id(&id) else { continue };
            match record::decode(id, &state, &body) {
                Ok((job, token)) => out.push(Reservation::new(job, Lease { job_id: id, token })),
                Err(reason) => {
                    let token = record::parse_state(&state).map_or(0, |(h, _)| h.token);
                    corrupt.push((Lease { job_id: id, token }, reason));
                }
            }
        }
        if !corrupt.is_empty() {
            self.fail_corrupt(corrupt).await;
        }
        Ok(out)
    }

    async fn wait_for_jobs(&self, timeout: Duration) {
        self.ensure_subscriber();
        let wake = &self.shared().wake;
        let notified = wake.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if wake.epoch.load(Ordering::Acquire) != self.inner.seen_epoch.load(Ordering::Acquire) {
            // Something was pushed since the last reserve started.
            return;
        }
        let due = wake.next_due_us.load(Ordering::Acquire);
        let wait = if due == i64::MAX {
            timeout
        } else {
            let until = Duration::from_micros(u64::try_from(due - now_us()).unwrap_or(0));
            timeout.min(until + Duration::from_millis(1))
        };
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(wait) => {}
        }
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
        let lost: Vec<usize> = shared.script("heartbeat", &call).await?;
        Ok(lost
            .into_iter()
            .filter_map(|i| leases.get(i.checked_sub(1)?).copied())
            .collect())
    }

    async fn finish(&self, lease: Lease, outcome: Outcome, next: Option<Job>) -> Result<bool> {
        let next = match next {
            Some(job) => {
                job.validate()?;
                let (state, body) = encode(&job)?;
                Some(NextJob {
                    id: job.id,
                    state,
                    body,
                    due_us: record::due_micros(&job),
                    rank: job.priority.rank(),
                })
            }
            None => None,
        };
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
            _ => (Patch::default(), 0),
        };
        let patch = if patch.result.is_none() && patch.last_error.is_none() {
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
            status: record::status_code(outcome.status()),
            patch,
            at_us,
            next,
        };
        let (reply, answer) = oneshot::channel();
        match self.finisher().send(FinishRequest { entry, reply }) {
            Ok(()) => match tokio::time::timeout(self.shared().timeout * 2, answer).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(Error::Backend(BackendError::new(
                    "the finish flusher stopped before answering",
                ))),
                Err(_) => Err(Error::Backend(BackendError::new("finish timed out"))),
            },
            // The flusher is gone (its runtime shut down): report directly.
            Err(mpsc::error::SendError(request)) => self
                .shared()
                .finish_batch(std::slice::from_ref(&request.entry))
                .await
                .map(|r| r.first().copied().unwrap_or(false)),
        }
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
        shared.script("release", &call).await
    }

    async fn recover_expired(&self) -> Result<usize> {
        let shared = self.shared();
        let call = shared.common().call(&shared.scripts.recover);
        let n: usize = shared.script("recover_expired", &call).await?;
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
}

impl QueueAdmin for RedisJobQueue {
    async fn get(&self, id: JobId) -> Result<Option<Job>> {
        let shared = self.shared();
        let mut call = shared.common().call(&shared.scripts.get);
        call.arg(id.to_string());
        let quads: Vec<Vec<u8>> = shared.script("get", &call).await?;
        Ok(self.decode_all(quads).pop())
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
        let quads: Vec<Vec<u8>> = shared.script("list", &call).await?;
        let mut seen = std::collections::HashSet::new();
        let mut found: Vec<Job> = self
            .decode_all(quads)
            .into_iter()
            .filter(|job| seen.insert(job.id) && status.is_none_or(|s| job.status == s))
            .collect();
        found.sort_by_key(|job| std::cmp::Reverse(job.created_at));
        found.truncate(limit);
        Ok(found)
    }

    async fn cancel(&self, id: JobId) -> Result<CancelOutcome> {
        let shared = self.shared();
        let mut call = shared.common().call(&shared.scripts.cancel);
        call.arg(id.to_string());
        let code: String = shared.script("cancel", &call).await?;
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
            let triple: Vec<Vec<u8>> = shared.script("retry", &call).await?;
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
            let (fresh_state, fresh_body) = encode(&job)?;
            let mut call = shared.common().call(&shared.scripts.retry);
            call.arg(id.to_string())
                .arg(&state[..])
                .arg(fresh_state)
                .arg(fresh_body)
                .arg(record::due_micros(&job))
                .arg(job.priority.rank());
            let answer: String = shared.script("retry", &call).await?;
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
        let flat: Vec<String> = shared.script("counts", &call).await?;
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
        shared.script("purge", &call).await
    }

    async fn ping(&self) -> Result<()> {
        let _: String = self.shared().cmd("ping", &redis::cmd("PING")).await?;
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

/// A [`LastRunStore`] in Redis (the hash `jobs:{NAME}:last_run`), shared by
/// every process: a restarted scheduler catches up on the occurrences it
/// missed, per its [`MissedRuns`](crate::MissedRuns) policy. Get one with
/// [`RedisJobQueue::last_run_store`].
#[derive(Clone)]
pub struct RedisLastRunStore {
    shared: Arc<Shared>,
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
        let ms: Option<i64> = shared.cmd("last_run", &cmd).await?;
        Ok(ms.and_then(DateTime::<Utc>::from_timestamp_millis))
    }

    async fn save(&self, task: &str, occurrence: DateTime<Utc>) -> Result<()> {
        let shared = &self.shared;
        let mut call = shared.scripts.save_last_run.prepare_invoke();
        call.key(&shared.keys.last_run)
            .arg(task)
            .arg(occurrence.timestamp_millis());
        let _: i64 = shared.script("last_run", &call).await?;
        Ok(())
    }
}
