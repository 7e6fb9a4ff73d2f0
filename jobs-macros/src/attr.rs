//! The attribute's arguments: `#[job(name = "..", priority = "..", ...)]`,
//! parsed into typed values that keep the spans later checks point at.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprArray, ExprLit, ExprPath, ExprUnary, Ident, Lit, LitStr, Meta, Token, UnOp};

use crate::errors::{Errors, written};

/// The keys, in the order the documentation lists them, each with an
/// example value for error messages.
const KEYS: [(&str, &str); 12] = [
    ("name", "\"send_email\""),
    ("priority", "\"high\""),
    ("retries", "3"),
    ("timeout", "\"30s\""),
    ("queue", "\"mailers\""),
    ("concurrency", "2"),
    ("rate_limit", "\"100/min\""),
    ("key", "account_id"),
    ("unique", "\"1h\""),
    ("cron", "\"0 0 2 * * *\""),
    ("every", "\"5m\""),
    ("timezone", "\"Europe/Berlin\""),
];

const PRIORITIES: [&str; 4] = ["low", "normal", "high", "critical"];

/// The parts of `unique(..)`, each with an example value.
const UNIQUE_PARTS: [(&str, &str); 3] = [
    ("by", "[user_id]"),
    ("for", "\"10m\""),
    ("states", "[pending, running]"),
];

/// The job statuses, as `jobs::JobStatus` displays them, with its variants.
pub(crate) const STATUSES: [(&str, &str); 7] = [
    ("pending", "Pending"),
    ("running", "Running"),
    ("completed", "Completed"),
    ("failed", "Failed"),
    ("retrying", "Retrying"),
    ("cancelled", "Cancelled"),
    ("expired", "Expired"),
];

/// A job's priority, as written in the attribute.
#[derive(Clone, Copy)]
pub(crate) enum Priority {
    Low,
    Normal,
    High,
    Critical,
}

/// A periodic schedule, validated.
pub(crate) enum Schedule {
    Cron {
        expression: String,
        timezone: Option<String>,
    },
    Every(Duration),
}

/// `unique = ".."` or `unique(..)`, validated.
pub(crate) struct Unique {
    /// `by = [..]`: parameter names as written (checked against the
    /// function later); `None`: all the arguments.
    pub(crate) by: Option<Vec<Ident>>,
    /// `for = ".."`, or the value of `unique = ".."`.
    pub(crate) period: Option<Duration>,
    /// `states = [..]`: indices into [`STATUSES`]; `None`: the default.
    pub(crate) states: Option<Vec<usize>>,
}

/// The parsed attribute. A key that was given but invalid is `None` here
/// (its error is recorded), so expansion can go on with the default.
#[derive(Default)]
pub(crate) struct Attr {
    pub(crate) name: Option<String>,
    pub(crate) priority: Option<Priority>,
    pub(crate) retries: Option<u32>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) queue: Option<String>,
    pub(crate) concurrency: Option<u32>,
    /// `rate_limit`: at most `.0` starts per `.1`.
    pub(crate) rate_limit: Option<(u32, Duration)>,
    /// `key = param`: the parameter as written (checked against the
    /// function later).
    pub(crate) key: Option<Ident>,
    pub(crate) unique: Option<Unique>,
    pub(crate) schedule: Option<Schedule>,
}

