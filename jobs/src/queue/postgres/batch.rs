//! Finish reports that arrive while the previous finish statement is on
//! its way go together in the next one (`finish.sql` takes arrays): one
//! statement, one commit — one WAL flush — for the lot, however many jobs
//! finished meanwhile.

use std::sync::Arc;

use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use super::row::Batch;
use super::{FinishArgs, Shared, finish_args, sql};
use crate::error::Result;
use crate::job::Job;
use crate::queue::{Lease, Outcome};

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
        let query = sqlx::query(sql::safe(&self.sql.finish))
            .bind(&ids)
            .bind(&tokens)
            .bind(&codes)
            .bind(&results)
            .bind(&errors)
            .bind(&ats)
            .bind(&after);
        let rows = self
            .bounded("finish", next.bind(query).fetch_all(&self.pool))
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

/// Sends finish reports in batches until the queue is dropped: whatever
/// queued up while the previous statement was on its way goes in the next.
/// A failed statement hands every report of its batch the same error.
pub(super) async fn flush_finishes(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<FinishRequest>,
) {
    let mut batch: Vec<FinishRequest> = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            first = rx.recv() => first,
            _ = shared.stop.cancelled() => None,
        };
        let Some(first) = first else { return };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
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
        let first = tokio::select! {
            biased;
            first = rx.recv() => first,
            _ = shared.stop.cancelled() => None,
        };
        let Some(first) = first else { return };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let jobs: Vec<Job> = batch.iter().map(|r| r.job.clone()).collect();
        match shared.insert_pooled(&jobs).await {
            Ok(answers) => {
                for (request, answer) in batch.drain(..).zip(answers) {
                    let _ = request.reply.send(Ok(answer));
                }
            }
            // The database is unreachable (or there is one job): the same
            // answer for everyone, at once.
            Err(e) if batch.len() == 1 || e.is_transient() => {
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(e.clone()));
                }
            }
            Err(_) => {
                for request in batch.drain(..) {
                    let answer = shared
                        .insert_pooled(std::slice::from_ref(&request.job))
                        .await
                        .map(|mut a| a.remove(0));
                    let _ = request.reply.send(answer);
                }
            }
        }
    }
}
