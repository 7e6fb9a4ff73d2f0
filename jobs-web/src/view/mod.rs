//! The pages, as maud templates: the layout every page shares and the
//! small formatting helpers; one module per page.
//!
//! Everything that comes from a job (names, arguments, errors, queue
//! names, metadata) goes through maud's escaping: no `PreEscaped` here
//! holds job data.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use jobs::JobStatus;
use maud::{DOCTYPE, Markup, html};

use crate::assets;
use crate::base::Base;
use crate::dashboard::Dashboard;
use crate::guard::CSRF_FIELD;

pub(crate) mod chart;
pub(crate) mod job;
pub(crate) mod jobs_list;
pub(crate) mod overview;
pub(crate) mod workflow;

/// What every page needs besides its own data.
pub(crate) struct Ctx {
    pub(crate) base: Base,
    pub(crate) title: Arc<str>,
    pub(crate) read_only: bool,
    csrf: Arc<str>,
    pub(crate) backend: &'static str,
    pub(crate) now: DateTime<Utc>,
    /// The request was not signed in: no navigation.
    anonymous: bool,
}

impl Ctx {
    pub(crate) fn new(dashboard: &Dashboard, base: Base) -> Self {
        Ctx {
            base,
            title: dashboard.title.clone(),
            read_only: dashboard.read_only,
            csrf: dashboard.csrf.clone(),
            backend: dashboard.queue.backend(),
            now: Utc::now(),
            anonymous: false,
        }
    }

    pub(crate) fn anonymous(mut self) -> Self {
        self.anonymous = true;
        self
    }

    /// A `POST` form to `action` (a dashboard path) with the CSRF token,
    /// holding one button: nothing in read-only mode.
    pub(crate) fn action(
        &self,
        path: &str,
        label: &str,
        class: &str,
        extra: &[(&str, &str)],
    ) -> Markup {
        self.action_confirm(path, label, class, extra, None)
    }

    /// [`action`](Self::action) that asks `confirm` first (with JavaScript).
    pub(crate) fn action_confirm(
        &self,
        path: &str,
        label: &str,
        class: &str,
        extra: &[(&str, &str)],
        confirm: Option<&str>,
    ) -> Markup {
        if self.read_only {
            return html! {};
        }
        html! {
            form.action method="post" action=(self.base.url(path)) data-confirm=[confirm] {
                input type="hidden" name=(CSRF_FIELD) value=(self.csrf);
                @for (name, value) in extra {
                    input type="hidden" name=(name) value=(value);
                }
                button type="submit" class={"btn " (class)} { (label) }
            }
        }
    }
}

/// A message shown once after an action, from the redirect's `flash`
/// query parameter (a fixed code, so a link cannot make the dashboard say
/// anything else).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flash {
    Retried,
    NotRetryable,
    Cancelled,
    AlreadyFinished,
    Deleted,
    DeleteRunning,
    RetriedAll(u64),
    RetriedSome(u64),
    Purged(u64),
    Paused,
    AlreadyPaused,
    Resumed,
    NotPaused,
    WorkflowCancelled(u64),
    WorkflowFinished,
}

impl Flash {
    /// The query string that carries it.
    pub(crate) fn query(self) -> String {
        match self {
            Flash::RetriedAll(n) => format!("flash=retried-all&n={n}"),
            Flash::RetriedSome(n) => format!("flash=retried-some&n={n}"),
            Flash::Purged(n) => format!("flash=purged&n={n}"),
            Flash::WorkflowCancelled(n) => format!("flash=workflow-cancelled&n={n}"),
            other => format!("flash={}", other.code()),
        }
    }

