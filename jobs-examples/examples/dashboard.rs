//! The web dashboard (`jobs-web`) over a worker's queue, mounted in an axum
//! app under `/admin/jobs`. A few jobs complete, one retries, one fails for
//! good and a mailer waits in a paused queue; the example then fetches the
//! overview once, prints what it shows, and exits.
//!
//! Run: `cargo run --example dashboard` (exits by itself), or
//! `cargo run --example dashboard -- --serve` to keep serving
//! `http://127.0.0.1:8080/admin/jobs` with a job enqueued every second,
//! until Ctrl-C. `--addr 127.0.0.1:PORT` picks another port.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use jobs::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[job(retries = 2)]
async fn resize(width: u32) -> Result<u32, JobError> {
    tokio::time::sleep(Duration::from_millis(u64::from(width % 40))).await;
    if width % 7 == 0 {
        return Err(JobError::permanent(format!(
            "image {width}px wide is corrupt"
        )));
    }
    Ok(width / 2)
}

#[job(retries = 1, name = "sync_account")]
async fn sync(account: u32, cx: JobContext) -> Result<(), JobError> {
    if cx.attempt() == 1 {
        return Err(JobError::retry_after(
            format!("account {account}: upstream busy"),
            Duration::from_millis(200),
        ));
    }
    Ok(())
}

#[job(queue = "mailers")]
async fn send_welcome(to: String) -> Result<(), JobError> {
    let _ = to;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let serve = args.iter().any(|a| a == "--serve");
    let addr: SocketAddr = match args.iter().position(|a| a == "--addr") {
        Some(i) => args.get(i + 1).ok_or("--addr needs an address")?.parse()?,
        None if serve => "127.0.0.1:8080".parse()?,
        None => "127.0.0.1:0".parse()?,
    };
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not a loopback address").into());
    }

    let queue = MemoryJobQueue::new();
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .queues([("default", 4), ("mailers", 2)])
        .build()?;
    let running = tokio::spawn(worker.clone().run_owned());

    let mut ids = Vec::new();
    for width in [640, 800, 1024, 1920, 2100] {
        ids.push(resize::enqueue(&queue, width).await?);
    }
    ids.push(sync::enqueue(&queue, 42).await?);
    for id in ids {
        let job = worker.wait_for(id).await?;
        println!("{} {:?}", job.name, job.status);
    }
    queue.pause_queue("mailers").await?;
    send_welcome::enqueue(&queue, "ada@example.com".into()).await?;

    // The dashboard nested in the app; its links carry the prefix.
    let dashboard = jobs_web::Dashboard::new(queue.clone()).title("Example shop");
    let app = Router::new()
        .route("/", get(|| async { Redirect::to("/admin/jobs") }))
        .nest("/admin/jobs", dashboard.router());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    println!("dashboard on http://{addr}/admin/jobs");

    if serve {
        println!("a resize job every second; Ctrl-C to stop");
        let mut every = tokio::time::interval(Duration::from_secs(1));
        let mut width = 0;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = every.tick() => {
                    width += 1;
                    resize::enqueue(&queue, width).await?;
                }
            }
        }
    } else {
        let page = fetch(addr, "/admin/jobs").await?;
        let status = page.lines().next().unwrap_or_default();
        println!("\n--- GET /admin/jobs: {status} ---");
        for key in ["pending", "completed", "failed"] {
            println!("{key}: {}", card(&page, key).unwrap_or("?"));
        }
        let paused = page.contains("action=\"/admin/jobs/queues/mailers/resume\"");
        println!("mailers paused, with a Resume button: {paused}");
    }

    let _ = stop.send(());
    server.await??;
    worker.stop().await;
    running.await??;
    Ok(())
}

/// The count on the overview's card for `key`.
fn card<'a>(page: &'a str, key: &str) -> Option<&'a str> {
    let rest = &page[page.find(&format!("data-count=\"{key}\""))?..];
    let start = rest.find("class=\"count\">")? + "class=\"count\">".len();
    let end = rest[start..].find('<')?;
    Some(&rest[start..start + end])
}

/// A plain HTTP/1.0 GET, as a browser without JavaScript would do it.
async fn fetch(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
            .await??;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut body)).await??;
    Ok(body)
}
