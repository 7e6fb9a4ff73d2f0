//! Batching: a single enqueue, or a finish report, is sent at once when no
//! call of its kind is on its way; those that arrive while one is, are
//! queued and sent together in one script call as soon as it returns (no
//! timer: batches form only under load). And `enqueue_many` split into
//! bounded script calls.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::Shared;
use crate::error::{BackendError, Error, Result};
use crate::job::JobId;

/// The most finish reports, or single enqueues, sent in one script call.
const MAX_BATCH: usize = 512;

/// The most jobs an `enqueue_many` stores per script call (about 20 ms of
/// Redis time each), so a big batch does not block Redis for seconds.
pub(super) const ENQUEUE_CHUNK: usize = 2_000;

/// The most ids checked per call in the first pass of a chunked
/// `enqueue_many` (one `HEXISTS` each).
const CHECK_CHUNK: usize = 20_000;

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
}

pub(super) struct FinishRequest {
    pub(super) entry: FinishEntry,
    pub(super) reply: oneshot::Sender<Result<bool>>,
}

/// One job of a batch of independent single enqueues.
pub(super) struct EnqueueRequest {
    pub(super) job: Encoded,
    pub(super) reply: oneshot::Sender<Result<JobId>>,
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

impl Shared {
    /// Stores jobs in one script call. Returns per job whether it was
    /// stored (`Each`), or the first taken id (`All`, `Check`).
    pub(super) async fn enqueue_batch<'a>(
        &self,
        jobs: impl Iterator<Item = &'a Encoded>,
        mode: Mode,
    ) -> Result<std::result::Result<Vec<bool>, JobId>> {
        let mut call = self.common().call(&self.scripts.enqueue);
        call.arg(mode.as_str());
        let mut first = None;
        for job in jobs {
            first.get_or_insert(job.id);
            call.arg(job.id.to_string()).arg(&job.state);
            match mode {
                // The check pass needs the ids only; keep the width.
                Mode::Check => call.arg("").arg(0).arg(0),
                _ => call.arg(&job.body[..]).arg(job.due_us).arg(job.rank),
            };
        }
        let reply: Vec<String> = self.call("enqueue", &call).await?;
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(Ok(Vec::new())),
            Some("each") => Ok(Ok(reply[1..].iter().map(|r| r == "1").collect())),
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
    pub(super) async fn enqueue_all(&self, jobs: &[Encoded]) -> Result<()> {
        let refuse = |stored: std::result::Result<Vec<bool>, JobId>| match stored {
            Ok(_) => Ok(()),
            Err(id) => Err(Error::Duplicate(id)),
        };
        if jobs.len() <= ENQUEUE_CHUNK {
            return refuse(self.enqueue_batch(jobs.iter(), Mode::All).await?);
        }
        for chunk in jobs.chunks(CHECK_CHUNK) {
            refuse(self.enqueue_batch(chunk.iter(), Mode::Check).await?)?;
        }
        for chunk in jobs.chunks(ENQUEUE_CHUNK) {
            refuse(self.enqueue_batch(chunk.iter(), Mode::All).await?)?;
        }
        Ok(())
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
                    .arg(next.rank);
            }
        }
        let res: Vec<i64> = self.call("finish", &call).await?;
        Ok(res.into_iter().map(|r| r == 1).collect())
    }
}

/// Lets one call of a kind (single enqueues, or finishes) be on its way at
/// a time: the caller that finds none on its way sends its own request at
/// once; requests that arrive meanwhile are queued, and sent together (up
/// to [`MAX_BATCH`] per call) when that call returns.
pub(super) struct Gate<R> {
    state: Mutex<GateState<R>>,
}

struct GateState<R> {
    /// A call of this kind is on its way.
    busy: bool,
    queued: Vec<R>,
}

