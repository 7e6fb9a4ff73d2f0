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
use jobs::{CancelOutcome, DeleteOutcome, JobFilter, JobId, JobStatus, QueueAdmin};

use crate::assets;
use crate::base::Base;
use crate::dashboard::Dashboard;
use crate::guard::{self, CSRF_FIELD};
use crate::view::jobs_list::{Filters, PAGE_SIZE};
use crate::view::overview::{self, Overview};
use crate::view::{self, Ctx, Flash, backend_error, error_response, page_response};

/// The most failed jobs one "Retry all failed" puts back; the flash says
/// when more remain.
const RETRY_ALL_MAX: usize = 10_000;

pub(crate) fn router(dashboard: Dashboard) -> Router {
    Router::new()
        .route("/", get(overview_page))
        .route("/live", get(overview_live))
        .route("/jobs", get(jobs_page))
        .route("/jobs/retry-failed", post(retry_failed))
        .route("/jobs/{id}", get(job_page))
        .route("/jobs/{id}/{action}", post(job_action))
        .route("/queues/{name}/{action}", post(queue_action))
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

async fn overview_data(dashboard: &Dashboard, ctx: &Ctx) -> Result<Overview, Response> {
    let queue = &dashboard.queue;
    let (counts, queues, workers, throughput) = tokio::join!(
        queue.counts(),
        queue.queues(),
        queue.workers(),
        queue.throughput(overview::MINUTES)
    );
    let counts = counts.map_err(|e| backend_error(ctx, "count the jobs", &e))?;
    let queues = queues.map_err(|e| backend_error(ctx, "list the queues", &e))?;
    Ok(Overview {
        counts,
        queues,
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
    match overview_data(&dashboard, &ctx).await {
        Ok(data) => page_response(
            StatusCode::OK,
            overview::page(&ctx, &data, flash(&params(query))),
        ),
        Err(response) => response,
    }
}

async fn overview_live(State(dashboard): State<Dashboard>, base: Base) -> Response {
    let ctx = Ctx::new(&dashboard, base);
    match overview_data(&dashboard, &ctx).await {
        Ok(data) => page_response(StatusCode::OK, overview::live(&ctx, &data)),
        Err(response) => response,
    }
}

/// The list's filters from the query string; a bad one is a 400 page.
fn filters(ctx: &Ctx, params: &HashMap<String, String>) -> Result<Filters, Response> {
    let bad =
        |message: String| error_response(ctx, StatusCode::BAD_REQUEST, "Bad request", &message);
    let text = |key: &str| {
        params
            .get(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let status = match text("status") {
        None => None,
        Some(s) => Some(s.parse::<JobStatus>().map_err(|e| bad(e.to_string()))?),
    };
    let page = match text("page") {
        None => 1,
        Some(p) => match p.parse::<usize>() {
            Ok(p) if p >= 1 && p <= usize::MAX / PAGE_SIZE => p,
            _ => return Err(bad(format!("invalid page `{p}`: pages count from 1"))),
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
    let filters = match filters(&ctx, &params) {
        Ok(f) => f,
        Err(response) => return response,
    };
    let filter = filters.job_filter((filters.page - 1) * PAGE_SIZE, PAGE_SIZE);
    let (found, counts) =
        tokio::join!(dashboard.queue.find_jobs(&filter), dashboard.queue.counts());
    let found = match found {
        Ok(found) => found,
        Err(e) => return backend_error(&ctx, "list the jobs", &e),
    };
    let counts = match counts {
        Ok(counts) => counts,
        Err(e) => return backend_error(&ctx, "count the jobs", &e),
    };
    page_response(
        StatusCode::OK,
        view::jobs_list::page(&ctx, &filters, &found, &counts, flash(&params)),
    )
}

/// A job id from the path; a malformed one is a 400 page.
fn job_id(ctx: &Ctx, raw: &str) -> Result<JobId, Response> {
    raw.parse::<JobId>().map_err(|_| {
        error_response(
            ctx,
            StatusCode::BAD_REQUEST,
            "Not a job id",
            &format!(
                "`{raw}` is not a job id: ids look like 0b5d6f4e-9c1a-4e4b-8f43-2a9e1c7d3b10."
            ),
        )
    })
}

fn no_such_job(ctx: &Ctx, id: JobId) -> Response {
    error_response(
        ctx,
        StatusCode::NOT_FOUND,
        "No such job",
        &format!("There is no job {id}: it may have been deleted or dropped from retention."),
    )
}

async fn job_page(
    State(dashboard): State<Dashboard>,
    base: Base,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let ctx = Ctx::new(&dashboard, base);
    let id = match job_id(&ctx, &raw) {
        Ok(id) => id,
        Err(response) => return response,
    };
    match dashboard.queue.get(id).await {
        Ok(Some(job)) => page_response(
            StatusCode::OK,
            view::job::page(&ctx, &job, flash(&params(query))),
        ),
        Ok(None) => no_such_job(&ctx, id),
        Err(e) => backend_error(&ctx, "read the job", &e),
    }
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
    match job_id(&ctx, raw) {
        Ok(id) => see_other(&ctx.base, &format!("/jobs/{id}"), None),
        Err(response) => response,
    }
}

/// An action's form fields, or `None` when the body is no form.
fn form(body: &Bytes) -> Option<HashMap<String, String>> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()
        .map(|pairs| pairs.into_iter().collect())
}

/// The form if its CSRF token checks out, else the 403 page.
fn checked_form(
    dashboard: &Dashboard,
    base: &Base,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<HashMap<String, String>, Response> {
    let fields = form(body).unwrap_or_default();
    let token = fields.get(CSRF_FIELD).map(String::as_str);
    if guard::csrf_ok(dashboard, headers, token) {
        Ok(fields)
    } else {
        Err(guard::forbidden_csrf(dashboard, base))
    }
}

async fn job_action(
    State(dashboard): State<Dashboard>,
    base: Base,
    Path((raw, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = checked_form(&dashboard, &base, &headers, &body) {
        return response;
    }
    let ctx = Ctx::new(&dashboard, base);
    let id = match job_id(&ctx, &raw) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let queue = &dashboard.queue;
    let page = format!("/jobs/{id}");
    let result = match action.as_str() {
        "retry" => queue.retry(id).await.map(|retried| {
            if retried {
                Some(Flash::Retried)
            } else {
                Some(Flash::NotRetryable)
            }
        }),
        "cancel" => queue.cancel(id).await.map(|outcome| match outcome {
            CancelOutcome::Cancelled | CancelOutcome::CancelledRunning => Some(Flash::Cancelled),
            CancelOutcome::NotFound => None,
            _ => Some(Flash::AlreadyFinished),
        }),
        "delete" => match queue.delete(id).await {
            Ok(DeleteOutcome::Deleted) => {
                return see_other(&ctx.base, "/jobs", Some(Flash::Deleted));
            }
            Ok(DeleteOutcome::Running) => Ok(Some(Flash::DeleteRunning)),
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        },
        _ => return not_found_page(&ctx),
    };
    match result {
        // A retry refused may also mean the job is gone.
        Ok(Some(Flash::NotRetryable)) => match queue.get(id).await {
            Ok(Some(_)) => see_other(&ctx.base, &page, Some(Flash::NotRetryable)),
            Ok(None) => no_such_job(&ctx, id),
            Err(e) => backend_error(&ctx, "read the job", &e),
        },
        Ok(Some(flash)) => see_other(&ctx.base, &page, Some(flash)),
        Ok(None) => no_such_job(&ctx, id),
        Err(e) => backend_error(&ctx, &format!("{action} the job"), &e),
    }
}

async fn retry_failed(
    State(dashboard): State<Dashboard>,
    base: Base,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match checked_form(&dashboard, &base, &headers, &body) {
        Ok(fields) => fields,
        Err(response) => return response,
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
    // Ids first, then retries: retrying moves jobs out of the list being
    // paged through.
    let mut ids = Vec::new();
    let mut more = false;
    loop {
        let filter = filters.job_filter(ids.len(), MAX_PAGE.min(RETRY_ALL_MAX - ids.len()));
        let page = match dashboard.queue.find_jobs(&filter).await {
            Ok(page) => page,
            Err(e) => return backend_error(&ctx, "list the failed jobs", &e),
        };
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
        match dashboard.queue.retry(id).await {
            Ok(true) => retried += 1,
            Ok(false) => {}
            Err(e) => return backend_error(&ctx, &format!("retry job {id}"), &e),
        }
    }
    let flash = if more {
        Flash::RetriedSome(retried)
    } else {
        Flash::RetriedAll(retried)
    };
    see_other(
        &ctx.base,
        &format!("/jobs?{}", filters.query(1)),
        Some(flash),
    )
}

async fn queue_action(
    State(dashboard): State<Dashboard>,
    base: Base,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = checked_form(&dashboard, &base, &headers, &body) {
        return response;
    }
    let ctx = Ctx::new(&dashboard, base);
    if let Err(e) = jobs::check_queue_name(&name) {
        return error_response(
            &ctx,
            StatusCode::BAD_REQUEST,
            "Not a queue name",
            &e.to_string(),
        );
    }
    let queue = &dashboard.queue;
    let flash = match action.as_str() {
        "pause" => queue.pause_queue(&name).await.map(|done| {
            if done {
                Flash::Paused
            } else {
                Flash::AlreadyPaused
            }
        }),
        "resume" => queue.resume_queue(&name).await.map(|done| {
            if done {
                Flash::Resumed
            } else {
                Flash::NotPaused
            }
        }),
        _ => return not_found_page(&ctx),
    };
    match flash {
        Ok(flash) => see_other(&ctx.base, "/", Some(flash)),
        Err(e) => backend_error(&ctx, &format!("{action} queue {name}"), &e),
    }
}

fn not_found_page(ctx: &Ctx) -> Response {
    error_response(
        ctx,
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no such page in this dashboard.",
    )
}

async fn not_found(State(dashboard): State<Dashboard>, base: Base) -> Response {
    not_found_page(&Ctx::new(&dashboard, base))
}
