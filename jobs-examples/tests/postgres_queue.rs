//! PostgresJobQueue beyond the conformance suite: migrations, recurring
//! finishes, transactional enqueue, retention.
#![cfg(feature = "postgres")]

use std::time::Duration;

use jobs::{Enqueue, Job, JobQueue, JobStatus, Outcome, PostgresJobQueue, QueueAdmin, Take};
use serde_json::json;

async fn queue() -> Option<PostgresJobQueue> {
    let url = jobs_examples::database_url()?;
    let queue = PostgresJobQueue::builder(&url)
        .schema(jobs_examples::unique_name("pgq"))
        .max_connections(4)
        .connect()
        .await
        .unwrap();
    Some(queue)
}

const LEASE: Duration = Duration::from_secs(30);

/// A finish that carries a recurring job's next run stores both at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_stores_the_next_run() {
    let Some(queue) = queue().await else { return };
    let job = Job::new("tick", json!({})).every(Duration::from_secs(60));
    queue.enqueue(job).await.unwrap();
    let r = queue
        .reserve("a", &[Take::new(jobs::DEFAULT_QUEUE, 1)], LEASE)
        .await
        .unwrap()
        .remove(0);
    let next = r.job.next_occurrence(chrono::Utc::now()).unwrap();
    let done = queue
        .finish(
            r.lease,
            Outcome::Completed(jobs::JobResult::success(json!(1))),
            Some(next.clone()),
        )
        .await
        .unwrap();
    assert!(done);
    assert_eq!(
        queue.get(r.job.id).await.unwrap().unwrap().status,
        JobStatus::Completed
    );
    let stored = queue
        .get(next.id)
        .await
        .unwrap()
        .expect("the next run is stored");
    assert_eq!(stored.status, JobStatus::Pending);
    // A stale finish stores no next run.
    let again = queue
        .finish(
            r.lease,
            Outcome::Failed(jobs::JobResult::error("late")),
            None,
        )
        .await
        .unwrap();
    assert!(!again);
    queue.drop_schema().await.unwrap();
}

/// Not a benchmark: a bound that catches a lookup gone slow (a lost index,
/// a pool starved by the listener).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_are_quick() {
    let Some(queue) = queue().await else { return };
    let id = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    let start = std::time::Instant::now();
    for _ in 0..100 {
        assert!(queue.get(id).await.unwrap().is_some());
    }
    let each = start.elapsed() / 100;
    println!("get: {each:?} each");
    let start = std::time::Instant::now();
    for _ in 0..100 {
        queue.ping().await.unwrap();
    }
    println!("ping: {:?} each", start.elapsed() / 100);
    assert!(each < Duration::from_millis(20), "get took {each:?}");
    queue.drop_schema().await.unwrap();
}

/// A lease lost with its worker is a failed attempt: the job keeps its
/// error, and throughput counts it as processed and failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_is_a_failed_attempt() {
    let Some(queue) = queue().await else { return };
    let id = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    let taken = queue
        .reserve(
            "a",
            &[Take::new(jobs::DEFAULT_QUEUE, 1)],
            Duration::from_millis(50),
        )
        .await
        .unwrap();
    assert_eq!(taken[0].job.id, id);
    jobs_testkit::eventually(
        "the lease expires and is recovered",
        Duration::from_secs(10),
        || async { queue.recover_expired().await.unwrap() == 1 },
    )
    .await;
    let job = queue.get(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Retrying);
    assert_eq!(job.errors.len(), 1, "{:?}", job.errors);
    assert_eq!(job.errors[0].attempt, 1);
    assert!(
        job.errors[0].error.contains("stopped renewing its lease"),
        "{:?}",
        job.errors
    );
    let minutes = queue.throughput(3).await.unwrap();
    let counted: (u64, u64) = minutes
        .iter()
        .fold((0, 0), |(p, f), t| (p + t.processed, f + t.failed));
    assert_eq!(counted, (1, 1), "{minutes:?}");
    queue.drop_schema().await.unwrap();
}

/// Migrations run again (as every `connect` does), also concurrently,
/// change nothing and keep the jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent() {
    let Some(queue) = queue().await else { return };
    let id = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
    let (a, b) = tokio::join!(queue.migrate(), queue.migrate());
    a.unwrap();
    b.unwrap();
    let url = jobs_examples::database_url().unwrap();
    let again = PostgresJobQueue::builder(&url)
        .schema(queue.schema())
        .connect()
        .await
        .unwrap();
    assert!(again.get(id).await.unwrap().is_some());
    let versions: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM \"{}\".jobs_migrations ORDER BY version",
        queue.schema()
    )))
    .fetch_all(queue.pool())
    .await
    .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8]);
    queue.drop_schema().await.unwrap();
}

