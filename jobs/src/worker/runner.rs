//! The worker's run: the checks before it starts (shared state, declared
//! periodic tasks, the processor's startup), then its loops (taking jobs,
//! running each one, heartbeats) and the shutdown.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Inner, JobEvent, JobEventKind, StopReport, WorkerState, scheduling};
use crate::context::JobContext;
use crate::error::{Error, Result};
use crate::job::{Job, JobId};
use crate::queue::Take;
use crate::queue::{Lease, Outcome, Reservation};
use crate::result::{JobError, JobResult};

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

/// Stops one running job of this worker, if it runs here.
pub(super) fn revoke(inner: &Inner, id: JobId, reason: StopReason) {
    if let Some(control) = inner.running.lock().get(&id) {
        control.stop(reason);
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

    let heartbeat_stop = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat_loop(Arc::clone(inner), heartbeat_stop.clone()));

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
    inner.processor.shutdown().await;
    tracing::info!(worker = %inner.id, abandoned = report.abandoned.len(), "worker stopped");
    *inner.report.lock() = Some(report);
    inner.phase.send_replace(WorkerState::Stopped);
    Ok(())
}

/// The main loop: wait for a free slot, reserve jobs, spawn them.
async fn take_jobs(inner: &Arc<Inner>) {
    let mut backoff = Backoff::new();
    loop {
        let mut permits = tokio::select! {
            biased;
            _ = inner.stop.cancelled() => return,
            permit = Arc::clone(&inner.slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let extra = inner
            .slots
            .available_permits()
            .min(inner.config.batch_size - 1);
        if extra > 0 {
            if let Ok(more) = Arc::clone(&inner.slots).try_acquire_many_owned(extra as u32) {
                permits.merge(more);
            }
        }

        let takes = [Take::new(crate::DEFAULT_QUEUE, permits.num_permits())];
        let reserved = tokio::select! {
            biased;
            _ = inner.stop.cancelled() => return,
            reserved = inner.queue.reserve(&inner.id, &takes, inner.config.lease) => reserved,
        };
        match reserved {
            Ok(jobs) if jobs.is_empty() => {
                inner.backlog.store(false, Ordering::Relaxed);
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
                inner
                    .backlog
                    .store(jobs.len() == permits.num_permits(), Ordering::Relaxed);
                for reservation in jobs {
                    let permit = permits.split(1).expect("one permit per reserved job");
                    spawn_job(inner, reservation, permit);
                }
            }
            Err(e) => {
                inner.backlog.store(false, Ordering::Relaxed);
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

fn spawn_job(inner: &Arc<Inner>, reservation: Reservation, permit: OwnedSemaphorePermit) {
    // Tracked before the task is spawned: a `stop()` that comes before the
    // task first runs must still find the job, to hand it back.
    let control = track(inner, &reservation);
    let tasks = inner.tasks.clone();
    let inner = Arc::clone(inner);
    tasks.spawn(async move {
        let (mut reservation, mut control) = (reservation, control);
        loop {
            let span = tracing::info_span!(
                "job",
                id = %reservation.job.id,
                name = %reservation.job.name,
                attempt = reservation.job.attempts,
            );
            run_job(&inner, reservation.job, &control)
                .instrument(span)
                .await;
            // `run_job` took the job out of `running` on every path.
            match next_in_slot(&inner).await {
                Some(next) => {
                    // Tracked at once, with no await since the reserve.
                    control = track(&inner, &next);
                    reservation = next;
                }
                None => break,
            }
        }
        drop(permit);
    });
}

/// Records a reserved job as running in this worker (for heartbeats,
/// cancellation and the hand-back at shutdown).
fn track(inner: &Inner, reservation: &Reservation) -> Arc<Control> {
    let control = Arc::new(Control {
        lease: reservation.lease,
        token: CancellationToken::new(),
        reason: AtomicU8::new(StopReason::None as u8),
    });
    inner
        .running
        .lock()
        .insert(reservation.job.id, Arc::clone(&control));
    control
}

/// While the queue has a backlog, a slot whose job finished takes the next
/// job itself: no hand-off to the main loop and no new task per job. Any
/// other case (no backlog, stopping, an error) hands the slot back.
async fn next_in_slot(inner: &Inner) -> Option<Reservation> {
    if !inner.backlog.load(Ordering::Relaxed) || inner.stop.is_cancelled() {
        return None;
    }
    let takes = [Take::new(crate::DEFAULT_QUEUE, 1)];
    let reserved = tokio::select! {
        biased;
        _ = inner.stop.cancelled() => return None,
        reserved = inner.queue.reserve(&inner.id, &takes, inner.config.lease) => reserved,
    };
    match reserved {
        Ok(mut jobs) if !jobs.is_empty() => jobs.pop(),
        _ => {
            inner.backlog.store(false, Ordering::Relaxed);
            None
        }
    }
}

fn emit(inner: &Inner, job: &Job, kind: JobEventKind) {
    if inner.events.receiver_count() > 0 {
        let _ = inner.events.send(JobEvent::of(job, kind));
    }
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

async fn run_job(inner: &Inner, job: Job, control: &Control) {
    let now = inner.config.clock.now();
    let lease = control.lease;
    emit(inner, &job, JobEventKind::Started);

    let outcome = if job.expires_at.is_some_and(|at| at <= now) {
        tracing::info!("job expired before it could run");
        Outcome::Expired
    } else {
        let cx = JobContext::new(&job, Arc::clone(&inner.data), control.token.clone());
        let timeout = job.timeout.or(inner.config.default_timeout);
        let started = tokio::time::Instant::now();
        let attempt = AssertUnwindSafe(inner.processor.process(&job, &cx)).catch_unwind();
        let finished = tokio::select! {
            biased;
            _ = control.token.cancelled() => None,
            result = with_timeout(timeout, attempt) => Some(result),
        };
        let Some(finished) = finished else {
            return stopped_early(inner, &job, control).await;
        };
        let mut result = match finished {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => {
                count(&inner.stats.panicked);
                let message = panic_message(&*panic);
                tracing::error!(panic = %message, "job panicked");
                JobResult::failure(
                    JobError::retryable(format!("job panicked: {message}")).with_type("Panic"),
                )
            }
            Err(limit) => {
                count(&inner.stats.timed_out);
                tracing::warn!(timeout = ?limit, "job timed out");
                JobResult::failure(
                    JobError::retryable(format!("job timed out after {limit:?}"))
                        .with_type("Timeout"),
                )
            }
        };
        result.execution_time = Some(started.elapsed());
        decide(inner, &job, result)
    };

    let event = match &outcome {
        Outcome::Completed(_) => {
            count(&inner.stats.processed);
            JobEventKind::Completed
        }
        Outcome::Retry { result, at } => {
            count(&inner.stats.retried);
            tracing::warn!(error = result.error.as_deref().unwrap_or(""), retry_at = %at, "job failed; will retry");
            JobEventKind::Retrying
        }
        Outcome::Failed(result) => {
            count(&inner.stats.failed);
            tracing::error!(error = result.error.as_deref().unwrap_or(""), "job failed");
            JobEventKind::Failed
        }
        Outcome::Expired => {
            count(&inner.stats.expired);
            JobEventKind::Expired
        }
        Outcome::Cancelled => {
            count(&inner.stats.cancelled);
            JobEventKind::Cancelled
        }
        Outcome::Snoozed { .. } => JobEventKind::Snoozed,
    };
    let next = match &outcome {
        Outcome::Completed(_) | Outcome::Failed(_) | Outcome::Expired => job.next_occurrence(now),
        _ => None,
    };
    // The attempt is over: it no longer counts as active, whatever the
    // queue says next.
    inner.running.lock().remove(&job.id);
    if finish(inner, lease, outcome, next).await {
        emit(inner, &job, event);
    }
}

/// Reports an outcome, retrying a few times if the queue is unreachable (the
/// lease keeps the job ours meanwhile; if it runs out, the job runs again).
async fn finish(inner: &Inner, lease: Lease, outcome: Outcome, next: Option<Job>) -> bool {
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
async fn stopped_early(inner: &Inner, job: &Job, control: &Control) {
    inner.running.lock().remove(&job.id);
    match control.reason() {
        StopReason::Cancelled => {
            count(&inner.stats.cancelled);
            tracing::info!("job cancelled while running");
            emit(inner, job, JobEventKind::Cancelled);
        }
        StopReason::Shutdown => {
            // `drain` hands the lease back.
            tracing::info!("job abandoned at shutdown");
            emit(inner, job, JobEventKind::Released);
        }
        StopReason::Revoked | StopReason::None => {
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
                tracing::info!("job cancelled while running");
                emit(inner, job, JobEventKind::Cancelled);
            } else {
                tracing::info!("job stopped: the queue no longer holds it for this worker");
                emit(inner, job, JobEventKind::Released);
            }
        }
    }
}

/// Turns an attempt's result into what happens next.
fn decide(inner: &Inner, job: &Job, result: JobResult) -> Outcome {
    if result.success {
        return Outcome::Completed(result);
    }
    if result.retryable && job.attempts <= job.max_retries {
        let delay = result
            .retry_after
            .unwrap_or_else(|| job.effective_backoff().delay(job.attempts));
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        let now = inner.config.clock.now();
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
    loop {
        // A revocation from elsewhere (a job cancelled in another process)
        // brings the lease check forward; the period stays.
        let early = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(next) => false,
            _ = inner.queue.revocations() => true,
        };
        if !early {
            next = tokio::time::Instant::now() + period;
            ticks += 1;
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
