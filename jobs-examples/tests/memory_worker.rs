//! Worker and in-memory queue behaviour that needs long delays: run under
//! tokio's paused clock, with `Clock::tokio()`, so an hour passes at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jobs::prelude::*;
use jobs::queue::{CancelOutcome, Lease, Outcome, QueueCounts, Reservation};
use jobs::{Clock, Enqueue, JobEventKind, WorkerState};
use jobs_examples::probe::Probe;
use jobs_examples::suite::Running;
use parking_lot::Mutex;
use serde_json::json;
use tokio::time::Instant;

fn queue() -> MemoryJobQueue {
    MemoryJobQueue::builder().clock(Clock::tokio()).build()
}

fn worker(queue: impl JobQueue, probe: &Probe) -> jobs::WorkerBuilder {
    BackgroundJobWorker::builder()
        .queue(queue)
        .processor(probe.clone())
        .clock(Clock::tokio())
}

/// Counts the calls a worker makes to its queue.
#[derive(Clone)]
struct Counting {
    queue: MemoryJobQueue,
    reserves: Arc<AtomicUsize>,
}

impl Enqueue for Counting {
    async fn push(&self, job: Job) -> jobs::Result<jobs::Enqueued> {
        self.queue.push(job).await
    }
    async fn push_many(&self, jobs: Vec<Job>) -> jobs::Result<Vec<jobs::Enqueued>> {
        self.queue.push_many(jobs).await
    }
}

impl JobQueue for Counting {
    async fn reserve(
        &self,
        worker: &str,
        takes: &[jobs::Take],
        lease: Duration,
    ) -> jobs::Result<Vec<Reservation>> {
        self.reserves.fetch_add(1, Ordering::SeqCst);
        self.queue.reserve(worker, takes, lease).await
    }
    async fn progress(&self, lease: Lease, progress: serde_json::Value) -> jobs::Result<bool> {
        self.queue.progress(lease, progress).await
    }
    async fn wait_for_jobs(&self, timeout: Duration) {
        self.queue.wait_for_jobs(timeout).await
    }
    async fn heartbeat(&self, leases: &[Lease], lease: Duration) -> jobs::Result<Vec<Lease>> {
        self.queue.heartbeat(leases, lease).await
    }
    async fn finish(
        &self,
        lease: Lease,
        outcome: Outcome,
        next: Option<Job>,
    ) -> jobs::Result<bool> {
        self.queue.finish(lease, outcome, next).await
    }
    async fn release(&self, leases: &[Lease]) -> jobs::Result<usize> {
        self.queue.release(leases).await
    }
    async fn recover_expired(&self) -> jobs::Result<usize> {
        self.queue.recover_expired().await
    }
    async fn dependency_results(
        &self,
        id: JobId,
    ) -> jobs::Result<Vec<jobs::workflow::DependencyResult>> {
        self.queue.dependency_results(id).await
    }
    async fn report_worker(&self, info: &jobs::WorkerInfo, ttl: Duration) -> jobs::Result<()> {
        self.queue.report_worker(info, ttl).await
    }
    async fn remove_worker(&self, id: &str) -> jobs::Result<()> {
        self.queue.remove_worker(id).await
    }
}