/// A schema name that could not be a channel or would need quoting tricks
/// is refused before anything is touched.
#[tokio::test]
async fn bad_schema_is_refused() {
    let err = PostgresJobQueue::builder("postgres://127.0.0.1/none")
        .schema("a\"b")
        .build()
        .unwrap_err();
    assert!(matches!(err, jobs::Error::InvalidArgument(_)), "{err:?}");
    assert!(err.to_string().contains("schema"), "{err}");
}

/// Retention: finished jobs beyond `max_finished` are deleted by the
/// pruner, the newest kept; waiting ones are never touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_newest_finished() {
    let Some(url) = jobs_examples::database_url() else {
        return;
    };
    let queue = PostgresJobQueue::builder(&url)
        .schema(jobs_examples::unique_name("pgq"))
        .max_finished(2)
        .connect()
        .await
        .unwrap();
    let ids = queue
        .enqueue_many((0..5).map(|n| Job::new("ok", json!({ "n": n }))).collect())
        .await
        .unwrap();
    queue.enqueue(Job::new("waiting", json!({}))).await.unwrap();
    for _ in 0..5 {
        let r = queue
            .reserve("a", &[Take::new(jobs::DEFAULT_QUEUE, 1)], LEASE)
            .await
            .unwrap()
            .remove(0);
        let ok = Outcome::Completed(jobs::JobResult::success(json!(null)));
        assert!(queue.finish(r.lease, ok, None).await.unwrap());
    }
    jobs_testkit::eventually("the pruner ran", Duration::from_secs(10), || async {
        queue.counts().await.unwrap().completed == 2
    })
    .await;
    assert!(
        queue.get(ids[0]).await.unwrap().is_none(),
        "the oldest went"
    );
    assert!(
        queue.get(ids[4]).await.unwrap().is_some(),
        "the newest stays"
    );
    assert_eq!(queue.counts().await.unwrap().pending, 1);
    queue.drop_schema().await.unwrap();
}

mod transactional {
    use super::*;
    use jobs::{BackgroundJobWorker, JobError, job};
    use jobs_testkit::probe::Probe;
    use jobs_testkit::suite::Running;

    #[job]
    async fn welcome(to: String) -> Result<(), JobError> {
        let _ = to;
        Ok(())
    }

    fn worker(queue: &PostgresJobQueue, probe: &Probe) -> BackgroundJobWorker {
        BackgroundJobWorker::builder()
            .queue(queue.clone())
            .processor(probe.clone())
            .polling_interval(Duration::from_millis(100))
            .build()
            .unwrap()
    }

    /// While the transaction is open a waiting worker sees nothing (it
    /// polls every 100 ms, and is woken by nothing); rolled back, the job
    /// never existed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rolled_back_job_never_runs() {
        let Some(queue) = queue().await else { return };
        let probe = Probe::new();
        let running = Running::start(worker(&queue, &probe));
        let mut tx = queue.pool().begin().await.unwrap();
        let id = queue
            .with_tx(&mut tx)
            .enqueue(Job::new("ok", json!({"in": "tx"})))
            .await
            .unwrap();
        // The worker polls a few times while the transaction is open.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            probe.started().is_empty(),
            "a worker saw an uncommitted job"
        );
        assert!(
            queue.get(id).await.unwrap().is_none(),
            "visible before commit"
        );
        tx.rollback().await.unwrap();
        // A job pushed afterwards runs: the worker was alive all along.
        let after = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
        assert_eq!(
            queue.wait_for(after).await.unwrap().status,
            JobStatus::Completed
        );
        assert!(
            queue.get(id).await.unwrap().is_none(),
            "rolled back, yet stored"
        );
        assert!(probe.attempts_of(id).is_empty(), "the rolled-back job ran");
        drop(running);
        queue.drop_schema().await.unwrap();
    }

    /// Committed, the job runs once; the waiting worker is woken by the
    /// commit, long before its polling interval.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn committed_job_runs_once() {
        let Some(queue) = queue().await else { return };
        let probe = Probe::new();
        let w = BackgroundJobWorker::builder()
            .queue(queue.clone())
            .processor(probe.clone())
            .polling_interval(Duration::from_secs(30))
            .build()
            .unwrap();
        let running = Running::start(w);
        // Let the worker find the queue empty and wait.
        let warmup = queue.enqueue(Job::new("ok", json!({}))).await.unwrap();
        queue.wait_for(warmup).await.unwrap();
        let mut tx = queue.pool().begin().await.unwrap();
        let ids = queue
            .with_tx(&mut tx)
            .enqueue_many(vec![
                Job::new("ok", json!({"n": 1})),
                Job::new("ok", json!({"n": 2})),
            ])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let woken = std::time::Instant::now();
        for &id in &ids {
            let done = tokio::time::timeout(Duration::from_secs(10), queue.wait_for(id))
                .await
                .expect("the committed job ran")
                .unwrap();
            assert_eq!(done.status, JobStatus::Completed);
            assert_eq!(probe.attempts_of(id).len(), 1, "ran exactly once");
        }
        assert!(woken.elapsed() < Duration::from_secs(10));
        drop(running);
        queue.drop_schema().await.unwrap();
    }

    /// The helpers `#[job]` generates take the transaction handle; a failed
    /// enqueue in it (a taken id) is an error, and the caller rolls back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn generated_helpers_enqueue_in_the_transaction() {
        let Some(queue) = queue().await else { return };
        let mut tx = queue.pool().begin().await.unwrap();
        let id = welcome::enqueue(&queue.with_tx(&mut tx), "a@example.com".into())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let stored = queue.get(id).await.unwrap().expect("committed");
        assert_eq!(stored.name, "welcome");
        assert_eq!(stored.args, json!({"to": "a@example.com"}));

        let mut taken = Job::new("welcome", json!({"to": "b@example.com"}));
        taken.id = id;
        let mut tx = queue.pool().begin().await.unwrap();
        let err = queue.with_tx(&mut tx).enqueue(taken).await.unwrap_err();
        assert!(
            matches!(err, jobs::Error::Duplicate(d) if d == id),
            "{err:?}"
        );
        tx.rollback().await.unwrap();
        assert_eq!(queue.counts().await.unwrap().pending, 1);
        queue.drop_schema().await.unwrap();
    }
}

