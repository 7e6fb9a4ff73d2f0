//! The dashboard in a real browser: headless Chromium driven through
//! chromedriver (WebDriver), against the dashboard served on loopback over
//! a `MemoryJobQueue` with a real worker running its jobs.
//!
//! Needs `/usr/bin/chromedriver` (Debian's `chromium-driver`); without it
//! the test prints that it skips, unless `JOBS_REQUIRE_BROWSER` is set, in
//! which case it fails. Screenshots go to `target/screenshots/`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use jobs::{
    BackgroundJobWorker, Enqueue, Job, JobError, JobId, JobProcessor, JobResult, JobStatus,
    MemoryJobQueue, QueueAdmin,
};
use jobs_testkit::eventually;
use serde_json::{Value, json};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const PAYLOAD: &str = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">";
const PATIENCE: Duration = Duration::from_secs(30);

/// The chromedriver this test started, killed (by its pid) when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver on a free loopback port and waits until it
    /// answers.
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver did not start");
        let driver = Driver { child, port };
        eventually("chromedriver to answer", PATIENCE, || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        driver
    }

    async fn session(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                         "--disable-dev-shm-usage", "--no-first-run"],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("no WebDriver session")
    }
}

/// Whether the browser is there; without it, the test skips (or fails
/// under `JOBS_REQUIRE_BROWSER`).
fn browser_available() -> bool {
    if Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    if std::env::var_os("JOBS_REQUIRE_BROWSER").is_some() {
        panic!(
            "JOBS_REQUIRE_BROWSER is set but {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)"
        );
    }
    eprintln!("skipping: no {CHROMEDRIVER} (set JOBS_REQUIRE_BROWSER=1 to make this a failure)");
    false
}

/// The handlers of the test's jobs: `flaky` fails its first run and
/// succeeds after, `xss` fails with the payload as its error, any other
/// succeeds.
#[derive(Default)]
struct Handlers {
    seen: Mutex<HashSet<JobId>>,
}

impl JobProcessor for Handlers {
    async fn process(&self, job: &Job) -> JobResult {
        match job.name.as_ref() {
            "flaky" => {
                let first = self.seen.lock().unwrap().insert(job.id);
                if first {
                    JobResult::failure(JobError::permanent("upstream answered 502 Bad Gateway"))
                } else {
                    JobResult::success(json!({"charged": true}))
                }
            }
            "xss" => JobResult::failure(JobError::permanent(PAYLOAD)),
            _ => JobResult::success(json!({"ok": true})),
        }
    }
}

