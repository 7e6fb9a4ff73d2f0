//! A dyn-compatible view of [`JobQueue`], so the worker is not generic over
//! its backend.

use std::time::Duration;

use futures_util::future::BoxFuture;

use serde_json::Value;
use tokio::sync::broadcast;

use super::{
    CancelOutcome, DeleteOutcome, Enqueued, JobFilter, JobPage, JobQueue, Lease, Outcome,
    QueueAdmin, QueueCounts, QueueInfo, Reservation, Take, Throughput, WorkerInfo,
};
use crate::error::Result;
use crate::events::JobEvent;
use crate::job::{Job, JobId, JobStatus};
use crate::workflow::{DependencyResult, WorkflowId, WorkflowStatus};

pub(crate) trait DynQueue: Send + Sync + 'static {
    fn push(&self, job: Job) -> BoxFuture<'_, Result<Enqueued>>;
    fn push_many(&self, jobs: Vec<Job>) -> BoxFuture<'_, Result<Vec<Enqueued>>>;
    fn reserve<'a>(
        &'a self,
        worker: &'a str,
        takes: &'a [Take],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<Reservation>>>;
    fn progress(&self, lease: Lease, progress: Value) -> BoxFuture<'_, Result<bool>>;
    fn pause_queue<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<bool>>;
    fn resume_queue<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<bool>>;
    fn queues(&self) -> BoxFuture<'_, Result<Vec<QueueInfo>>>;
    fn subscribe(&self) -> broadcast::Receiver<JobEvent>;
    fn wait_for_jobs(&self, timeout: Duration) -> BoxFuture<'_, ()>;
    fn heartbeat<'a>(
        &'a self,
        leases: &'a [Lease],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<Lease>>>;
    /// `next` is boxed: it is almost always `None`, and a `Job` in the
    /// arguments would be copied with every move of the runner's futures.
    fn finish(
        &self,
        lease: Lease,
        outcome: Outcome,
        next: Option<Box<Job>>,
    ) -> BoxFuture<'_, Result<bool>>;
    fn release<'a>(&'a self, leases: &'a [Lease]) -> BoxFuture<'a, Result<usize>>;
    fn recover_expired(&self) -> BoxFuture<'_, Result<usize>>;
    fn get(&self, id: JobId) -> BoxFuture<'_, Result<Option<Job>>>;
    fn list(&self, status: Option<JobStatus>, limit: usize) -> BoxFuture<'_, Result<Vec<Job>>>;
    fn cancel(&self, id: JobId) -> BoxFuture<'_, Result<CancelOutcome>>;
    fn retry(&self, id: JobId) -> BoxFuture<'_, Result<bool>>;
    fn counts(&self) -> BoxFuture<'_, Result<QueueCounts>>;
    fn purge(&self) -> BoxFuture<'_, Result<u64>>;
    fn ping(&self) -> BoxFuture<'_, Result<()>>;
    fn revocations(&self) -> BoxFuture<'_, ()>;
    fn report_worker<'a>(
        &'a self,
        info: &'a WorkerInfo,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<()>>;
    fn remove_worker<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;
    fn find_jobs<'a>(&'a self, filter: &'a JobFilter) -> BoxFuture<'a, Result<JobPage>>;
    fn delete(&self, id: JobId) -> BoxFuture<'_, Result<DeleteOutcome>>;
    fn purge_status(&self, status: JobStatus) -> BoxFuture<'_, Result<u64>>;
    fn throughput(&self, minutes: usize) -> BoxFuture<'_, Result<Vec<Throughput>>>;
    fn workers(&self) -> BoxFuture<'_, Result<Vec<WorkerInfo>>>;
    fn dependency_results(&self, id: JobId) -> BoxFuture<'_, Result<Vec<DependencyResult>>>;
    fn workflow(&self, id: WorkflowId) -> BoxFuture<'_, Result<Option<WorkflowStatus>>>;
    fn cancel_workflow(&self, id: WorkflowId) -> BoxFuture<'_, Result<u64>>;
}

