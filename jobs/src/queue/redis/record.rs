//! The stored form of a job, in two hash fields under its id:
//!
//! ```text
//! state:  S R|attempts|max_retries|token|started_us|completed_us|[\x1f{patch JSON}]...
//! jobs:   {job JSON}
//! ```
//!
//! `S` is the status (one letter, see [`status_code`]), `R` the priority
//! rank (0 = critical, 3 = low). attempts and max_retries fit a `u32`
//! (at most 10 digits), the token (the lease of the current reservation)
//! 19 digits, the times (µs since the epoch, empty if unset) 16 digits. The
//! header ends with its seventh `|`; each patch that follows starts with
//! [`PATCH_SEP`]. The state is authoritative for the status, attempts and
//! times; the JSON is the job as enqueued (or as put back by `retry`); each
//! patch (appended by `finish`, lease recovery or quarantine) sets `result`,
//! `last_error` and `scheduled_at`, in order; the patch of a failed attempt
//! also carries its number and end time (`attempt`, `at_us`, put in front
//! by the scripts), and adds an entry to `Job::errors` (the scripts keep
//! the last 25 such patches). So the scripts never parse or
//! re-encode the job's JSON, and the hot ones only touch the short state.
//!
//! [`parse_state`] here and `header` in `lua/prelude.lua` are the two
//! readers of a state, and accept exactly the same strings (a test runs both
//! on the same samples); [`Header::encode`] and the prelude's `build` are the
//! two writers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

use crate::job::{AttemptError, Job, JobId, JobStatus};
use crate::result::JobResult;
use crate::workflow::DependencyResult;

/// Starts each patch in a state (a control character, never raw in JSON
/// text, nor in the header's digits).
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
    /// The latest progress reported (written by `lua/progress.lua` alone,
    /// as a patch of this field only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) progress: Option<serde_json::Value>,
    /// Set (with `at_us`) by the scripts on the patch of a failed attempt:
    /// its number. The attempt's error is the patch's `last_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) attempt: Option<u32>,
    /// When the failed attempt ended (µs since the epoch, Redis clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) at_us: Option<i64>,
}

