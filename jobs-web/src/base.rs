//! Where the dashboard is mounted, so that every link, form action and
//! asset URL it writes works under any prefix.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, NestedPath, OriginalUri};
use axum::http::request::Parts;

/// The path the dashboard's router is mounted at, as the request shows it:
/// `""` when served at the root, `"/admin/jobs"` when nested there.
///
/// A nested router sees its request's path with the prefix stripped;
/// [`OriginalUri`] keeps the path as it arrived. The difference is the
/// prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Base {
    prefix: String,
    /// Whether the overview is `{prefix}/` (nested at a path ending in a
    /// slash) rather than `{prefix}`.
    slash_home: bool,
}

impl Base {
    /// From the path the request arrived with and the one the router sees.
    fn from_paths(original: &str, inner: &str, slash_home: bool) -> Self {
        let prefix = match original.strip_suffix(inner) {
            Some(prefix) => prefix,
            // `/admin/jobs` nested: the router sees `/`.
            None if inner == "/" => original.trim_end_matches('/'),
            None => "",
        };
        // A path starting `//` would make every link protocol-relative (to
        // another host): keep a single leading slash.
        let prefix = match prefix.trim_start_matches('/') {
            "" => String::new(),
            rest => format!("/{}", rest.trim_end_matches('/')),
        };
        Base { prefix, slash_home }
    }

    /// The URL of the dashboard page at `path` (which starts with `/`).
    pub(crate) fn url(&self, path: &str) -> String {
        debug_assert!(path.starts_with('/'));
        format!("{}{path}", self.prefix)
    }

    /// The overview's URL.
    pub(crate) fn home(&self) -> String {
        if self.prefix.is_empty() || self.slash_home {
            format!("{}/", self.prefix)
        } else {
            self.prefix.clone()
        }
    }

    /// The path the dashboard's cookie is scoped to.
    pub(crate) fn cookie_path(&self) -> String {
        format!("{}/", self.prefix)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Base {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let inner = parts.uri.path().to_owned();
        let original = parts
            .extensions
            .get::<OriginalUri>()
            .map(|uri| uri.path().to_owned())
            .unwrap_or_else(|| inner.clone());
        let slash_home = parts
            .extensions
            .get::<NestedPath>()
            .is_some_and(|nested| nested.as_str().ends_with('/'));
        Ok(Base::from_paths(&original, &inner, slash_home))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_what_nesting_stripped() {
        let base = Base::from_paths("/admin/jobs/jobs/1", "/jobs/1", false);
        assert_eq!(base.url("/jobs"), "/admin/jobs/jobs");
        assert_eq!(base.home(), "/admin/jobs");
        assert_eq!(
            Base::from_paths("/admin/jobs", "/", false).home(),
            "/admin/jobs"
        );
        assert_eq!(
            Base::from_paths("/jobs", "/jobs", false).url("/jobs"),
            "/jobs"
        );
        assert_eq!(Base::from_paths("/", "/", false).home(), "/");
        assert_eq!(Base::from_paths("/a/", "/", true).home(), "/a/");
    }

    #[test]
    fn no_protocol_relative_prefix() {
        let base = Base::from_paths("//evil.example/jobs", "/jobs", false);
        assert_eq!(base.url("/jobs"), "/evil.example/jobs");
    }
}
