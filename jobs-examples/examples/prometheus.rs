//! Prometheus metrics of a worker: `metrics-exporter-prometheus` installed
//! as the recorder, serving `/metrics` on 127.0.0.1. A few jobs complete,
//! one retries and one fails; the example then reads its own `/metrics`
//! page, prints the `jobs_*` lines, and exits.
//!
//! Run: `cargo run --example prometheus` (exits by itself), or
//! `cargo run --example prometheus -- --serve` to keep serving
//! `http://127.0.0.1:9898/metrics` with a job enqueued every second, until
//! Ctrl-C. `--addr 127.0.0.1:PORT` picks another port.

use std::net::SocketAddr;
use std::time::Duration;

use jobs::prelude::*;
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[job(retries = 2)]
async fn resize(width: u32) -> Result<u32, JobError> {
    tokio::time::sleep(Duration::from_millis(u64::from(width % 50))).await;
    Ok(width / 2)
}

#[job(retries = 1, name = "flaky_upload")]
async fn upload(cx: JobContext) -> Result<(), JobError> {
    if cx.attempt() == 1 {
        return Err(JobError::retry_after(
            "storage busy",
            Duration::from_millis(100),
        ));
    }
    Ok(())
}

#[job(name = "charge_card")]
async fn charge(amount: i64) -> Result<(), JobError> {
    Err(JobError::permanent(format!("card declined for {amount}")))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let serve = args.iter().any(|a| a == "--serve");
    let addr: SocketAddr = match args.iter().position(|a| a == "--addr") {
        Some(i) => args.get(i + 1).ok_or("--addr needs an address")?.parse()?,
        None => "127.0.0.1:9898".parse()?,
    };
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not a loopback address").into());
    }

    // The recorder first: the worker's handles are resolved with it.
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()?;
    println!("serving http://{addr}/metrics");

    let worker = BackgroundJobWorker::builder()
        .metrics_interval(Some(Duration::from_secs(1)))
        .build()?;
    let running = tokio::spawn(worker.clone().run_owned());

    let mut ids = Vec::new();
    for width in [640, 800, 1024, 1920] {
        ids.push(resize::enqueue(&worker, width).await?);
    }
    ids.push(upload::enqueue(&worker).await?);
    ids.push(charge::enqueue(&worker, 4200).await?);
    for id in ids {
        let job = worker.wait_for(id).await?;
        println!("{} {:?}", job.name, job.status);
    }

    if serve {
        println!("a resize job every second; Ctrl-C to stop");
        let mut every = tokio::time::interval(Duration::from_secs(1));
        let mut width = 0;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = every.tick() => {
                    width += 1;
                    resize::enqueue(&worker, width).await?;
                }
            }
        }
    } else {
        // Let the worker's gauges refresh once after the jobs ended.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let page = scrape(addr).await?;
        println!("\n--- GET /metrics (jobs_* lines) ---");
        for line in page.lines().filter(|l| l.starts_with("jobs_")) {
            println!("{line}");
        }
    }

    worker.stop().await;
    running.await??;
    Ok(())
}

/// A plain HTTP/1.0 GET of `/metrics`, as Prometheus would scrape it.
async fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
            .await??;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut body)).await??;
    Ok(body)
}
