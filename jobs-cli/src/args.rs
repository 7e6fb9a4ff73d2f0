//! The command line as clap parses it: [`Cli`], its [`Command`]s and their
//! arguments.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use jobs::JobStatus;

/// The exit codes, as `jobs --help` lists them.
const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  error: the backend is unreachable or failed, or the input is bad (a malformed id)
  2  usage: an unknown command or flag, a missing --url
  3  not found: no job with that id (show, retry, cancel, delete), no workflow or batch
     with that id (workflow)
  4  refused: a confirmation declined or impossible (no terminal and no --yes), a running
     job not deleted, a job not in a state the command applies to, a finished workflow
     not cancelled

Examples:
  jobs --url redis://127.0.0.1:6379/ stats
  JOBS_URL=postgres://postgres@127.0.0.1:5432/app jobs list --status failed
  jobs --url redis://127.0.0.1:6379/ --namespace emails retry --all-failed --yes";

/// Where the global options are listed in each `--help`.
const GLOBAL: &str = "Global options";

/// `jobs`: look at and steer the jobs of a queue on Redis or PostgreSQL.
///
/// Connects to the queue at `--url` (or `$JOBS_URL`): `redis://host:port/db`
/// or `postgres://user@host/database`. `--namespace` picks the Redis queue
/// name (default "default") or the PostgreSQL schema (default "jobs").
/// Output is for people by default (aligned tables); with `--json` it is
/// JSON on stdout, for scripts. Errors go to stderr.
#[derive(Debug, Parser)]
#[command(name = "jobs", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// The queue's URL: redis://host:port/db or postgres://user@host/database.
    #[arg(long, env = "JOBS_URL", global = true, hide_env_values = true, help_heading = GLOBAL)]
    pub url: Option<String>,

    /// The Redis queue name or the PostgreSQL schema [default: the backend's, "default" or "jobs"].
    #[arg(long, env = "JOBS_NAMESPACE", global = true, hide_env_values = true, help_heading = GLOBAL)]
    pub namespace: Option<String>,

    /// Print JSON on stdout instead of tables.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,

    /// How long to wait for the backend, per call (e.g. 500ms, 10s, 2m); raise it to purge very many jobs.
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Counts by status, the named queues, throughput and workers alive.
    ///
    /// Shows how many jobs there are in each status, each named queue with
    /// its ready jobs and whether it is paused, the attempts processed and
    /// failed in the last minute and the last hour, and how many workers
    /// reported themselves recently.
    #[command(after_help = "Example:\n  jobs --url redis://127.0.0.1:6379/ stats")]
    Stats,

    /// The named queues: ready jobs and whether each is paused.
    #[command(after_help = "Example:\n  jobs --url redis://127.0.0.1:6379/ queues --json")]
    Queues,

    /// The workers alive: host, pid, when started, jobs running, queues.
    ///
    /// A worker reports itself every heartbeat period; one that stopped
    /// reporting drops off the list when its report expires.
    #[command(after_help = "Example:\n  jobs --url redis://127.0.0.1:6379/ workers")]
    Workers,

    /// Jobs, newest first, filtered by status, name and queue, a page at a time.
    ///
    /// Says when more jobs match than the page holds; ask for the next page
    /// with --offset.
    #[command(after_help = "Examples:\n  \
        jobs list --status failed --name send_email\n  \
        jobs list --queue emails --limit 100 --offset 100")]
    List(ListArgs),

    /// One job in full: arguments, each attempt's error, result, timeline, progress, metadata.
    ///
    /// Exits 3 if there is no such job.
    #[command(after_help = "Example:\n  jobs show 1b4e28ba-2fa1-41d2-883f-0016d3cca427")]
    Show {
        /// The job's id (a UUID).
        id: String,
    },

    /// Puts a failed, cancelled or expired job back in its queue, or all failed jobs.
    ///
    /// With an id: retries that job (exits 3 if there is no such job, 4 if
    /// it is not failed, cancelled or expired). With --all-failed: retries
    /// every failed job, or those of one name or queue, after asking for
    /// confirmation (or with --yes).
    #[command(after_help = "Examples:\n  \
        jobs retry 1b4e28ba-2fa1-41d2-883f-0016d3cca427\n  \
        jobs retry --all-failed --name send_email --yes")]
    Retry(RetryArgs),

    /// Cancels a waiting or running job (a running one is stopped by its worker).
    ///
    /// Exits 3 if there is no such job, 4 if it had finished already.
    #[command(after_help = "Example:\n  jobs cancel 1b4e28ba-2fa1-41d2-883f-0016d3cca427")]
    Cancel {
        /// The job's id (a UUID).
        id: String,
    },

    /// Removes a job that is not running, as if it never existed.
    ///
    /// A running job is left alone (exit 4): cancel it first. Exits 3 if
    /// there is no such job.
    #[command(after_help = "Example:\n  jobs delete 1b4e28ba-2fa1-41d2-883f-0016d3cca427")]
    Delete {
        /// The job's id (a UUID).
        id: String,
    },

    /// Removes every job with one status, or every job.
    ///
    /// Asks for confirmation on a terminal; without one, needs --yes (or
    /// exits 4, removing nothing). Running jobs cannot be purged by status.
    #[command(after_help = "Examples:\n  \
        jobs purge --status completed\n  \
        jobs purge --all --yes")]
    Purge(PurgeArgs),

    /// Pauses a named queue, fleet-wide: workers stop taking its jobs.
    ///
    /// Running jobs finish; jobs can still be enqueued. The pause is stored
    /// in the backend and outlives worker restarts.
    #[command(after_help = "Example:\n  jobs pause emails")]
    Pause {
        /// The named queue.
        queue: String,
    },

    /// Resumes a paused named queue.
    #[command(after_help = "Example:\n  jobs resume emails")]
    Resume {
        /// The named queue.
        queue: String,
    },

    /// A workflow or batch: its counts and its steps, or cancels it with --cancel.
    ///
    /// Lists how many of its jobs there are, pending, completed, failed and
    /// cancelled, and each step still kept: its name, job, status and the
    /// steps it depends on. With --cancel, cancels every step that has not
    /// finished (a batch's callbacks included) after asking for
    /// confirmation (or with --yes). Exits 3 if there is no such workflow,
    /// 4 if --cancel finds it finished.
    #[command(
        visible_alias = "batch",
        after_help = "Examples:\n  \
        jobs workflow 0b5d6f4e-9c1a-4e4b-8f43-2a9e1c7d3b10\n  \
        jobs batch 0b5d6f4e-9c1a-4e4b-8f43-2a9e1c7d3b10 --json\n  \
        jobs workflow 0b5d6f4e-9c1a-4e4b-8f43-2a9e1c7d3b10 --cancel --yes"
    )]
    Workflow(WorkflowArgs),

    /// Serves the web dashboard over this queue until Ctrl-C.
    ///
    /// Binds to a loopback address unless --public is given. With
    /// JOBS_WEB_USER and JOBS_WEB_PASSWORD set, every request needs those
    /// credentials (basic auth); --read-only leaves out every action.
    #[command(after_help = "Examples:\n  \
        jobs web\n  \
        jobs web --bind 127.0.0.1:9000 --read-only")]
    Web(WebArgs),
}

