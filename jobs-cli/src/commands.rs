//! What each command does: the admin calls it makes, what it prints, and
//! the exit code it ends with.

use std::collections::HashSet;
use std::future::Future;
use std::io::Write;
use std::time::Duration;

use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use jobs::queue::MAX_PAGE;
use jobs::workflow::{WorkflowId, WorkflowStatus};
use jobs::{
    AnyQueue, CancelOutcome, DeleteOutcome, Error, JobFilter, JobId, JobStatus, QueueAdmin,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Failure;
use crate::args::{Command, ListArgs, PurgeArgs, RetryArgs, WebArgs, WorkflowArgs};
use crate::output::{self, DependencyView, StepView, count, plural};
use crate::terminal::Terminal;

/// One command's run: the queue, how to reach and describe it, and where
/// to write.
pub(crate) struct Ctx<'t> {
    pub(crate) queue: AnyQueue,
    /// The queue as prompts and messages name it (no password).
    pub(crate) target: String,
    pub(crate) timeout: Duration,
    pub(crate) json: bool,
    pub(crate) term: &'t mut Terminal,
}

type Done = Result<(), Failure>;

impl Ctx<'_> {
    /// Runs `command`.
    pub(crate) async fn run(&mut self, command: &Command) -> Done {
        match command {
            Command::Stats => self.stats().await,
            Command::Queues => self.queues().await,
            Command::Workers => self.workers().await,
            Command::List(args) => self.list(args).await,
            Command::Show { id } => self.show(id).await,
            Command::Retry(args) => self.retry(args).await,
            Command::Cancel { id } => self.cancel(id).await,
            Command::Delete { id } => self.delete(id).await,
            Command::Purge(args) => self.purge(args).await,
            Command::Pause { queue } => self.pause(queue, true).await,
            Command::Resume { queue } => self.pause(queue, false).await,
            Command::Workflow(args) => self.workflow(args).await,
            Command::Web(args) => self.web(args).await,
        }
    }

    /// Awaits one backend call, within the timeout.
    async fn call<T>(&self, call: impl Future<Output = jobs::Result<T>>) -> Result<T, Failure> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(backend_failure(&self.target, e)),
            Err(_) => Err(Failure::error(format!(
                "{} did not answer within {:?} (see --timeout)",
                self.target, self.timeout
            ))),
        }
    }

    /// Writes human output to stdout.
    fn print(&mut self, text: &str) {
        // A closed stdout (`jobs list | head`) is not an error of ours.
        let _ = self.term.out.write_all(text.as_bytes());
        let _ = self.term.out.flush();
    }

    /// Writes `value` as pretty JSON to stdout.
    fn print_json(&mut self, value: &impl Serialize) -> Done {
        let mut text = serde_json::to_string_pretty(value)
            .map_err(|e| Failure::error(format!("cannot write JSON: {e}")))?;
        text.push('\n');
        self.print(&text);
        Ok(())
    }

    /// Goes ahead with `action` if `--yes` was given or a person says so at
    /// the prompt; refuses (exit 4) otherwise, and when nobody can answer.
    fn confirm(&mut self, action: &str, yes: bool) -> Done {
        if yes {
            return Ok(());
        }
        if !self.term.is_interactive() {
            return Err(Failure::refused(format!(
                "not confirmed: {action}; stdin is not a terminal, pass --yes to go ahead"
            )));
        }
        match self.term.ask(&format!("{action}?")) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Failure::refused("not confirmed; nothing was changed")),
            Err(e) => Err(Failure::refused(format!(
                "cannot read the answer ({e}); nothing was changed"
            ))),
        }
    }

    async fn stats(&mut self) -> Done {
        let counts = self.call(self.queue.counts()).await?;
        let queues = self.call(self.queue.queues()).await?;
        let series = self.call(self.queue.throughput(60)).await?;
        let workers = self.call(self.queue.workers()).await?;
        let last_minute = series.last().map_or((0, 0), |t| (t.processed, t.failed));
        let last_hour = series
            .iter()
            .fold((0, 0), |(p, f), t| (p + t.processed, f + t.failed));
        let stats = Stats {
            target: self.target.clone(),
            backend: self.queue.backend(),
            counts,
            queues,
            throughput: ThroughputSummary {
                last_minute: Processed::new(last_minute),
                last_hour: Processed::new(last_hour),
            },
            workers: workers.len(),
        };
        if self.json {
            return self.print_json(&stats);
        }
        let text = output::stats(&stats);
        self.print(&text);
        Ok(())
    }

    async fn queues(&mut self) -> Done {
        let queues = self.call(self.queue.queues()).await?;
        if self.json {
            return self.print_json(&queues);
        }
        if queues.is_empty() {
            self.print("no named queues yet\n");
            return Ok(());
        }
        let text = output::queues_table(&queues);
        self.print(&text);
        Ok(())
    }

    async fn workers(&mut self) -> Done {
        let workers = self.call(self.queue.workers()).await?;
        if self.json {
            return self.print_json(&workers);
        }
        if workers.is_empty() {
            self.print("no workers alive\n");
            return Ok(());
        }
        let text = output::workers_table(&workers, Utc::now());
        self.print(&text);
        Ok(())
    }

    async fn list(&mut self, args: &ListArgs) -> Done {
        let mut filter = JobFilter::new().page(args.offset as usize, args.limit as usize);
        if let Some(status) = args.status {
            filter = filter.status(status.into());
        }
        if let Some(name) = &args.name {
            filter = filter.name(name.clone());
        }
        if let Some(queue) = &args.queue {
            filter = filter.queue(queue.clone());
        }
        let page = self.call(self.queue.find_jobs(&filter)).await?;
        if self.json {
            let jobs: Vec<Value> = page.jobs.iter().map(output::job_json).collect();
            return self.print_json(&json!({ "jobs": jobs, "more": page.more }));
        }
        let mut text = if page.jobs.is_empty() {
            "no jobs match\n".to_owned()
        } else {
            output::jobs_table(&page.jobs)
        };
        if page.more {
            let next = args.offset + page.jobs.len() as u64;
            text.push_str(&format!(
                "more jobs match: see the next page with --offset {next}\n"
            ));
        }
        self.print(&text);
        Ok(())
    }

    async fn show(&mut self, id: &str) -> Done {
        let id = parse_id(id)?;
        let job = self
            .call(self.queue.get(id))
            .await?
            .ok_or_else(|| not_found(id))?;
        let step = self.step_view(&job).await?;
        if self.json {
            let mut value = output::job_json(&job);
            if let (Some(step), Value::Object(map)) = (&step, &mut value) {
                map.insert("workflow".into(), json!(step));
            }
            return self.print_json(&value);
        }
        let text = output::job_details(&job, step.as_ref());
        self.print(&text);
        Ok(())
    }

    /// For a job that is a step of a workflow or batch: the workflow, and
    /// the status of each dependency now (from the workflow's steps, or
    /// the job itself for one the workflow no longer lists).
    async fn step_view(&self, job: &jobs::Job) -> Result<Option<StepView>, Failure> {
        let Some(step) = &job.step else {
            return Ok(None);
        };
        let workflow = self.call(self.queue.workflow(step.workflow)).await?;
        let listed = |id: JobId| {
            workflow
                .as_ref()
                .and_then(|w| w.steps.iter().find(|s| s.job_id == id))
        };
        let mut dependencies = Vec::with_capacity(step.depends_on.len());
        for d in &step.depends_on {
            let status = match listed(d.job) {
                Some(s) => Some(s.status),
                None => self.call(self.queue.get(d.job)).await?.map(|j| j.status),
            };
            dependencies.push(DependencyView {
                step: d.step.clone(),
                job: d.job,
                status,
            });
        }
        Ok(Some(StepView {
            id: step.workflow,
            name: step.workflow_name.clone(),
            kind: step.kind,
            step: step.name.clone(),
            run_always: step.run_always,
            waiting_on: listed(job.id).map(|s| s.waiting_on),
            dependencies,
        }))
    }

    async fn workflow(&mut self, args: &WorkflowArgs) -> Done {
        let id = args
            .id
            .parse::<WorkflowId>()
            .map_err(|e| Failure::error(message_of(e)))?;
        let status = self
            .call(self.queue.workflow(id))
            .await?
            .ok_or_else(|| no_workflow(id))?;
        if args.cancel {
            return self.cancel_workflow(&status, args.yes).await;
        }
        if self.json {
            return self.print_json(&status);
        }
        let text = output::workflow_details(&status);
        self.print(&text);
        Ok(())
    }

    async fn cancel_workflow(&mut self, status: &WorkflowStatus, yes: bool) -> Done {
        let (id, kind) = (status.id, status.kind.as_str());
        if status.is_finished() {
            return Err(Failure::refused(format!(
                "{kind} {id} had finished already; nothing changed"
            )));
        }
        self.confirm(
            &format!(
                "cancel the {} of {kind} {} ({id}) in {}",
                plural(status.pending, "unfinished job", "unfinished jobs"),
                status.name,
                self.target
            ),
            yes,
        )?;
        let cancelled = match self.call(self.queue.cancel_workflow(id)).await {
            Ok(n) => n,
            // Gone since it was read.
            Err(f) if self.call(self.queue.workflow(id)).await?.is_none() => {
                return Err(Failure {
                    exit: crate::Exit::NotFound,
                    ..f
                });
            }
            Err(f) => return Err(f),
        };
        if self.json {
            return self.print_json(&json!({ "id": id, "cancelled": cancelled }));
        }
        self.print(&format!(
            "cancelled {} of {kind} {}\n",
            plural(cancelled, "job", "jobs"),
            status.name
        ));
        Ok(())
    }

    async fn retry(&mut self, args: &RetryArgs) -> Done {
        let Some(id) = &args.id else {
            return self.retry_all_failed(args).await;
        };
        let id = parse_id(id)?;
        let job = self
            .call(self.queue.get(id))
            .await?
            .ok_or_else(|| not_found(id))?;
        if !self.call(self.queue.retry(id)).await? {
            // Either it is not in a retryable state, or it changed since.
            let status = self
                .call(self.queue.get(id))
                .await?
                .map_or(job.status, |j| j.status);
            return Err(Failure::refused(format!(
                "job {id} is {status}: only failed, cancelled or expired jobs can be retried"
            )));
        }
        if self.json {
            return self.print_json(&json!({ "id": id, "retried": true }));
        }
        self.print(&format!("job {id} waits to run again\n"));
        Ok(())
    }

    async fn retry_all_failed(&mut self, args: &RetryArgs) -> Done {
        let mut filter = JobFilter::new().status(JobStatus::Failed);
        if let Some(name) = &args.name {
            filter = filter.name(name.clone());
        }
        if let Some(queue) = &args.queue {
            filter = filter.queue(queue.clone());
        }
        // The ids are gathered before any is retried: a retried job leaves
        // the failed ones, so paging while retrying would skip jobs. A job
        // that fails meanwhile shifts later pages by one, so an id can show
        // up twice; it is kept once.
        let mut ids = Vec::new();
        let mut seen = HashSet::new();
        let mut offset = 0;
        loop {
            let page = self
                .call(self.queue.find_jobs(&filter.clone().page(offset, MAX_PAGE)))
                .await?;
            offset += page.jobs.len();
            ids.extend(page.jobs.iter().map(|j| j.id).filter(|id| seen.insert(*id)));
            if !page.more || page.jobs.is_empty() {
                break;
            }
        }
        let matched = ids.len() as u64;
        let which = describe_filter(args.name.as_deref(), args.queue.as_deref());
        if ids.is_empty() {
            if self.json {
                return self.print_json(&json!({ "matched": 0, "retried": 0, "skipped": 0 }));
            }
            self.print(&format!("no failed jobs{which}\n"));
            return Ok(());
        }
        self.confirm(
            &format!(
                "retry {}{which} in {}",
                plural(matched, "failed job", "failed jobs"),
                self.target
            ),
            args.yes,
        )?;

        let bar = if self.json || !self.term.progress {
            ProgressBar::hidden()
        } else {
            let style = ProgressStyle::with_template("{bar:40} {pos}/{len} retried ({eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            ProgressBar::new(matched).with_style(style)
        };
        let (mut retried, mut skipped) = (0u64, 0u64);
        for id in ids {
            match self.call(self.queue.retry(id)).await {
                Ok(true) => retried += 1,
                // Retried, deleted or purged by someone else meanwhile.
                Ok(false) => skipped += 1,
                Err(e) => {
                    bar.abandon();
                    return Err(Failure::error(format!(
                        "retried {} of {}, then stopped: {}",
                        count(retried),
                        plural(matched, "failed job", "failed jobs"),
                        e.message
                    )));
                }
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        if self.json {
            return self.print_json(
                &json!({ "matched": matched, "retried": retried, "skipped": skipped }),
            );
        }
        let mut text = format!("retried {}", plural(retried, "failed job", "failed jobs"));
        if skipped > 0 {
            text.push_str(&format!(
                "; {} no longer failed",
                plural(skipped, "job was", "jobs were")
            ));
        }
        text.push('\n');
        self.print(&text);
        Ok(())
    }

    async fn cancel(&mut self, id: &str) -> Done {
        let id = parse_id(id)?;
        let outcome = self.call(self.queue.cancel(id)).await?;
        let message = match outcome {
            CancelOutcome::Cancelled => format!("cancelled job {id}"),
            CancelOutcome::CancelledRunning => {
                format!("cancelled job {id}; the worker running it stops it")
            }
            CancelOutcome::AlreadyFinished(status) => {
                return Err(Failure::refused(format!(
                    "job {id} had finished already ({status}); nothing changed"
                )));
            }
            CancelOutcome::NotFound => return Err(not_found(id)),
            other => return Err(Failure::error(format!("job {id}: {other:?}"))),
        };
        if self.json {
            return self.print_json(&json!({ "id": id, "outcome": outcome }));
        }
        self.print(&format!("{message}\n"));
        Ok(())
    }

    async fn delete(&mut self, id: &str) -> Done {
        let id = parse_id(id)?;
        match self.call(self.queue.delete(id)).await? {
            DeleteOutcome::Deleted => {}
            DeleteOutcome::Running => {
                return Err(Failure::refused(format!(
                    "job {id} is running and was not deleted: cancel it first (jobs cancel {id})"
                )));
            }
            DeleteOutcome::NotFound => return Err(not_found(id)),
            other => return Err(Failure::error(format!("job {id}: {other:?}"))),
        }
        if self.json {
            return self.print_json(&json!({ "id": id, "deleted": true }));
        }
        self.print(&format!("deleted job {id}\n"));
        Ok(())
    }

    async fn purge(&mut self, args: &PurgeArgs) -> Done {
        let status: Option<JobStatus> = args.status.map(Into::into);
        if status == Some(JobStatus::Running) {
            return Err(Failure::error(
                "running jobs cannot be purged: cancel them first (jobs cancel ID)",
            ));
        }
        let counts = self.call(self.queue.counts()).await?;
        let (found, what) = match status {
            Some(status) => (
                counts.get(status),
                plural(
                    counts.get(status),
                    &format!("{status} job"),
                    &format!("{status} jobs"),
                ),
            ),
            None => {
                let all = JobStatus::ALL.iter().map(|&s| counts.get(s)).sum();
                (all, plural(all, "job", "jobs"))
            }
        };
        if found == 0 {
            if self.json {
                return self.print_json(&json!({ "purged": 0, "status": status }));
            }
            self.print(&format!(
                "nothing to purge: no {}jobs\n",
                match status {
                    Some(s) => format!("{s} "),
                    None => String::new(),
                }
            ));
            return Ok(());
        }
        let every = if status.is_none() { "all " } else { "" };
        self.confirm(
            &format!("purge {every}{what} from {}", self.target),
            args.yes,
        )?;
        let purged = match status {
            Some(status) => self.call(self.queue.purge_status(status)).await?,
            None => self.call(self.queue.purge()).await?,
        };
        if self.json {
            return self.print_json(&json!({ "purged": purged, "status": status }));
        }
        let label = match status {
            Some(s) => plural(purged, &format!("{s} job"), &format!("{s} jobs")),
            None => plural(purged, "job", "jobs"),
        };
        self.print(&format!("purged {label}\n"));
        Ok(())
    }

    async fn pause(&mut self, queue: &str, pause: bool) -> Done {
        jobs::check_queue_name(queue).map_err(|e| Failure::error(message_of(e)))?;
        let changed = if pause {
            self.call(self.queue.pause_queue(queue)).await?
        } else {
            self.call(self.queue.resume_queue(queue)).await?
        };
        if self.json {
            return self
                .print_json(&json!({ "queue": queue, "paused": pause, "changed": changed }));
        }
        let text = match (pause, changed) {
            (true, true) => format!("paused queue {queue}: workers take none of its jobs now\n"),
            (true, false) => format!("queue {queue} was paused already\n"),
            (false, true) => format!("resumed queue {queue}\n"),
            (false, false) => format!("queue {queue} was not paused\n"),
        };
        self.print(&text);
        Ok(())
    }
}

/// `jobs web`'s address check, made before connecting: a non-loopback
/// address needs `--public`.
pub(crate) fn check_bind(args: &WebArgs) -> Done {
    if !args.bind.ip().is_loopback() && !args.public {
        return Err(Failure::error(format!(
            "{} is not a loopback address: the dashboard would be reachable from other \
             machines; pass --public to allow that",
            args.bind
        )));
    }
    Ok(())
}

impl Ctx<'_> {
    /// `jobs web`: serves the dashboard over this queue on `args.bind`
    /// until Ctrl-C (or SIGTERM), with basic auth when `JOBS_WEB_USER` and
    /// `JOBS_WEB_PASSWORD` are set.
    async fn web(&mut self, args: &WebArgs) -> Done {
        check_bind(args)?;
        let dashboard = jobs_web::Dashboard::new(self.queue.clone())
            .read_only(args.read_only)
            .basic_auth_from_env()
            .map_err(|e| Failure::error(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .map_err(|e| Failure::error(format!("cannot listen on {}: {e}", args.bind)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Failure::error(format!("cannot listen on {}: {e}", args.bind)))?;
        let mode = if args.read_only { ", read-only" } else { "" };
        let auth = if std::env::var_os("JOBS_WEB_USER").is_some() {
            ", basic auth"
        } else {
            ""
        };
        self.print(&format!(
            "dashboard for {} on http://{addr}/{mode}{auth} (Ctrl-C stops it)\n",
            self.target
        ));
        jobs_web::serve_with_shutdown(dashboard, listener, stop_signal())
            .await
            .map_err(|e| Failure::error(format!("the dashboard stopped: {e}")))
    }
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// What `stats` reports.
#[derive(Debug, Serialize)]
pub(crate) struct Stats {
    pub(crate) target: String,
    pub(crate) backend: &'static str,
    pub(crate) counts: jobs::QueueCounts,
    pub(crate) queues: Vec<jobs::QueueInfo>,
    pub(crate) throughput: ThroughputSummary,
    /// How many workers are alive.
    pub(crate) workers: usize,
}

/// Attempts processed in the last minute and the last hour.
#[derive(Debug, Serialize)]
pub(crate) struct ThroughputSummary {
    pub(crate) last_minute: Processed,
    pub(crate) last_hour: Processed,
}

/// Attempts that ended, and of those the failed ones.
#[derive(Debug, Serialize)]
pub(crate) struct Processed {
    pub(crate) processed: u64,
    pub(crate) failed: u64,
}

impl Processed {
    fn new((processed, failed): (u64, u64)) -> Self {
        Self { processed, failed }
    }
}

/// ` named N in queue Q`, for what a filter selects.
fn describe_filter(name: Option<&str>, queue: Option<&str>) -> String {
    let mut text = String::new();
    if let Some(name) = name {
        text.push_str(&format!(" named {name}"));
    }
    if let Some(queue) = queue {
        text.push_str(&format!(" of queue {queue}"));
    }
    text
}

fn parse_id(id: &str) -> Result<JobId, Failure> {
    id.parse::<JobId>()
        .map_err(|e| Failure::error(message_of(e)))
}

fn no_workflow(id: WorkflowId) -> Failure {
    Failure::not_found(format!("no workflow or batch with id {id}"))
}

fn not_found(id: JobId) -> Failure {
    Failure::not_found(format!("no job with id {id}"))
}

/// An error's message without the variant's prefix where that only repeats
/// what the message says.
fn message_of(e: Error) -> String {
    match e {
        Error::InvalidArgument(message) => message,
        other => other.to_string(),
    }
}

/// The failure a backend error means for the command.
fn backend_failure(target: &str, e: Error) -> Failure {
    match e {
        Error::NotFound(id) => not_found(id),
        Error::Backend(e) => Failure::error(format!("{target}: {e}")),
        other => Failure::error(message_of(other)),
    }
}