/// Parses the attribute's arguments, recording every error in `errors`.
pub(crate) fn parse(args: TokenStream, errors: &mut Errors) -> Attr {
    let mut attr = Attr::default();
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
        Ok(metas) => metas,
        Err(e) => {
            errors.push(e);
            return attr;
        }
    };

    let mut seen: Vec<String> = Vec::new();
    let mut cron: Option<String> = None;
    let mut every: Option<Duration> = None;
    let mut timezone: Option<(String, Span)> = None;

    let mut key_meta: Option<TokenStream> = None;

    for meta in metas {
        let path = meta.path().clone();
        let Some(key) = path.get_ident().map(|i| i.to_string()) else {
            unknown_key(errors, &path);
            continue;
        };
        if example(&key).is_none() {
            unknown_key(errors, &path);
            continue;
        }
        if seen.contains(&key) {
            errors.on(&path, format!("duplicate key `{key}`: give each key once"));
            continue;
        }
        seen.push(key.clone());
        if key == "unique" {
            attr.unique = unique(errors, meta);
            continue;
        }
        let value = match meta {
            Meta::NameValue(nv) => nv.value,
            Meta::Path(path) => {
                errors.on(
                    &path,
                    format!(
                        "`{key}` needs a value: write `{key} = {}`",
                        example(&key).unwrap_or_default()
                    ),
                );
                continue;
            }
            Meta::List(list) => {
                errors.on(
                    &list,
                    format!(
                        "expected `{key} = value`: write `{key} = {}`",
                        example(&key).unwrap_or_default()
                    ),
                );
                continue;
            }
        };
        let key_span = path.span();

        match key.as_str() {
            "name" => {
                if let Some(lit) = string(errors, &key, &value) {
                    let name = lit.value();
                    if name.trim().is_empty() {
                        errors.on(
                            &lit,
                            "the job name cannot be empty: write a name such as `name = \"send_email\"`, or leave `name` out to use the function's name",
                        );
                    } else if name.trim() != name {
                        errors.on(
                            &lit,
                            format!(
                                "the job name cannot start or end with whitespace: write `name = \"{}\"`",
                                name.trim()
                            ),
                        );
                    } else {
                        attr.name = Some(name);
                    }
                }
            }
            "priority" => {
                if let Some(lit) = string(errors, &key, &value) {
                    attr.priority = match lit.value().to_ascii_lowercase().as_str() {
                        "low" => Some(Priority::Low),
                        "normal" => Some(Priority::Normal),
                        "high" => Some(Priority::High),
                        "critical" => Some(Priority::Critical),
                        _ => {
                            errors.on(
                                &lit,
                                format!(
                                    "unknown priority `{}`; the priorities are {}",
                                    lit.value(),
                                    listed(&PRIORITIES)
                                ),
                            );
                            None
                        }
                    };
                }
            }
            "retries" => attr.retries = retries(errors, &value),
            "timeout" => {
                attr.timeout = duration(errors, &key, &value);
            }
            "queue" => {
                if let Some(lit) = string(errors, &key, &value) {
                    // The runtime's check, so that what compiles enqueues.
                    match jobs_schedule::check_queue_name(&lit.value()) {
                        Ok(()) => attr.queue = Some(lit.value()),
                        Err(e) => errors.on(&lit, e),
                    }
                }
            }
            "concurrency" => {
                attr.concurrency = count(
                    errors,
                    &value,
                    "write how many jobs may run at once, fleet-wide, such as `concurrency = 2`",
                );
            }
            "rate_limit" => {
                if let Some(lit) = string(errors, &key, &value) {
                    match jobs_schedule::parse_rate(&lit.value()) {
                        Ok(rate) => attr.rate_limit = Some(rate),
                        Err(e) => errors.on(&lit, e),
                    }
                }
            }
            "key" => {
                key_meta = Some(quote!(#path = #value));
                attr.key = parameter(errors, "key", &value);
            }
            "cron" => {
                if let Some(lit) = string(errors, &key, &value) {
                    // The runtime's parser, so that what compiles schedules.
                    match jobs_schedule::parse_cron(&lit.value()) {
                        Ok(_) => cron = Some(lit.value()),
                        Err(e) => errors.on(&lit, e),
                    }
                }
                if seen.iter().any(|k| k == "every") {
                    both_schedules(errors, key_span);
                }
            }
            "every" => {
                every = duration(errors, &key, &value);
                if seen.iter().any(|k| k == "cron") {
                    both_schedules(errors, key_span);
                }
            }
            "timezone" => {
                if let Some(lit) = string(errors, &key, &value) {
                    match jobs_schedule::parse_timezone(&lit.value()) {
                        Ok(_) => timezone = Some((lit.value(), key_span)),
                        Err(e) => errors.on(&lit, e),
                    }
                }
            }
            _ => unreachable!("every key in KEYS is handled"),
        }
    }

    if let Some(tokens) = key_meta {
        if !seen.iter().any(|k| k == "concurrency" || k == "rate_limit") {
            errors.on(
                tokens,
                "`key` partitions a limit, and there is none: add `concurrency = N` or `rate_limit = \"N/period\"`, or remove `key` (a unique job's key is `unique(by = [..])`)",
            );
        }
    }

    // `cron` and `every` together is reported where the second one is
    // given (above), when both parsed; the schedule is then dropped.
    attr.schedule = match (cron, every) {
        (Some(expression), None) => Some(Schedule::Cron {
            expression,
            timezone: timezone.take().map(|(tz, _)| tz),
        }),
        (None, Some(interval)) => Some(Schedule::Every(interval)),
        _ => None,
    };
    if let Some((_, span)) = timezone {
        if seen.iter().any(|k| k == "cron") {
            // Combined with `every` (reported above), or `cron` was invalid.
        } else if seen.iter().any(|k| k == "every") {
            errors.at(
                span,
                "`timezone` applies to `cron` schedules only: an `every` interval runs at the same instants in every zone; remove `timezone`, or write `cron = \"..\"`",
            );
        } else {
            errors.at(
                span,
                "`timezone` needs a cron schedule: add `cron = \"0 0 2 * * *\"`, or remove `timezone`",
            );
        }
    }
    attr
}

/// `cron` and `every` together, reported on the second one.
fn both_schedules(errors: &mut Errors, second: Span) {
    errors.at(
        second,
        "`cron` and `every` cannot be combined: a job has one schedule; keep one of them",
    );
}

fn example(key: &str) -> Option<&'static str> {
    KEYS.iter().find(|(k, _)| *k == key).map(|(_, e)| *e)
}

