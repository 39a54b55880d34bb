//! Files the binary carries and serves to browsers: the console's and GraphiQL's.
//! The service runs in closed networks, so a page may load nothing from any host
//! but its own, and every file it needs is compiled in.
//!
//! Caching follows the URL: a vendored file's name carries its version, so it is
//! cached for a year as immutable and an upgrade is a new URL. Our own files
//! change with the code under the same URL: a browser revalidates them with their
//! `ETag` (a digest of the content) and gets `304 Not Modified` when nothing
//! changed.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

pub const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
pub const CSS: &str = "text/css; charset=utf-8";
pub const SVG: &str = "image/svg+xml";
pub const HTML: &str = "text/html; charset=utf-8";

/// How long a browser may keep a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// A year, never revalidated: the file's URL changes with its version.
    Forever,
    /// Revalidated on every use, by its `ETag`.
    Revalidate,
}

impl Caching {
    fn header(self) -> &'static str {
        match self {
            Caching::Forever => "public, max-age=31536000, immutable",
            Caching::Revalidate => "no-cache",
        }
    }
}

/// One file served from the binary.
#[derive(Debug)]
pub struct StaticFile {
    /// The last segment of its URL.
    pub name: &'static str,
    pub content_type: &'static str,
    pub caching: Caching,
    pub body: &'static [u8],
    etag: String,
}

impl StaticFile {
    pub fn new(name: &'static str, content_type: &'static str, caching: Caching, body: &'static [u8]) -> StaticFile {
        let digest = Sha256::digest(body);
        let etag = format!("\"{}\"", hex::encode(&digest[..16]));
        StaticFile { name, content_type, caching, body, etag }
    }

    /// The file, or `304 Not Modified` when the request's `If-None-Match` names
    /// its current content. `policy` is the page's Content-Security-Policy, for
    /// files that are pages.
    pub fn respond(&self, request: &HeaderMap, policy: Option<&'static str>) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(self.caching.header()));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        if let Some(policy) = policy {
            headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
            headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        }
        if let Ok(etag) = HeaderValue::from_str(&self.etag) {
            headers.insert(header::ETAG, etag);
        }
        if self.is_current(request) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        (headers, self.body).into_response()
    }

    fn is_current(&self, request: &HeaderMap) -> bool {
        request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.trim_start_matches("W/") == self.etag
            })
    }
}

/// The file named `name` among `files`, or 404.
pub fn serve(files: &[StaticFile], name: &str, request: &HeaderMap) -> Response {
    match files.iter().find(|file| file.name == name) {
        Some(file) => file.respond(request, None),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> StaticFile {
        StaticFile::new("app.js", JAVASCRIPT, Caching::Revalidate, b"console.log(1)")
    }

    fn if_none_match(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).expect("a header value"));
        headers
    }

    #[test]
    fn a_revalidated_file_answers_not_modified_to_its_own_etag_only() {
        let file = file();
        let first = file.respond(&HeaderMap::new(), None);
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].to_str().expect("an ETag").to_owned();
        assert_eq!(first.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(file.respond(&if_none_match(&etag), None).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(file.respond(&if_none_match(&format!("W/{etag}")), None).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(file.respond(&if_none_match("\"another\", *"), None).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(file.respond(&if_none_match("\"another\""), None).status(), StatusCode::OK);
        let changed = StaticFile::new("app.js", JAVASCRIPT, Caching::Revalidate, b"console.log(2)");
        assert_eq!(changed.respond(&if_none_match(&etag), None).status(), StatusCode::OK, "the content changed");
    }

    #[test]
    fn a_file_with_its_version_in_its_url_is_kept_for_a_year() {
        let file = StaticFile::new("lib-1.0.0.js", JAVASCRIPT, Caching::Forever, b"x");
        let response = file.respond(&HeaderMap::new(), None);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
    }

    #[test]
    fn a_page_carries_its_policy() {
        let page = StaticFile::new("index.html", HTML, Caching::Revalidate, b"<!DOCTYPE html>");
        let response = page.respond(&HeaderMap::new(), Some("default-src 'none'"));
        assert_eq!(response.headers()[header::CONTENT_SECURITY_POLICY], "default-src 'none'");
        assert_eq!(response.headers()[header::CONTENT_TYPE], HTML);
        assert_eq!(serve(&[file()], "other.js", &HeaderMap::new()).status(), StatusCode::NOT_FOUND);
    }
}
