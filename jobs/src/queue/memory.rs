//! The in-memory queue, [`MemoryJobQueue`]: the whole queue protocol inside
//! one process, named queues, limits, unique jobs and pauses included. Its
//! leases never expire (the workers live as long as the queue), so
//! `heartbeat` only reports leases lost to a cancel or a purge, and
//! `recover_expired` finds nothing; jobs do not survive the process.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashSet};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{Notify, broadcast};

use super::{
    CancelOutcome, DEFAULT_MAX_FINISHED, DeleteOutcome, Enqueue, Enqueued, JobFilter, JobPage,
    JobQueue, Lease, Outcome, QueueAdmin, QueueCounts, QueueInfo, Reservation, THROUGHPUT_MINUTES,
    Take, Throughput, WorkerInfo,
};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::events::{JobEvent, JobEventKind};
use crate::flow::{ConcurrencyLimit, Rate};
use crate::job::{DEFAULT_QUEUE, Job, JobId, JobPriority, JobStatus, check_queue_name};
use crate::result::JobResult;
use crate::workflow::{
    DependencyResult, Resolution, StepInfo, WorkflowId, WorkflowStatus, WorkflowStep, cancelled_by,
};

/// A queue in the memory of one process, shared by every clone.
///
/// Each job waits in its named queue ([`Job::queue`]); a reserve serves the
/// [`Take`]s it is given in order, and within a queue the most urgent jobs
/// first, in the order they became ready within a priority. Scheduled jobs
/// become ready in their queue at their time; a push wakes a waiting worker
/// at once. Finished jobs are kept for inspection
/// ([`get`](QueueAdmin::get), [`list`](QueueAdmin::list)) up to a bound
/// ([`MemoryJobQueueBuilder::max_finished`], [`DEFAULT_MAX_FINISHED`] by
/// default, and optionally an age), so memory does not grow without limit.
///
/// Flow control is exact within the process:
///
/// - A queue's [`Take::limits`] cap how many of its jobs run at once and
///   start per sliding window.
/// - A job's [`concurrency`](Job::concurrency) and
///   [`rate_limit`](Job::rate_limit) cap the jobs sharing its key. A job
///   such a limit holds back is set aside, its attempt not counted, and
///   goes back to its old place in its queue as soon as a slot frees or the
///   window opens; waiting workers are woken then, and sleep until then
///   while everything is held.
/// - A [unique](Job::unique) job whose twin holds its key is not stored:
///   the push returns the twin's id as a conflict. The check and the insert
///   are one step under the queue's lock.
/// - A [paused](QueueAdmin::pause_queue) queue keeps its jobs, takes new
///   ones, and gives none until it is resumed.
///
/// The queue sends its jobs' [events](QueueAdmin::subscribe) while someone
/// listens. Jobs without limits or uniqueness take no part in the
/// bookkeeping those need: nothing is allocated or looked up for them.
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
///
/// queue.enqueue(Job::new("resize", json!({})).queue("media")).await?;
/// queue.pause_queue("media").await?;
/// let media = queue.queues().await?.into_iter().find(|q| q.name == "media").unwrap();
/// assert!(media.paused && media.ready == 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MemoryJobQueue {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// The workers that reported themselves, with when each report lapses.
    workers: Mutex<HashMap<String, (WorkerInfo, DateTime<Utc>)>>,
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
    /// Where the queue reads the time (for scheduled jobs and rate limits).
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
                state: Mutex::new(State::new()),
                workers: Mutex::new(HashMap::default()),
                notify: Notify::new(),
                events: broadcast::channel(1024).0,
                clock: self.clock,
                max_finished: self.max_finished,
                finished_ttl: self.finished_ttl.map(span),
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

    /// Where the queue reads the time (see [`MemoryJobQueueBuilder::clock`]).
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// How many jobs are waiting (pending or retrying, scheduled ones and
    /// those a limit holds back included).
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

    /// Whether events are worth making.
    fn listening(&self) -> bool {
        self.inner.events.receiver_count() > 0
    }

    /// Sends the events a workflow step's end made (none for other jobs).
    fn send_all(&self, events: Vec<JobEvent>) {
        if !events.is_empty() && self.listening() {
            for event in events {
                self.send(event);
            }
        }
    }

    fn send(&self, event: JobEvent) {
        let _ = self.inner.events.send(event);
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

/// A `std` duration as a `chrono` one (saturating).
fn span(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// Where a record sits while it waits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Not waiting: running or finished.
    Out,
    Ready,
    Delayed,
    /// Held back by its concurrency limit, in its key's held list.
    HeldByConcurrency,
    /// Held back by its rate limit, in its key's held list.
    HeldByRate,
    /// A workflow step waiting for its dependencies: in no list.
    Blocked,
}

struct Record {
    job: Job,
    /// Changes whenever the record is reserved: a lease with another token
    /// is stale.
    token: u64,
    /// The record's position: the sequence number of its entry in `ready`
    /// or `delayed` (entries carrying another are stale). A held record
    /// keeps the number of the ready entry it was taken from, and goes back
    /// to that place.
    seq: i64,
    /// Its named queue: an index into `State::queues`.
    queue: u32,
    place: Place,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Delayed {
    at: DateTime<Utc>,
    seq: i64,
    id: JobId,
}

/// One named queue.
struct NamedQueue {
    name: Cow<'static, str>,
    /// Ready jobs per priority rank (0 = critical), each ordered by
    /// sequence number (stale entries included).
    ready: [VecDeque<(i64, JobId)>; 4],
    /// How many records are ready in it.
    ready_count: u64,
    /// How many of its jobs are running.
    running: u32,
    paused: bool,
    /// Whether it ever had a job (the default queue exists from the start).
    used: bool,
    /// Starts within the rate window, while a take gives the queue a rate.
    starts: Starts,
    /// Whether a take's concurrency limit turned workers away: the next
    /// job to stop running wakes one.
    full: bool,
    /// When a take's exhausted rate lets the next job start.
    opens_at: Option<DateTime<Utc>>,
}

impl NamedQueue {
    fn new(name: Cow<'static, str>) -> Self {
        NamedQueue {
            name,
            ready: Default::default(),
            ready_count: 0,
            running: 0,
            paused: false,
            used: false,
            starts: Starts::default(),
            full: false,
            opens_at: None,
        }
    }

    /// Forgets its jobs (a purge); keeps its name and pause.
    fn clear(&mut self) {
        let (name, paused, used) = (std::mem::take(&mut self.name), self.paused, self.used);
        *self = NamedQueue::new(name);
        self.paused = paused;
        self.used = used;
    }
}

/// Held records of one limit key, most urgent first, then in ready order.
type Held = BTreeMap<(usize, i64), JobId>;

struct ConcurrencyKey {
    running: u32,
    /// The limit, as the latest job with the key gave it.
    max: u32,
    held: Held,
}

struct RateKey {
    /// The limit, as the latest job with the key gave it.
    rate: Rate,
    /// Starts within the window.
    starts: Starts,
    held: Held,
    /// When held jobs may start again: set while any is held, with an
    /// entry in `Flow::rate_wakes`.
    wake: Option<DateTime<Utc>>,
}

struct UniqueLock {
    holder: JobId,
    /// When the holder was enqueued.
    at: DateTime<Utc>,
}

/// The state of limits and unique keys: empty while no job uses them.
#[derive(Default)]
struct Flow {
    concurrency: HashMap<String, ConcurrencyKey>,
    rates: HashMap<String, RateKey>,
    /// When each rate key with held jobs lets the next one start; an entry
    /// whose time is not its key's `wake` is stale.
    rate_wakes: BinaryHeap<Reverse<(DateTime<Utc>, String)>>,
    uniques: HashMap<String, UniqueLock>,
    /// When the keys that hold nothing are next forgotten.
    sweep_at: Option<DateTime<Utc>>,
}

/// The state of workflows and batches: empty while no job is a step.
#[derive(Default)]
struct Workflows {
    /// Per step that waits or waited for others: how many it still waits
    /// for, and what those that finished left.
    deps: HashMap<JobId, Deps>,
    /// Per job not finished: the steps waiting for it.
    dependants: HashMap<JobId, Vec<JobId>>,
    /// Per workflow: its counts, and its steps in the order stored.
    records: HashMap<WorkflowId, (WorkflowStatus, Vec<JobId>)>,
}

#[derive(Default)]
struct Deps {
    waiting: u64,
    results: Vec<DependencyResult>,
}

/// A step that finished (or left) and whose dependants are to be resolved.
struct Resolved {
    id: JobId,
    workflow: WorkflowId,
    step: String,
    status: JobStatus,
    result: Option<JobResult>,
}

impl Resolved {
    fn of(job: &Job, step: &StepInfo) -> Self {
        Resolved {
            id: job.id,
            workflow: step.workflow,
            step: step.name.clone(),
            status: job.status,
            result: job.result.as_deref().cloned(),
        }
    }
}

/// How often idle limit keys are forgotten.
const SWEEP_EVERY: chrono::Duration = chrono::Duration::seconds(1);

/// The starts within a rate window, in µs since the epoch (cheaper to
/// compare and subtract than `DateTime`s).
#[derive(Default)]
struct Starts(VecDeque<i64>);

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn period_micros(period: Duration) -> i64 {
    i64::try_from(period.as_micros()).unwrap_or(i64::MAX)
}

impl Starts {
    fn at(now: DateTime<Utc>) -> Self {
        Starts(VecDeque::from([micros(now)]))
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn push(&mut self, now: DateTime<Utc>) {
        self.0.push_back(micros(now));
    }

    /// Drops the starts that left the window of `period` ending `now`.
    fn prune(&mut self, period: Duration, now: DateTime<Utc>) {
        let from = micros(now).saturating_sub(period_micros(period));
        while self.0.front().is_some_and(|&at| at <= from) {
            self.0.pop_front();
        }
    }

    /// When a window holding these starts (pruned) lets one more start.
    fn opening(&self, rate: Rate, now: DateTime<Utc>) -> DateTime<Utc> {
        let max = rate.max as usize;
        if max == 0 || self.0.len() < max {
            return now;
        }
        let at = self.0[self.0.len() - max].saturating_add(period_micros(rate.period));
        DateTime::from_timestamp_micros(at).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

impl Flow {
    /// Whether the job's own limits hold it back now (and where); if not,
    /// counts its start against them. One lookup per limit while its key
    /// exists; a new key is copied once.
    fn admit(&mut self, job: &Job, now: DateTime<Utc>) -> Option<Place> {
        let Flow {
            concurrency,
            rates,
            sweep_at,
            ..
        } = self;
        let mut running = None;
        if let Some(limit) = &job.concurrency {
            if let Some(k) = concurrency.get_mut(limit.key.as_str()) {
                if k.running >= limit.max {
                    return Some(Place::HeldByConcurrency);
                }
                running = Some(k);
            }
        }
        let mut starts = None;
        if let Some(limit) = &job.rate_limit {
            if let Some(k) = rates.get_mut(limit.key.as_str()) {
                k.starts.prune(limit.rate.period, now);
                if k.starts.len() >= limit.rate.max as usize {
                    return Some(Place::HeldByRate);
                }
                starts = Some(k);
            }
        }
        if let Some(limit) = &job.concurrency {
            match running {
                Some(k) => {
                    k.running += 1;
                    k.max = limit.max;
                }
                None => {
                    concurrency.insert(
                        limit.key.clone(),
                        ConcurrencyKey {
                            running: 1,
                            max: limit.max,
                            held: Held::new(),
                        },
                    );
                    sweep_at.get_or_insert(now + SWEEP_EVERY);
                }
            }
        }
        if let Some(limit) = &job.rate_limit {
            match starts {
                Some(k) => {
                    k.rate = limit.rate;
                    k.starts.push(now);
                }
                None => {
                    rates.insert(
                        limit.key.clone(),
                        RateKey {
                            rate: limit.rate,
                            starts: Starts::at(now),
                            held: Held::new(),
                            wake: None,
                        },
                    );
                    sweep_at.get_or_insert(now + SWEEP_EVERY);
                }
            }
        }
        None
    }

    /// Sets a record that `admit` held back aside, in its key's held list.
    fn hold(&mut self, record: &mut Record, place: Place, now: DateTime<Utc>) {
        record.place = place;
        let at = (record.job.priority.rank(), record.seq);
        let id = record.job.id;
        if place == Place::HeldByConcurrency {
            let key = &record
                .job
                .concurrency
                .as_ref()
                .expect("a limit holds it")
                .key;
            let k = self.concurrency.get_mut(key).expect("a full key exists");
            k.held.insert(at, id);
        } else {
            let key = &record
                .job
                .rate_limit
                .as_ref()
                .expect("a limit holds it")
                .key;
            let k = self.rates.get_mut(key).expect("an exhausted key exists");
            k.held.insert(at, id);
            if k.wake.is_none() {
                let wake = k.starts.opening(k.rate, now);
                k.wake = Some(wake);
                self.rate_wakes.push(Reverse((wake, key.clone())));
            }
        }
    }

    /// Takes a held record out of its key's held list.
    fn unhold(&mut self, record: &Record) {
        let at = (record.job.priority.rank(), record.seq);
        if record.place == Place::HeldByConcurrency {
            let key = &record
                .job
                .concurrency
                .as_ref()
                .expect("a limit holds it")
                .key;
            if let Some(k) = self.concurrency.get_mut(key) {
                k.held.remove(&at);
            }
        } else if let Some(limit) = &record.job.rate_limit {
            if let Some(k) = self.rates.get_mut(&limit.key) {
                k.held.remove(&at);
            }
        }
    }

    /// Forgets the keys that hold nothing: concurrency keys with no job
    /// running, rate keys with no start in their window; at most once a
    /// second (a key in steady use stays, rather than being dropped and
    /// made again between its jobs).
    fn sweep(&mut self, now: DateTime<Utc>) {
        if self.sweep_at.is_none_or(|at| at > now) {
            return;
        }
        self.concurrency
            .retain(|_, k| k.running > 0 || !k.held.is_empty());
        self.rates.retain(|_, k| {
            k.starts.prune(k.rate.period, now);
            !k.held.is_empty() || !k.starts.is_empty()
        });
        let busy = !self.concurrency.is_empty() || !self.rates.is_empty();
        self.sweep_at = busy.then(|| now + SWEEP_EVERY);
    }
}

struct State {
    jobs: HashMap<JobId, Box<Record>>,
    /// The named queues, the default one first; never removed.
    queues: Vec<NamedQueue>,
    /// Indexes of the named queues but the default one.
    by_name: HashMap<Cow<'static, str>, u32>,
    delayed: BinaryHeap<Reverse<Delayed>>,
    /// Finished jobs in the order they finished, for retention.
    finished: VecDeque<(JobId, DateTime<Utc>)>,
    counts: StatusCounts,
    scheduled: u64,
    next_token: u64,
    /// The last sequence number given at the back of `ready` (and to
    /// `delayed`), counting up from 0.
    back_seq: i64,
    /// The last one given at the front of `ready`, counting down from 0.
    front_seq: i64,
    flow: Flow,
    workflows: Workflows,
    /// Events of jobs a workflow step's end changed (dependants cancelled
    /// with it), for the caller to send once the lock is released.
    events: Vec<JobEvent>,
    /// Attempts processed and failed per minute (minutes since the epoch),
    /// the last [`THROUGHPUT_MINUTES`] that had any, oldest first.
    minutes: VecDeque<(i64, u64, u64)>,
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

/// Puts a record taken out of a held list back in ready, at its old place.
fn unheld(jobs: &mut HashMap<JobId, Box<Record>>, queues: &mut [NamedQueue], id: JobId) -> bool {
    let Some(record) = jobs.get_mut(&id) else {
        return false;
    };
    if !matches!(record.place, Place::HeldByConcurrency | Place::HeldByRate) {
        return false;
    }
    record.place = Place::Ready;
    let queue = &mut queues[record.queue as usize];
    let ready = &mut queue.ready[record.job.priority.rank()];
    let at = ready.partition_point(|&(seq, _)| seq < record.seq);
    ready.insert(at, (record.seq, id));
    queue.ready_count += 1;
    true
}

/// Gives a free slot of a concurrency key to its earliest held job.
/// Returns how many workers to wake.
fn refill(
    k: &mut ConcurrencyKey,
    jobs: &mut HashMap<JobId, Box<Record>>,
    queues: &mut [NamedQueue],
) -> usize {
    if k.running >= k.max {
        return 0;
    }
    while let Some((_, id)) = k.held.pop_first() {
        if unheld(jobs, queues, id) {
            return 1;
        }
    }
    0
}

/// Puts a ready record at the back of its queue.
fn push_ready(queues: &mut [NamedQueue], back_seq: &mut i64, record: &mut Record) {
    *back_seq += 1;
    record.seq = *back_seq;
    record.place = Place::Ready;
    let queue = &mut queues[record.queue as usize];
    queue.ready[record.job.priority.rank()].push_back((record.seq, record.job.id));
    queue.ready_count += 1;
}

impl State {
    fn new() -> Self {
        State {
            jobs: HashMap::default(),
            queues: vec![NamedQueue::new(Cow::Borrowed(DEFAULT_QUEUE))],
            by_name: HashMap::default(),
            delayed: BinaryHeap::new(),
            finished: VecDeque::new(),
            counts: StatusCounts::default(),
            scheduled: 0,
            next_token: 0,
            back_seq: 0,
            front_seq: 0,
            flow: Flow::default(),
            workflows: Workflows::default(),
            events: Vec::new(),
            minutes: VecDeque::new(),
        }
    }

    /// Counts an attempt that ended at `now`, failed or not.
    fn count_attempt(&mut self, now: DateTime<Utc>, failed: bool) {
        let minute = now.timestamp().div_euclid(60);
        match self.minutes.back_mut() {
            Some(last) if last.0 == minute => {
                last.1 += 1;
                last.2 += u64::from(failed);
            }
            _ => {
                self.minutes.push_back((minute, 1, u64::from(failed)));
                while self
                    .minutes
                    .front()
                    .is_some_and(|first| first.0 <= minute - THROUGHPUT_MINUTES as i64)
                {
                    self.minutes.pop_front();
                }
            }
        }
    }

    /// Takes a job that is not running out of the queue altogether: out of
    /// its place, its count and the unique key it holds. Returns the
    /// record and how many workers to wake, or the record back (left in
    /// place) if it is running.
    fn remove(
        &mut self,
        id: JobId,
        now: DateTime<Utc>,
    ) -> Option<std::result::Result<(Box<Record>, usize), ()>> {
        let record = self.jobs.get(&id)?;
        if record.job.status == JobStatus::Running {
            return Some(Err(()));
        }
        let mut record = self.jobs.remove(&id).expect("looked up");
        let mut woken = self.unplace(&mut record);
        self.counts.moved(Some(record.job.status), None);
        if let Some(step) = record.job.step.clone() {
            if !record.job.status.is_final() {
                // Its dependants see it as cancelled.
                let mut gone = Resolved::of(&record.job, &step);
                gone.status = JobStatus::Cancelled;
                woken += self.resolve(gone, now);
            }
            self.workflows.dependants.remove(&id);
            self.forget_step(id, &step);
        }
        if let Some(unique) = &record.job.unique {
            if self
                .flow
                .uniques
                .get(&unique.key)
                .is_some_and(|lock| lock.holder == id)
            {
                self.flow.uniques.remove(&unique.key);
            }
        }
        // Its entry in `finished`, if any, is stale now and is skipped.
        Some(Ok((record, woken)))
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// The index of a named queue, if it exists.
    fn queue_of(&self, name: &str) -> Option<usize> {
        if name == DEFAULT_QUEUE {
            return Some(0);
        }
        self.by_name.get(name).map(|&i| i as usize)
    }

    /// The index of a named queue, made if need be. (A `Cow`, not a
    /// `&str`: a new queue keeps a borrowed name without copying it.)
    #[allow(clippy::ptr_arg)]
    fn queue_for(&mut self, name: &Cow<'static, str>) -> usize {
        if let Some(i) = self.queue_of(name) {
            return i;
        }
        let i = self.queues.len();
        self.queues.push(NamedQueue::new(name.clone()));
        self.by_name.insert(name.clone(), i as u32);
        i
    }

    /// Puts a ready record at the back of its queue.
    fn push_ready(&mut self, record: &mut Record) {
        push_ready(&mut self.queues, &mut self.back_seq, record);
    }

    /// Puts a waiting record in `ready` or `delayed`. Returns whether it
    /// is ready now.
    fn place(&mut self, record: &mut Record, now: DateTime<Utc>) -> bool {
        let at = record.job.due_at();
        if at > now {
            self.back_seq += 1;
            record.seq = self.back_seq;
            record.place = Place::Delayed;
            self.scheduled += 1;
            self.delayed.push(Reverse(Delayed {
                at,
                seq: record.seq,
                id: record.job.id,
            }));
            false
        } else {
            self.push_ready(record);
            true
        }
    }

    /// Takes a waiting record out of `ready`, `delayed` or a held list
    /// (their entries become stale). Returns how many workers to wake.
    fn unplace(&mut self, record: &mut Record) -> usize {
        let mut woken = 0;
        match record.place {
            Place::Out | Place::Blocked => {}
            Place::Ready => {
                self.queues[record.queue as usize].ready_count -= 1;
                // It may have been given a freed slot: pass that on.
                if let Some(limit) = &record.job.concurrency {
                    woken += self.refill(&limit.key);
                }
            }
            Place::Delayed => self.scheduled -= 1,
            Place::HeldByConcurrency | Place::HeldByRate => self.flow.unhold(record),
        }
        record.place = Place::Out;
        woken
    }

    /// Gives a free slot of a concurrency key to its earliest held job.
    /// Returns how many workers to wake.
    fn refill(&mut self, key: &str) -> usize {
        let Some(k) = self.flow.concurrency.get_mut(key) else {
            return 0;
        };
        refill(k, &mut self.jobs, &mut self.queues)
    }

    /// A running job stopped running (finished, handed back, cancelled):
    /// frees its slots (its queue's, and its concurrency limit's if it has
    /// one). Returns how many workers to wake.
    fn stopped(&mut self, concurrency: Option<&ConcurrencyLimit>, queue: u32) -> usize {
        let mut woken = 0;
        let queue = &mut self.queues[queue as usize];
        queue.running -= 1;
        if queue.full {
            queue.full = false;
            woken += 1;
        }
        if let Some(limit) = concurrency {
            if let Some(k) = self.flow.concurrency.get_mut(limit.key.as_str()) {
                k.running = k.running.saturating_sub(1);
                woken += refill(k, &mut self.jobs, &mut self.queues);
            }
        }
        woken
    }

    /// The holder of a unique job's key that blocks it, if any.
    fn twin(&self, job: &Job, now: DateTime<Utc>) -> Option<JobId> {
        let unique = job.unique.as_ref()?;
        let lock = self.flow.uniques.get(&unique.key)?;
        let holder = self.jobs.get(&lock.holder)?;
        if !unique.blocks(holder.job.status) {
            return None;
        }
        if let Some(period) = unique.period {
            if lock
                .at
                .checked_add_signed(span(period))
                .is_some_and(|end| end <= now)
            {
                return None;
            }
        }
        Some(lock.holder)
    }

    /// Stores a job whose id is free, unless a unique twin holds its key.
    /// Returns what happened and whether the job is ready now.
    fn store(&mut self, job: Job, now: DateTime<Utc>) -> (Enqueued, bool) {
        if let Some(twin) = self.twin(&job, now) {
            return (Enqueued::conflict(twin), false);
        }
        if let Some(unique) = &job.unique {
            let lock = UniqueLock {
                holder: job.id,
                at: now,
            };
            self.flow.uniques.insert(unique.key.clone(), lock);
        }
        let id = job.id;
        (Enqueued::new(id), self.insert(job, now))
    }

    fn insert(&mut self, mut job: Job, now: DateTime<Utc>) -> bool {
        if job.step.is_some() {
            return self.insert_step(job, now);
        }
        if !matches!(job.status, JobStatus::Pending | JobStatus::Retrying) {
            job.status = JobStatus::Pending;
        }
        self.counts.moved(None, Some(job.status));
        let queue = self.queue_for(&job.queue);
        self.queues[queue].used = true;
        let mut record = Box::new(Record {
            job,
            token: 0,
            seq: 0,
            queue: queue as u32,
            place: Place::Out,
        });
        let ready = self.place(&mut record, now);
        self.jobs.insert(record.job.id, record);
        ready
    }

    /// Checks that the steps among `jobs` can be stored: what they depend
    /// on exists (stored, or earlier in `jobs`), and the stored steps they
    /// block still wait for their dependencies.
    fn check_steps(&self, jobs: &[Job]) -> Result<()> {
        if !jobs.iter().any(|j| j.step.is_some()) {
            return Ok(());
        }
        let mut earlier = HashMap::default();
        for job in jobs {
            if let Some(step) = &job.step {
                for dep in &step.depends_on {
                    let is_step = match earlier.get(&dep.job) {
                        Some(is_step) => *is_step,
                        None => match self.jobs.get(&dep.job) {
                            Some(record) => record.job.step.is_some(),
                            None => {
                                return Err(Error::InvalidArgument(format!(
                                    "step `{}` of workflow `{}` depends on job {} (`{}`), which does not exist",
                                    step.name, step.workflow_name, dep.job, dep.step
                                )));
                            }
                        },
                    };
                    if !is_step {
                        return Err(Error::InvalidArgument(format!(
                            "step `{}` of workflow `{}` depends on job {} (`{}`), which is not a workflow step",
                            step.name, step.workflow_name, dep.job, dep.step
                        )));
                    }
                }
                for blocked in &step.blocks {
                    let waits = self.jobs.get(blocked).is_some_and(|r| {
                        r.place == Place::Blocked
                            && r.job
                                .step
                                .as_ref()
                                .is_some_and(|s| s.workflow == step.workflow)
                    });
                    if !waits {
                        return Err(Error::InvalidArgument(format!(
                            "job {blocked} is not a step of workflow `{}` that still waits for its dependencies, so it cannot wait for step `{}` too",
                            step.workflow_name, step.name
                        )));
                    }
                }
            }
            earlier.insert(job.id, job.step.is_some());
        }
        Ok(())
    }

    /// Stores a workflow step: waiting for its dependencies, ready if they
    /// all completed, or cancelled if one of them did not. Returns whether
    /// it is ready now.
    fn insert_step(&mut self, mut job: Job, now: DateTime<Utc>) -> bool {
        let step = job.step.clone().expect("a step");
        let id = job.id;
        let (status, members) = self
            .workflows
            .records
            .entry(step.workflow)
            .or_insert_with(|| {
                let status = WorkflowStatus::new(step.workflow, &step.workflow_name, step.kind);
                (status, Vec::new())
            });
        status.total += 1;
        status.pending += 1;
        members.push(id);
        let mut deps = Deps::default();
        let mut cancel = None;
        for dep in &step.depends_on {
            match self.jobs.get(&dep.job) {
                Some(parent) if parent.job.status.is_final() => {
                    let done = parent.job.status;
                    deps.results.push(
                        DependencyResult::new(dep.job, &dep.step, done)
                            .with_result(parent.job.result.as_deref().cloned()),
                    );
                    if done != JobStatus::Completed && !step.run_always && cancel.is_none() {
                        cancel = Some(cancelled_by(&dep.step, done));
                    }
                }
                _ => {
                    deps.waiting += 1;
                    self.workflows
                        .dependants
                        .entry(dep.job)
                        .or_default()
                        .push(id);
                }
            }
        }
        for blocked in &step.blocks {
            if let Some(d) = self.workflows.deps.get_mut(blocked) {
                d.waiting += 1;
            }
            self.workflows
                .dependants
                .entry(id)
                .or_default()
                .push(*blocked);
        }
        let waiting = deps.waiting;
        self.workflows.deps.insert(id, deps);
        if let Some(error) = cancel {
            job.status = JobStatus::Cancelled;
            job.last_error = Some(error);
            job.completed_at = Some(now);
        } else if !matches!(job.status, JobStatus::Pending | JobStatus::Retrying) {
            job.status = JobStatus::Pending;
        }
        self.counts.moved(None, Some(job.status));
        let queue = self.queue_for(&job.queue);
        self.queues[queue].used = true;
        let mut record = Box::new(Record {
            job,
            token: 0,
            seq: 0,
            queue: queue as u32,
            place: Place::Out,
        });
        if record.job.status == JobStatus::Cancelled {
            let resolved = Resolved::of(&record.job, &step);
            self.events
                .push(JobEvent::of(&record.job, JobEventKind::Cancelled));
            self.jobs.insert(id, record);
            self.finished.push_back((id, now));
            self.resolve(resolved, now);
            return false;
        }
        let ready = if waiting > 0 {
            record.place = Place::Blocked;
            false
        } else {
            self.place(&mut record, now)
        };
        self.jobs.insert(id, record);
        ready
    }

    /// A workflow step ended (finished, or left the queue): counts it in
    /// its workflow and resolves the steps waiting for it — ready once
    /// their last dependency ended, cancelled (and theirs in turn) if one
    /// did not complete and they do not run always. Returns how many
    /// workers to wake. Finished jobs are not evicted here.
    fn resolve(&mut self, first: Resolved, now: DateTime<Utc>) -> usize {
        let mut woken = 0;
        let mut stack = vec![first];
        while let Some(done) = stack.pop() {
            if let Some((status, _)) = self.workflows.records.get_mut(&done.workflow) {
                status.count_finished(done.status);
            }
            let Some(children) = self.workflows.dependants.remove(&done.id) else {
                continue;
            };
            for child in children {
                let Some(record) = self.jobs.get(&child) else {
                    continue;
                };
                if record.place != Place::Blocked || record.job.status.is_final() {
                    continue;
                }
                let Some(step) = record.job.step.clone() else {
                    continue;
                };
                let deps = self.workflows.deps.entry(child).or_default();
                deps.waiting = deps.waiting.saturating_sub(1);
                deps.results.push(
                    DependencyResult::new(done.id, &done.step, done.status)
                        .with_result(done.result.clone()),
                );
                match Resolution::of(done.status, step.run_always, deps.waiting) {
                    Resolution::Waiting => {}
                    Resolution::Ready => {
                        let mut record = self.jobs.remove(&child).expect("looked up");
                        record.place = Place::Out;
                        self.place(&mut record, now);
                        self.jobs.insert(child, record);
                        woken += 1;
                    }
                    Resolution::Cancel => {
                        deps.waiting = 0;
                        let token = self.token();
                        let record = self.jobs.get_mut(&child).expect("looked up");
                        self.counts
                            .moved(Some(record.job.status), Some(JobStatus::Cancelled));
                        record.job.status = JobStatus::Cancelled;
                        record.job.last_error = Some(cancelled_by(&done.step, done.status));
                        record.job.completed_at = Some(now);
                        record.place = Place::Out;
                        record.token = token;
                        self.events
                            .push(JobEvent::of(&record.job, JobEventKind::Cancelled));
                        stack.push(Resolved::of(&record.job, &step));
                        self.finished.push_back((child, now));
                    }
                }
            }
        }
        woken
    }

    /// A workflow step left the queue (deleted, evicted, purged): forgets
    /// its dependency state, and the workflow once none of its steps is
    /// left.
    fn forget_step(&mut self, id: JobId, step: &StepInfo) {
        self.workflows.deps.remove(&id);
        if let Some((_, members)) = self.workflows.records.get_mut(&step.workflow) {
            members.retain(|m| *m != id);
            if members.is_empty() {
                self.workflows.records.remove(&step.workflow);
            }
        }
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
            if record.seq == next.seq && record.place == Place::Delayed {
                self.scheduled -= 1;
                push_ready(&mut self.queues, &mut self.back_seq, record);
            }
        }
    }

    /// Puts jobs held by rate limits whose window opened back in ready.
    fn promote_rates(&mut self, now: DateTime<Utc>) {
        let State {
            jobs, queues, flow, ..
        } = self;
        while flow
            .rate_wakes
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= now)
        {
            let Reverse((at, key)) = flow.rate_wakes.pop().expect("peeked");
            let Some(k) = flow.rates.get_mut(&key) else {
                continue;
            };
            if k.wake != Some(at) {
                continue;
            }
            k.wake = None;
            k.starts.prune(k.rate.period, now);
            let mut room = (k.rate.max as usize).saturating_sub(k.starts.len());
            let mut released = false;
            while room > 0 {
                let Some((_, id)) = k.held.pop_first() else {
                    break;
                };
                if unheld(jobs, queues, id) {
                    room -= 1;
                    released = true;
                }
            }
            if !k.held.is_empty() {
                // Those released start now, presumably: look again when
                // their window has passed.
                let wake = if released {
                    now.checked_add_signed(span(k.rate.period))
                        .unwrap_or(DateTime::<Utc>::MAX_UTC)
                } else {
                    k.starts.opening(k.rate, now)
                };
                k.wake = Some(wake);
                flow.rate_wakes.push(Reverse((wake, key)));
            }
        }
    }

    /// Reserves up to `take.max` jobs from one named queue.
    fn take(&mut self, queue: usize, take: &Take, now: DateTime<Utc>, out: &mut Vec<Reservation>) {
        let State {
            jobs,
            queues,
            flow,
            counts,
            next_token,
            ..
        } = self;
        let q = &mut queues[queue];
        if q.paused || take.max == 0 {
            return;
        }
        let mut room = take.max;
        if let Some(max) = take.limits.concurrency {
            let free = (max as usize).saturating_sub(q.running as usize);
            if free == 0 {
                q.full = true;
                return;
            }
            room = room.min(free);
        }
        if let Some(rate) = take.limits.rate {
            q.starts.prune(rate.period, now);
            let free = (rate.max as usize).saturating_sub(q.starts.len());
            if free == 0 {
                q.opens_at = Some(q.starts.opening(rate, now));
                return;
            }
            q.opens_at = None;
            room = room.min(free);
        }
        'ranks: for rank in 0..JobPriority::ALL.len() {
            while room > 0 {
                let Some((seq, id)) = q.ready[rank].pop_front() else {
                    continue 'ranks;
                };
                let Some(record) = jobs.get_mut(&id) else {
                    continue;
                };
                if record.seq != seq || record.place != Place::Ready {
                    continue;
                }
                q.ready_count -= 1;
                if record.job.concurrency.is_some() || record.job.rate_limit.is_some() {
                    if let Some(held) = flow.admit(&record.job, now) {
                        flow.hold(record, held, now);
                        continue;
                    }
                }
                *next_token += 1;
                record.token = *next_token;
                record.place = Place::Out;
                counts.moved(Some(record.job.status), Some(JobStatus::Running));
                record.job.status = JobStatus::Running;
                record.job.attempts += 1;
                record.job.started_at = Some(now);
                q.running += 1;
                if take.limits.rate.is_some() {
                    q.starts.push(now);
                }
                room -= 1;
                out.push(Reservation {
                    job: record.job.clone(),
                    lease: Lease {
                        job_id: id,
                        token: record.token,
                    },
                });
            }
            break;
        }
        if take.limits.concurrency.is_some_and(|max| q.running >= max) {
            q.full = true;
        }
    }

    /// When a job may become ready next: a scheduled one comes due, or a
    /// rate window opens.
    fn next_wake(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut next = self.delayed.peek().map(|Reverse(d)| d.at);
        let mut earliest = |at: DateTime<Utc>| next = Some(next.map_or(at, |n| n.min(at)));
        if let Some(Reverse((at, _))) = self.flow.rate_wakes.peek() {
            earliest(*at);
        }
        for queue in &self.queues {
            // A time that passed is for a worker taking from that queue to
            // see when it reserves; others must not spin on it.
            if let Some(at) = queue.opens_at {
                if at > now && queue.ready_count > 0 && !queue.paused {
                    earliest(at);
                }
            }
        }
        next
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
                if let Some(step) = &record.job.step {
                    self.forget_step(id, step);
                }
                if let Some(unique) = &record.job.unique {
                    if self
                        .flow
                        .uniques
                        .get(&unique.key)
                        .is_some_and(|lock| lock.holder == id)
                    {
                        self.flow.uniques.remove(&unique.key);
                    }
                }
            }
        }
    }
}

impl Enqueue for MemoryJobQueue {
    async fn push(&self, job: Job) -> Result<Enqueued> {
        job.validate()?;
        let now = self.inner.clock.now();
        let pushed = {
            let mut state = self.inner.state.lock();
            if state.jobs.contains_key(&job.id) {
                return Err(Error::Duplicate(job.id));
            }
            if job.step.is_some() {
                state.check_steps(std::slice::from_ref(&job))?;
                let pushed = state.store(job, now).0;
                let events = std::mem::take(&mut state.events);
                state.evict(now, &self.inner);
                drop(state);
                self.wake(1);
                self.send_all(events);
                return Ok(pushed);
            }
            state.store(job, now).0
        };
        if !pushed.conflict {
            // Wake a waiting worker even for a scheduled job: it may come
            // due before the time waiting workers sleep towards.
            self.wake(1);
        }
        Ok(pushed)
    }

    async fn push_many(&self, jobs: Vec<Job>) -> Result<Vec<Enqueued>> {
        for job in &jobs {
            job.validate()?;
        }
        let now = self.inner.clock.now();
        let mut pushed = Vec::with_capacity(jobs.len());
        let mut stored = 0;
        let mut events = Vec::new();
        {
            let mut state = self.inner.state.lock();
            let mut seen = HashSet::with_capacity_and_hasher(jobs.len(), Default::default());
            for job in &jobs {
                if state.jobs.contains_key(&job.id) || !seen.insert(job.id) {
                    return Err(Error::Duplicate(job.id));
                }
            }
            state.check_steps(&jobs)?;
            for job in jobs {
                let (enqueued, _) = state.store(job, now);
                stored += usize::from(!enqueued.conflict);
                pushed.push(enqueued);
            }
            if !state.events.is_empty() {
                events = std::mem::take(&mut state.events);
                state.evict(now, &self.inner);
            }
        }
        self.wake(stored);
        self.send_all(events);
        Ok(pushed)
    }
}

impl JobQueue for MemoryJobQueue {
    async fn reserve(
        &self,
        _worker: &str,
        takes: &[Take],
        _lease: Duration,
    ) -> Result<Vec<Reservation>> {
        let mut max: usize = 0;
        for take in takes {
            take.limits.validate()?;
            max = max.saturating_add(take.max);
        }
        let now = self.inner.clock.now();
        let mut out = Vec::with_capacity(max.min(64));
        {
            let mut guard = self.inner.state.lock();
            let state = &mut *guard;
            state.promote_due(now);
            if !state.flow.rate_wakes.is_empty() {
                state.promote_rates(now);
            }
            state.flow.sweep(now);
            for take in takes {
                if let Some(queue) = state.queue_of(&take.queue) {
                    state.take(queue, take, now, &mut out);
                }
            }
            state.evict(now, &self.inner);
        }
        if !out.is_empty() && self.listening() {
            for reservation in &out {
                self.send(JobEvent::of(&reservation.job, JobEventKind::Started));
            }
        }
        Ok(out)
    }

    async fn wait_for_jobs(&self, timeout: Duration) {
        let notified = self.inner.notify.notified();
        // No early return for ready jobs: the caller just found none it
        // could take (the rest are paused, held or in other queues), and a
        // push since then left a wake-up for `notified`.
        let wait = {
            let state = self.inner.state.lock();
            match state.next_wake(self.inner.clock.now()) {
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
        let mut event = None;
        let mut taken = None;
        let mut events = Vec::new();
        {
            let mut guard = self.inner.state.lock();
            let state = &mut *guard;
            // Updated where it is: only a job that waits again (a retry, a
            // snooze) leaves the map for a moment, to be placed.
            let next_token = state.next_token + 1;
            let Some(record) = state.jobs.get_mut(&lease.job_id) else {
                return Ok(false);
            };
            if record.token != lease.token || record.job.status != JobStatus::Running {
                return Ok(false);
            }
            outcome.apply(&mut record.job, now);
            if self.listening() {
                event = Some(JobEvent::of(
                    &record.job,
                    JobEventKind::of_outcome(&outcome),
                ));
            }
            let (id, status, queue) = (record.job.id, record.job.status, record.queue);
            let concurrency = record.job.concurrency.clone();
            if status.is_final() {
                record.token = next_token;
                state.next_token = next_token;
            }
            if !matches!(outcome, Outcome::Snoozed { .. }) {
                let failed = matches!(outcome, Outcome::Retry { .. } | Outcome::Failed(_));
                state.count_attempt(now, failed);
            }
            state.counts.moved(Some(JobStatus::Running), Some(status));
            woken += state.stopped(concurrency.as_deref(), queue);
            if status.is_final() {
                if let Some(record) = state.jobs.get(&id) {
                    if let Some(step) = &record.job.step {
                        let resolved = Resolved::of(&record.job, step);
                        woken += state.resolve(resolved, now);
                        events = std::mem::take(&mut state.events);
                    }
                }
                state.finished(id, now, &self.inner);
            } else {
                // Retrying or snoozed. Wake a waiting worker even when it
                // is delayed: it may come due before the time the worker
                // sleeps towards.
                let mut record = state.jobs.remove(&id).expect("looked up");
                state.place(&mut record, now);
                woken += 1;
                state.jobs.insert(id, record);
            }
            if let Some(next) = next {
                if state.jobs.contains_key(&next.id) {
                    taken = Some(next.id);
                } else {
                    let (enqueued, _) = state.store(next, now);
                    woken += usize::from(!enqueued.conflict);
                }
            }
        }
        self.wake(woken);
        if let Some(event) = event {
            self.send(event);
        }
        self.send_all(events);
        match taken {
            // The outcome is recorded all the same.
            Some(id) => Err(Error::Duplicate(id)),
            None => Ok(true),
        }
    }

    async fn release(&self, leases: &[Lease]) -> Result<usize> {
        let mut released = 0;
        let mut woken = 0;
        let listening = self.listening();
        let mut events = Vec::new();
        {
            let mut guard = self.inner.state.lock();
            let state = &mut *guard;
            // Front-insert in reverse so the released jobs keep their order
            // at the head of their priority.
            for lease in leases.iter().rev() {
                let Some(mut record) = state.jobs.remove(&lease.job_id) else {
                    continue;
                };
                if record.token != lease.token || record.job.status != JobStatus::Running {
                    state.jobs.insert(lease.job_id, record);
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
                woken += state.stopped(record.job.concurrency.as_deref(), record.queue);
                state.front_seq -= 1;
                record.seq = state.front_seq;
                record.place = Place::Ready;
                let queue = &mut state.queues[record.queue as usize];
                queue.ready[record.job.priority.rank()].push_front((record.seq, lease.job_id));
                queue.ready_count += 1;
                if listening {
                    events.push(JobEvent::of(&record.job, JobEventKind::Released));
                }
                state.jobs.insert(lease.job_id, record);
                released += 1;
            }
        }
        self.wake(released + woken);
        for event in events.into_iter().rev() {
            self.send(event);
        }
        Ok(released)
    }

    async fn report_worker(&self, info: &WorkerInfo, ttl: Duration) -> Result<()> {
        let lapses = Utc::now() + span(ttl);
        let mut info = info.clone();
        info.last_seen = Utc::now();
        self.inner
            .workers
            .lock()
            .insert(info.id.clone(), (info, lapses));
        Ok(())
    }

    async fn remove_worker(&self, id: &str) -> Result<()> {
        self.inner.workers.lock().remove(id);
        Ok(())
    }

    async fn recover_expired(&self) -> Result<usize> {
        // Leases of an in-memory queue live as long as the process.
        Ok(0)
    }

    async fn dependency_results(&self, id: JobId) -> Result<Vec<DependencyResult>> {
        let state = self.inner.state.lock();
        Ok(state
            .workflows
            .deps
            .get(&id)
            .map(|d| d.results.clone())
            .unwrap_or_default())
    }

    async fn progress(&self, lease: Lease, progress: Value) -> Result<bool> {
        let event = {
            let mut state = self.inner.state.lock();
            let Some(record) = state.jobs.get_mut(&lease.job_id) else {
                return Ok(false);
            };
            if record.token != lease.token || record.job.status != JobStatus::Running {
                return Ok(false);
            }
            if self.listening() {
                let event = JobEvent::of(&record.job, JobEventKind::Progress)
                    .with_progress(progress.clone());
                record.job.progress = Some(Box::new(progress));
                Some(event)
            } else {
                record.job.progress = Some(Box::new(progress));
                None
            }
        };
        if let Some(event) = event {
            self.send(event);
        }
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

    async fn find_jobs(&self, filter: &JobFilter) -> Result<JobPage> {
        let state = self.inner.state.lock();
        let mut found: Vec<&Job> = state
            .jobs
            .values()
            .map(|r| &r.job)
            .filter(|job| filter.matches(job))
            .collect();
        let newest_first = |a: &&Job, b: &&Job| (b.created_at, b.id).cmp(&(a.created_at, a.id));
        let limit = filter.capped_limit();
        let end = filter.offset.saturating_add(limit);
        let more = found.len() > end;
        if more && end > 0 {
            found.select_nth_unstable_by(end - 1, newest_first);
            found.truncate(end);
        }
        found.sort_by(newest_first);
        let jobs = found
            .into_iter()
            .skip(filter.offset)
            .take(limit)
            .cloned()
            .collect();
        Ok(JobPage::new(jobs, more))
    }

    async fn delete(&self, id: JobId) -> Result<DeleteOutcome> {
        let now = self.inner.clock.now();
        let (woken, events) = {
            let mut state = self.inner.state.lock();
            let woken = match state.remove(id, now) {
                None => return Ok(DeleteOutcome::NotFound),
                Some(Err(())) => return Ok(DeleteOutcome::Running),
                Some(Ok((_, woken))) => woken,
            };
            state.evict(now, &self.inner);
            (woken, std::mem::take(&mut state.events))
        };
        self.wake(woken);
        self.send_all(events);
        Ok(DeleteOutcome::Deleted)
    }

    async fn purge_status(&self, status: JobStatus) -> Result<u64> {
        if status == JobStatus::Running {
            return Err(Error::InvalidArgument(
                "running jobs cannot be purged: cancel them".into(),
            ));
        }
        let now = self.inner.clock.now();
        let (removed, woken, events) = {
            let mut state = self.inner.state.lock();
            let ids: Vec<JobId> = state
                .jobs
                .values()
                .filter(|r| r.job.status == status)
                .map(|r| r.job.id)
                .collect();
            let mut woken = 0;
            for &id in &ids {
                if let Some(Ok((_, w))) = state.remove(id, now) {
                    woken += w;
                }
            }
            state.evict(now, &self.inner);
            (ids.len() as u64, woken, std::mem::take(&mut state.events))
        };
        self.wake(woken);
        self.send_all(events);
        Ok(removed)
    }

    async fn throughput(&self, minutes: usize) -> Result<Vec<Throughput>> {
        let now = self.inner.clock.now();
        let state = self.inner.state.lock();
        let known = state
            .minutes
            .iter()
            .filter_map(|&(minute, processed, failed)| {
                DateTime::from_timestamp(minute * 60, 0)
                    .map(|at| Throughput::new(at, processed, failed))
            });
        Ok(Throughput::series(now, minutes, known))
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let now = Utc::now();
        let mut workers = self.inner.workers.lock();
        workers.retain(|_, (_, lapses)| *lapses > now);
        let mut alive: Vec<WorkerInfo> = workers.values().map(|(info, _)| info.clone()).collect();
        alive.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(alive)
    }

    async fn cancel(&self, id: JobId) -> Result<CancelOutcome> {
        let now = self.inner.clock.now();
        let mut woken = 0;
        let mut event = None;
        let mut events = Vec::new();
        let outcome = {
            let mut guard = self.inner.state.lock();
            let state = &mut *guard;
            let Some(mut record) = state.jobs.remove(&id) else {
                return Ok(CancelOutcome::NotFound);
            };
            let outcome = match record.job.status {
                JobStatus::Pending | JobStatus::Retrying => {
                    woken += state.unplace(&mut record);
                    CancelOutcome::Cancelled
                }
                JobStatus::Running => {
                    woken += state.stopped(record.job.concurrency.as_deref(), record.queue);
                    CancelOutcome::CancelledRunning
                }
                done => {
                    state.jobs.insert(id, record);
                    return Ok(CancelOutcome::AlreadyFinished(done));
                }
            };
            state
                .counts
                .moved(Some(record.job.status), Some(JobStatus::Cancelled));
            record.job.status = JobStatus::Cancelled;
            record.job.completed_at = Some(now);
            record.token = state.token();
            if self.listening() {
                event = Some(JobEvent::of(&record.job, JobEventKind::Cancelled));
            }
            let step = record.job.step.clone();
            if let Some(step) = &step {
                let resolved = Resolved::of(&record.job, step);
                state.jobs.insert(id, record);
                woken += state.resolve(resolved, now);
                events = std::mem::take(&mut state.events);
            } else {
                state.jobs.insert(id, record);
            }
            state.finished(id, now, &self.inner);
            outcome
        };
        self.wake(woken);
        if let Some(event) = event {
            self.send(event);
        }
        self.send_all(events);
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
            if let Some(step) = &record.job.step {
                if let Some((status, _)) = state.workflows.records.get_mut(&step.workflow) {
                    status.count_retried(was);
                }
            }
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
        let mut guard = self.inner.state.lock();
        let state = &mut *guard;
        let removed = state.jobs.len() as u64;
        // Keep the token counter (leases handed out before stay stale) and
        // the named queues with their pauses.
        state.jobs.clear();
        state.delayed.clear();
        state.finished.clear();
        state.counts = StatusCounts::default();
        state.scheduled = 0;
        state.flow = Flow::default();
        state.workflows = Workflows::default();
        for queue in &mut state.queues {
            queue.clear();
        }
        Ok(removed)
    }

    async fn pause_queue(&self, queue: &str) -> Result<bool> {
        check_queue_name(queue)?;
        let mut state = self.inner.state.lock();
        let i = state.queue_for(&Cow::Owned(queue.to_owned()));
        let paused = &mut state.queues[i].paused;
        Ok(!std::mem::replace(paused, true))
    }

    async fn resume_queue(&self, queue: &str) -> Result<bool> {
        check_queue_name(queue)?;
        let resumed = {
            let mut state = self.inner.state.lock();
            match state.queue_of(queue) {
                Some(i) => std::mem::replace(&mut state.queues[i].paused, false),
                None => false,
            }
        };
        if resumed {
            self.wake(64);
        }
        Ok(resumed)
    }

    async fn queues(&self) -> Result<Vec<QueueInfo>> {
        let state = self.inner.state.lock();
        let mut queues: Vec<QueueInfo> = state
            .queues
            .iter()
            .filter(|q| q.used || q.paused)
            .map(|q| QueueInfo::new(q.name.as_ref(), q.paused, q.ready_count))
            .collect();
        queues.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(queues)
    }

    async fn workflow(&self, id: WorkflowId) -> Result<Option<WorkflowStatus>> {
        let state = self.inner.state.lock();
        let Some((status, members)) = state.workflows.records.get(&id) else {
            return Ok(None);
        };
        let mut status = status.clone();
        status.steps = members
            .iter()
            .filter_map(|m| {
                let record = state.jobs.get(m)?;
                let waiting = match record.place {
                    Place::Blocked => state.workflows.deps.get(m).map_or(0, |d| d.waiting),
                    _ => 0,
                };
                WorkflowStep::of(&record.job, waiting)
            })
            .collect();
        Ok(Some(status))
    }

    fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::flow::Unique;
    use crate::result::JobResult;

    const LEASE: Duration = Duration::from_secs(30);

    fn take(max: usize) -> [Take; 1] {
        [Take::new(DEFAULT_QUEUE, max)]
    }

    async fn complete(queue: &MemoryJobQueue, lease: Lease) {
        let done = Outcome::Completed(JobResult::success(json!(null)));
        assert!(queue.finish(lease, done, None).await.unwrap());
    }

    /// The bookkeeping of limits and unique keys is dropped when nothing
    /// needs it any more, so it does not grow with the keys ever used.
    #[tokio::test]
    async fn flow_state_does_not_pile_up() {
        tokio::time::pause();
        let queue = MemoryJobQueue::builder()
            .max_finished(2)
            .clock(Clock::tokio())
            .build();
        for n in 0..5 {
            let job = Job::new("ok", json!({ "n": n }))
                .concurrency_by(1, format!("c{n}"))
                .unique(Unique::new(format!("u{n}")));
            queue.push(job).await.unwrap();
        }
        let held = Job::new("ok", json!({})).concurrency_by(1, "c0");
        let held = queue.enqueue(held).await.unwrap();
        // The jobs were created by the system clock: let the paused one
        // pass their creation.
        tokio::time::advance(Duration::from_millis(10)).await;
        let got = queue.reserve("w", &take(10), LEASE).await.unwrap();
        assert_eq!(got.len(), 5);
        assert_eq!(
            queue.inner.state.lock().flow.concurrency["c0"].held.len(),
            1
        );
        // A cancelled held job leaves its key's held list.
        queue.cancel(held).await.unwrap();
        assert!(
            queue.inner.state.lock().flow.concurrency["c0"]
                .held
                .is_empty()
        );
        for r in got {
            complete(&queue, r.lease).await;
        }
        // Idle keys are kept for a while (the next job of the key finds
        // it), then forgotten by a later reserve.
        assert_eq!(queue.inner.state.lock().flow.concurrency.len(), 5);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            queue
                .reserve("w", &take(10), LEASE)
                .await
                .unwrap()
                .is_empty()
        );
        {
            let state = queue.inner.state.lock();
            assert!(state.flow.concurrency.is_empty(), "idle keys are dropped");
            // Retention kept two finished jobs: only their locks are left.
            assert_eq!(state.jobs.len(), 2);
            assert_eq!(state.flow.uniques.len(), 2);
        }
        queue.purge().await.unwrap();
        let state = queue.inner.state.lock();
        assert!(state.flow.uniques.is_empty());
        assert_eq!(state.queues[0].ready_count, 0);
    }

    /// Rate keys with nothing held and no start in their window are swept.
    #[tokio::test]
    async fn idle_rate_keys_are_swept() {
        tokio::time::pause();
        let queue = MemoryJobQueue::builder().clock(Clock::tokio()).build();
        for n in 0..3 {
            let job = Job::new("ok", json!({}))
                .rate_limit_by(Rate::new(1, Duration::from_millis(100)), format!("r{n}"));
            queue.push(job).await.unwrap();
        }
        // The jobs were created by the system clock: let the paused one
        // pass their creation.
        tokio::time::advance(Duration::from_millis(10)).await;
        let got = queue.reserve("w", &take(10), LEASE).await.unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(queue.inner.state.lock().flow.rates.len(), 3);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            queue
                .reserve("w", &take(10), LEASE)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(queue.inner.state.lock().flow.rates.is_empty());
    }

    /// While every waiting job is held, a waiting worker sleeps until the
    /// rate window opens, not until its timeout, nor at once.
    #[tokio::test]
    async fn wait_sleeps_until_the_window_opens() {
        tokio::time::pause();
        let queue = MemoryJobQueue::builder().clock(Clock::tokio()).build();
        for _ in 0..2 {
            let job = Job::new("ok", json!({}))
                .rate_limit_by(Rate::new(1, Duration::from_millis(500)), "r");
            queue.push(job).await.unwrap();
        }
        tokio::time::advance(Duration::from_millis(10)).await;
        assert_eq!(queue.reserve("w", &take(10), LEASE).await.unwrap().len(), 1);
        // Use up the wake-up the pushes left.
        queue.wait_for_jobs(Duration::from_millis(1)).await;
        let start = tokio::time::Instant::now();
        queue.wait_for_jobs(Duration::from_secs(60)).await;
        let slept = start.elapsed();
        assert!(
            slept >= Duration::from_millis(499) && slept < Duration::from_millis(600),
            "slept {slept:?}"
        );
        assert_eq!(queue.reserve("w", &take(10), LEASE).await.unwrap().len(), 1);
    }
}
