//! Every command against an in-memory queue, through [`run_on`].

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use jobs::{
    AnyQueue, Enqueue, Job, JobId, JobQueue, JobResult, JobStatus, MemoryJobQueue, Outcome,
    QueueAdmin, Take, WorkerInfo,
};
use serde_json::{Value, json};

use crate::{Cli, Exit, Terminal, run_in, run_on};

/// A buffer that a [`Terminal`] writes to and the test reads back.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Buf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Buf {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Ran {
    exit: Exit,
    out: String,
    err: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.out)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.out))
    }
}

/// Runs `jobs ARGS` on `queue`; `answer` is typed at the prompt, if any
/// (`None`: stdin is not a terminal).
async fn jobs(queue: &AnyQueue, args: &[&str], answer: Option<&str>) -> Ran {
    let mut cli = Cli::try_parse_from(std::iter::once("jobs").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("jobs {args:?} does not parse: {e}"));
    // Not the caller's $JOBS_URL: messages name the in-memory queue.
    (cli.url, cli.namespace) = (None, None);
    let (out, err) = (Buf::default(), Buf::default());
    let input = std::io::Cursor::new(answer.unwrap_or("").as_bytes().to_vec());
    let mut term = Terminal::new(out.clone(), err.clone(), input).interactive(answer.is_some());
    let exit = run_on(&cli, queue.clone(), &mut term).await;
    Ran {
        exit,
        out: out.text(),
        err: err.text(),
    }
}

fn queue() -> AnyQueue {
    AnyQueue::new(MemoryJobQueue::new())
}

const LEASE: Duration = Duration::from_secs(30);

/// Enqueues a job and runs one attempt of it to `outcome`.
async fn finished(queue: &AnyQueue, job: Job, outcome: Outcome) -> JobId {
    let queue_name = job.queue.to_string();
    let id = queue.enqueue(job).await.unwrap();
    let reserved = queue
        .reserve("test", &[Take::new(queue_name, 1)], LEASE)
        .await
        .unwrap();
    assert_eq!(reserved.len(), 1, "the job is reserved");
    assert_eq!(reserved[0].job.id, id);
    assert!(
        queue
            .finish(reserved[0].lease, outcome, None)
            .await
            .unwrap()
    );
    id
}

async fn failed(queue: &AnyQueue, name: &str, error: &str) -> JobId {
    let job = Job::new(name.to_owned(), json!({"n": 1}));
    finished(queue, job, Outcome::Failed(JobResult::error(error))).await
}

async fn completed(queue: &AnyQueue, name: &str) -> JobId {
    let job = Job::new(name.to_owned(), json!({}));
    finished(
        queue,
        job,
        Outcome::Completed(JobResult::success(json!("ok"))),
    )
    .await
}

async fn status(queue: &AnyQueue, id: JobId) -> Option<JobStatus> {
    queue.get(id).await.unwrap().map(|j| j.status)
}

#[tokio::test]
async fn list_shows_a_page_and_says_more_follow() {
    let q = queue();
    let failed_id = failed(&q, "resize", "out of memory\nat line 3").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let job = Job::new("send_email", json!({ "i": i }));
        ids.push(q.enqueue(job).await.unwrap());
    }

    let all = jobs(&q, &["list"], None).await;
    assert_eq!(all.exit, Exit::Ok, "{}", all.err);
    assert!(all.out.starts_with("ID "), "{}", all.out);
    for id in &ids {
        assert!(all.out.contains(&id.to_string()), "{}", all.out);
    }
    assert!(all.out.contains("out of memory at line 3"), "{}", all.out);
    assert!(!all.out.contains("more jobs match"), "{}", all.out);

    let page = jobs(&q, &["list", "--limit", "2"], None).await;
    assert_eq!(page.out.lines().count(), 4, "{}", page.out);
    assert!(page.out.contains("--offset 2"), "{}", page.out);

    let only = jobs(&q, &["--json", "list", "--status", "failed"], None).await;
    let json = only.json();
    assert_eq!(json["more"], false);
    let listed = json["jobs"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], failed_id.to_string());
    assert_eq!(listed[0]["queue"], "default");
    assert_eq!(listed[0]["status"], "failed");

    let none = jobs(&q, &["list", "--name", "nothing"], None).await;
    assert_eq!(none.out, "no jobs match\n");
}

