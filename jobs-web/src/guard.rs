//! What stands in front of every route: basic auth, read-only mode, the
//! CSRF check of actions, and the security headers of every response.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::base::Base;
use crate::dashboard::Dashboard;
use crate::view::{self, Ctx};

/// The cookie holding the form token (the double-submit half).
pub(crate) const CSRF_COOKIE: &str = "jobs_web_csrf";
/// The form field holding it.
pub(crate) const CSRF_FIELD: &str = "csrf";

/// Every response's security headers. The policy allows only the
/// dashboard's own files: no inline script or style, no framing.
const SECURITY_HEADERS: [(HeaderName, &str); 6] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
         object-src 'none'",
    ),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
    (
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    ),
];

/// Adds the security headers and, on pages, `no-store` and the CSRF
/// cookie.
fn finish(dashboard: &Dashboard, base: &Base, mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html && !dashboard.read_only {
        let cookie = format!(
            "{CSRF_COOKIE}={}; Path={}; SameSite=Strict; HttpOnly",
            dashboard.csrf,
            base.cookie_path()
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

/// Whether the request carries the credentials basic auth asks for (or
/// none are asked).
fn authorized(dashboard: &Dashboard, headers: &HeaderMap) -> bool {
    let Some(credentials) = &dashboard.auth else {
        return true;
    };
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
        })
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
    else {
        return false;
    };
    bool::from(given.ct_eq(credentials.joined.as_bytes()))
}

fn unauthorized(dashboard: &Dashboard, base: &Base) -> Response {
    let mut response = view::error_response(
        &Ctx::new(dashboard, base.clone()).anonymous(),
        StatusCode::UNAUTHORIZED,
        "Sign in required",
        "This dashboard needs a user name and password.",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"jobs\", charset=\"UTF-8\""),
    );
    response
}

/// Whether the browser says the request comes from another site (the
/// `Sec-Fetch-Site` header, sent by current browsers).
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
}

/// Whether an action's form token is the dashboard's and its cookie holds
/// the same, compared in constant time.
pub(crate) fn csrf_ok(dashboard: &Dashboard, headers: &HeaderMap, token: Option<&str>) -> bool {
    let secret = dashboard.csrf.as_bytes();
    let Some(token) = token else {
        return false;
    };
    if !bool::from(token.as_bytes().ct_eq(secret)) {
        return false;
    }
    // Several dashboards on one host may each have set a cookie: any of
    // them holding this dashboard's secret will do.
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == CSRF_COOKIE)
        .any(|(_, value)| bool::from(value.as_bytes().ct_eq(secret)))
}

/// The 403 of an action without a valid token.
pub(crate) fn forbidden_csrf(dashboard: &Dashboard, base: &Base) -> Response {
    view::error_response(
        &Ctx::new(dashboard, base.clone()),
        StatusCode::FORBIDDEN,
        "Action refused",
        "The form token is missing or does not match: reload the page and try again.",
    )
}

/// The middleware around every route: basic auth, then read-only mode and
/// the cross-site check for anything but `GET` and `HEAD`, then the route;
/// the headers go on whatever answers.
pub(crate) async fn guard(
    State(dashboard): State<Dashboard>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let Ok(base) = Base::from_request_parts(&mut parts, &()).await;
    let method = parts.method.clone();
    let safe = method == Method::GET || method == Method::HEAD;
    let response = if !authorized(&dashboard, &parts.headers) {
        unauthorized(&dashboard, &base)
    } else if !safe && dashboard.read_only {
        view::error_response(
            &Ctx::new(&dashboard, base.clone()),
            StatusCode::FORBIDDEN,
            "Read-only dashboard",
            "This dashboard is read-only: it shows the queue but changes nothing.",
        )
    } else if !safe && cross_site(&parts.headers) {
        forbidden_csrf(&dashboard, &base)
    } else {
        next.run(Request::from_parts(parts, body)).await
    };
    finish(&dashboard, &base, response.into_response())
}
