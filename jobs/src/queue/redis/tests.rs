//! The state record read and written on both sides: every status reached
//! through the queue is parsed by the Rust reader and by the Lua `header`
//! on a real Redis (`JOBS_REDIS_URL`), and each side's builder gives back
//! what is stored; edge cases are accepted or refused alike.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use super::record::{self, Header};
use super::{RedisJobQueue, scripts};
use crate::job::{Job, JobStatus};
use crate::queue::{Enqueue, JobQueue, Outcome, QueueAdmin};
use crate::result::JobResult;

async fn queue() -> Option<(RedisJobQueue, redis::aio::ConnectionManager)> {
    let url = jobs_testkit::redis_url()?;
    let queue = RedisJobQueue::connect(&url, &jobs_testkit::unique_name("record"))
        .await
        .unwrap();
    let conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    Some((queue, conn))
}

/// What the Lua `header` reads in `raw`, and what `build` makes of it
/// (`None` if `header` refuses it).
async fn lua_header(queue: &RedisJobQueue, raw: &[u8]) -> Option<(Vec<String>, Vec<u8>)> {
    let script = scripts::with_prelude(
        "local v = ARGV[ARG_OWN]
         local s, r, a, m, t, st, co, pos = header(v)
         if not s then return false end
         local p = string.sub(v, pos)
         return { { s, r, a, m, t, st, co }, build(s, r, a, m, t, st, co, p) }",
    );
    let shared = queue.shared();
    let mut call = shared.common().call(&script);
    call.arg(raw);
    let reply: Option<(Vec<String>, Vec<u8>)> = shared.call("test", &call).await.unwrap();
    reply
}

