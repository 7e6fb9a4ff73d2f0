//! How results look: aligned tables, times, counts and shortened text for
//! people; JSON for scripts.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use jobs::workflow::{WorkflowId, WorkflowKind, WorkflowStatus};
use jobs::{Job, JobId, JobStatus, QueueInfo, WorkerInfo};
use serde::Serialize;
use serde_json::Value;

use crate::commands::Stats;

/// A table printed as aligned columns, two spaces apart, under a header of
/// upper-case names. Numeric columns are right-aligned.
pub(crate) struct Table {
    header: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub(crate) fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.to_vec(),
            right: vec![false; header.len()],
            rows: Vec::new(),
        }
    }

    /// Right-aligns the columns at `columns` (numbers).
    pub(crate) fn right(mut self, columns: &[usize]) -> Self {
        for &c in columns {
            self.right[c] = true;
        }
        self
    }

    /// Adds a row (one cell per column).
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    /// The table as text, one line per row, each ending in a newline.
    pub(crate) fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i] - cell.chars().count();
                if self.right[i] {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if i + 1 < row.len() {
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A time as RFC 3339 in UTC, to the second: `2026-12-03T08:40:12Z`.
pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// How long before `now` the time `at` was, roughly: `4s ago`, `3m ago`,
/// `2h ago`, `5d ago` (`in 4s` for a time to come).
pub(crate) fn ago(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds();
    let span = |s: i64| match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3_600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    };
    if seconds < 0 {
        format!("in {}", span(-seconds))
    } else {
        format!("{} ago", span(seconds))
    }
}

/// A count with thousands separated: `1,234,567`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` followed by `one` or `many`: `1 job`, `1,234 jobs`.
pub(crate) fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", count(n), if n == 1 { one } else { many })
}

/// `text` on one line (line breaks and tabs become spaces), at most `max`
/// characters, ending in `…` when shortened.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    let line = line.trim();
    if line.chars().count() <= max {
        return line.to_owned();
    }
    let mut short: String = line.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// `value` as pretty JSON, each line indented by `indent` spaces.
pub(crate) fn indented_json(value: &Value, indent: usize) -> String {
    let pretty = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    indented(&pretty, indent)
}

/// `text` with each line indented by `indent` spaces, ending in a newline.
pub(crate) fn indented(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    for line in text.lines() {
        let _ = writeln!(out, "{pad}{line}");
    }
    out
}

/// `yes` or `no`.
pub(crate) fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}

/// A queue URL fit to print: any password in it replaced by `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
        None => url.to_owned(),
    }
}

/// `stats` for people: counts by status, the named queues, throughput and
/// workers.
pub(crate) fn stats(stats: &Stats) -> String {
    let mut out = format!("{}\n\n", stats.target);
    let mut table = Table::new(&["STATUS", "JOBS"]).right(&[1]);
    for status in JobStatus::ALL {
        table.row(vec![status.to_string(), count(stats.counts.get(status))]);
    }
    out.push_str(&table.render());
    match stats.counts.scheduled {
        0 => {}
        1 => out.push_str("1 of the waiting jobs is scheduled for later\n"),
        n => {
            let _ = writeln!(
                out,
                "{} of the waiting jobs are scheduled for later",
                count(n)
            );
        }
    }
    out.push('\n');
    if stats.queues.is_empty() {
        out.push_str("no named queues yet\n");
    } else {
        out.push_str(&queues_table(&stats.queues));
    }
    out.push('\n');
    let mut table = Table::new(&["THROUGHPUT", "PROCESSED", "FAILED"]).right(&[1, 2]);
    for (label, p) in [
        ("last minute", &stats.throughput.last_minute),
        ("last hour", &stats.throughput.last_hour),
    ] {
        table.row(vec![label.to_owned(), count(p.processed), count(p.failed)]);
    }
    out.push_str(&table.render());
    out.push('\n');
    let _ = writeln!(out, "workers alive: {}", stats.workers);
    out
}

/// The named queues as a table.
pub(crate) fn queues_table(queues: &[QueueInfo]) -> String {
    let mut table = Table::new(&["QUEUE", "READY", "PAUSED"]).right(&[1]);
    for q in queues {
        table.row(vec![
            q.name.clone(),
            count(q.ready),
            yes_no(q.paused).to_owned(),
        ]);
    }
    table.render()
}