/// The arguments of `jobs list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only jobs with this status.
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,

    /// Only jobs of this name.
    #[arg(long)]
    pub name: Option<String>,

    /// Only jobs of this named queue.
    #[arg(long)]
    pub queue: Option<String>,

    /// How many jobs to show (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=jobs::queue::MAX_PAGE as u64))]
    pub limit: u64,

    /// How many matching jobs to skip, newest first.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
}

/// The arguments of `jobs retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The job to retry.
    #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
    pub id: Option<String>,

    /// Retry every failed job (of --name and --queue, if given).
    #[arg(long)]
    pub all_failed: bool,

    /// With --all-failed: only jobs of this name.
    #[arg(long, conflicts_with = "id")]
    pub name: Option<String>,

    /// With --all-failed: only jobs of this named queue.
    #[arg(long, conflicts_with = "id")]
    pub queue: Option<String>,

    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// The arguments of `jobs purge`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).args(["status", "all"])))]
pub struct PurgeArgs {
    /// Remove the jobs with this status (not running).
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,

    /// Remove every job, in every status.
    #[arg(long)]
    pub all: bool,

    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// The arguments of `jobs workflow` (`jobs batch`).
#[derive(Debug, Args)]
pub struct WorkflowArgs {
    /// The workflow's or batch's id (a UUID).
    pub id: String,

    /// Cancel every step that has not finished.
    #[arg(long)]
    pub cancel: bool,