pub(crate) fn listed(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

fn unknown_key(errors: &mut Errors, path: &syn::Path) {
    let written = written(path);
    let keys: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
    let hint = did_you_mean(&written, &keys);
    errors.on(
        path,
        format!(
            "unknown key `{written}`; the keys are {}{hint}",
            listed(&keys)
        ),
    );
}

/// `"; did you mean `x`?"` for the candidate closest to `written`, if one
/// is close; empty otherwise.
pub(crate) fn did_you_mean(written: &str, candidates: &[&str]) -> String {
    candidates
        .iter()
        .map(|k| (distance(k, written), *k))
        .filter(|(d, k)| *d <= 2 || similar_prefix(k, written))
        .min()
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default()
}

/// Whether `written` looks like an abbreviation or a variant of `key`
/// (`prio`, `retry`, `timeouts`).
fn similar_prefix(key: &str, written: &str) -> bool {
    let common = key
        .chars()
        .zip(written.chars())
        .take_while(|(a, b)| a == b)
        .count();
    common >= 4 || (common >= 3 && common == written.len().min(key.len()))
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn string(errors: &mut Errors, key: &str, value: &Expr) -> Option<LitStr> {
    string_as(errors, key, example(key).unwrap_or_default(), value)
}

fn string_as(errors: &mut Errors, key: &str, example: &str, value: &Expr) -> Option<LitStr> {
    if let Expr::Lit(ExprLit {
        lit: Lit::Str(lit), ..
    }) = value
    {
        return Some(lit.clone());
    }
    let message = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => format!(
            "`{key}` takes a string literal: write `{key} = \"{}\"`",
            int.base10_digits()
        ),
        Expr::Path(path) if path.path.get_ident().is_some() => format!(
            "`{key}` takes a string literal: write `{key} = \"{}\"`",
            written(&path.path)
        ),
        _ => format!("`{key}` takes a string literal, such as `{key} = {example}`"),
    };
    errors.on(value, message);
    None
}

fn retries(errors: &mut Errors, value: &Expr) -> Option<u32> {
    const HOW: &str = "write how many times a failed job is tried again, such as `retries = 3`";
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => {
            if int.base10_digits().starts_with('-') {
                errors.on(value, format!("`retries` cannot be negative: {HOW}"));
                return None;
            }
            match int.base10_parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => {
                    errors.on(
                        value,
                        format!(
                            "`retries = {}` is too large: the most is {}",
                            int.base10_digits(),
                            u32::MAX
                        ),
                    );
                    None
                }
            }
        }
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), ..
        }) => {
            errors.on(value, format!("`retries` cannot be negative: {HOW}"));
            None
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => {
            let message = match lit.value().trim().parse::<u32>() {
                Ok(n) => format!("`retries` takes an integer, not a string: write `retries = {n}`"),
                Err(_) => format!("`retries` takes a non-negative integer: {HOW}"),
            };
            errors.on(value, message);
            None
        }
        _ => {
            errors.on(
                value,
                format!("`retries` takes a non-negative integer: {HOW}"),
            );
            None
        }
    }
}

