//! The Lua scripts that make each state change of a job atomic, loaded
//! from `lua/*.lua`.
//!
//! Each queue script is `lua/prelude.lua` (the keys, the common arguments,
//! the state parser and builder, the key guard, the counts and retention
//! helpers) followed by the script's own file, joined when the queue is
//! built; the keys and a few constants are written out in place of their
//! names then (the prelude's `--! NAME = EXPR` lines), since a local that
//! the helpers capture costs every call. Every queue script gets the same
//! fifteen keys and the same first four arguments ([`Common::call`]); each
//! names the positions of its own arguments at its top. See the module
//! docs of [`super`] for the key layout and [`super::record`] for the state
//! format. Times are microseconds of the Redis server's clock (`TIME`), so
//! the leases of workers on different machines are compared on one clock.
//!
//! A script that fails half-way is not rolled back by Redis, so each one
//! reads first, then checks every key it may write (`guard` in the
//! prelude), then writes.
//!
//! Redis hashes every byte of every string a script touches, so the hot
//! scripts (reserve, finish) only handle the short state of a job; its JSON
//! passes through once, on reserve, to the worker.

use redis::{Script, ScriptInvocation};

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// The compiled scripts (each carries its SHA1; `EVALSHA` falls back to
/// loading the script after a Redis restart).
pub(super) struct Scripts {
    pub(super) enqueue: Script,
    pub(super) reserve: Script,
    pub(super) heartbeat: Script,
    pub(super) finish: Script,
    pub(super) release: Script,
    pub(super) recover: Script,
    pub(super) cancel: Script,
    pub(super) retry: Script,
    pub(super) counts: Script,
    pub(super) purge: Script,
    pub(super) get: Script,
    pub(super) list: Script,
    pub(super) quarantine: Script,
    pub(super) repair: Script,
    pub(super) progress: Script,
    pub(super) queues: Script,
    pub(super) find: Script,
    pub(super) delete: Script,
    pub(super) purge_status: Script,
    pub(super) throughput: Script,
    pub(super) save_last_run: Script,
    pub(super) workers: Script,
    pub(super) workflow: Script,
}

/// A queue script: the prelude, then the script's own file, with the
/// prelude's names written out ([`inline`]).
fn queue_script(body: &str) -> Script {
    Script::new(&join(body))
}

/// The source of a queue script: the prelude, then `body`, with each name
/// the prelude defines on a line `--! NAME = EXPR` replaced by `EXPR`.
fn join(body: &str) -> String {
    let defs: Vec<(&str, &str)> = PRELUDE
        .lines()
        .filter_map(|line| {
            let (name, expr) = line.strip_prefix("--! ")?.split_once(" = ")?;
            Some((name.trim(), expr.trim()))
        })
        .collect();
    inline(&format!("{PRELUDE}\n{body}"), &defs)
}

/// `src` with every identifier named in `defs` replaced by its expression
/// (whole identifiers only: `K_STATE` in `K_STATES` stays). Comments and
/// strings are not told apart: the names are not used in them.
fn inline(src: &str, defs: &[(&str, &str)]) -> String {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(start) = rest.find(|c: char| word(c)) {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(|c: char| !word(c)).unwrap_or(rest.len());
        let ident = &rest[..end];
        match defs.iter().find(|(name, _)| *name == ident) {
            Some((_, expr)) => out.push_str(expr),
            None => out.push_str(ident),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

impl Scripts {
    pub(super) fn new() -> Self {
        Scripts {
            enqueue: queue_script(include_str!("lua/enqueue.lua")),
            reserve: queue_script(include_str!("lua/reserve.lua")),
            heartbeat: queue_script(include_str!("lua/heartbeat.lua")),
            finish: queue_script(include_str!("lua/finish.lua")),
            release: queue_script(include_str!("lua/release.lua")),
            recover: queue_script(include_str!("lua/recover.lua")),
            cancel: queue_script(include_str!("lua/cancel.lua")),
            retry: queue_script(include_str!("lua/retry.lua")),
            counts: queue_script(include_str!("lua/counts.lua")),
            purge: queue_script(include_str!("lua/purge.lua")),
            get: queue_script(include_str!("lua/get.lua")),
            list: queue_script(include_str!("lua/list.lua")),
            quarantine: queue_script(include_str!("lua/quarantine.lua")),
            repair: queue_script(include_str!("lua/repair.lua")),
            progress: queue_script(include_str!("lua/progress.lua")),
            queues: queue_script(include_str!("lua/queues.lua")),
            find: queue_script(include_str!("lua/find.lua")),
            delete: queue_script(include_str!("lua/delete.lua")),
            purge_status: queue_script(include_str!("lua/purge_status.lua")),
            throughput: queue_script(include_str!("lua/throughput.lua")),
            save_last_run: Script::new(include_str!("lua/save_last_run.lua")),
            workers: Script::new(include_str!("lua/workers.lua")),
            workflow: queue_script(include_str!("lua/workflow.lua")),
        }
    }
}

/// The keys and common arguments every queue script takes, in the order of
/// `K_*` and `ARG_*` in `lua/prelude.lua`.
pub(super) struct Common<'a> {
    pub(super) keys: [&'a str; 15],
    pub(super) channel: &'a str,
    pub(super) events: &'a str,
    pub(super) max_finished: u64,
    pub(super) finished_ttl_us: i64,
}

impl Common<'_> {
    /// An invocation of `script` with the common keys and arguments set.
    pub(super) fn call<'s>(&self, script: &'s Script) -> ScriptInvocation<'s> {
        let mut call = script.prepare_invoke();
        for key in self.keys {
            call.key(key);
        }
        call.arg(self.channel)
            .arg(self.events)
            .arg(self.max_finished)
            .arg(self.finished_ttl_us);
        call
    }
}

/// A script of the prelude plus `body`, for tests that run the Lua helpers
/// on a real Redis.
#[cfg(test)]
pub(super) fn with_prelude(body: &str) -> Script {
    queue_script(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_replaces_whole_names_only() {
        let defs = [("K_STATE", "KEYS[2]"), ("Q", "'default'")];
        assert_eq!(
            inline("f(K_STATE, K_STATES, xK_STATE, Q..Q, 1)", &defs),
            "f(KEYS[2], K_STATES, xK_STATE, 'default'..'default', 1)"
        );
    }

    #[test]
    fn every_prelude_name_is_written_out() {
        for body in [
            include_str!("lua/reserve.lua"),
            include_str!("lua/finish.lua"),
            include_str!("lua/enqueue.lua"),
            include_str!("lua/purge.lua"),
            include_str!("lua/find.lua"),
            include_str!("lua/delete.lua"),
            include_str!("lua/purge_status.lua"),
            include_str!("lua/throughput.lua"),
            include_str!("lua/workflow.lua"),
            include_str!("lua/cancel.lua"),
            include_str!("lua/recover.lua"),
            include_str!("lua/retry.lua"),
        ] {
            let src = join(body);
            for name in [
                "K_JOBS",
                "K_STATE",
                "K_KEYS",
                "K_META",
                "DEFAULT_QUEUE",
                "CHANNEL",
                "EVENTS",
            ] {
                let left = src
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .any(|l| inline(l, &[(name, "")]) != l);
                assert!(!left, "{name} is left in a script");
            }
            assert!(src.contains("KEYS[15]"));
        }
    }
}
