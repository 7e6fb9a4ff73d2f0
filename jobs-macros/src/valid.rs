//! Checks across the attribute and the function: what neither can tell
//! alone.

use quote::quote;

use crate::ast::JobFn;
use crate::attr::{Attr, Schedule};
use crate::errors::Errors;

/// Runs every cross-check, recording errors.
pub(crate) fn check(attr: &Attr, function: &JobFn, errors: &mut Errors) {
    check_schedule(attr, function, errors);
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
