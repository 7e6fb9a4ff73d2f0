//! Batching: finish reports, and single enqueues, that arrive while the
//! previous script call is on its way are sent together in the next one
//! (a single enqueue with nothing on its way goes at once); and
//! `enqueue_many` split into bounded script calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::Shared;
use crate::error::{BackendError, Error, Result};
use crate::job::JobId;
use crate::queue::Enqueued;

/// The most finish reports, or single enqueues, sent in one script call.
const MAX_BATCH: usize = 512;

/// The most jobs an `enqueue_many` stores per script call (about 20 ms of
/// Redis time each), so a big batch does not block Redis for seconds.
pub(super) const ENQUEUE_CHUNK: usize = 2_000;

/// The most ids checked per call in the first pass of a chunked
/// `enqueue_many` (one `HEXISTS` each).
const CHECK_CHUNK: usize = 20_000;

/// One of the enqueue calls on their way to Redis (a single enqueue sent
/// at once, or a flusher's batch), counted in `Shared::enqueues_on_the_way`
/// until dropped.
pub(super) struct OnTheWay<'a>(&'a AtomicUsize);

impl<'a> OnTheWay<'a> {
    /// Counts a call, if none is on its way: a single enqueue then goes at
    /// once, from its own task; else to the flusher, to travel with others.
    pub(super) fn alone(count: &'a AtomicUsize) -> Option<Self> {
        count
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
            .ok()
            .map(|_| OnTheWay(count))
    }

    /// Counts a call.
    fn join(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        OnTheWay(count)
    }
}

impl Drop for OnTheWay<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One finish report, encoded for the script.
pub(super) struct FinishEntry {
    pub(super) id: JobId,
    pub(super) token: u64,
    pub(super) status: u8,
    pub(super) patch: Vec<u8>,
    pub(super) at_us: i64,
    pub(super) next: Option<Encoded>,
}

/// A job encoded for the enqueue and finish scripts.
pub(super) struct Encoded {
    pub(super) id: JobId,
    pub(super) state: String,
    pub(super) body: Vec<u8>,
    pub(super) due_us: i64,
    pub(super) rank: usize,
    /// The flow-control settings the scripts need (`record::meta`; empty
    /// for none).
    pub(super) meta: Vec<u8>,
    /// A workflow step's dependencies and the steps it blocks
    /// (`record::links`; empty for a job that is no step).
    pub(super) links: Vec<u8>,
}

pub(super) struct FinishRequest {
    pub(super) entry: FinishEntry,
    pub(super) reply: oneshot::Sender<Result<bool>>,
}

/// One job of a batch of independent single enqueues.
pub(super) struct EnqueueRequest {
    pub(super) job: Encoded,
    pub(super) reply: oneshot::Sender<Result<Enqueued>>,
}

/// How the enqueue script treats a taken id (`mode` in `lua/enqueue.lua`).
#[derive(Clone, Copy)]
pub(super) enum Mode {
    /// Store all or none.
    All,
    /// Independent jobs: a taken id fails only its own job.
    Each,
    /// Store nothing; report a taken id as `All` would.
    Check,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::All => "all",
            Mode::Each => "each",
            Mode::Check => "check",
        }
    }
}

/// What the enqueue script did with one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pushed {
    /// Stored.
    Stored,
    /// Not stored: its id is taken (`Each` mode).
    Taken,
    /// Not stored: a unique job with the same key holds the lock.
    Conflict(JobId),
}

impl Pushed {
    fn parse(reply: &str, id: JobId) -> Self {
        match reply.strip_prefix('c') {
            Some(holder) => Pushed::Conflict(holder.parse().unwrap_or(id)),
            None if reply == "1" => Pushed::Stored,
            None => Pushed::Taken,
        }
    }

    /// What `push` answers, or `Err(Duplicate)` for a taken id.
    pub(super) fn enqueued(self, id: JobId) -> Result<Enqueued> {
        match self {
            Pushed::Stored => Ok(Enqueued::new(id)),
            Pushed::Taken => Err(Error::Duplicate(id)),
            Pushed::Conflict(holder) => Ok(Enqueued::conflict(holder)),
        }
    }
}

