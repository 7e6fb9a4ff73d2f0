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