fn rust_fields(header: &Header) -> Vec<String> {
    let time = |t: Option<i64>| t.map_or(String::new(), |t| t.to_string());
    vec![
        char::from(record::status_code(header.status)).to_string(),
        header.rank.to_string(),
        header.attempts.to_string(),
        header.max_retries.to_string(),
        header.token.to_string(),
        time(header.started_us),
        time(header.completed_us),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_reads_the_same_in_lua_and_rust() {
    let Some((queue, mut conn)) = queue().await else {
        return;
    };
    let lease = Duration::from_secs(30);
    // An error with every character a hand-built JSON string gets wrong.
    let error = "bad \"quote\" \\ back|slash \u{1f} ünïcödé 🚀";
    let mut cases = Vec::new();

    let reserve = async |job: Job| {
        let id = queue.enqueue(job).await.unwrap();
        let taken = queue
            .reserve("test", &[crate::Take::new(crate::DEFAULT_QUEUE, 1)], lease)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(taken.job.id, id);
        taken.lease
    };
    let running = reserve(Job::new("a", json!({}))).await;
    let retrying = reserve(Job::new("a", json!({}))).await;
    let completed = reserve(Job::new("a", json!({}))).await;
    let failed = reserve(Job::new("a", json!({})).max_retries(0)).await;
    let expired = reserve(Job::new("a", json!({}))).await;
    let cancelled = reserve(Job::new("a", json!({}))).await;
    let outcomes = [
        (
            retrying,
            Outcome::Retry {
                result: JobResult::error(error),
                at: Utc::now() + chrono::Duration::hours(1),
            },
            JobStatus::Retrying,
        ),
        (
            completed,
            Outcome::Completed(JobResult::success(json!({ "note": error }))),
            JobStatus::Completed,
        ),
        (
            failed,
            Outcome::Failed(JobResult::error(error)),
            JobStatus::Failed,
        ),
        (expired, Outcome::Expired, JobStatus::Expired),
    ];
    for (lease, outcome, status) in outcomes {
        assert!(queue.finish(lease, outcome, None).await.unwrap());
        cases.push((lease.job_id, status));
    }
    assert!(queue.cancel(cancelled.job_id).await.unwrap().is_cancelled());
    cases.push((cancelled.job_id, JobStatus::Cancelled));
    cases.push((running.job_id, JobStatus::Running));
    let pending = queue.enqueue(Job::new("a", json!({}))).await.unwrap();
    cases.push((pending, JobStatus::Pending));

    for (id, status) in cases {
        let raw: Vec<u8> = redis::AsyncCommands::hget(&mut conn, queue.state_key(), id.to_string())
            .await
            .unwrap();
        let (header, patches) = record::parse_state(&raw).unwrap();
        assert_eq!(header.status, status);
        let mut rebuilt = header.encode().into_bytes();
        rebuilt.extend_from_slice(patches);
        assert_eq!(rebuilt, raw, "the Rust builder gives back the stored state");
        let (fields, built) = lua_header(&queue, &raw).await.expect("Lua parses it");
        assert_eq!(fields, rust_fields(&header), "{status:?}");
        assert_eq!(built, raw, "the Lua builder gives back the stored state");
        let job = queue.get(id).await.unwrap().unwrap();
        assert_eq!((job.id, job.status), (id, status));
        if matches!(status, JobStatus::Retrying | JobStatus::Failed) {
            assert_eq!(job.last_error.as_deref(), Some(error));
            // The attempt number the script put in front of the patch.
            let errors: Vec<_> = job
                .errors
                .iter()
                .map(|e| (e.attempt, &e.error[..]))
                .collect();
            assert_eq!(errors, [(1, error)], "{status:?}");
        }
    }
    queue.purge().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lua_and_rust_accept_and_refuse_the_same_states() {
    let Some((queue, _)) = queue().await else {
        return;
    };
    let samples: &[&[u8]] = &[
        b"P1|0|3|0|||",
        b"R0|1|3|12|1700000000000000||",
        b"C3|1|3|12|1700000000000000|1700000000000001|\x1f{\"result\":{\"success\":true}}",
        b"T2|4294967295|4294967295|9999999999999999999|9999999999999999|9999999999999999|",
        b"F1|2|3|7|||x|y|z",
        b"P1|4294967296|3|0|||",
        b"P1|0|99999999999|0|||",
        b"P1|99999999999999999999|3|0|||",
        b"P1|0|3|10000000000000000000|||",
        b"P1|0|3|0|10000000000000000||",
        b"P1|00000000001|3|0|||",
        b"P4|0|3|0|||",
        b"Q1|0|3|0|||",
        b"p1|0|3|0|||",
        b"P1|-1|3|0|||",
        b"P1||3|0|||",
        b"P1|0|3|0||",
        b"P1|0|3|0|||\xff",
        b"P|0|3|0|||",
        b"hand-edited",
        b"",
    ];
    for raw in samples {
        let rust = record::parse_state(raw);
        let lua = lua_header(&queue, raw).await;
        assert_eq!(
            rust.is_ok(),
            lua.is_some(),
            "{:?}: Rust {rust:?}, Lua {lua:?}",
            String::from_utf8_lossy(raw)
        );
        if let (Ok((header, _)), Some((fields, built))) = (&rust, &lua) {
            assert_eq!(fields, &rust_fields(header));
            assert_eq!(&built[..], *raw);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lua_failure_patch_is_json_rust_reads() {
    let Some((queue, _)) = queue().await else {
        return;
    };
    let message = "in jobs:{a \"b\" \\ c}:state: ünïcödé 🚀 \n\t\u{1}";
    let script = scripts::with_prelude(
        "return build('F', '1', '1', '3', '0', '1', '2', failure(ARGV[ARG_OWN], 'CorruptRecord', false))",
    );
    let shared = queue.shared();
    let mut call = shared.common().call(&script);
    call.arg(message);
    let state: Vec<u8> = shared.call("test", &call).await.unwrap();
    let body = serde_json::to_vec(&Job::new("a", json!({}))).unwrap();
    let (job, _) = record::decode(crate::JobId::new(), &state, &body).unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.last_error.as_deref(), Some(message));
    let result = job.result.unwrap();
    assert_eq!(result.error.as_deref(), Some(message));
    assert_eq!(result.error_type.as_deref(), Some("CorruptRecord"));
    assert!(!result.retryable);
}
