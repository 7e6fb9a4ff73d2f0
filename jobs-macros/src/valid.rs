//! Checks across the attribute and the function: what neither can tell
//! alone.

use quote::quote;
use syn::Ident;
use syn::ext::IdentExt;

use crate::ast::{JobFn, Kind};
use crate::attr::{Attr, Schedule, did_you_mean, listed};
use crate::errors::{Errors, written};

/// Runs every cross-check, recording errors.
pub(crate) fn check(attr: &Attr, function: &JobFn, errors: &mut Errors) {
    check_schedule(attr, function, errors);
    if let Some(key) = &attr.key {
        check_parameter("key", key, function, errors);
    }
    if let Some(by) = attr.unique.as_ref().and_then(|u| u.by.as_ref()) {
        for ident in by {
            check_parameter("by", ident, function, errors);
        }
    }
}

/// `key = ident` and `unique(by = [ident])` name a payload parameter: its
/// value is in the job's arguments.
fn check_parameter(key: &str, ident: &Ident, function: &JobFn, errors: &mut Errors) {
    let name = ident.unraw().to_string();
    let payload: Vec<String> = function
        .payload()
        .map(|p| p.ident.unraw().to_string())
        .collect();
    match function.params.iter().find(|p| p.ident.unraw() == name) {
        Some(param) => {
            let injected = match &param.kind {
                Kind::Payload => return,
                Kind::Context => "the `JobContext`,".to_string(),
                Kind::Data(_) => format!("shared state, `{}`,", written(&param.ty)),
            };
            errors.on(
                ident,
                format!(
                    "`{key} = {name}` names {injected} which the worker injects: it is not part of the job's arguments, so it has no value to key on; {}",
                    name_payload(&payload)
                ),
            );
        }
        None => {
            let candidates: Vec<&str> = payload.iter().map(String::as_str).collect();
            errors.on(
                ident,
                format!(
                    "`{key} = {name}` names no parameter of the function; {}{}",
                    name_payload(&payload),
                    did_you_mean(&name, &candidates)
                ),
            );
        }
    }
}

/// What to name instead.
fn name_payload(payload: &[String]) -> String {
    match payload {
        [] => "the function has no payload parameter to key on".to_string(),
        [one] => format!("its payload parameter is `{one}`"),
        _ => {
            let names: Vec<&str> = payload.iter().map(String::as_str).collect();
            format!("its payload parameters are {}", listed(&names))
        }
    }
}

/// A periodic job is enqueued by the scheduler with no arguments, so it can
/// take no payload parameter (only `JobContext` and `Data<T>`).
fn check_schedule(attr: &Attr, function: &JobFn, errors: &mut Errors) {
    let Some(schedule) = &attr.schedule else {
        return;
    };
    let key = match schedule {
        Schedule::Cron { .. } => "cron",
        Schedule::Every(_) => "every",
    };
    for param in function.payload() {
        let (ident, ty) = (&param.ident, &param.ty);
        errors.push(syn::Error::new_spanned(
            quote!(#ident: #ty),
            format!(
                "a job with `{key} = ..` is enqueued by the scheduler without arguments, so it cannot take `{ident}`; \
                 remove the parameter (a periodic job may take only `JobContext` and `Data<T>`), \
                 or remove `{key}` and enqueue the job yourself with a `JobScheduler` task"
            ),
        ));
    }
}
