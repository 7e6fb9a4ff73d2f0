//! The overview: counts by status, throughput charts, queues, workers.

use jobs::queue::THROUGHPUT_MINUTES;
use jobs::{JobStatus, QueueCounts, QueueInfo, Throughput, WorkerInfo};
use maud::{Markup, html};

use super::chart::{self, buckets};
use super::{Ctx, Flash, Nav, encode, layout, number, queue_url, when};

/// What the overview shows. The workers and throughput may be missing
/// (a backend without them): their panels say why.
pub(crate) struct Overview {
    pub(crate) counts: QueueCounts,
    pub(crate) queues: Vec<QueueInfo>,
    pub(crate) workers: Result<Vec<WorkerInfo>, String>,
    pub(crate) throughput: Result<Vec<Throughput>, String>,
}

/// How many minutes the overview asks throughput for: a day.
pub(crate) const MINUTES: usize = THROUGHPUT_MINUTES;

/// The whole page.
pub(crate) fn page(ctx: &Ctx, data: &Overview, flash: Option<Flash>) -> Markup {
    layout(
        ctx,
        "Overview",
        Nav::Overview,
        flash,
        html! {
            h1.sr { "Overview" }
            div.live data-live=(ctx.base.url("/live")) {
                (live(ctx, data))
            }
        },
    )
}

/// The part the script refreshes: everything but the frame.
pub(crate) fn live(ctx: &Ctx, data: &Overview) -> Markup {
    html! {
        (cards(ctx, &data.counts))
        (charts(&data.throughput))
        div.columns {
            (queues(ctx, &data.queues))
            (workers(ctx, &data.workers))
        }
    }
}

fn cards(ctx: &Ctx, counts: &QueueCounts) -> Markup {
    let status_url = |s: JobStatus| ctx.base.url(&format!("/jobs?status={}", s.as_str()));
    let cards: [(&str, &str, u64, String, &str); 8] = [
        (
            "pending",
            "Pending",
            counts.pending,
            status_url(JobStatus::Pending),
            "Waiting to run: ready now or scheduled",
        ),
        (
            "scheduled",
            "Scheduled",
            counts.scheduled,
            status_url(JobStatus::Pending),
            "Of the waiting jobs, those due later",
        ),
        (
            "running",
            "Running",
            counts.running,
            status_url(JobStatus::Running),
            "Reserved by a worker now",
        ),
        (
            "retrying",
            "Retrying",
            counts.retrying,
            status_url(JobStatus::Retrying),
            "Failed an attempt, waiting to be retried",
        ),
        (
            "completed",
            "Completed",
            counts.completed,
            status_url(JobStatus::Completed),
            "Finished successfully (those kept)",
        ),
        (
            "failed",
            "Failed",
            counts.failed,
            status_url(JobStatus::Failed),
            "Failed for good (those kept)",
        ),
        (
            "cancelled",
            "Cancelled",
            counts.cancelled,
            status_url(JobStatus::Cancelled),
            "Cancelled before finishing",
        ),
        (
            "expired",
            "Expired",
            counts.expired,
            status_url(JobStatus::Expired),
            "Not run before their deadline",
        ),
    ];
    html! {
        section.cards aria-label="Jobs by status" {
            @for (key, label, count, href, hint) in &cards {
                a class={"card c-" (key)} href=(href) title=(hint) data-count=(key) {
                    span.count { (number(*count)) }
                    span.label { (label) }
                }
            }
        }
    }
}

fn charts(throughput: &Result<Vec<Throughput>, String>) -> Markup {
    html! {
        section.panel.charts aria-label="Throughput" {
            h2 { "Throughput" }
            @match throughput {
                Ok(series) => {
                    @let hour = &series[series.len().saturating_sub(60)..];
                    div.chart-grid {
                        (chart::chart("Last hour, per minute", &buckets(hour, 1), 15))
                        (chart::chart("Last 24 hours, per 30 minutes", &buckets(series, 30), 360))
                    }
                }
                Err(why) => p.unavailable { "Throughput is not available: " (why) }
            }
        }
    }
}

fn queues(ctx: &Ctx, queues: &[QueueInfo]) -> Markup {
    html! {
        section.panel #queues aria-label="Queues" {
            h2 { "Queues" }
            @if queues.is_empty() {
                p.empty { "No queue has had a job yet." }
            } @else {
                table.table {
                    thead { tr {
                        th { "Queue" } th.num { "Ready" } th { "State" }
                        @if !ctx.read_only { th.actions { span.sr { "Actions" } } }
                    } }
                    tbody {
                        @for q in queues {
                            tr data-queue=(q.name) {
                                td { a href=(queue_url(ctx, &q.name)) { code { (q.name) } } }
                                td.num { (number(q.ready)) }
                                td {
                                    @if q.paused { span.badge.paused { "paused" } }
                                    @else { span.badge.active { "active" } }
                                }
                                @if !ctx.read_only {
                                    td.actions {
                                        @if q.paused {
                                            (ctx.action(&format!("/queues/{}/resume", encode(&q.name)), "Resume", "primary", &[]))
                                        } @else {
                                            (ctx.action(&format!("/queues/{}/pause", encode(&q.name)), "Pause", "", &[]))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn workers(ctx: &Ctx, workers: &Result<Vec<WorkerInfo>, String>) -> Markup {
    html! {
        section.panel #workers aria-label="Workers" {
            h2 {
                "Workers"
                @if let Ok(w) = workers { span.count-pill { (w.len()) } }
            }
            @match workers {
                Err(why) => p.unavailable { "Workers are not available: " (why) }
                Ok(workers) if workers.is_empty() => p.empty { "No worker is reporting." }
                Ok(workers) => {
                    table.table {
                        thead { tr {
                            th { "Worker" } th { "Host" } th.num { "PID" } th { "Started" }
                            th.num { "Busy" } th { "Queues" } th { "Last heartbeat" }
                        } }
                        tbody {
                            @for w in workers {
                                tr {
                                    td { code { (w.id) } }
                                    td { (w.host) }
                                    td.num { (w.pid) }
                                    td { (when(ctx, w.started_at)) }
                                    td.num {
                                        (w.running) " / " (w.concurrency)
                                        @if w.concurrency > 0 {
                                            @let full = (w.running * 4).div_ceil(w.concurrency).min(4);
                                            span class={"meter m" (full)} aria-hidden="true" {}
                                        }
                                    }
                                    td.tags {
                                        @for q in &w.queues { span.tag { (q) } }
                                    }
                                    td { (when(ctx, w.last_seen)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