#[tokio::test]
async fn show_prints_the_record_and_each_attempts_error() {
    let q = queue();
    let mut job = Job::new("charge", json!({"order": 42, "currency": "EUR"}))
        .queue("billing")
        .max_retries(1);
    job.metadata.insert("tenant".into(), json!("acme"));
    let id = q.enqueue(job).await.unwrap();
    let take = [Take::new("billing", 1)];
    let first = q.reserve("t", &take, LEASE).await.unwrap().remove(0);
    let retry = Outcome::Retry {
        result: JobResult::error("card declined"),
        at: chrono::Utc::now(),
    };
    assert!(q.finish(first.lease, retry, None).await.unwrap());
    let second = q.reserve("t", &take, LEASE).await.unwrap().remove(0);
    let fail = Outcome::Failed(JobResult::error("gateway timeout"));
    assert!(q.finish(second.lease, fail, None).await.unwrap());

    let shown = jobs(&q, &["show", &id.to_string()], None).await;
    assert_eq!(shown.exit, Exit::Ok, "{}", shown.err);
    for part in [
        "charge",
        "billing",
        "failed",
        "\"order\": 42",
        "attempt 1",
        "card declined",
        "attempt 2",
        "gateway timeout",
        "tenant: \"acme\"",
        "created",
        "finished",
    ] {
        assert!(shown.out.contains(part), "no {part:?} in\n{}", shown.out);
    }

    let json = jobs(&q, &["--json", "show", &id.to_string()], None)
        .await
        .json();
    assert_eq!(json["args"]["order"], 42);
    assert_eq!(json["errors"][1]["error"], "gateway timeout");
    assert_eq!(json["queue"], "billing");
}

#[tokio::test]
async fn unknown_and_malformed_ids() {
    let q = queue();
    let unknown = JobId::new().to_string();
    for command in ["show", "retry", "cancel", "delete"] {
        let ran = jobs(&q, &[command, &unknown], None).await;
        assert_eq!(ran.exit, Exit::NotFound, "{command}: {}", ran.err);
        assert!(ran.err.contains("no job with id"), "{command}: {}", ran.err);
        assert!(ran.out.is_empty());
        let bad = jobs(&q, &[command, "not-an-id"], None).await;
        assert_eq!(bad.exit, Exit::Error, "{command}");
        assert!(bad.err.contains("invalid job id"), "{command}: {}", bad.err);
    }
}

#[tokio::test]
async fn retry_one_job() {
    let q = queue();
    let id = failed(&q, "x", "boom").await;
    let ran = jobs(&q, &["retry", &id.to_string()], None).await;
    assert_eq!(ran.exit, Exit::Ok, "{}", ran.err);
    assert_eq!(status(&q, id).await, Some(JobStatus::Pending));

    // Now pending: not retryable.
    let again = jobs(&q, &["retry", &id.to_string()], None).await;
    assert_eq!(again.exit, Exit::Refused);
    assert!(again.err.contains("is pending"), "{}", again.err);
}

#[tokio::test]
async fn retry_all_failed_asks_first() {
    let q = queue();
    let a = failed(&q, "a", "boom").await;
    let b = failed(&q, "b", "boom").await;
    let done = completed(&q, "a").await;

    // Nobody to ask, no --yes: refused, nothing changed.
    let refused = jobs(&q, &["retry", "--all-failed"], None).await;
    assert_eq!(refused.exit, Exit::Refused);
    assert!(refused.err.contains("--yes"), "{}", refused.err);
    assert_eq!(status(&q, a).await, Some(JobStatus::Failed));

    // Asked, and declined.
    let declined = jobs(&q, &["retry", "--all-failed"], Some("n\n")).await;
    assert_eq!(declined.exit, Exit::Refused);
    assert!(
        declined
            .err
            .contains("retry 2 failed jobs in memory? [y/N]"),
        "{}",
        declined.err
    );
    assert_eq!(status(&q, b).await, Some(JobStatus::Failed));

    // Only those named a, confirmed at the prompt.
    let named = jobs(&q, &["retry", "--all-failed", "--name", "a"], Some("y\n")).await;
    assert_eq!(named.exit, Exit::Ok, "{}", named.err);
    assert_eq!(named.out, "retried 1 failed job\n");
    assert_eq!(status(&q, a).await, Some(JobStatus::Pending));
    assert_eq!(status(&q, b).await, Some(JobStatus::Failed));
    assert_eq!(status(&q, done).await, Some(JobStatus::Completed));

    let rest = jobs(&q, &["--json", "retry", "--all-failed", "--yes"], None).await;
    assert_eq!(rest.exit, Exit::Ok, "{}", rest.err);
    assert_eq!(
        rest.json(),
        json!({"matched": 1, "retried": 1, "skipped": 0})
    );
    assert_eq!(status(&q, b).await, Some(JobStatus::Pending));

    let none = jobs(&q, &["retry", "--all-failed"], None).await;
    assert_eq!(none.exit, Exit::Ok, "nothing to confirm: {}", none.err);
    assert_eq!(none.out, "no failed jobs\n");
}

