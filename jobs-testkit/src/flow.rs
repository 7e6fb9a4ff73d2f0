//! The flow-control cases of the conformance suite: named queues, pauses,
//! queue and job limits, unique jobs, snooze, progress and events.
//!
//! They drive the queue's protocol directly (reserve, finish, release), so
//! they check the backend alone. The cases are listed in `suite.rs`'s
//! `define_suite!`, which makes them reachable; one missing there is dead
//! code, which this module denies as `suite.rs` does.

#![deny(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jobs::{
    CancelOutcome, Enqueued, Job, JobEvent, JobEventKind, JobId, JobPriority, JobQueue, JobResult,
    JobStatus, Lease, Outcome, QueueInfo, QueueLimits, Rate, Reservation, Take, Unique,
};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::unique_name;

const LEASE: Duration = Duration::from_secs(30);

/// How long a case waits for something that should happen at once.
const PATIENCE: Duration = Duration::from_secs(5);

/// A job with a label, to tell jobs apart in assertions.
fn labelled(label: &str) -> Job {
    Job::new("ok", json!({ "label": label }))
}

fn label(r: &Reservation) -> String {
    r.job.args["label"].as_str().unwrap_or_default().to_owned()
}

fn labels(rs: &[Reservation]) -> Vec<String> {
    rs.iter().map(label).collect()
}

async fn reserve<Q: JobQueue>(queue: &Q, takes: &[Take]) -> Vec<Reservation> {
    queue.reserve("flow", takes, LEASE).await.unwrap()
}

async fn reserve_from<Q: JobQueue>(queue: &Q, name: &str, max: usize) -> Vec<Reservation> {
    reserve(queue, &[Take::new(name.to_owned(), max)]).await
}

async fn reserve_default<Q: JobQueue>(queue: &Q, max: usize) -> Vec<Reservation> {
    reserve_from(queue, jobs::DEFAULT_QUEUE, max).await
}

async fn complete<Q: JobQueue>(queue: &Q, lease: Lease) {
    assert!(
        queue
            .finish(
                lease,
                Outcome::Completed(JobResult::success(json!(null))),
                None
            )
            .await
            .unwrap(),
        "the lease was held"
    );
}

async fn status<Q: JobQueue>(queue: &Q, id: JobId) -> JobStatus {
    queue.get(id).await.unwrap().expect("the job exists").status
}

async fn attempts<Q: JobQueue>(queue: &Q, id: JobId) -> u32 {
    queue
        .get(id)
        .await
        .unwrap()
        .expect("the job exists")
        .attempts
}

async fn queue_info<Q: JobQueue>(queue: &Q, name: &str) -> Option<QueueInfo> {
    queue
        .queues()
        .await
        .unwrap()
        .into_iter()
        .find(|q| q.name == name)
}

/// Reserves with `takes` until something comes, waiting with
/// `wait_for_jobs` in between; fails if nothing came within `within`, and
/// if the waits returned so often that the queue must be spinning.
async fn reserve_when_ready<Q: JobQueue>(
    queue: &Q,
    takes: &[Take],
    within: Duration,
) -> Vec<Reservation> {
    let start = Instant::now();
    let mut waits = 0;
    loop {
        let got = reserve(queue, takes).await;
        assert!(
            start.elapsed() < within,
            "nothing became ready within {within:?} (the waits did not end when it did)"
        );
        if !got.is_empty() {
            return got;
        }
        queue.wait_for_jobs(Duration::from_secs(10)).await;
        waits += 1;
        // A wait may end early now and then, but not in a loop while
        // everything is held or scheduled.
        assert!(
            waits < 50,
            "wait_for_jobs returned {waits} times in {:?}: it does not sleep while jobs are held",
            start.elapsed()
        );
    }
}

/// Waits for the next event of `id`, skipping others.
async fn next_event(events: &mut broadcast::Receiver<JobEvent>, id: JobId) -> JobEvent {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match events.recv().await {
                Ok(event) if event.job_id == id => return event,
                Ok(_) => {}
                Err(e) => panic!("event stream broke: {e}"),
            }
        }
    })
    .await
    .expect("the event came")
}

/// Subscribes, and waits until the subscription gets events (a networked
/// backend may connect its relay in the background): a job is cancelled
/// until its event arrives.
pub(crate) async fn subscribed<Q: JobQueue>(queue: &Q) -> broadcast::Receiver<JobEvent> {
    let mut events = queue.subscribe();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let id = queue.enqueue(Job::new("warmup", json!({}))).await.unwrap();
        assert_eq!(queue.cancel(id).await.unwrap(), CancelOutcome::Cancelled);
        let seen = tokio::time::timeout(Duration::from_millis(200), async {
            loop {
                match events.recv().await {
                    Ok(e) if e.job_id == id => return true,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return false,
                }
            }
        })
        .await;
        if seen == Ok(true) {
            return events;
        }
        assert!(Instant::now() < deadline, "no event arrived");
    }
}

