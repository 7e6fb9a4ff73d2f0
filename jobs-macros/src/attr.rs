//! The attribute's arguments: `#[job(name = "..", priority = "..", ...)]`,
//! parsed into typed values that keep the spans later checks point at.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Lit, LitStr, Meta, Token, UnOp};

use crate::errors::{Errors, written};

/// The keys, in the order the documentation lists them, each with an
/// example value for error messages.
const KEYS: [(&str, &str); 7] = [
    ("name", "\"send_email\""),
    ("priority", "\"high\""),
    ("retries", "3"),
    ("timeout", "\"30s\""),
    ("cron", "\"0 0 2 * * *\""),
    ("every", "\"5m\""),
    ("timezone", "\"Europe/Berlin\""),
];

const PRIORITIES: [&str; 4] = ["low", "normal", "high", "critical"];

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

/// The parsed attribute. A key that was given but invalid is `None` here
/// (its error is recorded), so expansion can go on with the default.
#[derive(Default)]
pub(crate) struct Attr {
    pub(crate) name: Option<String>,
    pub(crate) priority: Option<Priority>,
    pub(crate) retries: Option<u32>,
    pub(crate) timeout: Option<Duration>,
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

    for meta in metas {
        let (path, value) = match meta {
            Meta::NameValue(nv) => (nv.path, nv.value),
            Meta::Path(path) => {
                match path.get_ident().map(|i| i.to_string()) {
                    Some(key) if example(&key).is_some() => errors.on(
                        &path,
                        format!(
                            "`{key}` needs a value: write `{key} = {}`",
                            example(&key).unwrap_or_default()
                        ),
                    ),
                    _ => unknown_key(errors, &path),
                }
                continue;
            }
            Meta::List(list) => {
                match list.path.get_ident().map(|i| i.to_string()) {
                    Some(key) if example(&key).is_some() => errors.on(
                        &list,
                        format!(
                            "expected `{key} = value`: write `{key} = {}`",
                            example(&key).unwrap_or_default()
                        ),
                    ),
                    _ => unknown_key(errors, &list.path),
                }
                continue;
            }
        };
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

fn listed(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

fn unknown_key(errors: &mut Errors, path: &syn::Path) {
    let written = written(path);
    let keys: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
    let hint = keys
        .iter()
        .map(|k| (distance(k, &written), *k))
        .filter(|(d, k)| *d <= 2 || similar_prefix(k, &written))
        .min()
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    errors.on(
        path,
        format!(
            "unknown key `{written}`; the keys are {}{hint}",
            listed(&keys)
        ),
    );
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
    if let Expr::Lit(ExprLit {
        lit: Lit::Str(lit), ..
    }) = value
    {
        return Some(lit.clone());
    }
    let example = example(key).unwrap_or_default();
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

fn duration(errors: &mut Errors, key: &str, value: &Expr) -> Option<Duration> {
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
    let lit = string(errors, key, value)?;
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
                format!(
                    "`{key}` must be longer than zero, such as `{key} = {}`",
                    example(key).unwrap_or_default()
                ),
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
