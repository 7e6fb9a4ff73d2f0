//! Wake-ups and revocations: a pub/sub subscription (on a dedicated
//! connection) to the queue's wake channel, on which the scripts publish
//! when a job becomes ready (`0`), when the earliest scheduled job is due
//! (its due time in µs), and when a running job was cancelled (`revoked`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::RedisError;
use tokio::sync::Notify;

use super::Shared;

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

    /// Wakes the waiting workers; `due_us > 0` is a scheduled job's due time.
    fn wake(&self, due_us: i64) {
        if due_us > 0 {
            self.next_due_us.fetch_min(due_us, Ordering::AcqRel);
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
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
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        _ = shared.stop.cancelled() => return,
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
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