fn rate(max: u32, ms: u64) -> Rate {
    Rate::new(max, Duration::from_millis(ms))
}

/// Jobs wait in their named queue; a reserve serves its takes in the order
/// given (each up to its max, most urgent first), and never returns a job
/// of a queue it does not name.
pub(crate) async fn named_queues_route_and_are_served_in_take_order<Q: JobQueue + Clone>(queue: Q) {
    let plan = [
        ("a1", "alpha", JobPriority::Normal),
        ("b1", "beta", JobPriority::Normal),
        ("d1", jobs::DEFAULT_QUEUE, JobPriority::Normal),
        ("a2", "alpha", JobPriority::Normal),
        ("b2", "beta", JobPriority::High),
    ];
    let mut ids = HashMap::new();
    for (label, name, priority) in plan {
        let job = labelled(label).queue(name).priority(priority);
        ids.insert(label, queue.enqueue(job).await.unwrap());
    }
    assert_eq!(
        queue.get(ids["b1"]).await.unwrap().unwrap().queue,
        "beta",
        "the job keeps its queue"
    );
    assert_eq!(
        queue.queues().await.unwrap(),
        [
            QueueInfo::new("alpha", false, 2),
            QueueInfo::new("beta", false, 2),
            QueueInfo::new(jobs::DEFAULT_QUEUE, false, 1),
        ],
        "every queue that has jobs, sorted by name, with its ready jobs"
    );
    assert!(reserve_from(&queue, "gamma", 10).await.is_empty());

    let got = reserve(&queue, &[Take::new("beta", 5), Take::new("alpha", 1)]).await;
    assert_eq!(labels(&got), ["b2", "b1", "a1"]);
    assert_eq!(queue_info(&queue, "alpha").await.unwrap().ready, 1);
    assert_eq!(labels(&reserve_from(&queue, "alpha", 5).await), ["a2"]);
    assert!(reserve_from(&queue, "beta", 5).await.is_empty());
    assert_eq!(labels(&reserve_default(&queue, 5).await), ["d1"]);
    assert_eq!(queue.counts().await.unwrap().running, 5);
}

/// A scheduled job comes due into its own queue, not the default one.
pub(crate) async fn scheduled_job_comes_due_into_its_queue<Q: JobQueue + Clone>(queue: Q) {
    let pushed = Instant::now();
    let id = queue
        .enqueue(
            labelled("later")
                .queue("later")
                .delay(Duration::from_millis(250)),
        )
        .await
        .unwrap();
    assert_eq!(queue.counts().await.unwrap().scheduled, 1);
    assert_eq!(queue_info(&queue, "later").await.unwrap().ready, 0);
    assert!(reserve_from(&queue, "later", 5).await.is_empty());
    let got = reserve_when_ready(
        &queue,
        &[Take::new(jobs::DEFAULT_QUEUE, 5), Take::new("later", 5)],
        PATIENCE,
    )
    .await;
    assert!(
        pushed.elapsed() >= Duration::from_millis(240),
        "came due after {:?}",
        pushed.elapsed()
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job.id, id);
    assert_eq!(got[0].job.queue, "later");
}

/// A paused queue gives nothing until resumed, still takes new jobs, and
/// lets its running jobs finish; `queues()` and the counts show it.
pub(crate) async fn paused_queue_gives_nothing_until_resumed<Q: JobQueue + Clone>(queue: Q) {
    let first = queue.enqueue(labelled("m0").queue("mail")).await.unwrap();
    let running = reserve_from(&queue, "mail", 1).await;
    assert_eq!(running.len(), 1);

    assert!(queue.pause_queue("mail").await.unwrap());
    assert!(!queue.pause_queue("mail").await.unwrap(), "already paused");
    assert!(matches!(
        queue.pause_queue("no spaces").await,
        Err(jobs::Error::InvalidArgument(_))
    ));
    for label in ["m1", "m2"] {
        queue.enqueue(labelled(label).queue("mail")).await.unwrap();
    }
    queue.enqueue(labelled("d1")).await.unwrap();
    assert_eq!(
        queue_info(&queue, "mail").await,
        Some(QueueInfo::new("mail", true, 2))
    );
    assert_eq!(queue.counts().await.unwrap().pending, 3);
    // An empty queue can be paused too, and is listed.
    assert!(queue.pause_queue("idle").await.unwrap());
    assert_eq!(
        queue_info(&queue, "idle").await,
        Some(QueueInfo::new("idle", true, 0))
    );

    let got = reserve(
        &queue,
        &[Take::new("mail", 10), Take::new(jobs::DEFAULT_QUEUE, 10)],
    )
    .await;
    assert_eq!(labels(&got), ["d1"], "nothing from the paused queue");
    complete(&queue, running[0].lease).await;
    assert_eq!(status(&queue, first).await, JobStatus::Completed);

    // A worker waiting for jobs is woken by the resume. (A wake-up left
    // by the pushes above is used up first, so that only the resume can
    // end the worker's wait.)
    queue.wait_for_jobs(Duration::from_millis(1)).await;
    let (found_paused, paused_seen) = tokio::sync::oneshot::channel();
    let waiter = {
        let queue = queue.clone();
        tokio::spawn(async move {
            let mut found_paused = Some(found_paused);
            loop {
                let got = reserve_from(&queue, "mail", 10).await;
                if !got.is_empty() {
                    return labels(&got);
                }
                if let Some(tx) = found_paused.take() {
                    let _ = tx.send(());
                }
                queue.wait_for_jobs(Duration::from_secs(30)).await;
            }
        })
    };
    paused_seen.await.unwrap();
    assert_eq!(
        queue_info(&queue, "mail").await,
        Some(QueueInfo::new("mail", true, 2))
    );
    assert!(queue.resume_queue("mail").await.unwrap());
    assert!(!queue.resume_queue("mail").await.unwrap(), "not paused");
    assert!(!queue.resume_queue("never-paused").await.unwrap());
    assert!(!queue_info(&queue, "mail").await.unwrap().paused);
    let got = tokio::time::timeout(PATIENCE, waiter)
        .await
        .expect("the resume woke the waiting worker")
        .unwrap();
    assert_eq!(got, ["m1", "m2"]);
}

