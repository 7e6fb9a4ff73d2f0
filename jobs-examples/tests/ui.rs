//! Compile-time behaviour of `#[job]`, checked with trybuild: every misuse
//! under `tests/ui/fail/` (one file per rule) must fail with the error in its
//! `.stderr` snapshot, and every accepted form under `tests/ui/pass/` must
//! compile and run.
//!
//! The snapshots are rustc's exact output, so they are tied to its version
//! (they were made with rustc 1.95). Refresh them after an intended change
//! with:
//!
//! ```text
//! TRYBUILD=overwrite cargo test --test ui
//! ```
//!
//! and review the diff.
//!
//! The attribute checks `cron`, `every`, `timezone`, `rate_limit` and
//! `queue` with the functions the runtime parses them with (the
//! `jobs-schedule` crate, behind `jobs::Schedule`, `jobs::Rate` and
//! `jobs::check_queue_name`); the other tests read the snapshots to pin that
//! the messages are the runtime's.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}

/// The message `Schedule` refuses a schedule with (`Error::InvalidSchedule`).
fn runtime_message(result: Result<jobs::Schedule, jobs::Error>) -> String {
    match result {
        Err(jobs::Error::InvalidSchedule { message, .. }) => message,
        other => panic!("expected InvalidSchedule, got {other:?}"),
    }
}

fn snapshot(case: &str) -> String {
    let path = format!("{}/tests/ui/fail/{case}.stderr", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What the attribute prints on a schedule is what the runtime says of it.
#[test]
fn schedule_errors_are_the_runtimes() {
    use jobs::Schedule;
    use std::time::Duration;

    let cron = |expression: &str| {
        let message = runtime_message(Schedule::cron(expression));
        format!("invalid cron expression `{expression}`: {message}")
    };
    let errors = [
        ("cron-never-fires", cron("0 0 30 2 *")),
        ("cron-never-fires", cron("0 0 0 31 4 *")),
        ("cron-never-fires", cron("0 9 1 * +FRI#5")),
        ("bad-cron", cron("0 61 * * *")),
        ("bad-cron", cron("0 0 2 * * FUNDAY")),
        ("bad-cron", cron("")),
        (
            "bad-every",
            format!(
                "invalid interval `0m`: {}",
                runtime_message(Schedule::every(Duration::ZERO))
            ),
        ),
        // Where the rejected text is a part of the schedule (the duration
        // of `every ..`, the time zone), the runtime's message names it.
        ("bad-every", runtime_message("every often".parse())),
        (
            "bad-timezone",
            runtime_message(Schedule::cron_tz("0 30 2 * * *", "Europe/Atlantis")),
        ),
    ];
    for (case, error) in errors {
        let line = format!("error: {error}\n");
        assert!(
            snapshot(case).contains(&line),
            "{case}.stderr lacks {line:?}"
        );
    }
}

/// What the attribute prints on a rate or a queue name is what the runtime
/// says of it (`Rate::parse`, `check_queue_name`).
#[test]
fn rate_and_queue_errors_are_the_runtimes() {
    let message = |result: Result<(), jobs::Error>| match result {
        Err(jobs::Error::InvalidArgument(message)) => message,
        other => panic!("expected InvalidArgument, got {other:?}"),
    };
    let errors = [
        (
            "rate-limit-bad-period",
            message(jobs::Rate::parse("100/fortnight").map(drop)),
        ),
        (
            "rate-limit-zero",
            message(jobs::Rate::parse("0/s").map(drop)),
        ),
        (
            "bad-queue-name",
            message(jobs::check_queue_name("mail ers")),
        ),
        ("bad-queue-name", message(jobs::check_queue_name(""))),
    ];
    for (case, error) in errors {
        let line = format!("error: {error}\n");
        assert!(
            snapshot(case).contains(&line),
            "{case}.stderr lacks {line:?}"
        );
    }
}
