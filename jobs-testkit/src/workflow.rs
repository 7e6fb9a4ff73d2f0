//! The workflow cases of the conformance suite: batches with callbacks,
//! chains and DAGs whose steps read their dependencies' results, failure
//! propagation, cancelling, adding to a stored workflow.
//!
//! The cases drive the queue protocol directly (reserve, finish) where the
//! order matters, so that they check what the backend decides, not the
//! timing of a worker; one runs a worker end to end.
//!
//! The cases are listed in `suite.rs`'s `define_suite!`.

#![deny(dead_code)]

use std::collections::HashSet;
use std::time::Duration;

use jobs::workflow::{Batch, ON_COMPLETE, ON_SUCCESS, Workflow, WorkflowId};
use jobs::{
    BackgroundJobWorker, Job, JobError, JobId, JobProcessor, JobQueue, JobResult, JobStatus,
    Outcome, Reservation, Take,
};
use serde_json::{Value, json};

use crate::suite::Running;

const LEASE: Duration = Duration::from_secs(30);

fn job(name: &str) -> Job {
    Job::new(name.to_owned(), json!({}))
}

/// Every job ready in the default queue now (up to 100).
async fn ready<Q: JobQueue>(queue: &Q) -> Vec<Reservation> {
    queue
        .reserve("workflow", &[Take::new(jobs::DEFAULT_QUEUE, 100)], LEASE)
        .await
        .unwrap()
}

async fn ready_ids<Q: JobQueue>(queue: &Q) -> (HashSet<JobId>, Vec<Reservation>) {
    let got = ready(queue).await;
    (got.iter().map(|r| r.job.id).collect(), got)
}

async fn complete<Q: JobQueue>(queue: &Q, r: &Reservation, output: Value) {
    let outcome = Outcome::Completed(JobResult::success(output));
    assert!(queue.finish(r.lease, outcome, None).await.unwrap());
}

async fn fail<Q: JobQueue>(queue: &Q, r: &Reservation) {
    let outcome = Outcome::Failed(JobResult::failure(JobError::permanent("broken")));
    assert!(queue.finish(r.lease, outcome, None).await.unwrap());
}

async fn status_of<Q: JobQueue>(queue: &Q, id: JobId) -> JobStatus {
    queue
        .get(id)
        .await
        .unwrap()
        .expect("the job is kept")
        .status
}

/// The batch's callbacks wait for all its jobs, and each becomes ready once:
/// `on_success` and `on_complete` after the last job completed, with the
/// batch's counts right at each step.
pub(crate) async fn batch_callbacks_fire_once<Q: JobQueue + Clone>(queue: Q) {
    let mut batch = Batch::new("import");
    let members: Vec<Job> = (0..3)
        .map(|i| Job::new("row", json!({ "row": i })))
        .collect();
    let member_ids: HashSet<JobId> = members.iter().map(|j| j.id).collect();
    for m in members {
        batch.add(m);
    }
    batch.on_success(job("notify")).on_complete(job("cleanup"));
    let id = batch.enqueue(&queue).await.unwrap();

    let status = queue
        .workflow(id)
        .await
        .unwrap()
        .expect("the batch is stored");
    assert_eq!((status.total, status.pending, status.completed), (5, 5, 0));
    assert_eq!(status.steps.len(), 5);
    let callback = status.step(ON_SUCCESS).expect("on_success is a step");
    assert_eq!(callback.waiting_on, 3);
    assert_eq!(
        queue.counts().await.unwrap().pending,
        5,
        "callbacks are pending"
    );

    let (taken, first) = ready_ids(&queue).await;
    assert_eq!(taken, member_ids, "only the batch's jobs are ready");
    complete(&queue, &first[0], json!(0)).await;
    complete(&queue, &first[1], json!(1)).await;
    assert!(
        ready(&queue).await.is_empty(),
        "callbacks wait for the last job"
    );
    let status = queue.workflow(id).await.unwrap().unwrap();
    assert_eq!((status.pending, status.completed), (3, 2));
    assert_eq!(status.step(ON_COMPLETE).unwrap().waiting_on, 1);

    complete(&queue, &first[2], json!(2)).await;
    let callbacks = ready(&queue).await;
    let mut names: Vec<&str> = callbacks.iter().map(|r| &*r.job.name).collect();
    names.sort_unstable();
    assert_eq!(names, ["cleanup", "notify"], "each callback once");
    assert!(ready(&queue).await.is_empty(), "and only once");
    for r in &callbacks {
        let results = queue.dependency_results(r.job.id).await.unwrap();
        assert_eq!(results.len(), 3, "a callback sees every job's result");
        assert!(results.iter().all(|d| d.status == JobStatus::Completed));
        let mut outputs: Vec<i64> = results
            .iter()
            .map(|d| d.output().unwrap().as_i64().unwrap())
            .collect();
        outputs.sort_unstable();
        assert_eq!(outputs, [0, 1, 2]);
        complete(&queue, r, Value::Null).await;
    }
    let status = queue.workflow(id).await.unwrap().unwrap();
    assert_eq!((status.pending, status.completed, status.failed), (0, 5, 0));
    assert!(status.is_finished());
}