    fn code(self) -> &'static str {
        match self {
            Flash::Retried => "retried",
            Flash::NotRetryable => "not-retryable",
            Flash::Cancelled => "cancelled",
            Flash::AlreadyFinished => "already-finished",
            Flash::Deleted => "deleted",
            Flash::DeleteRunning => "delete-running",
            Flash::RetriedAll(_) => "retried-all",
            Flash::RetriedSome(_) => "retried-some",
            Flash::Purged(_) => "purged",
            Flash::Paused => "paused",
            Flash::AlreadyPaused => "already-paused",
            Flash::Resumed => "resumed",
            Flash::NotPaused => "not-paused",
            Flash::WorkflowCancelled(_) => "workflow-cancelled",
            Flash::WorkflowFinished => "workflow-finished",
        }
    }

    /// Reads a flash back from the query parameters.
    pub(crate) fn parse(code: Option<&str>, n: Option<&str>) -> Option<Flash> {
        let n = n.and_then(|n| n.parse().ok()).unwrap_or(0);
        Some(match code? {
            "retried" => Flash::Retried,
            "not-retryable" => Flash::NotRetryable,
            "cancelled" => Flash::Cancelled,
            "already-finished" => Flash::AlreadyFinished,
            "deleted" => Flash::Deleted,
            "delete-running" => Flash::DeleteRunning,
            "retried-all" => Flash::RetriedAll(n),
            "retried-some" => Flash::RetriedSome(n),
            "purged" => Flash::Purged(n),
            "paused" => Flash::Paused,
            "already-paused" => Flash::AlreadyPaused,
            "resumed" => Flash::Resumed,
            "not-paused" => Flash::NotPaused,
            "workflow-cancelled" => Flash::WorkflowCancelled(n),
            "workflow-finished" => Flash::WorkflowFinished,
            _ => return None,
        })
    }

    fn message(self) -> (bool, String) {
        match self {
            Flash::Retried => (true, "The job is waiting to run again.".into()),
            Flash::NotRetryable => (
                false,
                "Not retried: only failed, cancelled or expired jobs can be.".into(),
            ),
            Flash::Cancelled => (true, "The job was cancelled.".into()),
            Flash::AlreadyFinished => {
                (false, "Not cancelled: the job had already finished.".into())
            }
            Flash::Deleted => (true, "The job was deleted.".into()),
            Flash::DeleteRunning => (
                false,
                "Not deleted: the job is running. Cancel it first.".into(),
            ),
            Flash::RetriedAll(n) => (
                true,
                format!(
                    "{} failed {} waiting to run again.",
                    number(n),
                    plural(n, "job is", "jobs are")
                ),
            ),
            Flash::RetriedSome(n) => (
                true,
                format!(
                    "{} failed {} waiting to run again; more remain: retry again for the rest.",
                    number(n),
                    plural(n, "job is", "jobs are")
                ),
            ),
            Flash::Purged(n) => (
                true,
                format!(
                    "{} {} deleted.",
                    number(n),
                    plural(n, "job was", "jobs were")
                ),
            ),
            Flash::Paused => (
                true,
                "The queue is paused: workers take none of its jobs until it is resumed.".into(),
            ),
            Flash::AlreadyPaused => (false, "The queue was paused already.".into()),
            Flash::Resumed => (true, "The queue is resumed.".into()),
            Flash::NotPaused => (false, "The queue was not paused.".into()),
            Flash::WorkflowCancelled(n) => (
                true,
                format!(
                    "{} {} cancelled.",
                    number(n),
                    plural(n, "job was", "jobs were")
                ),
            ),
            Flash::WorkflowFinished => (
                false,
                "Not cancelled: every job of it had already finished.".into(),
            ),
        }
    }
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// A whole page: header, navigation, flash, `content`, footer.
pub(crate) fn layout(
    ctx: &Ctx,
    page: &str,
    active: Nav,
    flash: Option<Flash>,
    content: Markup,
) -> Markup {
    let nav = [
        (Nav::Overview, "Overview", ctx.base.home()),
        (Nav::Jobs, "Jobs", ctx.base.url("/jobs")),
        (Nav::Failed, "Failed", ctx.base.url("/jobs?status=failed")),
        (
            Nav::Retrying,
            "Retrying",
            ctx.base.url("/jobs?status=retrying"),
        ),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (page) " · " (ctx.title) }
                link rel="stylesheet" href=(ctx.base.url(&assets::CSS.url()));
                script src=(ctx.base.url(&assets::JS.url())) defer {}
            }
            body {
                header.top {
                    div.bar {
                        a.brand href=(ctx.base.home()) {
                            span.logo aria-hidden="true" { "◆" }
                            (ctx.title)
                        }
                        @if !ctx.anonymous {
                            nav {
                                @for (item, label, href) in &nav {
                                    a href=(href) class=[(*item == active).then_some("active")] { (label) }
                                }
                            }
                            form.search method="get" action=(ctx.base.url("/search")) role="search" {
                                input type="search" name="id" placeholder="Find a job or workflow by id" aria-label="Job or workflow id" autocomplete="off" spellcheck="false";
                                button.btn type="submit" { "Go" }
                            }
                        }
                        span.meta {
                            @if ctx.read_only { span.pill.readonly title="Actions are disabled" { "read-only" } }
                            span.pill title="Queue backend" { (ctx.backend) }
                        }
                    }
                }
                main {
                    @if let Some(flash) = flash {
                        @let (ok, text) = flash.message();
                        div class={"flash " (if ok { "ok" } else { "warn" })} role="status" { (text) }
                    }
                    (content)
                }
                footer {
                    "jobs-web " (env!("CARGO_PKG_VERSION")) " · " (ctx.backend) " backend · rendered "
                    time datetime=(ctx.now.to_rfc3339()) { (ctx.now.format("%Y-%m-%d %H:%M:%S UTC")) }
                }
            }
        }
    }
}

