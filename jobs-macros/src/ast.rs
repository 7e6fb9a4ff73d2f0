//! The function under `#[job]`: its signature checked and its parameters
//! classified into payload (deserialised from the job's arguments),
//! `JobContext` and `Data<T>` (injected).
//!
//! Injected parameters are recognised by the last segment of their type's
//! path, as written: `JobContext` (or `jobs::JobContext`, ...) and
//! `Data<T>` (or `jobs::Data<T>`). A type of one's own with either name is
//! taken for the framework's.

use proc_macro2::Span;
use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Type, TypePath};

use crate::errors::{Errors, written};

/// What a parameter is.
pub(crate) enum Kind {
    /// Deserialised from the job's arguments: a field of `Args`.
    Payload,
    /// The running attempt's `JobContext`.
    Context,
    /// Shared state `Data<T>`; holds `T`.
    Data(Box<Type>),
}

/// One parameter of the function.
pub(crate) struct Param {
    /// Its name (without `mut`).
    pub(crate) ident: Ident,
    /// Its type as written.
    pub(crate) ty: Type,
    pub(crate) kind: Kind,
}

/// The function, checked.
pub(crate) struct JobFn {
    pub(crate) item: ItemFn,
    pub(crate) params: Vec<Param>,
    /// The declared return type; `None` for `()`.
    pub(crate) output: Option<Type>,
}

impl JobFn {
    /// The payload parameters, in order.
    pub(crate) fn payload(&self) -> impl Iterator<Item = &Param> {
        self.params
            .iter()
            .filter(|p| matches!(p.kind, Kind::Payload))
    }
}

/// Reads the function, recording every misuse in `errors`. Returns `None`
/// if the function cannot be expanded (its errors are then recorded).
pub(crate) fn parse(item: ItemFn, errors: &mut Errors) -> Option<JobFn> {
    let before = errors.is_empty();
    let mut ok = true;
    let sig = &item.sig;
    let name = &sig.ident;

    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token.span,
            format!(
                "the `async` keyword is missing from the function declaration: a job is an async function; write `async fn {name}(..)`"
            ),
        );
        ok = false;
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.on(
            unsafety,
            "a job function cannot be `unsafe`: the worker calls it with nothing but its arguments; remove `unsafe`",
        );
        ok = false;
    }
    if let Some(abi) = &sig.abi {
        errors.on(abi, "a job function cannot have an ABI; remove it");
        ok = false;
    }
    if let Some(variadic) = &sig.variadic {
        errors.on(variadic, "a job function cannot be variadic");
        ok = false;
    }
    if !sig.generics.params.is_empty() {
        errors.on(
            &sig.generics,
            format!(
                "a job function cannot be generic: the worker deserialises its arguments into one concrete type; remove `{}` and name the types",
                written(&sig.generics)
            ),
        );
        ok = false;
    } else if let Some(where_clause) = &sig.generics.where_clause {
        errors.on(
            where_clause,
            "a job function cannot have a `where` clause: its parameters must be concrete types; remove it",
        );
        ok = false;
    }

    let mut params = Vec::new();
    for input in &sig.inputs {
        let typed = match input {
            FnArg::Receiver(receiver) => {
                errors.on(
                    receiver,
                    "a job cannot take `self`: the worker calls it by name, with no value to call it on; write a free function and take what it needs as parameters, or as `Data<T>` for shared state",
                );
                ok = false;
                continue;
            }
            FnArg::Typed(typed) => typed,
        };
        let ty = (*typed.ty).clone();
        let ident = match &*typed.pat {
            Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                Some(pat.ident.clone())
            }
            pat => {
                errors.on(
                    pat,
                    format!(
                        "a job parameter must be a plain name: it becomes a field of the job's `Args`; write `name: {}` and destructure it in the function's body",
                        written(&ty)
                    ),
                );
                ok = false;
                None
            }
        };
        let kind = match classify(&ty, errors) {
            Some(kind) => kind,
            None => {
                ok = false;
                continue;
            }
        };
        if let Some(ident) = ident {
            params.push(Param { ident, ty, kind });
        }
    }

    let output = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => {
            if let Type::ImplTrait(_) = &**ty {
                errors.on(
                    ty,
                    "a job cannot return `impl Trait`: the worker turns the return into a `JobResult`; return `Result<T, E>` (T: Serialize, E: Into<JobError>), `JobResult` or `()`",
                );
                ok = false;
            }
            Some((**ty).clone())
        }
    };

    if !ok {
        debug_assert!(!errors.is_empty() || before);
        return None;
    }
    Some(JobFn {
        params,
        output,
        item,
    })
}

