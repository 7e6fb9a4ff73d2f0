//! The Lua scripts that make each state change of a job atomic, loaded
//! from `lua/*.lua`.
//!
//! Each queue script is `lua/prelude.lua` (the keys, the common arguments,
//! the state parser and builder, the key guard, the counts and retention
//! helpers) followed by the script's own file, joined when the queue is
//! built. Every queue script gets the same fifteen keys and the same first
//! four arguments ([`Common::call`]); each names the positions of its own
//! arguments at its top. See the module docs of [`super`] for the key layout
//! and [`super::record`] for the state format. Times are microseconds of the
//! Redis server's clock (`TIME`), so the leases of workers on different
//! machines are compared on one clock.
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
    pub(super) save_last_run: Script,
}

/// A queue script: the prelude, then the script's own file.
fn queue_script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
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
            save_last_run: Script::new(include_str!("lua/save_last_run.lua")),
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
