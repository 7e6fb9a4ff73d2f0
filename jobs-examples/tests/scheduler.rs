//! The periodic-job scheduler under tokio's paused clock: firing on
//! schedule, task changes while running, the missed-run policies, restarts,
//! exactly-once across schedulers, and schedulers inside workers (by hand and
//! from the registry's declared schedules).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use jobs::prelude::*;
// Registrations are built by hand below (schedules `#[job]` would reject at
// compile time), from the types generated code uses.
use jobs::__private::{Flow, HandlerFn, JobRegistration, ScheduleSpec};
use jobs::{Clock, MemoryLastRunStore, TaskInfo, TaskOutcome};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const CLOCK: Clock = Clock::tokio();

fn queue() -> MemoryJobQueue {
    MemoryJobQueue::builder().clock(CLOCK).build()
}

fn scheduler() -> JobScheduler {
    JobScheduler::builder().clock(CLOCK).build()
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

/// Lets every runnable task run until it waits again.
async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

/// Moves the paused clock just past `at` in one step, and lets the tasks react.
async fn advance_past(at: DateTime<Utc>) {
    advance_to(at, Duration::from_millis(5)).await;
}

/// Moves the paused clock to `late` past `at` in one step (a process that
/// slept through everything in between), and lets the tasks react.
async fn advance_to(at: DateTime<Utc>, late: Duration) {
    tokio::time::advance(CLOCK.until(at) + late).await;
    settle().await;
}

async fn pending(queue: &MemoryJobQueue) -> u64 {
    queue.counts().await.unwrap().pending
}

fn info(scheduler: &JobScheduler, name: &str) -> TaskInfo {
    scheduler.task(name).expect("the task is listed")
}

/// A scheduler running onto a queue in a spawned task.
struct Running {
    stop: oneshot::Sender<()>,
    handle: JoinHandle<jobs::Result<()>>,
}

fn start(scheduler: &JobScheduler, queue: &MemoryJobQueue) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let (scheduler, queue) = (scheduler.clone(), queue.clone());
    let handle = tokio::spawn(async move {
        scheduler
            .run(&queue, async {
                let _ = stopped.await;
            })
            .await
    });
    Running { stop, handle }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.handle.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn enqueues_each_occurrence_once_and_lists_the_task() {
    let queue = queue();
    let scheduler = scheduler();
    let every_minute = Schedule::every(minutes(1)).unwrap();
    let task = PeriodicTask::new(
        "tick",
        every_minute.clone(),
        Job::new("tick_job", json!({"n": 1})).priority(JobPriority::High),
    );
    scheduler.add(task.clone()).unwrap();
    let running = start(&scheduler, &queue);
    settle().await;
    assert!(scheduler.is_running());

    let occurrences = every_minute.upcoming(CLOCK.now(), 4);
    assert_eq!(info(&scheduler, "tick").next_run, Some(occurrences[0]));
    assert_eq!(pending(&queue).await, 0);

    for (i, at) in occurrences[..3].iter().enumerate() {
        advance_past(*at).await;
        assert_eq!(pending(&queue).await, i as u64 + 1, "after occurrence {i}");
    }

    let listed = info(&scheduler, "tick");
    assert_eq!(listed.job_name, "tick_job");
    assert_eq!(listed.run_count, 3);
    assert_eq!(listed.enqueued_count, 3);
    assert_eq!(listed.missed_count, 0);
    assert_eq!(listed.error_count, 0);
    assert_eq!(listed.last_run, Some(occurrences[2]));
    assert_eq!(listed.next_run, Some(occurrences[3]));
    assert_eq!(
        listed.last_outcome,
        Some(TaskOutcome::Enqueued(task.occurrence_id(occurrences[2])))
    );

    for at in &occurrences[..3] {
        let job = queue.get(task.occurrence_id(*at)).await.unwrap().unwrap();
        assert_eq!(job.name, "tick_job");
        assert_eq!(job.args, json!({"n": 1}));
        assert_eq!(job.priority, JobPriority::High);
        assert_eq!(job.metadata["periodic_task"], "tick");
        assert_eq!(
            job.metadata["occurrence"],
            at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        );
    }

    running.stop().await;
    assert!(!scheduler.is_running());
}

#[tokio::test(start_paused = true)]
async fn tasks_can_be_added_disabled_enabled_and_removed_while_running() {
    let queue = queue();
    let scheduler = scheduler();
    scheduler
        .add(PeriodicTask::new(
            "nightly",
            Schedule::daily_at(3, 0).unwrap(),
            Job::new("nightly", json!({})),
        ))
        .unwrap();
    let running = start(&scheduler, &queue);
    settle().await;

    // The scheduler sleeps towards the nightly run; a new task wakes it.
    let every_5s = Schedule::every(Duration::from_secs(5)).unwrap();
    scheduler
        .add(PeriodicTask::new(
            "fast",
            every_5s.clone(),
            Job::new("fast", json!({})),
        ))
        .unwrap();
    settle().await;
    advance_past(every_5s.next_after(CLOCK.now()).unwrap()).await;
    assert_eq!(pending(&queue).await, 1);

    // Disabled: listed, no next run, and nothing runs.
    assert!(scheduler.disable("fast"));
    let listed = info(&scheduler, "fast");
    assert!(!listed.enabled);
    assert_eq!(listed.next_run, None);
    tokio::time::advance(Duration::from_secs(30)).await;
    settle().await;
    assert_eq!(pending(&queue).await, 1);

    // Enabled again: runs from the next occurrence on; the disabled time is
    // not counted as missed.
    assert!(scheduler.enable("fast"));
    settle().await;
    let next = every_5s.next_after(CLOCK.now()).unwrap();
    assert_eq!(info(&scheduler, "fast").next_run, Some(next));
    advance_past(next).await;
    assert_eq!(pending(&queue).await, 2);
    assert_eq!(info(&scheduler, "fast").missed_count, 0);
    assert_eq!(info(&scheduler, "fast").run_count, 2);

    // Removed: gone from the list, and nothing runs.
    let removed = scheduler.remove("fast").unwrap();
    assert_eq!(removed.name, "fast");
    tokio::time::advance(Duration::from_secs(30)).await;
    settle().await;
    assert_eq!(pending(&queue).await, 2);
    assert!(scheduler.task("fast").is_none());
    let names: Vec<String> = scheduler.tasks().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["nightly"]);

    // Unknown names.
    assert!(!scheduler.enable("nope"));
    assert!(!scheduler.disable("nope"));
    assert!(scheduler.remove("nope").is_none());

    // A task added disabled is listed and does not run.
    scheduler
        .add(PeriodicTask::new("later", every_5s.clone(), Job::new("later", json!({}))).disabled())
        .unwrap();
    tokio::time::advance(Duration::from_secs(30)).await;
    settle().await;
    assert_eq!(pending(&queue).await, 2);
    assert!(!info(&scheduler, "later").enabled);

    running.stop().await;
}

