//! `#[job]` arguments that do not serialise: the generated `job(..)` still
//! returns a `Job`, which every enqueue refuses with `Error::Serialize`, so
//! nothing is stored; the generated `enqueue(..)` returns that `Err`.

use std::collections::HashMap;

use jobs::prelude::*;
use jobs::{Error, QueueCounts};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// JSON object keys are strings: a map keyed by pairs does not serialise.
#[job(priority = "high", retries = 1)]
async fn sum_pairs(pairs: HashMap<(u32, u32), u32>) -> Result<u32, JobError> {
    Ok(pairs.values().sum())
}

/// A value whose own `Serialize` refuses.
#[derive(Debug)]
pub struct Sealed;

impl Serialize for Sealed {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "a sealed value is not for storing",
        ))
    }
}

impl<'de> Deserialize<'de> for Sealed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer).map(|()| Sealed)
    }
}

#[job]
async fn open(sealed: Sealed, note: String) {
    let _ = (sealed, note);
}

fn pairs() -> HashMap<(u32, u32), u32> {
    HashMap::from([((1, 2), 3)])
}

fn assert_serialize_error(err: &Error, job: &str, message: &str) {
    assert!(
        matches!(err, Error::Serialize { name, message: m } if name == job && m == message),
        "{err:?}"
    );
}

async fn assert_empty(queue: &MemoryJobQueue) {
    assert_eq!(queue.counts().await.unwrap(), QueueCounts::default());
    assert!(queue.list(None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn job_then_enqueue_is_a_serialize_error_and_stores_nothing() {
    let queue = MemoryJobQueue::new();
    let job = sum_pairs::job(pairs());
    // Still the attribute's job, without arguments.
    assert_eq!(job.name, "sum_pairs");
    assert_eq!((job.priority, job.max_retries), (JobPriority::High, 1));
    assert_eq!(job.args, serde_json::Value::Null);
    assert_serialize_error(
        &job.validate().unwrap_err(),
        "sum_pairs",
        "key must be a string",
    );

    let err = queue.enqueue(job.clone()).await.unwrap_err();
    assert_serialize_error(&err, "sum_pairs", "key must be a string");
    // The error `Job::with_args` gives for the same arguments.
    let args = sum_pairs::Args { pairs: pairs() };
    let direct = Job::with_args(sum_pairs::NAME, &args).unwrap_err();
    assert_eq!(err.to_string(), direct.to_string());
    assert_serialize_error(
        &queue.enqueue(args.into_job()).await.unwrap_err(),
        "sum_pairs",
        "key must be a string",
    );
    // A batch holding it is refused whole.
    let batch = vec![sum_pairs::job(HashMap::new()), job];
    assert_serialize_error(
        &queue.enqueue_many(batch).await.unwrap_err(),
        "sum_pairs",
        "key must be a string",
    );
    assert_empty(&queue).await;
}

#[tokio::test]
async fn the_generated_enqueue_returns_the_error() {
    let queue = MemoryJobQueue::new();
    let err = sum_pairs::enqueue(&queue, pairs()).await.unwrap_err();
    assert_serialize_error(&err, "sum_pairs", "key must be a string");
    let err = open::enqueue(&queue, Sealed, "hi".into())
        .await
        .unwrap_err();
    assert_serialize_error(&err, "open", "a sealed value is not for storing");
    assert_empty(&queue).await;

    // On a worker too (it enqueues on its queue), and the queue stays empty.
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    let err = open::enqueue(&worker, Sealed, "hi".into())
        .await
        .unwrap_err();
    assert_serialize_error(&err, "open", "a sealed value is not for storing");
    assert_serialize_error(
        &worker
            .submit_job(sum_pairs::job(pairs()))
            .await
            .unwrap_err(),
        "sum_pairs",
        "key must be a string",
    );
    assert_empty(&queue).await;

    // Arguments that serialise are unaffected.
    let id = sum_pairs::enqueue(&queue, HashMap::new()).await.unwrap();
    let stored = queue.get(id).await.unwrap().expect("stored");
    assert_eq!(stored.args, serde_json::json!({"pairs": {}}));
}