#[tokio::test]
async fn retry_all_failed_pages_through_more_than_a_page() {
    let q = queue();
    let total = jobs::queue::MAX_PAGE + 5;
    let mut ids = Vec::new();
    for i in 0..total {
        ids.push(failed(&q, "bulk", &format!("error {i}")).await);
    }
    let ran = jobs(&q, &["--json", "retry", "--all-failed", "--yes"], None).await;
    assert_eq!(ran.exit, Exit::Ok, "{}", ran.err);
    assert_eq!(ran.json()["retried"], total);
    assert_eq!(q.counts().await.unwrap().failed, 0);
    assert_eq!(q.counts().await.unwrap().pending, total as u64);
}

#[tokio::test]
async fn purge_by_status_removes_only_those() {
    let q = queue();
    let done = completed(&q, "a").await;
    let broken = failed(&q, "a", "boom").await;
    let waiting = q.enqueue(Job::new("a", json!({}))).await.unwrap();

    let refused = jobs(&q, &["purge", "--status", "completed"], None).await;
    assert_eq!(refused.exit, Exit::Refused);
    assert!(
        refused.err.contains("purge 1 completed job from memory"),
        "{}",
        refused.err
    );
    assert!(refused.err.contains("pass --yes"), "{}", refused.err);
    assert_eq!(status(&q, done).await, Some(JobStatus::Completed));

    let ran = jobs(&q, &["purge", "--status", "completed", "--yes"], None).await;
    assert_eq!(ran.exit, Exit::Ok, "{}", ran.err);
    assert_eq!(ran.out, "purged 1 completed job\n");
    assert_eq!(status(&q, done).await, None);
    assert_eq!(status(&q, broken).await, Some(JobStatus::Failed));
    assert_eq!(status(&q, waiting).await, Some(JobStatus::Pending));

    let running = jobs(&q, &["purge", "--status", "running", "--yes"], None).await;
    assert_eq!(running.exit, Exit::Error);
    assert!(running.err.contains("cancel them first"), "{}", running.err);

    let all = jobs(&q, &["--json", "purge", "--all"], Some("yes\n")).await;
    assert_eq!(all.exit, Exit::Ok, "{}", all.err);
    assert!(
        all.err.contains("purge all 2 jobs from memory? [y/N]"),
        "{}",
        all.err
    );
    assert_eq!(all.json(), json!({"purged": 2, "status": null}));
    assert_eq!(status(&q, waiting).await, None);
}

#[tokio::test]
async fn delete_leaves_a_running_job_alone() {
    let q = queue();
    let waiting = q.enqueue(Job::new("a", json!({}))).await.unwrap();
    let ran = jobs(&q, &["delete", &waiting.to_string()], None).await;
    assert_eq!(ran.exit, Exit::Ok, "{}", ran.err);
    assert_eq!(status(&q, waiting).await, None);

    let running = q.enqueue(Job::new("a", json!({}))).await.unwrap();
    q.reserve("t", &[Take::new("default", 1)], LEASE)
        .await
        .unwrap();
    let refused = jobs(&q, &["delete", &running.to_string()], None).await;
    assert_eq!(refused.exit, Exit::Refused);
    assert!(refused.err.contains("cancel it first"), "{}", refused.err);
    assert_eq!(status(&q, running).await, Some(JobStatus::Running));

    let cancelled = jobs(&q, &["--json", "cancel", &running.to_string()], None).await;
    assert_eq!(cancelled.exit, Exit::Ok, "{}", cancelled.err);
    assert_eq!(cancelled.json()["outcome"], "CancelledRunning");
    let finished = jobs(&q, &["cancel", &running.to_string()], None).await;
    assert_eq!(finished.exit, Exit::Refused);
    assert!(
        finished.err.contains("finished already"),
        "{}",
        finished.err
    );
}

