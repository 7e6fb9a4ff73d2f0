//! The Lua scripts that make each state change of a job atomic, loaded
//! from `lua/*.lua`.
//!
//! Each queue script is `lua/prelude.lua` (the keys, the common arguments,
//! the state parser and builder, the key guard, the counts and retention
//! helpers) and the script's own file, which starts by calling the
//! prelude's `begin` with the call's keys and arguments. On Redis 7 and
//! later they are one function library ([`Library`]): the prelude once,
//! then a function per script, so the prelude's closures are made once,
//! when the library is loaded, instead of on every call (most of a small
//! call's cost before). On older servers each script is the prelude
//! followed by its file, run whole by `EVALSHA` ([`QueueScript`]). Either
//! way the keys and a few constants are written out in place of their
//! names (the prelude's `--! NAME = EXPR` lines). Every queue script gets
//! the same fifteen keys and the same first four arguments
//! ([`Common::call`]); each names the positions of its own arguments at its
//! top. See the module docs of [`super`] for the key layout and
//! [`super::record`] for the state format. Times are microseconds of the
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

use redis::{Script, ToRedisArgs};

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// The queue scripts' files, by the name of their function.
const BODIES: [(&str, &str); 21] = [
    ("enqueue", include_str!("lua/enqueue.lua")),
    ("reserve", include_str!("lua/reserve.lua")),
    ("heartbeat", include_str!("lua/heartbeat.lua")),
    ("finish", include_str!("lua/finish.lua")),
    ("release", include_str!("lua/release.lua")),
    ("recover", include_str!("lua/recover.lua")),
    ("cancel", include_str!("lua/cancel.lua")),
    ("retry", include_str!("lua/retry.lua")),
    ("counts", include_str!("lua/counts.lua")),
    ("purge", include_str!("lua/purge.lua")),
    ("get", include_str!("lua/get.lua")),
    ("list", include_str!("lua/list.lua")),
    ("quarantine", include_str!("lua/quarantine.lua")),
    ("repair", include_str!("lua/repair.lua")),
    ("progress", include_str!("lua/progress.lua")),
    ("queues", include_str!("lua/queues.lua")),
    ("find", include_str!("lua/find.lua")),
    ("delete", include_str!("lua/delete.lua")),
    ("purge_status", include_str!("lua/purge_status.lua")),
    ("throughput", include_str!("lua/throughput.lua")),
    ("workflow", include_str!("lua/workflow.lua")),
];

/// A queue script, run as a function of the [`Library`] on Redis 7 and
/// later (`FCALL`), else as a script (`EVALSHA`, loading it if Redis
/// lost it).
pub(super) struct QueueScript {
    /// Its function in the library (none: a script only, for tests).
    pub(super) function: Option<String>,
    /// The prelude and its own file, for servers without functions.
    pub(super) script: Script,
}

/// The function library of every queue script: the prelude once, then a
/// function per script. Named after a hash of its source, so that workers
/// of different versions of this crate can share a server (each loads its
/// own library); loaded by the first call that finds it missing.
pub(super) struct Library {
    pub(super) name: String,
    pub(super) source: String,
}

/// The compiled scripts.
pub(super) struct Scripts {
    pub(super) library: Library,
    pub(super) enqueue: QueueScript,
    pub(super) reserve: QueueScript,
    pub(super) heartbeat: QueueScript,
    pub(super) finish: QueueScript,
    pub(super) release: QueueScript,
    pub(super) recover: QueueScript,
    pub(super) cancel: QueueScript,
    pub(super) retry: QueueScript,
    pub(super) counts: QueueScript,
    pub(super) purge: QueueScript,
    pub(super) get: QueueScript,
    pub(super) list: QueueScript,
    pub(super) quarantine: QueueScript,
    pub(super) repair: QueueScript,
    pub(super) progress: QueueScript,
    pub(super) queues: QueueScript,
    pub(super) find: QueueScript,
    pub(super) delete: QueueScript,
    pub(super) purge_status: QueueScript,
    pub(super) throughput: QueueScript,
    pub(super) workflow: QueueScript,
    /// Not queue scripts (no prelude): always `EVALSHA`.
    pub(super) save_last_run: Script,
    pub(super) workers: Script,
}

/// The source of a queue script run as a script: the prelude, `begin`
/// with the script's keys and arguments, then `body`; each name the
/// prelude defines on a line `--! NAME = EXPR` replaced by `EXPR`.
fn join(body: &str) -> String {
    // The prelude's first line makes `KEYS` and `ARGV` locals of its own.
    inline(&format!(
        "local keys_in, args_in = KEYS, ARGV\n{PRELUDE}\nbegin(keys_in, args_in)\n{body}"
    ))
}

/// The source of the function library: the prelude once, then each body
/// as the function `<library>_<name>`, which begins with `begin`.
fn library_source(prefix: &str) -> String {
    let mut src = format!("#!lua name={prefix}\n{PRELUDE}\n");
    for (name, body) in BODIES {
        src.push_str(&format!(
            "redis.register_function('{prefix}_{name}', function(keys, args)\nbegin(keys, args)\n{body}\nend)\n"
        ));
    }
    inline(&src)
}

