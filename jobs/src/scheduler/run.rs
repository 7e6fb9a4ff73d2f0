//! The loop behind [`JobScheduler::run`]: set each task against its last
//! run, find the occurrences due, fold or skip missed ones by the task's
//! [`MissedRuns`] policy, enqueue, and record how that went (retrying a
//! transient failure with backoff).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::JobScheduler;
use super::state::{Entry, FIRST_RETRY_DELAY, MAX_RETRY_DELAY};
use super::task::{MissedRuns, TaskOutcome};
use crate::error::{Error, Result};
use crate::job::{Job, JobId};
use crate::queue::Enqueue;

/// The longest the scheduler sleeps before it looks at the clock again, so a
/// system clock that jumps (suspend, NTP) is noticed within this time.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// One occurrence to enqueue.
struct Firing {
    name: String,
    generation: u64,
    occurrence: DateTime<Utc>,
    job: Job,
}

impl JobScheduler {
    /// Enqueues each task's occurrences onto `target` as they come due, until
    /// `stop` completes (pass `token.cancelled()` of a cancellation token, a
    /// `ctrl_c()` future, a channel's receive...). Returns an error only if
    /// this scheduler is already running.
    ///
    /// ```
    /// use std::time::Duration;
    /// use jobs::prelude::*;
    /// use serde_json::json;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), jobs::Error> {
    /// tokio::time::pause();
    /// let scheduler = JobScheduler::builder().clock(jobs::Clock::tokio()).build();
    /// scheduler.add(PeriodicTask::new("tick", Schedule::every(Duration::from_secs(10))?, Job::new("tick", json!({}))))?;
    /// let queue = MemoryJobQueue::new();
    /// // Stops after 35 s: three or four occurrences, depending on where the
    /// // 10-second grid falls.
    /// scheduler.run(&queue, tokio::time::sleep(Duration::from_secs(35))).await?;
    /// let runs = scheduler.task("tick").unwrap().run_count;
    /// assert!((3..=4).contains(&runs));
    /// assert_eq!(queue.counts().await?.pending, runs);
    /// # Ok(()) }
    /// ```
    pub async fn run<E: Enqueue>(&self, target: &E, stop: impl Future<Output = ()>) -> Result<()> {
        if self.inner.running.swap(true, Ordering::AcqRel) {
            return Err(Error::InvalidArgument(
                "this scheduler is already running".into(),
            ));
        }
        let _running = RunningGuard(&self.inner.running);
        {
            let mut state = self.inner.state.lock();
            for entry in state.tasks.values_mut() {
                entry.ready = false;
            }
        }
        tracing::debug!(tasks = self.len(), "scheduler started");
        tokio::pin!(stop);
        loop {
            // Set up the wake-up before looking, so no change is lost.
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();

            self.prepare().await;
            let now = self.inner.clock.now();
            let (firings, wake) = self.collect(now);
            if firings.is_empty() {
                let nap = wake.map_or(MAX_SLEEP, |at| self.inner.clock.until(at).min(MAX_SLEEP));
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    _ = &mut changed => {}
                    _ = tokio::time::sleep(nap) => {}
                }
                continue;
            }
            for firing in firings {
                let result = tokio::select! {
                    biased;
                    _ = &mut stop => {
                        tracing::debug!("scheduler stopped");
                        return Ok(());
                    }
                    result = target.enqueue(firing.job.clone()) => result,
                };
                self.record(firing, result).await;
            }
        }
        tracing::debug!("scheduler stopped");
        Ok(())
    }

    /// Sets each task that is not yet ready against its reference: the
    /// store's last run, this process's last run, or now.
    async fn prepare(&self) {
        let pending: Vec<(String, u64)> = {
            let state = self.inner.state.lock();
            state
                .tasks
                .values()
                .filter(|e| !e.ready && e.task.enabled)
                .map(|e| (e.task.name.clone(), e.generation))
                .collect()
        };
        for (name, generation) in pending {
            let stored = match &self.inner.store {
                Some(store) => match store.load(&name).await {
                    Ok(stored) => stored,
                    Err(e) => {
                        tracing::warn!(task = %name, error = %e, "could not load the task's last run; starting from now");
                        None
                    }
                },
                None => None,
            };
            let now = self.inner.clock.now();
            let mut state = self.inner.state.lock();
            let Some(entry) = state.tasks.get_mut(&name) else {
                continue;
            };
            if entry.generation != generation || entry.ready || !entry.task.enabled {
                continue;
            }
            let reference = match (stored, entry.last_run) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if let Some(last) = reference {
                entry.last_run = Some(last);
            }
            entry.next = entry.task.schedule.next_after(reference.unwrap_or(now));
            entry.ready = true;
        }
    }

    /// The occurrences due at `now`, and when to look next otherwise.
    fn collect(&self, now: DateTime<Utc>) -> (Vec<Firing>, Option<DateTime<Utc>>) {
        let mut firings = Vec::new();
        let mut wake: Option<DateTime<Utc>> = None;
        let mut earliest = |at: DateTime<Utc>| {
            wake = Some(wake.map_or(at, |w| w.min(at)));
        };
        let mut state = self.inner.state.lock();
        for entry in state.tasks.values_mut() {
            if !entry.task.enabled || !entry.ready {
                continue;
            }
            let Some(first) = entry.next else { continue };
            if let Some(retry) = entry.retry_at.filter(|r| *r > now) {
                earliest(retry.max(first));
                continue;
            }
            if first > now {
                earliest(first);
                continue;
            }
            let task = &entry.task;
            let (latest, due) = task.schedule.due_between(first, now);
            let late = now - latest > self.inner.grace;
            if late && task.missed_runs == MissedRuns::Skip {
                entry.missed_count += due;
                entry.next = task.schedule.next_after(now);
                entry.retry_at = None;
                tracing::info!(task = %task.name, missed = due, next = ?entry.next, "skipped missed occurrences");
                if let Some(next) = entry.next {
                    earliest(next);
                }
                continue;
            }
            let folded = due.saturating_sub(1);
            entry.missed_count += folded;
            if late || folded > 0 {
                tracing::info!(task = %task.name, occurrence = %latest, missed = due, "running once for missed occurrences");
            }
            // The occurrences before `latest` are settled; a retry starts here.
            entry.next = Some(latest);
            firings.push(Firing {
                name: task.name.clone(),
                generation: entry.generation,
                occurrence: latest,
                job: task.job_for(latest, now),
            });
        }
        firings.sort_by_key(|f| f.occurrence);
        (firings, wake)
    }

    /// Records how enqueueing an occurrence went.
    async fn record(&self, firing: Firing, result: Result<JobId>) {
        let now = self.inner.clock.now();
        let mut save = false;
        {
            let mut state = self.inner.state.lock();
            let Some(entry) = state
                .tasks
                .get_mut(&firing.name)
                .filter(|e| e.generation == firing.generation)
            else {
                return;
            };
            let advance = |entry: &mut Entry| {
                entry.next = if entry.task.enabled {
                    entry.task.schedule.next_after(firing.occurrence)
                } else {
                    None
                };
                entry.retry_at = None;
                entry.retry_delay = FIRST_RETRY_DELAY;
            };
            match result {
                Ok(id) => {
                    tracing::info!(task = %firing.name, occurrence = %firing.occurrence, job_id = %id, "periodic task enqueued");
                    entry.last_outcome = Some(TaskOutcome::Enqueued(id));
                    entry.run_count += 1;
                    entry.enqueued_count += 1;
                    entry.last_run = Some(firing.occurrence);
                    advance(entry);
                    save = true;
                }
                Err(Error::Duplicate(id)) => {
                    tracing::debug!(task = %firing.name, occurrence = %firing.occurrence, job_id = %id, "occurrence already enqueued by another scheduler");
                    entry.last_outcome = Some(TaskOutcome::Duplicate(id));
                    entry.run_count += 1;
                    entry.last_run = Some(firing.occurrence);
                    advance(entry);
                    save = true;
                }
                Err(e) if e.is_transient() => {
                    let delay = entry.retry_delay;
                    tracing::warn!(task = %firing.name, occurrence = %firing.occurrence, error = %e, retry_in = ?delay, "could not enqueue the periodic task; will retry");
                    entry.last_outcome = Some(TaskOutcome::Error(e.to_string()));
                    entry.error_count += 1;
                    entry.retry_at = Some(
                        now + chrono::Duration::from_std(delay)
                            .unwrap_or(chrono::Duration::MAX / 2),
                    );
                    entry.retry_delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
                Err(e) => {
                    tracing::error!(task = %firing.name, occurrence = %firing.occurrence, error = %e, "could not enqueue the periodic task; occurrence given up");
                    entry.last_outcome = Some(TaskOutcome::Error(e.to_string()));
                    entry.error_count += 1;
                    advance(entry);
                }
            }
        }
        if save {
            if let Some(store) = &self.inner.store {
                if let Err(e) = store.save(&firing.name, firing.occurrence).await {
                    tracing::warn!(task = %firing.name, error = %e, "could not save the task's last run");
                }
            }
        }
    }
}

