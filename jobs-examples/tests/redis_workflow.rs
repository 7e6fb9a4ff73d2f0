//! Workflows and batches on Redis across worker processes: a 1,000-job
//! batch run by two processes fires each callback once; a 100-step DAG
//! whose worker process is SIGKILLed mid-run is finished by another one,
//! with no step stranded or released twice.
//!
//! The worker processes are this test binary run again (the `child_worker`
//! test, which does nothing unless `JOBS_WF_CHILD` is set); their
//! processor records every execution in Redis.
#![cfg(feature = "redis")]

use std::collections::HashMap;
use std::time::Duration;

use jobs::prelude::*;
use jobs::workflow::{Batch, ON_COMPLETE, ON_SUCCESS, Workflow, WorkflowId};
use jobs::{JobContext, RedisJobQueue};
use jobs_examples::child::ChildProcess;
use jobs_examples::{redis_url, unique_name as unique};
use jobs_testkit::eventually;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde_json::{Value, json};

async fn raw_conn(url: &str) -> ConnectionManager {
    redis::Client::open(url)
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap()
}

/// Job id → how many times its processor started.
fn exec_key(queue: &str) -> String {
    format!("test:{{{queue}}}:exec")
}
/// Process id → how many executions it ran.
fn by_pid_key(queue: &str) -> String {
    format!("test:{{{queue}}}:by_pid")
}
/// Job id → the attempt number of its latest execution.
fn attempt_key(queue: &str) -> String {
    format!("test:{{{queue}}}:attempt")
}

/// Records each execution (job id, process, attempt) before it works, then
/// checks that a step got the result of every one of its dependencies, and
/// returns 1 plus the sum of their outputs. `slow` steps take 40 ms.
#[derive(Clone)]
struct Recorder {
    conn: ConnectionManager,
    queue: String,
}

impl JobProcessor for Recorder {
    async fn process(&self, _job: &Job) -> JobResult {
        JobResult::failure(JobError::permanent("called without a context"))
    }

    async fn process_with(&self, job: &Job, cx: &JobContext) -> JobResult {
        let id = job.id.to_string();
        let mut pipe = redis::pipe();
        pipe.hincr(exec_key(&self.queue), &id, 1)
            .hincr(by_pid_key(&self.queue), std::process::id(), 1)
            .hset(attempt_key(&self.queue), &id, job.attempts);
        let mut conn = self.conn.clone();
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            return JobResult::failure(JobError::retryable(e.to_string()));
        }
        if job.name == "slow" {
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        let wanted = job.step.as_ref().map_or(0, |s| s.depends_on.len());
        let results = cx.results();
        if results.len() != wanted {
            return JobResult::failure(JobError::permanent(format!(
                "{} results for {wanted} dependencies",
                results.len()
            )));
        }
        let upstream: i64 = results
            .iter()
            .filter_map(|r| r.output().and_then(Value::as_i64))
            .sum();
        JobResult::success(json!(1 + upstream))
    }
}

/// This test binary, run again as a worker process (`child_worker`).
fn spawn_worker(url: &str, queue: &str, lease: Duration) -> ChildProcess {
    let lease = lease.as_millis().to_string();
    let mut child = ChildProcess::spawn(
        "child_worker",
        &[
            ("JOBS_WF_CHILD", "1"),
            ("JOBS_REDIS_URL", url),
            ("JOBS_WF_QUEUE", queue),
            ("JOBS_WF_LEASE_MS", &lease),
        ],
    );
    child.drain_output();
    child
}

/// The worker process: runs until Ctrl-C (SIGINT).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_worker() {
    if std::env::var_os("JOBS_WF_CHILD").is_none() {
        return;
    }
    let url = std::env::var("JOBS_REDIS_URL").unwrap();
    let name = std::env::var("JOBS_WF_QUEUE").unwrap();
    let lease: u64 = std::env::var("JOBS_WF_LEASE_MS").unwrap().parse().unwrap();
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let worker = BackgroundJobWorker::builder()
        .queue(queue)
        .processor(Recorder {
            conn: raw_conn(&url).await,
            queue: name,
        })
        .max_concurrent_jobs(8)
        .lease_duration(Duration::from_millis(lease))
        .polling_interval(Duration::from_secs(5))
        .build()
        .unwrap();
    jobs_testkit::child::serve_until_interrupted(worker).await;
}

