//! The worker's side of flow control, on the in-memory queue: named queues
//! with their own slots, the strict order under a worker-wide cap, queue
//! limits passed with each reserve, snooze, progress, events from the queue
//! and pausing. Timed work runs under tokio's paused clock
//! (`Clock::tokio()`), so it is exact and instant.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jobs::prelude::*;
use jobs::queue::{CancelOutcome, Lease, Outcome, QueueCounts, Reservation};
use jobs::{Clock, Enqueue, JobEventKind, QueueLimits, Rate, Take};
use jobs_examples::suite::Running;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, broadcast, watch};

/// Waits for `future`, failing the test if it takes longer than ten minutes
/// of (paused, so instant) tokio time.
async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(600), future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

async fn wait_done(worker: &BackgroundJobWorker, id: JobId) -> Job {
    within("the job to finish", worker.wait_for(id))
        .await
        .unwrap()
}

/// The next event of `kind` for `id`.
async fn event_of(
    events: &mut broadcast::Receiver<jobs::JobEvent>,
    id: JobId,
    kind: JobEventKind,
) -> jobs::JobEvent {
    within(&format!("a {kind:?} event"), async {
        loop {
            let event = events.recv().await.unwrap();
            if event.job_id == id && event.kind == kind {
                return event;
            }
        }
    })
    .await
}

fn queue() -> MemoryJobQueue {
    MemoryJobQueue::builder().clock(Clock::tokio()).build()
}

// ---- a processor that watches queues --------------------------------------

/// Runs every job for `args.ms` milliseconds, counting how many of each
/// queue run at once and in which order they start.
#[derive(Clone, Default)]
struct PerQueue {
    state: Arc<Mutex<PerQueueState>>,
}

#[derive(Default)]
struct PerQueueState {
    in_flight: HashMap<String, usize>,
    max: HashMap<String, usize>,
    total: usize,
    max_total: usize,
    /// The queue of each job started, in order.
    order: Vec<String>,
}

impl PerQueue {
    fn max(&self, queue: &str) -> usize {
        self.state.lock().max.get(queue).copied().unwrap_or(0)
    }

    fn max_total(&self) -> usize {
        self.state.lock().max_total
    }

    fn order(&self) -> Vec<String> {
        self.state.lock().order.clone()
    }
}

impl JobProcessor for PerQueue {
    async fn process(&self, job: &Job) -> JobResult {
        let queue = job.queue.to_string();
        {
            let mut state = self.state.lock();
            let state = &mut *state;
            let now = state.in_flight.entry(queue.clone()).or_default();
            *now += 1;
            let now = *now;
            let max = state.max.entry(queue.clone()).or_default();
            *max = (*max).max(now);
            state.total += 1;
            state.max_total = state.max_total.max(state.total);
            state.order.push(queue.clone());
        }
        let ms = job.args["ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let mut state = self.state.lock();
        *state.in_flight.get_mut(&queue).unwrap() -= 1;
        state.total -= 1;
        JobResult::success(Value::Null)
    }
}

fn sleeper(queue: &'static str, ms: u64) -> Job {
    Job::new("sleep", json!({ "ms": ms })).queue(queue)
}

async fn submit_all(worker: &BackgroundJobWorker, jobs: Vec<Job>) -> Vec<JobId> {
    let mut ids = Vec::new();
    for job in jobs {
        ids.push(worker.submit_job(job).await.unwrap().id);
    }
    ids
}

async fn wait_all(worker: &BackgroundJobWorker, ids: &[JobId]) {
    for &id in ids {
        assert_eq!(wait_done(worker, id).await.status, JobStatus::Completed);
    }
}

// ---- a queue that records what the worker asks of it ----------------------

/// A memory queue that records every reserve's takes and every progress
/// write.
#[derive(Clone)]
struct Spy {
    queue: MemoryJobQueue,
    takes: Arc<Mutex<Vec<Vec<Take>>>>,
    progress: Arc<watch::Sender<Vec<Value>>>,
}

impl Spy {
    fn new() -> Self {
        Spy {
            queue: queue(),
            takes: Arc::default(),
            progress: Arc::new(watch::Sender::new(Vec::new())),
        }
    }