/// A count of at least 1 (`concurrency = 2`); `how` says what to write.
fn count(errors: &mut Errors, value: &Expr, how: &str) -> Option<u32> {
    let key = "concurrency";
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => match int.base10_parse::<u32>() {
            Ok(0) => {
                errors.on(
                    value,
                    format!("`{key} = 0` would never let the job run: the least is 1; {how}"),
                );
                None
            }
            Ok(n) => Some(n),
            Err(_) if int.base10_digits().starts_with('-') => {
                errors.on(value, format!("`{key}` cannot be negative: {how}"));
                None
            }
            Err(_) => {
                errors.on(
                    value,
                    format!(
                        "`{key} = {}` is too large: the most is {}",
                        int.base10_digits(),
                        u32::MAX
                    ),
                );
                None
            }
        },
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), ..
        }) => {
            errors.on(value, format!("`{key}` cannot be negative: {how}"));
            None
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => {
            let message = match lit.value().trim().parse::<u32>() {
                Ok(n) if n > 0 => {
                    format!("`{key}` takes an integer, not a string: write `{key} = {n}`")
                }
                _ => format!("`{key}` takes a positive integer: {how}"),
            };
            errors.on(value, message);
            None
        }
        _ => {
            errors.on(value, format!("`{key}` takes a positive integer: {how}"));
            None
        }
    }
}

/// A parameter's name as written (`key = account_id`, an item of `by =
/// [..]`); whether the function has it is checked later.
fn parameter(errors: &mut Errors, key: &str, value: &Expr) -> Option<Ident> {
    if let Expr::Path(ExprPath {
        path, qself: None, ..
    }) = value
    {
        if let Some(ident) = path.get_ident() {
            return Some(ident.clone());
        }
    }
    let message = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) if syn::parse_str::<Ident>(&lit.value()).is_ok() => format!(
            "`{key}` names a parameter of the function, without quotes: write `{}`",
            lit.value()
        ),
        _ => format!("`{key}` names a parameter of the function, such as `account_id`"),
    };
    errors.on(value, message);
    None
}

/// The items of `[a, b]`, or a single item written without brackets.
fn items(value: &Expr) -> Vec<&Expr> {
    match value {
        Expr::Array(ExprArray { elems, .. }) => elems.iter().collect(),
        other => vec![other],
    }
}