/// `src` with every name the prelude defines on a line `--! NAME = EXPR`
/// written out.
fn inline(src: &str) -> String {
    let defs: Vec<(&str, &str)> = PRELUDE
        .lines()
        .filter_map(|line| {
            let (name, expr) = line.strip_prefix("--! ")?.split_once(" = ")?;
            Some((name.trim(), expr.trim()))
        })
        .collect();
    replace_names(src, &defs)
}

/// `src` with every identifier named in `defs` replaced by its expression
/// (whole identifiers only: `K_STATE` in `K_STATES` stays). Comments and
/// strings are not told apart: the names are not used in them.
fn replace_names(src: &str, defs: &[(&str, &str)]) -> String {
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
    /// The scripts, made on first use.
    pub(super) fn get() -> &'static Scripts {
        static SCRIPTS: std::sync::LazyLock<Scripts> = std::sync::LazyLock::new(Scripts::new);
        &SCRIPTS
    }

    fn new() -> Self {
        // The library's name: `jobs_` and the start of its source's SHA1
        // (that of the library made with a placeholder name).
        let hash = Script::new(&library_source("jobs")).get_hash().to_owned();
        let prefix = format!("jobs_{}", &hash[..16]);
        let queue = |name: &str| QueueScript {
            function: Some(format!("{prefix}_{name}")),
            script: Script::new(&join(
                BODIES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, body)| *body)
                    .expect("a queue script of that name"),
            )),
        };
        Scripts {
            enqueue: queue("enqueue"),
            reserve: queue("reserve"),
            heartbeat: queue("heartbeat"),
            finish: queue("finish"),
            release: queue("release"),
            recover: queue("recover"),
            cancel: queue("cancel"),
            retry: queue("retry"),
            counts: queue("counts"),
            purge: queue("purge"),
            get: queue("get"),
            list: queue("list"),
            quarantine: queue("quarantine"),
            repair: queue("repair"),
            progress: queue("progress"),
            queues: queue("queues"),
            find: queue("find"),
            delete: queue("delete"),
            purge_status: queue("purge_status"),
            throughput: queue("throughput"),
            workflow: queue("workflow"),
            save_last_run: Script::new(include_str!("lua/save_last_run.lua")),
            workers: Script::new(include_str!("lua/workers.lua")),
            library: Library {
                source: library_source(&prefix),
                name: prefix,
            },
        }
    }
}

/// A call of a queue script: its keys and arguments, sent by
/// `Shared::call` as `FCALL` or `EVALSHA`.
pub(super) struct Invocation<'s> {
    pub(super) script: &'s QueueScript,
    pub(super) keys: Vec<Vec<u8>>,
    pub(super) args: Vec<Vec<u8>>,
}

impl Invocation<'_> {
    /// Adds a key.
    pub(super) fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        key.write_redis_args(&mut self.keys);
        self
    }

    /// Adds an argument.
    pub(super) fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
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
    pub(super) fn call<'s>(&self, script: &'s QueueScript) -> Invocation<'s> {
        let mut call = Invocation {
            script,
            keys: Vec::with_capacity(15),
            args: Vec::with_capacity(8),
        };
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

/// A script of the prelude plus `body` (run as a script, not a
/// function), for tests that run the Lua helpers on a real Redis.
#[cfg(test)]
pub(super) fn with_prelude(body: &str) -> QueueScript {
    QueueScript {
        function: None,
        script: Script::new(&join(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_replaces_whole_names_only() {
        let defs = [("K_STATE", "KEYS[2]"), ("Q", "'default'")];
        assert_eq!(
            replace_names("f(K_STATE, K_STATES, xK_STATE, Q..Q, 1)", &defs),
            "f(KEYS[2], K_STATES, xK_STATE, 'default'..'default', 1)"
        );
    }

    #[test]
    fn every_prelude_name_is_written_out() {
        let library = library_source("jobs_x");
        let scripts = BODIES.iter().map(|(_, body)| join(body));
        for src in scripts.chain(std::iter::once(library)) {
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
                    .any(|l| replace_names(l, &[(name, "")]) != l);
                assert!(!left, "{name} is left in a script");
            }
            assert!(src.contains("KEYS[15]"));
        }
    }

    #[test]
    fn the_library_has_a_function_per_queue_script() {
        let scripts = Scripts::new();
        assert!(scripts.library.name.starts_with("jobs_"));
        assert!(
            scripts
                .library
                .source
                .starts_with(&format!("#!lua name={}\n", scripts.library.name))
        );
        for (name, _) in BODIES {
            let function = format!("'{}_{name}'", scripts.library.name);
            assert_eq!(
                scripts.library.source.matches(&function).count(),
                1,
                "{name}"
            );
        }
        assert_eq!(
            scripts.finish.function.as_deref(),
            Some(&*format!("{}_finish", scripts.library.name))
        );
    }
}