/// Clears the running flag when [`JobScheduler::run`] returns, however it
/// returns.
struct RunningGuard<'a>(&'a AtomicBool);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::schedule::Schedule;
    use crate::scheduler::PeriodicTask;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    /// A scheduler with one ready task whose next occurrence is `next`.
    fn with_task(schedule: Schedule, policy: MissedRuns, next: DateTime<Utc>) -> JobScheduler {
        let scheduler = JobScheduler::new();
        scheduler
            .add(PeriodicTask::new("t", schedule, Job::new("t", json!({}))).missed_runs(policy))
            .unwrap();
        let mut state = scheduler.inner.state.lock();
        let entry = state.tasks.get_mut("t").unwrap();
        entry.ready = true;
        entry.next = Some(next);
        drop(state);
        scheduler
    }

    #[test]
    fn collect_fires_on_time_and_says_when_to_wake() {
        let hourly = Schedule::every(Duration::from_secs(3600)).unwrap();
        let next = utc(2024, 1, 1, 10, 0, 0);
        let scheduler = with_task(hourly, MissedRuns::RunOnce, next);
        let (firings, wake) = scheduler.collect(utc(2024, 1, 1, 9, 59, 0));
        assert!(firings.is_empty());
        assert_eq!(wake, Some(next));
        let (firings, _) = scheduler.collect(utc(2024, 1, 1, 10, 0, 1));
        assert_eq!(firings.len(), 1);
        assert_eq!(firings[0].occurrence, next);
        assert_eq!(scheduler.task("t").unwrap().missed_count, 0);
    }

    #[test]
    fn collect_applies_the_missed_run_policy() {
        let hourly = Schedule::every(Duration::from_secs(3600)).unwrap();
        let next = utc(2024, 1, 1, 10, 0, 0);
        // Four occurrences due (10:00 to 13:00), the latest 30 minutes late.
        let now = utc(2024, 1, 1, 13, 30, 0);

        let run_once = with_task(hourly.clone(), MissedRuns::RunOnce, next);
        let (firings, _) = run_once.collect(now);
        assert_eq!(firings.len(), 1);
        assert_eq!(firings[0].occurrence, utc(2024, 1, 1, 13, 0, 0));
        assert_eq!(run_once.task("t").unwrap().missed_count, 3);

        let skip = with_task(hourly, MissedRuns::Skip, next);
        let (firings, wake) = skip.collect(now);
        assert!(firings.is_empty());
        let info = skip.task("t").unwrap();
        assert_eq!(info.missed_count, 4);
        assert_eq!(info.next_run, Some(utc(2024, 1, 1, 14, 0, 0)));
        assert_eq!(wake, Some(utc(2024, 1, 1, 14, 0, 0)));
    }
}