/// Which navigation entry a page belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Jobs,
    Failed,
    Retrying,
    None,
}

/// An HTML response with `status`.
pub(crate) fn page_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// An error page: 400, 403, 404, 503 ...
pub(crate) fn error_response(
    ctx: &Ctx,
    status: StatusCode,
    heading: &str,
    message: &str,
) -> Response {
    let markup = layout(
        ctx,
        heading,
        Nav::None,
        None,
        html! {
            section.error-page {
                p.code { (status.as_u16()) }
                h1 { (heading) }
                p { (message) }
                @if !ctx.anonymous {
                    p { a.btn href=(ctx.base.home()) { "Back to the overview" } }
                }
            }
        },
    );
    page_response(status, markup)
}

/// A status as a coloured label.
pub(crate) fn badge(status: JobStatus) -> Markup {
    html! { span class={"badge s-" (status.as_str())} { (status.as_str()) } }
}

/// `1234567` as `1,234,567`.
pub(crate) fn number(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A time as `2026-01-02 10:30:00 UTC`.
pub(crate) fn absolute(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// How long ago (or ahead) `at` is from `now`: `"5s ago"`, `"in 3m"`.
pub(crate) fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds();
    let span = short_span(secs.unsigned_abs());
    if secs >= 0 {
        format!("{span} ago")
    } else {
        format!("in {span}")
    }
}

/// A number of seconds as the largest whole unit: `45s`, `3m`, `2h`, `4d`.
pub(crate) fn short_span(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// A time as "5m ago", its exact value on hover.
pub(crate) fn when(ctx: &Ctx, at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) title=(absolute(at)) { (relative(at, ctx.now)) }
    }
}

/// A duration as `1.5s`, `250ms`, `2m 5s`.
pub(crate) fn duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        let s = d.as_secs_f64();
        if s.fract() == 0.0 {
            format!("{s:.0}s")
        } else {
            format!("{s:.1}s")
        }
    } else {
        let s = d.as_secs();
        match (s / 3600, (s % 3600) / 60, s % 60) {
            (0, m, 0) => format!("{m}m"),
            (0, m, s) => format!("{m}m {s}s"),
            (h, 0, _) => format!("{h}h"),
            (h, m, _) => format!("{h}h {m}m"),
        }
    }
}

/// The first `max` characters of `text` on one line, with `…` if cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    let mut out: String = line.chars().take(max).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// `text` percent-encoded for a URL's path segment or query value: all but
/// the unreserved characters.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The job list of the named queue `queue`.
pub(crate) fn queue_url(ctx: &Ctx, queue: &str) -> String {
    ctx.base.url(&format!("/jobs?queue={}", encode(queue)))
}

/// JSON, indented.
pub(crate) fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_separators() {
        assert_eq!(number(0), "0");
        assert_eq!(number(999), "999");
        assert_eq!(number(1000), "1,000");
        assert_eq!(number(1234567), "1,234,567");
    }

    #[test]
    fn spans_and_durations_read_short() {
        let now = Utc::now();
        assert_eq!(relative(now - chrono::TimeDelta::seconds(5), now), "5s ago");
        assert_eq!(relative(now + chrono::TimeDelta::minutes(3), now), "in 3m");
        assert_eq!(duration(std::time::Duration::from_millis(250)), "250ms");
        assert_eq!(duration(std::time::Duration::from_millis(1500)), "1.5s");
        assert_eq!(duration(std::time::Duration::from_secs(125)), "2m 5s");
        assert_eq!(duration(std::time::Duration::from_secs(7200)), "2h");
    }

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(encode("mailers"), "mailers");
        assert_eq!(encode("a b/c:d?é"), "a%20b%2Fc%3Ad%3F%C3%A9");
    }

    #[test]
    fn truncation_keeps_one_line() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("first line\nsecond", 40), "first line…");
        assert_eq!(truncate("ééééé", 2), "éé…");
    }

    #[test]
    fn flashes_round_trip() {
        for flash in [
            Flash::Retried,
            Flash::RetriedAll(3),
            Flash::Paused,
            Flash::DeleteRunning,
            Flash::WorkflowCancelled(4),
            Flash::WorkflowFinished,
        ] {
            let query = flash.query();
            let params: std::collections::HashMap<String, String> =
                serde_urlencoded::from_str(&query).unwrap();
            let parsed = Flash::parse(
                params.get("flash").map(String::as_str),
                params.get("n").map(String::as_str),
            );
            assert_eq!(parsed, Some(flash));
        }
        assert_eq!(Flash::parse(Some("<b>hi</b>"), None), None);
    }
}
