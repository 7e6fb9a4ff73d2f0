//! `#[job]`'s flow-control keys (`queue`, `concurrency`, `rate_limit`,
//! `key`, `unique`): what the generated `job(..)` carries, what the
//! registration (and so a periodic job's occurrences) carries, and where
//! an enqueued job waits.

use std::time::Duration;

use chrono::Utc;
use jobs::__private::{Flow, UniqueSpec};
use jobs::flow::{DEFAULT_UNIQUE_STATES, key};
use jobs::prelude::*;
use jobs::{ConcurrencyLimit, Rate, RateLimit, Unique};
use serde_json::json;

/// One sync per account at a time, ten per account per minute.
#[job(queue = "sync", concurrency = 1, rate_limit = "10/min", key = account_id)]
async fn sync_account(account_id: u64, full: bool) {
    let _ = (account_id, full);
}

/// At most two at once, whatever the arguments.
#[job(concurrency = 2)]
async fn resize(width: u32) {
    let _ = width;
}

/// A hundred sends a minute, all mailers together.
#[job(queue = "mailers", rate_limit = "100/min")]
async fn mail(to: String) {
    let _ = to;
}

/// A digest per user and kind at most every ten minutes, even once done.
#[job(unique(by = [user_id, kind], for = "10m", states = [pending, running, retrying, completed]))]
async fn digest(user_id: u64, kind: String, force: bool) {
    let _ = (user_id, kind, force);
}

/// Once per set of arguments in an hour.
#[job(unique = "1h")]
async fn report(month: String, pages: u32) {
    let _ = (month, pages);
}

/// Unique by all arguments for as long as the first job waits or runs.
#[job(unique)]
async fn rebuild(index: String) {
    let _ = index;
}

/// Keys that are structured values, and a raw identifier.
#[job(concurrency = 3, key = r#type, unique(by = [r#type]))]
async fn typed(r#type: Vec<String>, cx: JobContext) {
    let _ = (r#type, cx);
}

/// Periodic, in its own queue, never two at once.
#[job(
    every = "1m",
    queue = "maintenance",
    concurrency = 1,
    unique(for = "30s")
)]
async fn vacuum() {}

#[test]
fn key_partitions_the_limits_by_the_parameters_value() {
    let job = sync_account::job(7, true);
    assert_eq!(job.queue, "sync");
    assert_eq!(
        job.concurrency.as_deref(),
        Some(&ConcurrencyLimit {
            key: "sync_account:7".into(),
            max: 1
        })
    );
    assert_eq!(
        job.rate_limit.as_deref(),
        Some(&RateLimit {
            key: "sync_account:7".into(),
            rate: Rate::new(10, Duration::from_secs(60)),
        })
    );
    assert_eq!(job.unique, None);
    // The key is `flow::key` of the value's JSON.
    assert_eq!(
        job.concurrency.unwrap().key,
        key(sync_account::NAME, &serde_json::to_value(7u64).unwrap())
    );
    // Each account has its own key.
    let other = sync_account::job(8, true);
    assert_eq!(other.concurrency.unwrap().key, "sync_account:8");
    // `Args::into_job` is the same job.
    let args = sync_account::Args {
        account_id: 7,
        full: false,
    };
    assert_eq!(args.into_job().rate_limit.unwrap().key, "sync_account:7");
}

#[test]
fn without_key_the_limits_are_the_jobs_name() {
    let job = resize::job(640);
    assert_eq!(job.queue, jobs::DEFAULT_QUEUE);
    assert_eq!(
        job.concurrency.as_deref(),
        Some(&ConcurrencyLimit {
            key: "resize".into(),
            max: 2
        })
    );
    assert_eq!(job.rate_limit, None);

    let job = mail::job("a@example.com".into());
    assert_eq!(job.queue, "mailers");
    assert_eq!(job.concurrency, None);
    assert_eq!(
        job.rate_limit.as_deref(),
        Some(&RateLimit {
            key: "mail".into(),
            rate: "100/min".parse().unwrap(),
        })
    );
    // The same limit a hand-built job gets from the builder.
    let built =
        Job::new("mail", json!({"to": "a@example.com"})).rate_limit("100/min".parse().unwrap());
    assert_eq!(job.rate_limit, built.rate_limit);
}

