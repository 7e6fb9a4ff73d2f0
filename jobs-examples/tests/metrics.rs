//! The metrics a worker reports, read back from `metrics-util`'s
//! `DebuggingRecorder`: counters by queue, name and outcome, the run and
//! wait histograms, the depth gauges.
//!
//! One recorder is installed for the whole test binary. Its snapshots reset
//! what they read, so every test reads through [`recorded`], which adds
//! each snapshot to what earlier ones saw; each test uses job names and a
//! queue of its own, so tests running at once do not see each other's
//! numbers.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use jobs::prelude::*;
use jobs::telemetry;
use jobs::{Enqueue, Unique};
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use parking_lot::Mutex;
use serde_json::json;

/// What a metric key is: its kind, name and labels (sorted).
type Key = (MetricKind, String, Vec<(String, String)>);

#[derive(Clone, Debug, Default)]
struct Seen {
    counter: u64,
    gauge: f64,
    samples: Vec<f64>,
}

static RECORDER: LazyLock<Snapshotter> = LazyLock::new(|| {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("no other recorder in this test binary");
    snapshotter
});

static SEEN: LazyLock<Mutex<HashMap<Key, Seen>>> = LazyLock::new(Default::default);

/// Everything recorded so far, by key.
fn recorded() -> HashMap<Key, Seen> {
    let mut seen = SEEN.lock();
    for (key, _, _, value) in RECORDER.snapshot().into_vec() {
        let mut labels: Vec<(String, String)> = key
            .key()
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        let entry = seen
            .entry((key.kind(), key.key().name().to_owned(), labels))
            .or_default();
        match value {
            DebugValue::Counter(n) => entry.counter += n,
            DebugValue::Gauge(v) => entry.gauge = v.into_inner(),
            DebugValue::Histogram(vs) => entry.samples.extend(vs.into_iter().map(|v| v.0)),
        }
    }
    seen.clone()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    labels
}

fn counter(seen: &HashMap<Key, Seen>, name: &str, pairs: &[(&str, &str)]) -> u64 {
    seen.get(&(MetricKind::Counter, name.to_owned(), labels(pairs)))
        .map_or(0, |s| s.counter)
}

fn samples(seen: &HashMap<Key, Seen>, name: &str, pairs: &[(&str, &str)]) -> Vec<f64> {
    seen.get(&(MetricKind::Histogram, name.to_owned(), labels(pairs)))
        .map(|s| s.samples.clone())
        .unwrap_or_default()
}

/// Completes `*ok`, fails `*boom` for good, fails `*flaky` once and then
/// completes it, snoozes `*later` once and then completes it.
#[derive(Default)]
struct Script {
    snoozed: Mutex<Vec<JobId>>,
}