/// A take's concurrency limit caps its queue's running jobs; a finished or
/// released job frees a slot.
pub(crate) async fn queue_concurrency_limit_holds<Q: JobQueue + Clone>(queue: Q) {
    let mut ids = Vec::new();
    for n in 0..5 {
        let job = labelled(&format!("j{n}")).queue("limited");
        ids.push(queue.enqueue(job).await.unwrap());
    }
    let take = [Take::new("limited", 10).limits(QueueLimits::new().concurrency(2))];
    let first = reserve(&queue, &take).await;
    assert_eq!(labels(&first), ["j0", "j1"]);
    assert!(reserve(&queue, &take).await.is_empty(), "the queue is full");
    for id in &ids[2..] {
        assert_eq!(attempts(&queue, *id).await, 0);
    }
    complete(&queue, first[0].lease).await;
    let second = reserve(&queue, &take).await;
    assert_eq!(labels(&second), ["j2"]);
    assert!(reserve(&queue, &take).await.is_empty());
    assert_eq!(queue.release(&[first[1].lease]).await.unwrap(), 1);
    assert_eq!(labels(&reserve(&queue, &take).await), ["j1"]);
    assert!(reserve(&queue, &take).await.is_empty());
    assert_eq!(queue.counts().await.unwrap().running, 2);
}

/// A job whose concurrency key is at its limit is held back, its attempt
/// not counted; when the slot frees, it runs before jobs that became ready
/// after it.
pub(crate) async fn job_concurrency_limit_holds_and_keeps_place<Q: JobQueue + Clone>(queue: Q) {
    let key = unique_name("conc");
    let j1 = queue
        .enqueue(labelled("j1").concurrency_by(1, key.clone()))
        .await
        .unwrap();
    let j2 = queue
        .enqueue(labelled("j2").concurrency_by(1, key.clone()))
        .await
        .unwrap();
    queue.enqueue(labelled("o1")).await.unwrap();

    let first = reserve_default(&queue, 1).await;
    assert_eq!(labels(&first), ["j1"]);
    let others = reserve_default(&queue, 10).await;
    assert_eq!(labels(&others), ["o1"], "j2 is held, the next job is not");
    let held = queue.get(j2).await.unwrap().unwrap();
    assert_eq!(held.status, JobStatus::Pending);
    assert_eq!(held.attempts, 0, "a held job's attempt is not counted");
    assert_eq!(
        queue_info(&queue, jobs::DEFAULT_QUEUE).await.unwrap().ready,
        0
    );
    assert_eq!(queue.counts().await.unwrap().pending, 1);

    queue.enqueue(labelled("o2")).await.unwrap();
    complete(&queue, first[0].lease).await;
    assert_eq!(status(&queue, j1).await, JobStatus::Completed);
    let next = reserve_default(&queue, 1).await;
    assert_eq!(labels(&next), ["j2"], "the held job keeps its place");
    assert_eq!(next[0].job.attempts, 1);
    assert_eq!(labels(&reserve_default(&queue, 10).await), ["o2"]);
    complete(&queue, next[0].lease).await;
    assert!(reserve_default(&queue, 10).await.is_empty());
}

