//! The dashboard (`jobs-web`) over the networked backends: the overview's
//! counts, a failed job's page, and retry, cancel, pause and resume from it
//! change the jobs in Redis and in PostgreSQL. Without `JOBS_REDIS_URL` /
//! `JOBS_DATABASE_URL` each test prints that it skips.
//!
//! The job lists (`find_jobs`), throughput and workers are the backends'
//! own conformance cases; here the dashboard only has to show them.
#![cfg(any(feature = "redis", feature = "postgres"))]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use jobs::{Job, JobId, JobQueue, JobResult, JobStatus, Outcome, QueueAdmin, Take};
use serde_json::json;
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    location: Option<String>,
    cookie: Option<String>,
    body: String,
}

impl Reply {
    /// The form token the page's forms carry.
    fn token(&self) -> &str {
        let marker = "name=\"csrf\" value=\"";
        let at = self.body.find(marker).expect("no form token") + marker.len();
        &self.body[at..at + 64]
    }

    /// The count on the overview's card for `key`.
    fn card(&self, key: &str) -> &str {
        let rest = &self.body[self.body.find(&format!("data-count=\"{key}\"")).unwrap()..];
        let start = rest.find("class=\"count\">").unwrap() + "class=\"count\">".len();
        &rest[start..start + rest[start..].find('<').unwrap()]
    }
}

async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &header::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let (status, location) = (response.status(), header(header::LOCATION));
    let cookie = header(header::SET_COOKIE).map(|c| c.split(';').next().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), 10 << 20)
        .await
        .unwrap();
    Reply {
        status,
        location,
        cookie,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn get(router: &Router, path: &str) -> Reply {
    send(router, Request::get(path).body(Body::empty()).unwrap()).await
}

/// Loads `page`, then posts its form (token and cookie) to `action`.
async fn act(router: &Router, page: &str, action: &str) -> Reply {
    let page = get(router, page).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let request = Request::post(action)
        .header(header::COOKIE, page.cookie.as_deref().unwrap())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={}", page.token())))
        .unwrap();
    send(router, request).await
}

async fn status<Q: QueueAdmin>(queue: &Q, id: JobId) -> JobStatus {
    queue.get(id).await.unwrap().unwrap().status
}

/// The same walk through the dashboard on any backend.
async fn walk<Q: JobQueue + Clone>(queue: Q) {
    let waiting = queue
        .enqueue(Job::new("report", json!({"day": 1})))
        .await
        .unwrap();
    let failing = queue
        .enqueue(Job::new("charge", json!({"order": 7})).max_retries(0))
        .await
        .unwrap();
    // Attempt the failing job by hand; hand the other back.
    let reserved = queue
        .reserve(
            "dashboard-test",
            &[Take::new("default", 10)],
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    for r in &reserved {
        if r.job.id == failing {
            let outcome = Outcome::Failed(JobResult::error("card declined").with_retryable(false));
            assert!(queue.finish(r.lease, outcome, None).await.unwrap());
        } else {
            queue.release(&[r.lease]).await.unwrap();
        }
    }
    assert_eq!(status(&queue, failing).await, JobStatus::Failed);

    let router = jobs_web::Dashboard::new(queue.clone()).router();
    let overview = get(&router, "/").await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    assert_eq!(overview.card("failed"), "1");
    assert_eq!(overview.card("pending"), "1");
    assert!(overview.body.contains("data-queue=\"default\""));

    // The failed list shows what the backend's `find_jobs` finds; where
    // the backend cannot list yet, the page says so with a 503.
    let list = get(&router, "/jobs?status=failed").await;
    match queue
        .find_jobs(&jobs::JobFilter::new().status(JobStatus::Failed))
        .await
    {
        Ok(found) => {
            assert_eq!(list.status, StatusCode::OK, "{}", list.body);
            assert_eq!(found.jobs.len(), 1);
            assert!(list.body.contains(&format!("href=\"/jobs/{failing}\"")));
            assert!(list.body.contains("card declined"));
        }
        Err(e) => {
            assert_eq!(list.status, StatusCode::SERVICE_UNAVAILABLE);
            assert!(list.body.contains(&e.to_string()), "{}", list.body);
        }
    }

    let page = format!("/jobs/{failing}");
    let shown = get(&router, &page).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.body.contains("card declined") && shown.body.contains("&quot;order&quot;: 7"));

    let retried = act(&router, &page, &format!("{page}/retry")).await;
    assert_eq!(retried.status, StatusCode::SEE_OTHER, "{}", retried.body);
    assert_eq!(status(&queue, failing).await, JobStatus::Pending);

    let waiting_page = format!("/jobs/{waiting}");
    let cancelled = act(&router, &waiting_page, &format!("{waiting_page}/cancel")).await;
    assert_eq!(cancelled.status, StatusCode::SEE_OTHER);
    assert_eq!(status(&queue, waiting).await, JobStatus::Cancelled);

    let paused = act(&router, "/", "/queues/default/pause").await;
    assert_eq!(paused.location.as_deref(), Some("/?flash=paused"));
    let default = |q: Vec<jobs::QueueInfo>| q.into_iter().find(|q| q.name == "default").unwrap();
    assert!(default(queue.queues().await.unwrap()).paused);
    assert!(
        get(&router, "/")
            .await
            .body
            .contains("action=\"/queues/default/resume\"")
    );
    let resumed = act(&router, "/", "/queues/default/resume").await;
    assert_eq!(resumed.location.as_deref(), Some("/?flash=resumed"));
    assert!(!default(queue.queues().await.unwrap()).paused);

    assert_eq!(
        get(&router, &format!("/jobs/{}", JobId::new()))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_over_redis() {
    let Some(url) = jobs_examples::redis_url() else {
        return;
    };
    let queue = jobs::RedisJobQueue::builder(&url)
        .name(jobs_examples::unique_name("web"))
        .connect()
        .await
        .unwrap();
    walk(queue.clone()).await;
    queue.purge().await.unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_over_postgres() {
    let Some(url) = jobs_examples::database_url() else {
        return;
    };
    let queue = jobs::PostgresJobQueue::builder(&url)
        .schema(jobs_examples::unique_name("web"))
        .max_connections(4)
        .connect()
        .await
        .unwrap();
    walk(queue.clone()).await;
    queue.drop_schema().await.unwrap();
}