impl JobProcessor for Script {
    async fn process(&self, job: &Job) -> JobResult {
        let name = &*job.name;
        if name.ends_with("boom") {
            JobResult::failure(JobError::permanent("boom"))
        } else if name.ends_with("flaky") && job.attempts == 1 {
            JobResult::failure(JobError::retry_after("flaky", Duration::from_millis(10)))
        } else if name.ends_with("later") && !self.snoozed.lock().contains(&job.id) {
            self.snoozed.lock().push(job.id);
            JobResult::failure(JobError::snooze(Duration::from_millis(10)))
        } else {
            tokio::time::sleep(Duration::from_millis(2)).await;
            JobResult::success(json!(null))
        }
    }
}

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_histograms_by_queue_name_and_outcome() {
    LazyLock::force(&RECORDER);
    let queue = "metrics_outcomes";
    let worker = BackgroundJobWorker::builder()
        .processor(Script::default())
        .queues([(queue, 4)])
        .build()
        .unwrap();
    let job = |name: &'static str| Job::new(name, json!({})).queue(queue).max_retries(3);
    let ids = worker
        .enqueue_many(vec![
            job("m_ok"),
            job("m_ok"),
            job("m_boom"),
            job("m_flaky"),
        ])
        .await
        .unwrap();
    let later = worker.enqueue(job("m_later")).await.unwrap();

    let running = tokio::spawn(worker.clone().run_owned());
    for id in ids.iter().chain([&later]) {
        tokio::time::timeout(WAIT, worker.wait_for(*id))
            .await
            .expect("the job finishes")
            .unwrap();
    }
    worker.stop().await;
    running.await.unwrap().unwrap();

    let seen = recorded();
    let at = |name: &'static str| [("queue", queue), ("name", name)];
    let finished = |name: &'static str, outcome: &'static str| {
        counter(
            &seen,
            telemetry::FINISHED_TOTAL,
            &[("queue", queue), ("name", name), ("outcome", outcome)],
        )
    };
    assert_eq!(counter(&seen, telemetry::ENQUEUED_TOTAL, &at("m_ok")), 2);
    assert_eq!(counter(&seen, telemetry::ENQUEUED_TOTAL, &at("m_later")), 1);
    assert_eq!(counter(&seen, telemetry::STARTED_TOTAL, &at("m_ok")), 2);
    assert_eq!(finished("m_ok", "completed"), 2);
    assert_eq!(finished("m_ok", "failed"), 0);

    assert_eq!(counter(&seen, telemetry::STARTED_TOTAL, &at("m_boom")), 1);
    assert_eq!(finished("m_boom", "failed"), 1);
    assert_eq!(finished("m_boom", "retried"), 0);

    assert_eq!(counter(&seen, telemetry::STARTED_TOTAL, &at("m_flaky")), 2);
    assert_eq!(finished("m_flaky", "retried"), 1);
    assert_eq!(finished("m_flaky", "completed"), 1);

    assert_eq!(counter(&seen, telemetry::STARTED_TOTAL, &at("m_later")), 2);
    assert_eq!(finished("m_later", "snoozed"), 1);
    assert_eq!(finished("m_later", "completed"), 1);

    // One run sample per attempt, each at least the 2 ms the job slept
    // when it completes; one wait sample per start.
    let runs = samples(&seen, telemetry::RUN_SECONDS, &at("m_ok"));
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs.iter().all(|&s| s >= 0.002), "{runs:?}");
    assert_eq!(
        samples(&seen, telemetry::RUN_SECONDS, &at("m_flaky")).len(),
        2
    );
    let waits = samples(&seen, telemetry::WAIT_SECONDS, &at("m_flaky"));
    assert_eq!(waits.len(), 2, "{waits:?}");
    assert!(
        waits
            .iter()
            .all(|&s| (0.0..WAIT.as_secs_f64()).contains(&s)),
        "{waits:?}"
    );
    // Nothing under another queue's labels.
    assert_eq!(
        counter(
            &seen,
            telemetry::STARTED_TOTAL,
            &[("queue", "default"), ("name", "m_ok")]
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_conflicts_and_raw_pushes_are_not_counted_as_enqueued() {
    LazyLock::force(&RECORDER);
    let queue = MemoryJobQueue::new();
    let job = || {
        Job::new("m_unique", json!({}))
            .queue("metrics_unique")
            .unique(Unique::new("one"))
    };
    let first = queue.enqueue(job()).await.unwrap();
    assert_eq!(
        queue.enqueue(job()).await.unwrap(),
        first,
        "the twin is found"
    );
    // Through a reference and an `Arc`: counted once each, not twice.
    let by_ref: &MemoryJobQueue = &queue;
    <&MemoryJobQueue as Enqueue>::enqueue(
        &by_ref,
        Job::new("m_unique", json!({})).queue("metrics_unique"),
    )
    .await
    .unwrap();
    Arc::new(queue.clone())
        .enqueue_many(vec![
            Job::new("m_unique", json!({})).queue("metrics_unique"),
        ])
        .await
        .unwrap();
    // The backend's raw `push` is not counted by itself.
    queue
        .push(Job::new("m_unique", json!({})).queue("metrics_unique"))
        .await
        .unwrap();

    let seen = recorded();
    let at = [("queue", "metrics_unique"), ("name", "m_unique")];
    assert_eq!(counter(&seen, telemetry::ENQUEUED_TOTAL, &at), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_reports_queue_depth_and_pause_as_gauges() {
    LazyLock::force(&RECORDER);
    let queue = MemoryJobQueue::new();
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(Script::default())
        .queues([("metrics_taken", 1)])
        .metrics_interval(Some(Duration::from_millis(20)))
        .build()
        .unwrap();
    // A queue the worker does not take from: its jobs stay ready.
    for _ in 0..3 {
        queue
            .enqueue(Job::new("m_depth_ok", json!({})).queue("metrics_depth"))
            .await
            .unwrap();
    }
    worker.pause_queue("metrics_paused").await.unwrap();
    let running = tokio::spawn(worker.clone().run_owned());

    let gauge = |seen: &HashMap<Key, Seen>, name: &str, pairs: &[(&str, &str)]| {
        seen.get(&(MetricKind::Gauge, name.to_owned(), labels(pairs)))
            .map(|s| s.gauge)
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = recorded();
        let depth = gauge(
            &seen,
            telemetry::QUEUE_DEPTH,
            &[("queue", "metrics_depth"), ("status", "ready")],
        );
        let paused = gauge(
            &seen,
            telemetry::QUEUE_PAUSED,
            &[("queue", "metrics_paused")],
        );
        let pending = gauge(&seen, telemetry::STORED, &[("status", "pending")]);
        if depth == Some(3.0) && paused == Some(1.0) && pending.is_some_and(|p| p >= 3.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gauges not set: depth {depth:?}, paused {paused:?}, pending {pending:?}"
        );
        // Polling a recorder that has no events to await.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.stop().await;
    running.await.unwrap().unwrap();
}
