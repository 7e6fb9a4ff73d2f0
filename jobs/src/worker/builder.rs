//! [`WorkerBuilder`]: a worker's queue, processor, limits, timeouts, shared
//! state and scheduler, checked when it is built.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::types::Stats;
use super::{BackgroundJobWorker, Config, Inner, Lane, LaneConfig, WorkerState};
use crate::clock::Clock;
use crate::context::DataMap;
use crate::error::{Error, Result};
use crate::flow::QueueLimits;
use crate::processor::{DynProcessor, JobProcessor};
use crate::queue::erased::DynQueue;
use crate::queue::{JobQueue, MemoryJobQueue, Take};
use crate::registry::Registry;
use crate::scheduler::JobScheduler;

/// Builds a [`BackgroundJobWorker`].
pub struct WorkerBuilder {
    queue: Option<Arc<dyn DynQueue>>,
    processor: Option<Arc<dyn DynProcessor>>,
    config: Config,
    /// Whether `max_concurrent_jobs` was set (beside named queues it is a
    /// cap).
    max_set: bool,
    queues: Option<Vec<(Cow<'static, str>, usize)>>,
    limits: Vec<(Cow<'static, str>, QueueLimits)>,
    data: DataMap,
    id: Option<String>,
    scheduler: Option<JobScheduler>,
}

impl WorkerBuilder {
    /// The defaults [`BackgroundJobWorker::builder`] documents.
    pub(super) fn new() -> Self {
        WorkerBuilder {
            queue: None,
            processor: None,
            config: Config {
                max_concurrent_jobs: 10,
                lanes: Vec::new(),
                cap: None,
                polling_interval: Duration::from_secs(1),
                default_timeout: Some(Duration::from_secs(300)),
                shutdown_timeout: Duration::from_secs(30),
                lease: Duration::from_secs(30),
                batch_size: 64,
                metrics_interval: Some(Duration::from_secs(5)),
                clock: Clock::system(),
            },
            max_set: false,
            queues: None,
            limits: Vec::new(),
            data: DataMap::new(),
            id: None,
            scheduler: None,
        }
    }

    /// The queue to take jobs from (default: a new [`MemoryJobQueue`]).
    pub fn queue(mut self, queue: impl JobQueue) -> Self {
        self.queue = Some(Arc::new(queue));
        self
    }

    /// The processor that runs jobs (default: the [`Registry`](crate::Registry)
    /// of `#[job]` functions).
    pub fn processor(mut self, processor: impl JobProcessor) -> Self {
        self.processor = Some(Arc::new(processor));
        self
    }

    /// How many jobs may run at once (default 10).
    ///
    /// A worker that names no [`queues`](Self::queues) takes jobs from the
    /// `"default"` queue, this many at once. Beside named queues it is a
    /// worker-wide cap over them all: see [`queues`](Self::queues).
    pub fn max_concurrent_jobs(mut self, n: usize) -> Self {
        self.config.max_concurrent_jobs = n;
        self.max_set = true;
        self
    }

    /// The named queues to take jobs from, each with its concurrency: how
    /// many of its jobs may run at once in this worker (its own slots).
    /// Replaces an earlier list. Without it, a worker takes from
    /// [`"default"`](crate::DEFAULT_QUEUE) only, with
    /// [`max_concurrent_jobs`](Self::max_concurrent_jobs) as its
    /// concurrency. Jobs of queues not named here are left to other
    /// workers.
    ///
    /// Without `max_concurrent_jobs`, each queue's slots are independent
    /// (as Oban's per-queue concurrency): a busy queue never holds back
    /// another, and up to the sum of the concurrencies run at once. With
    /// `max_concurrent_jobs(n)` as well, at most `n` run at once in all, and
    /// when fewer slots are free than the queues could use, queues earlier
    /// in the list get them first: strict order, as Sidekiq's strictly
    /// ordered queues — a later queue runs a job only when no earlier queue
    /// with a free slot has one ready. (A backlog in an early queue can
    /// then keep later ones waiting.) A cap at or above the sum changes
    /// nothing.
    ///
    /// ```
    /// use jobs::prelude::*;
    ///
    /// # fn main() -> Result<(), jobs::Error> {
    /// let worker = BackgroundJobWorker::builder()
    ///     .queues([("critical", 10), ("default", 5), ("mailers", 2)])
    ///     .build()?;
    /// assert_eq!(worker.queue_names(), ["critical", "default", "mailers"]);
    /// assert_eq!(worker.max_concurrent_jobs(), 17);
    ///
    /// // Strict order under a cap of 8.
    /// let capped = BackgroundJobWorker::builder()
    ///     .queues([("critical", 10), ("default", 5)])
    ///     .max_concurrent_jobs(8)
    ///     .build()?;
    /// assert_eq!(capped.max_concurrent_jobs(), 8);
    /// # Ok(()) }
    /// ```
    ///
    /// `build` fails on an invalid name ([`check_queue_name`](crate::check_queue_name)),
    /// a name given twice, a concurrency of zero or an empty list.
    pub fn queues<I, N>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = (N, usize)>,
        N: Into<Cow<'static, str>>,
    {
        self.queues = Some(
            queues
                .into_iter()
                .map(|(name, n)| (name.into(), n))
                .collect(),
        );
        self
    }

    /// Fleet-wide limits on a queue this worker takes from: at most so many
    /// of its jobs running at once, or starting per period, across every
    /// worker of the backend (the backend holds the count; the worker
    /// passes these with every reserve — give every worker of the queue the
    /// same). Replaces limits set before for the same queue. `build` fails
    /// if the limits are invalid or the worker does not take from `queue`.
    ///
    /// ```
    /// use jobs::prelude::*;
    /// use jobs::QueueLimits;
    ///
    /// # fn main() -> Result<(), jobs::Error> {
    /// let worker = BackgroundJobWorker::builder()
    ///     .queues([("default", 10), ("mailers", 2)])
    ///     .queue_limits("mailers", QueueLimits::new().concurrency(5).rate("100/min".parse()?))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn queue_limits(
        mut self,
        queue: impl Into<Cow<'static, str>>,
        limits: QueueLimits,
    ) -> Self {
        let queue = queue.into();
        self.limits.retain(|(q, _)| *q != queue);
        self.limits.push((queue, limits));
        self
    }

    /// How long an idle worker waits before looking at the queue again when
    /// nothing wakes it (default 1 s). Pushes wake it at once; this is only
    /// a fallback.
    pub fn polling_interval(mut self, interval: Duration) -> Self {
        self.config.polling_interval = interval;
        self
    }

    /// The timeout of jobs that set none (default 5 minutes).
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.config.default_timeout = Some(timeout);
        self
    }