/// `unique` (all defaults), `unique = "1h"` or `unique(by = [..], for =
/// "..", states = [..])`.
fn unique(errors: &mut Errors, meta: Meta) -> Option<Unique> {
    const HOW: &str = "write `unique = \"1h\"`, or `unique(by = [user_id], for = \"10m\", states = [pending, running])`, each part optional";
    let mut unique = Unique {
        by: None,
        period: None,
        states: None,
    };
    let list = match meta {
        Meta::Path(_) => return Some(unique),
        Meta::NameValue(nv) => {
            if let Expr::Lit(ExprLit {
                lit: Lit::Str(_), ..
            }) = &nv.value
            {
                unique.period = duration_as(errors, "unique", "\"1h\"", &nv.value);
                return unique.period.map(|_| unique);
            }
            errors.on(
                &nv.value,
                format!("`unique = ..` takes a duration string: {HOW}"),
            );
            return None;
        }
        Meta::List(list) => list,
    };
    // `for` is a keyword: the parts are read as nested meta, which takes
    // keywords as names.
    let mut parts: Vec<(syn::Path, Option<Expr>)> = Vec::new();
    let parsed = list.parse_nested_meta(|nested| {
        let path = nested.path.clone();
        if nested.input.peek(Token![=]) {
            let value: Expr = nested.value()?.parse()?;
            parts.push((path, Some(value)));
        } else {
            if nested.input.peek(syn::token::Paren) {
                let _: proc_macro2::Group = nested.input.parse()?;
            }
            parts.push((path, None));
        }
        Ok(())
    });
    if let Err(e) = parsed {
        errors.push(e);
        return None;
    }
    let mut ok = true;
    let mut seen: Vec<String> = Vec::new();
    for (path, value) in parts {
        let name = path.get_ident().map(|i| i.to_string()).unwrap_or_default();
        let Some((_, example)) = UNIQUE_PARTS.iter().find(|(k, _)| *k == name) else {
            let names: Vec<&str> = UNIQUE_PARTS.iter().map(|(k, _)| *k).collect();
            errors.on(
                &path,
                format!(
                    "unknown part `{}` of `unique(..)`; the parts are {}{}",
                    written(&path),
                    listed(&names),
                    did_you_mean(&written(&path), &names)
                ),
            );
            ok = false;
            continue;
        };
        if seen.contains(&name) {
            errors.on(&path, format!("duplicate `{name}`: give it once"));
            ok = false;
            continue;
        }
        seen.push(name.clone());
        let Some(value) = value else {
            errors.on(
                &path,
                format!("expected `{name} = value`: write `{name} = {example}`"),
            );
            ok = false;
            continue;
        };
        match name.as_str() {
            "by" => {
                let mut by: Vec<Ident> = Vec::new();
                for item in items(&value) {
                    match parameter(errors, "by", item) {
                        Some(ident) if by.iter().any(|b| b.unraw() == ident.unraw()) => {
                            errors.on(&ident, format!("`{ident}` is listed twice in `by`"));
                            ok = false;
                        }
                        Some(ident) => by.push(ident),
                        None => ok = false,
                    }
                }
                unique.by = Some(by);
            }
            "for" => {
                unique.period = duration_as(errors, "for", example, &value);
                ok &= unique.period.is_some();
            }
            "states" => {
                let mut states: Vec<usize> = Vec::new();
                let listed_states: Vec<&str> = STATUSES.iter().map(|(s, _)| *s).collect();
                for item in items(&value) {
                    let written_state = match item {
                        Expr::Path(ExprPath { path, .. }) if path.get_ident().is_some() => {
                            written(path)
                        }
                        Expr::Lit(ExprLit {
                            lit: Lit::Str(lit), ..
                        }) => {
                            errors.on(
                                item,
                                format!(
                                    "a state is written without quotes: write `{}`",
                                    lit.value()
                                ),
                            );
                            ok = false;
                            continue;
                        }
                        _ => {
                            errors.on(
                                item,
                                format!(
                                    "`states` lists job statuses, such as `states = [pending, running]`; the statuses are {}",
                                    listed(&listed_states)
                                ),
                            );
                            ok = false;
                            continue;
                        }
                    };
                    match STATUSES.iter().position(|(s, _)| *s == written_state) {
                        Some(i) if states.contains(&i) => {
                            errors.on(
                                item,
                                format!("`{written_state}` is listed twice in `states`"),
                            );
                            ok = false;
                        }
                        Some(i) => states.push(i),
                        None => {
                            let lower = written_state.to_ascii_lowercase();
                            let hint = if listed_states.contains(&lower.as_str()) {
                                format!("; write `{lower}`")
                            } else {
                                did_you_mean(&written_state, &listed_states)
                            };
                            errors.on(
                                item,
                                format!(
                                    "unknown job status `{written_state}`; the statuses are {}{hint}",
                                    listed(&listed_states)
                                ),
                            );
                            ok = false;
                        }
                    }
                }
                if states.is_empty() && ok {
                    errors.on(
                        &value,
                        "`states` must name at least one status in which the first job blocks another, such as `states = [pending, running]`; leave `states` out for pending, running and retrying",
                    );
                    ok = false;
                }
                unique.states = Some(states);
            }
            _ => unreachable!("every part in UNIQUE_PARTS is handled"),
        }
    }
    ok.then_some(unique)
}

fn duration(errors: &mut Errors, key: &str, value: &Expr) -> Option<Duration> {
    duration_as(errors, key, example(key).unwrap_or_default(), value)
}

fn duration_as(errors: &mut Errors, key: &str, example: &str, value: &Expr) -> Option<Duration> {
    if let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = value
    {
        errors.on(
            value,
            format!(
                "`{key}` takes a duration string with a unit: write `{key} = \"{}s\"` for seconds, or \"ms\", \"m\", \"h\"",
                int.base10_digits()
            ),
        );
        return None;
    }
    let lit = string_as(errors, key, example, value)?;
    // An `every` interval is checked as the runtime's `Schedule` checks it
    // (longer than zero, with its message); a zero `timeout` is refused
    // here, as `Job::validate` would refuse it on enqueue.
    let parsed = match key {
        "every" => jobs_schedule::parse_interval(&lit.value()),
        _ => jobs_schedule::parse_duration(&lit.value()),
    };
    match parsed {
        Ok(d) if d.is_zero() => {
            errors.on(
                &lit,
                format!("`{key}` must be longer than zero, such as `{key} = {example}`"),
            );
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            errors.on(&lit, e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("priority", "priorty"), 1);
        assert_eq!(distance("retries", "retry"), 3);
        assert!(similar_prefix("retries", "retry"));
        assert!(similar_prefix("priority", "prio"));
        assert!(similar_prefix("timeout", "timeouts"));
        assert!(!similar_prefix("queue", "name"));
        assert_eq!(distance("name", "name"), 0);
        assert_eq!(distance("", "abc"), 3);
    }

    #[test]
    fn lists() {
        assert_eq!(listed(&["a"]), "`a`");
        assert_eq!(listed(&["a", "b", "c"]), "`a`, `b` and `c`");
    }
}