/// A concurrency key limits the jobs that give it, across names: each key
/// on its own.
pub(crate) async fn concurrency_by_key_limits_each_key_separately<Q: JobQueue + Clone>(queue: Q) {
    let a = unique_name("acct-a");
    let b = unique_name("acct-b");
    for (label, key, name) in [
        ("a1", &a, "ok"),
        ("a2", &a, "other"),
        ("b1", &b, "ok"),
        ("b2", &b, "ok"),
    ] {
        let job = Job::new(name, json!({ "label": label })).concurrency_by(1, key.clone());
        queue.enqueue(job).await.unwrap();
    }
    let first = reserve_default(&queue, 10).await;
    assert_eq!(labels(&first), ["a1", "b1"]);
    assert!(reserve_default(&queue, 10).await.is_empty());
    complete(&queue, first[0].lease).await;
    let second = reserve_default(&queue, 10).await;
    assert_eq!(
        labels(&second),
        ["a2"],
        "a2 shares a1's key though named differently"
    );
    complete(&queue, first[1].lease).await;
    assert_eq!(labels(&reserve_default(&queue, 10).await), ["b2"]);
}

/// A rate-limited key starts at most `max` jobs per sliding window; the
/// rest are held (not counted) and start when the window opens, without
/// the waiting worker spinning or sleeping past it.
pub(crate) async fn rate_limit_holds_within_window_and_releases<Q: JobQueue + Clone>(queue: Q) {
    let key = unique_name("rate");
    let mut ids = Vec::new();
    for n in 0..5 {
        let job = labelled(&format!("r{n}")).rate_limit_by(rate(3, 300), key.clone());
        ids.push(queue.enqueue(job).await.unwrap());
    }
    let start = Instant::now();
    let first = reserve_default(&queue, 10).await;
    assert_eq!(labels(&first), ["r0", "r1", "r2"]);
    for r in &first {
        complete(&queue, r.lease).await;
    }
    assert!(
        reserve_default(&queue, 10).await.is_empty(),
        "a finished job still counts in the window"
    );
    assert_eq!(attempts(&queue, ids[3]).await, 0);
    assert_eq!(status(&queue, ids[3]).await, JobStatus::Pending);

    let take = [Take::new(jobs::DEFAULT_QUEUE, 10)];
    let mut rest = reserve_when_ready(&queue, &take, Duration::from_secs(2)).await;
    let opened = start.elapsed();
    assert!(
        opened >= Duration::from_millis(290),
        "the window opened after {opened:?}"
    );
    while rest.len() < 2 {
        rest.extend(reserve_when_ready(&queue, &take, Duration::from_secs(2)).await);
    }
    assert_eq!(labels(&rest), ["r3", "r4"], "held jobs start in order");
    assert!(rest.iter().all(|r| r.job.attempts == 1));
}

/// A take's rate limit caps how many of its queue's jobs start per window.
pub(crate) async fn queue_rate_limit_holds<Q: JobQueue + Clone>(queue: Q) {
    for n in 0..4 {
        let job = labelled(&format!("q{n}")).queue("rated");
        queue.enqueue(job).await.unwrap();
    }
    let take = [Take::new("rated", 10).limits(QueueLimits::new().rate(rate(2, 300)))];
    let start = Instant::now();
    let first = reserve(&queue, &take).await;
    assert_eq!(labels(&first), ["q0", "q1"]);
    for r in &first {
        complete(&queue, r.lease).await;
    }
    assert!(reserve(&queue, &take).await.is_empty());
    assert_eq!(queue_info(&queue, "rated").await.unwrap().ready, 2);
    let mut rest = reserve_when_ready(&queue, &take, Duration::from_secs(2)).await;
    assert!(
        start.elapsed() >= Duration::from_millis(290),
        "the window opened after {:?}",
        start.elapsed()
    );
    while rest.len() < 2 {
        rest.extend(reserve_when_ready(&queue, &take, Duration::from_secs(2)).await);
    }
    assert_eq!(labels(&rest), ["q2", "q3"]);
}

/// A unique job whose twin waits or runs is not stored: the push returns
/// the twin's id as a conflict. Once the twin completed, a push stores a
/// new job.
pub(crate) async fn unique_job_conflicts_and_releases_when_done<Q: JobQueue + Clone>(queue: Q) {
    let key = unique_name("digest");
    let job = || labelled("u").unique(Unique::new(key.clone()));
    let first = queue.push(job()).await.unwrap();
    assert!(!first.conflict);
    let twin = job();
    let second = queue.push(twin.clone()).await.unwrap();
    assert_eq!(second, Enqueued::conflict(first.id));
    assert!(
        queue.get(twin.id).await.unwrap().is_none(),
        "nothing stored"
    );
    assert_eq!(queue.enqueue(job()).await.unwrap(), first.id);
    assert_eq!(queue.counts().await.unwrap().pending, 1);

    let running = reserve_default(&queue, 10).await;
    assert_eq!(running.len(), 1);
    let while_running = queue.push(job()).await.unwrap();
    assert_eq!(while_running, Enqueued::conflict(first.id));

    complete(&queue, running[0].lease).await;
    let after = queue.push(job()).await.unwrap();
    assert!(
        !after.conflict,
        "a completed twin does not block by default"
    );
    assert_ne!(after.id, first.id);
    assert_eq!(status(&queue, after.id).await, JobStatus::Pending);
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.pending, counts.completed), (1, 1));
}