impl<R> Gate<R> {
    pub(super) fn new() -> Self {
        Gate {
            state: Mutex::new(GateState {
                busy: false,
                queued: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GateState<R>> {
        // The state stays consistent at every step, so a panic elsewhere
        // while it was held leaves nothing half-done.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `true` if no call was on its way: the caller sends now (and the
    /// gate is busy until its [`Turn`] ends). Else `request()` is queued.
    fn enter(&self, request: impl FnOnce() -> R) -> bool {
        let mut state = self.lock();
        if state.busy {
            state.queued.push(request());
            false
        } else {
            state.busy = true;
            true
        }
    }

    /// The next batch to send, at most [`MAX_BATCH`]; empty (and the gate
    /// free again) if none is queued.
    fn next(&self) -> Vec<R> {
        let mut state = self.lock();
        if state.queued.len() <= MAX_BATCH {
            let batch = std::mem::take(&mut state.queued);
            state.busy = !batch.is_empty();
            batch
        } else {
            state.queued.drain(..MAX_BATCH).collect()
        }
    }
}

/// A kind of request that goes through a [`Gate`].
pub(super) trait Batched: Sized + Send + 'static {
    fn gate(shared: &Shared) -> &Gate<Self>;

    /// Sends `batch` in one script call and answers each request.
    fn send(shared: &Shared, batch: Vec<Self>)
    -> impl std::future::Future<Output = ()> + Send + '_;
}

/// The right to the one call on its way. When it ends (the call returned,
/// or its future was dropped), the requests queued meanwhile are sent, by a
/// task of their own, so the caller has its answer without waiting for
/// theirs.
struct Turn<R: Batched> {
    shared: Arc<Shared>,
    kind: PhantomData<fn() -> R>,
}

impl<R: Batched> Turn<R> {
    fn new(shared: &Arc<Shared>) -> Self {
        Turn {
            shared: Arc::clone(shared),
            kind: PhantomData,
        }
    }
}

impl<R: Batched> Drop for Turn<R> {
    fn drop(&mut self) {
        let batch = R::gate(&self.shared).next();
        if batch.is_empty() {
            return;
        }
        // The gate stays busy: the next turn is the task's.
        let turn = Turn::<R>::new(&self.shared);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    R::send(&turn.shared, batch).await;
                    drop(turn);
                });
            }
            // No runtime to send them on: their callers see the requests
            // dropped ("stopped before answering"), and so do the next ones.
            Err(_) => drop((batch, turn)),
        }
    }
}

/// Waits for the answer to a queued request, at most twice the timeout
/// (the call before it, then its own).
async fn answer<T>(shared: &Shared, what: &str, rx: oneshot::Receiver<Result<T>>) -> Result<T> {
    match tokio::time::timeout(shared.timeout * 2, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(Error::Backend(BackendError::new(format!(
            "redis: the {what} call was dropped before answering"
        )))),
        Err(_) => Err(shared.timed_out(what)),
    }
}

impl Batched for FinishRequest {
    fn gate(shared: &Shared) -> &Gate<Self> {
        &shared.finishes
    }

