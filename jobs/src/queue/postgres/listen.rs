//! Wake-ups, revocations and job events: a dedicated connection LISTENs on
//! the queue's channel, where the queries NOTIFY when jobs become ready
//! (`w`), when the earliest scheduled job is due (`d` + µs), when a running
//! job was cancelled (`r`), and job events (`e` + a JSON array of `[kind,
//! id, name(, progress)]`). Notifications sent while the listener
//! reconnects are lost: the polling interval is the fallback, and each
//! (re)connection wakes the workers once.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};

use super::Shared;
use crate::queue::wake::{ProgressField, decode_events};

/// Listens on the channel until the queue is dropped; reconnects with
/// backoff when the connection is lost.
pub(super) async fn listen(shared: Arc<Shared>) {
    // A pool of its own: the listener holds its connection for good, and
    // must not take one of the application's.
    let own = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(shared.timeout)
        .connect_lazy_with((*shared.pool.connect_options()).clone());
    let mut delay = Duration::from_millis(100);
    loop {
        let connected = async {
            let mut listener = PgListener::connect_with(&own).await?;
            listener.listen(&shared.channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let attempt = tokio::select! {
            _ = shared.stop.cancelled() => return,
            attempt = tokio::time::timeout(shared.timeout, connected) => attempt,
        };
        match attempt {
            Ok(Ok(mut listener)) => {
                delay = Duration::from_millis(100);
                // Jobs may have come while nobody listened.
                shared.wake.wake(0);
                shared.revoked.notify_one();
                loop {
                    let message = tokio::select! {
                        _ = shared.stop.cancelled() => return,
                        message = listener.try_recv() => message,
                    };
                    match message {
                        Ok(Some(note)) => dispatch(&shared, note.payload()),
                        Ok(None) => {
                            // The connection was lost (and will be re-made
                            // by the next try_recv): wake everyone once.
                            shared.wake.wake(0);
                            shared.revoked.notify_one();
                        }
                        Err(e) => {
                            tracing::debug!(schema = %shared.schema, error = %e, "listener failed");
                            break;
                        }
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(schema = %shared.schema, error = %e, "listen failed")
            }
            Err(_) => tracing::debug!(schema = %shared.schema, "listen timed out"),
        }
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

fn dispatch(shared: &Shared, payload: &str) {
    match payload.as_bytes().first() {
        Some(b'w') => shared.wake.wake(0),
        Some(b'd') => shared.wake.wake(payload[1..].parse().unwrap_or(0)),
        Some(b'r') => shared.revoked.notify_one(),
        Some(b'e') => relay(shared, &payload[1..]),
        _ => tracing::debug!(schema = %shared.schema, "an unknown notification"),
    }
}

/// Hands the events of one notification to the local subscribers.
fn relay(shared: &Shared, payload: &str) {
    if shared.events.receiver_count() == 0 {
        return;
    }
    let Some(events) = decode_events(payload.as_bytes(), ProgressField::Value) else {
        tracing::debug!(schema = %shared.schema, "an event notification that does not parse");
        return;
    };
    for event in events {
        let _ = shared.events.send(event);
    }
}

/// Deletes finished jobs beyond the retention limits, once a second, in
/// short statements of at most 1,000 rows.
pub(super) async fn prune(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        loop {
            match shared.prune_once(1000).await {
                Ok(n) if n >= 1000 => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::debug!(schema = %shared.schema, error = %e, "pruning failed");
                    break;
                }
            }
        }
    }
}