/// A job of the batch that fails for good cancels `on_success` (with a
/// reason), and `on_complete` runs all the same, seeing the failure.
pub(crate) async fn failed_batch_job_cancels_on_success<Q: JobQueue + Clone>(queue: Q) {
    let mut batch = Batch::new("mixed");
    batch.add(job("good")).add(job("bad"));
    batch.on_success(job("notify")).on_complete(job("cleanup"));
    let id = batch.enqueue(&queue).await.unwrap();
    let status = queue.workflow(id).await.unwrap().unwrap();
    let on_success = status.step(ON_SUCCESS).unwrap().job_id;
    let on_complete = status.step(ON_COMPLETE).unwrap().job_id;

    let taken = ready(&queue).await;
    assert_eq!(taken.len(), 2);
    for r in &taken {
        if r.job.name == "bad" {
            fail(&queue, r).await;
        }
    }
    let cancelled = queue.get(on_success).await.unwrap().unwrap();
    assert_eq!(
        cancelled.status,
        JobStatus::Cancelled,
        "on_success cannot run any more"
    );
    let reason = cancelled.last_error.unwrap_or_default();
    assert!(
        reason.contains("ended failed"),
        "the reason names the failure: {reason}"
    );
    assert!(
        ready(&queue).await.is_empty(),
        "on_complete waits for `good`"
    );

    let good = taken.iter().find(|r| r.job.name == "good").unwrap();
    complete(&queue, good, Value::Null).await;
    let last = ready(&queue).await;
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].job.id, on_complete);
    let results = queue.dependency_results(on_complete).await.unwrap();
    let mut statuses: Vec<JobStatus> = results.iter().map(|r| r.status).collect();
    statuses.sort_by_key(|s| s.as_str());
    assert_eq!(statuses, [JobStatus::Completed, JobStatus::Failed]);
    complete(&queue, &last[0], Value::Null).await;
    let status = queue.workflow(id).await.unwrap().unwrap();
    assert_eq!(
        (
            status.pending,
            status.completed,
            status.failed,
            status.cancelled
        ),
        (0, 2, 1, 1)
    );
}

/// A → B → C: each step becomes ready when the previous completed, and
/// reads its result.
pub(crate) async fn chain_passes_results<Q: JobQueue + Clone>(queue: Q) {
    let mut flow = Workflow::new("chain");
    let a = flow.step("a", job("a"), &[]);
    let b = flow.step("b", job("b"), &["a"]);
    let c = flow.step("c", job("c"), &["b"]);
    let id = flow.enqueue(&queue).await.unwrap();

    let stored = queue.get(b.id()).await.unwrap().unwrap();
    let step = stored.step.as_ref().expect("get shows the step");
    assert_eq!((step.workflow, step.name.as_str()), (id, "b"));
    assert_eq!(step.depends_on.len(), 1);
    assert_eq!(
        (step.depends_on[0].job, step.depends_on[0].step.as_str()),
        (a.id(), "a")
    );
    assert_eq!(stored.status, JobStatus::Pending);

    for (expected, input, output) in [
        (a.id(), None, 1),
        (b.id(), Some(1), 2),
        (c.id(), Some(2), 3),
    ] {
        let got = ready(&queue).await;
        assert_eq!(got.len(), 1, "one step at a time");
        assert_eq!(got[0].job.id, expected);
        let results = queue.dependency_results(expected).await.unwrap();
        assert_eq!(
            results
                .first()
                .and_then(|r| r.output())
                .and_then(Value::as_i64),
            input,
            "the step reads what the previous one returned"
        );
        complete(&queue, &got[0], json!(output)).await;
    }
    assert!(ready(&queue).await.is_empty());
    let status = queue.workflow(id).await.unwrap().unwrap();
    assert_eq!((status.total, status.completed, status.pending), (3, 3, 0));
}