/// With a period, uniqueness lapses that long after the first job was
/// enqueued, even while it still waits.
pub(crate) async fn unique_period_expires<Q: JobQueue + Clone>(queue: Q) {
    let key = unique_name("period");
    let job = || labelled("p").unique(Unique::new(key.clone()).period(Duration::from_millis(300)));
    let start = Instant::now();
    let first = queue.push(job()).await.unwrap();
    assert!(!first.conflict);
    assert_eq!(
        queue.push(job()).await.unwrap(),
        Enqueued::conflict(first.id)
    );
    let stored = Arc::new(Mutex::new(None));
    crate::eventually("the unique period lapses", PATIENCE, || {
        let queue = queue.clone();
        let stored = Arc::clone(&stored);
        let job = job();
        async move {
            let pushed = queue.push(job).await.unwrap();
            if pushed.conflict {
                assert_eq!(pushed.id, first.id);
                false
            } else {
                *stored.lock() = Some(pushed.id);
                true
            }
        }
    })
    .await;
    assert!(
        start.elapsed() >= Duration::from_millis(290),
        "lapsed after {:?}",
        start.elapsed()
    );
    let second = stored.lock().expect("stored");
    assert_ne!(second, first.id);
    assert_eq!(status(&queue, first.id).await, JobStatus::Pending);
    assert_eq!(queue.counts().await.unwrap().pending, 2);
}

/// In `push_many`, uniqueness is decided per job, earlier jobs of the same
/// batch included; a duplicate id still fails the whole batch.
pub(crate) async fn unique_in_push_many_per_job<Q: JobQueue + Clone>(queue: Q) {
    let (k1, k2, k3) = (unique_name("k1"), unique_name("k2"), unique_name("k3"));
    let unique = |label: &str, key: &str| labelled(label).unique(Unique::new(key));
    let x = queue.push(unique("x", &k3)).await.unwrap();
    let batch = vec![
        unique("a", &k1),
        unique("b", &k1),
        unique("c", &k2),
        labelled("d"),
        unique("y", &k3),
    ];
    let ids: Vec<JobId> = batch.iter().map(|j| j.id).collect();
    let pushed = queue.push_many(batch).await.unwrap();
    assert_eq!(
        pushed,
        [
            Enqueued::new(ids[0]),
            Enqueued::conflict(ids[0]),
            Enqueued::new(ids[2]),
            Enqueued::new(ids[3]),
            Enqueued::conflict(x.id),
        ]
    );
    assert!(queue.get(ids[1]).await.unwrap().is_none());
    assert_eq!(queue.counts().await.unwrap().pending, 4);

    let k4 = unique_name("k4");
    let e = unique("e", &k4);
    let err = queue
        .push_many(vec![unique("f", &k4), e.clone(), e.clone()])
        .await
        .unwrap_err();
    assert!(
        matches!(err, jobs::Error::Duplicate(id) if id == e.id),
        "{err:?}"
    );
    assert_eq!(queue.counts().await.unwrap().pending, 4, "nothing stored");
    assert!(
        !queue.push(unique("g", &k4)).await.unwrap().conflict,
        "the failed batch took no lock"
    );
}

/// With `Completed` among its states, a unique job's completed twin still
/// blocks it (within the period).
pub(crate) async fn unique_states_include_completed<Q: JobQueue + Clone>(queue: Q) {
    let key = unique_name("once");
    let job = || {
        labelled("c").unique(
            Unique::new(key.clone())
                .period(Duration::from_secs(600))
                .states([
                    JobStatus::Pending,
                    JobStatus::Running,
                    JobStatus::Retrying,
                    JobStatus::Completed,
                ]),
        )
    };
    let first = queue.push(job()).await.unwrap();
    let running = reserve_default(&queue, 1).await;
    complete(&queue, running[0].lease).await;
    assert_eq!(status(&queue, first.id).await, JobStatus::Completed);
    assert_eq!(
        queue.push(job()).await.unwrap(),
        Enqueued::conflict(first.id)
    );
    assert_eq!(queue.counts().await.unwrap().pending, 0);

    // A failed twin is not among the states: it blocks nothing.
    let key = unique_name("failed");
    let job = || labelled("f").unique(Unique::new(key.clone()).states([JobStatus::Completed]));
    let first = queue.push(job()).await.unwrap();
    let running = reserve_default(&queue, 1).await;
    queue
        .finish(
            running[0].lease,
            Outcome::Failed(JobResult::error("no")),
            None,
        )
        .await
        .unwrap();
    let again = queue.push(job()).await.unwrap();
    assert!(!again.conflict);
    assert_ne!(again.id, first.id);
}