#[tokio::test]
async fn pause_and_resume_show_in_queues() {
    let q = queue();
    q.enqueue(Job::new("a", json!({})).queue("emails"))
        .await
        .unwrap();
    let paused = jobs(&q, &["pause", "emails"], None).await;
    assert_eq!(paused.exit, Exit::Ok, "{}", paused.err);
    let listed = jobs(&q, &["--json", "queues"], None).await.json();
    let emails = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "emails")
        .cloned();
    assert_eq!(
        emails,
        Some(json!({"name": "emails", "paused": true, "ready": 1}))
    );
    let table = jobs(&q, &["queues"], None).await;
    assert!(table.out.contains("emails"), "{}", table.out);
    assert!(table.out.contains("yes"), "{}", table.out);

    let again = jobs(&q, &["pause", "emails"], None).await;
    assert!(again.out.contains("paused already"), "{}", again.out);
    let resumed = jobs(&q, &["--json", "resume", "emails"], None).await;
    assert_eq!(resumed.json()["changed"], true);
    let listed = jobs(&q, &["--json", "queues"], None).await.json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["paused"] == false)
    );

    let bad = jobs(&q, &["pause", "no spaces allowed"], None).await;
    assert_eq!(bad.exit, Exit::Error);
}

#[tokio::test]
async fn stats_and_workers() {
    let q = queue();
    completed(&q, "a").await;
    failed(&q, "a", "boom").await;
    q.enqueue(Job::new("a", json!({})).delay(Duration::from_secs(3600)))
        .await
        .unwrap();
    let mut worker = WorkerInfo::new("worker-7");
    worker.concurrency = 4;
    worker.queues = vec!["default".into()];
    q.report_worker(&worker, Duration::from_secs(60))
        .await
        .unwrap();

    let stats = jobs(&q, &["--json", "stats"], None).await;
    assert_eq!(stats.exit, Exit::Ok, "{}", stats.err);
    let json = stats.json();
    assert_eq!(json["counts"]["completed"], 1);
    assert_eq!(json["counts"]["failed"], 1);
    assert_eq!(json["counts"]["pending"], 1);
    assert_eq!(json["throughput"]["last_hour"]["processed"], 2);
    assert_eq!(json["throughput"]["last_hour"]["failed"], 1);
    assert_eq!(json["workers"], 1);
    assert_eq!(json["backend"], "memory");

    let human = jobs(&q, &["stats"], None).await;
    for part in [
        "completed",
        "1 of the waiting jobs is scheduled for later",
        "last hour",
        "workers alive: 1",
    ] {
        assert!(human.out.contains(part), "no {part:?} in\n{}", human.out);
    }

    let workers = jobs(&q, &["workers"], None).await;
    assert!(workers.out.contains("worker-7"), "{}", workers.out);
    assert!(workers.out.contains("0/4"), "{}", workers.out);
    let json = jobs(&q, &["--json", "workers"], None).await.json();
    assert_eq!(json[0]["id"], "worker-7");
    assert_eq!(json[0]["pid"], std::process::id());
}

#[tokio::test]
async fn web_refuses_a_public_address_without_public() {
    let cli = Cli::try_parse_from(["jobs", "web", "--bind", "0.0.0.0:8080"]).unwrap();
    let err = Buf::default();
    let mut term = Terminal::new(Buf::default(), err.clone(), std::io::empty());
    // Refused before connecting: there is no --url at all.
    assert_eq!(run_in(&cli, &mut term).await, Exit::Error);
    assert!(err.text().contains("--public"), "{}", err.text());
}

#[tokio::test]
async fn a_missing_or_unsupported_url_is_an_error() {
    let cli = Cli::try_parse_from(["jobs", "stats"]).unwrap();
    let err = Buf::default();
    let mut term = Terminal::new(Buf::default(), err.clone(), std::io::empty());
    if cli.url.is_none() {
        assert_eq!(run_in(&cli, &mut term).await, Exit::Usage);
        assert!(err.text().contains("--url"), "{}", err.text());
    }
    let cli = Cli::try_parse_from(["jobs", "--url", "mysql://localhost/x", "stats"]).unwrap();
    let err = Buf::default();
    let mut term = Terminal::new(Buf::default(), err.clone(), std::io::empty());
    assert_eq!(run_in(&cli, &mut term).await, Exit::Error);
    assert!(
        err.text().contains("unsupported queue URL"),
        "{}",
        err.text()
    );
}