/// A → B, C → D: D becomes ready once, after both B and C — also when B
/// and C finish at the same moment.
pub(crate) async fn diamond_runs_the_join_once<Q: JobQueue + Clone>(queue: Q) {
    for _ in 0..5 {
        let mut flow = Workflow::new("diamond");
        flow.step("a", job("a"), &[]);
        flow.step("b", job("b"), &["a"]);
        flow.step("c", job("c"), &["a"]);
        let d = flow.step("d", job("d"), &["b", "c"]);
        flow.enqueue(&queue).await.unwrap();

        let a = ready(&queue).await;
        assert_eq!(a.len(), 1);
        complete(&queue, &a[0], json!("a")).await;
        let bc = ready(&queue).await;
        assert_eq!(bc.len(), 2, "b and c run side by side");
        let (q1, q2) = (queue.clone(), queue.clone());
        let (r1, r2) = (bc[0].clone(), bc[1].clone());
        let (x, y) = tokio::join!(
            tokio::spawn(async move { complete(&q1, &r1, json!(1)).await }),
            tokio::spawn(async move { complete(&q2, &r2, json!(2)).await }),
        );
        x.unwrap();
        y.unwrap();
        let joined = ready(&queue).await;
        assert_eq!(joined.len(), 1, "d is released once");
        assert_eq!(joined[0].job.id, d.id());
        assert!(ready(&queue).await.is_empty());
        let results = queue.dependency_results(d.id()).await.unwrap();
        let mut steps: Vec<&str> = results.iter().map(|r| r.step.as_str()).collect();
        steps.sort_unstable();
        assert_eq!(steps, ["b", "c"]);
        complete(&queue, &joined[0], Value::Null).await;
    }
}

/// A fails for good: B (waiting for A) and C (waiting for B) are cancelled,
/// and D, which runs always, becomes ready and sees A's failure.
pub(crate) async fn failure_cancels_dependants_unless_they_run_always<Q: JobQueue + Clone>(
    queue: Q,
) {
    let mut flow = Workflow::new("failing");
    let a = flow.step("a", job("a"), &[]);
    let b = flow.step("b", job("b"), &["a"]);
    let c = flow.step("c", job("c"), &["b"]);
    let d = flow.step_always("d", job("d"), &["a"]);
    let id = flow.enqueue(&queue).await.unwrap();
    let mut events = queue.subscribe();

    let got = ready(&queue).await;
    assert_eq!(got.len(), 1);
    fail(&queue, &got[0]).await;
    assert_eq!(status_of(&queue, a.id()).await, JobStatus::Failed);
    assert_eq!(status_of(&queue, b.id()).await, JobStatus::Cancelled);
    assert_eq!(
        status_of(&queue, c.id()).await,
        JobStatus::Cancelled,
        "transitively"
    );
    let reason = queue.get(c.id()).await.unwrap().unwrap().last_error;
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains("`b` ended cancelled")),
        "{reason:?}"
    );
    let next = ready(&queue).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].job.id, d.id(), "d runs anyway");
    let results = queue.dependency_results(d.id()).await.unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].status, JobStatus::Failed);
    assert_eq!(
        results[0].result.as_ref().and_then(|r| r.error.as_deref()),
        Some("broken")
    );
    complete(&queue, &next[0], Value::Null).await;
    let status = queue.workflow(id).await.unwrap().unwrap();
    assert_eq!(
        (
            status.completed,
            status.failed,
            status.cancelled,
            status.pending
        ),
        (1, 1, 2, 0)
    );
    // The cancels were announced (for dashboards and `wait_for`).
    let mut cancelled = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cancelled.len() < 2 && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(e)) if e.kind == jobs::JobEventKind::Cancelled => {
                cancelled.insert(e.job_id);
            }
            Ok(Ok(_)) => {}
            _ => break,
        }
    }
    assert_eq!(cancelled, HashSet::from([b.id(), c.id()]));
}

