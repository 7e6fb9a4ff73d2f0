//! Wake-ups, revocations and job events: a pub/sub subscription (on a
//! dedicated connection) to the queue's wake channel, on which the scripts
//! publish when a job becomes ready (`0`), when the earliest scheduled job
//! is due or a rate limit lets a held job start (the time in µs), and when
//! a running job was cancelled (`revoked`); and, once anyone called
//! `subscribe`, to the events channel, whose messages (one per script call:
//! a JSON array of `[kind, id, name, progress JSON]`) are relayed to the
//! local subscribers.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::RedisError;
use tokio::sync::Notify;

use super::Shared;
use crate::events::{JobEvent, JobEventKind};
use crate::job::JobId;

/// Wake-ups for idle workers, fed by the subscription.
pub(super) struct Wake {
    pub(super) notify: Notify,
    /// Bumped on every wake message (and on each (re)subscription).
    pub(super) epoch: AtomicU64,
    /// The earliest known due time of a scheduled job (µs), or `i64::MAX`.
    pub(super) next_due_us: AtomicI64,
}

impl Wake {
    pub(super) fn new() -> Self {
        Wake {
            notify: Notify::new(),
            epoch: AtomicU64::new(0),
            next_due_us: AtomicI64::new(i64::MAX),
        }
    }

    /// Wakes the waiting workers (`due_us == 0`: a job is ready), or tells
    /// them of a time a job becomes due (`due_us > 0`), so they sleep no
    /// longer than that.
    fn wake(&self, due_us: i64) {
        if due_us > 0 {
            self.next_due_us.fetch_min(due_us, Ordering::AcqRel);
        } else {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        self.notify.notify_waiters();
    }
}

/// Keeps a pub/sub subscription to the queue's wake channel and turns its
/// messages into wake-ups and revocations; resubscribes with backoff when
/// Redis goes away.
pub(super) async fn subscribe(shared: Arc<Shared>) {
    let mut delay = Duration::from_millis(100);
    loop {
        let connected = async {
            let mut pubsub = shared.client.get_async_pubsub().await?;
            pubsub.subscribe(&shared.keys.wake).await?;
            if shared.events_wanted.load(Ordering::Acquire) {
                pubsub.subscribe(&shared.keys.events).await?;
            }
            Ok::<_, RedisError>(pubsub)
        };
        let attempt = tokio::select! {
            _ = shared.stop.cancelled() => return,
            attempt = tokio::time::timeout(shared.timeout, connected) => attempt,
        };
        match attempt {
            Ok(Ok(pubsub)) => {
                delay = Duration::from_millis(100);
                // Jobs may have come while we were not listening.
                shared.wake.wake(0);
                let (mut sink, mut messages) = pubsub.split();
                let mut events = shared.events_wanted.load(Ordering::Acquire);
                loop {
                    let message = tokio::select! {
                        _ = shared.stop.cancelled() => return,
                        _ = shared.events_on.notified(), if !events => {
                            events = true;
                            let subscribed = tokio::time::timeout(
                                shared.timeout,
                                sink.subscribe(&shared.keys.events),
                            );
                            if !matches!(subscribed.await, Ok(Ok(()))) {
                                break;
                            }
                            continue;
                        }
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    if message.get_channel_name() == shared.keys.events {
                        relay(&shared, message.get_payload_bytes());
                        continue;
                    }
                    let payload: String = message.get_payload().unwrap_or_default();
                    if payload == "revoked" {
                        shared.revoked.notify_one();
                    } else {
                        shared.wake.wake(payload.parse().unwrap_or(0));
                    }
                }
                tracing::debug!(queue = %shared.name, "wake subscription lost; resubscribing");
            }
            Ok(Err(e)) => {
                tracing::debug!(queue = %shared.name, error = %e, "wake subscription failed")
            }
            Err(_) => tracing::debug!(queue = %shared.name, "wake subscription timed out"),
        }
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Hands the events of one message to the local subscribers.
fn relay(shared: &Shared, payload: &[u8]) {
    if shared.events.receiver_count() == 0 {
        return;
    }
    let Ok(list) = serde_json::from_slice::<Vec<Vec<serde_json::Value>>>(payload) else {
        tracing::debug!(queue = %shared.name, "an event message that does not parse");
        return;
    };
    for fields in list {
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
        if let Some(progress) = fields.get(3).and_then(|v| v.as_str()) {
            if let Ok(value) = serde_json::from_str(progress) {
                event = event.with_progress(value);
            }
        }
        let _ = shared.events.send(event);
    }
}