    fn writes(&self) -> Vec<Value> {
        self.progress.borrow().clone()
    }
}

impl Enqueue for Spy {
    async fn push(&self, job: Job) -> jobs::Result<jobs::Enqueued> {
        self.queue.push(job).await
    }
    async fn push_many(&self, jobs: Vec<Job>) -> jobs::Result<Vec<jobs::Enqueued>> {
        self.queue.push_many(jobs).await
    }
}

impl JobQueue for Spy {
    async fn reserve(
        &self,
        worker: &str,
        takes: &[Take],
        lease: Duration,
    ) -> jobs::Result<Vec<Reservation>> {
        self.takes.lock().push(takes.to_vec());
        self.queue.reserve(worker, takes, lease).await
    }
    async fn progress(&self, lease: Lease, progress: Value) -> jobs::Result<bool> {
        let written = self.queue.progress(lease, progress.clone()).await;
        self.progress.send_modify(|all| all.push(progress));
        written
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

impl QueueAdmin for Spy {
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
    fn subscribe(&self) -> broadcast::Receiver<jobs::JobEvent> {
        self.queue.subscribe()
    }
}

// ---- `#[job]` handlers ----------------------------------------------------

/// What the `#[job]` handlers of this file share with their test.
struct Flow {
    /// Each attempt seen: the job and `cx.attempt()`.
    attempts: Mutex<Vec<(JobId, u32)>>,
    /// Handlers that wait, wait for a permit here.
    gate: Semaphore,
}

impl Flow {
    fn new() -> Data<Flow> {
        Data::new(Flow {
            attempts: Mutex::new(Vec::new()),
            gate: Semaphore::new(0),
        })
    }

    fn attempts_of(&self, id: JobId) -> Vec<u32> {
        self.attempts
            .lock()
            .iter()
            .filter(|(job, _)| *job == id)
            .map(|&(_, attempt)| attempt)
            .collect()
    }

    fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

/// Snoozes for `secs` on its first run, then succeeds.
#[job(retries = 0)]
async fn drowsy(flow: Data<Flow>, cx: JobContext, secs: u64) -> Result<(), JobError> {
    let first = {
        let mut attempts = flow.attempts.lock();
        let first = !attempts.iter().any(|(id, _)| *id == cx.job_id());
        attempts.push((cx.job_id(), cx.attempt()));
        first
    };
    if first {
        return Err(JobError::snooze(Duration::from_secs(secs)));
    }
    Ok(())
}

/// Reports each of `values` as progress, then waits for the gate.
#[job]
async fn report(flow: Data<Flow>, cx: JobContext, values: Vec<Value>) -> Result<(), JobError> {
    for value in values {
        cx.progress(value);
    }
    let _ = flow.gate.acquire().await.unwrap();
    Ok(())
}

/// Reports progress `n` times, for about 100 ms in all.
#[job]
async fn chatty(cx: JobContext, n: u64) -> Result<(), JobError> {
    for i in 0..n {
        cx.progress(i);
        if i % 1000 == 999 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(())
}

fn registry_worker(queue: impl JobQueue, flow: &Data<Flow>) -> jobs::WorkerBuilder {
    BackgroundJobWorker::builder()
        .queue(queue)
        .data_arc(flow.clone().into_arc())
        .clock(Clock::tokio())
}

// ---- building -------------------------------------------------------------

fn build_error(builder: jobs::WorkerBuilder) -> String {
    match builder.build() {
        Err(jobs::Error::InvalidArgument(message)) => message,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn queue_settings_are_checked_when_built() {
    let b = || BackgroundJobWorker::builder().processor(PerQueue::default());
    let message = build_error(b().queues([("a", 1), ("b", 2), ("a", 3)]));
    assert!(message.contains("`a` is named twice"), "{message}");
    let message = build_error(b().queues([("a", 1), ("b", 0)]));
    assert!(
        message.contains("`b`") && message.contains("at least 1"),
        "{message}"
    );
    let message = build_error(b().queues([("a b", 1)]));
    assert!(message.contains("a b"), "{message}");
    let message = build_error(b().queues(Vec::<(&'static str, usize)>::new()));
    assert!(message.contains("at least one queue"), "{message}");
    let message = build_error(
        b().queues([("a", 1)])
            .queue_limits("b", QueueLimits::new().concurrency(1)),
    );
    assert!(message.contains("does not take from `b`"), "{message}");
    let message = build_error(b().queue_limits("default", QueueLimits::new().concurrency(0)));
    assert!(message.contains("at least 1"), "{message}");
    let message = build_error(b().queues([("a", 1)]).max_concurrent_jobs(0));
    assert!(message.contains("max_concurrent_jobs"), "{message}");

    // Strings work as names too; the sum is the capacity without a cap.
    let worker = b()
        .queues([(String::from("x"), 2), (String::from("y"), 3)])
        .build()
        .unwrap();
    assert_eq!(worker.queue_names(), ["x", "y"]);
    assert_eq!(worker.max_concurrent_jobs(), 5);
    let capped = b()
        .queues([("x", 2), ("y", 3)])
        .max_concurrent_jobs(4)
        .build()
        .unwrap();
    assert_eq!(capped.max_concurrent_jobs(), 4);
    // Without queues: "default", max_concurrent_jobs at once.
    let plain = b().max_concurrent_jobs(7).build().unwrap();
    assert_eq!(plain.queue_names(), ["default"]);
    assert_eq!(plain.max_concurrent_jobs(), 7);
}

// ---- named queues ---------------------------------------------------------

/// A worker runs jobs of its own queues only.
#[tokio::test(start_paused = true)]
async fn worker_runs_only_its_queues() {
    let queue = queue();
    let probe = PerQueue::default();
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(probe.clone())
        .clock(Clock::tokio())
        .queues([("critical", 2), ("default", 2)])
        .build()
        .unwrap();
    let other = submit_all(&worker, vec![sleeper("other", 1), sleeper("other", 1)]).await;
    let mine = submit_all(
        &worker,
        vec![
            sleeper("critical", 5),
            sleeper("default", 5),
            Job::new("sleep", json!({"ms": 5})),
            sleeper("critical", 5),
        ],
    )
    .await;
    let running = Running::start(worker.clone());
    wait_all(&worker, &mine).await;
    running.stop().await;
    for id in other {
        assert_eq!(
            worker.get_job_status(id).await.unwrap(),
            Some(JobStatus::Pending),
            "a job of a queue the worker does not take must wait"
        );
    }
    assert!(!probe.order().contains(&"other".to_string()));
}

/// Each queue has its own slots: no more of its jobs run at once than its
/// concurrency, and a full queue does not hold back another.
#[tokio::test(start_paused = true)]
async fn per_queue_concurrency_holds() {
    let probe = PerQueue::default();
    let worker = BackgroundJobWorker::builder()
        .queue(queue())
        .processor(probe.clone())
        .clock(Clock::tokio())
        .queues([("a", 2), ("b", 1)])
        .build()
        .unwrap();
    let mut jobs: Vec<Job> = (0..6).map(|_| sleeper("a", 20)).collect();
    jobs.extend((0..3).map(|_| sleeper("b", 20)));
    let ids = submit_all(&worker, jobs).await;
    let running = Running::start(worker.clone());
    wait_all(&worker, &ids).await;
    running.stop().await;
    assert_eq!(probe.max("a"), 2, "queue a runs 2 at once, not more");
    assert_eq!(probe.max("b"), 1, "queue b runs 1 at once, not more");
    assert_eq!(probe.max_total(), 3, "the queues' slots are independent");
}

/// Under a worker-wide cap, queues earlier in the list get the free slots
/// first: every ready `critical` job starts before any `default` one.
#[tokio::test(start_paused = true)]
async fn cap_serves_queues_in_strict_order() {
    let probe = PerQueue::default();
    let worker = BackgroundJobWorker::builder()
        .queue(queue())
        .processor(probe.clone())
        .clock(Clock::tokio())
        .queues([("critical", 2), ("default", 2)])
        .max_concurrent_jobs(2)
        .build()
        .unwrap();
    // The default jobs wait longer, and are first in the order of pushes.
    let mut jobs: Vec<Job> = (0..3).map(|_| sleeper("default", 10)).collect();
    jobs.extend((0..3).map(|_| sleeper("critical", 10)));
    let ids = submit_all(&worker, jobs).await;
    let running = Running::start(worker.clone());
    wait_all(&worker, &ids).await;
    running.stop().await;
    assert_eq!(
        probe.order(),
        [
            "critical", "critical", "critical", "default", "default", "default"
        ]
    );
    assert_eq!(probe.max_total(), 2, "the cap holds");
}

/// Queue limits go with every reserve from their queue, and only theirs.
#[tokio::test(start_paused = true)]
async fn queue_limits_are_passed_with_each_reserve() {
    let spy = Spy::new();
    let limits = QueueLimits::new()
        .concurrency(5)
        .rate(Rate::new(100, Duration::from_secs(60)));
    let worker = BackgroundJobWorker::builder()
        .queue(spy.clone())
        .processor(PerQueue::default())
        .clock(Clock::tokio())
        .queues([("default", 2), ("mailers", 1)])
        .queue_limits("mailers", limits)
        .build()
        .unwrap();
    let ids = submit_all(&worker, vec![sleeper("mailers", 1), sleeper("default", 1)]).await;
    let running = Running::start(worker.clone());
    wait_all(&worker, &ids).await;
    running.stop().await;
    let takes: Vec<Take> = spy.takes.lock().iter().flatten().cloned().collect();
    assert!(takes.iter().any(|t| t.queue == "mailers"), "{takes:?}");
    for take in &takes {
        match &*take.queue {
            "mailers" => assert_eq!(take.limits, limits, "{take:?}"),
            "default" => assert!(take.limits.is_empty(), "{take:?}"),
            other => panic!("reserved from {other}"),
        }
        assert!(take.max >= 1);
    }
    // Each reserve asks for at most the free slots of each queue.
    for reserve in spy.takes.lock().iter() {
        for take in reserve {
            let slots = if take.queue == "mailers" { 1 } else { 2 };
            assert!(take.max <= slots, "{reserve:?}");
        }
    }
}

// ---- snooze ---------------------------------------------------------------

/// A handler that snoozes runs again later, the attempt not counted: it
/// sees attempt 1 both times and ends `Completed`, counted as snoozed, not
/// as retried or failed (even with no retries left).
#[tokio::test(start_paused = true)]
async fn snoozed_job_runs_again_without_counting() {
    let flow = Flow::new();
    let worker = registry_worker(queue(), &flow).build().unwrap();
    let job = worker.submit_job(drowsy::job(30)).await.unwrap();
    let running = Running::start(worker.clone());
    let started = tokio::time::Instant::now();
    let done = wait_done(&worker, job.id).await;
    running.stop().await;
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert_eq!(done.attempts, 1);
    assert_eq!(flow.attempts_of(job.id), [1, 1]);
    assert!(
        started.elapsed() >= Duration::from_secs(30),
        "it snoozed 30 s"
    );
    let stats = worker.worker_stats();
    assert_eq!(stats.jobs_snoozed, 1);
    assert_eq!(stats.jobs_retried, 0);
    assert_eq!(stats.jobs_failed, 0);
    assert_eq!(stats.jobs_processed, 1);
}

/// A recurring job that snoozes enqueues its next run only once it really
/// finished.
#[tokio::test(start_paused = true)]
async fn recurring_job_that_snoozes_enqueues_its_next_run_once() {
    let flow = Flow::new();
    let worker = registry_worker(queue(), &flow).build().unwrap();
    let job = worker
        .submit_job(drowsy::job(5).every(Duration::from_secs(3600)))
        .await
        .unwrap();
    let mut events = worker.subscribe();
    let running = Running::start(worker.clone());
    event_of(&mut events, job.id, JobEventKind::Snoozed).await;
    assert_eq!(
        worker.list_jobs(None, 10).await.unwrap().len(),
        1,
        "no next run while the job only snoozed"
    );
    assert_eq!(
        wait_done(&worker, job.id).await.status,
        JobStatus::Completed
    );
    running.stop().await;
    let all = worker.list_jobs(None, 10).await.unwrap();
    assert_eq!(all.len(), 2, "the run and its next one: {all:?}");
}

// ---- progress -------------------------------------------------------------

/// Progress a handler reports shows on the running job and comes as a
/// `Progress` event (from the queue, through the worker's `subscribe`).
#[tokio::test(start_paused = true)]
async fn progress_shows_in_get_job_and_as_an_event() {
    let flow = Flow::new();
    let worker = registry_worker(queue(), &flow).build().unwrap();
    let mut events = worker.subscribe();
    let job = worker
        .submit_job(report::job(vec![json!(0.5)]))
        .await
        .unwrap();
    let running = Running::start(worker.clone());
    let event = event_of(&mut events, job.id, JobEventKind::Progress).await;
    assert_eq!(event.progress, Some(json!(0.5)));
    let now = worker.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(now.status, JobStatus::Running);
    assert_eq!(now.progress.as_deref(), Some(&json!(0.5)));
    flow.open();
    let done = wait_done(&worker, job.id).await;
    running.stop().await;
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(
        done.progress.as_deref(),
        Some(&json!(0.5)),
        "the last value stays"
    );
}

/// Values reported in a burst are coalesced, and the latest is written
/// while the job still runs.
#[tokio::test(start_paused = true)]
async fn latest_progress_is_written_while_the_job_runs() {
    let flow = Flow::new();
    let spy = Spy::new();
    let worker = registry_worker(spy.clone(), &flow).build().unwrap();
    let job = worker
        .submit_job(report::job(vec![json!(1), json!(2), json!(3)]))
        .await
        .unwrap();
    let running = Running::start(worker.clone());
    let mut writes = spy.progress.subscribe();
    within(
        "the latest progress",
        writes.wait_for(|all| all.last() == Some(&json!(3))),
    )
    .await
    .unwrap();
    let now = worker.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(now.status, JobStatus::Running);
    assert_eq!(now.progress.as_deref(), Some(&json!(3)));
    assert!(spy.writes().len() <= 2, "coalesced: {:?}", spy.writes());
    flow.open();
    wait_done(&worker, job.id).await;
    running.stop().await;
}

/// A job reporting 10,000 times writes a handful of times, the last value
/// among them.
#[tokio::test(start_paused = true)]
async fn chatty_progress_is_rate_limited() {
    let flow = Flow::new();
    let spy = Spy::new();
    let worker = registry_worker(spy.clone(), &flow).build().unwrap();
    let job = worker.submit_job(chatty::job(10_000)).await.unwrap();
    let running = Running::start(worker.clone());
    let done = wait_done(&worker, job.id).await;
    running.stop().await;
    assert_eq!(done.status, JobStatus::Completed);
    let writes = spy.writes();
    assert!(
        !writes.is_empty() && writes.len() <= 5,
        "{} writes",
        writes.len()
    );
    assert_eq!(writes.last(), Some(&json!(9_999)));
    assert_eq!(done.progress.as_deref(), Some(&json!(9_999)));
}

/// A detached context records progress.
#[test]
fn detached_context_records_progress() {
    let job = Job::new("x", json!({}));
    let cx = JobContext::detached(&job);
    assert_eq!(cx.last_progress(), None);
    cx.progress(json!({"done": 1}));
    cx.progress(2);
    assert_eq!(cx.last_progress(), Some(json!(2)));
}

// ---- pausing through the worker -------------------------------------------

/// `pause_queue` holds a queue's jobs back until `resume_queue`; the
/// worker's `queues` shows it.
#[tokio::test(start_paused = true)]
async fn pause_and_resume_through_the_worker() {
    let probe = PerQueue::default();
    let worker = BackgroundJobWorker::builder()
        .queue(queue())
        .processor(probe.clone())
        .clock(Clock::tokio())
        .queues([("default", 2), ("mailers", 2)])
        .build()
        .unwrap();
    assert!(worker.pause_queue("mailers").await.unwrap());
    assert!(!worker.pause_queue("mailers").await.unwrap());
    assert!(worker.pause_queue("bad name").await.is_err());
    let held = worker.submit_job(sleeper("mailers", 1)).await.unwrap().id;
    let free = worker.submit_job(sleeper("default", 1)).await.unwrap().id;
    let running = Running::start(worker.clone());
    wait_all(&worker, &[free]).await;
    let queues = worker.queues().await.unwrap();
    let mailers = queues.iter().find(|q| q.name == "mailers").unwrap();
    assert!(mailers.paused);
    assert_eq!(mailers.ready, 1);
    assert_eq!(
        worker.get_job_status(held).await.unwrap(),
        Some(JobStatus::Pending)
    );
    assert!(worker.resume_queue("mailers").await.unwrap());
    assert!(!worker.resume_queue("mailers").await.unwrap());
    wait_all(&worker, &[held]).await;
    running.stop().await;
}