/// The workers alive as a table.
pub(crate) fn workers_table(workers: &[WorkerInfo], now: DateTime<Utc>) -> String {
    let mut table = Table::new(&[
        "ID",
        "HOST",
        "PID",
        "STARTED",
        "RUNNING",
        "QUEUES",
        "LAST SEEN",
    ])
    .right(&[2, 4]);
    for w in workers {
        table.row(vec![
            w.id.clone(),
            w.host.clone(),
            w.pid.to_string(),
            time(w.started_at),
            format!("{}/{}", w.running, w.concurrency),
            w.queues.join(","),
            ago(now, w.last_seen),
        ]);
    }
    table.render()
}

/// How long the last error shown in `list` may be.
const LAST_ERROR_WIDTH: usize = 48;

/// Jobs as a table, one line each.
pub(crate) fn jobs_table(jobs: &[Job]) -> String {
    let mut table = Table::new(&[
        "ID",
        "NAME",
        "QUEUE",
        "STATUS",
        "ATTEMPTS",
        "CREATED",
        "LAST ERROR",
    ])
    .right(&[4]);
    for job in jobs {
        table.row(vec![
            job.id.to_string(),
            job.name.to_string(),
            job.queue.to_string(),
            job.status.to_string(),
            job.attempts.to_string(),
            time(job.created_at),
            job.last_error
                .as_deref()
                .map(|e| truncate(e, LAST_ERROR_WIDTH))
                .unwrap_or_default(),
        ]);
    }
    table.render()
}

/// A job as JSON: its serde form, with the queue named even when it is the
/// default one (which the stored form leaves out).
pub(crate) fn job_json(job: &Job) -> Value {
    let mut value = serde_json::to_value(job).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.entry("queue")
            .or_insert_with(|| Value::String(job.queue.to_string()));
    }
    value
}

/// What `show` adds for a job that is a step of a workflow or batch: the
/// workflow, the step, and where its dependencies stand.
#[derive(Debug, Serialize)]
pub(crate) struct StepView {
    /// The workflow's id.
    pub(crate) id: WorkflowId,
    /// The workflow's name.
    pub(crate) name: String,
    /// Workflow or batch.
    pub(crate) kind: WorkflowKind,
    /// The step's name.
    pub(crate) step: String,
    /// Whether the step runs whatever its dependencies' outcome.
    pub(crate) run_always: bool,
    /// How many dependencies it still waits for (`None`: the workflow's
    /// record is gone).
    pub(crate) waiting_on: Option<u64>,
    /// Its dependencies, as enqueued, with their current status.
    pub(crate) dependencies: Vec<DependencyView>,
}

/// A dependency of a step and its status now (`None`: its job is no
/// longer kept).
#[derive(Debug, Serialize)]
pub(crate) struct DependencyView {
    pub(crate) step: String,
    pub(crate) job: JobId,
    pub(crate) status: Option<JobStatus>,
}

/// How many dependencies `show` lists; the rest are counted.
const DEPENDENCIES_SHOWN: usize = 20;

/// How many step names a workflow's DEPENDS ON column lists.
const DEPENDS_ON_SHOWN: usize = 3;

/// A status, or `gone` for a job no longer kept.
fn status_or_gone(status: Option<JobStatus>) -> String {
    status.map_or_else(|| "gone".to_owned(), |s| s.to_string())
}

/// `show`'s workflow section.
fn step_section(out: &mut String, step: &StepView) {
    out.push_str("\nworkflow\n");
    let mut field = |label: &str, value: String| {
        let _ = writeln!(out, "  {label:<10}  {value}");
    };
    field("name", step.name.clone());
    field("id", step.id.to_string());
    field("kind", step.kind.as_str().to_owned());
    field("step", step.step.clone());
    if !step.dependencies.is_empty() {
        field(
            "runs",
            if step.run_always {
                "once its dependencies finished, whatever their outcome"
            } else {
                "once every dependency completed"
            }
            .to_owned(),
        );
    }
    let deps = step.dependencies.len() as u64;
    match step.waiting_on {
        Some(0) | None => {}
        Some(n) => field(
            "waiting on",
            format!(
                "{} of {}",
                count(n),
                plural(deps, "dependency", "dependencies")
            ),
        ),
    }
    if step.dependencies.is_empty() {
        return;
    }
    out.push_str("\n  dependencies\n");
    let mut table = Table::new(&["STEP", "JOB ID", "STATUS"]);
    for d in step.dependencies.iter().take(DEPENDENCIES_SHOWN) {
        table.row(vec![
            d.step.clone(),
            d.job.to_string(),
            status_or_gone(d.status),
        ]);
    }
    out.push_str(&indented(&table.render(), 4));
    if step.dependencies.len() > DEPENDENCIES_SHOWN {
        let more = (step.dependencies.len() - DEPENDENCIES_SHOWN) as u64;
        let _ = writeln!(
            out,
            "    and {} more: jobs workflow {} lists every step",
            count(more),
            step.id
        );
    }
}

