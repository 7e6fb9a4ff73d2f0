//! Code generation: the function as written, and next to it a module of
//! the same name with `NAME`, `Args`, `job(..)`, `enqueue(..)`,
//! `registration()`, the dispatcher entry point and the `inventory`
//! registration.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, Item, ItemFn, Visibility};

use crate::ast::{self, JobFn, Kind};
use crate::attr::{self, Attr, Priority, Schedule};
use crate::errors::Errors;
use crate::{fallback, valid};

/// The whole expansion: parse, check, generate; on errors, the errors plus
/// whatever can still be generated, so one mistake does not cascade.
pub(crate) fn job(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let attr = attr::parse(args, &mut errors);

    let item = match syn::parse2::<Item>(input.clone()) {
        Ok(Item::Fn(item)) => item,
        Ok(other) => {
            errors.at(
                item_span(&other),
                "`#[job]` goes on an `async fn`: write `#[job] async fn name(..) { .. }`",
            );
            let errors = errors.into_compile_errors();
            return quote!(#errors #input);
        }
        Err(e) => {
            errors.push(e);
            let errors = errors.into_compile_errors();
            return quote!(#errors #input);
        }
    };

    let Some(function) = ast::parse(item.clone(), &mut errors) else {
        // The signature cannot be expanded: keep the function as written,
        // and beside it a module whose items let the job's uses compile, so
        // that its errors are the only ones.
        let fallback = fallback::generate(&attr, &item);
        let errors = errors.into_compile_errors();
        return quote!(#errors #item #fallback);
    };
    valid::check(&attr, &function, &mut errors);
    let generated = generate(&attr, &function);
    let errors = errors.into_compile_errors();
    quote!(#errors #generated)
}

fn item_span(item: &Item) -> Span {
    match item {
        Item::Struct(s) => s.struct_token.span,
        Item::Enum(e) => e.enum_token.span,
        Item::Impl(i) => i.impl_token.span,
        Item::Mod(m) => m.mod_token.span,
        Item::Trait(t) => t.trait_token.span,
        Item::Const(c) => c.const_token.span,
        Item::Static(s) => s.static_token.span,
        other => other.span(),
    }
}

fn generate(attr: &Attr, function: &JobFn) -> TokenStream {
    let item = &function.item;
    let ident = &item.sig.ident;
    let fn_vis = &item.vis;
    let vis = inner_visibility(fn_vis);
    let name = job_name(attr, ident);
    let cfgs = cfg_attrs(item);

    // `target` is the caller's, not the user's: a mixed-site name cannot
    // clash with a parameter of that name.
    let target = Ident::new("target", Span::mixed_site());
    let payload: Vec<_> = function.payload().collect();
    let payload_idents: Vec<&Ident> = payload.iter().map(|p| &p.ident).collect();
    let payload_types: Vec<&syn::Type> = payload.iter().map(|p| &p.ty).collect();
    let field_docs: Vec<String> = payload
        .iter()
        .map(|p| {
            format!(
                "The `{}` argument.",
                p.ident.to_string().trim_start_matches("r#")
            )
        })
        .collect();

    // Each payload type must be serde. `Serialize` is written here, each
    // field through `__private::argument::serialize_field`; `Deserialize` is
    // derived, each field through `__private::argument::deserialize`. Both
    // are bounded by `__private` traits and spanned on the parameter's type:
    // a type that is not serde is reported there, once per missing trait,
    // rather than from inside serde's derive. An `Option` may be missing
    // from the arguments, as serde allows without `deserialize_with`.
    let field_attrs = payload_types.iter().map(|ty| {
        let with = syn::LitStr::new("::jobs::__private::argument::deserialize", ty.span());
        let default = ast::is_option(ty).then(|| quote!(default,));
        quote!(#[serde(#default deserialize_with = #with)])
    });
    let field_names: Vec<String> = payload_idents
        .iter()
        .map(|i| i.to_string().trim_start_matches("r#").to_owned())
        .collect();
    let state = Ident::new("state", Span::mixed_site());
    let serialize_fields = payload.iter().zip(&field_names).map(|(p, field)| {
        let mut ident = p.ident.clone();
        ident.set_span(p.ty.span());
        quote_spanned! {p.ty.span()=>
            ::jobs::__private::argument::serialize_field(&mut #state, #field, &self.#ident)?;
        }
    });
    let field_count = payload.len();

    // The dispatcher's call: payload from `Args`, the rest injected.
    let cx = Ident::new("cx", Span::mixed_site());
    let job_ref = Ident::new("job", Span::mixed_site());
    let args_value = Ident::new("args", Span::mixed_site());
    let mut injections = Vec::new();
    let mut call_args = Vec::new();
    let mut data_needs = Vec::new();
    for (i, param) in function.params.iter().enumerate() {
        let param_ident = &param.ident;
        match &param.kind {
            Kind::Payload => call_args.push(quote!(#args_value.#param_ident)),
            Kind::Context => call_args.push(quote!(::core::clone::Clone::clone(#cx))),
            Kind::Data(inner) => {
                let local = format_ident!("data_{}", i, span = Span::mixed_site());
                injections.push(quote_spanned! {param.ty.span()=>
                    let #local = match ::jobs::__private::data::<#inner>(#cx) {
                        ::core::result::Result::Ok(value) => value,
                        ::core::result::Result::Err(error) => {
                            return ::jobs::__private::JobResult::failure(error);
                        }
                    };
                });
                call_args.push(quote!(#local));
                data_needs.push(quote_spanned! {param.ty.span()=>
                    ::jobs::__private::data_need::<#inner>()
                });
            }
        }
    }
    let output = Ident::new("output", Span::mixed_site());
    // The step's output, read from the return type as written (a trait
    // projection would repeat, at the attribute, the error a return type
    // that no job can have already gets): `T` of `Result<T, ..>`, a JSON
    // value for `JobResult`, `()` for nothing. Other forms get no `step`.
    let step_output = match &function.output {
        None => Some(quote!(())),
        Some(ty) => step_output(ty),
    };
    let step_doc = format!(
        "`job(..)` as a workflow step whose output is `{}`'s success value: add it with `Workflow::step`, \
         and read its output in a later step with `JobContext::output`.",
        ident
    );
    let step_fn = step_output.map(|output| {
        quote! {
            #[doc = #step_doc]
            #vis fn step(
                #(#payload_idents: #payload_types),*
            ) -> ::jobs::workflow::TypedJob<#output> {
                ::jobs::workflow::TypedJob::new(self::job(#(#payload_idents),*))
            }
        }
    });
    let into_result = match &function.output {
        Some(ty) => quote_spanned! {ty.span()=>
            ::jobs::__private::into_result::<#ty>(#output)
        },
        None => quote!(::jobs::__private::into_result::<()>(#output)),
    };
    // Spanned on the function's name: "future cannot be sent between
    // threads safely" points there, with rustc's note on the value held
    // across an await.
    let name_span = ast::name_span(item);
    let handler = quote_spanned! {name_span=>
        ::jobs::__private::handler_future(async move {
            let #args_value: self::Args = match ::jobs::__private::deserialize_args(#job_ref) {
                ::core::result::Result::Ok(value) => value,
                ::core::result::Result::Err(error) => {
                    return ::jobs::__private::JobResult::failure(error);
                }
            };
            #(#injections)*
            let #output = super::#ident(#(#call_args),*).await;
            #into_result
        })
    };

    let priority = match attr.priority.unwrap_or(Priority::Normal) {
        Priority::Low => quote!(::jobs::__private::PRIORITY_LOW),
        Priority::Normal => quote!(::jobs::__private::PRIORITY_NORMAL),
        Priority::High => quote!(::jobs::__private::PRIORITY_HIGH),
        Priority::Critical => quote!(::jobs::__private::PRIORITY_CRITICAL),
    };
    let max_retries = option(attr.retries.map(|n| quote!(#n)));
    let timeout = option(attr.timeout.map(|d| {
        let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
        quote!(::jobs::__private::Duration::new(#secs, #nanos))
    }));
    let schedule = option(attr.schedule.as_ref().map(|s| match s {
        Schedule::Cron {
            expression,
            timezone,
        } => {
            let timezone = option(timezone.as_ref().map(|tz| quote!(#tz)));
            quote!(::jobs::__private::ScheduleSpec::Cron {
                expression: #expression,
                timezone: #timezone,
            })
        }
        Schedule::Every(d) => {
            let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
            quote!(::jobs::__private::ScheduleSpec::Every(
                ::jobs::__private::Duration::new(#secs, #nanos)
            ))
        }
    }));
    let queue = option(attr.queue.as_ref().map(|q| quote!(#q)));
    let flow = flow(attr);
    let line = quote_spanned! {ident.span()=> ::core::line!()};
    let fn_name = ident.to_string();

    let mod_doc = format!(
        "The job `{name}`, generated by `#[job]` on the function `{fn_name}`: its `NAME`, \
         its arguments as `Args`, and `job(..)` / `enqueue(..)` to make and enqueue it."
    );
    let name_doc = format!("The job's name, `\"{name}\"`: what `Job::name` routes on.");
    let args_doc = format!(
        "The arguments of job `{name}`, as stored in `Job::args` (a JSON object with one field per parameter)."
    );
    let job_doc = format!(
        "A `Job` that runs `{fn_name}` with these arguments, with the attribute's priority, retries, timeout, queue, limits and uniqueness applied.\n\n\
         Arguments that fail to serialise (a map with non-string keys, a `Serialize` impl that returns an error) \
         make a job that carries the failure: enqueueing it is `Err(Error::Serialize {{ .. }})`, and nothing is stored."
    );
    let enqueue_doc = format!(
        "Enqueues `{fn_name}` with these arguments on `target` (a queue, a worker, anything that implements `Enqueue`); returns the job's id.\n\n\
         Arguments that fail to serialise are `Err(Error::Serialize {{ .. }})`, and nothing is stored."
    );

    quote! {
        #item

        #(#cfgs)*
        #[doc = #mod_doc]
        #[allow(dead_code, unused_imports, clippy::too_many_arguments)]
        #fn_vis mod #ident {
            use super::*;

            #[doc = #name_doc]
            #vis const NAME: &str = #name;

            #[doc = #args_doc]
            #[derive(::jobs::__private::serde::Deserialize)]
            #[serde(crate = "::jobs::__private::serde")]
            #vis struct Args {
                #(
                    #[doc = #field_docs]
                    #field_attrs
                    #vis #payload_idents: #payload_types,
                )*
            }

            #[automatically_derived]
            impl ::jobs::__private::serde::Serialize for Args {
                fn serialize<S>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error>
                where
                    S: ::jobs::__private::argument::Serializer,
                {
                    let mut #state = ::jobs::__private::argument::Serializer::serialize_struct(
                        serializer,
                        "Args",
                        #field_count,
                    )?;
                    #(#serialize_fields)*
                    ::jobs::__private::argument::SerializeStruct::end(#state)
                }
            }

            #[automatically_derived]
            impl ::jobs::__private::JobArgs for Args {
                const NAME: &'static str = #name;
            }

            impl Args {
                /// A `Job` with these arguments and the attribute's defaults
                /// (arguments that fail to serialise make a job that every
                /// enqueue refuses with `Error::Serialize`).
                #vis fn into_job(self) -> ::jobs::__private::Job {
                    ::jobs::__private::new_job(&__JOBS_REGISTRATION, &self)
                }
            }

            #[doc = #job_doc]
            #vis fn job(#(#payload_idents: #payload_types),*) -> ::jobs::__private::Job {
                self::Args { #(#payload_idents),* }.into_job()
            }

            #step_fn

            #[doc = #enqueue_doc]
            #vis fn enqueue<'target, Target>(
                #target: &'target Target,
                #(#payload_idents: #payload_types),*
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<::jobs::__private::JobId, ::jobs::__private::Error>,
            > + ::core::marker::Send + 'target
            where
                Target: ::jobs::__private::Enqueue + ?::core::marker::Sized,
            {
                ::jobs::__private::enqueue(#target, self::job(#(#payload_idents),*))
            }

            /// What this job registers with the `Registry`.
            #vis fn registration() -> &'static ::jobs::__private::JobRegistration {
                &__JOBS_REGISTRATION
            }

            #[doc(hidden)]
            #[automatically_derived]
            fn __jobs_handler<'a>(
                #job_ref: &'a ::jobs::__private::Job,
                #cx: &'a ::jobs::__private::JobContext,
            ) -> ::jobs::__private::BoxFuture<'a, ::jobs::__private::JobResult> {
                #handler
            }

            #[doc(hidden)]
            const __JOBS_REGISTRATION: ::jobs::__private::JobRegistration =
                ::jobs::__private::JobRegistration {
                    name: #name,
                    priority: #priority,
                    max_retries: #max_retries,
                    timeout: #timeout,
                    queue: #queue,
                    flow: #flow,
                    schedule: #schedule,
                    data: &[#(#data_needs),*],
                    handler: __jobs_handler,
                    // The module has the function's name: its path is the function's.
                    function: ::core::module_path!(),
                    file: ::core::file!(),
                    line: #line,
                };

            ::jobs::__private::inventory::submit! { __JOBS_REGISTRATION }
        }
    }
}

/// The registration's `Flow`: `concurrency`, `rate_limit`, `key` and
/// `unique`, the parameters they name as the fields of `Args` (without
/// `r#`).
fn flow(attr: &Attr) -> TokenStream {
    let field = |ident: &Ident| ident.unraw().to_string();
    let duration = |d: Duration| {
        let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
        quote!(::jobs::__private::Duration::new(#secs, #nanos))
    };
    let concurrency = option(attr.concurrency.map(|n| quote!(#n)));
    let rate_limit = option(attr.rate_limit.map(|(max, period)| {
        let period = duration(period);
        quote!(::jobs::__private::Rate { max: #max, period: #period })
    }));
    let key = option(attr.key.as_ref().map(|k| {
        let k = field(k);
        quote!(#k)
    }));
    let unique = option(attr.unique.as_ref().map(|u| {
        let by = option(u.by.as_ref().map(|by| {
            let by = by.iter().map(field);
            quote!(&[#(#by),*])
        }));
        let period = option(u.period.map(duration));
        let states = match &u.states {
            Some(states) => {
                let variants = states
                    .iter()
                    .map(|&i| Ident::new(attr::STATUSES[i].1, Span::call_site()));
                quote!(&[#(::jobs::__private::JobStatus::#variants),*])
            }
            None => quote!(&::jobs::__private::DEFAULT_UNIQUE_STATES),
        };
        quote!(::jobs::__private::UniqueSpec {
            by: #by,
            period: #period,
            states: #states,
        })
    }));
    quote!(::jobs::__private::Flow {
        concurrency: #concurrency,
        rate_limit: #rate_limit,
        key: #key,
        unique: #unique,
    })
}

/// The job's name: the attribute's `name`, or the function's (without
/// `r#`).
pub(crate) fn job_name(attr: &Attr, ident: &Ident) -> String {
    attr.name
        .clone()
        .unwrap_or_else(|| ident.to_string().trim_start_matches("r#").to_owned())
}

/// The function's `#[cfg(..)]` attributes, which the module repeats.
pub(crate) fn cfg_attrs(item: &ItemFn) -> Vec<&Attribute> {
    item.attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .collect()
}

fn option(value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    }
}

/// The visibility, inside the generated module, that makes an item as
/// visible as the function: `pub` stays `pub`, private becomes
/// `pub(super)`, `pub(super)` becomes `pub(in super::super)`.
pub(crate) fn inner_visibility(vis: &Visibility) -> TokenStream {
    match vis {
        Visibility::Public(_) => quote!(pub),
        Visibility::Inherited => quote!(pub(super)),
        Visibility::Restricted(restricted) => {
            let path = &restricted.path;
            let first = path.segments.first().map(|s| s.ident.to_string());
            match first.as_deref() {
                Some("crate") => quote!(#vis),
                Some("self") if path.segments.len() == 1 => quote!(pub(super)),
                Some("self") => {
                    let rest = path.segments.iter().skip(1);
                    quote!(pub(in super #(::#rest)*))
                }
                Some("super") => quote!(pub(in super::#path)),
                _ => quote!(#vis),
            }
        }
    }
}

/// What a workflow step of a job returning `ty` outputs, read from the
/// type as written: `T` of `Result<T>` / `Result<T, E>` (any path ending in
/// `Result`), a JSON value for `JobResult`, `()` for `()`.
fn step_output(ty: &syn::Type) -> Option<TokenStream> {
    match ty {
        syn::Type::Tuple(t) if t.elems.is_empty() => Some(quote!(())),
        syn::Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last()?;
            if last.ident == "JobResult" && last.arguments.is_empty() {
                return Some(quote!(::jobs::__private::JsonValue));
            }
            if last.ident != "Result" {
                return None;
            }
            let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
                return None;
            };
            match args.args.first()? {
                syn::GenericArgument::Type(t) => Some(quote!(#t)),
                _ => None,
            }
        }
        _ => None,
    }
}
