//! The stored form of a job, in two hash fields under its id:
//!
//! ```text
//! state:  S R|attempts|max_retries|token|started_us|completed_us|[\x1f{patch JSON}]...
//! jobs:   {job JSON}
//! ```
//!
//! `S` is the status (one letter, see [`status_code`]), `R` the priority
//! rank (0 = critical). The state is authoritative for the status,
//! attempts and times; the JSON is the job as enqueued (or as put back by
//! `retry`); each patch (appended by `finish`, or by lease recovery) sets
//! `result`, `last_error` and `scheduled_at`, in order. So the scripts never
//! parse or re-encode JSON, and the hot ones only touch the short state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

use crate::job::{Job, JobId, JobStatus};
use crate::result::JobResult;

/// Separates the job's JSON from the patches (a control character, never
/// raw in JSON text).
pub(super) const PATCH_SEP: u8 = 0x1f;

/// The one-letter code of a status in the record header.
pub(super) fn status_code(status: JobStatus) -> u8 {
    match status {
        JobStatus::Pending => b'P',
        JobStatus::Running => b'R',
        JobStatus::Completed => b'C',
        JobStatus::Failed => b'F',
        JobStatus::Retrying => b'T',
        JobStatus::Cancelled => b'X',
        JobStatus::Expired => b'E',
    }
}

/// The status of a one-letter code.
pub(super) fn status_of(code: u8) -> Option<JobStatus> {
    Some(match code {
        b'P' => JobStatus::Pending,
        b'R' => JobStatus::Running,
        b'C' => JobStatus::Completed,
        b'F' => JobStatus::Failed,
        b'T' => JobStatus::Retrying,
        b'X' => JobStatus::Cancelled,
        b'E' => JobStatus::Expired,
        _ => return None,
    })
}

/// What a finished attempt changes besides the header.
/// Written from borrowed parts (a finish does not copy the result to
/// store it), read back owned.
#[derive(Default, Serialize, Deserialize)]
pub(super) struct Patch<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) result: Option<Cow<'a, JobResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) last_error: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) scheduled_at: Option<DateTime<Utc>>,
}

impl Patch<'_> {
    /// Lays this attempt's outcome over the job; later patches win.
    fn apply(self, job: &mut Job) {
        if let Some(result) = self.result {
            job.result = Some(Box::new(result.into_owned()));
        }
        if let Some(error) = self.last_error {
            job.last_error = Some(error.into_owned());
        }
        if self.scheduled_at.is_some() {
            job.scheduled_at = self.scheduled_at;
        }
    }
}

/// Microseconds since the epoch, rounded up (a job due at `t` is never
/// handed out before `t`).
pub(super) fn micros_ceil(at: DateTime<Utc>) -> i64 {
    let micros = at.timestamp_micros();
    if at.timestamp_subsec_nanos() % 1000 != 0 {
        micros.saturating_add(1)
    } else {
        micros
    }
}

fn from_micros(us: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_micros(us)
}

/// When a waiting job becomes due, in microseconds (0 if it has no
/// schedule: due now).
pub(super) fn due_micros(job: &Job) -> i64 {
    job.scheduled_at.map_or(0, micros_ceil)
}

/// The stored form of a waiting job (status `Pending` or `Retrying`): its
/// state and its JSON.
pub(super) fn encode(job: &Job) -> Result<(String, Vec<u8>), serde_json::Error> {
    let retrying = job.status == JobStatus::Retrying;
    let state = format!(
        "{}{}|{}|{}|0|||",
        if retrying { 'T' } else { 'P' },
        job.priority.rank(),
        job.attempts,
        job.max_retries
    );
    let mut stored = job.clone();
    stored.status = if retrying {
        JobStatus::Retrying
    } else {
        JobStatus::Pending
    };
    Ok((state, serde_json::to_vec(&stored)?))
}

/// The parsed state.
pub(super) struct Header {
    pub(super) status: JobStatus,
    pub(super) attempts: u32,
    pub(super) token: u64,
    pub(super) started: Option<DateTime<Utc>>,
    pub(super) completed: Option<DateTime<Utc>>,
}

