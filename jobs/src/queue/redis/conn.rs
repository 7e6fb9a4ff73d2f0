//! Calls to Redis: one path for scripts and plain commands, bounded by the
//! queue's timeout, tried once more after a refused connection; and the
//! mapping of Redis errors to [`Error::Backend`].

use redis::aio::ConnectionManager;
use redis::{Cmd, FromRedisValue, RedisError, ScriptInvocation};

use super::{Shared, scripts};
use crate::error::{BackendError, Error, Result};

/// What is sent: a script invocation (`EVALSHA`, loading the script if
/// Redis lost it) or a plain command.
pub(super) enum Request<'a> {
    Script(&'a ScriptInvocation<'a>),
    Cmd(&'a Cmd),
}

impl<'a> From<&'a ScriptInvocation<'a>> for Request<'a> {
    fn from(call: &'a ScriptInvocation<'a>) -> Self {
        Request::Script(call)
    }
}

impl<'a> From<&'a Cmd> for Request<'a> {
    fn from(cmd: &'a Cmd) -> Self {
        Request::Cmd(cmd)
    }
}

impl Request<'_> {
    async fn send<T: FromRedisValue>(&self, conn: &mut ConnectionManager) -> redis::RedisResult<T> {
        match self {
            Request::Script(call) => call.invoke_async(conn).await,
            Request::Cmd(cmd) => cmd.query_async(conn).await,
        }
    }
}

impl Shared {
    /// Sends `request` under the timeout. A call refused because the
    /// connection was down (so it never reached Redis) is tried once more,
    /// on the fresh connection the refusal set up: the first call after an
    /// outage succeeds. `what` names the call in a timeout's message.
    pub(super) async fn call<'r, T: FromRedisValue>(
        &self,
        what: &str,
        request: impl Into<Request<'r>>,
    ) -> Result<T> {
        let request = request.into();
        let mut retried = false;
        loop {
            let mut conn = self.conn.clone();
            match tokio::time::timeout(self.timeout, request.send(&mut conn)).await {
                Ok(Err(e)) if !retried && e.is_connection_refusal() => retried = true,
                Ok(result) => return result.map_err(backend),
                Err(_) => return Err(self.timed_out(what)),
            }
        }
    }

    pub(super) fn timed_out(&self, what: &str) -> Error {
        Error::Backend(BackendError::new(format!(
            "redis: {what} timed out after {:?}",
            self.timeout
        )))
    }

    /// The keys and arguments every queue script takes.
    pub(super) fn common(&self) -> scripts::Common<'_> {
        let k = &self.keys;
        scripts::Common {
            keys: [
                &k.jobs, &k.state, &k.ready, &k.delayed, &k.running, &k.done, &k.seq, &k.counts,
                &k.meta, &k.queues, &k.paused, &k.active, &k.wakes, &k.unique, &k.keys,
            ],
            channel: &k.wake,
            events: &k.events,
            max_finished: self.max_finished,
            finished_ttl_us: self.finished_ttl_us,
        }
    }
}

/// A Redis error as the queue's [`Error::Backend`]: the message `redis`,
/// the Redis error kept as the source (its text shown after the message),
/// and whether trying again may help.
pub(super) fn backend(e: RedisError) -> Error {
    // Connection-level failures (refused, reset, timed out, a server that
    // is loading or failing over) may pass; a command Redis refuses will not.
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::BusyLoading
                    | redis::ServerErrorKind::TryAgain
                    | redis::ServerErrorKind::MasterDown
                    | redis::ServerErrorKind::ClusterDown
                    | redis::ServerErrorKind::ReadOnly
            )
        );
    Error::Backend(
        BackendError::new("redis")
            .with_source(e)
            .transient(transient),
    )
}
