//! [`JobProcessor`]: the class-based way to handle jobs.

use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::context::{DataMap, JobContext};
use crate::job::Job;
use crate::result::{JobError, JobResult};
// The scheduler's task model only: a leaf module, so naming it here makes no
// cycle (the scheduler knows nothing of processors).
use crate::scheduler::task::PeriodicTask;

/// Handles jobs, in the class-based style: one `process` method that
/// routes on `job.name`.
///
/// Implement [`process`](JobProcessor::process) (and, if the processor
/// holds resources, [`startup`](JobProcessor::startup) and
/// [`shutdown`](JobProcessor::shutdown), which a worker calls once before its
/// first job and once after its last). Route on `job.name` to handle several
/// kinds of job. `#[job]` functions need none of this: the
/// [`Registry`](crate::Registry) is their processor.
///
/// ```
/// use jobs::{Job, JobProcessor, JobResult};
/// use serde_json::json;
///
/// struct EmailProcessor;
///
/// impl JobProcessor for EmailProcessor {
///     async fn process(&self, job: &Job) -> JobResult {
///         let Some(to) = job.args["to"].as_str() else {
///             return JobResult::error("Missing required email parameters");
///         };
///         JobResult::success(json!({"email_sent": true, "recipient": to}))
///     }
/// }
/// ```
pub trait JobProcessor: Send + Sync + 'static {
    /// Runs one attempt of `job`.
    fn process(&self, job: &Job) -> impl Future<Output = JobResult> + Send;

    /// Runs one attempt of `job` with its context (attempt number,
    /// cancellation, shared state). The worker calls this; by default it
    /// calls [`process`](JobProcessor::process).
    fn process_with(&self, job: &Job, cx: &JobContext) -> impl Future<Output = JobResult> + Send {
        let _ = cx;
        self.process(job)
    }

    /// Called once before the worker runs its first job. An error stops the
    /// worker from starting.
    fn startup(&self) -> impl Future<Output = Result<(), JobError>> + Send {
        async { Ok(()) }
    }

    /// Called once after the worker ran its last job.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Checks, before the worker starts, that the shared state this
    /// processor needs is registered on the worker; an error stops the
    /// worker from starting, with this error. The
    /// [`Registry`](crate::Registry) checks every handler's `Data<T>`
    /// parameters and its fallback's `check_data`; the default accepts
    /// anything.
    fn check_data(&self, data: &DataMap) -> crate::Result<()> {
        let _ = data;
        Ok(())
    }

    /// The periodic tasks this processor declares, which a worker running it
    /// adds to its [`JobScheduler`](crate::JobScheduler) when it starts (a
    /// task added by hand under the same name wins; an error stops the
    /// worker from starting). The [`Registry`](crate::Registry) declares one
    /// per `#[job]` function with a `cron` or `every` schedule, and its
    /// fallback's; the default declares none.
    fn periodic_tasks(&self) -> crate::Result<Vec<PeriodicTask>> {
        Ok(Vec::new())
    }
}

impl<P: JobProcessor> JobProcessor for Arc<P> {
    fn process(&self, job: &Job) -> impl Future<Output = JobResult> + Send {
        (**self).process(job)
    }

    fn process_with(&self, job: &Job, cx: &JobContext) -> impl Future<Output = JobResult> + Send {
        (**self).process_with(job, cx)
    }

    fn startup(&self) -> impl Future<Output = Result<(), JobError>> + Send {
        (**self).startup()
    }

    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        (**self).shutdown()
    }

    fn check_data(&self, data: &DataMap) -> crate::Result<()> {
        (**self).check_data(data)
    }

    fn periodic_tasks(&self) -> crate::Result<Vec<PeriodicTask>> {
        (**self).periodic_tasks()
    }
}

/// A dyn-compatible view of [`JobProcessor`].
pub(crate) trait DynProcessor: Send + Sync + 'static {
    fn process<'a>(&'a self, job: &'a Job, cx: &'a JobContext) -> BoxFuture<'a, JobResult>;
    fn startup(&self) -> BoxFuture<'_, Result<(), JobError>>;
    fn shutdown(&self) -> BoxFuture<'_, ()>;
    fn check_data(&self, data: &DataMap) -> crate::Result<()>;
    fn periodic_tasks(&self) -> crate::Result<Vec<PeriodicTask>>;
}

impl<P: JobProcessor> DynProcessor for P {
    fn process<'a>(&'a self, job: &'a Job, cx: &'a JobContext) -> BoxFuture<'a, JobResult> {
        Box::pin(self.process_with(job, cx))
    }

    fn startup(&self) -> BoxFuture<'_, Result<(), JobError>> {
        Box::pin(JobProcessor::startup(self))
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(JobProcessor::shutdown(self))
    }

    fn check_data(&self, data: &DataMap) -> crate::Result<()> {
        JobProcessor::check_data(self, data)
    }

    fn periodic_tasks(&self) -> crate::Result<Vec<PeriodicTask>> {
        JobProcessor::periodic_tasks(self)
    }
}
