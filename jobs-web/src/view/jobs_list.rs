//! The job list: filters, one page of jobs, Newer / Older.

use jobs::{JobPage, JobStatus, QueueCounts};
use maud::{Markup, html};

use super::{Ctx, Flash, Nav, badge, layout, number, truncate, when};

/// How many jobs a page shows.
pub(crate) const PAGE_SIZE: usize = 25;

/// The list's filters and page, as the query string gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Filters {
    pub(crate) status: Option<JobStatus>,
    pub(crate) name: Option<String>,
    pub(crate) queue: Option<String>,
    /// 1 for the newest page.
    pub(crate) page: usize,
}

impl Filters {
    /// The query string of these filters on page `page` (without `?`).
    pub(crate) fn query(&self, page: usize) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(s) = self.status {
            pairs.push(("status", s.as_str().to_owned()));
        }
        if let Some(n) = &self.name {
            pairs.push(("name", n.clone()));
        }
        if let Some(q) = &self.queue {
            pairs.push(("queue", q.clone()));
        }
        if page > 1 {
            pairs.push(("page", page.to_string()));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    /// The list's URL with these filters on page `page`.
    pub(crate) fn url(&self, ctx: &Ctx, page: usize) -> String {
        let query = self.query(page);
        if query.is_empty() {
            ctx.base.url("/jobs")
        } else {
            ctx.base.url(&format!("/jobs?{query}"))
        }
    }

    fn with_status(&self, status: Option<JobStatus>) -> Filters {
        Filters {
            status,
            page: 1,
            ..self.clone()
        }
    }
}

/// The statuses a tab is shown for, in the order of a job's life.
const TABS: [JobStatus; 7] = [
    JobStatus::Pending,
    JobStatus::Running,
    JobStatus::Retrying,
    JobStatus::Failed,
    JobStatus::Completed,
    JobStatus::Cancelled,
    JobStatus::Expired,
];

/// The page.
pub(crate) fn page(
    ctx: &Ctx,
    filters: &Filters,
    found: &JobPage,
    counts: &QueueCounts,
    flash: Option<Flash>,
) -> Markup {
    let heading = match filters.status {
        Some(s) => format!("{} jobs", capitalise(s.as_str())),
        None => "All jobs".to_owned(),
    };
    let nav = match filters.status {
        Some(JobStatus::Failed) => Nav::Failed,
        Some(JobStatus::Retrying) => Nav::Retrying,
        _ => Nav::Jobs,
    };
    let total: u64 = TABS.iter().map(|s| counts.get(*s)).sum();
    html! {
        (layout(ctx, &heading, nav, flash, html! {
            div.page-head {
                h1 { (heading) }
                div.job-actions {
                    (retry_all(ctx, filters, found))
                    (delete_all(ctx, filters, found, counts))
                }
            }
            nav.tabs aria-label="Status" {
                a href=(filters.with_status(None).url(ctx, 1)) class=[filters.status.is_none().then_some("active")] {
                    "All" span.n { (number(total)) }
                }
                @for s in TABS {
                    a href=(filters.with_status(Some(s)).url(ctx, 1))
                        class=[(filters.status == Some(s)).then_some("active")] {
                        (capitalise(s.as_str())) span.n { (number(counts.get(s))) }
                    }
                }
            }
            form.filters method="get" action=(ctx.base.url("/jobs")) {
                label {
                    span { "Status" }
                    select name="status" {
                        option value="" selected[filters.status.is_none()] { "any" }
                        @for s in TABS {
                            option value=(s.as_str()) selected[filters.status == Some(s)] { (s.as_str()) }
                        }
                    }
                }
                label {
                    span { "Name" }
                    input type="text" name="name" value=[filters.name.as_deref()] placeholder="exact job name";
                }
                label {
                    span { "Queue" }
                    input type="text" name="queue" value=[filters.queue.as_deref()] placeholder="any queue";
                }
                button.btn.primary type="submit" { "Filter" }
                @if filters.name.is_some() || filters.queue.is_some() {
                    a.btn.link href=(filters.with_status(filters.status).clear().url(ctx, 1)) { "Clear" }
                }
            }
            section.panel.flush {
                @if found.jobs.is_empty() {
                    p.empty { @if filters.page > 1 { "No jobs on this page." } @else { "No jobs match." } }
                } @else {
                    table.table.jobs {
                        thead { tr {
                            th { "Job" } th { "Name" } th { "Queue" } th { "Status" }
                            th.num { "Attempts" } th { "Created" } th { "Last error" }
                        } }
                        tbody {
                            @for job in &found.jobs {
                                tr {
                                    td { a.id href=(ctx.base.url(&format!("/jobs/{}", job.id))) title=(job.id) {
                                        code { (short_id(&job.id.to_string())) }
                                    } }
                                    td.name { (job.name) }
                                    td { code.q { (job.queue) } }
                                    td {
                                        (badge(job.status))
                                        @if let Some(at) = job.scheduled_at.filter(|at| *at > ctx.now && !job.status.is_final()) {
                                            " " span.hint { "due " (when(ctx, at)) }
                                        }
                                    }
                                    td.num { (job.attempts) " / " (job.max_retries.saturating_add(1)) }
                                    td { (when(ctx, job.created_at)) }
                                    // An error a later attempt got past is shown muted.
                                    td.error.past[job.status == JobStatus::Completed] {
                                        @if let Some(e) = &job.last_error { span title=(truncate(e, 500)) { (truncate(e, 80)) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if filters.page > 1 {
                    a.btn rel="prev" href=(filters.url(ctx, filters.page - 1)) { "← Newer" }
                } @else {
                    span.btn.disabled { "← Newer" }
                }
                span.where { "Page " (filters.page) }
                @if found.more {
                    a.btn rel="next" href=(filters.url(ctx, filters.page + 1)) { "Older →" }
                } @else {
                    span.btn.disabled { "Older →" }
                }
            }
        }))
    }
}

/// "Retry all failed" (of this name and queue, when filtered), on the
/// failed list.
fn retry_all(ctx: &Ctx, filters: &Filters, found: &JobPage) -> Markup {
    if filters.status != Some(JobStatus::Failed) || found.jobs.is_empty() {
        return html! {};
    }
    let label = match &filters.name {
        Some(name) => format!("Retry all failed {name}"),
        None => "Retry all failed".to_owned(),
    };
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if let Some(name) = &filters.name {
        extra.push(("name", name));
    }
    if let Some(queue) = &filters.queue {
        extra.push(("queue", queue));
    }
    ctx.action_confirm(
        "/jobs/retry-failed",
        &label,
        "primary",
        &extra,
        Some("Put every failed job of this list back in its queue?"),
    )
}

/// "Delete all" on the list of a final status, unfiltered: every job
/// with that status goes (`purge_status`).
fn delete_all(ctx: &Ctx, filters: &Filters, found: &JobPage, counts: &QueueCounts) -> Markup {
    let Some(status) = filters.status.filter(|s| s.is_final()) else {
        return html! {};
    };
    if found.jobs.is_empty() || filters.name.is_some() || filters.queue.is_some() {
        return html! {};
    }
    let n = counts.get(status);
    let question = format!(
        "Delete all {} {} jobs for good?",
        number(n),
        status.as_str()
    );
    ctx.action_confirm(
        "/jobs/purge",
        &format!("Delete all {}", status.as_str()),
        "danger",
        &[("status", status.as_str())],
        Some(&question),
    )
}

impl Filters {
    fn clear(mut self) -> Filters {
        self.name = None;
        self.queue = None;
        self
    }
}

/// The first block of a UUID: enough to tell jobs apart on a page.
pub(crate) fn short_id(id: &str) -> &str {
    id.split('-').next().unwrap_or(id)
}

pub(crate) fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