    /// With --cancel: do not ask for confirmation.
    #[arg(long, short = 'y', requires = "cancel")]
    pub yes: bool,
}

/// The arguments of `jobs web`.
#[derive(Clone, Debug, Args)]
pub struct WebArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Show the dashboard without its actions (no retry, cancel, delete, purge, pause).
    #[arg(long)]
    pub read_only: bool,

    /// Allow a --bind address that is not loopback.
    #[arg(long)]
    pub public: bool,
}

/// A job status on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    /// Waiting to run, now or later.
    Pending,
    /// Reserved by a worker and running.
    Running,
    /// Finished successfully.
    Completed,
    /// Failed for good.
    Failed,
    /// Failed an attempt, waiting to be retried.
    Retrying,
    /// Cancelled.
    Cancelled,
    /// Expired before it could run.
    Expired,
}

impl From<StatusArg> for JobStatus {
    fn from(status: StatusArg) -> Self {
        match status {
            StatusArg::Pending => JobStatus::Pending,
            StatusArg::Running => JobStatus::Running,
            StatusArg::Completed => JobStatus::Completed,
            StatusArg::Failed => JobStatus::Failed,
            StatusArg::Retrying => JobStatus::Retrying,
            StatusArg::Cancelled => JobStatus::Cancelled,
            StatusArg::Expired => JobStatus::Expired,
        }
    }
}

/// Parses `500ms`, `10s`, `2m`, `1h`, or a plain number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: write e.g. 500ms, 10s or 2m"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{s}`: use ms, s, m or h"
            ));
        }
    };
    match Duration::try_from_secs_f64(seconds) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("`{s}` is not a positive duration")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn retry_takes_an_id_or_all_failed_but_not_both() {
        assert!(Cli::try_parse_from(["jobs", "retry"]).is_err());
        assert!(Cli::try_parse_from(["jobs", "retry", "x", "--all-failed"]).is_err());
        assert!(Cli::try_parse_from(["jobs", "retry", "x", "--name", "n"]).is_err());
        let cli = Cli::try_parse_from(["jobs", "retry", "--all-failed", "--name", "n"]).unwrap();
        let Command::Retry(args) = cli.command else {
            panic!("parsed as {:?}", cli.command)
        };
        assert!(args.all_failed && args.id.is_none());
        assert_eq!(args.name.as_deref(), Some("n"));
    }

    #[test]
    fn purge_needs_a_status_or_all() {
        assert!(Cli::try_parse_from(["jobs", "purge"]).is_err());
        assert!(Cli::try_parse_from(["jobs", "purge", "--all", "--status", "failed"]).is_err());
        assert!(Cli::try_parse_from(["jobs", "purge", "--status", "bogus"]).is_err());
        assert!(Cli::try_parse_from(["jobs", "purge", "--status", "completed"]).is_ok());
    }

    #[test]
    fn list_limits_its_page() {
        assert!(Cli::try_parse_from(["jobs", "list", "--limit", "0"]).is_err());
        assert!(Cli::try_parse_from(["jobs", "list", "--limit", "1001"]).is_err());
        let cli = Cli::try_parse_from(["jobs", "list"]).unwrap();
        let Command::List(args) = cli.command else {
            panic!("parsed as {:?}", cli.command)
        };
        assert_eq!((args.limit, args.offset), (50, 0));
    }

    #[test]
    fn workflow_has_a_batch_alias_and_yes_needs_cancel() {
        for name in ["workflow", "batch"] {
            let cli = Cli::try_parse_from(["jobs", name, "x"]).unwrap();
            let Command::Workflow(args) = cli.command else {
                panic!("parsed as {:?}", cli.command)
            };
            assert_eq!(args.id, "x");
            assert!(!args.cancel && !args.yes);
        }
        assert!(Cli::try_parse_from(["jobs", "workflow"]).is_err());
        assert!(Cli::try_parse_from(["jobs", "workflow", "x", "--yes"]).is_err());
        let cli = Cli::try_parse_from(["jobs", "batch", "x", "--cancel", "-y"]).unwrap();
        let Command::Workflow(args) = cli.command else {
            panic!("parsed as {:?}", cli.command)
        };
        assert!(args.cancel && args.yes);
    }

    #[test]
    fn web_binds_to_loopback_by_default() {
        let cli = Cli::try_parse_from(["jobs", "web"]).unwrap();
        let Command::Web(args) = cli.command else {
            panic!("parsed as {:?}", cli.command)
        };
        assert_eq!(args.bind, "127.0.0.1:8080".parse().unwrap());
        assert!(!args.public && !args.read_only);
    }
}