/// A workflow or batch, for `workflow`: its counts and its steps.
pub(crate) fn workflow_details(status: &WorkflowStatus) -> String {
    let mut out = String::new();
    let mut field = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<10}  {value}");
    };
    field("id", status.id.to_string());
    field("name", status.name.clone());
    field("kind", status.kind.as_str().to_owned());
    out.push('\n');
    let mut table = Table::new(&["TOTAL", "PENDING", "COMPLETED", "FAILED", "CANCELLED"])
        .right(&[0, 1, 2, 3, 4]);
    table.row(
        [
            status.total,
            status.pending,
            status.completed,
            status.failed,
            status.cancelled,
        ]
        .map(count)
        .to_vec(),
    );
    out.push_str(&table.render());
    out.push('\n');
    if status.steps.is_empty() {
        out.push_str("no steps kept\n");
    } else {
        let mut table = Table::new(&[
            "STEP",
            "JOB ID",
            "JOB NAME",
            "STATUS",
            "WAITING ON",
            "DEPENDS ON",
        ])
        .right(&[4]);
        for s in &status.steps {
            let mut depends: Vec<&str> = s
                .depends_on
                .iter()
                .take(DEPENDS_ON_SHOWN)
                .map(|d| d.step.as_str())
                .collect();
            let rest = s.depends_on.len().saturating_sub(DEPENDS_ON_SHOWN) as u64;
            let more = format!("and {} more", count(rest));
            if rest > 0 {
                depends.push(&more);
            }
            table.row(vec![
                s.name.clone(),
                s.job_id.to_string(),
                s.job_name.clone(),
                s.status.to_string(),
                if s.waiting_on > 0 {
                    count(s.waiting_on)
                } else {
                    String::new()
                },
                depends.join(", "),
            ]);
        }
        out.push_str(&table.render());
    }
    let gone = status.total.saturating_sub(status.steps.len() as u64);
    if gone > 0 {
        let _ = writeln!(
            out,
            "{} no longer kept (finished, past the queue's retention)",
            plural(gone, "job is", "jobs are")
        );
    }
    out
}

