//! Workflows and batches on `PostgresJobQueue` across worker processes: a
//! 1,000-job batch shared by two processes (each callback once), and a
//! 100-step DAG whose worker process is killed mid-run and finished by
//! another (nothing stranded, nothing released twice).
//!
//! Needs `JOBS_DATABASE_URL`; without it each test prints that it skipped
//! and passes, unless `JOBS_REQUIRE_POSTGRES` is set. Worker processes are
//! this test binary run again in "child" mode (`child_worker`), whose
//! processor counts every execution in a table of the queue's schema (per
//! job and process), so double or lost runs show after a process died.
#![cfg(feature = "postgres")]

use std::collections::HashMap;
use std::time::Duration;

use jobs::prelude::*;
use jobs::workflow::{Batch, ON_COMPLETE, ON_SUCCESS, Workflow};
use jobs_examples::child::ChildProcess;
use jobs_examples::{database_url, unique_name as unique};
use jobs_testkit::eventually;
use serde_json::json;

#[path = "support/pg_runs.rs"]
mod pg_runs;
use pg_runs::{count_run, create_runs, runs_by_id, runs_by_pid};

async fn connect(url: &str, schema: &str) -> PostgresJobQueue {
    PostgresJobQueue::builder(url)
        .schema(schema)
        .max_connections(6)
        .connect()
        .await
        .unwrap()
}

/// Counts each run in the runs table, then — after `sleep_ms` of its args,
/// if any — succeeds with its `i` argument plus its dependencies' outputs.
#[derive(Clone)]
struct Steps {
    queue: PostgresJobQueue,
}

impl JobProcessor for Steps {
    async fn process(&self, _job: &Job) -> JobResult {
        JobResult::failure(JobError::permanent("called without a context"))
    }

    async fn process_with(&self, job: &Job, cx: &JobContext) -> JobResult {
        if let Err(e) = count_run(self.queue.pool(), self.queue.schema(), job.id).await {
            return JobResult::failure(JobError::retryable(e.to_string()));
        }
        if let Some(ms) = job.args["sleep_ms"].as_u64() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let upstream: i64 = cx
            .results()
            .iter()
            .filter_map(|r| r.output().and_then(serde_json::Value::as_i64))
            .sum();
        JobResult::success(json!(job.args["i"].as_i64().unwrap_or(0) + upstream))
    }
}

/// This test binary, run again as a worker process on `schema`.
fn spawn_worker(url: &str, schema: &str, lease: Duration) -> ChildProcess {
    let lease = lease.as_millis().to_string();
    let mut child = ChildProcess::spawn(
        "child_worker",
        &[
            ("JOBS_CHILD_WORKER", "1"),
            ("JOBS_DATABASE_URL", url),
            ("JOBS_CHILD_SCHEMA", schema),
            ("JOBS_CHILD_LEASE_MS", &lease),
        ],
    );
    child.drain_output();
    child
}

/// The worker process: runs until Ctrl-C (SIGINT).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_worker() {
    if std::env::var_os("JOBS_CHILD_WORKER").is_none() {
        return;
    }
    let url = std::env::var("JOBS_DATABASE_URL").unwrap();
    let schema = std::env::var("JOBS_CHILD_SCHEMA").unwrap();
    let lease: u64 = std::env::var("JOBS_CHILD_LEASE_MS")
        .unwrap()
        .parse()
        .unwrap();
    let queue = connect(&url, &schema).await;
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(Steps { queue })
        .max_concurrent_jobs(16)
        .lease_duration(Duration::from_millis(lease))
        .polling_interval(Duration::from_secs(5))
        .build()
        .unwrap();
    jobs_testkit::child::serve_until_interrupted(worker).await;
}

