//! `AnyQueue::connect`: the backend and namespace picked from a URL.

use jobs::{AnyQueue, Enqueue, Error, Job, QueueAdmin};
use serde_json::json;

#[tokio::test]
async fn unknown_scheme_is_refused() {
    let err = AnyQueue::connect("amqp://127.0.0.1:5672/")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("amqp://") && m.contains("redis://")),
        "{err}"
    );
    let err = AnyQueue::connect("127.0.0.1:6379").await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[tokio::test]
async fn memory_queue_is_labelled() {
    let queue = AnyQueue::new(jobs::MemoryJobQueue::new());
    assert_eq!(queue.backend(), "memory");
    let id = queue
        .enqueue(Job::new("hello", json!({"n": 1})))
        .await
        .unwrap();
    assert_eq!(queue.get(id).await.unwrap().unwrap().args, json!({"n": 1}));
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_url_connects_in_the_namespace() {
    let Some(url) = jobs_examples::redis_url() else {
        return;
    };
    let name = jobs_examples::unique_name("any");
    let queue = AnyQueue::connect_to(&url, Some(&name)).await.unwrap();
    assert_eq!(queue.backend(), "redis");
    let id = queue
        .enqueue(Job::new("hello", json!({"n": 2})))
        .await
        .unwrap();
    // The same job, seen through the concrete queue of that name.
    let direct = jobs::RedisJobQueue::connect(&url, &name).await.unwrap();
    assert_eq!(direct.get(id).await.unwrap().unwrap().args, json!({"n": 2}));
    // ... and not in the default namespace.
    let default = AnyQueue::connect(&url).await.unwrap();
    assert!(default.get(id).await.unwrap().is_none());
    direct.purge().await.unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_url_connects_in_the_schema() {
    let Some(url) = jobs_examples::database_url() else {
        return;
    };
    let schema = jobs_examples::unique_name("any");
    // `open` refuses a schema that does not exist, and creates nothing.
    let err = AnyQueue::open(&url, Some(&schema)).await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains(&schema)),
        "{err}"
    );
    let queue = AnyQueue::connect_to(&url, Some(&schema)).await.unwrap();
    assert_eq!(queue.backend(), "postgres");
    // Once it exists, `open` finds it.
    AnyQueue::open(&url, Some(&schema)).await.unwrap();
    let id = queue
        .enqueue(Job::new("hello", json!({"n": 3})))
        .await
        .unwrap();
    let direct = jobs::PostgresJobQueue::builder(&url)
        .schema(&schema)
        .connect()
        .await
        .unwrap();
    assert_eq!(direct.get(id).await.unwrap().unwrap().args, json!({"n": 3}));
    direct.drop_schema().await.unwrap();
}
