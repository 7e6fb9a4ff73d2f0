//! Calls to Redis: one path for scripts and plain commands, bounded by the
//! queue's timeout, tried once more after a refused connection; and the
//! mapping of Redis errors to [`Error::Backend`].

use std::sync::atomic::Ordering;

use redis::aio::ConnectionManager;
use redis::{Cmd, ErrorKind, FromRedisValue, RedisError, ScriptInvocation, ServerErrorKind};

use super::Shared;
use super::scripts::{self, Invocation};
use crate::error::{BackendError, Error, Result};

/// What is sent: a queue script's call (`FCALL`, or `EVALSHA` before
/// Redis 7; loading the library or script if Redis lost it), another
/// script's (`EVALSHA`), or a plain command.
pub(super) enum Request<'a> {
    Queue(&'a Invocation<'a>),
    Script(&'a ScriptInvocation<'a>),
    Cmd(&'a Cmd),
}

impl<'a> From<&'a Invocation<'a>> for Request<'a> {
    fn from(call: &'a Invocation<'a>) -> Self {
        Request::Queue(call)
    }
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

/// Whether the server runs functions (`Shared::functions`): not known yet.
pub(super) const FUNCTIONS_UNKNOWN: u8 = 0;
/// The server runs functions (Redis 7 and later).
const FUNCTIONS: u8 = 1;
/// The server has no functions (before Redis 7, or the user may not use
/// them): queue scripts go as scripts.
const NO_FUNCTIONS: u8 = 2;

impl Request<'_> {
    async fn send<T: FromRedisValue>(
        &self,
        shared: &Shared,
        conn: &mut ConnectionManager,
    ) -> redis::RedisResult<T> {
        match self {
            Request::Queue(call) => shared.send_queue_call(call, conn).await,
            Request::Script(call) => call.invoke_async(conn).await,
            Request::Cmd(cmd) => cmd.query_async(conn).await,
        }
    }
}

impl Shared {
    /// Sends a queue script's call: as a function of the library where the
    /// server has functions (loading the library on first use, or when
    /// Redis lost it: a restart without persistence, `FUNCTION FLUSH`),
    /// else as a script.
    async fn send_queue_call<T: FromRedisValue>(
        &self,
        call: &Invocation<'_>,
        conn: &mut ConnectionManager,
    ) -> redis::RedisResult<T> {
        let library = &self.scripts.library;
        if let Some(function) = &call.script.function {
            if self.functions.load(Ordering::Relaxed) == FUNCTIONS_UNKNOWN {
                self.load_library(conn).await?;
            }
            if self.functions.load(Ordering::Relaxed) == FUNCTIONS {
                let mut fcall = redis::cmd("FCALL");
                fcall
                    .arg(function)
                    .arg(call.keys.len())
                    .arg(&call.keys)
                    .arg(&call.args);
                return match fcall.query_async(conn).await {
                    Err(e) if function_missing(&e) => {
                        tracing::debug!(library = %library.name, "redis lost the function library; loading it again");
                        self.load_library(conn).await?;
                        fcall.query_async(conn).await
                    }
                    other => other,
                };
            }
        }
        let script = &call.script.script;
        let mut eval = redis::cmd("EVALSHA");
        eval.arg(script.get_hash())
            .arg(call.keys.len())
            .arg(&call.keys)
            .arg(&call.args);
        match eval.query_async(conn).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                script.load_async(conn).await?;
                eval.query_async(conn).await
            }
            other => other,
        }
    }

    /// Loads the function library (`FUNCTION LOAD REPLACE`) and records
    /// whether the server has functions at all.
    async fn load_library(&self, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
        let library = &self.scripts.library;
        let loaded: redis::RedisResult<String> = redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("REPLACE")
            .arg(&library.source)
            .query_async(conn)
            .await;
        match loaded {
            Ok(_) => {
                self.functions.store(FUNCTIONS, Ordering::Relaxed);
                Ok(())
            }
            Err(e) if no_functions(&e) => {
                tracing::debug!(error = %e, "redis runs no functions; the queue scripts go as scripts");
                self.functions.store(NO_FUNCTIONS, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

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
            match tokio::time::timeout(self.timeout, request.send(self, &mut conn)).await {
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

/// Whether `FCALL` failed because the server lost the library.
fn function_missing(e: &RedisError) -> bool {
    e.detail()
        .is_some_and(|d| d.starts_with("Function not found"))
}

/// Whether `FUNCTION LOAD` failed because the server has no functions
/// (before Redis 7: an unknown command) or the user may not load them.
fn no_functions(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::NoPerm)
        || e.detail().is_some_and(|d| d.starts_with("unknown command"))
}