    /// A failed call hands every waiter the same error.
    async fn send(shared: &Shared, batch: Vec<Self>) {
        let (entries, replies): (Vec<FinishEntry>, Vec<oneshot::Sender<Result<bool>>>) =
            batch.into_iter().map(|r| (r.entry, r.reply)).unzip();
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

impl Batched for EnqueueRequest {
    fn gate(shared: &Shared) -> &Gate<Self> {
        &shared.enqueues
    }

    /// Each job accepted or refused on its own; a failed call hands every
    /// waiter the same error.
    async fn send(shared: &Shared, batch: Vec<Self>) {
        let result = shared
            .enqueue_batch(batch.iter().map(|r| &r.job), Mode::Each)
            .await;
        match result {
            Ok(Ok(stored)) => {
                for (request, stored) in batch.into_iter().zip(stored) {
                    let _ = request
                        .reply
                        .send(stored_or_duplicate(request.job.id, stored));
                }
            }
            Ok(Err(_)) => unreachable!("`each` mode reports per job"),
            Err(e) => {
                for request in batch {
                    let _ = request.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

fn stored_or_duplicate(id: JobId, stored: bool) -> Result<JobId> {
    if stored {
        Ok(id)
    } else {
        Err(Error::Duplicate(id))
    }
}

/// Stores one job: at once if no single enqueue is on its way, else with
/// the others queued meanwhile, as soon as that one returns. Accepted or
/// refused on its own either way.
pub(super) async fn enqueue_one(shared: &Arc<Shared>, job: Encoded) -> Result<JobId> {
    let mut rx = None;
    let mut job = Some(job);
    if !shared.enqueues.enter(|| {
        let (reply, r) = oneshot::channel();
        rx = Some(r);
        EnqueueRequest {
            job: job.take().expect("taken once"),
            reply,
        }
    }) {
        return answer(shared, "enqueue", rx.expect("queued")).await;
    }
    let job = job.expect("not queued");
    let _turn = Turn::<EnqueueRequest>::new(shared);
    match shared
        .enqueue_batch(std::iter::once(&job), Mode::Each)
        .await?
    {
        Ok(stored) => stored_or_duplicate(job.id, stored.first().copied().unwrap_or(false)),
        Err(_) => unreachable!("`each` mode reports per job"),
    }
}

/// Reports one finish: at once if no finish is on its way, else with the
/// others queued meanwhile, as soon as that one returns. Whether the lease
/// was still held.
pub(super) async fn finish_one(shared: &Arc<Shared>, entry: FinishEntry) -> Result<bool> {
    let mut rx = None;
    let mut entry = Some(entry);
    if !shared.finishes.enter(|| {
        let (reply, r) = oneshot::channel();
        rx = Some(r);
        FinishRequest {
            entry: entry.take().expect("taken once"),
            reply,
        }
    }) {
        return answer(shared, "finish", rx.expect("queued")).await;
    }
    let entry = entry.expect("not queued");
    let _turn = Turn::<FinishRequest>::new(shared);
    let held = shared.finish_batch(std::slice::from_ref(&entry)).await?;
    Ok(held.first().copied().unwrap_or(false))
}

#[cfg(test)]
mod gate_tests {
    use std::time::Duration;

    use super::{Gate, MAX_BATCH};
    use crate::Error;
    use crate::job::Job;
    use crate::queue::{Enqueue, RedisJobQueue};

    #[test]
    fn the_first_caller_sends_and_the_others_queue_until_it_returns() {
        let gate = Gate::new();
        assert!(gate.enter(|| 0));
        assert!(!gate.enter(|| 1));
        assert!(!gate.enter(|| 2));
        // The call returned: the queued ones go next, the gate stays busy.
        assert_eq!(gate.next(), [1, 2]);
        assert!(!gate.enter(|| 3));
        assert_eq!(gate.next(), [3]);
        // Nothing queued: the gate is free, the next caller sends at once.
        assert!(gate.next().is_empty());
        assert!(gate.enter(|| 4));
        assert!(gate.next().is_empty());
        assert!(gate.enter(|| 5));
    }

    #[test]
    fn batches_are_bounded() {
        let gate = Gate::new();
        assert!(gate.enter(|| 0));
        for i in 1..=MAX_BATCH + 3 {
            assert!(!gate.enter(|| i));
        }
        assert_eq!(gate.next().len(), MAX_BATCH);
        assert_eq!(gate.next(), [MAX_BATCH + 1, MAX_BATCH + 2, MAX_BATCH + 3]);
        assert!(gate.next().is_empty());
        assert!(gate.enter(|| 0));
    }

    /// Concurrent enqueues to a Redis that refuses connections: the one
    /// sent at once and the ones queued behind it each get the error, said
    /// once; and the gate is free again afterwards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_call_reaches_every_waiter_once() {
        // Port 1 on loopback: nothing listens there.
        let queue = RedisJobQueue::builder("redis://127.0.0.1:1/")
            .name("gate-test")
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        for _ in 0..2 {
            let tasks: Vec<_> = (0..50)
                .map(|_| {
                    let queue = queue.clone();
                    tokio::spawn(async move {
                        queue.enqueue(Job::new("x", serde_json::Value::Null)).await
                    })
                })
                .collect();
            for task in tasks {
                let e = task.await.unwrap().unwrap_err();
                assert!(matches!(e, Error::Backend(_)), "{e}");
                let text = e.to_string();
                assert_eq!(text.matches("queue backend error").count(), 1, "{text}");
            }
        }
        let shared = &queue.inner.shared;
        assert!(shared.enqueues.enter(|| unreachable!("the gate is free")));
    }
}