    /// Lets jobs that set no timeout run as long as they like.
    pub fn no_default_timeout(mut self) -> Self {
        self.config.default_timeout = None;
        self
    }

    /// How long [`stop`](BackgroundJobWorker::stop) waits for running jobs
    /// before it abandons them (default 30 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// How long a reservation lasts without a heartbeat (default 30 s). A
    /// running job's lease is renewed every third of this; a networked
    /// queue gives the job to another worker when it runs out.
    pub fn lease_duration(mut self, lease: Duration) -> Self {
        self.config.lease = lease;
        self
    }

    /// The most jobs reserved in one call to the queue (default 64).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.config.batch_size = n;
        self
    }

    /// How often the running worker reads the queue's depth from the
    /// backend for the `jobs_queue_depth`, `jobs_queue_paused` and
    /// `jobs_stored` gauges (default every 5 s; `None`: never, for a worker
    /// that should not add those reads). See [`telemetry`](crate::telemetry).
    pub fn metrics_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.metrics_interval = interval;
        self
    }

    /// Where the worker reads the time (default: the system clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.config.clock = clock;
        self
    }

    /// Registers shared state that job handlers receive as `Data<T>`.
    pub fn data<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.data.insert(value);
        self
    }

    /// Registers shared state already behind an `Arc`.
    pub fn data_arc<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        self.data.insert_arc(value);
        self
    }

    /// The worker's id in logs and reservations (default: host name, process
    /// id and a random suffix).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Periodic tasks to enqueue while the worker runs (default: a new
    /// scheduler on the worker's clock). The worker adds the periodic tasks
    /// its processor declares
    /// ([`JobProcessor::periodic_tasks`]: the `#[job(cron = "..")]` and
    /// `#[job(every = "..")]` functions of the [`Registry`], and its
    /// fallback's) to it when it starts, runs it onto its queue, and stops
    /// it when it stops. Keep a clone to change tasks
    /// meanwhile, or reach it with [`BackgroundJobWorker::scheduler`]. A
    /// scheduler runs in one worker at a time: given to two workers of one
    /// process, it runs in the first that starts.
    pub fn scheduler(mut self, scheduler: JobScheduler) -> Self {
        self.scheduler = Some(scheduler);
        self
    }

    /// The worker, or an error naming the setting that makes no sense.
    pub fn build(self) -> Result<BackgroundJobWorker> {
        let mut config = self.config;
        let invalid = |what: String| Err(Error::InvalidArgument(what));
        if config.max_concurrent_jobs == 0 {
            return invalid("max_concurrent_jobs must be at least 1".into());
        }
        if config.max_concurrent_jobs > Semaphore::MAX_PERMITS {
            return invalid(format!(
                "max_concurrent_jobs must be at most {}",
                Semaphore::MAX_PERMITS
            ));
        }
        if config.polling_interval.is_zero() {
            return invalid("polling_interval must be longer than zero".into());
        }
        if config.default_timeout == Some(Duration::ZERO) {
            return invalid("default_timeout must be longer than zero".into());
        }
        if config.lease < Duration::from_millis(30) {
            return invalid(format!(
                "lease_duration must be at least 30 ms, got {:?}",
                config.lease
            ));
        }
        if config.batch_size == 0 {
            return invalid("batch_size must be at least 1".into());
        }
        if config
            .metrics_interval
            .is_some_and(|d| d < Duration::from_millis(10))
        {
            return invalid(format!(
                "metrics_interval must be at least 10 ms, got {:?}",
                config.metrics_interval.unwrap_or_default()
            ));
        }
        config.lanes = match self.queues {
            None => vec![LaneConfig {
                name: Cow::Borrowed(crate::DEFAULT_QUEUE),
                concurrency: config.max_concurrent_jobs,
                limits: QueueLimits::default(),
            }],
            Some(queues) => {
                if queues.is_empty() {
                    return invalid("queues must name at least one queue".into());
                }
                let mut seen = HashSet::new();
                let mut lanes = Vec::with_capacity(queues.len());
                for (name, concurrency) in queues {
                    crate::job::check_queue_name(&name)?;
                    if !seen.insert(name.clone()) {
                        return invalid(format!("queue `{name}` is named twice in queues"));
                    }
                    if concurrency == 0 {
                        return invalid(format!(
                            "queue `{name}`: its concurrency must be at least 1"
                        ));
                    }
                    if concurrency > Semaphore::MAX_PERMITS {
                        return invalid(format!(
                            "queue `{name}`: its concurrency must be at most {}",
                            Semaphore::MAX_PERMITS
                        ));
                    }
                    lanes.push(LaneConfig {
                        name,
                        concurrency,
                        limits: QueueLimits::default(),
                    });
                }
                let total = lanes
                    .iter()
                    .fold(0usize, |n, l| n.saturating_add(l.concurrency));
                if self.max_set && config.max_concurrent_jobs < total {
                    config.cap = Some(config.max_concurrent_jobs);
                } else {
                    config.max_concurrent_jobs = total;
                }
                lanes
            }
        };
        for (queue, limits) in self.limits {
            crate::job::check_queue_name(&queue)?;
            limits
                .validate()
                .map_err(|e| Error::InvalidArgument(format!("queue_limits(`{queue}`): {e}")))?;
            match config.lanes.iter_mut().find(|l| l.name == queue) {
                Some(lane) => lane.limits = limits,
                None => {
                    return invalid(format!(
                        "queue_limits(`{queue}`): this worker does not take from `{queue}` \
                         (name it in queues)"
                    ));
                }
            }
        }
        let processor = match self.processor {
            Some(processor) => processor,
            None => Arc::new(Registry::global()?),
        };
        let queue = self
            .queue
            .unwrap_or_else(|| Arc::new(MemoryJobQueue::builder().clock(config.clock).build()));
        let id = self.id.unwrap_or_else(default_worker_id);
        let scheduler = self
            .scheduler
            .unwrap_or_else(|| JobScheduler::builder().clock(config.clock).build());
        let lanes: Box<[Lane]> = config
            .lanes
            .iter()
            .map(|l| Lane {
                take: Take::new(l.name.clone(), 1).limits(l.limits),
                slots: Arc::new(Semaphore::new(l.concurrency)),
                backlog: AtomicBool::new(false),
            })
            .collect();
        let cap = config.cap.map(|n| Arc::new(Semaphore::new(n)));
        Ok(BackgroundJobWorker {
            inner: Arc::new(Inner {
                id,
                queue,
                processor,
                multi: lanes.len() > 1 || cap.is_some(),
                lanes,
                cap,
                freed: Notify::new(),
                config,
                data: Arc::new(self.data),
                running: Mutex::new(foldhash::HashMap::default()),
                tasks: TaskTracker::new(),
                stats: Stats::default(),
                phase: watch::Sender::new(WorkerState::Idle),
                stop: CancellationToken::new(),
                report: Mutex::new(None),
                healthy: AtomicBool::new(true),
                last_error: Mutex::new(None),
                scheduler,
            }),
        })
    }
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    let suffix: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(6)
        .collect();
    format!("{host}-{}-{suffix}", std::process::id())
}
