//! The `jobs` binary end to end, against the real Redis at `JOBS_REDIS_URL`
//! and PostgreSQL at `JOBS_DATABASE_URL`.
//!
//! Each test prepares jobs with the library in a namespace of its own (a
//! Redis queue name, a PostgreSQL schema), runs the built binary on it with
//! stdin not a terminal, and checks its stdout, stderr and exit code.
//! Without the URLs the tests print that they skip, unless
//! `JOBS_REQUIRE_REDIS` / `JOBS_REQUIRE_POSTGRES` is set.

use std::process::{Command, Stdio};
use std::time::Duration;

use jobs::prelude::*;
use jobs::{AnyQueue, JobId, Outcome, PostgresJobQueue, RedisJobQueue, Take};
use jobs_testkit::{database_url, eventually, redis_url, unique_name};
use serde_json::{Value, json};

/// What one run of the binary did.
#[derive(Debug)]
struct Ran {
    code: i32,
    out: String,
    err: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.out).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr: {}",
                self.out, self.err
            )
        })
    }

    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "exit code; stderr: {}", self.err);
        self
    }
}

/// The binary, with no queue settings from the environment.
fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jobs"));
    command
        .env_remove("JOBS_URL")
        .env_remove("JOBS_NAMESPACE")
        .stdin(Stdio::null());
    command
}

/// Runs `jobs --url URL --namespace NS ARGS` (off the async threads).
async fn jobs(url: &str, namespace: &str, args: &[&str]) -> Ran {
    let mut command = binary();
    command.args(["--url", url, "--namespace", namespace, "--timeout", "20s"]);
    command.args(args);
    output(command).await
}

async fn output(mut command: Command) -> Ran {
    let output = tokio::task::spawn_blocking(move || command.output().expect("run jobs"))
        .await
        .unwrap();
    Ran {
        code: output.status.code().expect("an exit code, not a signal"),
        out: String::from_utf8(output.stdout).unwrap(),
        err: String::from_utf8(output.stderr).unwrap(),
    }
}

/// A Redis queue of the test's own, and its name, or `None` to skip.
async fn redis(test: &str) -> Option<(String, String, RedisJobQueue)> {
    let url = redis_url()?;
    let name = unique_name(&format!("cli-{test}"));
    let queue = RedisJobQueue::builder(&url)
        .name(name.clone())
        .connect()
        .await
        .expect("connect to Redis");
    Some((url, name, queue))
}

/// A PostgreSQL schema of the test's own, or `None` to skip.
async fn postgres(test: &str) -> Option<(String, String, PostgresJobQueue)> {
    let url = database_url()?;
    // Schema names: lower case, no dashes.
    let schema = unique_name(&format!("cli_{test}")).replace('-', "_");
    let queue = PostgresJobQueue::builder(&url)
        .schema(schema.clone())
        .max_connections(2)
        .connect()
        .await
        .expect("connect to PostgreSQL");
    Some((url, schema, queue))
}

const LEASE: Duration = Duration::from_secs(30);

/// Runs the next ready job of the default queue to `outcome`; returns it.
async fn finish_next(queue: &impl JobQueue, outcome: Outcome) -> JobId {
    let mut reserved = queue
        .reserve("cli-test", &[Take::new(jobs::DEFAULT_QUEUE, 1)], LEASE)
        .await
        .unwrap();
    assert_eq!(reserved.len(), 1, "a job is ready");
    let r = reserved.remove(0);
    assert!(queue.finish(r.lease, outcome, None).await.unwrap());
    r.job.id
}

async fn failed(queue: &impl JobQueue, name: &str, error: &str) -> JobId {
    queue
        .enqueue(Job::new(name.to_owned(), json!({})))
        .await
        .unwrap();
    finish_next(queue, Outcome::Failed(JobResult::error(error))).await
}

async fn completed(queue: &impl JobQueue, name: &str) -> JobId {
    queue
        .enqueue(Job::new(name.to_owned(), json!({})))
        .await
        .unwrap();
    finish_next(queue, Outcome::Completed(JobResult::success(json!(1)))).await
}