/// Runs the ready job `id` of the default queue to `outcome` (other ready
/// jobs are handed back).
async fn finish_step(queue: &AnyQueue, id: JobId, outcome: Outcome) {
    let reserved = queue
        .reserve("test", &[Take::new(jobs::DEFAULT_QUEUE, 100)], LEASE)
        .await
        .unwrap();
    let (mine, others): (Vec<_>, Vec<_>) = reserved.into_iter().partition(|r| r.job.id == id);
    let others: Vec<_> = others.iter().map(|r| r.lease).collect();
    queue.release(&others).await.unwrap();
    let lease = mine.first().expect("the step is ready").lease;
    assert!(queue.finish(lease, outcome, None).await.unwrap());
}

/// A workflow `nightly`: `extract` and `load` on their own, `<b>report</b>`
/// after both; `extract` completed.
async fn nightly(q: &AnyQueue) -> (jobs::workflow::WorkflowId, [JobId; 3]) {
    let mut w = jobs::workflow::Workflow::new("nightly");
    let extract = w.step("extract", Job::new("extract_rows", json!({})), &[]);
    let load = w.step("load", Job::new("load_rows", json!({})), &[]);
    let report = w.step(
        "<b>report</b>",
        Job::new("build_report", json!({})),
        &["extract", "load"],
    );
    let id = w.enqueue(q).await.unwrap();
    let done = Outcome::Completed(JobResult::success(json!(3)));
    finish_step(q, extract.id(), done).await;
    (id, [extract.id(), load.id(), report.id()])
}

#[tokio::test]
async fn show_names_the_workflow_and_where_the_dependencies_stand() {
    let q = queue();
    let (wf, [extract, load, report]) = nightly(&q).await;

    let shown = jobs(&q, &["show", &report.to_string()], None).await;
    assert_eq!(shown.exit, Exit::Ok, "{}", shown.err);
    let out = &shown.out;
    for part in [
        "\nworkflow\n".to_owned(),
        "  name        nightly\n".to_owned(),
        format!("  id          {wf}\n"),
        "  kind        workflow\n".to_owned(),
        "  step        <b>report</b>\n".to_owned(),
        "  waiting on  1 of 2 dependencies\n".to_owned(),
        format!("    extract  {extract}  completed\n"),
        format!("    load     {load}  pending\n"),
    ] {
        assert!(out.contains(&part), "no {part:?} in\n{out}");
    }

    let json = jobs(&q, &["--json", "show", &report.to_string()], None)
        .await
        .json();
    let step = &json["workflow"];
    assert_eq!(step["id"], wf.to_string());
    assert_eq!(step["name"], "nightly");
    assert_eq!(step["kind"], "workflow");
    assert_eq!(step["step"], "<b>report</b>");
    assert_eq!(step["waiting_on"], 1);
    assert_eq!(step["dependencies"][0]["job"], extract.to_string());
    assert_eq!(step["dependencies"][0]["status"], "completed");
    assert_eq!(step["dependencies"][1]["step"], "load");
    assert_eq!(step["dependencies"][1]["status"], "pending");
    // The job's own fields are still there.
    assert_eq!(json["name"], "build_report");

    // A dependency deleted since: its status is gone. A job on its own has
    // no workflow section.
    finish_step(&q, load, Outcome::Completed(JobResult::success(json!(1)))).await;
    assert_eq!(
        q.delete(extract).await.unwrap(),
        jobs::DeleteOutcome::Deleted
    );
    let shown = jobs(&q, &["show", &report.to_string()], None).await;
    assert!(
        shown
            .out
            .contains(&format!("    extract  {extract}  gone\n")),
        "{}",
        shown.out
    );
    assert!(!shown.out.contains("waiting on"), "{}", shown.out);
    let alone = q.enqueue(Job::new("alone", json!({}))).await.unwrap();
    let shown = jobs(&q, &["show", &alone.to_string()], None).await;
    assert!(!shown.out.contains("workflow"), "{}", shown.out);
    let json = jobs(&q, &["--json", "show", &alone.to_string()], None)
        .await
        .json();
    assert!(json.get("workflow").is_none(), "{json}");
}