/// One job in full, for `show`.
pub(crate) fn job_details(job: &Job, step: Option<&StepView>) -> String {
    let mut out = String::new();
    let mut field = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<10}  {value}");
    };
    field("id", job.id.to_string());
    field("name", job.name.to_string());
    field("queue", job.queue.to_string());
    field("status", job.status.to_string());
    field("priority", job.priority.to_string());
    field(
        "attempts",
        format!(
            "{} of at most {}",
            job.attempts,
            job.max_retries.saturating_add(1)
        ),
    );
    if let Some(timeout) = job.timeout {
        field("timeout", format!("{timeout:?}"));
    }
    if let Some(every) = job.every {
        field("every", format!("{every:?}"));
    }
    if !job.tags.is_empty() {
        field("tags", job.tags.join(", "));
    }
    let flow = [
        job.unique.as_ref().map(|_| "unique"),
        job.concurrency.as_ref().map(|_| "concurrency limit"),
        job.rate_limit.as_ref().map(|_| "rate limit"),
    ];
    let flow: Vec<&str> = flow.into_iter().flatten().collect();
    if !flow.is_empty() {
        field("flow", flow.join(", "));
    }
    if let Some(step) = step {
        step_section(&mut out, step);
    }

    out.push_str("\ntimeline\n");
    let mut timeline = vec![("created", Some(job.created_at))];
    timeline.push(("scheduled", job.scheduled_at));
    timeline.push(("started", job.started_at));
    timeline.push(("finished", job.completed_at));
    timeline.push(("expires", job.expires_at));
    for (label, at) in timeline {
        if let Some(at) = at {
            let _ = writeln!(out, "  {label:<10}  {}", time(at));
        }
    }

    out.push_str("\nargs\n");
    out.push_str(&indented_json(&job.args, 2));

    if !job.errors.is_empty() {
        out.push_str("\nerrors\n");
        for e in &job.errors {
            let _ = writeln!(out, "  attempt {}  {}", e.attempt, time(e.at));
            out.push_str(&indented(&e.error, 4));
        }
    } else if let Some(error) = &job.last_error {
        out.push_str("\nlast error\n");
        out.push_str(&indented(error, 2));
    }

    if let Some(result) = &job.result {
        out.push_str("\nresult\n");
        let value = serde_json::to_value(result).unwrap_or(Value::Null);
        out.push_str(&indented_json(&value, 2));
    }
    if let Some(progress) = &job.progress {
        out.push_str("\nprogress\n");
        out.push_str(&indented_json(progress, 2));
    }
    if !job.metadata.is_empty() {
        out.push_str("\nmetadata\n");
        for (key, value) in &job.metadata {
            let _ = writeln!(out, "  {key}: {value}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let mut table = Table::new(&["NAME", "READY", "PAUSED"]).right(&[1]);
        table.row(vec!["default".into(), "3".into(), "no".into()]);
        table.row(vec!["emails".into(), "1,200".into(), "yes".into()]);
        assert_eq!(
            table.render(),
            "NAME     READY  PAUSED\n\
             default      3  no\n\
             emails   1,200  yes\n"
        );
    }

    #[test]
    fn a_job_in_full() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let mut job = Job::new("charge", serde_json::json!({"order": 42}))
            .queue("billing")
            .max_retries(2);
        job.status = JobStatus::Failed;
        job.attempts = 2;
        job.created_at = at("2026-01-01T10:00:00Z");
        job.started_at = Some(at("2026-01-01T10:00:05Z"));
        job.completed_at = Some(at("2026-01-01T10:00:06Z"));
        job.tags = vec!["vip".into()];
        job.errors = vec![
            jobs::AttemptError::new(1, at("2026-01-01T10:00:01Z"), "card declined"),
            jobs::AttemptError::new(2, at("2026-01-01T10:00:06Z"), "gateway\ntimeout"),
        ];
        job.progress = Some(Box::new(serde_json::json!(0.5)));
        job.metadata
            .insert("tenant".into(), serde_json::json!("acme"));
        let id = job.id;
        assert_eq!(
            job_details(&job, None),
            format!(
                "id          {id}\n\
                 name        charge\n\
                 queue       billing\n\
                 status      failed\n\
                 priority    normal\n\
                 attempts    2 of at most 3\n\
                 tags        vip\n\
                 \n\
                 timeline\n  \
                 created     2026-01-01T10:00:00Z\n  \
                 started     2026-01-01T10:00:05Z\n  \
                 finished    2026-01-01T10:00:06Z\n\
                 \n\
                 args\n  \
                 {{\n    \
                 \"order\": 42\n  \
                 }}\n\
                 \n\
                 errors\n  \
                 attempt 1  2026-01-01T10:00:01Z\n    \
                 card declined\n  \
                 attempt 2  2026-01-01T10:00:06Z\n    \
                 gateway\n    \
                 timeout\n\
                 \n\
                 progress\n  \
                 0.5\n\
                 \n\
                 metadata\n  \
                 tenant: \"acme\"\n"
            )
        );
    }

    #[test]
    fn workers_show_load_and_age() {
        let now = "2026-01-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let mut w = WorkerInfo::new("w-1");
        w.host = "box".into();
        w.pid = 42;
        w.started_at = "2026-01-01T09:00:00Z".parse().unwrap();
        w.last_seen = "2026-01-01T09:59:57Z".parse().unwrap();
        w.running = 3;
        w.concurrency = 16;
        w.queues = vec!["default".into(), "emails".into()];
        assert_eq!(
            workers_table(&[w], now),
            "ID   HOST  PID  STARTED               RUNNING  QUEUES          LAST SEEN\n\
             w-1  box    42  2026-01-01T09:00:00Z     3/16  default,emails  3s ago\n"
        );
    }

    #[test]
    fn counts_have_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_234), "1,234");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(plural(1, "job", "jobs"), "1 job");
        assert_eq!(plural(2_000, "job", "jobs"), "2,000 jobs");
    }

    #[test]
    fn text_is_shortened_to_one_line() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("line one\nline two", 40), "line one line two");
        assert_eq!(truncate("abcdefghijkl", 6), "abcde…");
        assert_eq!(truncate("ééééééé", 4).chars().count(), 4);
    }

    #[test]
    fn ages_are_rough() {
        let now = "2026-01-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(ago(now, at("2026-01-01T09:59:55Z")), "5s ago");
        assert_eq!(ago(now, at("2026-01-01T09:57:00Z")), "3m ago");
        assert_eq!(ago(now, at("2025-12-30T10:00:00Z")), "2d ago");
        assert_eq!(ago(now, at("2026-01-01T10:00:30Z")), "in 30s");
    }

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(
            redact_url("redis://:secret@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("postgres://app:pw@db.local/app?sslmode=disable"),
            "postgres://app:***@db.local/app?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/"),
            "redis://127.0.0.1:6379/"
        );
    }
}