impl<Q: JobQueue> DynQueue for Q {
    fn push(&self, job: Job) -> BoxFuture<'_, Result<Enqueued>> {
        Box::pin(super::Enqueue::push(self, job))
    }
    fn push_many(&self, jobs: Vec<Job>) -> BoxFuture<'_, Result<Vec<Enqueued>>> {
        Box::pin(super::Enqueue::push_many(self, jobs))
    }
    fn reserve<'a>(
        &'a self,
        worker: &'a str,
        takes: &'a [Take],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<Reservation>>> {
        Box::pin(JobQueue::reserve(self, worker, takes, lease))
    }
    fn progress(&self, lease: Lease, progress: Value) -> BoxFuture<'_, Result<bool>> {
        Box::pin(JobQueue::progress(self, lease, progress))
    }
    fn pause_queue<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(QueueAdmin::pause_queue(self, queue))
    }
    fn resume_queue<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(QueueAdmin::resume_queue(self, queue))
    }
    fn queues(&self) -> BoxFuture<'_, Result<Vec<QueueInfo>>> {
        Box::pin(QueueAdmin::queues(self))
    }
    fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        QueueAdmin::subscribe(self)
    }
    fn wait_for_jobs(&self, timeout: Duration) -> BoxFuture<'_, ()> {
        Box::pin(JobQueue::wait_for_jobs(self, timeout))
    }
    fn heartbeat<'a>(
        &'a self,
        leases: &'a [Lease],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<Lease>>> {
        Box::pin(JobQueue::heartbeat(self, leases, lease))
    }
    fn finish(
        &self,
        lease: Lease,
        outcome: Outcome,
        next: Option<Box<Job>>,
    ) -> BoxFuture<'_, Result<bool>> {
        Box::pin(JobQueue::finish(self, lease, outcome, next.map(|n| *n)))
    }
    fn release<'a>(&'a self, leases: &'a [Lease]) -> BoxFuture<'a, Result<usize>> {
        Box::pin(JobQueue::release(self, leases))
    }
    fn recover_expired(&self) -> BoxFuture<'_, Result<usize>> {
        Box::pin(JobQueue::recover_expired(self))
    }
    fn get(&self, id: JobId) -> BoxFuture<'_, Result<Option<Job>>> {
        Box::pin(QueueAdmin::get(self, id))
    }
    fn list(&self, status: Option<JobStatus>, limit: usize) -> BoxFuture<'_, Result<Vec<Job>>> {
        Box::pin(QueueAdmin::list(self, status, limit))
    }
    fn cancel(&self, id: JobId) -> BoxFuture<'_, Result<CancelOutcome>> {
        Box::pin(QueueAdmin::cancel(self, id))
    }
    fn retry(&self, id: JobId) -> BoxFuture<'_, Result<bool>> {
        Box::pin(QueueAdmin::retry(self, id))
    }
    fn counts(&self) -> BoxFuture<'_, Result<QueueCounts>> {
        Box::pin(QueueAdmin::counts(self))
    }
    fn purge(&self) -> BoxFuture<'_, Result<u64>> {
        Box::pin(QueueAdmin::purge(self))
    }
    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(QueueAdmin::ping(self))
    }
    fn revocations(&self) -> BoxFuture<'_, ()> {
        Box::pin(JobQueue::revocations(self))
    }
    fn report_worker<'a>(
        &'a self,
        info: &'a WorkerInfo,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(JobQueue::report_worker(self, info, ttl))
    }
    fn remove_worker<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(JobQueue::remove_worker(self, id))
    }
    fn find_jobs<'a>(&'a self, filter: &'a JobFilter) -> BoxFuture<'a, Result<JobPage>> {
        Box::pin(QueueAdmin::find_jobs(self, filter))
    }
    fn delete(&self, id: JobId) -> BoxFuture<'_, Result<DeleteOutcome>> {
        Box::pin(QueueAdmin::delete(self, id))
    }
    fn purge_status(&self, status: JobStatus) -> BoxFuture<'_, Result<u64>> {
        Box::pin(QueueAdmin::purge_status(self, status))
    }
    fn throughput(&self, minutes: usize) -> BoxFuture<'_, Result<Vec<Throughput>>> {
        Box::pin(QueueAdmin::throughput(self, minutes))
    }
    fn workers(&self) -> BoxFuture<'_, Result<Vec<WorkerInfo>>> {
        Box::pin(QueueAdmin::workers(self))
    }
    fn dependency_results(&self, id: JobId) -> BoxFuture<'_, Result<Vec<DependencyResult>>> {
        Box::pin(JobQueue::dependency_results(self, id))
    }
    fn workflow(&self, id: WorkflowId) -> BoxFuture<'_, Result<Option<WorkflowStatus>>> {
        Box::pin(QueueAdmin::workflow(self, id))
    }
    fn cancel_workflow(&self, id: WorkflowId) -> BoxFuture<'_, Result<u64>> {
        Box::pin(QueueAdmin::cancel_workflow(self, id))
    }
}