/// Cancelling a workflow cancels its running step and every waiting one;
/// nothing of it becomes ready afterwards, a step that runs always
/// included.
pub(crate) async fn cancel_workflow_cancels_its_steps<Q: JobQueue + Clone>(queue: Q) {
    let mut flow = Workflow::new("doomed");
    flow.step("a", job("a"), &[]);
    flow.step("b", job("b"), &["a"]);
    flow.step("c", job("c"), &["b"]);
    flow.step_always("d", job("d"), &["a"]);
    flow.step("e", job("e"), &[]);
    let id = flow.enqueue(&queue).await.unwrap();
    let running = ready(&queue).await;
    assert_eq!(running.len(), 2, "a and e are ready");
    complete(
        &queue,
        running.iter().find(|r| r.job.name == "e").unwrap(),
        Value::Null,
    )
    .await;

    assert_eq!(queue.cancel_workflow(id).await.unwrap(), 4);
    let status = queue.workflow(id).await.unwrap().unwrap();
    assert_eq!(
        (status.cancelled, status.completed, status.pending),
        (4, 1, 0)
    );
    assert!(
        ready(&queue).await.is_empty(),
        "nothing of it runs any more"
    );
    let a = running.iter().find(|r| r.job.name == "a").unwrap();
    assert!(
        !queue
            .finish(
                a.lease,
                Outcome::Completed(JobResult::success(json!(1))),
                None
            )
            .await
            .unwrap(),
        "the running step's lease was revoked"
    );
    assert!(queue.cancel_workflow(WorkflowId::new()).await.is_err());
}

/// A running step adds steps to its own workflow, which a waiting step
/// then waits for too (fan out at run time, fan in after).
pub(crate) async fn a_running_step_fans_out<Q: JobQueue + Clone>(queue: Q) {
    let mut flow = Workflow::new("fan");
    let split = flow.step("split", job("split"), &[]);
    let merge = flow.step("merge", job("merge"), &["split"]);
    let id = flow.enqueue(&queue).await.unwrap();
    let running = ready(&queue).await;
    assert_eq!(running[0].job.id, split.id());

    let mut more = Workflow::extend(&queue, id).await.unwrap();
    let parts: Vec<JobId> = (0..3)
        .map(|i| {
            more.step(
                &format!("part-{i}"),
                Job::new("part", json!({ "i": i })),
                &["split"],
            )
            .id()
        })
        .collect();
    more.before("merge").unwrap();
    assert!(more.before("nope").is_err(), "an unknown step is an error");
    more.enqueue(&queue).await.unwrap();
    assert!(ready(&queue).await.is_empty(), "the parts wait for split");
    complete(&queue, &running[0], json!("split")).await;

    let parts_ready = ready(&queue).await;
    let got: HashSet<JobId> = parts_ready.iter().map(|r| r.job.id).collect();
    assert_eq!(
        got,
        parts.iter().copied().collect(),
        "the parts run, not merge"
    );
    for (i, r) in parts_ready.iter().enumerate() {
        assert!(ready(&queue).await.is_empty(), "merge waits for every part");
        complete(&queue, r, json!(i)).await;
    }
    let joined = ready(&queue).await;
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].job.id, merge.id());
    let results = queue.dependency_results(merge.id()).await.unwrap();
    assert_eq!(results.len(), 4, "split's result and each part's");
    let status = queue.workflow(id).await.unwrap().unwrap();
    assert_eq!(status.total, 5);
}

/// Jobs added to a batch while it is open hold its callbacks back; once
/// the callbacks ran, adding is refused and stores nothing.
pub(crate) async fn adding_to_a_batch_while_open<Q: JobQueue + Clone>(queue: Q) {
    let mut batch = Batch::new("growing");
    batch.add(job("first"));
    batch.on_complete(job("done"));
    let id = batch.enqueue(&queue).await.unwrap();
    let first = ready(&queue).await;
    assert_eq!(first.len(), 1);
    // While `first` runs, it adds to its batch.
    let added = Batch::add_to(&queue, id, vec![job("second")])
        .await
        .unwrap();
    complete(&queue, &first[0], Value::Null).await;
    let second = ready(&queue).await;
    assert_eq!(second.len(), 1, "on_complete waits for the added job");
    assert_eq!(second[0].job.id, added[0]);
    complete(&queue, &second[0], Value::Null).await;
    let callback = ready(&queue).await;
    assert_eq!(callback.len(), 1);
    assert_eq!(callback[0].job.name, "done");
    let results = queue.dependency_results(callback[0].job.id).await.unwrap();
    assert_eq!(results.len(), 2);
    complete(&queue, &callback[0], Value::Null).await;

    let before = queue.counts().await.unwrap();
    let late = Batch::add_to(&queue, id, vec![job("late")]).await;
    assert!(late.is_err(), "the batch is closed: {late:?}");
    assert_eq!(queue.counts().await.unwrap(), before, "nothing was stored");
    let status = queue.workflow(id).await.unwrap().unwrap();
    assert_eq!((status.total, status.completed), (3, 3));
}