/// A snoozed attempt does not count: the job waits again until its time,
/// `Pending` (or `Retrying` after a failure), and frees its slot.
pub(crate) async fn snooze_reschedules_without_counting_attempt<Q: JobQueue + Clone>(queue: Q) {
    let key = unique_name("snooze");
    let id = queue
        .enqueue(labelled("s").concurrency_by(1, key.clone()))
        .await
        .unwrap();
    let other = queue
        .enqueue(labelled("t").concurrency_by(1, key.clone()))
        .await
        .unwrap();
    let got = reserve_default(&queue, 1).await;
    assert_eq!(got[0].job.id, id);
    assert!(reserve_default(&queue, 10).await.is_empty(), "t is held");
    let snoozed = Instant::now();
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(300);
    assert!(
        queue
            .finish(got[0].lease, Outcome::Snoozed { at }, None)
            .await
            .unwrap()
    );
    let job = queue.get(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.attempts, 0, "a snoozed attempt does not count");
    assert!(job.started_at.is_none());
    assert!(job.result.is_none() && job.last_error.is_none());
    assert!(job.completed_at.is_none());
    assert_eq!(queue.counts().await.unwrap().scheduled, 1);

    // Its slot went to the held job.
    let next = reserve_default(&queue, 10).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].job.id, other);
    complete(&queue, next[0].lease).await;

    let back = reserve_when_ready(&queue, &[Take::new(jobs::DEFAULT_QUEUE, 10)], PATIENCE).await;
    assert!(
        snoozed.elapsed() >= Duration::from_millis(250),
        "back after {:?}",
        snoozed.elapsed()
    );
    assert_eq!(back[0].job.id, id);
    assert_eq!(back[0].job.attempts, 1);

    // After a failed attempt, a snoozed job is retrying, with the failed
    // attempt counted.
    queue
        .finish(
            back[0].lease,
            Outcome::Retry {
                result: JobResult::error("first"),
                at: chrono::Utc::now(),
            },
            None,
        )
        .await
        .unwrap();
    let again = reserve_when_ready(&queue, &[Take::new(jobs::DEFAULT_QUEUE, 10)], PATIENCE).await;
    assert_eq!(again[0].job.attempts, 2);
    // Whole milliseconds, as every backend stores them.
    let later =
        chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis() + 600_000)
            .unwrap();
    queue
        .finish(again[0].lease, Outcome::Snoozed { at: later }, None)
        .await
        .unwrap();
    let job = queue.get(id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Retrying, 1));
    assert_eq!(job.scheduled_at, Some(later));
}

