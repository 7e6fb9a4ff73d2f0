//! The routes and their handlers.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jobs::queue::MAX_PAGE;
use jobs::workflow::WorkflowId;
use jobs::{CancelOutcome, DeleteOutcome, Job, JobFilter, JobId, JobStatus, QueueAdmin};

use crate::assets;
use crate::base::Base;
use crate::dashboard::Dashboard;
use crate::guard::{self, CSRF_FIELD};
use crate::view::jobs_list::{Filters, PAGE_SIZE};
use crate::view::overview::{self, Overview};
use crate::view::workflow::StepPanel;
use crate::view::{self, Ctx, Flash, error_response, page_response};

/// The most failed jobs one "Retry all failed" puts back; the flash says
/// when more remain.
const RETRY_ALL_MAX: usize = 10_000;

/// Why a request got an error page instead: rendered with the request's
/// [`Ctx`] by [`Failure::render`].
struct Failure {
    status: StatusCode,
    heading: &'static str,
    message: String,
}

impl Failure {
    fn bad_request(heading: &'static str, message: impl Into<String>) -> Self {
        Failure {
            status: StatusCode::BAD_REQUEST,
            heading,
            message: message.into(),
        }
    }

    fn not_found(heading: &'static str, message: impl Into<String>) -> Self {
        Failure {
            status: StatusCode::NOT_FOUND,
            heading,
            message: message.into(),
        }
    }

    fn no_page() -> Self {
        Failure::not_found("Page not found", "There is no such page in this dashboard.")
    }

    fn no_job(id: JobId) -> Self {
        Failure::not_found(
            "No such job",
            format!("There is no job {id}: it may have been deleted or dropped from retention."),
        )
    }

    fn no_workflow(id: WorkflowId) -> Self {
        Failure::not_found(
            "No such workflow",
            format!(
                "There is no workflow or batch {id}: it may have been purged, or all its jobs \
                 dropped from retention."
            ),
        )
    }

    /// A backend call that failed: a 503 saying which and why.
    fn backend(what: impl std::fmt::Display, error: &jobs::Error) -> Self {
        Failure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            heading: "Queue backend unavailable",
            message: format!("Could not {what}: {error}"),
        }
    }

    fn render(self, ctx: &Ctx) -> Response {
        error_response(ctx, self.status, self.heading, &self.message)
    }
}

/// The response of a handler's body, its failure rendered as a page.
fn respond(ctx: &Ctx, result: Result<Response, Failure>) -> Response {
    result.unwrap_or_else(|failure| failure.render(ctx))
}

pub(crate) fn router(dashboard: Dashboard) -> Router {
    Router::new()
        .route("/", get(overview_page))
        .route("/live", get(overview_live))
        .route("/jobs", get(jobs_page))
        .route("/jobs/retry-failed", post(retry_failed))
        .route("/jobs/purge", post(purge))
        .route("/jobs/{id}", get(job_page))
        .route("/jobs/{id}/{action}", post(job_action))
        .route("/queues/{name}/{action}", post(queue_action))
        .route("/workflows/{id}", get(workflow_page))
        .route("/workflows/{id}/cancel", post(cancel_workflow))
        .route("/search", get(search))
        .route(assets::CSS.path, get(|| async { assets::CSS.response() }))
        .route(assets::JS.path, get(|| async { assets::JS.response() }))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            dashboard.clone(),
            guard::guard,
        ))
        .with_state(dashboard)
}

/// The query string as a map; a repeated key keeps its last value.
fn params(query: Option<String>) -> HashMap<String, String> {
    query
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(&q).ok())
        .map(|pairs| pairs.into_iter().collect())
        .unwrap_or_default()
}

fn flash(params: &HashMap<String, String>) -> Option<Flash> {
    Flash::parse(
        params.get("flash").map(String::as_str),
        params.get("n").map(String::as_str),
    )
}

