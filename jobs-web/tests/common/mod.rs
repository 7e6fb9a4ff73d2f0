//! What the HTTP tests share: requests through the router with
//! `oneshot`, and jobs driven through their attempts by hand.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use jobs::queue::Take;
use jobs::{Job, JobId, JobQueue, Outcome};
use tower::ServiceExt;

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    /// The CSRF token the page's forms carry.
    pub fn token(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let at = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no form token in page:\n{}", self.body))
            + marker.len();
        self.body[at..at + 64].to_owned()
    }

    /// The `name=value` of the CSRF cookie the response sets.
    pub fn cookie(&self) -> String {
        let set = self.header(header::SET_COOKIE);
        set.split(';').next().unwrap().to_owned()
    }

    /// The count on the overview's card for `key`.
    pub fn card(&self, key: &str) -> String {
        let at = self
            .body
            .find(&format!("data-count=\"{key}\""))
            .unwrap_or_else(|| panic!("no {key} card"));
        let rest = &self.body[at..];
        let start = rest.find("class=\"count\">").unwrap() + "class=\"count\">".len();
        let end = rest[start..].find('<').unwrap();
        rest[start..start + end].to_owned()
    }

    /// How many job rows the list shows.
    pub fn rows(&self) -> usize {
        self.body.matches("class=\"id\" href=").count()
    }
}

pub async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 10 << 20)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

pub async fn get(router: &Router, path: &str) -> Reply {
    send(router, Request::get(path).body(Body::empty()).unwrap()).await
}

pub async fn post(router: &Router, path: &str, cookie: Option<&str>, form: &str) -> Reply {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    send(router, request.body(Body::from(form.to_owned())).unwrap()).await
}

/// Loads `page` and posts its form token (and cookie) to `action`.
pub async fn act(router: &Router, page: &str, action: &str, extra: &str) -> Reply {
    let page = get(router, page).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let form = format!("csrf={}{extra}", page.token());
    post(router, action, Some(&page.cookie()), &form).await
}

/// Runs `job`'s attempts to the outcomes given, in order (each attempt
/// reserved and finished by hand); other ready jobs are handed back.
pub async fn run<Q: JobQueue>(queue: &Q, job: Job, outcomes: Vec<Outcome>) -> JobId {
    let id = queue.enqueue(job).await.unwrap();
    for outcome in outcomes {
        let queue_name = queue.get(id).await.unwrap().unwrap().queue.to_string();
        let reserved = queue
            .reserve(
                "test",
                &[Take::new(queue_name, 1_000)],
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        let (mine, others): (Vec<_>, Vec<_>) = reserved.into_iter().partition(|r| r.job.id == id);
        let others: Vec<_> = others.iter().map(|r| r.lease).collect();
        queue.release(&others).await.unwrap();
        let lease = mine.first().expect("the job was not ready").lease;
        assert!(queue.finish(lease, outcome, None).await.unwrap());
    }
    id
}

/// Runs the ready job `id` to `outcome` (other ready jobs of its queue are
/// handed back): for workflow steps, which `run` cannot enqueue.
pub async fn finish_ready<Q: JobQueue>(queue: &Q, id: JobId, outcome: Outcome) {
    let queue_name = queue.get(id).await.unwrap().unwrap().queue.to_string();
    let reserved = queue
        .reserve(
            "test",
            &[Take::new(queue_name, 1_000)],
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let (mine, others): (Vec<_>, Vec<_>) = reserved.into_iter().partition(|r| r.job.id == id);
    let others: Vec<_> = others.iter().map(|r| r.lease).collect();
    queue.release(&others).await.unwrap();
    let lease = mine.first().expect("the job was not ready").lease;
    assert!(queue.finish(lease, outcome, None).await.unwrap());
}
