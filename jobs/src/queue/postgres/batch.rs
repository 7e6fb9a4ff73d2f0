//! Calls that arrive while the previous statement of their kind is on its
//! way go together in the next one, each kind to a task of its own:
//!
//! - **Finish** reports (`finish.sql` takes arrays): one statement, one
//!   commit — one WAL flush — for the lot, however many jobs finished
//!   meanwhile.
//! - Single **enqueues** of jobs that are not unique: one insert, one
//!   commit; a batch refused for one of its jobs is sent again one job per
//!   statement, so only the job at fault fails.
//! - **Reserves** whose takes are the same — the same queue names in the
//!   same order with the same queue-wide limits — and whose lease is the
//!   same form a group; each group sends, per take, one `reserve.sql`
//!   statement for the sum of the callers' maxima (at most
//!   [`MAX_RESERVE`]), and hands the jobs out in order, most urgent first:
//!   each caller at most its own maximum. A worker refilling its slots one
//!   job at a time thus costs one statement per round of freed slots, not
//!   one per job. Every guarantee holds over the merged statement: the
//!   flow-control limits are enforced in its SQL over all it takes (a
//!   group reserves no more than the limits allow), every job gets its own
//!   lease and fencing token, a paused queue gives nothing, and each
//!   caller notes the wake epoch before its request is queued (so before
//!   the statement that answers it starts). Jobs nobody takes — more
//!   returned than asked for, a caller that gave up waiting, the jobs of
//!   earlier takes when a later take fails — are released at once, never
//!   dropped (and a release that fails leaves them to lease recovery). A
//!   failed statement gives every caller of its group the same error;
//!   groups of different takes run side by side and fail alone.

use std::sync::Arc;

use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use std::time::Duration;

use super::row::Batch;
use super::{FinishArgs, Shared, finish_args, sql};
use crate::error::Result;
use crate::job::Job;
use crate::queue::{Lease, Outcome, Reservation, Take};

/// The most finish reports sent in one statement.
const MAX_BATCH: usize = 512;

/// One finish report, waiting for its statement.
pub(super) struct FinishRequest {
    pub(super) lease: Lease,
    pub(super) args: FinishArgs,
    pub(super) next: Option<Job>,
    pub(super) reply: oneshot::Sender<Result<bool>>,
}

impl FinishRequest {
    /// A request for `outcome`, checked (encoded) before it is queued, so
    /// a bad outcome fails its own call only.
    pub(super) fn new(
        lease: Lease,
        outcome: &Outcome,
        next: Option<Job>,
    ) -> Result<(Self, oneshot::Receiver<Result<bool>>)> {
        let args = finish_args(outcome)?;
        if let Some(next) = &next {
            // Fails here, for this call, if the next run cannot be stored.
            Batch::of(std::slice::from_ref(next))?;
        }
        let (reply, rx) = oneshot::channel();
        Ok((
            FinishRequest {
                lease,
                args,
                next,
                reply,
            },
            rx,
        ))
    }
}

impl Shared {
    /// Records the outcomes of `requests` in one `finish.sql` statement;
    /// per request, whether its lease still held.
    pub(super) async fn finish_batch(&self, requests: &[FinishRequest]) -> Result<Vec<bool>> {
        let n = requests.len();
        let (mut ids, mut tokens) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut codes, mut results) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut errors, mut ats) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut next_jobs = Vec::new();
        let mut after = Vec::new();
        for r in requests {
            let (code, result, last_error, at) = r.args.clone();
            ids.push(*r.lease.job_id.as_uuid());
            tokens.push(r.lease.token as i64);
            codes.push(code);
            results.push(result);
            errors.push(last_error);
            ats.push(at);
            if let Some(next) = &r.next {
                next_jobs.push(next.clone());
                after.push(*r.lease.job_id.as_uuid());
            }
        }
        let next = Batch::of(&next_jobs)?;
        // Sent again if it deadlocked: workflow steps' resolution (a
        // trigger) locks their dependants' rows and their workflows'.
        let rows = self
            .bounded_retry("finish", || {
                let query = sqlx::query(sql::safe(&self.sql.finish))
                    .bind(&ids)
                    .bind(&tokens)
                    .bind(&codes)
                    .bind(&results)
                    .bind(&errors)
                    .bind(&ats)
                    .bind(&after);
                next.clone().bind(query).fetch_all(&self.pool)
            })
            .await?;
        self.unhold_after(&rows).await?;
        let changed: std::collections::HashSet<uuid::Uuid> = rows
            .iter()
            .map(|row| row.get::<uuid::Uuid, _>("id"))
            .collect();
        Ok(requests
            .iter()
            .map(|r| changed.contains(r.lease.job_id.as_uuid()))
            .collect())
    }
}

