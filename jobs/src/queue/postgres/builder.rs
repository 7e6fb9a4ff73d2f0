//! [`PostgresJobQueueBuilder`]: the settings of a [`PostgresJobQueue`].

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::sql::Sql;
use super::{DEFAULT_SCHEMA, PostgresJobQueue, Shared, backend};
use crate::error::{Error, Result};
use crate::queue::wake::Wake;

/// The longest schema name: the channel `<schema>_jobs` must fit
/// PostgreSQL's 63-byte identifiers.
const MAX_SCHEMA: usize = 58;

/// Builds a [`PostgresJobQueue`] with non-default settings; get one with
/// [`PostgresJobQueue::builder`].
///
/// ```no_run
/// use std::time::Duration;
/// use jobs::PostgresJobQueue;
///
/// # #[tokio::main] async fn main() -> Result<(), jobs::Error> {
/// let queue = PostgresJobQueue::builder("postgres://postgres@127.0.0.1/app")
///     .schema("background")
///     .timeout(Duration::from_secs(2))
///     .max_finished(1_000)
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PostgresJobQueueBuilder {
    url: String,
    pool: Option<PgPool>,
    schema: String,
    timeout: Duration,
    connect_timeout: Duration,
    max_connections: u32,
    min_connections: u32,
    max_finished: u64,
    finished_ttl: Option<Duration>,
    migrate: bool,
}

impl PostgresJobQueueBuilder {
    pub(super) fn new(url: &str) -> Self {
        PostgresJobQueueBuilder {
            url: url.to_owned(),
            pool: None,
            schema: DEFAULT_SCHEMA.to_owned(),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            max_connections: 10,
            min_connections: 2,
            max_finished: crate::queue::DEFAULT_MAX_FINISHED,
            finished_ttl: None,
            migrate: true,
        }
    }

    /// Uses the application's pool instead of making one from the URL
    /// (which is then ignored).
    pub fn pool(mut self, pool: PgPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// The schema the queue's tables are in (default `jobs`): queues in
    /// different schemas of one database are independent. ASCII letters,
    /// digits, `_` and `-`, at most 58 bytes.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// How long one call to the database may take before it is an error
    /// (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long connecting may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The most connections of the pool made from the URL (default 10; one
    /// more is the listener's).
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }

    /// How many connections of the pool made from the URL are kept open
    /// even when idle (default 2), so that a burst of calls does not wait
    /// for new connections to be made.
    pub fn min_connections(mut self, min: u32) -> Self {
        self.min_connections = min;
        self
    }

    /// Keeps at most this many finished jobs (the oldest go first; default
    /// [`DEFAULT_MAX_FINISHED`](crate::queue::DEFAULT_MAX_FINISHED)).
    /// Periodic tasks and
    /// [`enqueue_idempotent`](crate::queue::Enqueue::enqueue_idempotent)
    /// rely on the ids of recent finished jobs: keep at least one schedule
    /// period's (or retry window's) worth.
    pub fn max_finished(mut self, max: u64) -> Self {
        self.max_finished = max;
        self
    }

    /// Forgets finished jobs older than this.
    pub fn finished_ttl(mut self, ttl: Duration) -> Self {
        self.finished_ttl = Some(ttl);
        self
    }

    /// Whether [`connect`](Self::connect) applies the migrations (default
    /// yes). Turn it off where a deploy step runs
    /// [`PostgresJobQueue::migrate`] instead.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    fn check(&self) -> Result<()> {
        let valid = !self.schema.is_empty()
            && self.schema.len() <= MAX_SCHEMA
            && self
                .schema
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(Error::InvalidArgument(format!(
                "invalid schema name {:?}: use 1 to {MAX_SCHEMA} ASCII letters, digits, `_` or `-`",
                self.schema
            )));
        }
        if self.timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "the PostgreSQL timeout must be longer than zero".into(),
            ));
        }
        Ok(())
    }

    fn pool_of(&self) -> Result<PgPool> {
        if let Some(pool) = &self.pool {
            return Ok(pool.clone());
        }
        let options: PgConnectOptions = self
            .url
            .parse()
            .map_err(|e| Error::InvalidArgument(format!("invalid PostgreSQL URL: {e}")))?;
        Ok(PgPoolOptions::new()
            .max_connections(self.max_connections.max(1))
            .min_connections(self.min_connections.min(self.max_connections.max(1)))
            .acquire_timeout(self.connect_timeout)
            .connect_lazy_with(options))
    }

    fn shared(self, pool: PgPool) -> Shared {
        let channel = format!("{}_jobs", self.schema);
        Shared {
            sql: Sql::new(&self.schema, &channel),
            pool,
            channel,
            schema: self.schema,
            timeout: self.timeout,
            max_finished: self.max_finished,
            finished_ttl_us: self.finished_ttl.map_or(0, super::micros),
            wake: Wake::new(),
            revoked: Notify::new(),
            events: tokio::sync::broadcast::channel(1024).0,
            stop: CancellationToken::new(),
        }
    }

    /// The queue, connecting lazily on first use (so it can be built while
    /// the database is down), without running the migrations. Needs a
    /// tokio runtime.
    pub fn build(self) -> Result<PostgresJobQueue> {
        self.check()?;
        let pool = self.pool_of()?;
        Ok(PostgresJobQueue::from_shared(self.shared(pool)))
    }

    /// The queue, once the database answered (and the migrations ran,
    /// unless turned off).
    pub async fn connect(self) -> Result<PostgresJobQueue> {
        self.check()?;
        let pool = self.pool_of()?;
        let timeout = self.connect_timeout + self.timeout;
        let migrate = self.migrate;
        match tokio::time::timeout(timeout, pool.acquire()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(backend("connect", e)),
            Err(_) => {
                return Err(Error::backend(format!(
                    "postgres: connecting timed out after {timeout:?}"
                )));
            }
        }
        let queue = PostgresJobQueue::from_shared(self.shared(pool));
        if migrate {
            queue.migrate().await?;
        }
        Ok(queue)
    }
}
