//! [`AnyQueue`]: one type for a queue whose backend is chosen at run time,
//! e.g. from a URL, as the CLI and the dashboard do.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast;

use super::erased::DynQueue;
use super::{
    CancelOutcome, DeleteOutcome, Enqueue, Enqueued, JobFilter, JobPage, JobQueue, Lease, Outcome,
    QueueAdmin, QueueCounts, QueueInfo, Reservation, Take, Throughput, WorkerInfo,
};
use crate::error::{Error, Result};
use crate::events::JobEvent;
use crate::job::{Job, JobId, JobStatus};
use crate::workflow::{DependencyResult, WorkflowId, WorkflowStatus};

/// Any [`JobQueue`] behind one cloneable type: the backend is picked at run
/// time, by [`AnyQueue::connect`] from a URL or by wrapping a queue with
/// [`AnyQueue::new`]. It is a [`JobQueue`] itself, so workers, the CLI and
/// the dashboard take it like any other.
///
/// ```
/// use jobs::{AnyQueue, MemoryJobQueue, QueueAdmin};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), jobs::Error> {
/// let queue = AnyQueue::new(MemoryJobQueue::new());
/// assert_eq!(queue.counts().await?.waiting(), 0);
/// assert_eq!(queue.backend(), "memory");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AnyQueue {
    inner: Arc<dyn DynQueue>,
    backend: &'static str,
}

impl fmt::Debug for AnyQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyQueue")
            .field("backend", &self.backend)
            .finish()
    }
}

impl AnyQueue {
    /// Wraps `queue`.
    pub fn new<Q: JobQueue>(queue: Q) -> Self {
        let backend = std::any::type_name::<Q>()
            .rsplit("::")
            .next()
            .unwrap_or("queue");
        Self {
            inner: Arc::new(queue),
            backend: backend_label(backend),
        }
    }

    /// Connects to the queue at `url`, with the backend's default
    /// namespace: `redis://` or `rediss://` (the Redis queue name
    /// `"default"`, needs feature `redis`), `postgres://` or
    /// `postgresql://` (schema `"jobs"`, migrations applied, needs feature
    /// `postgres`).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_to(url, None).await
    }

    /// Like [`connect`](Self::connect), in `namespace` when given: the
    /// Redis queue name (its keys' prefix) or the PostgreSQL schema.
    pub async fn connect_to(url: &str, namespace: Option<&str>) -> Result<Self> {
        Self::connect_with(url, namespace, true).await
    }

    /// Like [`connect_to`](Self::connect_to), for a queue that must exist
    /// already, as operator tools want: on PostgreSQL a schema without the
    /// jobs tables is `Err(InvalidArgument)` naming it, instead of being
    /// created (an existing one still gets the migrations it lacks). On
    /// Redis, where nothing needs creating, it is `connect_to`.
    pub async fn open(url: &str, namespace: Option<&str>) -> Result<Self> {
        Self::connect_with(url, namespace, false).await
    }

    async fn connect_with(url: &str, namespace: Option<&str>, create: bool) -> Result<Self> {
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            Some("redis" | "rediss" | "redis+unix" | "unix") => connect_redis(url, namespace).await,
            Some("postgres" | "postgresql") => connect_postgres(url, namespace, create).await,
            _ => Err(Error::InvalidArgument(format!(
                "unsupported queue URL {url:?}: use redis://host:port/db or postgres://user@host/db"
            ))),
        }
    }

    /// Which backend this is: `"memory"`, `"redis"`, `"postgres"`, or the
    /// queue type's name for any other.
    pub fn backend(&self) -> &'static str {
        self.backend
    }
}

