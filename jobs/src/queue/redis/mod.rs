//! The Redis queue: [`RedisJobQueue`] (cargo feature `redis`).
//!
//! # Key layout
//!
//! Every key of a queue named `NAME` starts with `jobs:{NAME}:`; the braces
//! are a Redis Cluster hash tag, so all keys of one queue live in one slot
//! and the Lua scripts may touch them together.
//!
//! | key                     | type       | holds                                                         |
//! |-------------------------|------------|---------------------------------------------------------------|
//! | `jobs:{NAME}:jobs`      | hash       | job id → record (header + job JSON + patches, see below)      |
//! | `jobs:{NAME}:ready`     | sorted set | ready job ids; score = priority band + sequence (FIFO)        |
//! | `jobs:{NAME}:delayed`   | sorted set | scheduled / retrying job ids; score = due time (µs)           |
//! | `jobs:{NAME}:running`   | sorted set | reserved job ids; score = lease deadline (µs, Redis clock)    |
//! | `jobs:{NAME}:done`      | sorted set | finished job ids; score = finish time; capped retention index |
//! | `jobs:{NAME}:counts`    | hash       | status letter → number of jobs                                |
//! | `jobs:{NAME}:seq`       | string     | counter for FIFO sequence numbers and lease tokens            |
//! | `jobs:{NAME}:last_run`  | hash       | periodic task → last occurrence run ([`RedisLastRunStore`])   |
//! | `jobs:{NAME}:wake`      | channel    | pub/sub: "a job is ready (0) / due at µs" for idle workers    |
//!
//! A job costs one hash field and one entry in one sorted set at any time:
//! `ready` or `delayed` while it waits, `running` while it runs, `done` once
//! finished (until the retention cap — [`RedisJobQueueBuilder::max_finished`],
//! 10,000 by default — or the optional age limit drops it).
//!
//! A record is `S R|attempts|max_retries|token|started_us|completed_us|`
//! followed by the job's JSON, then any number of `\x1f`-separated patches
//! (`{"result":..,"last_error":..,"scheduled_at":..}`) appended as attempts
//! finish. `S` is the status letter (`P`ending, `R`unning, `C`ompleted,
//! `F`ailed, re`T`rying, cancelled `X`, `E`xpired), `R` the priority rank
//! (0 = critical). The scripts only rewrite the header and append: they
//! never parse JSON.
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
//! # Speed
//!
//! Reserving takes up to `max` jobs in one script call; finishes that
//! complete at about the same time are sent together in one script call by a
//! background flusher; `enqueue_many` is one script call. An idle worker
//! waits on a pub/sub subscription (a dedicated connection) instead of
//! polling; the due time of the next scheduled job bounds its wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{CancelOutcome, Enqueue, JobQueue, Lease, Outcome, QueueCounts, Reservation};
use crate::error::{Error, Result};
use crate::job::{Job, JobId, JobStatus};
use crate::result::JobResult;
use crate::scheduler::LastRunStore;

mod record;
mod scripts;

use record::Patch;
use scripts::Scripts;

/// How many finished jobs a [`RedisJobQueue`] keeps by default.
pub const DEFAULT_REDIS_MAX_FINISHED: u64 = 10_000;

/// The most finish reports sent in one script call.
const MAX_FINISH_BATCH: usize = 512;

/// A queue in Redis, shared by any number of worker processes.
///
/// Build it from a URL ([`connect`](Self::connect), [`from_url`](Self::from_url),
/// [`builder`](Self::builder)) or, as in the seed, from host, port, database
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
                    Error::Backend(format!("connecting to Redis timed out after {timeout:?}"))
                })?
                .map_err(backend)?;
        shared.conn = conn;
        let queue = RedisJobQueue::from_shared(shared);
        queue.ping().await?;
        Ok(queue)
    }
}