impl Patch<'_> {
    /// Lays this attempt's outcome over the job; later patches win.
    fn apply(self, job: &mut Job) {
        if let Some(attempt) = self.attempt {
            let at = self
                .at_us
                .and_then(DateTime::<Utc>::from_timestamp_micros)
                .unwrap_or(job.created_at);
            let error = self.last_error.as_deref().unwrap_or("failed");
            job.errors.push(AttemptError::new(attempt, at, error));
        }
        if let Some(result) = self.result {
            job.result = Some(Box::new(result.into_owned()));
        }
        if let Some(error) = self.last_error {
            job.last_error = Some(error.into_owned());
        }
        if self.scheduled_at.is_some() {
            job.scheduled_at = self.scheduled_at;
        }
        if self.progress.is_some() {
            job.progress = self.progress.map(Box::new);
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

/// When a waiting job becomes due, in microseconds (0 if it has no
/// schedule: due now).
pub(super) fn due_micros(job: &Job) -> i64 {
    job.scheduled_at.map_or(0, micros_ceil)
}

/// The header of a state: everything but the patches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) status: JobStatus,
    /// The priority rank, 0 (critical) to 3 (low).
    pub(super) rank: u8,
    pub(super) attempts: u32,
    pub(super) max_retries: u32,
    /// The lease token of the current (or last) reservation; 0 if none.
    pub(super) token: u64,
    pub(super) started_us: Option<i64>,
    pub(super) completed_us: Option<i64>,
}

/// The most digits of a token and of a time in a state.
const TOKEN_DIGITS: usize = 19;
const TIME_DIGITS: usize = 16;

impl Header {
    /// The header as stored, ending with its seventh `|` (patches follow).
    pub(super) fn encode(&self) -> String {
        let time = |t: Option<i64>| t.map_or(String::new(), |t| t.to_string());
        format!(
            "{}{}|{}|{}|{}|{}|{}|",
            char::from(status_code(self.status)),
            self.rank,
            self.attempts,
            self.max_retries,
            self.token,
            time(self.started_us),
            time(self.completed_us),
        )
    }

    pub(super) fn started(&self) -> Option<DateTime<Utc>> {
        self.started_us
            .and_then(DateTime::<Utc>::from_timestamp_micros)
    }

    pub(super) fn completed(&self) -> Option<DateTime<Utc>> {
        self.completed_us
            .and_then(DateTime::<Utc>::from_timestamp_micros)
    }
}

/// The stored form of a waiting job (status `Pending` or `Retrying`): its
/// state and its JSON.
pub(super) fn encode(job: &Job) -> Result<(String, Vec<u8>), serde_json::Error> {
    let status = if job.status == JobStatus::Retrying {
        JobStatus::Retrying
    } else {
        JobStatus::Pending
    };
    let state = Header {
        status,
        rank: job.priority.rank() as u8,
        attempts: job.attempts,
        max_retries: job.max_retries,
        token: 0,
        started_us: None,
        completed_us: None,
    }
    .encode();
    let mut stored = job.clone();
    stored.status = status;
    Ok((state, serde_json::to_vec(&stored)?))
}

/// What the scripts need to know of a job's flow-control settings (see
/// `decode_meta` in `lua/prelude.lua`): a JSON object with `q` (the named
/// queue, if not the default one), `c` ([key, max]: the concurrency limit),
/// `r` ([key, max, period µs]: the rate limit) and `u` ([key, status
/// letters, period µs or 0]: the unique settings). Empty for a job with
/// none of them, which then costs the scripts nothing.
pub(super) fn meta(job: &Job) -> Vec<u8> {
    let mut meta = serde_json::Map::new();
    if job.queue != crate::job::DEFAULT_QUEUE {
        meta.insert("q".into(), job.queue.as_ref().into());
    }
    if let Some(limit) = &job.concurrency {
        meta.insert("c".into(), serde_json::json!([limit.key, limit.max]));
    }
    if let Some(limit) = &job.rate_limit {
        let period = micros(limit.rate.period);
        meta.insert(
            "r".into(),
            serde_json::json!([limit.key, limit.rate.max, period]),
        );
    }
    if let Some(unique) = &job.unique {
        let states: String = unique
            .states
            .iter()
            .map(|s| char::from(status_code(*s)))
            .collect();
        let period = unique.period.map_or(0, micros);
        meta.insert("u".into(), serde_json::json!([unique.key, states, period]));
    }
    if let Some(step) = &job.step {
        meta.insert(
            "w".into(),
            serde_json::json!([
                step.workflow.to_string(),
                step.name,
                u8::from(step.run_always)
            ]),
        );
    }
    if meta.is_empty() {
        return Vec::new();
    }
    serde_json::to_vec(&meta).unwrap_or_default()
}

/// What the enqueue script needs to store a workflow step besides its
/// meta (`w`: workflow id, step name, runs always): the workflow's name
/// `n` and kind `k` (for its record, made by its first step), the
/// dependencies `d` ([job id, step name] each) and the stored steps it
/// blocks `b`. Empty for a job that is no step.
pub(super) fn links(job: &Job) -> Vec<u8> {
    let Some(step) = &job.step else {
        return Vec::new();
    };
    let deps: Vec<(String, &str)> = step
        .depends_on
        .iter()
        .map(|d| (d.job.to_string(), d.step.as_str()))
        .collect();
    let blocks: Vec<String> = step.blocks.iter().map(JobId::to_string).collect();
    serde_json::to_vec(&serde_json::json!({
        "n": step.workflow_name,
        "k": step.kind.as_str(),
        "d": deps,
        "b": blocks,
    }))
    .unwrap_or_default()
}

/// One entry of a step's `dres:<id>` list, as the scripts write it when a
/// dependency ends: its status letter, its job id, `|`, the byte length of
/// its step name, `|`, the name, then the dependency's patches (its state
/// after the header), whose last result is the dependency's result.
pub(super) fn dependency_result(raw: &[u8]) -> Option<DependencyResult> {
    let (&code, rest) = raw.split_first()?;
    let status = status_of(code)?;
    let bar = rest.iter().position(|b| *b == b'|')?;
    let job: JobId = std::str::from_utf8(&rest[..bar]).ok()?.parse().ok()?;
    let rest = &rest[bar + 1..];
    let bar = rest.iter().position(|b| *b == b'|')?;
    let len: usize = std::str::from_utf8(&rest[..bar]).ok()?.parse().ok()?;
    let rest = &rest[bar + 1..];
    let name = std::str::from_utf8(rest.get(..len)?).ok()?;
    let result = patches(&rest[len..])
        .filter_map(|p| p.result)
        .last()
        .map(Cow::into_owned);
    Some(DependencyResult::new(job, name, status).with_result(result))
}

/// A duration in whole microseconds, at least 1 (and at most 2^53, which
/// the Lua scripts' numbers hold exactly).
pub(super) fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, 1 << 53)
}

