//! The in-memory queue, [`MemoryJobQueue`]: the whole queue protocol inside
//! one process. Its leases never expire (the workers live as long as the
//! queue), so `heartbeat` only reports leases lost to a cancel or a purge, and
//! `recover_expired` finds nothing; jobs do not survive the process.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::sync::Notify;

use serde_json::Value;
use tokio::sync::broadcast;

use super::{
    CancelOutcome, Enqueue, Enqueued, JobQueue, Lease, Outcome, QueueAdmin, QueueCounts, QueueInfo,
    Reservation, Take,
};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::events::JobEvent;
use crate::job::{Job, JobId, JobPriority, JobStatus};

use super::DEFAULT_MAX_FINISHED;

/// A queue in the memory of one process, shared by every clone.
///
/// Jobs are served most urgent first and in the order they became ready
/// within a priority; scheduled jobs become ready at their time; a push wakes
/// a waiting worker at once. Finished jobs are kept for inspection
/// ([`get`](QueueAdmin::get), [`list`](QueueAdmin::list)) up to a bound
/// ([`MemoryJobQueueBuilder::max_finished`],
/// [`DEFAULT_MAX_FINISHED`](super::DEFAULT_MAX_FINISHED) by default, and
/// optionally an age), so memory does not grow without limit.
///
/// Nothing survives the process: use `RedisJobQueue` for that.
///
/// ```
/// use jobs::prelude::*;
/// use jobs::Enqueue;
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), jobs::Error> {
/// let queue = MemoryJobQueue::new();
/// let id = queue.enqueue(Job::new("send_email", json!({"to": "a@example.com"}))).await?;
/// assert_eq!(queue.get(id).await?.unwrap().status, JobStatus::Pending);
/// assert_eq!(queue.counts().await?.pending, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MemoryJobQueue {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    notify: Notify,
    events: broadcast::Sender<JobEvent>,
    clock: Clock,
    max_finished: u64,
    finished_ttl: Option<chrono::Duration>,
}

/// Builds a [`MemoryJobQueue`] with non-default settings.
#[derive(Clone, Debug)]
pub struct MemoryJobQueueBuilder {
    clock: Clock,
    max_finished: u64,
    finished_ttl: Option<Duration>,
}

impl MemoryJobQueueBuilder {
    /// Where the queue reads the time (for scheduled jobs).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Keeps at most this many finished jobs (the oldest go first).
    pub fn max_finished(mut self, max: u64) -> Self {
        self.max_finished = max;
        self
    }

    /// Forgets finished jobs older than this (looked at whenever a job
    /// finishes or a worker reserves).
    pub fn finished_ttl(mut self, ttl: Duration) -> Self {
        self.finished_ttl = Some(ttl);
        self
    }

    /// The queue.
    pub fn build(self) -> MemoryJobQueue {
        MemoryJobQueue {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                notify: Notify::new(),
                events: broadcast::channel(1024).0,
                clock: self.clock,
                max_finished: self.max_finished,
                finished_ttl: self
                    .finished_ttl
                    .map(|ttl| chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)),
            }),
        }
    }
}

impl MemoryJobQueue {
    /// An empty queue with the default settings.
    pub fn new() -> Self {
        MemoryJobQueue::builder().build()
    }

    /// A builder for non-default settings.
    pub fn builder() -> MemoryJobQueueBuilder {
        MemoryJobQueueBuilder {
            clock: Clock::system(),
            max_finished: DEFAULT_MAX_FINISHED,
            finished_ttl: None,
        }
    }

    /// How many jobs are waiting (pending or retrying, scheduled ones
    /// included).
    pub fn len(&self) -> usize {
        let state = self.inner.state.lock();
        (state.counts.get(JobStatus::Pending) + state.counts.get(JobStatus::Retrying)) as usize
    }

    /// Whether no job is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn wake(&self, ready: usize) {
        // One wake-up per newly ready job, up to a bound: each woken worker
        // reserves a batch.
        for _ in 0..ready.min(64) {
            self.inner.notify.notify_one();
        }
    }
}

impl Default for MemoryJobQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryJobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryJobQueue")
            .field("waiting", &self.len())
            .finish_non_exhaustive()
    }
}

/// Where a record sits while it waits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Not waiting: running or finished.
    Out,
    Ready,
    Delayed,
}