fn backend(e: RedisError) -> Error {
    Error::Backend(format!("redis: {e}"))
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

    /// The seed's form: `RedisJobQueue(host, port, db, queue_name)`.
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
            max_finished: DEFAULT_REDIS_MAX_FINISHED,
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
                subscriber: std::sync::OnceLock::new(),
                _stop: stop,
            }),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.inner.shared.name
    }

    /// The Redis key holding the job records (a hash: id → record).
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

    /// Waiting jobs (pending or retrying), the seed's `queue.size()`.
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

    fn ensure_subscriber(&self) {
        self.inner.subscriber.get_or_init(|| {
            tokio::spawn(subscribe(Arc::clone(&self.inner.shared)));
        });
    }

    fn placeholder(&self, id: JobId, raw: &[u8], reason: &str) -> Job {
        record::placeholder(id, raw, reason, &self.shared().keys.jobs)
    }

    fn decode_or_placeholder(&self, id: JobId, raw: &[u8]) -> Job {
        match record::decode(id, raw) {
            Ok((job, _)) => job,
            Err(reason) => self.placeholder(id, raw, &reason),
        }
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
    async fn call<T, F>(&self, what: &str, fut: F) -> Result<T>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(result) => result.map_err(backend),
            Err(_) => Err(Error::Backend(format!(
                "redis: {what} timed out after {:?}",
                self.timeout
            ))),
        }
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    async fn finish_batch(&self, entries: &[FinishEntry]) -> Result<Vec<bool>> {
        let keys = &self.keys;
        let mut call = self.scripts.finish.prepare_invoke();
        call.key(&keys.jobs)
            .key(&keys.ready)
            .key(&keys.delayed)
            .key(&keys.running)
            .key(&keys.done)
            .key(&keys.seq)
            .key(&keys.counts)
            .arg(&keys.wake)
            .arg(self.max_finished)
            .arg(self.finished_ttl_us);
        for e in entries {
            call.arg(e.id.to_string())
                .arg(e.token)
                .arg(&[e.status][..])
                .arg(&e.patch[..])
                .arg(e.at_us);
            match &e.next {
                Some(next) => {
                    call.arg(next.id.to_string())
                        .arg(&next.record[..])
                        .arg(next.due_us)
                        .arg(next.rank);
                }
                None => {
                    call.arg("").arg("").arg(0).arg(0);
                }
            }
        }
        let mut conn = self.conn();
        let res: Vec<i64> = self.call("finish", call.invoke_async(&mut conn)).await?;
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
    record: Vec<u8>,
    due_us: i64,
    rank: usize,
}

struct FinishRequest {
    entry: FinishEntry,
    reply: oneshot::Sender<Result<bool>>,
}