impl QueueAdmin for Counting {
    async fn get(&self, id: JobId) -> jobs::Result<Option<Job>> {
        self.queue.get(id).await
    }
    async fn list(&self, status: Option<JobStatus>, limit: usize) -> jobs::Result<Vec<Job>> {
        self.queue.list(status, limit).await
    }
    async fn cancel(&self, id: JobId) -> jobs::Result<CancelOutcome> {
        self.queue.cancel(id).await
    }
    async fn retry(&self, id: JobId) -> jobs::Result<bool> {
        self.queue.retry(id).await
    }
    async fn counts(&self) -> jobs::Result<QueueCounts> {
        self.queue.counts().await
    }
    async fn purge(&self) -> jobs::Result<u64> {
        self.queue.purge().await
    }
    async fn find_jobs(&self, filter: &jobs::JobFilter) -> jobs::Result<jobs::JobPage> {
        self.queue.find_jobs(filter).await
    }
    async fn delete(&self, id: JobId) -> jobs::Result<jobs::DeleteOutcome> {
        self.queue.delete(id).await
    }
    async fn purge_status(&self, status: JobStatus) -> jobs::Result<u64> {
        self.queue.purge_status(status).await
    }
    async fn throughput(&self, minutes: usize) -> jobs::Result<Vec<jobs::Throughput>> {
        self.queue.throughput(minutes).await
    }
    async fn workers(&self) -> jobs::Result<Vec<jobs::WorkerInfo>> {
        self.queue.workers().await
    }
    async fn pause_queue(&self, queue: &str) -> jobs::Result<bool> {
        self.queue.pause_queue(queue).await
    }
    async fn resume_queue(&self, queue: &str) -> jobs::Result<bool> {
        self.queue.resume_queue(queue).await
    }
    async fn queues(&self) -> jobs::Result<Vec<jobs::QueueInfo>> {
        self.queue.queues().await
    }
    async fn workflow(
        &self,
        id: jobs::workflow::WorkflowId,
    ) -> jobs::Result<Option<jobs::workflow::WorkflowStatus>> {
        self.queue.workflow(id).await
    }
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<jobs::JobEvent> {
        self.queue.subscribe()
    }
}