struct Record {
    job: Job,
    /// Changes whenever the record is (re)queued or reserved: entries in
    /// `ready`/`delayed` carrying an older token are stale, and so is a lease
    /// with an older token.
    token: u64,
    place: Place,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Delayed {
    at: DateTime<Utc>,
    seq: u64,
    id: JobId,
    token: u64,
}

#[derive(Default)]
struct State {
    jobs: HashMap<JobId, Box<Record>>,
    /// Ready jobs per priority rank (0 = critical), each in FIFO order.
    ready: [VecDeque<(JobId, u64)>; 4],
    delayed: BinaryHeap<Reverse<Delayed>>,
    /// Finished jobs in the order they finished, for retention.
    finished: VecDeque<(JobId, DateTime<Utc>)>,
    counts: StatusCounts,
    scheduled: u64,
    next_token: u64,
}

#[derive(Default)]
struct StatusCounts([u64; 7]);

impl StatusCounts {
    fn get(&self, status: JobStatus) -> u64 {
        self.0[status.index()]
    }

    fn moved(&mut self, from: Option<JobStatus>, to: Option<JobStatus>) {
        if let Some(from) = from {
            self.0[from.index()] -= 1;
        }
        if let Some(to) = to {
            self.0[to.index()] += 1;
        }
    }
}

impl State {
    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// Puts a waiting record in `ready` or `delayed` under a fresh token.
    /// Returns whether it is ready now.
    fn place(&mut self, record: &mut Record, now: DateTime<Utc>) -> bool {
        let token = self.token();
        record.token = token;
        let at = record.job.due_at();
        if at > now {
            record.place = Place::Delayed;
            self.scheduled += 1;
            self.delayed.push(Reverse(Delayed {
                at,
                seq: token,
                id: record.job.id,
                token,
            }));
            false
        } else {
            record.place = Place::Ready;
            self.ready[record.job.priority.rank()].push_back((record.job.id, token));
            true
        }
    }

    /// Takes a waiting record out of `ready`/`delayed` (their entries become
    /// stale).
    fn unplace(&mut self, record: &mut Record) {
        if record.place == Place::Delayed {
            self.scheduled -= 1;
        }
        record.place = Place::Out;
        record.token = self.token();
    }

    fn insert(&mut self, mut job: Job, now: DateTime<Utc>) -> Result<bool> {
        if self.jobs.contains_key(&job.id) {
            return Err(Error::Duplicate(job.id));
        }
        if !matches!(job.status, JobStatus::Pending | JobStatus::Retrying) {
            job.status = JobStatus::Pending;
        }
        self.counts.moved(None, Some(job.status));
        let mut record = Box::new(Record {
            job,
            token: 0,
            place: Place::Out,
        });
        let ready = self.place(&mut record, now);
        self.jobs.insert(record.job.id, record);
        Ok(ready)
    }

    fn promote_due(&mut self, now: DateTime<Utc>) {
        while let Some(Reverse(next)) = self.delayed.peek() {
            if next.at > now {
                break;
            }
            let Reverse(next) = self.delayed.pop().expect("peeked");
            let Some(record) = self.jobs.get_mut(&next.id) else {
                continue;
            };
            if record.token != next.token || record.place != Place::Delayed {
                continue;
            }
            record.place = Place::Ready;
            self.scheduled -= 1;
            self.ready[record.job.priority.rank()].push_back((next.id, next.token));
        }
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.delayed.peek().map(|Reverse(d)| d.at)
    }

    fn finished(&mut self, id: JobId, at: DateTime<Utc>, inner: &Inner) {
        self.finished.push_back((id, at));
        self.evict(at, inner);
    }

    fn evict(&mut self, now: DateTime<Utc>, inner: &Inner) {
        while let Some(&(id, at)) = self.finished.front() {
            let over = self.finished.len() as u64 > inner.max_finished;
            let old = inner.finished_ttl.is_some_and(|ttl| at + ttl < now);
            if !over && !old {
                break;
            }
            self.finished.pop_front();
            // The entry is stale if the job was retried since it finished.
            let current = self
                .jobs
                .get(&id)
                .is_some_and(|r| r.job.status.is_final() && r.job.completed_at == Some(at));
            if current {
                let record = self.jobs.remove(&id).expect("checked");
                self.counts.moved(Some(record.job.status), None);
            }
        }
    }
}

impl Enqueue for MemoryJobQueue {
    async fn push(&self, job: Job) -> Result<Enqueued> {
        job.validate()?;
        let id = job.id;
        let now = self.inner.clock.now();
        self.inner.state.lock().insert(job, now)?;
        // Wake a waiting worker even for a scheduled job: it may come due
        // before the time waiting workers sleep towards.
        self.wake(1);
        Ok(Enqueued::new(id))
    }

