//! A workflow or batch: its counts, its steps, and cancelling it; and the
//! section a step's job page shows.

use jobs::workflow::{WorkflowId, WorkflowKind, WorkflowStatus};
use jobs::{JobId, JobStatus};
use maud::{Markup, html};

use super::jobs_list::{capitalise, short_id};
use super::{Ctx, Flash, Nav, badge, layout, number};

/// How many dependencies a job page lists; the workflow page has them all.
const DEPENDENCIES_SHOWN: usize = 50;

/// How many step names the steps table lists in "Depends on".
const DEPENDS_ON_SHOWN: usize = 5;

/// What a step's job page shows of its workflow.
pub(crate) struct StepPanel {
    pub(crate) workflow: WorkflowId,
    pub(crate) name: String,
    pub(crate) kind: WorkflowKind,
    pub(crate) step: String,
    pub(crate) run_always: bool,
    /// How many dependencies it still waits for; `None` when the
    /// workflow's record is gone.
    pub(crate) waiting_on: Option<u64>,
    /// Each dependency (step name, job) and its status now (`None`: no
    /// longer kept).
    pub(crate) dependencies: Vec<(String, JobId, Option<JobStatus>)>,
}

/// The URL of a workflow's page.
pub(crate) fn url(ctx: &Ctx, id: WorkflowId) -> String {
    ctx.base.url(&format!("/workflows/{id}"))
}

fn job_url(ctx: &Ctx, id: JobId) -> String {
    ctx.base.url(&format!("/jobs/{id}"))
}

/// The job page's workflow section.
pub(crate) fn section(ctx: &Ctx, panel: &StepPanel) -> Markup {
    let kind = capitalise(panel.kind.as_str());
    let deps = panel.dependencies.len();
    html! {
        section.panel #workflow {
            h2 { (kind) }
            dl.fields {
                dt { (kind) }
                dd { a href=(url(ctx, panel.workflow)) data-field="workflow" { (panel.name) } " " code.hint { (panel.workflow) } }
                dt { "Step" } dd data-field="step" { code { (panel.step) } }
                @if deps > 0 {
                    dt { "Runs" }
                    dd { @if panel.run_always { "once its dependencies finished, whatever their outcome" } @else { "once every dependency completed" } }
                }
                @if let Some(n) = panel.waiting_on.filter(|n| *n > 0) {
                    dt { "Waiting on" } dd data-field="waiting-on" { (number(n)) " of " (number(deps as u64)) (if deps == 1 { " dependency" } else { " dependencies" }) }
                }
            }
            @if deps > 0 {
                table.table.deps {
                    thead { tr { th { "Depends on" } th { "Job" } th { "Status" } } }
                    tbody {
                        @for (step, job, status) in panel.dependencies.iter().take(DEPENDENCIES_SHOWN) {
                            tr {
                                td { code { (step) } }
                                td { a.id href=(job_url(ctx, *job)) title=(job) { code { (short_id(&job.to_string())) } } }
                                td { @match status { Some(s) => (badge(*s)), None => span.hint { "no longer kept" } } }
                            }
                        }
                    }
                }
                @if deps > DEPENDENCIES_SHOWN {
                    p.hint { "and " (number((deps - DEPENDENCIES_SHOWN) as u64)) " more: " a href=(url(ctx, panel.workflow)) { "see every step" } }
                }
            }
        }
    }
}

/// The workflow page.
pub(crate) fn page(ctx: &Ctx, status: &WorkflowStatus, flash: Option<Flash>) -> Markup {
    let kind = capitalise(status.kind.as_str());
    let title = format!("{kind} {}", status.name);
    let cards = [
        ("total", "Total", status.total),
        ("pending", "Pending", status.pending),
        ("completed", "Completed", status.completed),
        ("failed", "Failed", status.failed),
        ("cancelled", "Cancelled", status.cancelled),
    ];
    let gone = status.total.saturating_sub(status.steps.len() as u64);
    layout(
        ctx,
        &title,
        Nav::Jobs,
        flash,
        html! {
            div.page-head.job-head {
                div {
                    p.crumbs { a href=(ctx.base.url("/jobs")) { "Jobs" } " / " (status.kind.as_str()) }
                    h1 { span.name { (status.name) } " " span.count-pill { (status.kind.as_str()) } }
                    p.id { code { (status.id) } }
                }
                div.job-actions {
                    @if !status.is_finished() {
                        (ctx.action_confirm(
                            &format!("/workflows/{}/cancel", status.id),
                            &format!("Cancel {}", status.kind.as_str()),
                            "danger",
                            &[],
                            Some(&format!(
                                "Cancel the {} unfinished jobs of this {}?",
                                number(status.pending),
                                status.kind.as_str()
                            )),
                        ))
                    }
                }
            }
            section.cards.few aria-label="Jobs by status" {
                @for (key, label, count) in &cards {
                    div class={"card c-" (key)} data-count=(key) {
                        span.count { (number(*count)) }
                        span.label { (label) }
                    }
                }
            }
            section.panel.flush {
                @if status.steps.is_empty() {
                    p.empty { "No step of it is kept any more." }
                } @else {
                    table.table.steps {
                        thead { tr {
                            th { "Step" } th { "Job" } th { "Name" } th { "Status" } th { "Depends on" }
                        } }
                        tbody {
                            @for s in &status.steps {
                                tr data-step=(s.name) {
                                    td { code { (s.name) } }
                                    td { a.id href=(job_url(ctx, s.job_id)) title=(s.job_id) { code { (short_id(&s.job_id.to_string())) } } }
                                    td.name { (s.job_name) }
                                    td {
                                        (badge(s.status))
                                        @if s.waiting_on > 0 { " " span.hint { "waits for " (number(s.waiting_on)) } }
                                    }
                                    td {
                                        @for (i, d) in s.depends_on.iter().take(DEPENDS_ON_SHOWN).enumerate() {
                                            @if i > 0 { ", " }
                                            a href=(job_url(ctx, d.job)) { code { (d.step) } }
                                        }
                                        @if s.depends_on.len() > DEPENDS_ON_SHOWN {
                                            " " span.hint { "and " (number((s.depends_on.len() - DEPENDS_ON_SHOWN) as u64)) " more" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if gone > 0 {
                p.hint { (number(gone)) (if gone == 1 { " job is" } else { " jobs are" }) " no longer kept (finished, past the queue's retention)." }
            }
        },
    )
}
