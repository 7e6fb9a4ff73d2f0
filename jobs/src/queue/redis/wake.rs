//! Wake-ups, revocations and job events: a pub/sub subscription (on a
//! dedicated connection) to the queue's wake channel, on which the scripts
//! publish when a job becomes ready (`0`), when the earliest scheduled job
//! is due or a rate limit lets a held job start (the time in µs), and when
//! a running job was cancelled (`revoked`); and, once anyone called
//! `subscribe`, to the events channel, whose messages (one per script call:
//! a JSON array of `[kind, id, name, progress JSON]`) are relayed to the
//! local subscribers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use redis::RedisError;

use super::Shared;
use crate::queue::wake::{ProgressField, decode_events};

/// Keeps a pub/sub subscription to the queue's wake channel and turns its
/// messages into wake-ups and revocations; resubscribes with backoff when
/// Redis goes away.
pub(super) async fn subscribe(shared: Arc<Shared>) {
    let mut delay = Duration::from_millis(100);
    loop {
        let connected = async {
            let mut pubsub = shared.client.get_async_pubsub().await?;
            pubsub.subscribe(&shared.keys.wake).await?;
            // Read once: a `subscribe` call after this read notifies
            // `events_on`, which the loop below then answers.
            let events = shared.events_wanted.load(Ordering::Acquire);
            if events {
                pubsub.subscribe(&shared.keys.events).await?;
            }
            Ok::<_, RedisError>((pubsub, events))
        };
        let attempt = tokio::select! {
            _ = shared.stop.cancelled() => return,
            attempt = tokio::time::timeout(shared.timeout, connected) => attempt,
        };
        match attempt {
            Ok(Ok((pubsub, mut events))) => {
                delay = Duration::from_millis(100);
                // Jobs may have come while we were not listening.
                shared.wake.wake(0);
                let (mut sink, mut messages) = pubsub.split();
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
    let Some(events) = decode_events(payload, ProgressField::Text) else {
        tracing::debug!(queue = %shared.name, "an event message that does not parse");
        return;
    };
    for event in events {
        let _ = shared.events.send(event);
    }
}