#[test]
fn bad_tasks_are_rejected() {
    let scheduler = JobScheduler::new();
    let hourly = || Schedule::hourly();
    scheduler
        .add(PeriodicTask::new("a", hourly(), Job::new("a", json!({}))))
        .unwrap();
    let e = scheduler
        .add(PeriodicTask::new("a", hourly(), Job::new("a", json!({}))))
        .unwrap_err();
    assert!(e.to_string().contains("`a` already exists"), "{e}");
    let e = scheduler
        .add(PeriodicTask::new(
            "r",
            hourly(),
            Job::new("r", json!({})).every(Duration::from_secs(1)),
        ))
        .unwrap_err();
    assert!(e.to_string().contains("must not be recurring"), "{e}");
    let e = scheduler
        .add(PeriodicTask::new(
            "n",
            hourly(),
            Job::new("n", json!([1, 2])),
        ))
        .unwrap_err();
    assert!(e.to_string().contains("periodic task `n`"), "{e}");
    assert!(
        scheduler
            .add(PeriodicTask::new(" ", hourly(), Job::new("x", json!({}))))
            .is_err()
    );
    assert_eq!(scheduler.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_scheduler_runs_once_at_a_time() {
    let queue = queue();
    let scheduler = scheduler();
    let running = start(&scheduler, &queue);
    settle().await;
    let e = scheduler.run(&queue, async {}).await.unwrap_err();
    assert!(e.to_string().contains("already running"), "{e}");
    running.stop().await;
    // Stopped, it can run again.
    scheduler.run(&queue, async {}).await.unwrap();
}

/// A scheduler whose process sleeps through occurrences (`advance` jumps the
/// clock in one step, as after a suspended process).
async fn sleep_through_occurrences(policy: MissedRuns) -> (MemoryJobQueue, JobScheduler) {
    let queue = queue();
    let scheduler = scheduler();
    let hourly = Schedule::every(minutes(60)).unwrap();
    let task = PeriodicTask::new("hourly", hourly.clone(), Job::new("hourly", json!({})))
        .missed_runs(policy);
    scheduler.add(task.clone()).unwrap();
    let running = start(&scheduler, &queue);
    settle().await;
    let o = hourly.upcoming(CLOCK.now(), 6);
    let id = |i: usize| task.occurrence_id(o[i]);

    // Wakes 30 minutes after o[0]: late, past the one-minute grace period.
    advance_to(o[0], minutes(30)).await;
    let listed = info(&scheduler, "hourly");
    match policy {
        MissedRuns::RunOnce => {
            assert_eq!(pending(&queue).await, 1);
            assert!(queue.get(id(0)).await.unwrap().is_some());
            assert_eq!(listed.missed_count, 0);
            assert_eq!(listed.last_run, Some(o[0]));
        }
        MissedRuns::Skip => {
            assert_eq!(pending(&queue).await, 0);
            assert_eq!(listed.missed_count, 1);
            assert_eq!(listed.last_run, None);
        }
    }
    assert_eq!(listed.next_run, Some(o[1]));

    // Sleeps through o[1]..o[4], wakes 30 minutes after o[4]: never one job
    // per missed occurrence.
    advance_to(o[4], minutes(30)).await;
    let listed = info(&scheduler, "hourly");
    match policy {
        MissedRuns::RunOnce => {
            assert_eq!(pending(&queue).await, 2);
            assert!(queue.get(id(4)).await.unwrap().is_some(), "the latest runs");
            assert_eq!(listed.missed_count, 3);
            assert_eq!(listed.run_count, 2);
        }
        MissedRuns::Skip => {
            assert_eq!(pending(&queue).await, 0);
            assert_eq!(listed.missed_count, 5);
            assert_eq!(listed.run_count, 0);
        }
    }
    assert_eq!(listed.next_run, Some(o[5]));

    // Back on time.
    advance_past(o[5]).await;
    assert!(queue.get(id(5)).await.unwrap().is_some());
    running.stop().await;
    (queue, scheduler)
}

#[tokio::test(start_paused = true)]
async fn missed_runs_run_once() {
    let (queue, scheduler) = sleep_through_occurrences(MissedRuns::RunOnce).await;
    assert_eq!(pending(&queue).await, 3);
    assert_eq!(info(&scheduler, "hourly").run_count, 3);
}

#[tokio::test(start_paused = true)]
async fn missed_runs_skip() {
    let (queue, scheduler) = sleep_through_occurrences(MissedRuns::Skip).await;
    assert_eq!(pending(&queue).await, 1);
    assert_eq!(info(&scheduler, "hourly").run_count, 1);
}

#[tokio::test(start_paused = true)]
async fn occurrences_missed_with_the_latest_on_time_fold_into_one_run() {
    for policy in [MissedRuns::RunOnce, MissedRuns::Skip] {
        let queue = queue();
        let scheduler = scheduler();
        let every_minute = Schedule::every(minutes(1)).unwrap();
        scheduler
            .add(
                PeriodicTask::new("m", every_minute.clone(), Job::new("m", json!({})))
                    .missed_runs(policy),
            )
            .unwrap();
        let running = start(&scheduler, &queue);
        settle().await;
        let o = every_minute.upcoming(CLOCK.now(), 10);
        // Asleep from before o[0] to just after o[9]: ten occurrences due, the
        // latest on time. One job, for the latest, under either policy.
        advance_past(o[9]).await;
        assert_eq!(pending(&queue).await, 1, "{policy:?}");
        let listed = info(&scheduler, "m");
        assert_eq!(listed.last_run, Some(o[9]));
        assert_eq!(listed.missed_count, 9);
        running.stop().await;
    }
}

/// Runs a task, stops, stays down five hours, and starts a new scheduler
/// with the same task. Returns the queue, the new scheduler and the
/// occurrences.
async fn restart_after_downtime(
    policy: MissedRuns,
    store: Option<MemoryLastRunStore>,
) -> (MemoryJobQueue, JobScheduler, Vec<DateTime<Utc>>) {
    let queue = queue();
    let hourly = Schedule::every(minutes(60)).unwrap();
    let task = PeriodicTask::new("hourly", hourly.clone(), Job::new("hourly", json!({})))
        .missed_runs(policy);
    let new_scheduler = || {
        let builder = JobScheduler::builder().clock(CLOCK);
        match &store {
            Some(store) => builder.last_run_store(store.clone()).build(),
            None => builder.build(),
        }
    };

    let first = new_scheduler();
    first.add(task.clone()).unwrap();
    let running = start(&first, &queue);
    settle().await;
    let o = hourly.upcoming(CLOCK.now(), 8);
    advance_past(o[0]).await;
    assert_eq!(pending(&queue).await, 1);
    running.stop().await;

    // Down until 10 minutes after o[5].
    advance_to(o[5], minutes(10)).await;

    let second = new_scheduler();
    second.add(task.clone()).unwrap();
    let running = start(&second, &queue);
    settle().await;
    let snapshot = pending(&queue).await;
    running.stop().await;
    assert_eq!(pending(&queue).await, snapshot);
    (queue, second, o)
}

#[tokio::test(start_paused = true)]
async fn after_a_restart_with_a_store_missed_runs_run_once() {
    let store = MemoryLastRunStore::new();
    let (queue, scheduler, o) = restart_after_downtime(MissedRuns::RunOnce, Some(store)).await;
    assert_eq!(pending(&queue).await, 2);
    let task = PeriodicTask::new("hourly", Schedule::hourly(), Job::new("x", json!({})));
    assert!(queue.get(task.occurrence_id(o[5])).await.unwrap().is_some());
    let listed = info(&scheduler, "hourly");
    assert_eq!(listed.last_run, Some(o[5]));
    assert_eq!(listed.missed_count, 4);
    assert_eq!(listed.next_run, Some(o[6]));
}

#[tokio::test(start_paused = true)]
async fn after_a_restart_with_a_store_missed_runs_are_skipped() {
    let store = MemoryLastRunStore::new();
    let (queue, scheduler, o) = restart_after_downtime(MissedRuns::Skip, Some(store)).await;
    assert_eq!(pending(&queue).await, 1);
    let listed = info(&scheduler, "hourly");
    assert_eq!(listed.missed_count, 5);
    assert_eq!(listed.next_run, Some(o[6]));
}

#[tokio::test(start_paused = true)]
async fn after_a_restart_without_a_store_the_start_is_the_reference() {
    for policy in [MissedRuns::RunOnce, MissedRuns::Skip] {
        let (queue, scheduler, o) = restart_after_downtime(policy, None).await;
        assert_eq!(pending(&queue).await, 1, "{policy:?}");
        let listed = info(&scheduler, "hourly");
        assert_eq!(listed.missed_count, 0);
        assert_eq!(listed.last_run, None);
        assert_eq!(listed.next_run, Some(o[6]));
    }
}

#[tokio::test(start_paused = true)]
async fn a_scheduler_run_again_catches_up_from_its_own_last_run() {
    let queue = queue();
    let scheduler = scheduler();
    let hourly = Schedule::every(minutes(60)).unwrap();
    scheduler
        .add(PeriodicTask::new(
            "h",
            hourly.clone(),
            Job::new("h", json!({})),
        ))
        .unwrap();
    let running = start(&scheduler, &queue);
    settle().await;
    let o = hourly.upcoming(CLOCK.now(), 4);
    advance_past(o[0]).await;
    running.stop().await;
    advance_to(o[2], minutes(10)).await;
    let running = start(&scheduler, &queue);
    settle().await;
    assert_eq!(pending(&queue).await, 2);
    assert_eq!(info(&scheduler, "h").last_run, Some(o[2]));
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn two_schedulers_on_one_queue_enqueue_each_occurrence_once() {
    let queue = queue();
    let every_minute = Schedule::every(minutes(1)).unwrap();
    let task = PeriodicTask::new(
        "report",
        every_minute.clone(),
        Job::new("report", json!({})),
    );
    let (a, b) = (scheduler(), scheduler());
    a.add(task.clone()).unwrap();
    b.add(task.clone()).unwrap();
    let (run_a, run_b) = (start(&a, &queue), start(&b, &queue));
    settle().await;

    let occurrences = every_minute.upcoming(CLOCK.now(), 5);
    for (i, at) in occurrences.iter().enumerate() {
        advance_past(*at).await;
        assert_eq!(pending(&queue).await, i as u64 + 1);
        let id = task.occurrence_id(*at);
        let outcomes = [
            info(&a, "report").last_outcome.unwrap(),
            info(&b, "report").last_outcome.unwrap(),
        ];
        assert!(
            outcomes.contains(&TaskOutcome::Enqueued(id))
                && outcomes.contains(&TaskOutcome::Duplicate(id)),
            "{outcomes:?}"
        );
    }
    let (ia, ib) = (info(&a, "report"), info(&b, "report"));
    assert_eq!(ia.enqueued_count + ib.enqueued_count, 5);
    assert_eq!((ia.run_count, ib.run_count), (5, 5));
    assert_eq!((ia.error_count, ib.error_count), (0, 0));
    run_a.stop().await;
    run_b.stop().await;
}

/// A target that fails with a backend error a number of times first.
#[derive(Clone)]
struct Flaky {
    failures: Arc<AtomicUsize>,
    queue: MemoryJobQueue,
}

impl Enqueue for Flaky {
    async fn push(&self, job: Job) -> jobs::Result<jobs::Enqueued> {
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(jobs::Error::backend("connection refused"));
        }
        self.queue.push(job).await
    }

    async fn push_many(&self, jobs: Vec<Job>) -> jobs::Result<Vec<jobs::Enqueued>> {
        self.queue.push_many(jobs).await
    }
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_queue_is_retried_with_backoff() {
    let queue = queue();
    let target = Flaky {
        failures: Arc::new(AtomicUsize::new(2)),
        queue: queue.clone(),
    };
    let scheduler = scheduler();
    let every_10m = Schedule::every(minutes(10)).unwrap();
    let task = PeriodicTask::new("t", every_10m.clone(), Job::new("t", json!({})));
    scheduler.add(task.clone()).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn({
        let scheduler = scheduler.clone();
        async move {
            scheduler
                .run(&target, async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    settle().await;
    let at = every_10m.next_after(CLOCK.now()).unwrap();

    advance_past(at).await;
    let listed = info(&scheduler, "t");
    assert_eq!(listed.error_count, 1);
    assert!(
        matches!(&listed.last_outcome, Some(TaskOutcome::Error(e)) if e.contains("connection refused"))
    );
    assert_eq!(pending(&queue).await, 0);

    // Tried again after 1 s, then 2 s; the same occurrence, so the same id.
    tokio::time::advance(Duration::from_millis(1010)).await;
    settle().await;
    assert_eq!(info(&scheduler, "t").error_count, 2);
    tokio::time::advance(Duration::from_millis(2010)).await;
    settle().await;
    let listed = info(&scheduler, "t");
    assert_eq!(
        listed.last_outcome,
        Some(TaskOutcome::Enqueued(task.occurrence_id(at)))
    );
    assert_eq!((listed.run_count, listed.error_count), (1, 2));
    assert_eq!(pending(&queue).await, 1);

    let _ = stop.send(());
    running.await.unwrap().unwrap();
}

/// Sends every job it runs to a channel.
struct Recorder(mpsc::UnboundedSender<Job>);

impl JobProcessor for Recorder {
    async fn process(&self, job: &Job) -> JobResult {
        let _ = self.0.send(job.clone());
        JobResult::success(json!({"ok": true}))
    }
}

#[tokio::test(start_paused = true)]
async fn a_worker_runs_its_scheduler_n_times() {
    let queue = queue();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let every_30s = Schedule::every(Duration::from_secs(30)).unwrap();
    let task = PeriodicTask::new("beat", every_30s.clone(), Job::new("beat", json!({})));
    let scheduler = scheduler();
    scheduler.add(task.clone()).unwrap();
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(Recorder(tx))
        .clock(CLOCK)
        .scheduler(scheduler.clone())
        .build()
        .unwrap();
    let running = tokio::spawn(worker.clone().run_owned());
    settle().await;
    assert!(scheduler.is_running());

    for at in every_30s.upcoming(CLOCK.now(), 5) {
        advance_past(at).await;
        let job = rx.recv().await.unwrap();
        assert_eq!(job.id, task.occurrence_id(at));
    }
    settle().await;
    assert!(rx.try_recv().is_err(), "no extra runs");
    assert_eq!(worker.worker_stats().jobs_processed, 5);
    assert_eq!(info(worker.scheduler(), "beat").run_count, 5);

    worker.stop().await;
    running.await.unwrap().unwrap();
    assert!(
        !scheduler.is_running(),
        "the scheduler stops with the worker"
    );
}

#[tokio::test(start_paused = true)]
async fn two_workers_with_the_same_task_run_each_occurrence_once() {
    let queue = queue();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let every_minute = Schedule::every(minutes(1)).unwrap();
    let task = PeriodicTask::new("sync", every_minute.clone(), Job::new("sync", json!({})));
    let workers: Vec<BackgroundJobWorker> = (0..2)
        .map(|i| {
            let worker = BackgroundJobWorker::builder()
                .id(format!("worker-{i}"))
                .queue(queue.clone())
                .processor(Recorder(tx.clone()))
                .clock(CLOCK)
                .build()
                .unwrap();
            worker.scheduler().add(task.clone()).unwrap();
            worker
        })
        .collect();
    let runs: Vec<_> = workers
        .iter()
        .map(|w| tokio::spawn(w.clone().run_owned()))
        .collect();
    settle().await;

    let occurrences = every_minute.upcoming(CLOCK.now(), 4);
    for at in &occurrences {
        advance_past(*at).await;
        assert_eq!(rx.recv().await.unwrap().id, task.occurrence_id(*at));
    }
    settle().await;
    assert!(rx.try_recv().is_err(), "each occurrence ran once");
    let processed: u64 = workers
        .iter()
        .map(|w| w.worker_stats().jobs_processed)
        .sum();
    assert_eq!(processed, 4);

    for (worker, run) in workers.iter().zip(runs) {
        worker.stop().await;
        run.await.unwrap().unwrap();
    }
}

// ---- Schedules declared on `#[job]` functions, through the registry ----

type BoxedResult<'a> = Pin<Box<dyn Future<Output = JobResult> + Send + 'a>>;

static BEATS: AtomicUsize = AtomicUsize::new(0);

fn beat<'a>(_job: &'a Job, _cx: &'a JobContext) -> BoxedResult<'a> {
    Box::pin(async {
        BEATS.fetch_add(1, Ordering::SeqCst);
        JobResult::success(json!(null))
    })
}

fn noop<'a>(_job: &'a Job, _cx: &'a JobContext) -> BoxedResult<'a> {
    Box::pin(async { JobResult::success(json!(null)) })
}

const fn registration(
    name: &'static str,
    schedule: Option<ScheduleSpec>,
    handler: HandlerFn,
) -> JobRegistration {
    JobRegistration {
        name,
        priority: JobPriority::High,
        max_retries: Some(0),
        timeout: None,
        queue: None,
        flow: Flow::NONE,
        schedule,
        data: &[],
        handler,
        function: name,
        file: file!(),
        line: 1,
    }
}

static BEAT: JobRegistration = registration(
    "beat",
    Some(ScheduleSpec::Every(Duration::from_secs(60))),
    beat,
);
static PLAIN: JobRegistration = registration("plain", None, noop);
static BAD_CRON: JobRegistration = registration(
    "nightly",
    Some(ScheduleSpec::Cron {
        expression: "0 25 * * *",
        timezone: None,
    }),
    noop,
);
static BAD_ZONE: JobRegistration = registration(
    "berlin",
    Some(ScheduleSpec::Cron {
        expression: "0 2 * * *",
        timezone: Some("Europe/Berlinn"),
    }),
    noop,
);

#[test]
fn the_registry_declares_its_schedules_as_periodic_tasks() {
    let registry = Registry::from_registrations([&BEAT, &PLAIN]).unwrap();
    let tasks = registry.periodic_tasks().unwrap();
    assert_eq!(tasks.len(), 1);
    let task = &tasks[0];
    assert_eq!(task.name, "beat");
    assert_eq!(task.schedule, Schedule::every(minutes(1)).unwrap());
    assert_eq!(task.job.name, "beat");
    assert_eq!(task.job.priority, JobPriority::High);
    assert_eq!(task.job.max_retries, 0);
    assert_eq!(task.job.args, serde_json::Value::Null);

    let e = Registry::from_registrations([&BEAT, &BAD_CRON, &BAD_ZONE])
        .unwrap()
        .periodic_tasks()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("job `nightly`") && e.contains("0 25 * * *"),
        "{e}"
    );
    assert!(
        e.contains("job `berlin`") && e.contains("Europe/Berlinn"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_worker_runs_the_schedules_of_its_registry() {
    let queue = queue();
    let worker = BackgroundJobWorker::builder()
        .queue(queue.clone())
        .processor(Registry::from_registrations([&BEAT, &PLAIN]).unwrap())
        .clock(CLOCK)
        .build()
        .unwrap();
    let running = tokio::spawn(worker.clone().run_owned());
    settle().await;
    let names: Vec<String> = worker
        .scheduler()
        .tasks()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["beat"]);

    let before = BEATS.load(Ordering::SeqCst);
    let every_minute = Schedule::every(minutes(1)).unwrap();
    for (i, at) in every_minute
        .upcoming(CLOCK.now(), 3)
        .into_iter()
        .enumerate()
    {
        advance_past(at).await;
        assert_eq!(BEATS.load(Ordering::SeqCst) - before, i + 1);
    }
    worker.stop().await;
    running.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_task_added_by_hand_overrides_the_declared_schedule() {
    let worker = BackgroundJobWorker::builder()
        .queue(queue())
        .processor(Registry::from_registrations([&BEAT]).unwrap())
        .clock(CLOCK)
        .build()
        .unwrap();
    let hourly = Schedule::hourly();
    worker
        .scheduler()
        .add(PeriodicTask::new(
            "beat",
            hourly.clone(),
            BEAT.new_job(json!(null)),
        ))
        .unwrap();
    let running = tokio::spawn(worker.clone().run_owned());
    settle().await;
    assert_eq!(info(worker.scheduler(), "beat").schedule, hourly);
    worker.stop().await;
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_bad_declared_schedule_is_an_error_from_run_naming_the_job() {
    let worker = BackgroundJobWorker::builder()
        .processor(Registry::from_registrations([&BEAT, &BAD_CRON]).unwrap())
        .build()
        .unwrap();
    let e = worker.run().await.unwrap_err().to_string();
    assert!(
        e.contains("job `nightly`") && e.contains("`0 25 * * *`"),
        "{e}"
    );
    assert_eq!(worker.state(), jobs::WorkerState::Stopped);
}

// ---- Periodic tasks declared by the registry's fallback processor ----

/// A class-based processor, used as a registry's fallback, that declares a
/// periodic task of its own and counts the runs of its job.
#[derive(Clone, Default)]
struct Housekeeping {
    sweeps: Arc<AtomicUsize>,
}

impl JobProcessor for Housekeeping {
    async fn process(&self, job: &Job) -> JobResult {
        match &*job.name {
            "sweep" => {
                self.sweeps.fetch_add(1, Ordering::SeqCst);
                JobResult::success(json!(null))
            }
            other => JobResult::failure(JobError::permanent(format!(
                "Housekeeping cannot run {other}"
            ))),
        }
    }

    fn periodic_tasks(&self) -> Result<Vec<PeriodicTask>, jobs::Error> {
        Ok(vec![PeriodicTask::new(
            "sweep",
            Schedule::every(minutes(1))?,
            Job::new("sweep", json!({})),
        )])
    }
}

/// A fallback whose declared tasks are given by hand (or fail).
struct Declares(Result<Vec<PeriodicTask>, jobs::Error>);

impl JobProcessor for Declares {
    async fn process(&self, _job: &Job) -> JobResult {
        JobResult::success(json!(null))
    }

    fn periodic_tasks(&self) -> Result<Vec<PeriodicTask>, jobs::Error> {
        self.0.clone()
    }
}

#[test]
fn the_registry_declares_the_periodic_tasks_of_its_fallback_too() {
    let registry = Registry::from_registrations([&BEAT, &PLAIN])
        .unwrap()
        .fallback(Housekeeping::default());
    let tasks = registry.periodic_tasks().unwrap();
    let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["beat", "sweep"]);
    assert_eq!(tasks[1].schedule, Schedule::every(minutes(1)).unwrap());
    assert_eq!(tasks[1].job.name, "sweep");

    // Through the `JobProcessor` trait (what a worker calls), the same.
    let through_trait = JobProcessor::periodic_tasks(&registry).unwrap();
    assert_eq!(through_trait.len(), 2);
}

#[test]
fn a_fallback_task_named_like_a_declared_schedule_is_an_error() {
    let clash = Declares(Ok(vec![PeriodicTask::new(
        "beat",
        Schedule::hourly(),
        Job::new("beat", json!({})),
    )]));
    let e = Registry::from_registrations([&BEAT])
        .unwrap()
        .fallback(clash)
        .periodic_tasks()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("fallback processor declares a periodic task `beat`") && e.contains("`beat` at"),
        "{e}"
    );

    // A fallback task named like a `#[job]` function without a schedule is
    // fine: that function declares no task.
    let plain = Declares(Ok(vec![PeriodicTask::new(
        "plain",
        Schedule::hourly(),
        Job::new("plain", json!({})),
    )]));
    let tasks = Registry::from_registrations([&PLAIN])
        .unwrap()
        .fallback(plain)
        .periodic_tasks()
        .unwrap();
    assert_eq!(tasks.len(), 1);
}

#[test]
fn a_fallback_whose_periodic_tasks_fail_fails_the_registry_with_its_error() {
    let broken = || {
        Declares(Err(jobs::Error::InvalidArgument(
            "no sweep interval configured".into(),
        )))
    };
    // Alone: its error, as it is.
    let e = Registry::empty()
        .fallback(broken())
        .periodic_tasks()
        .unwrap_err();
    assert!(matches!(e, jobs::Error::InvalidArgument(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "invalid argument: no sweep interval configured"
    );

    // Beside a bad schedule of the registry's own: both are reported.
    let e = Registry::from_registrations([&BAD_CRON])
        .unwrap()
        .fallback(broken())
        .periodic_tasks()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("job `nightly`") && e.contains("no sweep interval configured"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_worker_runs_the_periodic_tasks_of_its_registrys_fallback() {
    let housekeeping = Housekeeping::default();
    let worker = BackgroundJobWorker::builder()
        .queue(queue())
        .processor(
            Registry::from_registrations([&PLAIN])
                .unwrap()
                .fallback(housekeeping.clone()),
        )
        .clock(CLOCK)
        .build()
        .unwrap();
    let running = tokio::spawn(worker.clone().run_owned());
    settle().await;
    let names: Vec<String> = worker
        .scheduler()
        .tasks()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["sweep"]);

    let every_minute = Schedule::every(minutes(1)).unwrap();
    for (i, at) in every_minute
        .upcoming(CLOCK.now(), 3)
        .into_iter()
        .enumerate()
    {
        advance_past(at).await;
        assert_eq!(housekeeping.sweeps.load(Ordering::SeqCst), i + 1);
    }
    let sweep = info(worker.scheduler(), "sweep");
    assert_eq!((sweep.run_count, sweep.enqueued_count), (3, 3));
    worker.stop().await;
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_bad_fallback_task_list_is_an_error_from_run() {
    let worker = BackgroundJobWorker::builder()
        .processor(
            Registry::empty().fallback(Declares(Err(jobs::Error::InvalidArgument(
                "no sweep interval configured".into(),
            )))),
        )
        .build()
        .unwrap();
    // `run` returns at once; the timeout only turns a worker that started by
    // mistake into a failure.
    let e = tokio::time::timeout(Duration::from_secs(10), worker.run())
        .await
        .expect("the worker should refuse to start, not run")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no sweep interval configured"), "{e}");
    assert_eq!(worker.state(), jobs::WorkerState::Stopped);
}