/// Unique jobs are atomic under concurrent enqueues: of many pushes of one
/// key at once, from separate connections, exactly one stores a job and
/// every other answers a conflict naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_is_atomic_under_concurrent_enqueues() {
    let Some(queue) = queue().await else { return };
    let pushes = (0..16).map(|n| {
        let queue = queue.clone();
        tokio::spawn(async move {
            let job = Job::new("ok", json!({ "n": n })).unique(jobs::Unique::new("the-key"));
            queue.push(job).await.unwrap()
        })
    });
    let answers: Vec<jobs::Enqueued> = futures_join(pushes).await;
    let stored: Vec<_> = answers.iter().filter(|a| !a.conflict).collect();
    assert_eq!(stored.len(), 1, "{answers:?}");
    assert!(answers.iter().all(|a| a.id == stored[0].id), "{answers:?}");
    assert_eq!(queue.counts().await.unwrap().pending, 1);
    queue.drop_schema().await.unwrap();
}

async fn futures_join<T: Send + 'static>(
    tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        out.push(task.await.unwrap());
    }
    out
}

/// Sixteen concurrent `reserve` calls with the same takes share
/// statements: of 10 waiting jobs, each caller gets at most what it asked
/// for, and together they get all 10, each job once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reserves_share_the_jobs() {
    let Some(queue) = queue().await else { return };
    let mut waiting = std::collections::HashSet::new();
    for n in 0..10 {
        waiting.insert(
            queue
                .enqueue(Job::new("ok", json!({ "n": n })))
                .await
                .unwrap(),
        );
    }
    let calls = (0..16).map(|n| {
        let queue = queue.clone();
        let max = 1 + n % 3;
        tokio::spawn(async move {
            let takes = [Take::new(jobs::DEFAULT_QUEUE, max)];
            (max, queue.reserve("a", &takes, LEASE).await.unwrap())
        })
    });
    let answers = futures_join(calls).await;
    let mut reserved = std::collections::HashSet::new();
    let mut tokens = std::collections::HashSet::new();
    for (max, got) in &answers {
        assert!(got.len() <= *max, "asked for {max}, got {}", got.len());
        for r in got {
            assert_eq!(r.job.status, JobStatus::Running);
            assert_eq!(r.lease.job_id, r.job.id);
            assert!(reserved.insert(r.job.id), "{} reserved twice", r.job.id);
            assert!(tokens.insert(r.lease.token), "a token given twice");
        }
    }
    assert_eq!(reserved, waiting);
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.pending, counts.running), (0, 10), "{counts:?}");
    queue.drop_schema().await.unwrap();
}

/// A queue-wide concurrency limit holds over merged reserves: 16
/// concurrent callers of a queue limited to 3 running get 3 jobs in all,
/// and the rest stay waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reserves_keep_the_queue_limit() {
    let Some(queue) = queue().await else { return };
    for n in 0..10 {
        let job = Job::new("ok", json!({ "n": n })).queue("limited");
        queue.enqueue(job).await.unwrap();
    }
    let calls = (0..16).map(|_| {
        let queue = queue.clone();
        tokio::spawn(async move {
            let take = Take::new("limited", 2).limits(jobs::QueueLimits::new().concurrency(3));
            queue.reserve("a", &[take], LEASE).await.unwrap()
        })
    });
    let answers = futures_join(calls).await;
    assert!(answers.iter().all(|got| got.len() <= 2), "{answers:?}");
    let reserved: std::collections::HashSet<_> =
        answers.iter().flatten().map(|r| r.job.id).collect();
    assert_eq!(
        answers.iter().map(Vec::len).sum::<usize>(),
        3,
        "{answers:?}"
    );
    assert_eq!(reserved.len(), 3);
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.pending, counts.running), (7, 3), "{counts:?}");
    queue.drop_schema().await.unwrap();
}
