//! The worker's run: the checks before it starts (shared state, declared
//! periodic tasks, the processor's startup), then its loops (taking jobs,
//! running each one, heartbeats) and the shutdown.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Inner, StopReport, WorkerState, scheduling};
use crate::clock::Clock;
use crate::context::{HasProgress, JobContext, Progress};
use crate::error::{Error, Result};
use crate::job::{Job, JobId};
use crate::processor::DynProcessor;
use crate::queue::{Lease, Outcome, Reservation, Take, WorkerInfo};
use crate::result::{JobError, JobResult};
use crate::telemetry::{Finish, JobMetrics};

/// Why a running job's future was dropped before it finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum StopReason {
    None = 0,
    /// Cancelled by a user: the queue already marked it `Cancelled`.
    Cancelled = 1,
    /// The worker is shutting down: the job is handed back.
    Shutdown = 2,
    /// The queue no longer holds it for us (lease lost or cancelled
    /// elsewhere): nothing to report.
    Revoked = 3,
}

/// A running job, as the worker tracks it.
pub(super) struct Control {
    pub(super) lease: Lease,
    token: CancellationToken,
    reason: AtomicU8,
    /// What the job reported with `JobContext::progress`.
    progress: Progress,
    /// Set when someone waits for the job to stop here (`stopped`).
    awaited: AtomicBool,
    /// Notified when the job is no longer tracked as running, if awaited.
    stopped: Notify,
}

impl HasProgress for Control {
    fn progress(&self) -> &Progress {
        &self.progress
    }
}

impl Control {
    fn stop(&self, reason: StopReason) {
        // The first reason wins.
        let _ = self.reason.compare_exchange(
            StopReason::None as u8,
            reason as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.token.cancel();
    }

    fn reason(&self) -> StopReason {
        match self.reason.load(Ordering::Acquire) {
            1 => StopReason::Cancelled,
            2 => StopReason::Shutdown,
            3 => StopReason::Revoked,
            _ => StopReason::None,
        }
    }
}

/// Stops one running job of this worker, if it runs here, and waits until
/// it stopped (its future dropped, its stop counted).
pub(super) async fn revoke(inner: &Inner, id: JobId, reason: StopReason) {
    let Some(control) = inner.running.lock().get(&id).cloned() else {
        return;
    };
    control.awaited.store(true, Ordering::SeqCst);
    let stopped = control.stopped.notified();
    tokio::pin!(stopped);
    stopped.as_mut().enable();
    control.stop(reason);
    let tracked = inner
        .running
        .lock()
        .get(&id)
        .is_some_and(|c| Arc::ptr_eq(c, &control));
    if tracked {
        stopped.await;
    }
}

/// The job no longer runs here: it leaves `running`, and whoever waits in
/// [`revoke`] learns so.
fn untrack(inner: &Inner, id: JobId, control: &Control) {
    inner.running.lock().remove(&id);
    if control.awaited.load(Ordering::SeqCst) {
        control.stopped.notify_waiters();
    }
}

pub(super) async fn run(inner: &Arc<Inner>) -> Result<()> {
    let mut started = false;
    inner.phase.send_if_modified(|phase| match phase {
        WorkerState::Idle => {
            *phase = WorkerState::Running;
            started = true;
            true
        }
        _ => false,
    });
    if !started {
        return Err(match *inner.phase.borrow() {
            WorkerState::Running => Error::AlreadyRunning,
            _ => Error::Stopped,
        });
    }

    if let Err(e) = inner.processor.check_data(&inner.data) {
        tracing::error!(worker = %inner.id, error = %e, "worker refuses to start");
        inner.phase.send_replace(WorkerState::Stopped);
        return Err(e);
    }
    if let Err(e) = scheduling::add_declared_tasks(&inner.scheduler, &*inner.processor) {
        tracing::error!(worker = %inner.id, error = %e, "worker refuses to start");
        inner.phase.send_replace(WorkerState::Stopped);
        return Err(e);
    }
    if let Err(e) = inner.processor.startup().await {
        tracing::error!(worker = %inner.id, error = %e, "processor startup failed");
        inner.phase.send_replace(WorkerState::Stopped);
        return Err(Error::InvalidArgument(format!(
            "the processor's startup failed: {e}"
        )));
    }
    tracing::info!(worker = %inner.id, max_concurrent_jobs = inner.config.max_concurrent_jobs, "worker started");
    crate::telemetry::describe_metrics();

    let heartbeat_stop = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat_loop(Arc::clone(inner), heartbeat_stop.clone()));
    let gauges = inner
        .config
        .metrics_interval
        .map(|every| tokio::spawn(gauge_loop(Arc::clone(inner), every, heartbeat_stop.clone())));

    let scheduler = scheduling::spawn(
        &inner.scheduler,
        Arc::clone(&inner.queue),
        inner.stop.clone(),
        &inner.id,
    );

    take_jobs(inner).await;
    if let Some(scheduler) = scheduler {
        let _ = scheduler.await;
    }