/// A failed job whose first attempt was retried: two attempt errors.
async fn failed_twice(queue: &impl JobQueue) -> JobId {
    let job = Job::new("charge", json!({"order": 42, "currency": "EUR"})).max_retries(1);
    let id = queue.enqueue(job).await.unwrap();
    let retry = Outcome::Retry {
        result: JobResult::error("card declined"),
        at: chrono::Utc::now(),
    };
    assert_eq!(finish_next(queue, retry).await, id);
    let fail = Outcome::Failed(JobResult::error("gateway timeout"));
    assert_eq!(finish_next(queue, fail).await, id);
    id
}

async fn status(queue: &impl QueueAdmin, id: JobId) -> Option<JobStatus> {
    queue.get(id).await.unwrap().map(|j| j.status)
}

// ------------------------------------------------------------ no server

#[tokio::test]
async fn a_bad_flag_is_a_usage_error() {
    let mut command = binary();
    command.args(["list", "--no-such-flag"]);
    let ran = output(command).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(ran.err.contains("--no-such-flag"), "{}", ran.err);
    assert!(ran.out.is_empty());
}

#[tokio::test]
async fn help_documents_the_exit_codes() {
    let mut command = binary();
    command.arg("--help");
    let ran = output(command).await.ok();
    for line in ["Exit codes:", "3  not found", "4  refused"] {
        assert!(ran.out.contains(line), "no {line:?} in\n{}", ran.out);
    }
}

#[tokio::test]
async fn an_unreachable_backend_is_an_error() {
    // Port 1 on loopback: nothing listens there.
    let ran = jobs("redis://127.0.0.1:1/", "x", &["stats"]).await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.err.contains("cannot connect to redis://127.0.0.1:1/"),
        "{}",
        ran.err
    );

    // Messages name the server, never its password.
    let secret = jobs("redis://:hunter2@127.0.0.1:1/", "x", &["stats"]).await;
    assert_eq!(secret.code, 1, "{secret:?}");
    assert!(
        secret.err.contains("redis://:***@127.0.0.1:1/"),
        "{}",
        secret.err
    );
    assert!(!secret.err.contains("hunter2"), "{}", secret.err);
}

