//! What the networked backends share to wake idle workers and relay job
//! events from other processes: [`Wake`], fed by each backend's listener
//! (Redis pub/sub, PostgreSQL LISTEN), and the decoding of event messages.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use tokio::sync::Notify;

use crate::events::{JobEvent, JobEventKind};
use crate::job::JobId;

/// Wake-ups for idle workers.
pub(crate) struct Wake {
    notify: Notify,
    /// Bumped on every wake message (and on each (re)connection).
    epoch: AtomicU64,
    /// The earliest known due time of a scheduled job (µs), or `i64::MAX`.
    next_due_us: AtomicI64,
}

impl Wake {
    pub(crate) fn new() -> Self {
        Wake {
            notify: Notify::new(),
            epoch: AtomicU64::new(0),
            next_due_us: AtomicI64::new(i64::MAX),
        }
    }

    /// Wakes the waiting workers (`due_us == 0`: a job is ready), or tells
    /// them of a time a job becomes due (`due_us > 0`), so they sleep no
    /// longer than that.
    pub(crate) fn wake(&self, due_us: i64) {
        if due_us > 0 {
            self.next_due_us.fetch_min(due_us, Ordering::AcqRel);
        } else {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        self.notify.notify_waiters();
    }

    /// The count of wake-ups so far: a reserve notes it as it starts, so a
    /// wait after it returns at once if something became ready meanwhile.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Records the earliest due time a reserve found (`i64::MAX`: none).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn set_next_due(&self, due_us: i64) {
        self.next_due_us.store(due_us, Ordering::Release);
    }

    /// Waits until a wake-up since epoch `seen`, the earliest known due
    /// time, or `timeout`, whichever comes first.
    pub(crate) async fn wait(&self, seen: u64, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.epoch() != seen {
                // Something became ready since the last reserve started.
                return;
            }
            // The earliest known time a job becomes due or a rate limit lets
            // one start (a message may lower it while we wait).
            let due = self.next_due_us.load(Ordering::Acquire);
            let until = if due == i64::MAX {
                deadline
            } else {
                let wait = Duration::from_micros(
                    u64::try_from(due - Utc::now().timestamp_micros()).unwrap_or(0),
                );
                deadline.min(tokio::time::Instant::now() + wait + Duration::from_millis(1))
            };
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(until) => {
                    if until < deadline {
                        // That job is due: forget the time, reserve.
                        let _ = self.next_due_us.compare_exchange(
                            due, i64::MAX, Ordering::AcqRel, Ordering::Acquire);
                    }
                    return;
                }
            }
        }
    }
}

/// How an event message carries a progress value.
#[derive(Clone, Copy)]
pub(crate) enum ProgressField {
    /// As a JSON value.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Value,
    /// As a string holding JSON (Lua's encoder cannot embed raw JSON).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Text,
}

/// The events of one message: a JSON array of `[kind, id, name(,
/// progress)]` arrays. Entries that do not parse are skipped; `None` if the
/// message itself does not.
pub(crate) fn decode_events(payload: &[u8], progress: ProgressField) -> Option<Vec<JobEvent>> {
    let list = serde_json::from_slice::<Vec<Vec<Value>>>(payload).ok()?;
    let mut events = Vec::with_capacity(list.len());
    for mut fields in list {
        let value = (fields.len() > 3).then(|| fields.swap_remove(3));
        let kind = fields
            .first()
            .cloned()
            .and_then(|k| serde_json::from_value::<JobEventKind>(k).ok());
        let id = fields
            .get(1)
            .and_then(|v| v.as_str())
            .and_then(|v| v.parse::<JobId>().ok());
        let (Some(kind), Some(id)) = (kind, id) else {
            continue;
        };
        let name = fields.get(2).and_then(|v| v.as_str()).unwrap_or_default();
        let mut event = JobEvent::new(id, name.to_owned(), kind);
        let value = match (value, progress) {
            (Some(Value::String(text)), ProgressField::Text) => serde_json::from_str(&text).ok(),
            (_, ProgressField::Text) => None,
            (value, ProgressField::Value) => value,
        };
        if let Some(value) = value {
            event = event.with_progress(value);
        }
        events.push(event);
    }
    Some(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_decode_with_either_progress_form() {
        let id = JobId::new();
        let text =
            format!(r#"[["progress","{id}","resize","{{\"done\":1}}"],["started","bad","x"]]"#);
        let events = decode_events(text.as_bytes(), ProgressField::Text).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].job_id, id);
        assert_eq!(events[0].progress, Some(serde_json::json!({"done": 1})));
        let value = format!(r#"[["progress","{id}","resize","half"]]"#);
        let events = decode_events(value.as_bytes(), ProgressField::Value).unwrap();
        assert_eq!(events[0].progress, Some(serde_json::json!("half")));
        assert!(decode_events(b"not json", ProgressField::Value).is_none());
    }
}