    async fn push_many(&self, jobs: Vec<Job>) -> Result<Vec<Enqueued>> {
        for job in &jobs {
            job.validate()?;
        }
        let now = self.inner.clock.now();
        let mut ids = Vec::with_capacity(jobs.len());
        {
            let mut state = self.inner.state.lock();
            let mut seen = std::collections::HashSet::with_capacity(jobs.len());
            for job in &jobs {
                if state.jobs.contains_key(&job.id) || !seen.insert(job.id) {
                    return Err(Error::Duplicate(job.id));
                }
            }
            for job in jobs {
                ids.push(Enqueued::new(job.id));
                state.insert(job, now)?;
            }
        }
        self.wake(ids.len());
        Ok(ids)
    }
}

impl JobQueue for MemoryJobQueue {
    async fn reserve(
        &self,
        _worker: &str,
        takes: &[Take],
        _lease: Duration,
    ) -> Result<Vec<Reservation>> {
        let max: usize = takes.iter().map(|t| t.max).sum();
        let now = self.inner.clock.now();
        let mut guard = self.inner.state.lock();
        let mut out = Vec::with_capacity(max.min(64));
        let state = &mut *guard;
        state.promote_due(now);
        'ranks: for rank in 0..JobPriority::ALL.len() {
            while out.len() < max {
                let Some((id, token)) = state.ready[rank].pop_front() else {
                    continue 'ranks;
                };
                let Some(record) = state.jobs.get_mut(&id) else {
                    continue;
                };
                if record.token != token || record.place != Place::Ready {
                    continue;
                }
                state.next_token += 1;
                let token = state.next_token;
                record.token = token;
                record.place = Place::Out;
                state
                    .counts
                    .moved(Some(record.job.status), Some(JobStatus::Running));
                record.job.status = JobStatus::Running;
                record.job.attempts += 1;
                record.job.started_at = Some(now);
                out.push(Reservation {
                    job: record.job.clone(),
                    lease: Lease { job_id: id, token },
                });
            }
            break;
        }
        state.evict(now, &self.inner);
        Ok(out)
    }

    async fn wait_for_jobs(&self, timeout: Duration) {
        let notified = self.inner.notify.notified();
        let wait = {
            let state = self.inner.state.lock();
            if state.ready.iter().any(|q| !q.is_empty()) {
                // Possibly stale entries; let the caller look.
                return;
            }
            match state.next_due() {
                Some(at) => timeout.min(self.inner.clock.until(at) + Duration::from_millis(1)),
                None => timeout,
            }
        };
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }

    async fn heartbeat(&self, leases: &[Lease], _lease: Duration) -> Result<Vec<Lease>> {
        let state = self.inner.state.lock();
        Ok(leases
            .iter()
            .filter(|lease| {
                !state
                    .jobs
                    .get(&lease.job_id)
                    .is_some_and(|r| r.token == lease.token && r.job.status == JobStatus::Running)
            })
            .copied()
            .collect())
    }

    async fn finish(&self, lease: Lease, outcome: Outcome, next: Option<Job>) -> Result<bool> {
        if let Some(next) = &next {
            next.validate()?;
        }
        let now = self.inner.clock.now();
        let mut woken = 0;
        {
            let mut guard = self.inner.state.lock();
            let state = &mut *guard;
            let Some(mut record) = state.jobs.remove(&lease.job_id) else {
                return Ok(false);
            };
            if record.token != lease.token || record.job.status != JobStatus::Running {
                state.jobs.insert(lease.job_id, record);
                return Ok(false);
            }
            outcome.apply(&mut record.job, now);
            state
                .counts
                .moved(Some(JobStatus::Running), Some(record.job.status));
            let id = record.job.id;
            if record.job.status == JobStatus::Retrying {
                // Wake a waiting worker even when the retry is delayed: the
                // retry may come due before the time it sleeps towards.
                state.place(&mut record, now);
                woken += 1;
                state.jobs.insert(id, record);
            } else {
                record.token = state.token();
                state.jobs.insert(id, record);
                state.finished(id, now, &self.inner);
            }
            if let Some(next) = next {
                woken += 1;
                state.insert(next, now)?;
            }
        }
        self.wake(woken);
        Ok(true)
    }

    async fn release(&self, leases: &[Lease]) -> Result<usize> {
        let mut released = 0;
        {
            let mut guard = self.inner.state.lock();
            let state = &mut *guard;
            // Front-insert in reverse so the released jobs keep their order
            // at the head of their priority.
            for lease in leases.iter().rev() {
                let Some(record) = state.jobs.get_mut(&lease.job_id) else {
                    continue;
                };
                if record.token != lease.token || record.job.status != JobStatus::Running {
                    continue;
                }
                let status = if record.job.attempts > 1 {
                    JobStatus::Retrying
                } else {
                    JobStatus::Pending
                };
                state.counts.moved(Some(JobStatus::Running), Some(status));
                record.job.status = status;
                record.job.attempts -= 1;
                record.job.started_at = None;
                state.next_token += 1;
                record.token = state.next_token;
                record.place = Place::Ready;
                state.ready[record.job.priority.rank()].push_front((lease.job_id, record.token));
                released += 1;
            }
        }
        self.wake(released);
        Ok(released)
    }