    let report = drain(inner).await;
    heartbeat_stop.cancel();
    let _ = heartbeat.await;
    if let Some(gauges) = gauges {
        let _ = gauges.await;
    }
    inner.processor.shutdown().await;
    tracing::info!(worker = %inner.id, abandoned = report.abandoned.len(), "worker stopped");
    *inner.report.lock() = Some(report);
    inner.phase.send_replace(WorkerState::Stopped);
    Ok(())
}

/// The main loop: wait for a free slot, reserve jobs, spawn them.
async fn take_jobs(inner: &Arc<Inner>) {
    if inner.multi {
        take_jobs_multi(inner).await
    } else {
        take_jobs_single(inner).await
    }
}

/// The main loop of a worker with one queue and no cap (the common case):
/// wait for a free slot, take every free slot (up to a batch), reserve.
async fn take_jobs_single(inner: &Arc<Inner>) {
    let lane = &inner.lanes[0];
    let mut backoff = Backoff::new();
    loop {
        let mut permits = tokio::select! {
            biased;
            _ = inner.stop.cancelled() => return,
            permit = Arc::clone(&lane.slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let extra = lane
            .slots
            .available_permits()
            .min(inner.config.batch_size - 1);
        if extra > 0 {
            if let Ok(more) = Arc::clone(&lane.slots).try_acquire_many_owned(extra as u32) {
                permits.merge(more);
            }
        }

        let takes = [lane.take(permits.num_permits())];
        let Some(reserved) = reserve_unless_stopping(inner, &takes).await else {
            return;
        };
        match reserved {
            Ok(jobs) if jobs.is_empty() => {
                lane.backlog.store(false, Ordering::Relaxed);
                drop(permits);
                backoff.reset(inner);
                tokio::select! {
                    biased;
                    _ = inner.stop.cancelled() => return,
                    _ = inner.queue.wait_for_jobs(inner.config.polling_interval) => {}
                }
            }
            Ok(jobs) => {
                backoff.reset(inner);
                lane.backlog
                    .store(jobs.len() == permits.num_permits(), Ordering::Relaxed);
                for reservation in jobs {
                    let permit = permits.split(1).expect("one permit per reserved job");
                    let slot = Slot {
                        lane: 0,
                        _permit: permit,
                        _cap: None,
                    };
                    spawn_job(inner, reservation, slot);
                }
            }
            Err(e) => {
                lane.backlog.store(false, Ordering::Relaxed);
                drop(permits);
                let delay = backoff.failed(inner, &e);
                tokio::select! {
                    biased;
                    _ = inner.stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// The longest an idle worker naps between looks at a backend whose
/// `wait_for_jobs` keeps returning at once while it can reserve nothing.
const MAX_IDLE_NAP: Duration = Duration::from_millis(50);

/// How many times in a row `wait_for_jobs` may return at once with nothing
/// to reserve before the worker naps between looks.
const QUICK_WAITS: u32 = 3;

/// The main loop of a worker with named queues or a cap: reserve from every
/// queue with free slots, in the configured order; under a cap that binds,
/// one queue after the other so earlier queues get the free slots first.
async fn take_jobs_multi(inner: &Arc<Inner>) {
    let mut backoff = Backoff::new();
    // Waits for jobs that returned at once, and nothing could be reserved
    // after: a backend whose `wait_for_jobs` says jobs are ready where this
    // worker has no free slot (it knows no queues) would spin the loop, so
    // after a few the worker naps before it waits again.
    let mut quick = 0;
    let mut nap = Duration::from_millis(1);
    loop {
        // Only this loop takes free permits: they can only grow meanwhile.
        let mut budget = inner.config.batch_size;
        let cap_free = inner
            .cap
            .as_ref()
            .map_or(usize::MAX, |cap| cap.available_permits());
        let mut plan: Vec<(usize, usize)> = Vec::with_capacity(inner.lanes.len());
        let mut partial = false;
        for (i, lane) in inner.lanes.iter().enumerate() {
            let free = lane.slots.available_permits().min(budget);
            if free == 0 {
                partial = true;
                continue;
            }
            budget -= free;
            plan.push((i, free));
        }
        if plan.is_empty() || cap_free == 0 {
            tokio::select! {
                biased;
                _ = inner.stop.cancelled() => return,
                _ = inner.freed.notified() => {}
            }
            quick = 0;
            continue;
        }
        let wanted: usize = plan.iter().map(|&(_, n)| n).sum();
        let reserved = if wanted <= cap_free {
            reserve_lanes(inner, &plan).await
        } else {
            // Strict order: each queue in turn gets what the cap has left.
            partial = true;
            let mut left = cap_free;
            let mut got = Some(Ok(0));
            for &(i, free) in &plan {
                if left == 0 {
                    break;
                }
                match reserve_lanes(inner, &[(i, free.min(left))]).await {
                    Some(Ok(n)) => {
                        left -= n;
                        got = Some(Ok(cap_free - left));
                    }
                    other => {
                        got = other;
                        break;
                    }
                }
            }
            got
        };
        match reserved {
            None => return,
            Some(Ok(0)) => {
                backoff.reset(inner);
                if quick >= QUICK_WAITS {
                    tokio::select! {
                        biased;
                        _ = inner.stop.cancelled() => return,
                        _ = inner.freed.notified() => {
                            quick = 0;
                            continue;
                        }
                        _ = tokio::time::sleep(nap) => nap = (nap * 2).min(MAX_IDLE_NAP),
                    }
                }
                let began = tokio::time::Instant::now();
                tokio::select! {
                    biased;
                    _ = inner.stop.cancelled() => return,
                    _ = inner.freed.notified() => quick = 0,
                    _ = inner.queue.wait_for_jobs(inner.config.polling_interval) => {
                        if partial && began.elapsed() < Duration::from_millis(1) {
                            quick += 1;
                        } else {
                            quick = 0;
                            nap = Duration::from_millis(1);
                        }
                    }
                }
            }
            Some(Ok(_)) => {
                backoff.reset(inner);
                quick = 0;
            }
            Some(Err(e)) => {
                quick = 0;
                let delay = backoff.failed(inner, &e);
                tokio::select! {
                    biased;
                    _ = inner.stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Free slots taken from one lane for a reserve.
struct Grant {
    lane: usize,
    asked: usize,
    got: usize,
    permits: OwnedSemaphorePermit,
    cap: Option<OwnedSemaphorePermit>,
}

/// Takes `n` free slots of each planned lane `(lane, n)`, reserves from
/// those queues in one call and spawns what came. Returns how many jobs
/// were spawned, or `None` if the worker is stopping. Unused slots go back.
async fn reserve_lanes(inner: &Arc<Inner>, plan: &[(usize, usize)]) -> Option<Result<usize>> {
    let mut grants = Vec::with_capacity(plan.len());
    let mut takes = Vec::with_capacity(plan.len());
    for &(i, n) in plan {
        let lane = &inner.lanes[i];
        let Ok(permits) = Arc::clone(&lane.slots).try_acquire_many_owned(n as u32) else {
            continue;
        };
        let cap = match &inner.cap {
            Some(cap) => match Arc::clone(cap).try_acquire_many_owned(n as u32) {
                Ok(cap) => Some(cap),
                Err(_) => continue,
            },
            None => None,
        };
        grants.push(Grant {
            lane: i,
            asked: n,
            got: 0,
            permits,
            cap,
        });
        takes.push(lane.take(n));
    }
    if takes.is_empty() {
        return Some(Ok(0));
    }
    let reserved = reserve_unless_stopping(inner, &takes).await?;
    let jobs = match reserved {
        Ok(jobs) => jobs,
        Err(e) => {
            for grant in &grants {
                inner.lanes[grant.lane]
                    .backlog
                    .store(false, Ordering::Relaxed);
            }
            return Some(Err(e));
        }
    };
    let mut surplus = Vec::new();
    let mut spawned = 0;
    for reservation in jobs {
        // Into its queue's slots; a backend that returned a job of another
        // queue still gets it run, in any free slot asked for.
        let of_queue = |g: &Grant| *inner.lanes[g.lane].take.queue == *reservation.job.queue;
        let at = grants
            .iter()
            .position(|g| g.got < g.asked && of_queue(g))
            .or_else(|| grants.iter().position(|g| g.got < g.asked));
        let Some(at) = at else {
            surplus.push(reservation.lease);
            continue;
        };
        let grant = &mut grants[at];
        grant.got += 1;
        let slot = Slot {
            lane: grant.lane,
            _permit: grant.permits.split(1).expect("one permit per reserved job"),
            _cap: grant
                .cap
                .as_mut()
                .map(|cap| cap.split(1).expect("one cap permit per reserved job")),
        };
        spawned += 1;
        spawn_job(inner, reservation, slot);
    }
    for grant in &grants {
        inner.lanes[grant.lane]
            .backlog
            .store(grant.got == grant.asked, Ordering::Relaxed);
    }
    if !surplus.is_empty() {
        tracing::warn!(worker = %inner.id, surplus = surplus.len(), "the queue returned more jobs than asked for; handing them back");
        if let Err(e) = inner.queue.release(&surplus).await {
            tracing::warn!(worker = %inner.id, error = %e, "could not hand back the surplus jobs");
        }
    }
    Some(Ok(spawned))
}

/// Exponential backoff for an unreachable queue, and the health flag.
struct Backoff {
    delay: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            delay: Duration::from_millis(100),
        }
    }

    fn reset(&mut self, inner: &Inner) {
        self.delay = Duration::from_millis(100);
        if !inner.healthy.swap(true, Ordering::Relaxed) {
            tracing::info!(worker = %inner.id, "queue reachable again");
        }
    }

    fn failed(&mut self, inner: &Inner, error: &Error) -> Duration {
        if inner.healthy.swap(false, Ordering::Relaxed) {
            tracing::error!(worker = %inner.id, %error, "queue unreachable; retrying");
        } else {
            tracing::debug!(worker = %inner.id, %error, "queue still unreachable");
        }
        *inner.last_error.lock() = Some(error.to_string());
        let delay = self.delay;
        self.delay = (self.delay * 2).min(Duration::from_secs(10));
        delay
    }
}

/// The slot a running job holds: a permit of its lane (and of the cap).
/// A slot that refills itself keeps them for its next job.
pub(super) struct Slot {
    lane: usize,
    _permit: OwnedSemaphorePermit,
    _cap: Option<OwnedSemaphorePermit>,
}

fn spawn_job(inner: &Arc<Inner>, reservation: Reservation, slot: Slot) {
    // Tracked before the task is spawned: a `stop()` that comes before the
    // task first runs must still find the job, to hand it back.
    let control = track(inner, &reservation);
    let tasks = inner.tasks.clone();
    let inner = Arc::clone(inner);
    tasks.spawn(async move {
        // The slot's jobs are those of the reserve's batch, kept where the
        // reserve put them: a reservation is large, and moving it out of
        // the batch and through the futures' returns would copy it each
        // time. `ahead` holds the controls of the batch's later jobs (a
        // slot of a networked queue may reserve a few quick jobs at once).
        let (mut batch, mut control) = (vec![reservation], control);
        let mut ahead: VecDeque<Arc<Control>> = VecDeque::new();
        let mut at = 0;
        // Outcomes on their way to a networked queue: the slot goes on with
        // its next job while they are, a few at most.
        let mut reports = FuturesUnordered::new();
        // Whether the queue answers a finish only after a wait (a networked
        // one): learned from the first finish.
        let mut remote = false;
        loop {
            let reservation = &batch[at];
            let span = tracing::info_span!(
                "job",
                id = %reservation.job.id,
                name = %reservation.job.name,
                attempt = reservation.job.attempts,
            );
            #[cfg(feature = "opentelemetry")]
            crate::telemetry::otel::set_parent(&span, &reservation.job);
            let began = remote.then(tokio::time::Instant::now);
            let report = beside(
                &mut reports,
                run_job(&inner, &reservation.job, &control).instrument(span),
            )
            .await;
            let quick = began.is_some_and(|b| b.elapsed() < QUICK_JOB);
            if let Some(Report {
                lease,
                outcome,
                next,
            }) = report
            {
                if remote {
                    while reports.len() >= MAX_REPORTS {
                        reports.next().await;
                    }
                    reports.push(finish(&inner, lease, outcome, next));
                } else {
                    let mut polls = 0;
                    let mut finishing = std::pin::pin!(finish(&inner, lease, outcome, next));
                    std::future::poll_fn(|cx| {
                        polls += 1;
                        finishing.as_mut().poll(cx)
                    })
                    .await;
                    remote = polls > 1;
                }
            }
            // A backlog of instant jobs on a queue that answers at once
            // would keep this task running for good: spend a unit of its
            // runtime budget per job, so it yields now and then and the
            // thread's other tasks (scheduler, heartbeats, the app's) run.
            tokio::task::consume_budget().await;
            // `run_job` took the job out of `running` on every path.
            at += 1;
            if at < batch.len() {
                let next = ahead.pop_front().expect("a control per reserved job");
                if inner.stop.is_cancelled() {
                    // Not started: handed back at once.
                    hand_back(&inner, &batch[at..], next, ahead.drain(..)).await;
                    break;
                }
                control = next;
                continue;
            }
            let want = if remote && quick { RESERVE_AHEAD } else { 1 };
            match beside(&mut reports, next_in_slot(&inner, slot.lane, want)).await {
                Some(next) => {
                    // Tracked at once, with no await since the reserve.
                    control = retrack(&inner, control, &next[0]);
                    ahead.extend(next[1..].iter().map(|r| track(&inner, r)));
                    batch = next;
                    at = 0;
                }
                None => break,
            }
        }
        // The outcomes reach the queue before the slot is free again (and
        // before the worker's shutdown is over).
        while reports.next().await.is_some() {}
        drop(slot);
        if inner.multi {
            inner.freed.notify_one();
        }
    });
}

/// The most outcomes of one slot on their way to the queue at once.
const MAX_REPORTS: usize = 4;

/// A job shorter than this lets its slot reserve [`RESERVE_AHEAD`] jobs
/// at once from a networked queue (a round trip saved on all but one).
const QUICK_JOB: Duration = Duration::from_millis(1);

/// How many jobs a slot of quick jobs reserves at once.
const RESERVE_AHEAD: usize = 4;

/// An attempt's outcome, for the queue.
struct Report {
    lease: Lease,
    outcome: Outcome,
    next: Option<Box<Job>>,
}

/// Runs `work`, and meanwhile the outcomes on their way to the queue.
async fn beside<R: Future, F: Future>(reports: &mut FuturesUnordered<R>, work: F) -> F::Output {
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(|cx| {
        while let Poll::Ready(Some(_)) = reports.poll_next_unpin(cx) {}
        work.as_mut().poll(cx)
    })
    .await
}

/// Hands back reserved jobs a slot did not start (the worker is stopping).
async fn hand_back(
    inner: &Inner,
    jobs: &[Reservation],
    first: Arc<Control>,
    rest: impl Iterator<Item = Arc<Control>>,
) {
    for (reservation, control) in jobs.iter().zip(std::iter::once(first).chain(rest)) {
        untrack(inner, reservation.job.id, &control);
    }
    let leases: Vec<Lease> = jobs.iter().map(|r| r.lease).collect();
    if let Err(e) = inner.queue.release(&leases).await {
        tracing::warn!(worker = %inner.id, error = %e, "could not hand back reserved jobs; they run again when their leases expire");
    }
}

/// Records a reserved job as running in this worker (for heartbeats,
/// cancellation and the hand-back at shutdown).
fn track(inner: &Inner, reservation: &Reservation) -> Arc<Control> {
    let control = Arc::new(Control {
        lease: reservation.lease,
        token: CancellationToken::new(),
        reason: AtomicU8::new(StopReason::None as u8),
        progress: Progress::new(),
        awaited: AtomicBool::new(false),
        stopped: Notify::new(),
    });
    inner
        .running
        .lock()
        .insert(reservation.job.id, Arc::clone(&control));
    control
}

/// Tracks the next job of a slot, reusing the finished job's `Control`
/// when nothing else holds it any more (no context kept by the handler, no
/// `revoke` waiting) and it was not cancelled: a slot that refills itself
/// then allocates no control, token or progress cell per job.
fn retrack(inner: &Inner, mut control: Arc<Control>, reservation: &Reservation) -> Arc<Control> {
    let Some(reused) = Arc::get_mut(&mut control).filter(|c| !c.token.is_cancelled()) else {
        return track(inner, reservation);
    };
    reused.lease = reservation.lease;
    *reused.reason.get_mut() = StopReason::None as u8;
    *reused.awaited.get_mut() = false;
    reused.progress = Progress::new();
    inner
        .running
        .lock()
        .insert(reservation.job.id, Arc::clone(&control));
    control
}

/// While its queue has a backlog, a slot whose job finished takes the next
/// job of that queue itself (up to `want` of them, run one after the
/// other): no hand-off to the main loop and no new task per job. Any other
/// case (no backlog, stopping, an error) hands the slot back. Under a
/// worker-wide cap only the first queue's slots do so: the main loop hands
/// the others out in the queues' order.
///
/// Returns the reserve's batch as it came.
async fn next_in_slot(inner: &Inner, lane: usize, want: usize) -> Option<Vec<Reservation>> {
    let slots = &inner.lanes[lane];
    if !slots.backlog.load(Ordering::Relaxed)
        || inner.stop.is_cancelled()
        || (lane > 0 && inner.cap.is_some())
    {
        return None;
    }
    let wider;
    let takes = if want > 1 {
        wider = [slots.take(want)];
        &wider[..]
    } else {
        std::slice::from_ref(&slots.take)
    };
    let reserved = reserve_unless_stopping(inner, takes).await?;
    match reserved {
        Ok(mut jobs) if !jobs.is_empty() => {
            // More than asked for breaks the protocol: hand the rest back.
            if jobs.len() > want {
                let surplus: Vec<Lease> = jobs.drain(want..).map(|r| r.lease).collect();
                let _ = inner.queue.release(&surplus).await;
            }
            Some(jobs)
        }
        _ => {
            slots.backlog.store(false, Ordering::Relaxed);
            None
        }
    }
}

/// Reserves jobs, unless the worker is stopping: then `None`, and nothing
/// stays reserved. A reserve already on its way when the stop comes may
/// have taken jobs at the queue: its answer is awaited (up to the shutdown
/// timeout) and the jobs handed back at once, rather than left running
/// there until their leases expire.
async fn reserve_unless_stopping(
    inner: &Inner,
    takes: &[Take],
) -> Option<Result<Vec<Reservation>>> {
    // Stopping already: send nothing (past this point a reserve that was
    // never polled would be sent below only to be handed back).
    if inner.stop.is_cancelled() {
        return None;
    }
    let mut reserve = std::pin::pin!(inner.queue.reserve(&inner.id, takes, inner.config.lease));
    if let Some(reserved) = unless_cancelled(&inner.stop, reserve.as_mut()).await {
        return Some(reserved);
    }
    let answer = tokio::time::timeout(inner.config.shutdown_timeout, reserve).await;
    if let Ok(Ok(jobs)) = answer {
        if !jobs.is_empty() {
            let leases: Vec<Lease> = jobs.iter().map(|r| r.lease).collect();
            if let Err(e) = inner.queue.release(&leases).await {
                tracing::warn!(worker = %inner.id, error = %e, "could not hand back jobs reserved as the worker stopped; they run again when their leases expire");
            }
        }
    }
    None
}

/// `work`'s output, or `None` if `token` is cancelled first: a biased
/// `select!` on `token.cancelled()` and `work`, but the wait on the token
/// is only registered when `work` has to wait. Work that is ready when
/// first polled (a reserve from memory, a handler with nothing to await)
/// costs a look at the token's flag, not a waiter queued on it and taken
/// off again.
async fn unless_cancelled<F: Future>(token: &CancellationToken, work: F) -> Option<F::Output> {
    let mut work = std::pin::pin!(work);
    let mut cancelled = std::pin::pin!(token.cancelled());
    std::future::poll_fn(|cx| {
        if token.is_cancelled() {
            return Poll::Ready(None);
        }
        if let Poll::Ready(out) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        // Registered now; a cancel from here on wakes the task.
        match cancelled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Runs one reserved job; returns the outcome to report (none if it
/// stopped early: cancelled, handed back, revoked). The job is borrowed, not
/// moved: the future is made and wrapped (in its span) before it is first
/// polled, and a future that holds only references is cheap to move.
async fn run_job(inner: &Inner, job: &Job, control: &Arc<Control>) -> Option<Report> {
    let now = inner.config.clock.now();
    let lease = control.lease;
    let metrics = crate::telemetry::job_metrics(job);

    let outcome = if job.expires_at.is_some_and(|at| at <= now) {
        tracing::info!("job expired before it could run");
        Outcome::Expired
    } else {
        metrics.started(crate::telemetry::waited(job, now));
        let mut cx = JobContext::with_progress(
            job,
            Arc::clone(&inner.data),
            control.token.clone(),
            Arc::clone(control) as Arc<dyn HasProgress>,
        );
        if job.step.as_ref().is_some_and(|s| s.has_dependencies()) {
            match inner.queue.dependency_results(job.id).await {
                Ok(results) => cx = cx.with_results(results),
                Err(e) => {
                    // Tried again like any failed attempt.
                    let error = JobError::retryable(format!(
                        "could not load the results of the job's dependencies: {e}"
                    ));
                    let outcome = decide(inner.config.clock, job, JobResult::failure(error));
                    untrack(inner, job.id, control);
                    return Some(Report {
                        lease,
                        outcome,
                        next: None,
                    });
                }
            }
        }
        let timeout = job.timeout.or(inner.config.default_timeout);
        let attempt = execute(&*inner.processor, job, &cx, timeout);
        let running = async {
            tokio::select! {
                biased;
                attempt = attempt => attempt,
                never = write_progress(inner, control) => match never {},
            }
        };
        let finished = unless_cancelled(&control.token, running).await;
        let Some(attempt) = finished else {
            stopped_early(inner, job, control, &metrics).await;
            return None;
        };
        if let Some(took) = attempt.result.execution_time {
            metrics.ran(took);
        }
        // The latest progress, if the rate limit held it back: written while
        // the job is still running, before its outcome.
        if let Some(progress) = control.progress.take_unwritten() {
            send_progress(inner, control.lease, progress).await;
        }
        match attempt.ended {
            Ended::Returned => {}
            Ended::Panicked => count(&inner.stats.panicked),
            Ended::TimedOut => count(&inner.stats.timed_out),
        }
        decide(inner.config.clock, job, attempt.result)
    };

    metrics.finished(Finish::of(&outcome));
    // The queue sends the job's event once it recorded the outcome.
    match &outcome {
        Outcome::Completed(_) => count(&inner.stats.processed),
        Outcome::Retry { result, at } => {
            count(&inner.stats.retried);
            tracing::warn!(error = result.error.as_deref().unwrap_or(""), retry_at = %at, "job failed; will retry");
        }
        Outcome::Failed(result) => {
            count(&inner.stats.failed);
            tracing::error!(error = result.error.as_deref().unwrap_or(""), "job failed");
        }
        Outcome::Expired => count(&inner.stats.expired),
        Outcome::Cancelled => count(&inner.stats.cancelled),
        Outcome::Snoozed { at } => {
            count(&inner.stats.snoozed);
            tracing::info!(until = %at, "job snoozed");
        }
    }
    let next = next_run(job, &outcome, now).map(Box::new);
    // The attempt is over: it no longer counts as active, whatever the
    // queue says next.
    untrack(inner, job.id, control);
    Some(Report {
        lease,
        outcome,
        next,
    })
}

/// The next run of a recurring job whose attempt ended with `outcome`: due
/// after a final outcome, none after a retry or snooze (the same job runs
/// again).
pub(crate) fn next_run(
    job: &Job,
    outcome: &Outcome,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Job> {
    match outcome {
        Outcome::Completed(_) | Outcome::Failed(_) | Outcome::Expired => {
            job.next_occurrence(now).map(|mut next| {
                // Each run starts a trace of its own, not one trace forever.
                next.metadata.remove(crate::telemetry::TRACEPARENT);
                next.metadata.remove(crate::telemetry::TRACESTATE);
                next
            })
        }
        _ => None,
    }
}

/// Reports an outcome, retrying a few times if the queue is unreachable (the
/// lease keeps the job ours meanwhile; if it runs out, the job runs again).
async fn finish(inner: &Inner, lease: Lease, outcome: Outcome, next: Option<Box<Job>>) -> bool {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=5 {
        match inner
            .queue
            .finish(lease, outcome.clone(), next.clone())
            .await
        {
            Ok(true) => return true,
            Ok(false) => {
                tracing::info!("the job's lease was taken over; its outcome is discarded");
                return false;
            }
            Err(e) if attempt < 5 => {
                tracing::warn!(error = %e, "could not record the job's outcome; retrying");
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
            Err(e) => {
                tracing::error!(error = %e, "could not record the job's outcome; it will run again when its lease expires");
            }
        }
    }
    false
}

/// The job's future was dropped before it finished.
async fn stopped_early(inner: &Inner, job: &Job, control: &Control, metrics: &JobMetrics) {
    match control.reason() {
        StopReason::Cancelled => {
            count(&inner.stats.cancelled);
            metrics.finished(Finish::Cancelled);
            tracing::info!("job cancelled while running");
            untrack(inner, job.id, control);
        }
        StopReason::Shutdown => {
            // `drain` hands the lease back.
            tracing::info!("job abandoned at shutdown");
            untrack(inner, job.id, control);
        }
        StopReason::Revoked | StopReason::None => {
            untrack(inner, job.id, control);
            // Cancelled from another process, or the lease was lost.
            let status = inner
                .queue
                .get(job.id)
                .await
                .ok()
                .flatten()
                .map(|j| j.status);
            if status == Some(crate::job::JobStatus::Cancelled) {
                count(&inner.stats.cancelled);
                metrics.finished(Finish::Cancelled);
                tracing::info!("job cancelled while running");
            } else {
                tracing::info!("job stopped: the queue no longer holds it for this worker");
            }
        }
    }
}

/// The least time between two progress writes of one job.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// Writes a running job's progress to the queue as it reports it: the
/// latest value at once, then at most one write per [`PROGRESS_INTERVAL`]
/// (values reported meanwhile are coalesced). Runs beside the job and is
/// dropped with it, so nothing is written after the attempt ended.
async fn write_progress(inner: &Inner, control: &Control) -> std::convert::Infallible {
    loop {
        let progress = std::future::poll_fn(|cx| control.progress.poll_unwritten(cx)).await;
        send_progress(inner, control.lease, progress).await;
        tokio::time::sleep(PROGRESS_INTERVAL).await;
    }
}

async fn send_progress(inner: &Inner, lease: Lease, progress: serde_json::Value) {
    match inner.queue.progress(lease, progress).await {
        Ok(true) => {}
        Ok(false) => tracing::debug!("progress not recorded: the lease is no longer held"),
        Err(e) => tracing::debug!(error = %e, "could not record the job's progress"),
    }
}

/// How an attempt's future ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The handler returned a result.
    Returned,
    /// It panicked: the result is a retryable `Panic` failure.
    Panicked,
    /// It ran past its timeout: the result is a retryable `Timeout` failure.
    TimedOut,
}

/// One attempt, as [`execute`] ran it.
pub(crate) struct Attempt {
    /// The attempt's result, its `execution_time` set.
    pub(crate) result: JobResult,
    /// How it ended.
    pub(crate) ended: Ended,
}

/// Runs one attempt of `job` on `processor`, as every worker does: panics
/// caught and `timeout` enforced (each a retryable failure), the execution
/// time measured. Shared by the worker's run and `jobs::testing`.
pub(crate) async fn execute(
    processor: &dyn DynProcessor,
    job: &Job,
    cx: &JobContext,
    timeout: Option<Duration>,
) -> Attempt {
    let started = tokio::time::Instant::now();
    let attempt = AssertUnwindSafe(processor.process(job, cx)).catch_unwind();
    let (mut result, ended) = match with_timeout(timeout, attempt).await {
        Ok(Ok(result)) => (result, Ended::Returned),
        Ok(Err(panic)) => {
            let message = panic_message(&*panic);
            tracing::error!(panic = %message, "job panicked");
            let error = JobError::retryable(format!("job panicked: {message}")).with_type("Panic");
            (JobResult::failure(error), Ended::Panicked)
        }
        Err(limit) => {
            tracing::warn!(timeout = ?limit, "job timed out");
            let error =
                JobError::retryable(format!("job timed out after {limit:?}")).with_type("Timeout");
            (JobResult::failure(error), Ended::TimedOut)
        }
    };
    result.execution_time = Some(started.elapsed());
    Attempt { result, ended }
}

/// Turns an attempt's result into what happens next, on `clock`: a snooze,
/// a completion, a retry at its backoff, or a final failure.
pub(crate) fn decide(clock: Clock, job: &Job, result: JobResult) -> Outcome {
    if let Some(delay) = result.snooze {
        // Not a failure: the attempt does not count, whatever the retries.
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        let now = clock.now();
        let at = now.checked_add_signed(delay).unwrap_or(now);
        return Outcome::Snoozed { at };
    }
    if result.success {
        return Outcome::Completed(result);
    }
    if result.retryable && job.attempts <= job.max_retries {
        let delay = result
            .retry_after
            .unwrap_or_else(|| job.effective_backoff().delay(job.attempts));
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        let now = clock.now();
        let at = now.checked_add_signed(delay).unwrap_or(now);
        return Outcome::Retry { result, at };
    }
    Outcome::Failed(result)
}

async fn with_timeout<F: std::future::Future>(
    limit: Option<Duration>,
    future: F,
) -> Result<F::Output, Duration> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, future).await.map_err(|_| limit),
        None => Ok(future.await),
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

/// Renews leases of running jobs, stops jobs the queue no longer holds for
/// us, and recovers jobs of dead workers.
async fn heartbeat_loop(inner: Arc<Inner>, stop: CancellationToken) {
    let period = inner.config.lease / 3;
    let mut ticks: u64 = 0;
    let mut next = tokio::time::Instant::now() + period;
    // Operators see the worker while its reports keep coming: one each
    // period, each good for three.
    let mut me = WorkerInfo::new(inner.id.clone());
    me.concurrency = u32::try_from(inner.config.max_concurrent_jobs).unwrap_or(u32::MAX);
    me.queues = inner
        .lanes
        .iter()
        .map(|l| l.take.queue.to_string())
        .collect();
    report_worker(&inner, &mut me, period * 3).await;
    loop {
        // A revocation from elsewhere (a job cancelled in another process)
        // brings the lease check forward; the period stays.
        let early = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(next) => false,
            _ = inner.queue.revocations() => true,
        };
        if !early {
            next = tokio::time::Instant::now() + period;
            ticks += 1;
            report_worker(&inner, &mut me, period * 3).await;
        }
        let leases: Vec<Lease> = inner.running.lock().values().map(|c| c.lease).collect();
        if !leases.is_empty() {
            match inner.queue.heartbeat(&leases, inner.config.lease).await {
                Ok(revoked) => {
                    for lease in revoked {
                        let running = inner.running.lock();
                        if let Some(control) = running.get(&lease.job_id) {
                            if control.lease == lease {
                                control.stop(StopReason::Revoked);
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(worker = %inner.id, error = %e, "heartbeat failed"),
            }
        }
        if !early && ticks % 3 == 0 {
            match inner.queue.recover_expired().await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(worker = %inner.id, recovered = n, "recovered jobs of lost workers")
                }
                Err(e) => {
                    tracing::debug!(worker = %inner.id, error = %e, "recovering expired leases failed")
                }
            }
        }
    }
    if let Err(e) = inner.queue.remove_worker(&inner.id).await {
        tracing::debug!(worker = %inner.id, error = %e, "unregistering the worker failed");
    }
}

/// Tells the queue the worker is alive, for `ttl`, with the jobs it runs now.
async fn report_worker(inner: &Inner, me: &mut WorkerInfo, ttl: Duration) {
    me.running = u32::try_from(inner.running.lock().len()).unwrap_or(u32::MAX);
    me.last_seen = chrono::Utc::now();
    if let Err(e) = inner.queue.report_worker(me, ttl).await {
        tracing::debug!(worker = %inner.id, error = %e, "reporting the worker failed");
    }
}

/// Sets the gauges of the queue's depth from the backend every `every`
/// (and lets the next jobs resolve their metric handles afresh, so a
/// recorder installed after the worker started is used from then on).
async fn gauge_loop(inner: Arc<Inner>, every: Duration, stop: CancellationToken) {
    loop {
        let read = async {
            let counts = inner.queue.counts().await;
            let queues = inner.queue.queues().await;
            (counts, queues)
        };
        let (counts, queues) = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            read = read => read,
        };
        if let Err(e) = counts.as_ref().and(queues.as_ref()) {
            tracing::debug!(worker = %inner.id, error = %e, "could not read the queue's depth for the metrics");
        }
        crate::telemetry::record_depth(counts.as_ref().ok(), queues.as_deref().ok());
        crate::telemetry::refresh_handles();
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// After the main loop: wait for running jobs up to the shutdown timeout,
/// then hand back the rest.
async fn drain(inner: &Arc<Inner>) -> StopReport {
    inner.tasks.close();
    let timeout = inner.config.shutdown_timeout;
    if tokio::time::timeout(timeout, inner.tasks.wait())
        .await
        .is_ok()
    {
        return StopReport::default();
    }
    let abandoned: Vec<Arc<Control>> = inner.running.lock().values().cloned().collect();
    for control in &abandoned {
        control.stop(StopReason::Shutdown);
    }
    let leases: Vec<Lease> = abandoned.iter().map(|c| c.lease).collect();
    match inner.queue.release(&leases).await {
        Ok(n) => tracing::warn!(
            worker = %inner.id,
            abandoned = leases.len(),
            released = n,
            "shutdown timeout passed; unfinished jobs handed back to the queue"
        ),
        Err(e) => tracing::error!(
            worker = %inner.id,
            error = %e,
            "could not hand unfinished jobs back; they run again when their leases expire"
        ),
    }
    inner.tasks.wait().await;
    StopReport {
        abandoned: leases.into_iter().map(|l| l.job_id).collect(),
    }
}
