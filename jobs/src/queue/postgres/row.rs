//! Jobs as rows: the columns a job is written to, and a job read back from
//! the columns `sql::COLUMNS` selects.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::error::{Error, Result};
use crate::job::{AttemptError, Job, JobId, JobStatus};

/// The one-letter code of a status in the `status` column.
pub(super) fn status_code(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Pending => "P",
        JobStatus::Running => "R",
        JobStatus::Completed => "C",
        JobStatus::Failed => "F",
        JobStatus::Retrying => "T",
        JobStatus::Cancelled => "X",
        JobStatus::Expired => "E",
    }
}

/// The status of a one-letter code.
pub(super) fn status_of(code: &str) -> Option<JobStatus> {
    Some(match code {
        "P" => JobStatus::Pending,
        "R" => JobStatus::Running,
        "C" => JobStatus::Completed,
        "F" => JobStatus::Failed,
        "T" => JobStatus::Retrying,
        "X" => JobStatus::Cancelled,
        "E" => JobStatus::Expired,
        _ => return None,
    })
}

/// The `held` value of a workflow step waiting for its dependencies (the
/// SQL's `chr(3)`): a key no concurrency limit may have, so `unhold.sql`
/// never puts such a step back.
pub(super) const HELD_FOR_DEPENDENCIES: &str = "\u{3}";

/// `at` rounded up to a microsecond, PostgreSQL's precision (a job due at
/// `at` is never handed out before `at`, and a series of due times keeps
/// its spacing).
pub(super) fn ceil_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = at.timestamp_subsec_nanos() % 1000;
    if nanos == 0 {
        at
    } else {
        at + chrono::Duration::nanoseconds(i64::from(1000 - nanos))
    }
}

/// A batch of jobs as the parallel arrays `enqueue.sql` takes.
#[derive(Clone, Default)]
pub(super) struct Batch {
    pub(super) ids: Vec<uuid::Uuid>,
    pub(super) queues: Vec<String>,
    pub(super) names: Vec<String>,
    pub(super) ranks: Vec<i16>,
    pub(super) max_retries: Vec<i32>,
    pub(super) scheduled: Vec<Option<DateTime<Utc>>>,
    pub(super) created: Vec<DateTime<Utc>>,
    pub(super) records: Vec<String>,
    pub(super) unique_keys: Vec<Option<String>>,
    pub(super) conc_keys: Vec<Option<String>>,
    pub(super) conc_max: Vec<Option<i32>>,
    pub(super) rate_keys: Vec<Option<String>>,
    pub(super) rate_max: Vec<Option<i32>>,
    pub(super) rate_period_us: Vec<Option<i64>>,
}

/// A query with its arguments so far.
pub(super) type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