#[tokio::test]
async fn workflow_prints_counts_and_steps() {
    let q = queue();
    let (wf, [extract, load, report]) = nightly(&q).await;
    finish_step(&q, load, Outcome::Failed(JobResult::error("disk full"))).await;

    for command in ["workflow", "batch"] {
        let ran = jobs(&q, &[command, &wf.to_string()], None).await;
        assert_eq!(ran.exit, Exit::Ok, "{}", ran.err);
        assert_eq!(
            ran.out,
            format!(
                "id          {wf}\n\
                 name        nightly\n\
                 kind        workflow\n\
                 \n\
                 TOTAL  PENDING  COMPLETED  FAILED  CANCELLED\n    \
                     3        0          1       1          1\n\
                 \n\
                 STEP           JOB ID                                JOB NAME      STATUS     WAITING ON  DEPENDS ON\n\
                 extract        {extract}  extract_rows  completed\n\
                 load           {load}  load_rows     failed\n\
                 <b>report</b>  {report}  build_report  cancelled              extract, load\n"
            )
        );
    }

    let json = jobs(&q, &["--json", "workflow", &wf.to_string()], None)
        .await
        .json();
    assert_eq!(json["id"], wf.to_string());
    assert_eq!(json["kind"], "workflow");
    assert_eq!(
        (
            &json["total"],
            &json["completed"],
            &json["failed"],
            &json["cancelled"]
        ),
        (&json!(3), &json!(1), &json!(1), &json!(1))
    );
    assert_eq!(json["steps"][2]["name"], "<b>report</b>");
    assert_eq!(json["steps"][2]["status"], "cancelled");
    assert_eq!(json["steps"][2]["depends_on"][1]["step"], "load");
}

#[tokio::test]
async fn workflow_of_an_unknown_or_malformed_id() {
    let q = queue();
    let unknown = jobs::workflow::WorkflowId::new().to_string();
    for args in [
        vec!["workflow", &unknown],
        vec!["workflow", &unknown, "--cancel", "--yes"],
    ] {
        let ran = jobs(&q, &args, None).await;
        assert_eq!(ran.exit, Exit::NotFound, "{args:?}: {}", ran.err);
        assert!(
            ran.err.contains("no workflow or batch with id"),
            "{}",
            ran.err
        );
        assert!(ran.out.is_empty());
    }
    let bad = jobs(&q, &["batch", "nope"], None).await;
    assert_eq!(bad.exit, Exit::Error);
    assert!(bad.err.contains("invalid workflow id"), "{}", bad.err);
}

#[tokio::test]
async fn workflow_cancel_asks_then_cancels_what_has_not_finished() {
    let q = queue();
    let (wf, [extract, load, report]) = nightly(&q).await;
    let id = wf.to_string();

    // No terminal and no --yes; then a "no" at the prompt: nothing changes.
    let refused = jobs(&q, &["workflow", &id, "--cancel"], None).await;
    assert_eq!(refused.exit, Exit::Refused);
    assert!(refused.err.contains("pass --yes"), "{}", refused.err);
    let declined = jobs(&q, &["workflow", &id, "--cancel"], Some("n\n")).await;
    assert_eq!(declined.exit, Exit::Refused);
    assert!(
        declined
            .err
            .contains("cancel the 2 unfinished jobs of workflow nightly"),
        "{}",
        declined.err
    );
    assert_eq!(status(&q, load).await, Some(JobStatus::Pending));
    assert_eq!(status(&q, report).await, Some(JobStatus::Pending));

    let done = jobs(&q, &["workflow", &id, "--cancel"], Some("y\n")).await;
    assert_eq!(done.exit, Exit::Ok, "{}", done.err);
    assert_eq!(done.out, "cancelled 2 jobs of workflow nightly\n");
    assert_eq!(status(&q, extract).await, Some(JobStatus::Completed));
    assert_eq!(status(&q, load).await, Some(JobStatus::Cancelled));
    assert_eq!(status(&q, report).await, Some(JobStatus::Cancelled));

    let again = jobs(&q, &["--json", "batch", &id, "--cancel", "--yes"], None).await;
    assert_eq!(again.exit, Exit::Refused);
    assert!(again.err.contains("had finished already"), "{}", again.err);

    // --json, on a batch.
    let mut batch = jobs::workflow::Batch::new("import");
    batch.add(Job::new("import_row", json!({})));
    batch.on_success(Job::new("notify", json!({})));
    let batch = batch.enqueue(&q).await.unwrap();
    let ran = jobs(
        &q,
        &["--json", "batch", &batch.to_string(), "--cancel", "-y"],
        None,
    )
    .await;
    assert_eq!(ran.exit, Exit::Ok, "{}", ran.err);
    assert_eq!(
        ran.json(),
        json!({ "id": batch.to_string(), "cancelled": 2 })
    );
}