/// A 303 to the dashboard page `path` (which may hold a query), with
/// `flash`.
fn see_other(base: &Base, path: &str, flash: Option<Flash>) -> Response {
    let mut location = if path == "/" {
        base.home()
    } else {
        base.url(path)
    };
    if let Some(flash) = flash {
        location.push(if location.contains('?') { '&' } else { '?' });
        location.push_str(&flash.query());
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn overview_data(dashboard: &Dashboard) -> Result<Overview, Failure> {
    let queue = &dashboard.queue;
    let (counts, queues, workers, throughput) = tokio::join!(
        queue.counts(),
        queue.queues(),
        queue.workers(),
        queue.throughput(overview::MINUTES)
    );
    Ok(Overview {
        counts: counts.map_err(|e| Failure::backend("count the jobs", &e))?,
        queues: queues.map_err(|e| Failure::backend("list the queues", &e))?,
        workers: workers.map_err(|e| e.to_string()),
        throughput: throughput.map_err(|e| e.to_string()),
    })
}

async fn overview_page(
    State(dashboard): State<Dashboard>,
    base: Base,
    RawQuery(query): RawQuery,
) -> Response {
    let ctx = Ctx::new(&dashboard, base);
    let data = overview_data(&dashboard).await;
    respond(
        &ctx,
        data.map(|data| {
            page_response(
                StatusCode::OK,
                overview::page(&ctx, &data, flash(&params(query))),
            )
        }),
    )
}

async fn overview_live(State(dashboard): State<Dashboard>, base: Base) -> Response {
    let ctx = Ctx::new(&dashboard, base);
    let data = overview_data(&dashboard).await;
    respond(
        &ctx,
        data.map(|data| page_response(StatusCode::OK, overview::live(&ctx, &data))),
    )
}

/// The list's filters from the query string.
fn filters(params: &HashMap<String, String>) -> Result<Filters, Failure> {
    let text = |key: &str| {
        params
            .get(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let status = match text("status") {
        None => None,
        Some(s) => Some(
            s.parse::<JobStatus>()
                .map_err(|e| Failure::bad_request("Bad request", e.to_string()))?,
        ),
    };
    let page = match text("page") {
        None => 1,
        Some(p) => match p.parse::<usize>() {
            Ok(n) if (1..=usize::MAX / PAGE_SIZE).contains(&n) => n,
            _ => {
                return Err(Failure::bad_request(
                    "Bad request",
                    format!("invalid page `{p}`: pages count from 1"),
                ));
            }
        },
    };
    Ok(Filters {
        status,
        name: text("name"),
        queue: text("queue"),
        page,
    })
}

impl Filters {
    fn job_filter(&self, offset: usize, limit: usize) -> JobFilter {
        let mut filter = JobFilter::new().page(offset, limit);
        if let Some(s) = self.status {
            filter = filter.status(s);
        }
        if let Some(n) = &self.name {
            filter = filter.name(n.clone());
        }
        if let Some(q) = &self.queue {
            filter = filter.queue(q.clone());
        }
        filter
    }
}

async fn jobs_page(
    State(dashboard): State<Dashboard>,
    base: Base,
    RawQuery(query): RawQuery,
) -> Response {
    let ctx = Ctx::new(&dashboard, base);
    let params = params(query);
    let result = async {
        let filters = filters(&params)?;
        let filter = filters.job_filter((filters.page - 1) * PAGE_SIZE, PAGE_SIZE);
        let (found, counts) =
            tokio::join!(dashboard.queue.find_jobs(&filter), dashboard.queue.counts());
        let found = found.map_err(|e| Failure::backend("list the jobs", &e))?;
        let counts = counts.map_err(|e| Failure::backend("count the jobs", &e))?;
        Ok(page_response(
            StatusCode::OK,
            view::jobs_list::page(&ctx, &filters, &found, &counts, flash(&params)),
        ))
    };
    respond(&ctx, result.await)
}

/// A job id from the path or a form.
fn job_id(raw: &str) -> Result<JobId, Failure> {
    raw.parse::<JobId>().map_err(|_| {
        Failure::bad_request(
            "Not a job id",
            format!("`{raw}` is not a job id: ids look like 0b5d6f4e-9c1a-4e4b-8f43-2a9e1c7d3b10."),
        )
    })
}

async fn job_page(
    State(dashboard): State<Dashboard>,
    base: Base,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let ctx = Ctx::new(&dashboard, base);
    let result = async {
        let id = job_id(&raw)?;
        let job = match dashboard.queue.get(id).await {
            Ok(Some(job)) => job,
            Ok(None) => return Err(Failure::no_job(id)),
            Err(e) => return Err(Failure::backend("read the job", &e)),
        };
        let step = step_panel(&dashboard, &job).await?;
        Ok(page_response(
            StatusCode::OK,
            view::job::page(&ctx, &job, step.as_ref(), flash(&params(query))),
        ))
    };
    respond(&ctx, result.await)
}

/// For a job that is a step of a workflow or batch: its workflow, and
/// each dependency's status now (from the workflow's steps, or the job
/// itself for one the workflow no longer lists).
async fn step_panel(dashboard: &Dashboard, job: &Job) -> Result<Option<StepPanel>, Failure> {
    let Some(step) = &job.step else {
        return Ok(None);
    };
    let queue = &dashboard.queue;
    let workflow = queue
        .workflow(step.workflow)
        .await
        .map_err(|e| Failure::backend("read the job's workflow", &e))?;
    let listed = |id: JobId| {
        workflow
            .as_ref()
            .and_then(|w| w.steps.iter().find(|s| s.job_id == id))
    };
    let mut dependencies = Vec::with_capacity(step.depends_on.len());
    for d in &step.depends_on {
        let status = match listed(d.job) {
            Some(s) => Some(s.status),
            None => queue
                .get(d.job)
                .await
                .map_err(|e| Failure::backend("read the job's dependencies", &e))?
                .map(|j| j.status),
        };
        dependencies.push((d.step.clone(), d.job, status));
    }
    Ok(Some(StepPanel {
        workflow: step.workflow,
        name: step.workflow_name.clone(),
        kind: step.kind,
        step: step.name.clone(),
        run_always: step.run_always,
        waiting_on: listed(job.id).map(|s| s.waiting_on),
        dependencies,
    }))
}

/// A workflow id from the path.
fn workflow_id(raw: &str) -> Result<WorkflowId, Failure> {
    raw.parse::<WorkflowId>().map_err(|_| {
        Failure::bad_request(
            "Not a workflow id",
            format!(
                "`{raw}` is not a workflow id: ids look like 0b5d6f4e-9c1a-4e4b-8f43-2a9e1c7d3b10."
            ),
        )
    })
}

async fn workflow_page(
    State(dashboard): State<Dashboard>,
    base: Base,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let ctx = Ctx::new(&dashboard, base);
    let result = async {
        let id = workflow_id(&raw)?;
        match dashboard.queue.workflow(id).await {
            Ok(Some(status)) => Ok(page_response(
                StatusCode::OK,
                view::workflow::page(&ctx, &status, flash(&params(query))),
            )),
            Ok(None) => Err(Failure::no_workflow(id)),
            Err(e) => Err(Failure::backend("read the workflow", &e)),
        }
    };
    respond(&ctx, result.await)
}

/// Cancels every job of a workflow or batch that has not finished.
async fn cancel_workflow(
    State(dashboard): State<Dashboard>,
    base: Base,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if checked_form(&dashboard, &headers, &body).is_none() {
        return guard::forbidden_csrf(&dashboard, &base);
    }
    let ctx = Ctx::new(&dashboard, base);
    let result = async {
        let id = workflow_id(&raw)?;
        let queue = &dashboard.queue;
        let failed = |e: jobs::Error| Failure::backend(format_args!("cancel workflow {id}"), &e);
        let status = queue
            .workflow(id)
            .await
            .map_err(failed)?
            .ok_or_else(|| Failure::no_workflow(id))?;
        let flash = if status.is_finished() {
            Flash::WorkflowFinished
        } else {
            match queue.cancel_workflow(id).await {
                Ok(n) => Flash::WorkflowCancelled(n),
                // Gone since it was read.
                Err(_) if matches!(queue.workflow(id).await, Ok(None)) => {
                    return Err(Failure::no_workflow(id));
                }
                Err(e) => return Err(failed(e)),
            }
        };
        Ok(see_other(
            &ctx.base,
            &format!("/workflows/{id}"),
            Some(flash),
        ))
    };
    respond(&ctx, result.await)
}

async fn search(
    State(dashboard): State<Dashboard>,
    base: Base,
    RawQuery(query): RawQuery,
) -> Response {
    let ctx = Ctx::new(&dashboard, base);
    let params = params(query);
    let raw = params.get("id").map(|s| s.trim()).unwrap_or("");
    if raw.is_empty() {
        return see_other(&ctx.base, "/jobs", None);
    }
    let id = match job_id(raw) {
        Ok(id) => id,
        Err(failure) => return failure.render(&ctx),
    };
    // A workflow's id goes to its page; any other to the job's (which
    // says when there is no such job).
    let queue = &dashboard.queue;
    let workflow = WorkflowId::from(*id.as_uuid());
    let page = match queue.get(id).await {
        Ok(None) if matches!(queue.workflow(workflow).await, Ok(Some(_))) => {
            format!("/workflows/{workflow}")
        }
        _ => format!("/jobs/{id}"),
    };
    see_other(&ctx.base, &page, None)
}

/// An action's form fields, or `None` when the body is no form.
fn form(body: &Bytes) -> Option<HashMap<String, String>> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()
        .map(|pairs| pairs.into_iter().collect())
}

/// The form, if its CSRF token checks out.
fn checked_form(
    dashboard: &Dashboard,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<HashMap<String, String>> {
    let fields = form(body).unwrap_or_default();
    let token = fields.get(CSRF_FIELD).map(String::as_str);
    guard::csrf_ok(dashboard, headers, token).then_some(fields)
}

async fn job_action(
    State(dashboard): State<Dashboard>,
    base: Base,
    Path((raw, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if checked_form(&dashboard, &headers, &body).is_none() {
        return guard::forbidden_csrf(&dashboard, &base);
    }
    let ctx = Ctx::new(&dashboard, base);
    let result = async {
        let id = job_id(&raw)?;
        let queue = &dashboard.queue;
        let page = format!("/jobs/{id}");
        let failed = |e: jobs::Error| Failure::backend(format_args!("{action} job {id}"), &e);
        let flash = match action.as_str() {
            "retry" => {
                if queue.retry(id).await.map_err(failed)? {
                    Flash::Retried
                } else {
                    // Refused: not in a state to retry, or gone.
                    match queue.get(id).await.map_err(failed)? {
                        Some(_) => Flash::NotRetryable,
                        None => return Err(Failure::no_job(id)),
                    }
                }
            }
            "cancel" => match queue.cancel(id).await.map_err(failed)? {
                CancelOutcome::Cancelled | CancelOutcome::CancelledRunning => Flash::Cancelled,
                CancelOutcome::NotFound => return Err(Failure::no_job(id)),
                _ => Flash::AlreadyFinished,
            },
            "delete" => match queue.delete(id).await.map_err(failed)? {
                DeleteOutcome::Deleted => {
                    return Ok(see_other(&ctx.base, "/jobs", Some(Flash::Deleted)));
                }
                DeleteOutcome::Running => Flash::DeleteRunning,
                _ => return Err(Failure::no_job(id)),
            },
            _ => return Err(Failure::no_page()),
        };
        Ok(see_other(&ctx.base, &page, Some(flash)))
    };
    respond(&ctx, result.await)
}

async fn retry_failed(
    State(dashboard): State<Dashboard>,
    base: Base,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(fields) = checked_form(&dashboard, &headers, &body) else {
        return guard::forbidden_csrf(&dashboard, &base);
    };
    let ctx = Ctx::new(&dashboard, base);
    let text = |key: &str| {
        fields
            .get(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let filters = Filters {
        status: Some(JobStatus::Failed),
        name: text("name"),
        queue: text("queue"),
        page: 1,
    };
    let result = async {
        // Ids first, then retries: retrying moves jobs out of the list
        // being paged through.
        let mut ids = Vec::new();
        let mut more = false;
        loop {
            let filter = filters.job_filter(ids.len(), MAX_PAGE.min(RETRY_ALL_MAX - ids.len()));
            let page = dashboard
                .queue
                .find_jobs(&filter)
                .await
                .map_err(|e| Failure::backend("list the failed jobs", &e))?;
            let got = page.jobs.len();
            ids.extend(page.jobs.into_iter().map(|j| j.id));
            if !page.more || got == 0 {
                break;
            }
            if ids.len() >= RETRY_ALL_MAX {
                more = true;
                break;
            }
        }
        let mut retried = 0u64;
        for id in ids {
            let done = dashboard
                .queue
                .retry(id)
                .await
                .map_err(|e| Failure::backend(format_args!("retry job {id}"), &e))?;
            retried += u64::from(done);
        }
        let flash = if more {
            Flash::RetriedSome(retried)
        } else {
            Flash::RetriedAll(retried)
        };
        Ok(see_other(
            &ctx.base,
            &format!("/jobs?{}", filters.query(1)),
            Some(flash),
        ))
    };
    respond(&ctx, result.await)
}

/// Deletes every job of one final status.
async fn purge(
    State(dashboard): State<Dashboard>,
    base: Base,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(fields) = checked_form(&dashboard, &headers, &body) else {
        return guard::forbidden_csrf(&dashboard, &base);
    };
    let ctx = Ctx::new(&dashboard, base);
    let result = async {
        let raw = fields.get("status").map(String::as_str).unwrap_or("");
        let status = raw
            .parse::<JobStatus>()
            .ok()
            .filter(|s| s.is_final())
            .ok_or_else(|| {
                Failure::bad_request(
                    "Bad request",
                    format!(
                        "`{raw}` is not a final status: only completed, failed, cancelled or \
                         expired jobs are deleted in bulk"
                    ),
                )
            })?;
        let n = dashboard
            .queue
            .purge_status(status)
            .await
            .map_err(|e| Failure::backend(format_args!("delete the {status} jobs"), &e))?;
        Ok(see_other(
            &ctx.base,
            &format!("/jobs?status={status}"),
            Some(Flash::Purged(n)),
        ))
    };
    respond(&ctx, result.await)
}

async fn queue_action(
    State(dashboard): State<Dashboard>,
    base: Base,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if checked_form(&dashboard, &headers, &body).is_none() {
        return guard::forbidden_csrf(&dashboard, &base);
    }
    let ctx = Ctx::new(&dashboard, base);
    let result = async {
        jobs::check_queue_name(&name)
            .map_err(|e| Failure::bad_request("Not a queue name", e.to_string()))?;
        let queue = &dashboard.queue;
        let failed = |e: jobs::Error| Failure::backend(format_args!("{action} queue {name}"), &e);
        let flash = match action.as_str() {
            "pause" => match queue.pause_queue(&name).await.map_err(failed)? {
                true => Flash::Paused,
                false => Flash::AlreadyPaused,
            },
            "resume" => match queue.resume_queue(&name).await.map_err(failed)? {
                true => Flash::Resumed,
                false => Flash::NotPaused,
            },
            _ => return Err(Failure::no_page()),
        };
        Ok(see_other(&ctx.base, "/", Some(flash)))
    };
    respond(&ctx, result.await)
}

async fn not_found(State(dashboard): State<Dashboard>, base: Base) -> Response {
    Failure::no_page().render(&Ctx::new(&dashboard, base))
}