/// Parses a job's state: its header and the patches after it.
pub(super) fn parse_state(raw: &[u8]) -> Option<(Header, &[u8])> {
    let status = status_of(*raw.first()?)?;
    if !raw.get(1)?.is_ascii_digit() {
        return None;
    }
    let mut fields = raw[2..].splitn(8, |b| *b == b'|');
    fields.next().filter(|f| f.is_empty())?;
    let num = |f: Option<&[u8]>| -> Option<u64> { std::str::from_utf8(f?).ok()?.parse().ok() };
    let opt_time = |f: Option<&[u8]>| -> Option<Option<DateTime<Utc>>> {
        let f = f?;
        if f.is_empty() {
            return Some(None);
        }
        let us: i64 = std::str::from_utf8(f).ok()?.parse().ok()?;
        Some(from_micros(us))
    };
    let attempts = u32::try_from(num(fields.next())?).ok()?;
    let _max_retries = num(fields.next())?;
    let token = num(fields.next())?;
    let started = opt_time(fields.next())?;
    let completed = opt_time(fields.next())?;
    let patches = fields.next()?;
    Some((
        Header {
            status,
            attempts,
            token,
            started,
            completed,
        },
        patches,
    ))
}

fn patches(results: &[u8]) -> impl Iterator<Item = Patch<'static>> + '_ {
    results
        .split(|b| *b == PATCH_SEP)
        .filter(|p| !p.is_empty())
        .filter_map(|p| serde_json::from_slice::<Patch<'static>>(p).ok())
}

/// A stored job read back. A job that does not parse gives `Err` with the
/// reason; use [`placeholder`] to still show something.
pub(super) fn decode(id: JobId, state: &[u8], body: &[u8]) -> Result<(Job, u64), String> {
    let (header, results) =
        parse_state(state).ok_or_else(|| "the state does not parse".to_owned())?;
    let mut job: Job = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    for patch in patches(results) {
        patch.apply(&mut job);
    }
    job.id = id;
    job.status = header.status;
    job.attempts = header.attempts;
    job.started_at = header.started;
    job.completed_at = header.completed;
    Ok((job, header.token))
}

/// What `get` shows for a job that does not parse: a job named
/// `<corrupt>` with the status its state names (`Failed` if none), the
/// reason as its last error (or the error it was failed with), and the raw
/// JSON in its metadata under `corrupt_record`.
pub(super) fn placeholder(id: JobId, state: &[u8], body: &[u8], reason: &str, key: &str) -> Job {
    let mut job = Job::new("<corrupt>", serde_json::Value::Null);
    job.id = id;
    job.status = JobStatus::Failed;
    if let Some((header, results)) = parse_state(state) {
        job.status = header.status;
        job.attempts = header.attempts;
        job.started_at = header.started;
        job.completed_at = header.completed;
        for patch in patches(results) {
            patch.apply(&mut job);
        }
    }
    if job.last_error.is_none() {
        job.last_error = Some(corrupt_message(key, id, reason));
    }
    job.metadata.insert(
        "corrupt_record".into(),
        serde_json::Value::String(String::from_utf8_lossy(body).into_owned()),
    );
    job
}

/// The error a job with a corrupt record fails with.
pub(super) fn corrupt_message(key: &str, id: JobId, reason: &str) -> String {
    format!("corrupt job record {key} field {id}: {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobPriority;

    #[test]
    fn round_trip_with_patches() {
        let job = Job::new("send", serde_json::json!({"to": "a"})).priority(JobPriority::High);
        let (state, body) = encode(&job).unwrap();
        assert_eq!(state, "P1|0|3|0|||");
        let (back, token) = decode(job.id, state.as_bytes(), &body).unwrap();
        assert_eq!(back, job);
        assert_eq!(token, 0);
        // What the scripts do: rewrite the state, append patches.
        let state = b"F1|2|3|7|1700000000000000|1700000000000001|\x1f{\"last_error\":\"first\"}\x1f{\"last_error\":\"boom\"}";
        let (back, token) = decode(job.id, state, &body).unwrap();
        assert_eq!(token, 7);
        assert_eq!(back.status, JobStatus::Failed);
        assert_eq!(back.attempts, 2);
        assert_eq!(back.last_error.as_deref(), Some("boom"));
        assert_eq!(
            back.started_at.unwrap().timestamp_micros(),
            1_700_000_000_000_000
        );
    }

    #[test]
    fn corrupt_records_are_reported() {
        let id = JobId::new();
        assert!(decode(id, b"P1|0|3|0|||", b"{not json").is_err());
        assert!(decode(id, b"garbage", b"{}").is_err());
        let job = placeholder(id, b"P1|0|3|0|||", b"{not json", "bad", "k");
        assert_eq!(job.status, JobStatus::Pending);
        assert!(job.last_error.unwrap().contains("bad"));
        assert_eq!(job.metadata["corrupt_record"], "{not json");
    }
}