/// Waits for the next request, then takes whatever else queued up
/// meanwhile into `batch`, up to `max` — after giving the other tasks one
/// turn when `settle`, so requests made at about the same moment join.
/// `false` once the queue is dropped.
async fn gather<T>(
    shared: &Shared,
    rx: &mut mpsc::UnboundedReceiver<T>,
    batch: &mut Vec<T>,
    max: usize,
    settle: bool,
) -> bool {
    let first = tokio::select! {
        biased;
        first = rx.recv() => first,
        _ = shared.stop.cancelled() => None,
    };
    let Some(first) = first else { return false };
    batch.push(first);
    if settle {
        tokio::task::yield_now().await;
    }
    while batch.len() < max {
        match rx.try_recv() {
            Ok(request) => batch.push(request),
            Err(_) => break,
        }
    }
    true
}

/// Sends finish reports in batches until the queue is dropped: whatever
/// queued up while the previous statement was on its way goes in the next.
/// A failed statement hands every report of its batch the same error.
pub(super) async fn flush_finishes(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<FinishRequest>,
) {
    let mut batch: Vec<FinishRequest> = Vec::new();
    loop {
        if !gather(&shared, &mut rx, &mut batch, MAX_BATCH, false).await {
            return;
        }
        match shared.finish_batch(&batch).await {
            Ok(results) => {
                for (request, held) in batch.drain(..).zip(results) {
                    let _ = request.reply.send(Ok(held));
                }
            }
            Err(e) => {
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// One single enqueue, waiting for its statement.
pub(super) struct EnqueueRequest {
    pub(super) job: Job,
    pub(super) reply: oneshot::Sender<Result<crate::queue::Enqueued>>,
}

/// Sends single enqueues (of jobs that are not unique) in batches until
/// the queue is dropped: whatever queued up while the previous statement
/// was on its way goes in the next, one commit for all. Each is still
/// accepted or refused on its own: a batch refused for one of its jobs (a
/// taken id, say) is sent again one job per statement, so only the job at
/// fault gets the error; a batch that failed because the database is
/// unreachable gives everyone that error.
pub(super) async fn flush_enqueues(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<EnqueueRequest>,
) {
    let mut batch: Vec<EnqueueRequest> = Vec::new();
    loop {
        if !gather(&shared, &mut rx, &mut batch, MAX_BATCH, false).await {
            return;
        }
        // The jobs apart from their replies, so the statement borrows them
        // without a copy.
        let (jobs, replies): (Vec<Job>, Vec<_>) = batch.drain(..).map(|r| (r.job, r.reply)).unzip();
        match shared.insert_pooled(&jobs).await {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            // The database is unreachable (or there is one job): the same
            // answer for everyone, at once.
            Err(e) if jobs.len() == 1 || e.is_transient() => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(_) => {
                for (job, reply) in jobs.iter().zip(replies) {
                    let answer = shared
                        .insert_pooled(std::slice::from_ref(job))
                        .await
                        .map(|mut a| a.remove(0));
                    let _ = reply.send(answer);
                }
            }
        }
    }
}

/// The most jobs one reserve statement takes (per take).
pub(super) const MAX_RESERVE: usize = 1000;

/// The most reserve calls answered by one round of statements.
const MAX_RESERVES: usize = 512;

/// One reserve call, waiting for its statements.
pub(super) struct ReserveRequest {
    takes: Vec<Take>,
    lease: Duration,
    reply: oneshot::Sender<Result<Vec<Reservation>>>,
}

impl ReserveRequest {
    /// A request for `takes` under `lease` (both checked by the caller).
    pub(super) fn new(
        takes: &[Take],
        lease: Duration,
    ) -> (Self, oneshot::Receiver<Result<Vec<Reservation>>>) {
        let (reply, rx) = oneshot::channel();
        let request = ReserveRequest {
            takes: takes.to_vec(),
            lease,
            reply,
        };
        (request, rx)
    }

    /// Whether `other` can share this request's statements: the same
    /// queues in the same order, with the same limits, under the same
    /// lease (the maxima may differ).
    pub(super) fn joins(&self, other: &ReserveRequest) -> bool {
        self.lease == other.lease
            && self.takes.len() == other.takes.len()
            && self
                .takes
                .iter()
                .zip(&other.takes)
                .all(|(a, b)| a.queue == b.queue && a.limits == b.limits)
    }
}

/// How long a reserve call of `takes` waits for its answer: a round of
/// statements that may be ahead of its own, and its own (up to four
/// statements per take).
pub(super) fn reserve_wait(shared: &Shared, takes: &[Take]) -> Duration {
    let statements = u32::try_from(takes.len())
        .unwrap_or(u32::MAX)
        .saturating_mul(4)
        .saturating_add(1);
    shared.timeout.saturating_mul(statements.saturating_mul(2))
}

impl Shared {
    /// Reserves for `group` (requests that all join the first): per take,
    /// one statement for the sum of the requests' maxima, its jobs handed
    /// out in order, each request at most its own maximum. Per request, its
    /// reservations. What no request takes is released; on an error, what
    /// the group reserved before it is released too.
    pub(super) async fn reserve_group(
        &self,
        group: &[ReserveRequest],
    ) -> Result<Vec<Vec<Reservation>>> {
        let mut out: Vec<Vec<Reservation>> = group.iter().map(|_| Vec::new()).collect();
        let Some(first) = group.first() else {
            return Ok(out);
        };
        let mut surplus = Vec::new();
        for (t, take) in first.takes.iter().enumerate() {
            let wants: Vec<usize> = group.iter().map(|r| r.takes[t].max).collect();
            let total = wants
                .iter()
                .fold(0usize, |sum, want| sum.saturating_add(*want))
                .min(MAX_RESERVE);
            if total == 0 {
                continue;
            }
            let jobs = match self.reserve_take(take, total, first.lease).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    let taken: Vec<Lease> = out
                        .iter()
                        .flatten()
                        .map(|r| r.lease)
                        .chain(surplus)
                        .collect();
                    self.give_back(&taken).await;
                    return Err(e);
                }
            };
            let mut jobs = jobs.into_iter().map(|(job, token)| {
                let lease = Lease {
                    job_id: job.id,
                    token,
                };
                Reservation::new(job, lease)
            });
            for (mine, want) in out.iter_mut().zip(wants) {
                mine.extend(jobs.by_ref().take(want));
            }
            surplus.extend(jobs.map(|r| r.lease));
        }
        self.give_back(&surplus).await;
        Ok(out)
    }

    /// Releases reserved jobs nobody will run. Should that fail, their
    /// leases lapse and lease recovery puts them back.
    async fn give_back(&self, leases: &[Lease]) {
        if leases.is_empty() {
            return;
        }
        if let Err(e) = self.release_leases(leases).await {
            tracing::warn!(schema = %self.schema, jobs = leases.len(), error = %e,
                "could not release reserved jobs nobody takes; they return when their leases lapse");
        }
    }
}

/// Answers reserve calls until the queue is dropped: whatever queued up
/// while the previous round of statements was on its way is grouped by
/// takes and lease, and each group sent as one (see the module docs).
pub(super) async fn flush_reserves(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<ReserveRequest>,
) {
    let mut waiting: Vec<ReserveRequest> = Vec::new();
    loop {
        // Settling first: slots freed by the same finish statement ask at
        // about the same moment.
        if !gather(&shared, &mut rx, &mut waiting, MAX_RESERVES, true).await {
            return;
        }
        // In order of arrival; a caller that already gave up is left out.
        let mut groups: Vec<Vec<ReserveRequest>> = Vec::new();
        for request in waiting.drain(..).filter(|r| !r.reply.is_closed()) {
            match groups.iter_mut().find(|g| g[0].joins(&request)) {
                Some(group) => group.push(request),
                None => groups.push(vec![request]),
            }
        }
        let answers =
            futures_util::future::join_all(groups.iter().map(|g| shared.reserve_group(g))).await;
        let mut unclaimed = Vec::new();
        for (group, answer) in groups.into_iter().zip(answers) {
            match answer {
                Ok(reserved) => {
                    for (request, mine) in group.into_iter().zip(reserved) {
                        // The caller gave up meanwhile: its jobs go back.
                        if let Err(Ok(mine)) = request.reply.send(Ok(mine)) {
                            unclaimed.extend(mine.into_iter().map(|r| r.lease));
                        }
                    }
                }
                Err(e) => {
                    for request in group {
                        let _ = request.reply.send(Err(e.clone()));
                    }
                }
            }
        }
        shared.give_back(&unclaimed).await;
    }
}