/// Sends finish reports in batches: whatever queued up while the previous
/// batch was on its way goes in the next script call.
async fn flush_finishes(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<FinishRequest>) {
    let mut batch: Vec<FinishRequest> = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            first = rx.recv() => first,
            _ = shared.stop.cancelled() => None,
        };
        let Some(first) = first else { return };
        batch.push(first);
        while batch.len() < MAX_FINISH_BATCH {
            match rx.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
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
                    let _ = reply.send(Err(Error::Backend(e.to_string())));
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
                    let due: i64 = message.get_payload().unwrap_or(0);
                    wake(&shared, due);
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

impl Enqueue for RedisJobQueue {
    async fn enqueue(&self, job: Job) -> Result<JobId> {
        let id = job.id;
        self.enqueue_many(vec![job]).await?;
        Ok(id)
    }

    async fn enqueue_many(&self, jobs: Vec<Job>) -> Result<Vec<JobId>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut seen = std::collections::HashSet::with_capacity(jobs.len());
        for job in &jobs {
            job.validate()?;
            if !seen.insert(job.id) {
                return Err(Error::Duplicate(job.id));
            }
        }
        let shared = self.shared();
        let keys = &shared.keys;
        let mut call = shared.scripts.enqueue.prepare_invoke();
        call.key(&keys.jobs)
            .key(&keys.ready)
            .key(&keys.delayed)
            .key(&keys.seq)
            .key(&keys.counts)
            .arg(&keys.wake);
        let mut ids = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let raw = record::encode(job).map_err(|e| Error::Serialize {
                name: job.name.to_string(),
                message: e.to_string(),
            })?;
            call.arg(job.id.to_string())
                .arg(raw)
                .arg(record::due_micros(job))
                .arg(job.priority.rank());
            ids.push(job.id);
        }
        let mut conn = shared.conn();
        let reply: Vec<String> = shared.call("enqueue", call.invoke_async(&mut conn)).await?;
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(ids),
            Some("dup") => {
                let id = reply
                    .get(1)
                    .and_then(|id| id.parse().ok())
                    .unwrap_or(ids[0]);
                Err(Error::Duplicate(id))
            }
            _ => Err(Error::Backend(format!(
                "redis: unexpected reply to enqueue: {reply:?}"
            ))),
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
        let keys = &shared.keys;
        let mut conn = shared.conn();
        let reply: Vec<Vec<u8>> = shared
            .call(
                "reserve",
                shared
                    .scripts
                    .reserve
                    .key(&keys.jobs)
                    .key(&keys.ready)
                    .key(&keys.delayed)
                    .key(&keys.running)
                    .key(&keys.seq)
                    .key(&keys.counts)
                    .key(&keys.done)
                    .arg(max.max(1))
                    .arg(lease_us(lease))
                    .invoke_async(&mut conn),
            )
            .await?;
        let mut records = reply.into_iter();
        let next_due = records
            .next()
            .and_then(|d| std::str::from_utf8(&d).ok()?.parse::<f64>().ok())
            .filter(|d| *d >= 0.0)
            .map_or(i64::MAX, |d| d as i64);
        shared.wake.next_due_us.store(next_due, Ordering::Release);
        let mut out = Vec::with_capacity(records.len() / 2);
        let mut corrupt = Vec::new();
        while let (Some(id), Some(raw)) = (records.next(), records.next()) {
            let Some(id) = parse_id(&id) else { continue };
            match record::decode(id, &raw) {
                Ok((job, token)) => out.push(Reservation::new(job, Lease { job_id: id, token })),
                Err(reason) => {
                    let token = record::split(&raw).map_or(0, |(h, _)| h.token);
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
        let mut call = shared.scripts.heartbeat.prepare_invoke();
        call.key(&shared.keys.jobs)
            .key(&shared.keys.running)
            .arg(lease_us(lease));
        for l in leases {
            call.arg(l.job_id.to_string()).arg(l.token);
        }
        let mut conn = shared.conn();
        let lost: Vec<usize> = shared
            .call("heartbeat", call.invoke_async(&mut conn))
            .await?;
        Ok(lost
            .into_iter()
            .filter_map(|i| leases.get(i.checked_sub(1)?).copied())
            .collect())
    }

    async fn finish(&self, lease: Lease, outcome: Outcome, next: Option<Job>) -> Result<bool> {
        let next = match next {
            Some(job) => {
                job.validate()?;
                let record = record::encode(&job).map_err(|e| Error::Serialize {
                    name: job.name.to_string(),
                    message: e.to_string(),
                })?;
                Some(NextJob {
                    id: job.id,
                    record,
                    due_us: record::due_micros(&job),
                    rank: job.priority.rank(),
                })
            }
            None => None,
        };
        let (patch, at_us) = match &outcome {
            Outcome::Completed(result) => (
                Patch {
                    result: Some(Box::new(result.clone())),
                    ..Patch::default()
                },
                0,
            ),
            Outcome::Retry { result, at } => (
                Patch {
                    result: Some(Box::new(result.clone())),
                    last_error: result.error.clone(),
                    scheduled_at: Some(*at),
                },
                record::micros_ceil(*at),
            ),
            Outcome::Failed(result) => (
                Patch {
                    result: Some(Box::new(result.clone())),
                    last_error: result.error.clone(),
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
                Ok(Err(_)) => Err(Error::Backend(
                    "the finish flusher stopped before answering".into(),
                )),
                Err(_) => Err(Error::Backend("finish timed out".into())),
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
        let keys = &shared.keys;
        let mut call = shared.scripts.release.prepare_invoke();
        call.key(&keys.jobs)
            .key(&keys.ready)
            .key(&keys.running)
            .key(&keys.seq)
            .key(&keys.counts)
            .arg(&keys.wake);
        for l in leases {
            call.arg(l.job_id.to_string()).arg(l.token);
        }
        let mut conn = shared.conn();
        shared.call("release", call.invoke_async(&mut conn)).await
    }

    async fn recover_expired(&self) -> Result<usize> {
        let shared = self.shared();
        let keys = &shared.keys;
        let mut conn = shared.conn();
        let n: usize = shared
            .call(
                "recover_expired",
                shared
                    .scripts
                    .recover
                    .key(&keys.jobs)
                    .key(&keys.ready)
                    .key(&keys.running)
                    .key(&keys.seq)
                    .key(&keys.counts)
                    .key(&keys.done)
                    .arg(&keys.wake)
                    .arg(shared.max_finished)
                    .arg(shared.finished_ttl_us)
                    .invoke_async(&mut conn),
            )
            .await?;
        if n > 0 {
            tracing::warn!(queue = %shared.name, recovered = n, "jobs of lost workers returned to the queue");
        }
        Ok(n)
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>> {
        let shared = self.shared();
        let mut conn = shared.conn();
        let raw: Option<Vec<u8>> = shared
            .call(
                "get",
                redis::cmd("HGET")
                    .arg(&shared.keys.jobs)
                    .arg(id.to_string())
                    .query_async(&mut conn),
            )
            .await?;
        Ok(raw.map(|raw| self.decode_or_placeholder(id, &raw)))
    }

    async fn list(&self, status: Option<JobStatus>, limit: usize) -> Result<Vec<Job>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let shared = self.shared();
        let keys = &shared.keys;
        let waiting = matches!(
            status,
            None | Some(JobStatus::Pending) | Some(JobStatus::Retrying)
        );
        let running = matches!(status, None | Some(JobStatus::Running));
        let finished = status.is_none_or(JobStatus::is_final);
        // Candidates: the newest of each index, in one consistent snapshot,
        // then filtered and sorted by creation time. Finished jobs of one
        // status may be spread out in the retention index: look through all
        // of it (it is capped).
        let flag = |b: bool| if b { "1" } else { "0" };
        let mut conn = shared.conn();
        let pairs: Vec<Vec<u8>> = shared
            .call(
                "list",
                shared
                    .scripts
                    .list
                    .key(&keys.jobs)
                    .key(&keys.ready)
                    .key(&keys.delayed)
                    .key(&keys.running)
                    .key(&keys.done)
                    .arg(limit)
                    .arg(flag(waiting))
                    .arg(flag(running))
                    .arg(flag(finished))
                    .arg(flag(status.is_some()))
                    .invoke_async(&mut conn),
            )
            .await?;
        let mut seen = std::collections::HashSet::new();
        let mut found = Vec::new();
        let mut pairs = pairs.into_iter();
        while let (Some(id), Some(raw)) = (pairs.next(), pairs.next()) {
            let Some(id) = parse_id(&id) else { continue };
            if !seen.insert(id) {
                continue;
            }
            let job = self.decode_or_placeholder(id, &raw);
            if status.is_none_or(|s| job.status == s) {
                found.push(job);
            }
        }
        found.sort_by_key(|job| std::cmp::Reverse(job.created_at));
        found.truncate(limit);
        Ok(found)
    }

    async fn cancel(&self, id: JobId) -> Result<CancelOutcome> {
        let shared = self.shared();
        let keys = &shared.keys;
        let mut conn = shared.conn();
        let code: String = shared
            .call(
                "cancel",
                shared
                    .scripts
                    .cancel
                    .key(&keys.jobs)
                    .key(&keys.ready)
                    .key(&keys.delayed)
                    .key(&keys.running)
                    .key(&keys.done)
                    .key(&keys.counts)
                    .arg(id.to_string())
                    .arg(shared.max_finished)
                    .arg(shared.finished_ttl_us)
                    .invoke_async(&mut conn),
            )
            .await?;
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
        let keys = &shared.keys;
        for _ in 0..10 {
            let mut conn = shared.conn();
            let raw: Option<Vec<u8>> = shared
                .call(
                    "retry",
                    redis::cmd("HGET")
                        .arg(&keys.jobs)
                        .arg(id.to_string())
                        .query_async(&mut conn),
                )
                .await?;
            let Some(raw) = raw else { return Ok(false) };
            let Ok((mut job, _)) = record::decode(id, &raw) else {
                // A corrupt record cannot be run again.
                return Ok(false);
            };
            if !matches!(
                job.status,
                JobStatus::Failed | JobStatus::Cancelled | JobStatus::Expired
            ) {
                return Ok(false);
            }
            let now = Utc::now();
            job.status = JobStatus::Pending;
            job.attempts = 0;
            job.completed_at = None;
            job.started_at = None;
            job.scheduled_at = None;
            if job.expires_at.is_some_and(|at| at <= now) {
                job.expires_at = None;
            }
            let fresh = record::encode(&job).map_err(|e| Error::Serialize {
                name: job.name.to_string(),
                message: e.to_string(),
            })?;
            let answer: String = shared
                .call(
                    "retry",
                    shared
                        .scripts
                        .retry
                        .key(&keys.jobs)
                        .key(&keys.ready)
                        .key(&keys.delayed)
                        .key(&keys.done)
                        .key(&keys.seq)
                        .key(&keys.counts)
                        .arg(&keys.wake)
                        .arg(id.to_string())
                        .arg(&raw[..])
                        .arg(fresh)
                        .arg(record::due_micros(&job))
                        .arg(job.priority.rank())
                        .invoke_async(&mut conn),
                )
                .await?;
            match answer.as_str() {
                "ok" => return Ok(true),
                "gone" => return Ok(false),
                _ => continue,
            }
        }
        Err(Error::Backend(format!(
            "redis: job {id} kept changing while it was being retried"
        )))
    }

    async fn counts(&self) -> Result<QueueCounts> {
        let shared = self.shared();
        let mut conn = shared.conn();
        let flat: Vec<String> = shared
            .call(
                "counts",
                shared
                    .scripts
                    .counts
                    .key(&shared.keys.counts)
                    .key(&shared.keys.delayed)
                    .invoke_async(&mut conn),
            )
            .await?;
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
        let keys = &shared.keys;
        let mut conn = shared.conn();
        shared
            .call(
                "purge",
                shared
                    .scripts
                    .purge
                    .key(&keys.jobs)
                    .key(&keys.ready)
                    .key(&keys.delayed)
                    .key(&keys.running)
                    .key(&keys.done)
                    .key(&keys.counts)
                    .invoke_async(&mut conn),
            )
            .await
    }

    async fn ping(&self) -> Result<()> {
        let shared = self.shared();
        let mut conn = shared.conn();
        let _: String = shared
            .call("ping", redis::cmd("PING").query_async(&mut conn))
            .await?;
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
        let mut conn = shared.conn();
        let ms: Option<i64> = shared
            .call(
                "last_run",
                redis::cmd("HGET")
                    .arg(&shared.keys.last_run)
                    .arg(task)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(ms.and_then(DateTime::<Utc>::from_timestamp_millis))
    }

    async fn save(&self, task: &str, occurrence: DateTime<Utc>) -> Result<()> {
        let shared = &self.shared;
        let mut conn = shared.conn();
        let _: i64 = shared
            .call(
                "last_run",
                shared
                    .scripts
                    .save_last_run
                    .key(&shared.keys.last_run)
                    .arg(task)
                    .arg(occurrence.timestamp_millis())
                    .invoke_async(&mut conn),
            )
            .await?;
        Ok(())
    }
}