impl Batch {
    /// Binds the batch as the next fourteen arguments.
    pub(super) fn bind(self, query: Query<'_>) -> Query<'_> {
        query
            .bind(self.ids)
            .bind(self.queues)
            .bind(self.names)
            .bind(self.ranks)
            .bind(self.max_retries)
            .bind(self.scheduled)
            .bind(self.created)
            .bind(self.records)
            .bind(self.unique_keys)
            .bind(self.conc_keys)
            .bind(self.conc_max)
            .bind(self.rate_keys)
            .bind(self.rate_max)
            .bind(self.rate_period_us)
    }

    /// Keeps only the jobs at `keep` (indexes, in order).
    pub(super) fn retain(&mut self, keep: &[bool]) {
        fn only<T>(v: &mut Vec<T>, keep: &[bool]) {
            let mut i = 0;
            v.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        }
        only(&mut self.ids, keep);
        only(&mut self.queues, keep);
        only(&mut self.names, keep);
        only(&mut self.ranks, keep);
        only(&mut self.max_retries, keep);
        only(&mut self.scheduled, keep);
        only(&mut self.created, keep);
        only(&mut self.records, keep);
        only(&mut self.unique_keys, keep);
        only(&mut self.conc_keys, keep);
        only(&mut self.conc_max, keep);
        only(&mut self.rate_keys, keep);
        only(&mut self.rate_max, keep);
        only(&mut self.rate_period_us, keep);
    }

    /// Validates `jobs` and lays them out; refuses one this backend cannot
    /// keep its promises for (a concurrency key it uses itself), and ids
    /// repeated within the batch. A workflow step's dependencies are
    /// checked by the database when it is stored (`0008_workflows.sql`).
    pub(super) fn of(jobs: &[Job]) -> Result<Batch> {
        let mut batch = Batch::default();
        let mut seen = std::collections::HashSet::with_capacity(jobs.len());
        for job in jobs {
            job.validate()?;
            if job
                .concurrency
                .as_ref()
                .is_some_and(|c| c.key == HELD_FOR_DEPENDENCIES)
            {
                return Err(Error::InvalidJob {
                    id: job.id,
                    message: format!(
                        "job `{}`: the concurrency key U+0003 is reserved (it marks the \
                         workflow steps waiting for their dependencies)",
                        job.name
                    ),
                });
            }
            if !seen.insert(job.id) {
                return Err(Error::Duplicate(job.id));
            }
            let mut stored = job.clone();
            if stored.status != JobStatus::Retrying {
                stored.status = JobStatus::Pending;
            }
            let record = serde_json::to_string(&stored).map_err(|e| Error::Serialize {
                name: job.name.to_string(),
                message: e.to_string(),
            })?;
            batch.ids.push(*job.id.as_uuid());
            batch.queues.push(job.queue.to_string());
            batch.names.push(job.name.to_string());
            batch.ranks.push(job.priority.rank() as i16);
            batch
                .max_retries
                .push(i32::try_from(job.max_retries).unwrap_or(i32::MAX));
            batch.scheduled.push(job.scheduled_at.map(ceil_micros));
            batch.created.push(job.created_at);
            batch.records.push(record);
            batch
                .unique_keys
                .push(job.unique.as_ref().map(|u| u.key.clone()));
            batch
                .conc_keys
                .push(job.concurrency.as_ref().map(|c| c.key.clone()));
            batch.conc_max.push(
                job.concurrency
                    .as_ref()
                    .map(|c| i32::try_from(c.max).unwrap_or(i32::MAX)),
            );
            let rate = job.rate_limit.as_deref();
            batch.rate_keys.push(rate.map(|r| r.key.clone()));
            batch
                .rate_max
                .push(rate.map(|r| i32::try_from(r.rate.max).unwrap_or(i32::MAX)));
            batch
                .rate_period_us
                .push(rate.map(|r| super::micros(r.rate.period)));
        }
        Ok(batch)
    }
}

/// A job read back, with its lease token; `Err` says why the row cannot
/// be a job.
pub(super) fn decode(row: &PgRow) -> std::result::Result<(Job, u64), String> {
    let get = |e: sqlx::Error| e.to_string();
    let id: uuid::Uuid = row.try_get("id").map_err(get)?;
    let record: String = row.try_get("record").map_err(get)?;
    let mut job: Job = serde_json::from_str(&record).map_err(|e| e.to_string())?;
    job.id = JobId::from(id);
    let status: String = row.try_get("status").map_err(get)?;
    job.status = status_of(&status).ok_or_else(|| format!("unknown status {status:?}"))?;
    let attempts: i32 = row.try_get("attempts").map_err(get)?;
    job.attempts = u32::try_from(attempts).unwrap_or(0);
    let max_retries: i32 = row.try_get("max_retries").map_err(get)?;
    job.max_retries = u32::try_from(max_retries).unwrap_or(0);
    job.scheduled_at = row.try_get("scheduled_at").map_err(get)?;
    job.started_at = row.try_get("started_at").map_err(get)?;
    job.completed_at = row.try_get("completed_at").map_err(get)?;
    if let Some(result) = row.try_get::<Option<String>, _>("result").map_err(get)? {
        job.result = Some(Box::new(
            serde_json::from_str(&result).map_err(|e| format!("result: {e}"))?,
        ));
    }
    if let Some(error) = row
        .try_get::<Option<String>, _>("last_error")
        .map_err(get)?
    {
        job.last_error = Some(error);
    }
    if let Some(progress) = row.try_get::<Option<String>, _>("progress").map_err(get)? {
        job.progress = Some(Box::new(
            serde_json::from_str(&progress).map_err(|e| format!("progress: {e}"))?,
        ));
    }
    if let Some(errors) = row.try_get::<Option<String>, _>("errors").map_err(get)? {
        // After those the record holds (from before a retry).
        let errors: Vec<AttemptError> =
            serde_json::from_str(&errors).map_err(|e| format!("errors: {e}"))?;
        job.errors.extend(errors);
        job.keep_last_errors();
    }
    let token: i64 = row.try_get("token").map_err(get)?;
    Ok((job, u64::try_from(token).unwrap_or(0)))
}
