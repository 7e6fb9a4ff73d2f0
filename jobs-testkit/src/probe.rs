//! [`Probe`]: a scripted processor for tests, that records every attempt.
//!
//! What it does depends on the job's name:
//!
//! | name        | behaviour                                                        |
//! |-------------|------------------------------------------------------------------|
//! | `ok`        | succeeds, returning its args                                     |
//! | `permanent` | fails with a permanent error                                     |
//! | `flaky`     | fails (retryable) until attempt `args.succeed_on`, then succeeds |
//! | `sleep`     | sleeps `args.ms` milliseconds, then succeeds                     |
//! | `hang`      | never finishes (until cancelled or abandoned)                    |
//! | `panic`     | panics                                                           |
//! | `toggle`    | fails permanently while [`Probe::set_ok`] is false               |
//!
//! Any other name fails with `Unknown job type: NAME`, like the registry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use jobs::{Job, JobError, JobId, JobProcessor, JobResult};
use parking_lot::Mutex;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// One attempt the probe saw begin or end.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The job.
    pub id: JobId,
    /// Its name.
    pub name: String,
    /// Its attempt number (1-based).
    pub attempt: u32,
    /// When the attempt began (tokio time).
    pub at: Instant,
}

/// A scripted processor that records what it runs.
#[derive(Clone)]
pub struct Probe {
    inner: Arc<ProbeInner>,
}

struct ProbeInner {
    started: Mutex<Vec<Attempt>>,
    dropped: Mutex<Vec<JobId>>,
    events: broadcast::Sender<(JobId, &'static str)>,
    toggle_ok: AtomicBool,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Default for Probe {
    fn default() -> Self {
        Probe::new()
    }
}

impl Probe {
    /// A probe with nothing recorded.
    pub fn new() -> Self {
        Probe {
            inner: Arc::new(ProbeInner {
                started: Mutex::new(Vec::new()),
                dropped: Mutex::new(Vec::new()),
                events: broadcast::Sender::new(4096),
                toggle_ok: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
            }),
        }
    }

    /// Every attempt started so far, in order.
    pub fn started(&self) -> Vec<Attempt> {
        self.inner.started.lock().clone()
    }

    /// Names of the jobs started so far, in order.
    pub fn started_names(&self) -> Vec<String> {
        self.started().into_iter().map(|a| a.name).collect()
    }

    /// Attempts of one job.
    pub fn attempts_of(&self, id: JobId) -> Vec<Attempt> {
        self.started().into_iter().filter(|a| a.id == id).collect()
    }

    /// Jobs whose running future was dropped before it finished.
    pub fn dropped(&self) -> Vec<JobId> {
        self.inner.dropped.lock().clone()
    }

    /// The most attempts that ran at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.inner.max_in_flight.load(Ordering::SeqCst)
    }

    /// Makes `toggle` jobs succeed from now on.
    pub fn set_ok(&self, ok: bool) {
        self.inner.toggle_ok.store(ok, Ordering::SeqCst);
    }

    /// Events: `(id, "started")` when an attempt begins, `(id, "dropped")`
    /// when a running attempt's future is dropped.
    pub fn subscribe(&self) -> broadcast::Receiver<(JobId, &'static str)> {
        self.inner.events.subscribe()
    }

    /// Waits until `id` has started `n` attempts.
    pub async fn wait_started(&self, id: JobId, n: usize) {
        let mut events = self.subscribe();
        while self.attempts_of(id).len() < n {
            let _ = tokio::time::timeout(Duration::from_millis(50), events.recv()).await;
        }
    }

    /// Waits until the running future of `id` was dropped.
    pub async fn wait_dropped(&self, id: JobId) {
        let mut events = self.subscribe();
        while !self.dropped().contains(&id) {
            let _ = tokio::time::timeout(Duration::from_millis(50), events.recv()).await;
        }
    }
}

/// Records a drop of a running attempt that did not finish.
struct DropGuard {
    probe: Probe,
    id: JobId,
    finished: bool,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.probe.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !self.finished {
            self.probe.inner.dropped.lock().push(self.id);
            let _ = self.probe.inner.events.send((self.id, "dropped"));
        }
    }
}

impl JobProcessor for Probe {
    async fn process(&self, job: &Job) -> JobResult {
        self.inner.started.lock().push(Attempt {
            id: job.id,
            name: job.name.to_string(),
            attempt: job.attempts,
            at: Instant::now(),
        });
        let _ = self.inner.events.send((job.id, "started"));
        let now = self.inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let mut guard = DropGuard {
            probe: self.clone(),
            id: job.id,
            finished: false,
        };
        let result = match &*job.name {
            "ok" => JobResult::success(job.args.clone()),
            "permanent" => JobResult::failure(JobError::permanent("permanent failure")),
            "flaky" => {
                let succeed_on = job.args["succeed_on"].as_u64().unwrap_or(u64::MAX);
                if u64::from(job.attempts) >= succeed_on {
                    JobResult::success(serde_json::json!({"attempt": job.attempts}))
                } else {
                    JobResult::failure(JobError::retryable(format!(
                        "transient failure on attempt {}",
                        job.attempts
                    )))
                }
            }
            "sleep" => {
                let ms = job.args["ms"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                JobResult::success(serde_json::Value::Null)
            }
            "hang" => std::future::pending().await,
            "panic" => panic!("the probe was told to panic"),
            "toggle" => {
                if self.inner.toggle_ok.load(Ordering::SeqCst) {
                    JobResult::success(serde_json::Value::Null)
                } else {
                    JobResult::failure(JobError::permanent("toggle is off"))
                }
            }
            // The registry's text, capitalised on purpose: it is the seed
            // guide's exact message, DESIGN.md names it, and the seed's
            // scenario tests check it. Keep the two alike.
            other => JobResult::failure(JobError::permanent(format!("Unknown job type: {other}"))),
        };
        guard.finished = true;
        result
    }
}