impl Shared {
    /// Stores jobs in one script call. Returns what was done with each job
    /// (`Each`, `All`; empty for `Check`), or the first taken id (`All`,
    /// `Check`).
    pub(super) async fn enqueue_batch<'a>(
        &self,
        jobs: impl Iterator<Item = &'a Encoded> + Clone,
        mode: Mode,
    ) -> Result<std::result::Result<Vec<Pushed>, JobId>> {
        let mut call = self.common().call(&self.scripts.enqueue);
        call.arg(mode.as_str());
        let mut first = None;
        for job in jobs.clone() {
            first.get_or_insert(job.id);
            call.arg(job.id.to_string()).arg(&job.state);
            match mode {
                // The check pass needs the ids (and a step's links) only;
                // keep the width.
                Mode::Check if job.links.is_empty() => call.arg("").arg(0).arg(0).arg("").arg(""),
                Mode::Check => call
                    .arg("")
                    .arg(0)
                    .arg(0)
                    .arg(&job.meta[..])
                    .arg(&job.links[..]),
                _ => call
                    .arg(&job.body[..])
                    .arg(job.due_us)
                    .arg(job.rank)
                    .arg(&job.meta[..])
                    .arg(&job.links[..]),
            };
        }
        let reply: Vec<String> = self.call("enqueue", &call).await?;
        match reply.first().map(String::as_str) {
            // A workflow step that cannot be stored: nothing was.
            Some("bad") => Err(Error::InvalidArgument(
                reply.get(1).cloned().unwrap_or_default(),
            )),
            // All stored.
            Some("ok") if reply.len() == 1 => Ok(Ok(jobs.map(|_| Pushed::Stored).collect())),
            Some("ok" | "each") => Ok(Ok(reply[1..]
                .iter()
                .zip(jobs)
                .map(|(r, job)| Pushed::parse(r, job.id))
                .collect())),
            Some("dup") => Ok(Err(reply
                .get(1)
                .and_then(|id| id.parse().ok())
                .or(first)
                .unwrap_or_default())),
            _ => Err(Error::Backend(BackendError::new(format!(
                "redis: unexpected reply to enqueue: {reply:?}"
            )))),
        }
    }

    /// Stores all of `jobs` or, on a taken id, none: in one script call up
    /// to [`ENQUEUE_CHUNK`] jobs; above that, every id is checked first
    /// (in calls of [`CHECK_CHUNK`]), then the jobs are stored in chunks
    /// (see `enqueue_many` on [`RedisJobQueue`](super::RedisJobQueue) for
    /// what that guarantees).
    /// A unique job is decided on its own (a conflict stores that job
    /// only not), earlier jobs of the batch included.
    pub(super) async fn enqueue_all(&self, jobs: &[Encoded]) -> Result<Vec<Enqueued>> {
        let refuse = |stored: std::result::Result<Vec<Pushed>, JobId>| match stored {
            Ok(pushed) => Ok(pushed),
            Err(id) => Err(Error::Duplicate(id)),
        };
        let answer = |chunk: &[Encoded], pushed: Vec<Pushed>| {
            chunk
                .iter()
                .zip(pushed)
                .map(|(job, p)| p.enqueued(job.id))
                .collect::<Result<Vec<_>>>()
        };
        if jobs.len() > CHECK_CHUNK && jobs.iter().any(|j| !j.links.is_empty()) {
            // The check pass sees each call's jobs only: a step could not be
            // checked against the steps of an earlier call.
            return Err(Error::InvalidArgument(format!(
                "a workflow is enqueued in calls of at most {CHECK_CHUNK} jobs (this one has {})",
                jobs.len()
            )));
        }
        if jobs.len() <= ENQUEUE_CHUNK {
            let pushed = refuse(self.enqueue_batch(jobs.iter(), Mode::All).await?)?;
            return answer(jobs, pushed);
        }
        for chunk in jobs.chunks(CHECK_CHUNK) {
            refuse(self.enqueue_batch(chunk.iter(), Mode::Check).await?)?;
        }
        let mut out = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(ENQUEUE_CHUNK) {
            let pushed = refuse(self.enqueue_batch(chunk.iter(), Mode::All).await?)?;
            out.extend(answer(chunk, pushed)?);
        }
        Ok(out)
    }

    pub(super) async fn finish_batch(&self, entries: &[FinishEntry]) -> Result<Vec<bool>> {
        let mut call = self.common().call(&self.scripts.finish);
        for e in entries {
            // The status, with `+` if the next job's values follow.
            let status = [e.status, b'+'];
            call.arg(e.id.to_string())
                .arg(e.token)
                .arg(&status[..if e.next.is_some() { 2 } else { 1 }])
                .arg(&e.patch[..])
                .arg(e.at_us);
            if let Some(next) = &e.next {
                call.arg(next.id.to_string())
                    .arg(&next.state)
                    .arg(&next.body[..])
                    .arg(next.due_us)
                    .arg(next.rank)
                    .arg(&next.meta[..]);
            }
        }
        let res: Vec<i64> = self.call("finish", &call).await?;
        Ok(res.into_iter().map(|r| r == 1).collect())
    }
}

/// Waits for a request, then takes whatever else is queued (up to
/// [`MAX_BATCH`]) into `batch`. `false` once the queue is dropped.
async fn next_batch<T>(
    shared: &Shared,
    rx: &mut mpsc::UnboundedReceiver<T>,
    batch: &mut Vec<T>,
) -> bool {
    let first = tokio::select! {
        biased;
        first = rx.recv() => first,
        _ = shared.stop.cancelled() => None,
    };
    let Some(first) = first else { return false };
    batch.push(first);
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(request) => batch.push(request),
            Err(_) => break,
        }
    }
    true
}

/// Sends finish reports in batches: whatever queued up while the previous
/// batch was on its way goes in the next script call. A failed call hands
/// every waiter the same error.
pub(super) async fn flush_finishes(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<FinishRequest>,
) {
    let mut batch: Vec<FinishRequest> = Vec::new();
    while next_batch(&shared, &mut rx, &mut batch).await {
        let (entries, replies): (Vec<FinishEntry>, Vec<oneshot::Sender<Result<bool>>>) =
            batch.drain(..).map(|r| (r.entry, r.reply)).unzip();
        match shared.finish_batch(&entries).await {
            Ok(results) => {
                for (reply, held) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(held));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Sends single enqueues in batches: whatever queued up while the previous
/// batch was on its way goes in the next script call.
pub(super) async fn flush_enqueues(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<EnqueueRequest>,
) {
    let mut batch: Vec<EnqueueRequest> = Vec::new();
    while next_batch(&shared, &mut rx, &mut batch).await {
        let result = {
            let _on_the_way = OnTheWay::join(&shared.enqueues_on_the_way);
            shared
                .enqueue_batch(batch.iter().map(|r| &r.job), Mode::Each)
                .await
        };
        match result {
            Ok(Ok(pushed)) => {
                for (request, pushed) in batch.drain(..).zip(pushed) {
                    let _ = request.reply.send(pushed.enqueued(request.job.id));
                }
            }
            Ok(Err(_)) => unreachable!("`each` mode reports per job"),
            Err(e) => {
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(e.clone()));
                }
            }
        }
    }
}