/// A decimal field of at most `digits` digits.
fn digits(field: &[u8], digits: usize) -> Option<u64> {
    if field.is_empty() || field.len() > digits || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// Parses a job's state: its header and the patches after it, or why it
/// does not parse. Accepts exactly what the Lua `header` accepts.
pub(super) fn parse_state(raw: &[u8]) -> Result<(Header, &[u8]), String> {
    let bad = || "the state does not parse".to_owned();
    let (&code, rest) = raw.split_first().ok_or_else(bad)?;
    let (&rank, rest) = rest.split_first().ok_or_else(bad)?;
    let mut fields = rest.splitn(7, |b| *b == b'|');
    if fields.next() != Some(&[][..]) {
        return Err(bad());
    }
    let mut field = || fields.next().ok_or_else(bad);
    let (a, m, t, st, co) = (field()?, field()?, field()?, field()?, field()?);
    let patches = field()?;
    let status =
        status_of(code).ok_or_else(|| format!("unknown status letter {:?}", char::from(code)))?;
    if !(b'0'..=b'3').contains(&rank) {
        return Err(format!("unknown priority rank {:?}", char::from(rank)));
    }
    let show = |f: &[u8]| String::from_utf8_lossy(f).into_owned();
    let u32_field = |name: &str, f: &[u8]| -> Result<u32, String> {
        digits(f, 10)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                if f.iter().all(u8::is_ascii_digit) && !f.is_empty() {
                    format!("{name} {} is out of range (at most {})", show(f), u32::MAX)
                } else {
                    format!("{name} {:?} is not a number", show(f))
                }
            })
    };
    let time = |name: &str, f: &[u8]| -> Result<Option<i64>, String> {
        if f.is_empty() {
            return Ok(None);
        }
        digits(f, TIME_DIGITS)
            .map(|n| Some(n as i64))
            .ok_or_else(|| format!("{name} {:?} is not a time in range", show(f)))
    };
    let attempts = u32_field("attempts", a)?;
    let max_retries = u32_field("max retries", m)?;
    let token = digits(t, TOKEN_DIGITS)
        .ok_or_else(|| format!("token {:?} is not a number in range", show(t)))?;
    let started_us = time("start time", st)?;
    let completed_us = time("finish time", co)?;
    Ok((
        Header {
            status,
            rank: rank - b'0',
            attempts,
            max_retries,
            token,
            started_us,
            completed_us,
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

/// Which of a job's two fields is at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    /// The `state` hash field.
    State,
    /// The `jobs` hash field (the JSON).
    Json,
}

/// Why a stored job could not be read.
#[derive(Clone, Debug)]
pub(super) struct Corrupt {
    pub(super) part: Part,
    pub(super) reason: String,
}

/// A stored job read back, with its lease token. A job that does not parse
/// gives `Err` with the reason; use [`placeholder`] to still show something.
pub(super) fn decode(id: JobId, state: &[u8], body: &[u8]) -> Result<(Job, u64), Corrupt> {
    let (header, results) = parse_state(state).map_err(|reason| Corrupt {
        part: Part::State,
        reason,
    })?;
    if body.is_empty() {
        return Err(Corrupt {
            part: Part::Json,
            reason: "the job has a state but no JSON".into(),
        });
    }
    let mut job: Job = serde_json::from_slice(body).map_err(|e| Corrupt {
        part: Part::Json,
        reason: e.to_string(),
    })?;
    for patch in patches(results) {
        patch.apply(&mut job);
    }
    job.keep_last_errors();
    job.id = id;
    job.status = header.status;
    job.attempts = header.attempts;
    job.started_at = header.started();
    job.completed_at = header.completed();
    Ok((job, header.token))
}

/// What `get` shows for a job that does not parse: a job named
/// `<corrupt>` with the status its state names (`Failed` if none), the
/// reason as its last error (or the error it was failed with), and the raw
/// JSON in its metadata under `corrupt_record`.
pub(super) fn placeholder(id: JobId, state: &[u8], body: &[u8], message: String) -> Job {
    let mut job = Job::new("<corrupt>", serde_json::Value::Null);
    job.id = id;
    job.status = JobStatus::Failed;
    if let Ok((header, results)) = parse_state(state) {
        job.status = header.status;
        job.attempts = header.attempts;
        job.started_at = header.started();
        job.completed_at = header.completed();
        for patch in patches(results) {
            patch.apply(&mut job);
        }
    }
    if job.last_error.is_none() {
        job.last_error = Some(message);
    }
    job.metadata.insert(
        "corrupt_record".into(),
        serde_json::Value::String(String::from_utf8_lossy(body).into_owned()),
    );
    job
}

/// The error a job with a corrupt record fails with (the same words as the
/// Lua `quarantine`).
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
    fn header_encodes_what_it_parses() {
        let header = Header {
            status: JobStatus::Running,
            rank: 3,
            attempts: u32::MAX,
            max_retries: 0,
            token: 9_999_999_999_999_999_999,
            started_us: Some(9_999_999_999_999_999),
            completed_us: None,
        };
        let state = header.encode();
        let (back, patches) = parse_state(state.as_bytes()).unwrap();
        assert_eq!(back, header);
        assert!(patches.is_empty());
    }

    #[test]
    fn out_of_range_numbers_are_refused_with_the_field_named() {
        let err = parse_state(b"P1|99999999999999999999|3|0|||").unwrap_err();
        assert!(
            err.contains("attempts 99999999999999999999 is out of range"),
            "{err}"
        );
        let err = parse_state(b"P1|4294967296|3|0|||").unwrap_err();
        assert!(err.contains("out of range"), "{err}");
        assert!(parse_state(b"P1|4294967295|3|0|||").is_ok());
        assert!(parse_state(b"P4|0|3|0|||").unwrap_err().contains("rank"));
        assert!(parse_state(b"Q1|0|3|0|||").unwrap_err().contains("status"));
        assert!(parse_state(b"P1|-1|3|0|||").is_err());
        assert!(parse_state(b"P1|0|3|0|||").is_ok());
        assert!(parse_state(b"P1|0|3|0||").is_err());
    }

    #[test]
    fn corrupt_records_are_reported() {
        let id = JobId::new();
        let err = decode(id, b"P1|0|3|0|||", b"{not json").unwrap_err();
        assert_eq!(err.part, Part::Json);
        let err = decode(id, b"garbage", b"{}").unwrap_err();
        assert_eq!(err.part, Part::State);
        let err = decode(id, b"P1|0|3|0|||", b"").unwrap_err();
        assert_eq!(err.part, Part::Json);
        let job = placeholder(id, b"P1|0|3|0|||", b"{not json", "bad".into());
        assert_eq!(job.status, JobStatus::Pending);
        assert!(job.last_error.unwrap().contains("bad"));
        assert_eq!(job.metadata["corrupt_record"], "{not json");
    }
}