#[tokio::test(start_paused = true)]
async fn delayed_job_waits_an_hour_without_polling() {
    let counting = Counting {
        queue: queue(),
        reserves: Arc::default(),
    };
    let probe = Probe::new();
    let worker = worker(counting.clone(), &probe)
        .polling_interval(Duration::from_secs(86_400))
        .build()
        .unwrap();
    let start = Instant::now();
    // Due an hour from now on the worker's clock. (`Job::delay` reads the
    // system clock, which goes on while this test's tokio clock is paused,
    // and the two need not agree to the millisecond on a loaded machine.)
    let due = Clock::tokio().now() + chrono::Duration::seconds(3600);
    let job = worker
        .submit_job(Job::new("ok", json!({})).scheduled_at(due))
        .await
        .unwrap();
    let running = Running::start(worker.clone());
    let done = worker.wait_for(job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    let started = probe.attempts_of(job.id)[0].at - start;
    assert!(
        started >= Duration::from_secs(3600) && started < Duration::from_secs(3602),
        "started after {started:?}"
    );
    // The worker slept towards the job's time: a handful of looks at the
    // queue in an hour, not a poll loop.
    let reserves = counting.reserves.load(Ordering::SeqCst);
    assert!(reserves <= 4, "{reserves} reserve calls in an hour");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn delayed_retry_runs_on_time_without_polling() {
    // The worker is already asleep when the failed attempt schedules its
    // retry; the queue must wake it so it sleeps towards the retry's time
    // instead of the day-long polling interval.
    let probe = Probe::new();
    let worker = worker(queue(), &probe)
        .polling_interval(Duration::from_secs(86_400))
        .build()
        .unwrap();
    let job = worker
        .submit_job(
            Job::new("flaky", json!({"succeed_on": 2}))
                .backoff(jobs::Backoff::fixed(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    let running = Running::start(worker.clone());
    let done = worker.wait_for(job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    let attempts = probe.attempts_of(job.id);
    assert_eq!(attempts.len(), 2);
    let gap = attempts[1].at - attempts[0].at;
    assert!(
        gap >= Duration::from_secs(10) && gap < Duration::from_secs(12),
        "retry ran {gap:?} after the first attempt"
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn default_retry_policy_is_three_retries_with_exponential_backoff() {
    let probe = Probe::new();
    let worker = worker(queue(), &probe).build().unwrap();
    let job = Job::new("flaky", json!({"succeed_on": 100}));
    assert_eq!(job.max_retries, 3);
    let job = worker.submit_job(job).await.unwrap();
    let running = Running::start(worker.clone());
    let done = worker.wait_for(job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.attempts, 4);
    let attempts = probe.attempts_of(job.id);
    let gaps: Vec<f64> = attempts
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect();
    // 1 s, 2 s, 4 s, each stretched by up to 25% of jitter.
    for (gap, base) in gaps.iter().zip([1.0, 2.0, 4.0]) {
        assert!(
            *gap >= base && *gap <= base * 1.25 + 0.01,
            "gaps {gaps:?} do not follow 1 s x2 with jitter"
        );
    }
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn expiry_while_scheduled() {
    let probe = Probe::new();
    let worker = worker(queue(), &probe).build().unwrap();
    let now = Clock::tokio().now();
    let job = Job::new("ok", json!({}))
        .scheduled_at(now + chrono::Duration::hours(1))
        .expires_at(now + chrono::Duration::minutes(30));
    let job = worker.submit_job(job).await.unwrap();
    let running = Running::start(worker.clone());
    let done = worker.wait_for(job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Expired);
    assert!(done.completed_at.is_some());
    assert!(probe.started().is_empty());
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn recurring_job_keeps_its_cadence() {
    let probe = Probe::new();
    let queue = queue();
    let worker = worker(queue.clone(), &probe).build().unwrap();
    let start = Clock::tokio().now();
    worker
        .submit_job(Job::new("ok", json!({})).every(Duration::from_secs(300)))
        .await
        .unwrap();
    let running = Running::start(worker.clone());
    let mut events = worker.subscribe();
    let mut completed = 0;
    while completed < 5 {
        if events.recv().await.unwrap().kind == JobEventKind::Completed {
            completed += 1;
        }
    }
    let done = worker
        .list_jobs(Some(JobStatus::Completed), 10)
        .await
        .unwrap();
    let mut due: Vec<_> = done.iter().map(|j| j.due_at()).collect();
    due.sort();
    // Jobs are created on the system clock, the test runs on tokio's: allow
    // for the few real milliseconds between them.
    let offsets: Vec<i64> = due
        .iter()
        .map(|t| ((*t - start).num_milliseconds() as f64 / 1000.0).round() as i64)
        .collect();
    assert_eq!(offsets, [0, 300, 600, 900, 1200]);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn finished_jobs_are_kept_up_to_a_bound() {
    let probe = Probe::new();
    let queue = MemoryJobQueue::builder()
        .clock(Clock::tokio())
        .max_finished(3)
        .finished_ttl(Duration::from_secs(60))
        .build();
    let worker = worker(queue.clone(), &probe).build().unwrap();
    let running = Running::start(worker.clone());
    let mut ids = Vec::new();
    for _ in 0..5 {
        let job = worker.submit_job(Job::new("ok", json!({}))).await.unwrap();
        worker.wait_for(job.id).await.unwrap();
        ids.push(job.id);
    }
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(
            queue.get(*id).await.unwrap().is_some(),
            n >= 2,
            "job {n} of 5 with room for 3"
        );
    }
    assert_eq!(queue.counts().await.unwrap().completed, 3);

    // Past the age bound, the next finish forgets the old ones.
    tokio::time::advance(Duration::from_secs(61)).await;
    let last = worker.submit_job(Job::new("ok", json!({}))).await.unwrap();
    worker.wait_for(last.id).await.unwrap();
    assert_eq!(queue.counts().await.unwrap().completed, 1);
    assert!(queue.get(ids[4]).await.unwrap().is_none());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_limited() {
    let probe = Probe::new();
    let worker = BackgroundJobWorker::builder()
        .processor(probe.clone())
        .max_concurrent_jobs(3)
        .build()
        .unwrap();
    let jobs: Vec<Job> = (0..12)
        .map(|_| Job::new("sleep", json!({"ms": 20})))
        .collect();
    worker.enqueue_many(jobs).await.unwrap();
    let running = Running::start(worker.clone());
    worker.wait_until_idle().await.unwrap();
    assert_eq!(probe.started().len(), 12);
    assert_eq!(probe.max_in_flight(), 3);
    running.stop().await;
}

/// A processor that records its lifecycle calls.
#[derive(Clone, Default)]
struct Lifecycle {
    log: Arc<Mutex<Vec<String>>>,
}

impl JobProcessor for Lifecycle {
    async fn process(&self, job: &Job) -> JobResult {
        self.log.lock().push(format!("process {}", job.name));
        JobResult::success(json!(null))
    }
    async fn startup(&self) -> Result<(), JobError> {
        self.log.lock().push("startup".into());
        Ok(())
    }
    async fn shutdown(&self) {
        self.log.lock().push("shutdown".into());
    }
}

#[tokio::test]
async fn startup_runs_before_the_first_job_and_shutdown_after_the_last() {
    let processor = Lifecycle::default();
    let worker = BackgroundJobWorker::builder()
        .processor(processor.clone())
        .build()
        .unwrap();
    for name in ["a", "b"] {
        worker.submit_job(Job::new(name, json!({}))).await.unwrap();
    }
    let running = Running::start(worker.clone());
    worker.wait_until_idle().await.unwrap();
    running.stop().await;
    let log = processor.log.lock().clone();
    assert_eq!(log, ["startup", "process a", "process b", "shutdown"]);
}

/// A processor whose startup fails.
struct BrokenStartup;

impl JobProcessor for BrokenStartup {
    async fn process(&self, _job: &Job) -> JobResult {
        unreachable!("never started")
    }
    async fn startup(&self) -> Result<(), JobError> {
        Err(JobError::permanent("database unreachable"))
    }
}

#[tokio::test]
async fn failing_startup_stops_the_worker() {
    let worker = BackgroundJobWorker::builder()
        .processor(BrokenStartup)
        .build()
        .unwrap();
    let err = worker.run().await.unwrap_err();
    assert!(err.to_string().contains("database unreachable"), "{err}");
    assert_eq!(worker.state(), WorkerState::Stopped);
}

#[tokio::test]
async fn lifecycle_errors() {
    let worker = BackgroundJobWorker::builder()
        .processor(Probe::new())
        .build()
        .unwrap();
    assert_eq!(worker.state(), WorkerState::Idle);
    assert!(worker.health_check().await.healthy);
    let running = Running::start(worker.clone());
    // Wait until it runs, then a second run is refused.
    let job = worker.submit_job(Job::new("ok", json!({}))).await.unwrap();
    worker.wait_for(job.id).await.unwrap();
    assert!(matches!(
        worker.run().await,
        Err(jobs::Error::AlreadyRunning)
    ));
    assert!(matches!(
        worker.wait_for(JobId::new()).await,
        Err(jobs::Error::NotFound(_))
    ));
    let report = running.stop().await;
    assert!(report.abandoned.is_empty());
    assert_eq!(worker.stop().await, report, "stop is idempotent");
    let health = worker.health_check().await;
    assert!(!health.healthy);
    assert_eq!(health.state, WorkerState::Stopped);

    // Stopping a worker that never ran is immediate.
    let idle = BackgroundJobWorker::builder()
        .processor(Probe::new())
        .build()
        .unwrap();
    assert!(idle.stop().await.abandoned.is_empty());
    assert!(matches!(idle.run().await, Err(jobs::Error::Stopped)));
}

/// A slot that refills itself from a long backlog of instant jobs still
/// lets the other tasks of its thread run (the scheduler, heartbeats, the
/// application's own): it hands the thread back to the runtime now and then.
#[tokio::test]
async fn a_busy_slot_lets_other_tasks_run() {
    let queue = MemoryJobQueue::new();
    let probe = Probe::new();
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(probe.clone())
        .max_concurrent_jobs(1)
        .build()
        .unwrap();
    let backlog: Vec<Job> = (0..5_000).map(|_| Job::new("ok", json!({}))).collect();
    queue.enqueue_many(backlog).await.unwrap();
    let running = Running::start(worker.clone());
    // On this one-thread runtime it runs only when the slot lets it.
    let saw_backlog_half_done = tokio::spawn({
        let queue = queue.clone();
        async move {
            loop {
                let counts = queue.counts().await.unwrap();
                if counts.completed > 0 && counts.pending > 0 {
                    return true;
                }
                if counts.pending == 0 && counts.running == 0 {
                    return false;
                }
                tokio::task::yield_now().await;
            }
        }
    });
    assert!(
        saw_backlog_half_done.await.unwrap(),
        "another task ran only before or after the whole backlog"
    );
    running.stop().await;
}
