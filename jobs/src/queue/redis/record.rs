//! The stored form of a job: a short header the Lua scripts read and
//! rewrite, the job's JSON, and patches appended by finished attempts.
//!
//! ```text
//! S R|attempts|max_retries|token|started_us|completed_us|{job JSON}[\x1f{patch JSON}]...
//! ```
//!
//! `S` is the status (one letter, see [`status_code`]), `R` the priority
//! rank (0 = critical). The header is authoritative for the status,
//! attempts and times; the JSON is the job as enqueued (or as put back by
//! `retry`), and each patch (written by `finish`) sets `result`,
//! `last_error` and `scheduled_at`. So the scripts never parse or re-encode
//! JSON: they only rewrite the header and append.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
#[derive(Default, Serialize, Deserialize)]
pub(super) struct Patch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) result: Option<Box<JobResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) scheduled_at: Option<DateTime<Utc>>,
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

/// The stored form of a waiting job (status `Pending` or `Retrying`).
pub(super) fn encode(job: &Job) -> Result<Vec<u8>, serde_json::Error> {
    let status = match job.status {
        JobStatus::Retrying => b'T',
        _ => b'P',
    };
    let mut out = Vec::with_capacity(256);
    out.push(status);
    out.push(b'0' + job.priority.rank() as u8);
    out.push(b'|');
    push_num(&mut out, u64::from(job.attempts));
    out.push(b'|');
    push_num(&mut out, u64::from(job.max_retries));
    out.extend_from_slice(b"|0|||");
    let mut stored = job.clone();
    stored.status = if status == b'T' {
        JobStatus::Retrying
    } else {
        JobStatus::Pending
    };
    serde_json::to_writer(&mut out, &stored)?;
    Ok(out)
}

fn push_num(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(n.to_string().as_bytes());
}

/// The parsed header.
pub(super) struct Header {
    pub(super) status: JobStatus,
    pub(super) attempts: u32,
    pub(super) token: u64,
    pub(super) started: Option<DateTime<Utc>>,
    pub(super) completed: Option<DateTime<Utc>>,
}

/// Splits a record into its header and the rest (JSON and patches).
pub(super) fn split(raw: &[u8]) -> Option<(Header, &[u8])> {
    let status = status_of(*raw.first()?)?;
    if !raw.get(1)?.is_ascii_digit() {
        return None;
    }
    let mut fields = raw[2..].splitn(7, |b| *b == b'|');
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
    let rest = fields.next()?;
    Some((
        Header {
            status,
            attempts,
            token,
            started,
            completed,
        },
        rest,
    ))
}

/// A stored record read back as a job. A record that does not parse gives
/// `Err` with the reason; use [`placeholder`] to still show something.
pub(super) fn decode(id: JobId, raw: &[u8]) -> Result<(Job, u64), String> {
    let (header, rest) = split(raw).ok_or_else(|| "the record header does not parse".to_owned())?;
    let mut parts = rest.split(|b| *b == PATCH_SEP);
    let body = parts.next().unwrap_or_default();
    let mut job: Job = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    for patch in parts {
        let Ok(patch) = serde_json::from_slice::<Patch>(patch) else {
            continue;
        };
        if patch.result.is_some() {
            job.result = patch.result;
        }
        if patch.last_error.is_some() {
            job.last_error = patch.last_error;
        }
        if patch.scheduled_at.is_some() {
            job.scheduled_at = patch.scheduled_at;
        }
    }
    job.id = id;
    job.status = header.status;
    job.attempts = header.attempts;
    job.started_at = header.started;
    job.completed_at = header.completed;
    Ok((job, header.token))
}

/// What `get` shows for a record that does not parse: a `Failed` job (or
/// the status its header names) named `<corrupt>`, with the reason as its
/// last error and the raw record in its metadata under `corrupt_record`.
pub(super) fn placeholder(id: JobId, raw: &[u8], reason: &str, key: &str) -> Job {
    let mut job = Job::new("<corrupt>", serde_json::Value::Null);
    job.id = id;
    let header = split(raw);
    job.status = header
        .as_ref()
        .map_or(JobStatus::Failed, |(header, _)| header.status);
    if let Some((header, rest)) = &header {
        job.attempts = header.attempts;
        job.started_at = header.started;
        job.completed_at = header.completed;
        // A patch written when the job was failed for its corrupt record.
        if let Some(patch) = rest
            .split(|b| *b == PATCH_SEP)
            .skip(1)
            .filter_map(|p| serde_json::from_slice::<Patch>(p).ok())
            .last()
        {
            job.result = patch.result;
            job.last_error = patch.last_error;
        }
    }
    if job.last_error.is_none() {
        job.last_error = Some(corrupt_message(key, id, reason));
    }
    job.metadata.insert(
        "corrupt_record".into(),
        serde_json::Value::String(String::from_utf8_lossy(raw).into_owned()),
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
        let mut raw = encode(&job).unwrap();
        assert!(raw.starts_with(b"P1|0|3|0|||{"));
        let (back, token) = decode(job.id, &raw).unwrap();
        assert_eq!(back, job);
        assert_eq!(token, 0);
        // What the scripts do: rewrite the header, append a patch.
        let rest = raw.split_off(raw.iter().position(|b| *b == b'{').unwrap());
        let mut raw = b"F1|1|3|7|1700000000000000|1700000000000001|".to_vec();
        raw.extend_from_slice(&rest);
        raw.push(PATCH_SEP);
        raw.extend_from_slice(br#"{"last_error":"boom"}"#);
        let (back, token) = decode(job.id, &raw).unwrap();
        assert_eq!(token, 7);
        assert_eq!(back.status, JobStatus::Failed);
        assert_eq!(back.attempts, 1);
        assert_eq!(back.last_error.as_deref(), Some("boom"));
        assert_eq!(
            back.started_at.unwrap().timestamp_micros(),
            1_700_000_000_000_000
        );
    }

    #[test]
    fn corrupt_records_are_reported() {
        let id = JobId::new();
        assert!(decode(id, b"P1|0|3|0|||{not json").is_err());
        assert!(decode(id, b"{\"id\":1}").is_err());
        let job = placeholder(id, b"P1|0|3|0|||{not json", "bad", "k");
        assert_eq!(job.status, JobStatus::Pending);
        assert!(job.last_error.unwrap().contains("bad"));
    }
}