// ---------------------------------------------------------------- Redis

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_exit_3() {
    let Some((url, ns, _queue)) = redis("unknown").await else {
        return;
    };
    let id = JobId::new().to_string();
    for command in ["show", "retry", "cancel", "delete"] {
        let ran = jobs(&url, &ns, &[command, &id]).await;
        assert_eq!(ran.code, 3, "{command}: {ran:?}");
        assert!(
            ran.err.contains(&format!("no job with id {id}")),
            "{command}: {}",
            ran.err
        );
    }
    let malformed = jobs(&url, &ns, &["show", "12345"]).await;
    assert_eq!(malformed.code, 1, "{malformed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_jobs_as_a_table_and_as_json() {
    let Some((url, ns, queue)) = redis("list").await else {
        return;
    };
    let broken = failed(&queue, "resize_image", "out of memory").await;
    let waiting = queue
        .enqueue(Job::new("send_email", json!({"to": "a@example.com"})))
        .await
        .unwrap();

    let table = jobs(&url, &ns, &["list"]).await.ok();
    for part in [
        broken.to_string(),
        waiting.to_string(),
        "resize_image".into(),
        "send_email".into(),
        "out of memory".into(),
    ] {
        assert!(table.out.contains(&part), "no {part:?} in\n{}", table.out);
    }

    let page = jobs(&url, &ns, &["list", "--limit", "1"]).await.ok();
    assert!(
        page.out.contains(&waiting.to_string()),
        "newest first:\n{}",
        page.out
    );
    assert!(page.out.contains("--offset 1"), "{}", page.out);

    let json = jobs(&url, &ns, &["--json", "list", "--status", "failed"])
        .await
        .ok()
        .json();
    assert_eq!(json["more"], false);
    let listed = json["jobs"].as_array().expect("a jobs array");
    assert_eq!(listed.len(), 1, "{json}");
    assert_eq!(listed[0]["id"], broken.to_string());
    assert_eq!(listed[0]["name"], "resize_image");
    assert_eq!(listed[0]["status"], "failed");
    assert_eq!(listed[0]["last_error"], "out of memory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_prints_the_args_and_each_attempts_error() {
    let Some((url, ns, queue)) = redis("show").await else {
        return;
    };
    let id = failed_twice(&queue).await;
    let shown = jobs(&url, &ns, &["show", &id.to_string()]).await.ok();
    for part in [
        "charge",
        "\"order\": 42",
        "\"currency\": \"EUR\"",
        "attempt 1",
        "card declined",
        "attempt 2",
        "gateway timeout",
    ] {
        assert!(shown.out.contains(part), "no {part:?} in\n{}", shown.out);
    }
    let json = jobs(&url, &ns, &["--json", "show", &id.to_string()])
        .await
        .ok()
        .json();
    assert_eq!(json["id"], id.to_string());
    assert_eq!(json["args"], json!({"order": 42, "currency": "EUR"}));
    assert_eq!(json["errors"][0]["error"], "card declined");
    assert_eq!(json["errors"][1]["attempt"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_all_failed_turns_failed_jobs_to_pending() {
    let Some((url, ns, queue)) = redis("retry-all").await else {
        return;
    };
    let a = failed(&queue, "a", "boom").await;
    let b = failed(&queue, "b", "boom").await;
    let done = completed(&queue, "a").await;

    // stdin is not a terminal: no confirmation without --yes.
    let refused = jobs(&url, &ns, &["retry", "--all-failed"]).await;
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(refused.err.contains("--yes"), "{}", refused.err);
    assert_eq!(status(&queue, a).await, Some(JobStatus::Failed));

    let ran = jobs(&url, &ns, &["--json", "retry", "--all-failed", "--yes"])
        .await
        .ok();
    assert_eq!(
        ran.json(),
        json!({"matched": 2, "retried": 2, "skipped": 0})
    );
    assert_eq!(status(&queue, a).await, Some(JobStatus::Pending));
    assert_eq!(status(&queue, b).await, Some(JobStatus::Pending));
    assert_eq!(status(&queue, done).await, Some(JobStatus::Completed));

    // One job: a pending one is not retryable.
    let again = jobs(&url, &ns, &["retry", &a.to_string()]).await;
    assert_eq!(again.code, 4, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_completed_removes_only_those() {
    let Some((url, ns, queue)) = redis("purge").await else {
        return;
    };
    let done = completed(&queue, "a").await;
    let broken = failed(&queue, "a", "boom").await;
    let waiting = queue.enqueue(Job::new("a", json!({}))).await.unwrap();

    let refused = jobs(&url, &ns, &["purge", "--status", "completed"]).await;
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(refused.err.contains("pass --yes"), "{}", refused.err);
    assert_eq!(status(&queue, done).await, Some(JobStatus::Completed));

    let ran = jobs(&url, &ns, &["purge", "--status", "completed", "--yes"])
        .await
        .ok();
    assert_eq!(ran.out, "purged 1 completed job\n");
    assert_eq!(status(&queue, done).await, None);
    assert_eq!(status(&queue, broken).await, Some(JobStatus::Failed));
    assert_eq!(status(&queue, waiting).await, Some(JobStatus::Pending));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_refuses_a_running_job() {
    let Some((url, ns, queue)) = redis("delete").await else {
        return;
    };
    let id = queue.enqueue(Job::new("a", json!({}))).await.unwrap();
    queue
        .reserve("cli-test", &[Take::new(jobs::DEFAULT_QUEUE, 1)], LEASE)
        .await
        .unwrap();
    let refused = jobs(&url, &ns, &["delete", &id.to_string()]).await;
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(refused.err.contains("running"), "{}", refused.err);
    assert_eq!(status(&queue, id).await, Some(JobStatus::Running));

    jobs(&url, &ns, &["cancel", &id.to_string()]).await.ok();
    jobs(&url, &ns, &["delete", &id.to_string()]).await.ok();
    assert_eq!(status(&queue, id).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_show_in_queues() {
    let Some((url, ns, queue)) = redis("pause").await else {
        return;
    };
    queue
        .enqueue(Job::new("a", json!({})).queue("emails"))
        .await
        .unwrap();
    let emails = |json: Value| {
        json.as_array()
            .expect("an array of queues")
            .iter()
            .find(|q| q["name"] == "emails")
            .cloned()
            .unwrap_or_else(|| panic!("no queue emails in {json}"))
    };
    jobs(&url, &ns, &["pause", "emails"]).await.ok();
    let paused = emails(jobs(&url, &ns, &["--json", "queues"]).await.ok().json());
    assert_eq!(
        paused,
        json!({"name": "emails", "paused": true, "ready": 1})
    );

    jobs(&url, &ns, &["resume", "emails"]).await.ok();
    let resumed = emails(jobs(&url, &ns, &["--json", "queues"]).await.ok().json());
    assert_eq!(resumed["paused"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_and_namespace_can_come_from_the_environment() {
    let Some((url, ns, queue)) = redis("env").await else {
        return;
    };
    queue
        .enqueue(Job::new("a", json!({})).queue("from_env"))
        .await
        .unwrap();
    let mut command = binary();
    command
        .env("JOBS_URL", &url)
        .env("JOBS_NAMESPACE", &ns)
        .args(["--json", "queues"]);
    let ran = output(command).await.ok();
    assert_eq!(
        ran.json(),
        json!([{"name": "from_env", "paused": false, "ready": 1}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_counts_by_status() {
    let Some((url, ns, queue)) = redis("stats").await else {
        return;
    };
    completed(&queue, "a").await;
    failed(&queue, "a", "boom").await;
    queue.enqueue(Job::new("a", json!({}))).await.unwrap();

    let json = jobs(&url, &ns, &["--json", "stats"]).await.ok().json();
    assert_eq!(json["backend"], "redis");
    assert_eq!(json["counts"]["pending"], 1);
    assert_eq!(json["counts"]["completed"], 1);
    assert_eq!(json["counts"]["failed"], 1);
    assert_eq!(json["throughput"]["last_hour"]["processed"], 2, "{json}");
    assert_eq!(json["throughput"]["last_hour"]["failed"], 1, "{json}");
    assert!(json["workers"].is_u64(), "{json}");

    let human = jobs(&url, &ns, &["stats"]).await.ok();
    assert!(human.out.contains("workers alive"), "{}", human.out);
}

struct Idle;

impl JobProcessor for Idle {
    async fn process(&self, _job: &Job) -> JobResult {
        JobResult::success(json!(null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_lists_a_running_worker() {
    let Some((url, ns, queue)) = redis("workers").await else {
        return;
    };
    let id = unique_name("cli-worker");
    let worker = BackgroundJobWorker::builder()
        .queue(AnyQueue::new(queue))
        .processor(Idle)
        .max_concurrent_jobs(3)
        .id(id.clone())
        .build()
        .unwrap();
    let running = tokio::spawn(worker.clone().run_owned());

    // The worker reports itself as it starts: poll until the CLI sees it.
    let listed = std::sync::Mutex::new(String::new());
    eventually(
        "jobs workers lists the worker",
        Duration::from_secs(20),
        || {
            let (url, ns, id, listed) = (&url, &ns, &id, &listed);
            async move {
                let ran = jobs(url, ns, &["workers"]).await;
                let found = ran.code == 0 && ran.out.contains(id.as_str());
                *listed.lock().unwrap() = format!("{ran:?}");
                found
            }
        },
    )
    .await;
    let table = listed.into_inner().unwrap();
    assert!(table.contains("0/3"), "{table}");

    let json = jobs(&url, &ns, &["--json", "workers"]).await.ok().json();
    let me = json
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("no worker {id} in {json}"));
    assert_eq!(me["pid"], std::process::id());
    assert_eq!(me["concurrency"], 3);

    worker.stop().await;
    running.await.unwrap().unwrap();
}

/// `workflow`, `batch --cancel` and `show` of a step, on `queue` (reached
/// at `url`, namespace `ns`). Until the backend stores workflow steps it
/// refuses them; then only the unknown id is checked, and the test says
/// that it skips the rest.
async fn workflow_commands(url: &str, ns: &str, queue: &impl JobQueue) {
    let unknown = jobs::workflow::WorkflowId::new().to_string();
    let ran = jobs(url, ns, &["workflow", &unknown]).await;
    assert_eq!(ran.code, 3, "{ran:?}");
    assert!(ran.err.contains("no workflow or batch with id"), "{ran:?}");
    let ran = jobs(url, ns, &["batch", "not-an-id"]).await;
    assert_eq!(ran.code, 1, "{ran:?}");

    let mut w = jobs::workflow::Workflow::new("nightly");
    let extract = w.step("extract", Job::new("extract_rows", json!({})), &[]);
    let report = w.step("report", Job::new("build_report", json!({})), &["extract"]);
    let id = w.enqueue(queue).await.expect("enqueue the workflow");
    let id = id.to_string();
    let table = jobs(url, ns, &["workflow", &id]).await.ok();
    for part in ["nightly", "TOTAL", "extract_rows", "build_report"] {
        assert!(table.out.contains(part), "no {part:?} in\n{}", table.out);
    }
    let json = jobs(url, ns, &["--json", "batch", &id]).await.ok().json();
    assert_eq!(
        (&json["total"], &json["pending"]),
        (&json!(2), &json!(2)),
        "{json}"
    );
    assert_eq!(json["steps"][1]["name"], "report", "{json}");
    assert_eq!(json["steps"][1]["waiting_on"], 1, "{json}");

    let shown = jobs(url, ns, &["--json", "show", &report.id().to_string()])
        .await
        .ok()
        .json();
    assert_eq!(shown["workflow"]["id"], id, "{shown}");
    assert_eq!(
        shown["workflow"]["dependencies"][0]["job"],
        extract.id().to_string()
    );
    assert_eq!(shown["workflow"]["dependencies"][0]["status"], "pending");

    let refused = jobs(url, ns, &["workflow", &id, "--cancel"]).await;
    assert_eq!(refused.code, 4, "{refused:?}");
    assert_eq!(status(queue, report.id()).await, Some(JobStatus::Pending));
    let done = jobs(url, ns, &["--json", "workflow", &id, "--cancel", "--yes"])
        .await
        .ok()
        .json();
    assert_eq!(done["cancelled"], 2, "{done}");
    assert_eq!(
        status(queue, extract.id()).await,
        Some(JobStatus::Cancelled)
    );
    assert_eq!(status(queue, report.id()).await, Some(JobStatus::Cancelled));
    let again = jobs(url, ns, &["workflow", &id, "--cancel", "--yes"]).await;
    assert_eq!(again.code, 4, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_shows_and_cancels_a_workflow() {
    let Some((url, ns, queue)) = redis("workflow").await else {
        return;
    };
    workflow_commands(&url, &ns, &queue).await;
}

// ----------------------------------------------------------- PostgreSQL

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_list_and_show() {
    let Some((url, schema, queue)) = postgres("list").await else {
        return;
    };
    let id = failed_twice(&queue).await;
    let waiting = queue
        .enqueue(Job::new("send_email", json!({"to": "b@example.com"})))
        .await
        .unwrap();

    let table = jobs(&url, &schema, &["list"]).await.ok();
    assert!(table.out.contains(&id.to_string()), "{}", table.out);
    assert!(table.out.contains(&waiting.to_string()), "{}", table.out);
    assert!(table.out.contains("gateway timeout"), "{}", table.out);

    let json = jobs(&url, &schema, &["--json", "list", "--name", "charge"])
        .await
        .ok()
        .json();
    assert_eq!(json["jobs"].as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(json["jobs"][0]["id"], id.to_string());

    let shown = jobs(&url, &schema, &["show", &id.to_string()]).await.ok();
    for part in [
        "\"order\": 42",
        "card declined",
        "gateway timeout",
        "attempt 2",
    ] {
        assert!(shown.out.contains(part), "no {part:?} in\n{}", shown.out);
    }
    let unknown = jobs(&url, &schema, &["show", &JobId::new().to_string()]).await;
    assert_eq!(unknown.code, 3, "{unknown:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_workflow() {
    let Some((url, schema, queue)) = postgres("workflow").await else {
        return;
    };
    workflow_commands(&url, &schema, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stats() {
    let Some((url, schema, queue)) = postgres("stats").await else {
        return;
    };
    completed(&queue, "a").await;
    failed(&queue, "a", "boom").await;
    queue.enqueue(Job::new("a", json!({}))).await.unwrap();

    let json = jobs(&url, &schema, &["--json", "stats"]).await.ok().json();
    assert_eq!(json["backend"], "postgres");
    assert_eq!(json["counts"]["pending"], 1, "{json}");
    assert_eq!(json["counts"]["completed"], 1, "{json}");
    assert_eq!(json["counts"]["failed"], 1, "{json}");
    assert_eq!(json["throughput"]["last_hour"]["processed"], 2, "{json}");
    assert!(json["target"].as_str().unwrap().contains(&schema), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_retry_purge_and_delete() {
    let Some((url, schema, queue)) = postgres("bulk").await else {
        return;
    };
    let broken = failed(&queue, "a", "boom").await;
    let done = completed(&queue, "a").await;

    let refused = jobs(&url, &schema, &["purge", "--status", "completed"]).await;
    assert_eq!(refused.code, 4, "{refused:?}");
    let retried = jobs(&url, &schema, &["--json", "retry", "--all-failed", "--yes"]).await;
    assert_eq!(retried.ok().json()["retried"], 1);
    assert_eq!(status(&queue, broken).await, Some(JobStatus::Pending));

    let purged = jobs(&url, &schema, &["purge", "--status", "completed", "--yes"]).await;
    assert_eq!(purged.ok().out, "purged 1 completed job\n");
    assert_eq!(status(&queue, done).await, None);

    // The retried job, reserved again: running, so not deleted.
    queue
        .reserve("cli-test", &[Take::new(jobs::DEFAULT_QUEUE, 1)], LEASE)
        .await
        .unwrap();
    let running = jobs(&url, &schema, &["delete", &broken.to_string()]).await;
    assert_eq!(running.code, 4, "{running:?}");
    assert_eq!(status(&queue, broken).await, Some(JobStatus::Running));
}

/// One HTTP/1.1 GET on `addr`, answered whole (the server closes the
/// connection): the status code and the body.
async fn get(addr: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = auth.map_or(String::new(), |a| format!("Authorization: Basic {a}\r\n"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    (status, response)
}

/// `jobs web` serves the dashboard over the queue at `--url` on a loopback
/// port (0: any free one, printed), with basic auth from the environment,
/// and stops on SIGINT with exit code 0.
#[tokio::test]
async fn web_serves_the_dashboard_until_interrupted() {
    let Some((url, ns, queue)) = redis("web").await else {
        return;
    };
    failed(&queue, "resize_image", "out of memory").await;
    let mut child = binary()
        .args([
            "--url",
            &url,
            "--namespace",
            &ns,
            "web",
            "--bind",
            "127.0.0.1:0",
        ])
        .env("JOBS_WEB_USER", "ops")
        .env("JOBS_WEB_PASSWORD", "s3cret")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert!(line.contains("basic auth"), "{line}");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();

    let (status, _) = get(&addr, "/", None).await;
    assert_eq!(status, 401);
    // "ops:s3cret"
    let auth = Some("b3BzOnMzY3JldA==");
    let (status, body) = get(&addr, "/", auth).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&addr, "/jobs?status=failed", auth).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("resize_image"), "{body}");

    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
