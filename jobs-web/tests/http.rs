//! The dashboard over HTTP, without a server: each request goes through the
//! router with `oneshot`, over a `MemoryJobQueue` driven by hand (reserve,
//! finish) so every state is exact.

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{act, finish_ready, get, post, run, send};
use jobs::queue::Take;
use jobs::{
    AnyQueue, Enqueue, Job, JobId, JobPriority, JobQueue, JobResult, JobStatus, MemoryJobQueue,
    Outcome, QueueAdmin, Unique, WorkerInfo,
};
use jobs_web::Dashboard;
use serde_json::json;

const XSS: &str = "<script>alert(1)</script>";

fn failed(error: &str) -> Outcome {
    Outcome::Failed(JobResult::error(error).with_retryable(false))
}

fn retry_now(error: &str) -> Outcome {
    Outcome::Retry {
        result: JobResult::error(error),
        at: chrono::Utc::now() - chrono::TimeDelta::seconds(1),
    }
}

async fn status(queue: &MemoryJobQueue, id: JobId) -> Option<JobStatus> {
    queue.get(id).await.unwrap().map(|j| j.status)
}

#[tokio::test]
async fn overview_shows_counts_queues_workers_and_charts() {
    let queue = MemoryJobQueue::new();
    let failed_id = run(&queue, Job::new("flaky", json!({})), vec![failed("boom")]).await;
    run(
        &queue,
        Job::new("report", json!({})),
        vec![Outcome::Completed(JobResult::success(json!({"rows": 3})))],
    )
    .await;
    for i in 0..3 {
        queue
            .enqueue(Job::new("send_email", json!({ "n": i })))
            .await
            .unwrap();
    }
    queue
        .enqueue(Job::new("welcome", json!({})).queue("mailers"))
        .await
        .unwrap();
    queue
        .enqueue(Job::new("later", json!({})).delay(Duration::from_secs(3600)))
        .await
        .unwrap();
    let mut worker = WorkerInfo::new("worker-7");
    worker.concurrency = 16;
    worker.running = 4;
    worker.queues = vec!["default".into(), "mailers".into()];
    queue
        .report_worker(&worker, Duration::from_secs(60))
        .await
        .unwrap();

    let router = jobs_web::router(queue.clone());
    let page = get(&router, "/").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(
        page.header(header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert_eq!(page.card("pending"), "5");
    assert_eq!(page.card("scheduled"), "1");
    assert_eq!(page.card("completed"), "1");
    assert_eq!(page.card("failed"), "1");
    assert_eq!(page.card("running"), "0");
    assert!(page.body.contains("href=\"/jobs?status=failed\""));
    // Queues, with their ready counts and a Pause button each.
    assert!(page.body.contains("data-queue=\"default\""));
    assert!(page.body.contains("data-queue=\"mailers\""));
    assert!(page.body.contains("action=\"/queues/mailers/pause\""));
    // The worker.
    assert!(page.body.contains("worker-7"));
    assert!(page.body.contains("4 / 16"));
    assert!(page.body.contains(&std::process::id().to_string()));
    // Two charts with their axes and legend; two attempts ended this hour.
    assert_eq!(page.body.matches("<svg").count(), 2);
    assert!(page.body.contains("Last hour"));
    assert!(page.body.contains("Last 24 hours"));
    assert!(page.body.contains("Succeeded") && page.body.contains(">now<"));
    assert!(
        page.body
            .contains("Last hour, per minute: 2 processed, 1 failed"),
        "{}",
        page.body
    );
    // The search box, and the live fragment the script fetches.
    assert!(page.body.contains("action=\"/search\""));
    assert!(page.body.contains("data-live=\"/live\""));
    let live = get(&router, "/live").await;
    assert_eq!(live.status, StatusCode::OK);
    assert!(live.body.contains("worker-7") && !live.body.contains("<html"));

    let found = get(&router, &format!("/search?id={failed_id}")).await;
    assert_eq!(found.status, StatusCode::SEE_OTHER);
    assert_eq!(found.header(header::LOCATION), format!("/jobs/{failed_id}"));
    assert_eq!(
        get(&router, "/search?id=nope").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn job_list_filters_and_pages() {
    let queue = MemoryJobQueue::new();
    for i in 0..30 {
        queue
            .enqueue(Job::new("bulk", json!({ "i": i })))
            .await
            .unwrap();
    }
    queue
        .enqueue(Job::new("other", json!({})).queue("mailers"))
        .await
        .unwrap();
    run(
        &queue,
        Job::new("flaky", json!({})),
        vec![failed("database is down")],
    )
    .await;
    let router = jobs_web::router(queue.clone());

    let all = get(&router, "/jobs").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.rows(), 25);
    assert!(all.body.contains("href=\"/jobs?page=2\""), "{}", all.body);

    let first = get(&router, "/jobs?name=bulk").await;
    assert_eq!(first.rows(), 25);
    assert!(first.body.contains("href=\"/jobs?name=bulk&amp;page=2\""));
    let second = get(&router, "/jobs?name=bulk&page=2").await;
    assert_eq!(second.rows(), 5);
    assert!(
        second.body.contains("href=\"/jobs?name=bulk\""),
        "a Newer link"
    );
    assert!(
        !second.body.contains("rel=\"next\""),
        "no Older link on the last page"
    );

    let mailers = get(&router, "/jobs?queue=mailers").await;
    assert_eq!(mailers.rows(), 1);
    assert!(mailers.body.contains("other"));

    let failed = get(&router, "/jobs?status=failed").await;
    assert_eq!(failed.rows(), 1);
    assert!(failed.body.contains("database is down"));
    assert!(failed.body.contains("Retry all failed"));

    let bad = get(&router, "/jobs?status=sleeping").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("unknown job status"), "{}", bad.body);
    assert_eq!(
        get(&router, "/jobs?page=0").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&router, "/jobs?page=x").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn job_page_shows_every_field() {
    let queue = MemoryJobQueue::new();
    let job = Job::new("send_email", json!({"to": "a@example.com", "n": 2}))
        .priority(JobPriority::High)
        .max_retries(1)
        .tag("billing")
        .meta("tenant", "acme")
        .unique(Unique::new("email:a@example.com"))
        .queue("mailers");
    let id = run(
        &queue,
        job,
        vec![retry_now("smtp timeout"), failed("mailbox full")],
    )
    .await;
    let router = jobs_web::router(queue.clone());
    let page = get(&router, &format!("/jobs/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    for expected in [
        id.to_string().as_str(),
        "send_email",
        "&quot;to&quot;: &quot;a@example.com&quot;",
        "high",
        "mailers",
        "2 of at most 2",
        "smtp timeout",
        "mailbox full",
        "billing",
        "tenant",
        "&quot;acme&quot;",
        "email:a@example.com",
        "Created",
        "Started",
        "Failed",
    ] {
        assert!(body.contains(expected), "no {expected:?} in\n{body}");
    }
    // Both attempts' errors, the latest first.
    let smtp = body.find("smtp timeout").unwrap();
    let full = body.find("mailbox full").unwrap();
    assert!(full < smtp);
    // Retry and Delete for a failed job; no Cancel.
    assert!(body.contains(&format!("action=\"/jobs/{id}/retry\"")));
    assert!(body.contains(&format!("action=\"/jobs/{id}/delete\"")));
    assert!(!body.contains(&format!("action=\"/jobs/{id}/cancel\"")));

    let missing = get(&router, &format!("/jobs/{}", JobId::new())).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("No such job"));
    let malformed = get(&router, "/jobs/not-an-id").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(malformed.body.contains("is not a job id"));
    assert_eq!(get(&router, "/nowhere").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn job_data_is_escaped_everywhere() {
    let queue = MemoryJobQueue::new();
    let id = run(
        &queue,
        Job::new(XSS, json!({ "html": XSS }))
            .tag(XSS)
            .meta(XSS, XSS),
        vec![failed(XSS)],
    )
    .await;
    let router = jobs_web::router(queue.clone());
    for path in [
        format!("/jobs/{id}"),
        "/jobs".to_owned(),
        "/jobs?status=failed".to_owned(),
        format!("/jobs?name={}", "%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        "/".to_owned(),
    ] {
        let page = get(&router, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            !page.body.contains("<script>alert"),
            "raw payload on {path}:\n{}",
            page.body
        );
        assert!(
            !page.body.contains("<script>"),
            "an inline script on {path}"
        );
        if path != "/" {
            assert!(
                page.body.contains("&lt;script&gt;alert(1)"),
                "{path}: {}",
                page.body
            );
        }
    }
}

#[tokio::test]
async fn actions_need_the_form_token() {
    let queue = MemoryJobQueue::new();
    let id = run(&queue, Job::new("flaky", json!({})), vec![failed("boom")]).await;
    let router = jobs_web::router(queue.clone());
    let page = get(&router, &format!("/jobs/{id}")).await;
    let (token, cookie) = (page.token(), page.cookie());
    assert!(page.header(header::SET_COOKIE).contains("SameSite=Strict"));
    assert!(page.header(header::SET_COOKIE).contains("HttpOnly"));
    let retry = format!("/jobs/{id}/retry");

    for (cookie, form) in [
        (None, String::new()),
        (Some(cookie.as_str()), String::new()),
        (Some(cookie.as_str()), format!("csrf={}", "0".repeat(64))),
        (None, format!("csrf={token}")),
        (Some("jobs_web_csrf=forged"), format!("csrf={token}")),
    ] {
        let refused = post(&router, &retry, cookie, &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{cookie:?} {form}");
        assert_eq!(status(&queue, id).await, Some(JobStatus::Failed));
    }
    // A request the browser marks cross-site is refused even with both.
    let cross = Request::post(&retry)
        .header(header::COOKIE, &cookie)
        .header("sec-fetch-site", "cross-site")
        .body(Body::from(format!("csrf={token}")))
        .unwrap();
    assert_eq!(send(&router, cross).await.status, StatusCode::FORBIDDEN);

    // The cookie among others, as a browser sends it.
    let cookies = format!("theme=dark; {cookie}; session=abc");
    let done = post(&router, &retry, Some(&cookies), &format!("csrf={token}")).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.header(header::LOCATION),
        format!("/jobs/{id}?flash=retried")
    );
    assert_eq!(status(&queue, id).await, Some(JobStatus::Pending));
    let after = get(&router, done.header(header::LOCATION)).await;
    assert!(
        after.body.contains("waiting to run again"),
        "{}",
        after.body
    );
}

#[tokio::test]
async fn retry_cancel_delete_and_pause_do_what_they_say() {
    let queue = MemoryJobQueue::new();
    let router = jobs_web::router(queue.clone());

    let waiting = queue.enqueue(Job::new("report", json!({}))).await.unwrap();
    let page = format!("/jobs/{waiting}");
    assert!(get(&router, &page).await.body.contains("/cancel\""));
    let cancelled = act(&router, &page, &format!("{page}/cancel"), "").await;
    assert_eq!(cancelled.status, StatusCode::SEE_OTHER);
    assert_eq!(status(&queue, waiting).await, Some(JobStatus::Cancelled));
    // Cancelled jobs can be retried.
    let retried = act(&router, &page, &format!("{page}/retry"), "").await;
    assert_eq!(retried.status, StatusCode::SEE_OTHER);
    assert_eq!(status(&queue, waiting).await, Some(JobStatus::Pending));
    // A pending job cannot: the flash says so.
    let refused = act(&router, &page, &format!("{page}/retry"), "").await;
    assert_eq!(
        refused.header(header::LOCATION),
        format!("{page}?flash=not-retryable")
    );

    let deleted = act(&router, &page, &format!("{page}/delete"), "").await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(deleted.header(header::LOCATION), "/jobs?flash=deleted");
    assert_eq!(status(&queue, waiting).await, None);
    let gone = act(&router, "/", &format!("{page}/delete"), "").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    queue
        .enqueue(Job::new("welcome", json!({})).queue("mailers"))
        .await
        .unwrap();
    let paused = act(&router, "/", "/queues/mailers/pause", "").await;
    assert_eq!(paused.status, StatusCode::SEE_OTHER);
    assert_eq!(paused.header(header::LOCATION), "/?flash=paused");
    let mailers =
        |queues: Vec<jobs::QueueInfo>| queues.into_iter().find(|q| q.name == "mailers").unwrap();
    assert!(mailers(queue.queues().await.unwrap()).paused);
    let overview = get(&router, "/?flash=paused").await;
    assert!(overview.body.contains("action=\"/queues/mailers/resume\""));
    assert!(overview.body.contains("The queue is paused"));
    let resumed = act(&router, "/", "/queues/mailers/resume", "").await;
    assert_eq!(resumed.header(header::LOCATION), "/?flash=resumed");
    assert!(!mailers(queue.queues().await.unwrap()).paused);
    let bad = act(&router, "/", "/queues/no%20spaces/pause", "").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn retry_all_failed_of_one_name() {
    let queue = MemoryJobQueue::new();
    let mut a = Vec::new();
    for _ in 0..3 {
        a.push(run(&queue, Job::new("a", json!({})), vec![failed("x")]).await);
    }
    let b = run(&queue, Job::new("b", json!({})), vec![failed("y")]).await;
    let router = jobs_web::router(queue.clone());
    let list = get(&router, "/jobs?status=failed&name=a").await;
    assert!(list.body.contains("Retry all failed a"));
    assert!(list.body.contains("name=\"name\" value=\"a\""));
    let done = act(
        &router,
        "/jobs?status=failed&name=a",
        "/jobs/retry-failed",
        "&name=a",
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(
        done.header(header::LOCATION),
        "/jobs?status=failed&name=a&flash=retried-all&n=3"
    );
    for id in a {
        assert_eq!(status(&queue, id).await, Some(JobStatus::Pending));
    }
    assert_eq!(status(&queue, b).await, Some(JobStatus::Failed));
    let after = get(&router, done.header(header::LOCATION)).await;
    assert!(
        after
            .body
            .contains("3 failed jobs are waiting to run again")
    );
}

#[tokio::test]
async fn delete_all_of_a_final_status() {
    let queue = MemoryJobQueue::new();
    let mut done = Vec::new();
    for _ in 0..3 {
        let job = Job::new("report", json!({}));
        done.push(
            run(
                &queue,
                job,
                vec![Outcome::Completed(JobResult::success(json!(1)))],
            )
            .await,
        );
    }
    let failed_id = run(&queue, Job::new("flaky", json!({})), vec![failed("boom")]).await;
    let waiting = queue.enqueue(Job::new("later", json!({}))).await.unwrap();
    let router = jobs_web::router(queue.clone());

    let list = get(&router, "/jobs?status=completed").await;
    assert!(
        list.body.contains("action=\"/jobs/purge\""),
        "{}",
        list.body
    );
    assert!(list.body.contains("Delete all 3 completed jobs for good?"));
    // Not offered for waiting jobs, nor on a filtered list.
    assert!(
        !get(&router, "/jobs?status=pending")
            .await
            .body
            .contains("/jobs/purge")
    );
    assert!(
        !get(&router, "/jobs?status=completed&name=report")
            .await
            .body
            .contains("/jobs/purge")
    );

    let purged = act(
        &router,
        "/jobs?status=completed",
        "/jobs/purge",
        "&status=completed",
    )
    .await;
    assert_eq!(purged.status, StatusCode::SEE_OTHER);
    assert_eq!(
        purged.header(header::LOCATION),
        "/jobs?status=completed&flash=purged&n=3"
    );
    for id in done {
        assert_eq!(status(&queue, id).await, None);
    }
    assert_eq!(status(&queue, failed_id).await, Some(JobStatus::Failed));
    assert!(
        get(&router, purged.header(header::LOCATION))
            .await
            .body
            .contains("3 jobs were deleted")
    );

    let refused = act(&router, "/", "/jobs/purge", "&status=pending").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(status(&queue, waiting).await, Some(JobStatus::Pending));
}

#[tokio::test]
async fn read_only_shows_no_buttons_and_refuses_posts() {
    let queue = MemoryJobQueue::new();
    let id = run(&queue, Job::new("flaky", json!({})), vec![failed("boom")]).await;
    let writable = Dashboard::new(queue.clone());
    let router = writable.clone().read_only(true).router();
    for path in [
        "/".to_owned(),
        format!("/jobs/{id}"),
        "/jobs?status=failed".to_owned(),
    ] {
        let page = get(&router, &path).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.body.contains("method=\"post\""), "a form on {path}");
        assert!(page.body.contains("read-only"));
    }
    // Even with a token that a writable copy of the dashboard accepts.
    let token_page = get(&writable.router(), &format!("/jobs/{id}")).await;
    let refused = post(
        &router,
        &format!("/jobs/{id}/retry"),
        Some(&token_page.cookie()),
        &format!("csrf={}", token_page.token()),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("read-only"));
    assert_eq!(status(&queue, id).await, Some(JobStatus::Failed));
}

#[tokio::test]
async fn basic_auth_guards_every_route() {
    let router = Dashboard::new(MemoryJobQueue::new())
        .basic_auth("ops", "s3cret:with-colon")
        .router();
    let with = |path: &str, credentials: Option<&str>| {
        let mut request = Request::get(path);
        if let Some(c) = credentials {
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(c);
            request = request.header(header::AUTHORIZATION, format!("Basic {encoded}"));
        }
        request.body(Body::empty()).unwrap()
    };
    for path in ["/", "/jobs", "/assets/dashboard.css", "/nowhere"] {
        let anonymous = send(&router, with(path, None)).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            anonymous
                .header(header::WWW_AUTHENTICATE)
                .starts_with("Basic realm=")
        );
        let wrong = send(&router, with(path, Some("ops:guess"))).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let ok = send(&router, with("/", Some("ops:s3cret:with-colon"))).await;
    assert_eq!(ok.status, StatusCode::OK);
    let post = Request::post("/queues/default/pause")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&router, post).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn works_nested_under_a_prefix() {
    let queue = MemoryJobQueue::new();
    let id = run(&queue, Job::new("flaky", json!({})), vec![failed("boom")]).await;
    let app = Router::new().nest("/admin/jobs", Dashboard::new(queue.clone()).router());

    for path in [
        "/admin/jobs".to_owned(),
        "/admin/jobs/jobs?status=failed".to_owned(),
        format!("/admin/jobs/jobs/{id}"),
    ] {
        let page = get(&app, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        let mut urls = 0;
        for attribute in ["href=\"", "action=\"", "src=\"", "data-live=\""] {
            for (at, _) in page.body.match_indices(attribute) {
                let value = &page.body[at + attribute.len()..];
                let value = &value[..value.find('"').unwrap()];
                assert!(
                    value.starts_with("/admin/jobs"),
                    "{attribute}{value} on {path} lacks the prefix"
                );
                urls += 1;
            }
        }
        assert!(urls > 5, "{path}: {urls} URLs");
        assert!(
            page.header(header::SET_COOKIE)
                .contains("Path=/admin/jobs/")
        );
    }
    let css = get(&app, "/admin/jobs/assets/dashboard.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.header(header::CONTENT_TYPE).starts_with("text/css"));

    let done = act(
        &app,
        &format!("/admin/jobs/jobs/{id}"),
        &format!("/admin/jobs/jobs/{id}/retry"),
        "",
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(
        done.header(header::LOCATION),
        format!("/admin/jobs/jobs/{id}?flash=retried")
    );
    let paused = act(&app, "/admin/jobs", "/admin/jobs/queues/default/pause", "").await;
    assert_eq!(paused.header(header::LOCATION), "/admin/jobs?flash=paused");
    let missing = get(&app, "/admin/jobs/nowhere").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("href=\"/admin/jobs\""));
}

#[tokio::test]
async fn head_requests_get_headers_only() {
    let router = jobs_web::router(MemoryJobQueue::new());
    let head = send(&router, Request::head("/").body(Body::empty()).unwrap()).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.header(header::X_FRAME_OPTIONS), "DENY");
}

#[tokio::test]
async fn security_headers_on_every_response() {
    let queue = MemoryJobQueue::new();
    let id = run(&queue, Job::new("flaky", json!({})), vec![failed("boom")]).await;
    let router = jobs_web::router(queue.clone());
    let page = get(&router, "/").await;
    let js_path = {
        let at = page.body.find("src=\"").unwrap() + 5;
        page.body[at..at + page.body[at..].find('"').unwrap()].replace("&amp;", "&")
    };
    assert!(js_path.starts_with("/assets/dashboard.js?v="), "{js_path}");
    let replies = vec![
        ("overview", page),
        ("job", get(&router, &format!("/jobs/{id}")).await),
        ("404", get(&router, "/nowhere").await),
        ("400", get(&router, "/jobs/xyz").await),
        (
            "403",
            post(&router, &format!("/jobs/{id}/retry"), None, "").await,
        ),
        ("303", get(&router, &format!("/search?id={id}")).await),
        ("js", get(&router, &js_path).await),
        ("css", get(&router, "/assets/dashboard.css").await),
    ];
    for (what, reply) in &replies {
        let csp = reply.header(header::CONTENT_SECURITY_POLICY);
        assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
        assert_eq!(reply.header(header::X_FRAME_OPTIONS), "DENY", "{what}");
        assert_eq!(
            reply.header(header::X_CONTENT_TYPE_OPTIONS),
            "nosniff",
            "{what}"
        );
        assert_eq!(
            reply.header(header::REFERRER_POLICY),
            "same-origin",
            "{what}"
        );
    }
    for (what, reply) in &replies[..6] {
        assert_eq!(reply.header(header::CACHE_CONTROL), "no-store", "{what}");
    }
    let js = &replies[6].1;
    assert_eq!(js.status, StatusCode::OK);
    assert!(
        js.header(header::CONTENT_TYPE)
            .starts_with("text/javascript")
    );
    assert!(js.header(header::CACHE_CONTROL).contains("max-age"));
    assert!(js.body.contains("data-live"));
}

/// A queue whose backend is down: every call fails as Redis would.
#[derive(Clone)]
struct Down;

fn down<T>() -> jobs::Result<T> {
    Err(jobs::Error::backend("connection refused (os error 111)"))
}

impl Enqueue for Down {
    async fn push(&self, _job: Job) -> jobs::Result<jobs::Enqueued> {
        down()
    }
    async fn push_many(&self, _jobs: Vec<Job>) -> jobs::Result<Vec<jobs::Enqueued>> {
        down()
    }
}

impl JobQueue for Down {
    async fn reserve(
        &self,
        _: &str,
        _: &[Take],
        _: Duration,
    ) -> jobs::Result<Vec<jobs::Reservation>> {
        down()
    }
    async fn wait_for_jobs(&self, _timeout: Duration) {}
    async fn progress(&self, _: jobs::Lease, _: serde_json::Value) -> jobs::Result<bool> {
        down()
    }
    async fn heartbeat(&self, _: &[jobs::Lease], _: Duration) -> jobs::Result<Vec<jobs::Lease>> {
        down()
    }
    async fn finish(&self, _: jobs::Lease, _: Outcome, _: Option<Job>) -> jobs::Result<bool> {
        down()
    }
    async fn release(&self, _: &[jobs::Lease]) -> jobs::Result<usize> {
        down()
    }
    async fn recover_expired(&self) -> jobs::Result<usize> {
        down()
    }
    async fn report_worker(&self, _: &jobs::WorkerInfo, _: Duration) -> jobs::Result<()> {
        down()
    }
    async fn remove_worker(&self, _: &str) -> jobs::Result<()> {
        down()
    }
    async fn dependency_results(
        &self,
        _: JobId,
    ) -> jobs::Result<Vec<jobs::workflow::DependencyResult>> {
        down()
    }
}

impl QueueAdmin for Down {
    async fn get(&self, _: JobId) -> jobs::Result<Option<Job>> {
        down()
    }
    async fn list(&self, _: Option<JobStatus>, _: usize) -> jobs::Result<Vec<Job>> {
        down()
    }
    async fn find_jobs(&self, _: &jobs::JobFilter) -> jobs::Result<jobs::JobPage> {
        down()
    }
    async fn delete(&self, _: JobId) -> jobs::Result<jobs::DeleteOutcome> {
        down()
    }
    async fn purge_status(&self, _: JobStatus) -> jobs::Result<u64> {
        down()
    }
    async fn throughput(&self, _: usize) -> jobs::Result<Vec<jobs::Throughput>> {
        down()
    }
    async fn workers(&self) -> jobs::Result<Vec<jobs::WorkerInfo>> {
        down()
    }
    async fn cancel(&self, _: JobId) -> jobs::Result<jobs::CancelOutcome> {
        down()
    }
    async fn retry(&self, _: JobId) -> jobs::Result<bool> {
        down()
    }
    async fn counts(&self) -> jobs::Result<jobs::QueueCounts> {
        down()
    }
    async fn purge(&self) -> jobs::Result<u64> {
        down()
    }
    async fn pause_queue(&self, _: &str) -> jobs::Result<bool> {
        down()
    }
    async fn resume_queue(&self, _: &str) -> jobs::Result<bool> {
        down()
    }
    async fn queues(&self) -> jobs::Result<Vec<jobs::QueueInfo>> {
        down()
    }
    async fn workflow(
        &self,
        _: jobs::workflow::WorkflowId,
    ) -> jobs::Result<Option<jobs::workflow::WorkflowStatus>> {
        down()
    }
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<jobs::JobEvent> {
        tokio::sync::broadcast::channel(1).1
    }
}

#[tokio::test]
async fn a_backend_that_is_down_gives_a_503_page() {
    let router = Dashboard::new(AnyQueue::new(Down)).router();
    for path in [
        "/".to_owned(),
        "/live".to_owned(),
        "/jobs".to_owned(),
        format!("/jobs/{}", JobId::new()),
        format!("/workflows/{}", jobs::workflow::WorkflowId::new()),
    ] {
        let page = get(&router, &path).await;
        assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(
            page.body.contains("connection refused"),
            "{path}: {}",
            page.body
        );
        assert!(page.body.contains("Could not"), "{path}");
    }
    // An action: the 503 says which call failed. Every HTML response sets
    // the cookie, which holds the same token the forms carry.
    let cookie = get(&router, "/nowhere").await.cookie();
    let token = cookie.split_once('=').unwrap().1.to_owned();
    let failed = post(
        &router,
        "/queues/default/pause",
        Some(&cookie),
        &format!("csrf={token}"),
    )
    .await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        failed.body.contains("Could not pause queue default"),
        "{}",
        failed.body
    );
}

/// A workflow: `extract` and `load` on their own, `report` after both, and
/// `publish` after `report`; `extract` completed. Names are `names`'s
/// (workflow, a step, a job) so a test can make them HTML.
async fn nightly(
    queue: &MemoryJobQueue,
    names: [&str; 3],
) -> (jobs::workflow::WorkflowId, [JobId; 4]) {
    let [workflow, step, job] = names;
    let mut w = jobs::workflow::Workflow::new(workflow);
    let extract = w.step("extract", Job::new("extract_rows", json!({})), &[]);
    let load = w.step("load", Job::new("load_rows", json!({})), &[]);
    let report = w.step(
        step,
        Job::new(job.to_owned(), json!({})),
        &["extract", "load"],
    );
    let publish = w.step("publish", Job::new("publish", json!({})), &[step]);
    let id = w.enqueue(queue).await.unwrap();
    finish_ready(
        queue,
        extract.id(),
        Outcome::Completed(JobResult::success(json!(3))),
    )
    .await;
    (id, [extract.id(), load.id(), report.id(), publish.id()])
}

#[tokio::test]
async fn workflow_page_shows_counts_and_steps() {
    let queue = MemoryJobQueue::new();
    let (id, [extract, load, report, publish]) =
        nightly(&queue, ["nightly", "report", "build_report"]).await;
    let router = jobs_web::router(queue.clone());
    let page = get(&router, &format!("/workflows/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for (card, n) in [
        ("total", "4"),
        ("pending", "3"),
        ("completed", "1"),
        ("failed", "0"),
        ("cancelled", "0"),
    ] {
        assert_eq!(page.card(card), n, "{card}");
    }
    let body = &page.body;
    for expected in [
        "nightly".to_owned(),
        id.to_string(),
        "workflow".to_owned(),
        "build_report".to_owned(),
        "<span class=\"badge s-completed\">completed</span>".to_owned(),
        "waits for 1".to_owned(),
        format!("href=\"/jobs/{report}\""),
    ] {
        assert!(body.contains(&expected), "no {expected:?} in\n{body}");
    }
    // One row per step, in the order stored; each dependency a link.
    let rows: Vec<usize> = ["extract", "load", "report", "publish"]
        .iter()
        .map(|s| body.find(&format!("data-step=\"{s}\"")).unwrap())
        .collect();
    assert!(rows.windows(2).all(|w| w[0] < w[1]), "{rows:?}");
    let report_row = &body[rows[2]..rows[3]];
    assert!(report_row.contains(&format!(
        "href=\"/jobs/{extract}\"><code>extract</code></a>"
    )));
    assert!(report_row.contains(&format!("href=\"/jobs/{load}\"><code>load</code></a>")));
    assert!(body[rows[3]..].contains(&format!("href=\"/jobs/{publish}\"")));
    // The cancel button, behind a confirmation.
    assert!(body.contains(&format!("action=\"/workflows/{id}/cancel\"")));
    assert!(body.contains("data-confirm=\"Cancel the 3 unfinished jobs of this workflow?\""));

    // The search box finds a workflow by its id, and a step by its job's.
    let found = get(&router, &format!("/search?id={id}")).await;
    assert_eq!(found.status, StatusCode::SEE_OTHER);
    assert_eq!(found.header(header::LOCATION), format!("/workflows/{id}"));
    let found = get(&router, &format!("/search?id={report}")).await;
    assert_eq!(found.header(header::LOCATION), format!("/jobs/{report}"));
    let missing = get(
        &router,
        &format!("/workflows/{}", jobs::workflow::WorkflowId::new()),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("No such workflow"));
    let malformed = get(&router, "/workflows/nope").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(malformed.body.contains("is not a workflow id"));
}

#[tokio::test]
async fn a_steps_job_page_links_its_workflow_and_dependencies() {
    let queue = MemoryJobQueue::new();
    let (id, [extract, load, report, _]) =
        nightly(&queue, ["nightly", "report", "build_report"]).await;
    let router = jobs_web::router(queue.clone());
    let page = get(&router, &format!("/jobs/{report}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    let section = &body[body.find("id=\"workflow\"").expect("a workflow section")..];
    for expected in [
        format!("<a href=\"/workflows/{id}\" data-field=\"workflow\">nightly</a>"),
        "<dd data-field=\"step\"><code>report</code></dd>".to_owned(),
        "<dd data-field=\"waiting-on\">1 of 2 dependencies</dd>".to_owned(),
        format!("href=\"/jobs/{extract}\""),
        format!("href=\"/jobs/{load}\""),
        "<span class=\"badge s-completed\">completed</span>".to_owned(),
        "<span class=\"badge s-pending\">pending</span>".to_owned(),
    ] {
        assert!(section.contains(&expected), "no {expected:?} in\n{body}");
    }
    // A dependency no longer kept says so; a job on its own has no section.
    finish_ready(
        &queue,
        load,
        Outcome::Completed(JobResult::success(json!(1))),
    )
    .await;
    queue.delete(extract).await.unwrap();
    let page = get(&router, &format!("/jobs/{report}")).await;
    assert!(page.body.contains("no longer kept"), "{}", page.body);
    assert!(!page.body.contains("Waiting on"), "{}", page.body);
    let alone = queue.enqueue(Job::new("alone", json!({}))).await.unwrap();
    let page = get(&router, &format!("/jobs/{alone}")).await;
    assert!(!page.body.contains("id=\"workflow\""), "{}", page.body);
}

#[tokio::test]
async fn workflow_and_step_names_are_escaped() {
    let queue = MemoryJobQueue::new();
    let (id, [_, _, report, publish]) = nightly(&queue, [XSS, XSS, XSS]).await;
    let router = jobs_web::router(queue.clone());
    for path in [
        format!("/workflows/{id}"),
        format!("/jobs/{report}"),
        format!("/jobs/{publish}"),
    ] {
        let page = get(&router, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            !page.body.contains("<script>"),
            "raw payload on {path}:\n{}",
            page.body
        );
        assert!(
            page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}: {}",
            page.body
        );
    }
}

#[tokio::test]
async fn cancel_workflow_needs_the_token_and_cancels_what_has_not_finished() {
    let queue = MemoryJobQueue::new();
    let (id, [extract, load, report, publish]) =
        nightly(&queue, ["nightly", "report", "build_report"]).await;
    let dashboard = Dashboard::new(queue.clone());
    let router = dashboard.clone().router();
    let page = format!("/workflows/{id}");
    let cancel = format!("/workflows/{id}/cancel");

    // Without the token, or read-only: refused, nothing changed.
    let token_page = get(&router, &page).await;
    let refused = post(&router, &cancel, Some(&token_page.cookie()), "").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let read_only = dashboard.read_only(true).router();
    let shown = get(&read_only, &page).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(!shown.body.contains("method=\"post\""), "{}", shown.body);
    let refused = post(
        &read_only,
        &cancel,
        Some(&token_page.cookie()),
        &format!("csrf={}", token_page.token()),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("read-only"));
    assert_eq!(status(&queue, load).await, Some(JobStatus::Pending));

    let done = act(&router, &page, &cancel, "").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.header(header::LOCATION),
        format!("/workflows/{id}?flash=workflow-cancelled&n=3")
    );
    assert_eq!(status(&queue, extract).await, Some(JobStatus::Completed));
    for step in [load, report, publish] {
        assert_eq!(status(&queue, step).await, Some(JobStatus::Cancelled));
    }
    let after = get(&router, done.header(header::LOCATION)).await;
    assert!(
        after.body.contains("3 jobs were cancelled."),
        "{}",
        after.body
    );
    assert_eq!(after.card("cancelled"), "3");
    assert!(!after.body.contains(&format!("action=\"{cancel}\"")));

    // Again, on the finished workflow (the page has no button now, but
    // the token is the dashboard's): nothing to do, and it says so.
    let token = token_page.token();
    let again = post(
        &router,
        &cancel,
        Some(&token_page.cookie()),
        &format!("csrf={token}"),
    )
    .await;
    assert_eq!(
        again.header(header::LOCATION),
        format!("/workflows/{id}?flash=workflow-finished")
    );
    let unknown = post(
        &router,
        &format!("/workflows/{}/cancel", jobs::workflow::WorkflowId::new()),
        Some(&token_page.cookie()),
        &format!("csrf={token}"),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}