/// Two worker processes share a batch of 1,000 jobs with `on_success` and
/// `on_complete`: every job runs once, each callback runs exactly once,
/// after the last job, and sees all 1,000 results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_run_a_1000_job_batch_and_each_callback_once() {
    let Some(url) = database_url() else { return };
    let schema = unique("wf-batch");
    let queue = connect(&url, &schema).await;
    create_runs(queue.pool(), &schema).await;
    let a = spawn_worker(&url, &schema, Duration::from_secs(30));
    let b = spawn_worker(&url, &schema, Duration::from_secs(30));

    let mut batch = Batch::new("import");
    for i in 0..1000 {
        batch.add(Job::new("member", json!({ "i": i })));
    }
    batch.on_success(Job::new("notify", json!({})));
    batch.on_complete(Job::new("cleanup", json!({})));
    let id = batch.enqueue(&queue).await.unwrap();
    let status = queue.workflow(id).await.unwrap().unwrap();
    let on_success = status.step(ON_SUCCESS).unwrap().job_id;
    let on_complete = status.step(ON_COMPLETE).unwrap().job_id;

    eventually(
        "the batch and its callbacks finished",
        Duration::from_secs(60),
        || async { queue.workflow(id).await.unwrap().unwrap().is_finished() },
    )
    .await;
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
    let runs = runs_by_id(queue.pool(), &schema).await;
    assert_eq!(runs.len(), 1002, "every job and both callbacks ran");
    assert!(runs.values().all(|n| *n == 1), "none ran twice");
    assert_eq!(runs.get(&on_success), Some(&1));
    assert_eq!(runs.get(&on_complete), Some(&1));

    // The callbacks started after the last job of the batch completed.
    let last_member_done = status
        .steps
        .iter()
        .filter(|s| s.job_id != on_success && s.job_id != on_complete)
        .count();
    assert_eq!(last_member_done, 1000);
    let mut latest = None;
    for step in &status.steps {
        if step.job_id == on_success || step.job_id == on_complete {
            continue;
        }
        let job = queue.get(step.job_id).await.unwrap().unwrap();
        latest = latest.max(job.completed_at);
    }
    for callback in [on_success, on_complete] {
        let job = queue.get(callback).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Completed);
        assert_eq!(job.attempts, 1);
        assert!(
            job.started_at >= latest,
            "{callback} started before the last job ended"
        );
        let results = queue.dependency_results(callback).await.unwrap();
        assert_eq!(results.len(), 1000, "a callback sees every job's result");
        assert!(results.iter().all(|r| r.status == JobStatus::Completed));
        // 0 + 1 + .. + 999
        assert_eq!(job.result.unwrap().result, Some(json!(499_500)));
    }
    let by_pid = runs_by_pid(queue.pool(), &schema).await;
    for worker in [&a, &b] {
        assert!(
            by_pid.get(&worker.pid()).copied().unwrap_or(0) > 0,
            "both processes took jobs: {by_pid:?}"
        );
    }
    assert!(a.stop().success(), "graceful stop on Ctrl-C");
    assert!(b.stop().success(), "graceful stop on Ctrl-C");
    queue.drop_schema().await.unwrap();
}