/// Waits until every job of the workflow finished.
async fn finished(queue: &RedisJobQueue, id: WorkflowId, limit: Duration) {
    eventually("the workflow finished", limit, || async {
        queue
            .workflow(id)
            .await
            .unwrap()
            .is_some_and(|s| s.is_finished())
    })
    .await;
}

/// Purges the queue, checks that no key of it (workflow state included)
/// is left but the sequence counter, and removes that and the recorder's.
async fn cleanup(queue: &RedisJobQueue, conn: &mut ConnectionManager) {
    let name = queue.name().to_owned();
    queue.purge().await.unwrap();
    let seq = format!("jobs:{{{name}}}:seq");
    let left: Vec<String> = conn.keys(format!("jobs:{{{name}}}:*")).await.unwrap();
    let left: Vec<&String> = left
        .iter()
        .filter(|k| **k != seq && !k.contains(":stat:"))
        .collect();
    assert!(left.is_empty(), "purge leaves nothing: {left:?}");
    let _: () = conn
        .del(&[seq, exec_key(&name), by_pid_key(&name), attempt_key(&name)])
        .await
        .unwrap();
}

/// Two worker processes run a batch of 1,000 jobs with both callbacks:
/// every job runs once, each callback once, after all of them, seeing all
/// 1,000 results; both processes take part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_run_a_1000_job_batch_and_its_callbacks_once() {
    let Some(url) = redis_url() else { return };
    let name = unique("wf-batch");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let a = spawn_worker(&url, &name, Duration::from_secs(30));
    let b = spawn_worker(&url, &name, Duration::from_secs(30));
    let mut batch = Batch::new("import");
    let members: Vec<Job> = (0..1000)
        .map(|i| Job::new("member", json!({ "i": i })))
        .collect();
    let member_ids: Vec<JobId> = members.iter().map(|j| j.id).collect();
    for job in members {
        batch.add(job);
    }
    batch
        .on_success(Job::new("notify", json!({})))
        .on_complete(Job::new("cleanup", json!({})));
    let id = batch.enqueue(&queue).await.unwrap();
    finished(&queue, id, Duration::from_secs(60)).await;

    let status = queue.workflow(id).await.unwrap().unwrap();
    assert_eq!(
        (
            status.total,
            status.completed,
            status.failed,
            status.cancelled
        ),
        (1002, 1002, 0, 0)
    );
    let mut conn = raw_conn(&url).await;
    let exec: HashMap<String, u64> = conn.hgetall(exec_key(&name)).await.unwrap();
    assert_eq!(exec.len(), 1002, "every job ran");
    for member in &member_ids {
        assert_eq!(exec.get(&member.to_string()), Some(&1), "each job once");
    }
    for callback in [ON_SUCCESS, ON_COMPLETE] {
        let step = status.step(callback).unwrap();
        assert_eq!(step.status, JobStatus::Completed, "{callback}");
        assert_eq!(
            exec.get(&step.job_id.to_string()),
            Some(&1),
            "{callback} ran once"
        );
        let done = queue.get(step.job_id).await.unwrap().unwrap();
        // 1 + the 1,000 members' outputs (1 each): it saw every result.
        assert_eq!(done.result.unwrap().result, Some(json!(1001)));
        assert_eq!(
            queue.dependency_results(step.job_id).await.unwrap().len(),
            1000
        );
    }
    let by_pid: HashMap<u32, u64> = conn.hgetall(by_pid_key(&name)).await.unwrap();
    assert_eq!(by_pid.values().sum::<u64>(), 1002);
    for worker in [&a, &b] {
        assert!(
            by_pid.get(&worker.pid()).copied().unwrap_or(0) > 0,
            "both processes took jobs: {by_pid:?}"
        );
    }
    assert!(a.stop().success(), "graceful stop on Ctrl-C");
    assert!(b.stop().success(), "graceful stop on Ctrl-C");
    cleanup(&queue, &mut conn).await;
}