fn screenshots() -> PathBuf {
    // The target directory: CARGO_TARGET_TMPDIR is `<target>/tmp`.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn save_screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let path = screenshots().join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

/// The rendered text of the element `css`, read in one script call (the
/// live region may be swapped between a find and a read); waits for the
/// element while a page is still loading.
async fn text(client: &Client, css: &str) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let found = client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
                vec![Value::from(css)],
            )
            .await
            .unwrap();
        if let Value::String(text) = found {
            return text.trim().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {css} on {}",
            client.current_url().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the browser is at a URL ending with `want`.
async fn arrive(client: &Client, want: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let url = client.current_url().await.unwrap();
        if url.as_str().ends_with(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "at {url}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the element `css` (after a click, on the page it led to)
/// reads something containing `needle`.
async fn see(client: &Client, css: &str, needle: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let got = text(client, css).await;
        if got.contains(needle) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{css} reads {got:?}, without {needle:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reloads `url` until the element `css` reads `want`.
async fn reload_until(client: &Client, url: &str, css: &str, want: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        client.goto(url).await.unwrap();
        let got = text(client, css).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{css} on {url} still reads {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_final(queue: &MemoryJobQueue, id: JobId) -> JobStatus {
    tokio::time::timeout(PATIENCE, queue.wait_for(id))
        .await
        .expect("the job did not finish in time")
        .unwrap()
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let queue = MemoryJobQueue::new();
    let worker = BackgroundJobWorker::builder()
        .id("web-test-worker")
        .queue(queue.clone())
        .processor(Handlers::default())
        .queues([("default", 4), ("mailers", 2)])
        .build()
        .unwrap();
    let running = tokio::spawn(worker.clone().run_owned());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let dashboard = jobs_web::Dashboard::new(queue.clone()).title("Shop jobs");
    let server = tokio::spawn(jobs_web::serve_with_shutdown(dashboard, listener, async {
        let _ = stopped.await;
    }));

    // Some history: jobs that completed, one that fails its first run, the
    // payload job, a mailer.
    let mut done = Vec::new();
    for (i, name) in [
        "send_email",
        "resize_image",
        "sync_inventory",
        "send_email",
        "report",
    ]
    .iter()
    .cycle()
    .take(24)
    .enumerate()
    {
        done.push(
            queue
                .enqueue(Job::new(*name, json!({ "n": i })))
                .await
                .unwrap(),
        );
    }
    done.push(
        queue
            .enqueue(Job::new("welcome_email", json!({"to": "ada@example.com"})).queue("mailers"))
            .await
            .unwrap(),
    );
    let flaky = queue
        .enqueue(
            Job::new("flaky", json!({"order": 1042, "amount_cents": 4999}))
                .max_retries(0)
                .tag("billing"),
        )
        .await
        .unwrap();
    let xss = queue
        .enqueue(Job::new("xss", json!({ "html": PAYLOAD })).max_retries(0))
        .await
        .unwrap();
    for id in &done {
        assert_eq!(wait_final(&queue, *id).await, JobStatus::Completed);
    }
    assert_eq!(wait_final(&queue, flaky).await, JobStatus::Failed);
    assert_eq!(wait_final(&queue, xss).await, JobStatus::Failed);
    // Work that waits, so the overview shows some of each.
    for i in 0..3 {
        queue
            .enqueue(
                Job::new("nightly_report", json!({ "day": i })).delay(Duration::from_secs(3600)),
            )
            .await
            .unwrap();
    }

    let driver = Driver::start().await;
    let client = driver.session().await;
    let base = format!("http://{addr}");
    // The scenarios run in a task of their own so that a failing one still
    // lets the browser session close below.
    let outcome = tokio::spawn(scenarios(client.clone(), queue.clone(), base, flaky, xss)).await;
    let _ = client.close().await;
    drop(driver);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    worker.stop().await;
    running.await.unwrap().unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn scenarios(client: Client, queue: MemoryJobQueue, base: String, flaky: JobId, xss: JobId) {
    // The overview, with the failed count linking to the failed list.
    client.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(client.title().await.unwrap(), "Overview · Shop jobs");
    assert_eq!(text(&client, "a[data-count=failed] .count").await, "2");
    assert_eq!(text(&client, "a[data-count=completed] .count").await, "25");
    assert!(text(&client, "#workers").await.contains("web-test-worker"));
    save_screenshot(&client, "dashboard-overview.png").await;

    // The numbers refresh in place: a job enqueued now shows up without a
    // reload (the script fetches the live fragment every 5 s).
    let before = text(&client, "a[data-count=pending] .count").await;
    queue
        .enqueue(Job::new("nightly_report", json!({"day": 9})).delay(Duration::from_secs(3600)))
        .await
        .unwrap();
    let want = (before.parse::<u64>().unwrap() + 1).to_string();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = text(&client, "a[data-count=pending] .count").await;
        if now == want {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the overview still shows {now} pending, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let refreshed = client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("[data-live]"))
        .await
        .unwrap();
    assert!(refreshed.attr("data-refreshed").await.unwrap().is_some());

    // Failed count → failed list → the flaky job's page.
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("a[data-count=failed]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(&client, "/jobs?status=failed").await;
    save_screenshot(&client, "dashboard-failed.png").await;
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::XPath(
            "//tr[td[@class='name' and text()='flaky']]//a[@class='id']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let job_url = format!("{base}/jobs/{flaky}");
    arrive(&client, &job_url).await;
    assert_eq!(text(&client, "[data-field=status]").await, "failed");
    assert!(
        text(&client, "#errors")
            .await
            .contains("upstream answered 502 Bad Gateway")
    );
    save_screenshot(&client, "dashboard-job.png").await;

    // Retry: the worker runs it again, and this time it completes.
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("form[action$='/retry'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    see(&client, ".flash", "waiting to run again").await;
    reload_until(&client, &job_url, "[data-field=status]", "completed").await;
    assert!(
        text(&client, "[data-field=result]")
            .await
            .contains("\"charged\": true")
    );

    // Pause "mailers" from the overview: its new jobs wait while the
    // default queue's run; Resume, and they run too.
    client.goto(&format!("{base}/")).await.unwrap();
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(
            "tr[data-queue=mailers] form[action$='/pause'] button",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    see(&client, ".flash", "The queue is paused").await;
    see(&client, "tr[data-queue=mailers] .badge", "paused").await;
    let mut mailers = Vec::new();
    let mut others = Vec::new();
    for i in 0..3 {
        mailers.push(
            queue
                .enqueue(Job::new("welcome_email", json!({ "n": i })).queue("mailers"))
                .await
                .unwrap(),
        );
        others.push(
            queue
                .enqueue(Job::new("send_email", json!({ "n": i })))
                .await
                .unwrap(),
        );
    }
    for id in &others {
        assert_eq!(wait_final(&queue, *id).await, JobStatus::Completed);
    }
    for id in &mailers {
        let job = queue.get(*id).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Pending, "a paused queue's job ran");
    }
    reload_until(
        &client,
        &format!("{base}/"),
        "tr[data-queue=mailers] td.num",
        "3",
    )
    .await;
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(
            "tr[data-queue=mailers] form[action$='/resume'] button",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    see(&client, ".flash", "The queue is resumed").await;
    for id in &mailers {
        assert_eq!(wait_final(&queue, *id).await, JobStatus::Completed);
    }

    // The payload job's page: the text is there, and nothing ran.
    client.goto(&format!("{base}/jobs/{xss}")).await.unwrap();
    // In the arguments as JSON (its quotes escaped), in the error as it is.
    let args = text(&client, "[data-field=args]").await;
    assert!(args.contains("<script>window.__pwned=1</script>"), "{args}");
    assert!(text(&client, "#errors").await.contains(PAYLOAD));
    let pwned = client
        .execute("return typeof window.__pwned;", vec![])
        .await
        .unwrap();
    assert_eq!(pwned, Value::from("undefined"));

    // A POST from the page's own script but without the form token: 403,
    // and the job stays as it was. The cookie alone is not enough.
    let status = |body: &'static str| {
        let client = client.clone();
        let url = format!("{base}/jobs/{xss}/retry");
        async move {
            client
                .execute_async(
                    "const done = arguments[arguments.length - 1];
                     fetch(arguments[0], {method: 'POST', body: arguments[1],
                       headers: {'Content-Type': 'application/x-www-form-urlencoded'}})
                       .then(r => done(r.status), e => done(String(e)));",
                    vec![Value::from(url), Value::from(body)],
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(status("").await, Value::from(403));
    assert_eq!(status("csrf=0123456789abcdef").await, Value::from(403));
    assert_eq!(
        queue.get(xss).await.unwrap().unwrap().status,
        JobStatus::Failed
    );

    // A workflow the worker ran, named with the payload: its page counts
    // the steps and shows the names as text; the last step's job page
    // links back to it.
    let mut flow = jobs::workflow::Workflow::new(PAYLOAD);
    flow.step("fetch", Job::new("fetch", json!({})), &[]);
    let last = flow.step(PAYLOAD, Job::new("summarise", json!({})), &["fetch"]);
    let flow = flow.enqueue(&queue).await.unwrap();
    assert_eq!(wait_final(&queue, last.id()).await, JobStatus::Completed);
    let flow_url = format!("{base}/workflows/{flow}");
    client.goto(&flow_url).await.unwrap();
    assert_eq!(text(&client, "[data-count=completed] .count").await, "2");
    assert_eq!(text(&client, "[data-count=pending] .count").await, "0");
    assert!(text(&client, "h1").await.contains(PAYLOAD));
    save_screenshot(&client, "dashboard-workflow.png").await;
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("table.steps tbody tr:last-child a.id"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(&client, &format!("/jobs/{}", last.id())).await;
    let section = text(&client, "#workflow").await;
    save_screenshot(&client, "dashboard-workflow-step.png").await;
    assert!(section.contains(PAYLOAD), "{section}");
    assert!(
        section.contains("fetch") && section.contains("completed"),
        "{section}"
    );
    client
        .find(Locator::Css("a[data-field=workflow]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(&client, &format!("/workflows/{flow}")).await;
    let pwned = client
        .execute("return typeof window.__pwned;", vec![])
        .await
        .unwrap();
    assert_eq!(pwned, Value::from("undefined"));
}