#[test]
fn unique_by_names_the_parameters_in_order() {
    let job = digest::job(7, "weekly".into(), true);
    let unique = job.unique.unwrap();
    assert_eq!(unique.key, r#"digest:[7,"weekly"]"#);
    assert_eq!(unique.key, key(digest::NAME, &json!([7, "weekly"])));
    assert_eq!(unique.period, Some(Duration::from_secs(600)));
    assert_eq!(
        unique.states,
        [
            JobStatus::Pending,
            JobStatus::Running,
            JobStatus::Retrying,
            JobStatus::Completed
        ]
    );
    // `force` is not part of the key.
    let forced = digest::job(7, "weekly".into(), false);
    assert_eq!(forced.unique.unwrap().key, r#"digest:[7,"weekly"]"#);
    assert_ne!(
        digest::job(8, "weekly".into(), true).unique.unwrap().key,
        r#"digest:[7,"weekly"]"#
    );
    assert_eq!((job.concurrency, job.rate_limit), (None, None));
}

#[test]
fn unique_with_a_duration_is_by_all_the_arguments() {
    let job = report::job("2024-05".into(), 3);
    let args = job.args.clone();
    assert_eq!(args, json!({"month": "2024-05", "pages": 3}));
    assert_eq!(
        job.unique.as_deref(),
        Some(&Unique::new(key("report", &args)).period(Duration::from_secs(3600)))
    );
    assert_eq!(job.unique.as_ref().unwrap().states, DEFAULT_UNIQUE_STATES);
    // What `Job::unique_for` makes of the same job.
    let built = Job::new("report", args).unique_for(Duration::from_secs(3600));
    assert_eq!(job.unique, built.unique);

    let job = rebuild::job("users".into());
    assert_eq!(
        job.unique.as_deref(),
        Some(&Unique::new(r#"rebuild:{"index":"users"}"#))
    );
}

#[test]
fn raw_identifiers_and_structured_values_key_as_json() {
    let job = typed::job(vec!["a".into(), "b".into()]);
    assert_eq!(job.args, json!({"type": ["a", "b"]}));
    assert_eq!(job.concurrency.unwrap().key, r#"typed:["a","b"]"#);
    assert_eq!(job.unique.unwrap().key, r#"typed:[["a","b"]]"#);
}

#[test]
fn the_registration_carries_queue_and_flow() {
    let registration = sync_account::registration();
    assert_eq!(registration.queue, Some("sync"));
    assert_eq!(
        registration.flow,
        Flow {
            concurrency: Some(1),
            rate_limit: Some(Rate::new(10, Duration::from_secs(60))),
            key: Some("account_id"),
            unique: None,
        }
    );
    assert_eq!(digest::registration().queue, None);
    assert_eq!(
        digest::registration().flow.unique,
        Some(UniqueSpec {
            by: Some(&["user_id", "kind"]),
            period: Some(Duration::from_secs(600)),
            states: &[
                JobStatus::Pending,
                JobStatus::Running,
                JobStatus::Retrying,
                JobStatus::Completed
            ],
        })
    );
    assert_eq!(typed::registration().flow.key, Some("type"));
    assert_eq!(resize::registration().flow.unique, None);
    assert_eq!(report::registration().flow.concurrency, None);
}

#[test]
fn a_periodic_jobs_occurrences_carry_its_queue_and_limits() {
    let registry = Registry::from_registrations([vacuum::registration()]).unwrap();
    let tasks = registry.periodic_tasks().unwrap();
    let [task] = &tasks[..] else {
        panic!("one task expected, got {}", tasks.len());
    };
    let now = Utc::now();
    let job = task.job_for(now, now);
    assert_eq!(job.name, "vacuum");
    assert_eq!(job.queue, "maintenance");
    assert_eq!(
        job.concurrency.as_deref(),
        Some(&ConcurrencyLimit {
            key: "vacuum".into(),
            max: 1
        })
    );
    // The same key as `vacuum::job()`'s: a function without parameters.
    assert_eq!(
        job.unique.as_deref(),
        Some(&Unique::new("vacuum:{}").period(Duration::from_secs(30)))
    );
    assert_eq!(job.unique, vacuum::job().unique);
    assert_eq!(vacuum::job().queue, "maintenance");
}

#[tokio::test]
async fn enqueue_puts_the_job_in_its_named_queue() {
    let queue = MemoryJobQueue::new();
    let id = sync_account::enqueue(&queue, 7, false).await.unwrap();
    let stored = queue.get(id).await.unwrap().unwrap();
    assert_eq!(stored.queue, "sync");
    assert_eq!(stored.concurrency.unwrap().key, "sync_account:7");
    assert_eq!(stored.rate_limit.unwrap().key, "sync_account:7");

    let id = mail::enqueue(&queue, "a@example.com".into()).await.unwrap();
    assert_eq!(queue.get(id).await.unwrap().unwrap().queue, "mailers");
    let id = resize::enqueue(&queue, 10).await.unwrap();
    assert_eq!(queue.get(id).await.unwrap().unwrap().queue, "default");

    let id = digest::enqueue(&queue, 1, "daily".into(), false)
        .await
        .unwrap();
    let stored = queue.get(id).await.unwrap().unwrap();
    assert_eq!(stored.unique.unwrap().key, r#"digest:[1,"daily"]"#);
}

#[tokio::test]
async fn a_second_unique_enqueue_returns_the_first_job() {
    let queue = MemoryJobQueue::new();
    let first = digest::enqueue(&queue, 1, "daily".into(), false)
        .await
        .unwrap();
    let second = digest::enqueue(&queue, 1, "daily".into(), true)
        .await
        .unwrap();
    assert_eq!(second, first);
    let third = digest::enqueue(&queue, 2, "daily".into(), false)
        .await
        .unwrap();
    assert_ne!(third, first);
}