/// Classifies a parameter type; `None` (with an error) if it cannot be a
/// job parameter at all.
fn classify(ty: &Type, errors: &mut Errors) -> Option<Kind> {
    match ty {
        Type::Reference(reference) => {
            let inner = &*reference.elem;
            let owned = owned_form(inner);
            let message = if last_segment(inner).is_some_and(|s| s.ident == "JobContext") {
                "a job takes `JobContext` by value (it is cheap to clone): write `JobContext`"
                    .to_string()
            } else {
                format!(
                    "a job parameter cannot be a reference: the worker deserialises each argument into an owned value; write `{owned}` instead of `{}`",
                    written_reference(reference)
                )
            };
            errors.on(ty, message);
            None
        }
        Type::ImplTrait(_) => {
            errors.on(
                ty,
                "a job parameter cannot be `impl Trait`: the worker deserialises each argument into one concrete type; write that type, such as `String` or a struct deriving `Serialize` and `Deserialize`",
            );
            None
        }
        Type::Group(group) => classify(&group.elem, errors),
        Type::Paren(paren) => classify(&paren.elem, errors),
        _ => {
            let Some(segment) = last_segment(ty) else {
                return Some(Kind::Payload);
            };
            if segment.ident == "JobContext" && segment.arguments.is_none() {
                return Some(Kind::Context);
            }
            if segment.ident == "Data" {
                if let PathArguments::AngleBracketed(args) = &segment.arguments {
                    let types: Vec<&Type> = args
                        .args
                        .iter()
                        .filter_map(|a| match a {
                            GenericArgument::Type(t) => Some(t),
                            _ => None,
                        })
                        .collect();
                    if let [inner] = types[..] {
                        if args.args.len() == 1 {
                            return Some(Kind::Data(Box::new(inner.clone())));
                        }
                    }
                }
                errors.on(
                    ty,
                    "shared state is taken as `Data<T>` with one type, such as `Data<Database>`",
                );
                return None;
            }
            Some(Kind::Payload)
        }
    }
}

/// Whether a parameter's type is one the worker injects (`JobContext` or
/// `Data<..>`, by reference too): callers of `job(..)` do not pass it.
pub(crate) fn is_injected(ty: &Type) -> bool {
    match ty {
        Type::Reference(reference) => is_injected(&reference.elem),
        Type::Paren(paren) => is_injected(&paren.elem),
        _ => last_segment(ty).is_some_and(|s| {
            (s.ident == "JobContext" && s.arguments.is_none()) || s.ident == "Data"
        }),
    }
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(TypePath { qself: None, path }) => path.segments.last(),
        Type::Group(group) => last_segment(&group.elem),
        _ => None,
    }
}

/// Whether a type is written as `Option<..>` (serde lets such a field be
/// missing).
pub(crate) fn is_option(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == "Option")
}

/// A reference type as a user would write it (`&str`, `&'a mut T`).
fn written_reference(reference: &syn::TypeReference) -> String {
    let mut out = String::from("&");
    if let Some(lifetime) = &reference.lifetime {
        out.push_str(&format!("{lifetime} "));
    }
    if reference.mutability.is_some() {
        out.push_str("mut ");
    }
    out.push_str(&written(&reference.elem));
    out
}

/// What to write instead of a reference to `inner`.
fn owned_form(inner: &Type) -> String {
    let text = written(inner);
    match inner {
        Type::Slice(slice) => format!("Vec<{}>", written(&slice.elem)),
        _ => match text.as_str() {
            "str" => "String".into(),
            "Path" | "std::path::Path" => "PathBuf".into(),
            "OsStr" | "std::ffi::OsStr" => "OsString".into(),
            "CStr" => "CString".into(),
            _ => text,
        },
    }
}

/// The span to point at for the function as a whole (its name).
pub(crate) fn name_span(item: &ItemFn) -> Span {
    item.sig.ident.span()
}