/// A workflow that cannot be stored is refused whole: a step depending on
/// a job that does not exist or on a plain job, a cycle.
pub(crate) async fn bad_workflows_store_nothing<Q: JobQueue + Clone>(queue: Q) {
    let mut cyclic = Workflow::new("cyclic");
    cyclic.step("a", job("a"), &["b"]);
    cyclic.step("b", job("b"), &["a"]);
    let e = cyclic.enqueue(&queue).await.unwrap_err().to_string();
    assert!(e.contains("cycle"), "{e}");

    // A step whose stored dependency is gone (deleted before the extension
    // was pushed).
    let mut flow = Workflow::new("base");
    let a = flow.step("a", job("a"), &[]);
    flow.step("b", job("b"), &[]);
    let id = flow.enqueue(&queue).await.unwrap();
    let mut more = Workflow::extend(&queue, id).await.unwrap();
    more.step("c", job("c"), &[]);
    more.step("d", job("d"), &["a", "c"]);
    assert_eq!(
        queue.delete(a.id()).await.unwrap(),
        jobs::DeleteOutcome::Deleted
    );
    let before = queue.counts().await.unwrap();
    let e = more.enqueue(&queue).await.unwrap_err().to_string();
    assert!(e.contains("does not exist"), "{e}");
    assert_eq!(queue.counts().await.unwrap(), before, "nothing was stored");
    assert!(Workflow::extend(&queue, WorkflowId::new()).await.is_err());

    // A step whose dependency is a plain job, not a step (it would wait
    // for a finish that resolves nothing).
    let plain = queue.enqueue(job("plain")).await.unwrap();
    let mut flow = Workflow::new("on-plain");
    flow.step("a", job("a"), &[]);
    flow.step("b", job("b"), &["a"]);
    let mut b = flow.build().unwrap().pop().expect("b comes last");
    let step = std::sync::Arc::make_mut(b.step.as_mut().expect("a step"));
    step.depends_on[0].job = plain;
    let before = queue.counts().await.unwrap();
    let e = queue.enqueue(b).await.unwrap_err().to_string();
    assert!(e.contains("not a workflow step"), "{e}");
    assert_eq!(queue.counts().await.unwrap(), before, "nothing was stored");
}

/// A worker that adds its dependencies' numeric outputs.
#[derive(Clone)]
struct Adder;

impl JobProcessor for Adder {
    async fn process(&self, _job: &Job) -> JobResult {
        JobResult::failure(JobError::permanent("called without a context"))
    }

    async fn process_with(&self, job: &Job, cx: &jobs::JobContext) -> JobResult {
        let own = job.args["n"].as_i64().unwrap_or(0);
        let upstream: i64 = cx
            .results()
            .iter()
            .filter_map(|r| r.output().and_then(Value::as_i64))
            .sum();
        JobResult::success(json!(own + upstream))
    }
}

/// A worker runs a diamond end to end; the join reads both branches.
pub(crate) async fn a_worker_runs_a_dag<Q: JobQueue + Clone>(queue: Q) {
    let n = |v: i64| Job::new("add", json!({ "n": v }));
    let mut flow = Workflow::new("sum");
    flow.step("a", n(1), &[]);
    flow.step("b", n(10), &["a"]);
    flow.step("c", n(100), &["a"]);
    let d = flow.step("d", n(1000), &["b", "c"]);
    let id = flow.enqueue(&queue).await.unwrap();
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(Adder)
        .max_concurrent_jobs(4)
        .build()
        .unwrap();
    let running = Running::start(worker);
    let done = running.worker.wait_for(d.id()).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    // d = 1000 + (10 + 1) + (100 + 1)
    assert_eq!(done.result.unwrap().result, Some(json!(1112)));
    let status = queue.workflow(id).await.unwrap().unwrap();
    assert_eq!((status.completed, status.pending), (4, 0));
    running.stop().await;
}