/// A 100-step DAG (10 layers of 10, each step after 2 or 3 steps of the
/// layer before) run by a worker process that is SIGKILLed mid-run, then
/// finished by a second one: every step completes, none is left waiting,
/// none ran more often than it was attempted, the steps that had not
/// started at the kill ran once (a step released twice would run twice),
/// and each step's output shows it read all its dependencies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dag_survives_its_worker_process_killed_mid_run() {
    let Some(url) = redis_url() else { return };
    let name = unique("wf-dag");
    let queue = RedisJobQueue::connect(&url, &name).await.unwrap();
    let lease = Duration::from_millis(500);
    let mut flow = Workflow::new("layers");
    let step = |layer: usize, i: usize| format!("s{layer}-{i}");
    let mut ids: Vec<Vec<JobId>> = Vec::new();
    for layer in 0..10 {
        let mut row = Vec::new();
        for i in 0..10 {
            let after: Vec<String> = if layer == 0 {
                Vec::new()
            } else {
                // 2 or 3 steps of the layer before.
                let n = 2 + (i % 2);
                (0..n).map(|k| step(layer - 1, (i + k * 3) % 10)).collect()
            };
            let after: Vec<&str> = after.iter().map(String::as_str).collect();
            let job = Job::new("slow", json!({ "layer": layer, "i": i }));
            row.push(flow.step(&step(layer, i), job, &after).id());
        }
        ids.push(row);
    }
    let id = flow.enqueue(&queue).await.unwrap();
    let mut conn = raw_conn(&url).await;

    let doomed = spawn_worker(&url, &name, lease);
    eventually(
        "25 steps started in the first process",
        Duration::from_secs(30),
        || {
            let mut conn = conn.clone();
            let key = exec_key(&name);
            async move { conn.hlen::<_, u64>(key).await.unwrap() >= 25 }
        },
    )
    .await;
    doomed.kill();
    let at_kill: HashMap<String, u64> = conn.hgetall(exec_key(&name)).await.unwrap();
    let status = queue.workflow(id).await.unwrap().unwrap();
    assert!(status.pending > 0, "killed mid-run");

    let second = spawn_worker(&url, &name, lease);
    finished(&queue, id, Duration::from_secs(60)).await;
    let status = queue.workflow(id).await.unwrap().unwrap();
    assert_eq!(
        (status.total, status.completed, status.pending),
        (100, 100, 0),
        "every step completed"
    );
    assert_eq!(status.steps.len(), 100);
    for s in &status.steps {
        assert_eq!((s.status, s.waiting_on), (JobStatus::Completed, 0));
    }
    let counts = queue.counts().await.unwrap();
    assert_eq!(counts.waiting() + counts.running, 0, "nothing stranded");

    let exec: HashMap<String, u64> = conn.hgetall(exec_key(&name)).await.unwrap();
    let mut lost = 0;
    let attempts: HashMap<String, u32> = conn.hgetall(attempt_key(&name)).await.unwrap();
    for (layer, row) in ids.iter().enumerate() {
        for job_id in row {
            let key = job_id.to_string();
            let job = queue.get(*job_id).await.unwrap().unwrap();
            let runs = exec.get(&key).copied().unwrap_or(0);
            // An attempt reserved by the killed process may have died
            // before its processor started: at most one run per attempt.
            assert!(
                (1..=u64::from(job.attempts)).contains(&runs),
                "step {key} ran {runs} times in {} attempts",
                job.attempts
            );
            assert_eq!(
                attempts.get(&key),
                Some(&job.attempts),
                "the last attempt is the one that ran to the end"
            );
            if job.attempts > 1 {
                lost += 1;
            }
            if !at_kill.contains_key(&key) {
                assert_eq!(runs, 1, "a step started after the kill ran once");
            }
            if layer == 9 {
                assert_eq!(runs, 1, "a join of the last layer ran once");
            }
        }
    }
    // The step that made the first process reach 25 still ran (40 ms) at
    // the kill, a few ms later: its lease was recovered.
    assert!(lost > 0, "the kill interrupted a running step");
    // Outputs add up along the DAG: a step's output is 1 + its inputs'.
    let output = |id: &JobId| {
        let id = *id;
        let queue = queue.clone();
        async move {
            queue
                .get(id)
                .await
                .unwrap()
                .unwrap()
                .result
                .unwrap()
                .result
                .unwrap()
                .as_i64()
                .unwrap()
        }
    };
    for first in &ids[0] {
        assert_eq!(output(first).await, 1);
    }
    let join = ids[9][0];
    let inputs = queue.dependency_results(join).await.unwrap();
    let sum: i64 = inputs.iter().filter_map(|r| r.output()?.as_i64()).sum();
    assert_eq!(output(&join).await, 1 + sum);
    assert!(second.stop().success(), "graceful stop on Ctrl-C");
    cleanup(&queue, &mut conn).await;
}