fn backend_label(type_name: &'static str) -> &'static str {
    match type_name {
        "MemoryJobQueue" => "memory",
        "RedisJobQueue" => "redis",
        "PostgresJobQueue" => "postgres",
        other => other,
    }
}

#[cfg(feature = "redis")]
async fn connect_redis(url: &str, namespace: Option<&str>) -> Result<AnyQueue> {
    let mut builder = super::RedisJobQueue::builder(url);
    if let Some(name) = namespace {
        builder = builder.name(name);
    }
    Ok(AnyQueue::new(builder.connect().await?))
}

#[cfg(not(feature = "redis"))]
async fn connect_redis(_url: &str, _namespace: Option<&str>) -> Result<AnyQueue> {
    Err(Error::InvalidArgument(
        "a redis:// URL needs jobs built with feature `redis`".into(),
    ))
}

#[cfg(feature = "postgres")]
async fn connect_postgres(url: &str, namespace: Option<&str>, create: bool) -> Result<AnyQueue> {
    let mut builder = super::PostgresJobQueue::builder(url);
    if let Some(schema) = namespace {
        builder = builder.schema(schema);
    }
    let queue = builder.migrate(false).connect().await?;
    if !create && !queue.schema_exists().await? {
        return Err(Error::InvalidArgument(format!(
            "no jobs schema {:?} in this database: check the schema name (a worker's `connect` creates it)",
            queue.schema()
        )));
    }
    queue.migrate().await?;
    Ok(AnyQueue::new(queue))
}

#[cfg(not(feature = "postgres"))]
async fn connect_postgres(_url: &str, _namespace: Option<&str>, _create: bool) -> Result<AnyQueue> {
    Err(Error::InvalidArgument(
        "a postgres:// URL needs jobs built with feature `postgres`".into(),
    ))
}

impl Enqueue for AnyQueue {
    async fn push(&self, job: Job) -> Result<Enqueued> {
        self.inner.push(job).await
    }

    async fn push_many(&self, jobs: Vec<Job>) -> Result<Vec<Enqueued>> {
        self.inner.push_many(jobs).await
    }
}

impl JobQueue for AnyQueue {
    async fn reserve(
        &self,
        worker: &str,
        takes: &[Take],
        lease: Duration,
    ) -> Result<Vec<Reservation>> {
        self.inner.reserve(worker, takes, lease).await
    }

    async fn wait_for_jobs(&self, timeout: Duration) {
        self.inner.wait_for_jobs(timeout).await
    }

    async fn progress(&self, lease: Lease, progress: Value) -> Result<bool> {
        self.inner.progress(lease, progress).await
    }

    async fn heartbeat(&self, leases: &[Lease], lease: Duration) -> Result<Vec<Lease>> {
        self.inner.heartbeat(leases, lease).await
    }

    async fn finish(&self, lease: Lease, outcome: Outcome, next: Option<Job>) -> Result<bool> {
        self.inner.finish(lease, outcome, next.map(Box::new)).await
    }

    async fn release(&self, leases: &[Lease]) -> Result<usize> {
        self.inner.release(leases).await
    }

    async fn recover_expired(&self) -> Result<usize> {
        self.inner.recover_expired().await
    }

    async fn revocations(&self) {
        self.inner.revocations().await
    }

    async fn report_worker(&self, info: &WorkerInfo, ttl: Duration) -> Result<()> {
        self.inner.report_worker(info, ttl).await
    }

    async fn remove_worker(&self, id: &str) -> Result<()> {
        self.inner.remove_worker(id).await
    }

    async fn dependency_results(&self, id: JobId) -> Result<Vec<DependencyResult>> {
        self.inner.dependency_results(id).await
    }
}

impl QueueAdmin for AnyQueue {
    async fn get(&self, id: JobId) -> Result<Option<Job>> {
        self.inner.get(id).await
    }

    async fn list(&self, status: Option<JobStatus>, limit: usize) -> Result<Vec<Job>> {
        self.inner.list(status, limit).await
    }

    async fn find_jobs(&self, filter: &JobFilter) -> Result<JobPage> {
        self.inner.find_jobs(filter).await
    }

    async fn delete(&self, id: JobId) -> Result<DeleteOutcome> {
        self.inner.delete(id).await
    }

    async fn purge_status(&self, status: JobStatus) -> Result<u64> {
        self.inner.purge_status(status).await
    }

    async fn throughput(&self, minutes: usize) -> Result<Vec<Throughput>> {
        self.inner.throughput(minutes).await
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        self.inner.workers().await
    }

    async fn cancel(&self, id: JobId) -> Result<CancelOutcome> {
        self.inner.cancel(id).await
    }

    async fn retry(&self, id: JobId) -> Result<bool> {
        self.inner.retry(id).await
    }

    async fn counts(&self) -> Result<QueueCounts> {
        self.inner.counts().await
    }

    async fn purge(&self) -> Result<u64> {
        self.inner.purge().await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    async fn pause_queue(&self, queue: &str) -> Result<bool> {
        self.inner.pause_queue(queue).await
    }

    async fn resume_queue(&self, queue: &str) -> Result<bool> {
        self.inner.resume_queue(queue).await
    }

    async fn queues(&self) -> Result<Vec<QueueInfo>> {
        self.inner.queues().await
    }

    async fn workflow(&self, id: WorkflowId) -> Result<Option<WorkflowStatus>> {
        self.inner.workflow(id).await
    }

    async fn cancel_workflow(&self, id: WorkflowId) -> Result<u64> {
        self.inner.cancel_workflow(id).await
    }

    fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.subscribe()
    }
}