    async fn recover_expired(&self) -> Result<usize> {
        // Leases of an in-memory queue live as long as the process.
        Ok(0)
    }

    async fn progress(&self, lease: Lease, progress: Value) -> Result<bool> {
        let mut state = self.inner.state.lock();
        let Some(record) = state.jobs.get_mut(&lease.job_id) else {
            return Ok(false);
        };
        if record.token != lease.token || record.job.status != JobStatus::Running {
            return Ok(false);
        }
        record.job.progress = Some(progress);
        Ok(true)
    }
}

impl QueueAdmin for MemoryJobQueue {
    async fn get(&self, id: JobId) -> Result<Option<Job>> {
        Ok(self.inner.state.lock().jobs.get(&id).map(|r| r.job.clone()))
    }

    async fn list(&self, status: Option<JobStatus>, limit: usize) -> Result<Vec<Job>> {
        let state = self.inner.state.lock();
        let mut found: Vec<&Job> = state
            .jobs
            .values()
            .map(|r| &r.job)
            .filter(|job| status.is_none_or(|s| job.status == s))
            .collect();
        let newest_first = |a: &&Job, b: &&Job| b.created_at.cmp(&a.created_at);
        if found.len() > limit && limit > 0 {
            found.select_nth_unstable_by(limit - 1, newest_first);
        }
        found.truncate(limit);
        found.sort_by(newest_first);
        Ok(found.into_iter().cloned().collect())
    }

    async fn cancel(&self, id: JobId) -> Result<CancelOutcome> {
        let now = self.inner.clock.now();
        let mut guard = self.inner.state.lock();
        let state = &mut *guard;
        let Some(mut record) = state.jobs.remove(&id) else {
            return Ok(CancelOutcome::NotFound);
        };
        let outcome = match record.job.status {
            JobStatus::Pending | JobStatus::Retrying => CancelOutcome::Cancelled,
            JobStatus::Running => CancelOutcome::CancelledRunning,
            done => {
                state.jobs.insert(id, record);
                return Ok(CancelOutcome::AlreadyFinished(done));
            }
        };
        state.unplace(&mut record);
        state
            .counts
            .moved(Some(record.job.status), Some(JobStatus::Cancelled));
        record.job.status = JobStatus::Cancelled;
        record.job.completed_at = Some(now);
        state.jobs.insert(id, record);
        state.finished(id, now, &self.inner);
        Ok(outcome)
    }

    async fn retry(&self, id: JobId) -> Result<bool> {
        let now = self.inner.clock.now();
        {
            let mut guard = self.inner.state.lock();
            let state = &mut *guard;
            let Some(mut record) = state.jobs.remove(&id) else {
                return Ok(false);
            };
            let was = record.job.status;
            if !record.job.reset_for_retry(now) {
                state.jobs.insert(id, record);
                return Ok(false);
            }
            state.counts.moved(Some(was), Some(JobStatus::Pending));
            state.place(&mut record, now);
            state.jobs.insert(id, record);
        };
        // Ready now or later: a waiting worker re-evaluates how long to sleep.
        self.wake(1);
        Ok(true)
    }

    async fn counts(&self) -> Result<QueueCounts> {
        let state = self.inner.state.lock();
        let mut counts = QueueCounts::default();
        for status in JobStatus::ALL {
            counts.set(status, state.counts.get(status));
        }
        counts.scheduled = state.scheduled;
        Ok(counts)
    }

    async fn purge(&self) -> Result<u64> {
        let mut state = self.inner.state.lock();
        let removed = state.jobs.len() as u64;
        // Keep the token counter: leases handed out before stay stale.
        let next_token = state.next_token;
        *state = State {
            next_token,
            ..State::default()
        };
        Ok(removed)
    }

    async fn pause_queue(&self, queue: &str) -> Result<bool> {
        Err(Error::InvalidArgument(format!(
            "pausing `{queue}`: not supported yet"
        )))
    }

    async fn resume_queue(&self, queue: &str) -> Result<bool> {
        Err(Error::InvalidArgument(format!(
            "resuming `{queue}`: not supported yet"
        )))
    }

    async fn queues(&self) -> Result<Vec<QueueInfo>> {
        Ok(Vec::new())
    }

    fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.events.subscribe()
    }
}
