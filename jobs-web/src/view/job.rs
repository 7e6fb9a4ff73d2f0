//! One job: every field, its attempts' errors, and what can be done to it.

use chrono::{DateTime, Utc};
use jobs::{Job, JobStatus};
use maud::{Markup, html};

use super::workflow::{self, StepPanel};
use super::{Ctx, Flash, Nav, absolute, badge, duration, layout, pretty, queue_url, relative};

/// The page; `step` is the workflow section of a job that is a step.
pub(crate) fn page(ctx: &Ctx, job: &Job, step: Option<&StepPanel>, flash: Option<Flash>) -> Markup {
    let title = format!("{} {}", job.name, job.id);
    layout(
        ctx,
        &title,
        Nav::Jobs,
        flash,
        html! {
            div.page-head.job-head {
                div {
                    p.crumbs {
                        a href=(ctx.base.url("/jobs")) { "Jobs" } " / "
                        a href=(ctx.base.url(&format!("/jobs?status={}", job.status.as_str()))) { (job.status.as_str()) }
                    }
                    h1 { span.name { (job.name) } " " (badge(job.status)) }
                    p.id { code { (job.id) } }
                }
                (actions(ctx, job))
            }
            @if !job.errors.is_empty() {
                section.panel #errors {
                    h2 { "Errors " span.count-pill { (job.errors.len()) } }
                    table.table.errors {
                        thead { tr { th.num { "Attempt" } th { "At" } th { "Error" } } }
                        tbody {
                            @for e in job.errors.iter().rev() {
                                tr {
                                    td.num { (e.attempt) }
                                    td { time datetime=(e.at.to_rfc3339()) title=(relative(e.at, ctx.now)) { (absolute(e.at)) } }
                                    td { pre.error { (e.error) } }
                                }
                            }
                        }
                    }
                }
            } @else if let Some(error) = &job.last_error {
                section.panel #errors {
                    h2 { "Last error" }
                    pre.error { (error) }
                }
            }
            @if let Some(step) = step {
                (workflow::section(ctx, step))
            }
            div.detail-grid {
                section.panel {
                    h2 { "Details" }
                    dl.fields {
                        dt { "Queue" } dd { a href=(queue_url(ctx, &job.queue)) { code { (job.queue) } } }
                        dt { "Status" } dd data-field="status" { (badge(job.status)) }
                        dt { "Priority" } dd { (job.priority.as_str()) }
                        dt { "Attempts" } dd data-field="attempts" { (job.attempts) " of at most " (job.max_retries.saturating_add(1)) }
                        dt { "Timeout" } dd { (job.timeout.map(duration).unwrap_or_else(|| "the worker's default".into())) }
                        dt { "Backoff" } dd { (backoff(job)) }
                        @if let Some(every) = job.every {
                            dt { "Recurring" } dd { "every " (duration(every)) }
                        }
                        @if !job.tags.is_empty() {
                            dt { "Tags" } dd.tags { @for tag in &job.tags { span.tag { (tag) } } }
                        }
                        @if let Some(unique) = &job.unique {
                            dt { "Unique" }
                            dd {
                                "key " code { (unique.key) }
                                @if let Some(period) = unique.period { ", for " (duration(period)) }
                                @if !unique.states.is_empty() {
                                    ", while "
                                    @for (i, s) in unique.states.iter().enumerate() {
                                        @if i > 0 { ", " } (s.as_str())
                                    }
                                }
                            }
                        }
                        @if let Some(limit) = &job.concurrency {
                            dt { "Concurrency" } dd { "at most " (limit.max) " running with key " code { (limit.key) } }
                        }
                        @if let Some(limit) = &job.rate_limit {
                            dt { "Rate limit" }
                            dd { (limit.rate.max) " per " (duration(limit.rate.period)) " with key " code { (limit.key) } }
                        }
                    }
                }
                section.panel {
                    h2 { "Timeline" }
                    ol.timeline {
                        (moment(ctx, "Created", Some(job.created_at)))
                        (moment(ctx, "Scheduled for", job.scheduled_at))
                        (moment(ctx, "Started", job.started_at))
                        (moment(ctx, finished_label(job.status), job.completed_at))
                        (moment(ctx, "Expires", job.expires_at))
                    }
                }
            }
            section.panel {
                h2 { "Arguments" }
                pre.json data-field="args" { (pretty(&job.args)) }
            }
            @if let Some(progress) = &job.progress {
                section.panel {
                    h2 { "Progress" }
                    pre.json { (pretty(progress)) }
                }
            }
            @if let Some(result) = &job.result {
                section.panel {
                    h2 { "Latest result" }
                    dl.fields {
                        dt { "Outcome" } dd { @if result.success { "succeeded" } @else { "failed" } }
                        @if let Some(t) = result.execution_time { dt { "Ran for" } dd { (duration(t)) } }
                        @if let Some(kind) = &result.error_type { dt { "Error type" } dd { code { (kind) } } }
                        @if let Some(error) = result.error.as_ref().filter(|_| job.errors.is_empty()) {
                            dt { "Error" } dd { pre.error { (error) } }
                        }
                        @if !result.success { dt { "Retryable" } dd { @if result.retryable { "yes" } @else { "no" } } }
                        @if let Some(value) = &result.result {
                            dt { "Value" } dd { pre.json data-field="result" { (pretty(value)) } }
                        }
                    }

                }
            }
            @if !job.metadata.is_empty() {
                section.panel {
                    h2 { "Metadata" }
                    table.table {
                        tbody {
                            @for (key, value) in &job.metadata {
                                tr { th { code { (key) } } td { pre.json.inline { (pretty(value)) } } }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn actions(ctx: &Ctx, job: &Job) -> Markup {
    let path = |action: &str| format!("/jobs/{}/{action}", job.id);
    let retryable = matches!(
        job.status,
        JobStatus::Failed | JobStatus::Cancelled | JobStatus::Expired
    );
    let cancellable = matches!(
        job.status,
        JobStatus::Pending | JobStatus::Retrying | JobStatus::Running
    );
    html! {
        div.job-actions {
            @if retryable { (ctx.action(&path("retry"), "Retry", "primary", &[])) }
            @if cancellable { (ctx.action(&path("cancel"), "Cancel", "", &[])) }
            @if job.status != JobStatus::Running {
                (ctx.action_confirm(&path("delete"), "Delete", "danger", &[], Some("Delete this job for good?")))
            }
        }
    }
}

fn finished_label(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Completed => "Completed",
        JobStatus::Failed => "Failed",
        JobStatus::Cancelled => "Cancelled",
        JobStatus::Expired => "Expired",
        _ => "Finished",
    }
}

fn moment(ctx: &Ctx, label: &str, at: Option<DateTime<Utc>>) -> Markup {
    html! {
        li class=[at.is_none().then_some("none")] {
            span.what { (label) }
            @match at {
                Some(at) => span.at {
                    time datetime=(at.to_rfc3339()) { (absolute(at)) }
                    " " span.hint { "(" (relative(at, ctx.now)) ")" }
                },
                None => span.at { "—" },
            }
        }
    }
}

fn backoff(job: &Job) -> String {
    match &job.backoff {
        None => "exponential from 1s, doubling, at most 1h (default)".to_owned(),
        Some(b) if b.factor <= 1.0 => format!("fixed {}", duration(b.base)),
        Some(b) => format!(
            "from {}, ×{} per attempt, at most {}{}",
            duration(b.base),
            b.factor,
            duration(b.max),
            if b.jitter { ", with jitter" } else { "" }
        ),
    }
}