/// A running job's progress is stored on its record (and stays after it
/// finishes) and sent as an event; a stale lease records nothing.
pub(crate) async fn progress_is_recorded_and_sent<Q: JobQueue + Clone>(queue: Q) {
    let mut events = subscribed(&queue).await;
    let id = queue.enqueue(Job::new("report", json!({}))).await.unwrap();
    let r = reserve_default(&queue, 1).await.remove(0);
    assert!(queue.progress(r.lease, json!({"done": 0.5})).await.unwrap());
    assert_eq!(
        queue.get(id).await.unwrap().unwrap().progress.as_deref(),
        Some(&json!({"done": 0.5}))
    );
    let started = next_event(&mut events, id).await;
    assert_eq!(started.kind, JobEventKind::Started);
    let event = next_event(&mut events, id).await;
    assert_eq!(event.kind, JobEventKind::Progress);
    assert_eq!(event.name, "report");
    assert_eq!(event.progress, Some(json!({"done": 0.5})));

    complete(&queue, r.lease).await;
    assert!(!queue.progress(r.lease, json!(1.0)).await.unwrap());
    let done = queue.get(id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(
        done.progress.as_deref(),
        Some(&json!({"done": 0.5})),
        "the last value stays"
    );
    assert!(
        !queue
            .progress(
                Lease {
                    job_id: JobId::new(),
                    token: 1
                },
                json!(0)
            )
            .await
            .unwrap()
    );
}

/// The queue sends an event for each change of a job's state, after it.
pub(crate) async fn events_are_sent_for_state_changes<Q: JobQueue + Clone>(queue: Q) {
    use JobEventKind::*;
    let mut events = subscribed(&queue).await;

    let done = queue.enqueue(Job::new("done", json!({}))).await.unwrap();
    let r = reserve_default(&queue, 1).await.remove(0);
    complete(&queue, r.lease).await;

    let waiting = queue.enqueue(Job::new("waiting", json!({}))).await.unwrap();
    queue.cancel(waiting).await.unwrap();

    let running = queue.enqueue(Job::new("running", json!({}))).await.unwrap();
    reserve_default(&queue, 1).await;
    assert_eq!(
        queue.cancel(running).await.unwrap(),
        CancelOutcome::CancelledRunning
    );

    let bumpy = queue
        .enqueue(Job::new("bumpy", json!({})).max_retries(1))
        .await
        .unwrap();
    let r = reserve_default(&queue, 1).await.remove(0);
    queue.release(&[r.lease]).await.unwrap();
    let r = reserve_default(&queue, 1).await.remove(0);
    let retry = Outcome::Retry {
        result: JobResult::error("once"),
        at: chrono::Utc::now(),
    };
    queue.finish(r.lease, retry, None).await.unwrap();
    let r = reserve_when_ready(&queue, &[Take::new(jobs::DEFAULT_QUEUE, 1)], PATIENCE)
        .await
        .remove(0);
    queue
        .finish(r.lease, Outcome::Failed(JobResult::error("twice")), None)
        .await
        .unwrap();

    let sleepy = queue.enqueue(Job::new("sleepy", json!({}))).await.unwrap();
    let r = reserve_default(&queue, 1).await.remove(0);
    let at = chrono::Utc::now() + chrono::Duration::seconds(600);
    queue
        .finish(r.lease, Outcome::Snoozed { at }, None)
        .await
        .unwrap();

    let expected: [(JobId, &str, &[JobEventKind]); 5] = [
        (done, "done", &[Started, Completed]),
        (waiting, "waiting", &[Cancelled]),
        (running, "running", &[Started, Cancelled]),
        (
            bumpy,
            "bumpy",
            &[Started, Released, Started, Retrying, Started, Failed],
        ),
        (sleepy, "sleepy", &[Started, Snoozed]),
    ];
    let mut seen: HashMap<JobId, Vec<JobEventKind>> = HashMap::new();
    let total: usize = expected.iter().map(|(_, _, kinds)| kinds.len()).sum();
    let names: HashMap<JobId, &str> = expected.iter().map(|(id, name, _)| (*id, *name)).collect();
    tokio::time::timeout(PATIENCE, async {
        while seen.values().map(Vec::len).sum::<usize>() < total {
            let event = events.recv().await.expect("events keep coming");
            if let Some(name) = names.get(&event.job_id) {
                assert_eq!(event.name, *name);
                seen.entry(event.job_id).or_default().push(event.kind);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not every event came; saw {seen:?}"));
    for (id, name, kinds) in expected {
        assert_eq!(seen[&id], kinds, "the events of `{name}`");
    }
}

/// `wait_for` returns the job once it is final, from any state; an unknown
/// job is `NotFound`.
pub(crate) async fn wait_for_returns_final_job<Q: JobQueue + Clone>(queue: Q) {
    let id = queue.enqueue(labelled("w")).await.unwrap();
    let waiter = {
        let queue = queue.clone();
        tokio::spawn(async move { queue.wait_for(id).await })
    };
    let r = reserve_default(&queue, 1).await.remove(0);
    queue
        .finish(
            r.lease,
            Outcome::Completed(JobResult::success(json!({"answer": 42}))),
            None,
        )
        .await
        .unwrap();
    let done = tokio::time::timeout(PATIENCE, waiter)
        .await
        .expect("wait_for returned")
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.result.unwrap().result, Some(json!({"answer": 42})));
    // Already final: at once.
    let again = tokio::time::timeout(PATIENCE, queue.wait_for(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.status, JobStatus::Completed);
    assert!(matches!(
        queue.wait_for(JobId::new()).await,
        Err(jobs::Error::NotFound(_))
    ));
}

/// Cancelling a job that a limit holds back takes it out of the held list:
/// it is never reserved later.
pub(crate) async fn cancel_held_job_removes_it<Q: JobQueue + Clone>(queue: Q) {
    let key = unique_name("held");
    let j1 = queue
        .enqueue(labelled("j1").concurrency_by(1, key.clone()))
        .await
        .unwrap();
    let j2 = queue
        .enqueue(labelled("j2").concurrency_by(1, key.clone()))
        .await
        .unwrap();
    let first = reserve_default(&queue, 10).await;
    assert_eq!(labels(&first), ["j1"]);
    let j3 = queue
        .enqueue(labelled("j3").concurrency_by(1, key.clone()))
        .await
        .unwrap();
    assert!(
        reserve_default(&queue, 10).await.is_empty(),
        "j2 and j3 are held"
    );
    assert_eq!(queue.cancel(j2).await.unwrap(), CancelOutcome::Cancelled);
    complete(&queue, first[0].lease).await;
    assert_eq!(
        labels(&reserve_default(&queue, 10).await),
        ["j3"],
        "the freed slot goes to the next held job, not the cancelled one"
    );
    assert!(reserve_default(&queue, 10).await.is_empty());
    assert_eq!(status(&queue, j1).await, JobStatus::Completed);
    assert_eq!(status(&queue, j3).await, JobStatus::Running);
    let cancelled = queue.get(j2).await.unwrap().unwrap();
    assert_eq!(
        (cancelled.status, cancelled.attempts),
        (JobStatus::Cancelled, 0)
    );

    // The same for a job a rate limit holds: once a later job of its key
    // starts, it would have started first.
    let key = unique_name("held-rate");
    let limited = |label: &str| labelled(label).rate_limit_by(rate(1, 200), key.clone());
    queue.enqueue(limited("r1")).await.unwrap();
    let r2 = queue.enqueue(limited("r2")).await.unwrap();
    let rate_take = [Take::new(jobs::DEFAULT_QUEUE, 10)];
    assert_eq!(labels(&reserve(&queue, &rate_take).await), ["r1"]);
    assert!(reserve(&queue, &rate_take).await.is_empty());
    assert_eq!(queue.cancel(r2).await.unwrap(), CancelOutcome::Cancelled);
    queue.enqueue(limited("r3")).await.unwrap();
    let next = reserve_when_ready(&queue, &rate_take, PATIENCE).await;
    assert_eq!(labels(&next), ["r3"]);
    assert_eq!(attempts(&queue, r2).await, 0);
}

/// Many jobs with mixed keys, limits, priorities and queues, reserved and
/// finished by several workers at once: each runs exactly once, and no key
/// ever runs more jobs at once than its limit.
pub(crate) async fn nothing_lost_under_limits<Q: JobQueue + Clone>(queue: Q) {
    let keys: [(String, u32); 3] = [
        (unique_name("a"), 1),
        (unique_name("b"), 2),
        (unique_name("c"), 3),
    ];
    let rate_key = unique_name("r");
    let mut limits: HashMap<JobId, (usize, u32)> = HashMap::new();
    let mut all = Vec::new();
    for n in 0..80usize {
        let queue_name = if n % 2 == 0 { "even" } else { "odd" };
        let priority = JobPriority::ALL[n % 3];
        let mut job = labelled(&format!("n{n}"))
            .queue(queue_name)
            .priority(priority);
        if n % 5 != 4 {
            let k = n % 3;
            job = job.concurrency_by(keys[k].1, keys[k].0.clone());
            limits.insert(job.id, (k, keys[k].1));
        }
        if n % 7 == 0 {
            job = job.rate_limit_by(rate(4, 100), rate_key.clone());
        }
        all.push(job);
    }
    let ids: Vec<JobId> = all.iter().map(|j| j.id).collect();
    // Half in one batch, the rest one by one.
    let rest = all.split_off(40);
    queue.enqueue_many(all).await.unwrap();
    for job in rest {
        queue.enqueue(job).await.unwrap();
    }

    let limits = Arc::new(limits);
    let running: Arc<Mutex<[u32; 3]>> = Arc::new(Mutex::new([0; 3]));
    let peak: Arc<Mutex<[u32; 3]>> = Arc::new(Mutex::new([0; 3]));
    let started: Arc<Mutex<Vec<JobId>>> = Arc::new(Mutex::new(Vec::new()));
    let finished = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut workers = Vec::new();
    for w in 0..3usize {
        let (queue, limits, running, peak, started, finished) = (
            queue.clone(),
            Arc::clone(&limits),
            Arc::clone(&running),
            Arc::clone(&peak),
            Arc::clone(&started),
            Arc::clone(&finished),
        );
        workers.push(tokio::spawn(async move {
            let takes = if w % 2 == 0 {
                [Take::new("even", 3), Take::new("odd", 2)]
            } else {
                [Take::new("odd", 3), Take::new("even", 2)]
            };
            while finished.load(Ordering::SeqCst) < 80 {
                assert!(Instant::now() < deadline, "the jobs did not all run");
                let got = queue
                    .reserve(&format!("w{w}"), &takes, LEASE)
                    .await
                    .unwrap();
                if got.is_empty() {
                    queue.wait_for_jobs(Duration::from_millis(100)).await;
                    continue;
                }
                for r in &got {
                    started.lock().push(r.job.id);
                    if let Some(&(k, max)) = limits.get(&r.job.id) {
                        let mut running = running.lock();
                        running[k] += 1;
                        assert!(running[k] <= max, "key {k} ran {} at once", running[k]);
                        let mut peak = peak.lock();
                        peak[k] = peak[k].max(running[k]);
                    }
                }
                // The work: long enough for the workers to overlap.
                tokio::time::sleep(Duration::from_millis(2)).await;
                for r in got {
                    // Counted out before the finish frees the slot.
                    if let Some(&(k, _)) = limits.get(&r.job.id) {
                        running.lock()[k] -= 1;
                    }
                    complete(&queue, r.lease).await;
                    finished.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let started = started.lock().clone();
    let distinct: HashSet<JobId> = started.iter().copied().collect();
    assert_eq!(started.len(), 80, "each job started exactly once");
    assert_eq!(distinct, ids.iter().copied().collect::<HashSet<_>>());
    for id in &ids {
        let job = queue.get(*id).await.unwrap().unwrap();
        assert_eq!((job.status, job.attempts), (JobStatus::Completed, 1));
    }
    let counts = queue.counts().await.unwrap();
    assert_eq!(
        (counts.completed, counts.waiting(), counts.running),
        (80, 0, 0)
    );
    // The limits were reached, so they were tested.
    assert_eq!(peak.lock()[0], 1);
}
