//! A web dashboard for [`jobs`] queues: counts by status, throughput
//! charts, queues and workers; job lists with filters; every field of a
//! job and its attempts' errors; and the actions an operator needs —
//! retry, cancel, delete, retry all failed, delete all of a finished
//! status, pause and resume a queue.
//!
//! It is an [axum] [`Router`](axum::Router) you mount in your own
//! app, behind your own authentication, under any prefix; or served on its
//! own with [`serve`] (which is what `jobs web` does). Pages are rendered
//! on the server, the charts are SVG drawn on the server, and the one
//! stylesheet and one small script are compiled into the binary: no CDN,
//! no build step, and every page works without JavaScript (the script only
//! refreshes the overview's numbers every 5 seconds and asks before
//! deleting).
//!
//! # Mounting it in your app
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use jobs::MemoryJobQueue;
//!
//! # async fn run() -> std::io::Result<()> {
//! let queue = MemoryJobQueue::new(); // the queue your workers use
//! let app = Router::new()
//!     .route("/", get(|| async { "my app" }))
//!     .nest("/admin/jobs", jobs_web::router(queue));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! Every link, form and asset URL the dashboard writes carries the prefix
//! it is mounted at (nest it at a path without a trailing slash, as above).
//!
//! # Behind your own authentication
//!
//! The dashboard changes jobs: put it behind the check your app already
//! has. A layer added on the dashboard's router runs before every one of
//! its routes:
//!
//! ```
//! use axum::{Router, extract::Request, http::StatusCode, middleware::{self, Next}, response::Response};
//!
//! async fn operators_only(request: Request, next: Next) -> Result<Response, StatusCode> {
//!     // Your session or token check; here, a header set by a trusted proxy.
//!     match request.headers().get("x-role").and_then(|v| v.to_str().ok()) {
//!         Some("operator") => Ok(next.run(request).await),
//!         _ => Err(StatusCode::FORBIDDEN),
//!     }
//! }
//!
//! let dashboard = jobs_web::Dashboard::new(jobs::MemoryJobQueue::new()).router();
//! let app: Router = Router::new().nest(
//!     "/admin/jobs",
//!     dashboard.layer(middleware::from_fn(operators_only)),
//! );
//! # drop(app);
//! ```
//!
//! Or use the built-in HTTP basic auth, [`Dashboard::basic_auth`] (or
//! [`Dashboard::basic_auth_from_env`], reading `JOBS_WEB_USER` and
//! `JOBS_WEB_PASSWORD`), and [`Dashboard::read_only`] for a view that can
//! change nothing.
//!
//! # Serving it on its own
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let queue = jobs::AnyQueue::connect("redis://127.0.0.1:6379/").await?;
//! let dashboard = jobs_web::Dashboard::new(queue).basic_auth_from_env()?;
//! jobs_web::serve(dashboard, "127.0.0.1:8080".parse()?).await?;
//! # Ok(()) }
//! ```
//!
//! # Safe by default
//!
//! - Every action is a `POST` carrying a per-dashboard random token, which
//!   must match both the form field and a `SameSite=Strict` cookie
//!   (compared in constant time); a request the browser marks cross-site
//!   is refused. Without the token: 403.
//! - All job data — names, arguments, errors, queue names, metadata — is
//!   escaped.
//! - Every response carries a `Content-Security-Policy` allowing only the
//!   dashboard's own files (no inline script), `X-Frame-Options: DENY`,
//!   `X-Content-Type-Options: nosniff` and `Referrer-Policy: same-origin`;
//!   pages are `Cache-Control: no-store`.
//! - A backend that fails (Redis down) gives a 503 page saying what failed.
//!
//! # Pages
//!
//! | Path | What |
//! |------|------|
//! | `/` | counts by status, throughput for the last hour and day, queues (pause, resume), workers |
//! | `/jobs?status=failed&name=..&queue=..&page=2` | a filtered page of jobs, newest first; "Retry all failed" on the failed list, "Delete all" on a finished status's |
//! | `/jobs/{id}` | one job: arguments, status, attempts and their errors, result, timeline, progress, tags, metadata, limits; Retry, Cancel, Delete |
//! | `/search?id=..` | jumps to a job by id |

mod app;
mod assets;
mod base;
mod dashboard;
mod guard;
mod view;

use std::future::Future;
use std::io;
use std::net::SocketAddr;

pub use dashboard::{Dashboard, Error, PASSWORD_VAR, USER_VAR};

/// The dashboard over `queue` with the defaults (actions allowed, no
/// password): `Dashboard::new(queue).router()`.
///
/// ```
/// let app: axum::Router = axum::Router::new()
///     .nest("/admin/jobs", jobs_web::router(jobs::MemoryJobQueue::new()));
/// # drop(app);
/// ```
pub fn router<Q: jobs::JobQueue>(queue: Q) -> axum::Router {
    Dashboard::new(queue).router()
}

/// Serves `dashboard` on `addr` until the process ends.
///
/// It serves whatever address it is given: bind to loopback
/// (`127.0.0.1`) unless the dashboard is protected (basic auth, or a
/// proxy with its own).
pub async fn serve(dashboard: Dashboard, addr: SocketAddr) -> io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_with_shutdown(dashboard, listener, std::future::pending()).await
}

/// Serves `dashboard` on `listener` until `shutdown` resolves, then lets
/// the requests in flight finish.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// println!("dashboard on http://{}/", listener.local_addr()?);
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let dashboard = jobs_web::Dashboard::new(jobs::MemoryJobQueue::new());
/// let server = tokio::spawn(jobs_web::serve_with_shutdown(dashboard, listener, async {
///     let _ = stopped.await;
/// }));
/// // ... later:
/// let _ = stop.send(());
/// server.await.expect("the server task panicked")
/// # }
/// ```
pub async fn serve_with_shutdown<F>(
    dashboard: Dashboard,
    listener: tokio::net::TcpListener,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    axum::serve(listener, dashboard.router())
        .with_graceful_shutdown(shutdown)
        .await
}
