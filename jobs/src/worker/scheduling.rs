//! How a worker runs its [`JobScheduler`]: it adds the periodic tasks its
//! processor declares, then runs the scheduler onto its own queue until it
//! stops.
//!
//! This glue lives with the worker so that the scheduler needs nothing of
//! workers, processors or queues beyond [`Enqueue`].

use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::job::Job;
use crate::processor::DynProcessor;
use crate::queue::erased::DynQueue;
use crate::queue::{Enqueue, Enqueued};
use crate::scheduler::JobScheduler;

/// Adds the periodic tasks `processor` declares to `scheduler`, except
/// those whose name a task added by hand already has.
pub(super) fn add_declared_tasks(
    scheduler: &JobScheduler,
    processor: &dyn DynProcessor,
) -> Result<()> {
    scheduler.add_declared(processor.periodic_tasks()?)
}

/// Runs `scheduler` onto a worker's queue until `stop`. Returns `None` (and
/// logs) if the scheduler already runs elsewhere.
pub(super) fn spawn(
    scheduler: &JobScheduler,
    queue: Arc<dyn DynQueue>,
    stop: CancellationToken,
    worker: &str,
) -> Option<JoinHandle<()>> {
    if scheduler.is_running() {
        tracing::info!(
            worker,
            "the scheduler already runs elsewhere; this worker does not run it"
        );
        return None;
    }
    let scheduler = scheduler.clone();
    let worker = worker.to_owned();
    Some(tokio::spawn(async move {
        let target = QueueTarget(queue);
        if let Err(e) = scheduler.run(&target, stop.cancelled_owned()).await {
            tracing::info!(worker, error = %e, "the worker's scheduler did not start");
        }
    }))
}

/// A worker's type-erased queue as an [`Enqueue`] target.
struct QueueTarget(Arc<dyn DynQueue>);

impl Enqueue for QueueTarget {
    fn push(&self, job: Job) -> impl Future<Output = Result<Enqueued>> + Send {
        self.0.push(job)
    }

    fn push_many(&self, jobs: Vec<Job>) -> impl Future<Output = Result<Vec<Enqueued>>> + Send {
        self.0.push_many(jobs)
    }
}
