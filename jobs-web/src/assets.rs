//! The stylesheet and the script, compiled into the binary and served by
//! the router under a URL that changes with their content (so they can be
//! cached for good).

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// One embedded file.
pub(crate) struct Asset {
    /// Its path under the dashboard, without the version.
    pub(crate) path: &'static str,
    content_type: &'static str,
    body: &'static str,
    version: u64,
}

impl Asset {
    const fn new(path: &'static str, content_type: &'static str, body: &'static str) -> Self {
        Asset {
            path,
            content_type,
            body,
            version: fnv1a(body.as_bytes()),
        }
    }

    /// The URL pages link to: the path and a version from the content.
    pub(crate) fn url(&self) -> String {
        format!("{}?v={:016x}", self.path, self.version)
    }

    /// The file, cacheable for a year: a new build changes its URL.
    pub(crate) fn response(&self) -> Response {
        let mut response = self.body.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
        response
    }
}

/// The dashboard's stylesheet.
pub(crate) const CSS: Asset = Asset::new(
    "/assets/dashboard.css",
    "text/css; charset=utf-8",
    include_str!("../assets/dashboard.css"),
);

/// The dashboard's script: live numbers on the overview, confirmations.
/// Every page works without it.
pub(crate) const JS: Asset = Asset::new(
    "/assets/dashboard.js",
    "text/javascript; charset=utf-8",
    include_str!("../assets/dashboard.js"),
);

/// FNV-1a, 64 bits: a content version, not a security measure.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}
