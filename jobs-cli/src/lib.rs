//! The `jobs` command: look at and steer a [jobs] queue on Redis or
//! PostgreSQL from a terminal or a script.
//!
//! ```text
//! $ jobs --url redis://127.0.0.1:6379/ stats
//! $ jobs --url postgres://postgres@127.0.0.1:5432/app list --status failed
//! $ jobs show 1b4e28ba-2fa1-41d2-883f-0016d3cca427
//! $ jobs retry --all-failed --name send_email --yes
//! $ jobs purge --status completed
//! $ jobs pause emails
//! $ jobs workflow 0b5d6f4e-9c1a-4e4b-8f43-2a9e1c7d3b10
//! ```
//!
//! The queue is reached by URL (`--url` or `$JOBS_URL`) with
//! [`AnyQueue::open`]; `--namespace` (or `$JOBS_NAMESPACE`) is the
//! Redis queue name or the PostgreSQL schema. Every command uses only the
//! queue's public admin API ([`QueueAdmin`](jobs::QueueAdmin)).
//!
//! Output is aligned tables by default; with `--json` each command prints
//! one JSON document on stdout (the serde form of the `jobs` types: a
//! [`Job`](jobs::Job), a list of [`QueueInfo`](jobs::QueueInfo), ...).
//! Errors and prompts go to stderr. The destructive bulk commands
//! (`retry --all-failed`, `purge`) ask for confirmation on a terminal, and
//! without one refuse unless `--yes` is given.
//!
//! # Exit codes
//!
//! | code | [`Exit`] | when |
//! |------|----------|------|
//! | 0 | [`Exit::Ok`] | done |
//! | 1 | [`Exit::Error`] | the backend is unreachable or failed; bad input (a malformed id, a running status to purge, a non-loopback `web --bind` without `--public`) |
//! | 2 | [`Exit::Usage`] | an unknown command or flag (clap's), no `--url` |
//! | 3 | [`Exit::NotFound`] | `show`, `retry`, `cancel` or `delete` of an unknown job id; `workflow` of an unknown workflow id |
//! | 4 | [`Exit::Refused`] | a confirmation declined or impossible (stdin not a terminal and no `--yes`), a running job not deleted, a job not in a state the command applies to (retry of a pending job, cancel of a finished one), `workflow --cancel` of a finished workflow |
//!
//! # As a library
//!
//! [`run`] is the whole command; [`run_on`] runs it on a queue the caller
//! made, writing to a [`Terminal`] of the caller's, which is how it is
//! tested without a server:
//!
//! ```
//! use clap::Parser;
//! use jobs::{AnyQueue, Enqueue, Job, MemoryJobQueue};
//! use jobs_cli::{Cli, Exit, Terminal};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let queue = AnyQueue::new(MemoryJobQueue::new());
//! queue.enqueue(Job::new("send_email", serde_json::json!({}))).await.unwrap();
//! let cli = Cli::parse_from(["jobs", "--json", "queues"]);
//! let mut term = Terminal::new(Vec::new(), Vec::new(), std::io::empty());
//! assert_eq!(jobs_cli::run_on(&cli, queue, &mut term).await, Exit::Ok);
//! # }
//! ```

mod args;
mod commands;
mod output;
mod terminal;

use std::io::Write;
use std::process::ExitCode;

pub use args::{Cli, Command, ListArgs, PurgeArgs, RetryArgs, StatusArg, WebArgs, WorkflowArgs};
use jobs::AnyQueue;
pub use terminal::Terminal;

/// How a command ended: the process's exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// 0: done.
    Ok = 0,
    /// 1: the backend is unreachable or failed, or the input is bad.
    Error = 1,
    /// 2: the command line is wrong (clap exits with this code too).
    Usage = 2,
    /// 3: no job (or workflow) with that id.
    NotFound = 3,
    /// 4: refused: not confirmed, a running job not deleted, a job not in
    /// a state the command applies to, a finished workflow not cancelled.
    Refused = 4,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// Why a command did not succeed: the exit code and the message for stderr.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) exit: Exit,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn error(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::Error,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::NotFound,
            message: message.into(),
        }
    }

    pub(crate) fn refused(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::Refused,
            message: message.into(),
        }
    }
}

/// Runs the command `cli` describes on the process's standard streams:
/// connects to the queue at its URL, does what the command says, prints
/// the result, and returns the exit code.
pub async fn run(cli: Cli) -> Exit {
    let mut term = Terminal::stdio();
    run_in(&cli, &mut term).await
}

/// [`run`], writing to and reading from `term`.
pub async fn run_in(cli: &Cli, term: &mut Terminal) -> Exit {
    if let Command::Web(args) = &cli.command {
        // A refused address fails before anything connects.
        if let Err(failure) = commands::check_bind(args) {
            return finish(term, Err(failure));
        }
    }
    let Some(url) = cli.url.as_deref() else {
        let failure = Failure {
            exit: Exit::Usage,
            message: "no queue URL: pass --url (or set JOBS_URL), \
                      e.g. --url redis://127.0.0.1:6379/ or --url postgres://user@host/db"
                .to_owned(),
        };
        return finish(term, Err(failure));
    };
    let target = target(cli, backend_of(url));
    let connect = AnyQueue::open(url, cli.namespace.as_deref());
    let queue = match tokio::time::timeout(cli.timeout, connect).await {
        Ok(Ok(queue)) => queue,
        Ok(Err(e)) => {
            return finish(
                term,
                Err(Failure::error(format!("cannot connect to {target}: {e}"))),
            );
        }
        Err(_) => {
            return finish(
                term,
                Err(Failure::error(format!(
                    "cannot connect to {target}: no answer within {:?} (see --timeout)",
                    cli.timeout
                ))),
            );
        }
    };
    run_on(cli, queue, term).await
}

/// Runs the command `cli` describes on `queue` (its `--url` is only used
/// to name the queue in messages), writing to `term`.
pub async fn run_on(cli: &Cli, queue: AnyQueue, term: &mut Terminal) -> Exit {
    let target = target(cli, queue.backend());
    let mut ctx = commands::Ctx {
        queue,
        target,
        timeout: cli.timeout,
        json: cli.json,
        term,
    };
    let done = ctx.run(&cli.command).await;
    finish(term, done)
}

/// Reports a failure on stderr and turns the result into the exit code.
fn finish(term: &mut Terminal, done: Result<(), Failure>) -> Exit {
    match done {
        Ok(()) => Exit::Ok,
        Err(failure) => {
            let _ = writeln!(term.err, "error: {}", failure.message);
            let _ = term.err.flush();
            failure.exit
        }
    }
}

/// Which backend a URL names, by its scheme.
fn backend_of(url: &str) -> &'static str {
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("postgres" | "postgresql") => "postgres",
        Some("redis" | "rediss" | "redis+unix" | "unix") => "redis",
        _ => "queue",
    }
}

/// The queue as messages name it: the URL without its password, and the
/// namespace (`redis://127.0.0.1:6379/ (queue "default")`).
fn target(cli: &Cli, backend: &str) -> String {
    let place = cli
        .url
        .as_deref()
        .map_or_else(|| backend.to_owned(), output::redact_url);
    let (kind, default) = match backend {
        "postgres" => ("schema", "jobs"),
        "redis" => ("queue", jobs::DEFAULT_QUEUE),
        _ => return place,
    };
    let namespace = cli.namespace.as_deref().unwrap_or(default);
    format!("{place} ({kind} \"{namespace}\")")
}

#[cfg(test)]
mod tests;
