//! [`RedisJobQueueBuilder`]: the settings of a [`RedisJobQueue`].

use std::time::Duration;

use redis::Client;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::conn::backend;
use super::scripts::Scripts;
use super::{Keys, RedisJobQueue, Shared};
use crate::error::{BackendError, Error, Result};
use crate::queue::wake::Wake;

/// Builds a [`RedisJobQueue`] with non-default settings; get one with
/// [`RedisJobQueue::builder`].
///
/// ```no_run
/// use std::time::Duration;
/// use jobs::queue::RedisJobQueue;
///
/// # #[tokio::main] async fn main() -> Result<(), jobs::Error> {
/// let queue = RedisJobQueue::builder("redis://127.0.0.1:6379")
///     .name("emails")
///     .timeout(Duration::from_secs(2))
///     .max_finished(1_000)
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RedisJobQueueBuilder {
    url: String,
    name: String,
    timeout: Duration,
    connect_timeout: Duration,
    max_finished: u64,
    finished_ttl: Option<Duration>,
}

impl RedisJobQueueBuilder {
    pub(super) fn new(url: &str) -> Self {
        RedisJobQueueBuilder {
            url: url.to_owned(),
            name: crate::job::DEFAULT_QUEUE.to_owned(),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            max_finished: crate::queue::DEFAULT_MAX_FINISHED,
            finished_ttl: None,
        }
    }

    /// The queue's name (default `"default"`): queues of different names on
    /// one Redis are independent. Any non-empty text without braces (`{`,
    /// `}` delimit the Redis Cluster hash tag in the keys): quotes,
    /// backslashes, spaces and any Unicode are fine.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How long one call to Redis may take before it is an error (default
    /// 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long connecting may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Keeps at most this many finished jobs (the oldest go first; default
    /// [`DEFAULT_MAX_FINISHED`](crate::queue::DEFAULT_MAX_FINISHED)).
    /// Periodic tasks rely on the ids of recent finished jobs to enqueue each
    /// occurrence once, and so does
    /// [`enqueue_idempotent`](crate::queue::Enqueue::enqueue_idempotent):
    /// keep at least one schedule period's (or retry window's) worth.
    pub fn max_finished(mut self, max: u64) -> Self {
        self.max_finished = max;
        self
    }

    /// Forgets finished jobs older than this.
    pub fn finished_ttl(mut self, ttl: Duration) -> Self {
        self.finished_ttl = Some(ttl);
        self
    }

    fn prepare(self) -> Result<(Client, ConnectionManagerConfig, Shared)> {
        if self.name.is_empty() || self.name.contains(['{', '}']) {
            return Err(Error::InvalidArgument(format!(
                "invalid queue name {:?}: it must be non-empty and contain no braces \
                 (they delimit the Redis Cluster hash tag of the queue's keys)",
                self.name
            )));
        }
        if self.timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "the Redis timeout must be longer than zero".into(),
            ));
        }
        let client = Client::open(self.url.as_str())
            .map_err(|e| Error::InvalidArgument(format!("invalid Redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let ttl_us = self
            .finished_ttl
            .map_or(0, |ttl| i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(backend)?;
        Ok((
            client.clone(),
            config,
            Shared {
                keys: Keys::new(&self.name),
                name: self.name,
                client,
                conn,
                scripts: Scripts::get(),
                enqueues_on_the_way: std::sync::atomic::AtomicUsize::new(0),
                functions: std::sync::atomic::AtomicU8::new(super::conn::FUNCTIONS_UNKNOWN),
                timeout: self.timeout,
                max_finished: self.max_finished,
                finished_ttl_us: ttl_us,
                wake: Wake::new(),
                revoked: Notify::new(),
                events: tokio::sync::broadcast::channel(1024).0,
                events_wanted: std::sync::atomic::AtomicBool::new(false),
                events_on: Notify::new(),
                stop: CancellationToken::new(),
            },
        ))
    }

    /// The queue, connecting lazily on first use (so it can be built while
    /// Redis is down). Needs a tokio runtime.
    pub fn build(self) -> Result<RedisJobQueue> {
        let (_, _, shared) = self.prepare()?;
        Ok(RedisJobQueue::from_shared(shared))
    }

    /// The queue, once Redis answered a `PING`.
    pub async fn connect(self) -> Result<RedisJobQueue> {
        let timeout = self.connect_timeout + self.timeout;
        let (client, config, mut shared) = self.prepare()?;
        let conn =
            tokio::time::timeout(timeout, ConnectionManager::new_with_config(client, config))
                .await
                .map_err(|_| {
                    Error::Backend(BackendError::new(format!(
                        "connecting to Redis timed out after {timeout:?}"
                    )))
                })?
                .map_err(backend)?;
        shared.conn = conn;
        let queue = RedisJobQueue::from_shared(shared);
        crate::queue::QueueAdmin::ping(&queue).await?;
        Ok(queue)
    }
}