/// A DAG of 10 layers of 10 steps, each step after 2 or 3 steps of the
/// layer before, run by a worker process that is SIGKILLed mid-run; a
/// second process finishes it once the lost leases expire. Every step
/// completes, none is left waiting, each started only after all its
/// dependencies completed, and the steps after the kill ran once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dag_survives_its_worker_being_killed() {
    let Some(url) = database_url() else { return };
    let schema = unique("wf-dag");
    let queue = connect(&url, &schema).await;
    create_runs(queue.pool(), &schema).await;

    const LAYERS: usize = 10;
    const WIDTH: usize = 10;
    let name = |layer: usize, k: usize| format!("s{layer}-{k}");
    let mut flow = Workflow::new("dag");
    let mut deps_of: HashMap<JobId, Vec<JobId>> = HashMap::new();
    let mut ids = vec![vec![JobId::new(); WIDTH]; LAYERS];
    let mut last_layer = Vec::new();
    for layer in 0..LAYERS {
        for k in 0..WIDTH {
            let mut after = Vec::new();
            if layer > 0 {
                after.push(name(layer - 1, k));
                after.push(name(layer - 1, (k + 1) % WIDTH));
                if k % 2 == 0 {
                    after.push(name(layer - 1, (k + 5) % WIDTH));
                }
            }
            let after_refs: Vec<&str> = after.iter().map(String::as_str).collect();
            let job = Job::new("step", json!({ "i": 1, "sleep_ms": 60 }));
            let step = flow.step(&name(layer, k), job, &after_refs);
            ids[layer][k] = step.id();
            let parents = after
                .iter()
                .map(|n| {
                    let (l, k) = n[1..].split_once('-').unwrap();
                    ids[l.parse::<usize>().unwrap()][k.parse::<usize>().unwrap()]
                })
                .collect();
            deps_of.insert(step.id(), parents);
            if layer == LAYERS - 1 {
                last_layer.push(step.id());
            }
        }
    }
    let id = flow.enqueue(&queue).await.unwrap();

    let lease = Duration::from_millis(600);
    let doomed = spawn_worker(&url, &schema, lease);
    let doomed_pid = doomed.pid();
    eventually(
        "the first process ran three layers",
        Duration::from_secs(30),
        || async { runs_by_id(queue.pool(), &schema).await.len() >= 3 * WIDTH },
    )
    .await;
    doomed.kill();
    let started_before_kill = runs_by_id(queue.pool(), &schema).await;
    assert!(
        started_before_kill.len() < 8 * WIDTH,
        "killed mid-run: {} steps had started",
        started_before_kill.len()
    );

    let rescuer = spawn_worker(&url, &schema, lease);
    eventually(
        "the second process finished the workflow",
        Duration::from_secs(60),
        || async { queue.workflow(id).await.unwrap().unwrap().is_finished() },
    )
    .await;
    let status = queue.workflow(id).await.unwrap().unwrap();
    assert_eq!(
        (
            status.total,
            status.completed,
            status.failed,
            status.cancelled
        ),
        (100, 100, 0, 0)
    );
    assert_eq!(queue.counts().await.unwrap().pending, 0, "nothing stranded");

    let runs = runs_by_id(queue.pool(), &schema).await;
    let mut jobs = HashMap::new();
    for step in ids.iter().flatten() {
        let job = queue.get(*step).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Completed, "step {step}");
        assert!(job.attempts >= 1);
        assert!(runs.get(step).copied().unwrap_or(0) >= 1, "step {step} ran");
        jobs.insert(*step, job);
    }
    for (step, parents) in &deps_of {
        let job = &jobs[step];
        for parent in parents {
            assert!(
                job.started_at >= jobs[parent].completed_at,
                "step {step} started before its dependency {parent} completed"
            );
        }
        let results = queue.dependency_results(*step).await.unwrap();
        assert_eq!(results.len(), parents.len(), "step {step}");
        assert!(results.iter().all(|r| r.status == JobStatus::Completed));
    }
    for join in &last_layer {
        assert_eq!(runs.get(join), Some(&1), "a final join ran once");
        assert_eq!(jobs[join].attempts, 1);
    }
    // Each step's output is 1 plus its dependencies' outputs: the sums
    // match only if every step read each dependency's result once.
    for layer in &ids[1..] {
        for &step in layer {
            let expected: i64 = 1 + deps_of[&step]
                .iter()
                .map(|p| {
                    jobs[p]
                        .result
                        .as_ref()
                        .unwrap()
                        .result
                        .as_ref()
                        .unwrap()
                        .as_i64()
                        .unwrap()
                })
                .sum::<i64>();
            let got = jobs[&step].result.as_ref().unwrap().result.clone();
            assert_eq!(got, Some(json!(expected)), "step {step}");
        }
    }
    let by_pid = runs_by_pid(queue.pool(), &schema).await;
    assert!(by_pid.get(&doomed_pid).copied().unwrap_or(0) >= 3 * WIDTH as i64);
    assert!(by_pid.get(&rescuer.pid()).copied().unwrap_or(0) >= 2 * WIDTH as i64);
    assert!(rescuer.stop().success());
    queue.drop_schema().await.unwrap();
}
