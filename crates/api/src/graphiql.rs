//! GraphiQL, served entirely from the binary: the page that `GET /graphql` shows a
//! browser, and under `/graphiql/` everything it loads. The service usually runs
//! in a closed network, where a page that fetches React and GraphiQL from a
//! public CDN never renders; this one asks nothing of any host but its own.
//!
//! The files are GraphiQL 4.1.2 with React 18.3.1, the versions async-graphql's
//! `GraphiQLSource` loads from unpkg, vendored from npm into `assets/graphiql/`
//! (its README names each tarball and its integrity, to check them against), and
//! `boot.js`, ours, which starts GraphiQL with queries and mutations over HTTP and
//! subscriptions over `graphql-transport-ws`, both at `/graphql`.
//!
//! A vendored file's URL carries its version, so it is cached for a year as
//! immutable and an upgrade is a new URL. The page and `boot.js` change with the
//! code under the same URL, so a browser revalidates them. The page's
//! Content-Security-Policy lets it load and connect to nothing but this origin.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// Where the page may load from and connect to: this origin only (`'self'`
/// covers `ws:` and `wss:` to it as well), fonts also from the `data:` URLs
/// GraphiQL's stylesheet embeds. Scripts must be files, so no inline script
/// runs. Inline styles are allowed: GraphiQL's dialogs insert a `<style>`
/// element, and a style can fetch nothing that `font-src` and `img-src` refuse.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; font-src 'self' data:; img-src 'self'; connect-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A year, never revalidated: a vendored file's URL changes with its version.
const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";

/// Revalidated on every use: ours, and changes under the same URL.
const CACHE_REVALIDATE: &str = "no-cache";

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

const CSS: &str = "text/css; charset=utf-8";

/// The page. It refers to each of [`ASSETS`] by its name under `/graphiql/`.
const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="robots" content="noindex">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Appeals · GraphiQL</title>
    <link rel="stylesheet" href="/graphiql/graphiql-4.1.2.min.css">
    <style>
      body { height: 100%; margin: 0; width: 100%; overflow: hidden; }
      #graphiql { height: 100vh; }
    </style>
  </head>
  <body>
    <div id="graphiql">Loading…</div>
    <script src="/graphiql/react-18.3.1.production.min.js"></script>
    <script src="/graphiql/react-dom-18.3.1.production.min.js"></script>
    <script src="/graphiql/graphiql-4.1.2.min.js"></script>
    <script src="/graphiql/boot.js"></script>
  </body>
</html>
"#;

/// A file served under `/graphiql/`.
struct Asset {
    /// The last segment of its URL.
    name: &'static str,
    content_type: &'static str,
    cache_control: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 5] = [
    Asset {
        name: "react-18.3.1.production.min.js",
        content_type: JAVASCRIPT,
        cache_control: CACHE_FOREVER,
        body: include_bytes!("../assets/graphiql/react-18.3.1/react.production.min.js"),
    },
    Asset {
        name: "react-dom-18.3.1.production.min.js",
        content_type: JAVASCRIPT,
        cache_control: CACHE_FOREVER,
        body: include_bytes!("../assets/graphiql/react-dom-18.3.1/react-dom.production.min.js"),
    },
    Asset {
        name: "graphiql-4.1.2.min.js",
        content_type: JAVASCRIPT,
        cache_control: CACHE_FOREVER,
        body: include_bytes!("../assets/graphiql/graphiql-4.1.2/graphiql.min.js"),
    },
    Asset {
        name: "graphiql-4.1.2.min.css",
        content_type: CSS,
        cache_control: CACHE_FOREVER,
        body: include_bytes!("../assets/graphiql/graphiql-4.1.2/graphiql.min.css"),
    },
    Asset {
        name: "boot.js",
        content_type: JAVASCRIPT,
        cache_control: CACHE_REVALIDATE,
        body: include_bytes!("../assets/graphiql/boot.js"),
    },
];

/// The GraphiQL page, with its Content-Security-Policy.
pub fn page() -> Response {
    let headers = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::CACHE_CONTROL, CACHE_REVALIDATE),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (headers, Html(PAGE)).into_response()
}

/// `GET /graphiql/{file}`: one of the page's files, or 404.
pub async fn asset(Path(file): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let headers = [
        (header::CONTENT_TYPE, asset.content_type),
        (header::CACHE_CONTROL, asset.cache_control),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (headers, asset.body).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use axum::http::HeaderName;

    use super::*;

    /// The value of every `src="…"` and `href="…"` attribute of the page.
    fn referenced_urls() -> Vec<&'static str> {
        let mut urls = Vec::new();
        for attribute in [" src=\"", " href=\""] {
            for (start, _) in PAGE.match_indices(attribute) {
                let rest = &PAGE[start + attribute.len()..];
                let end = rest.find('"').expect("every attribute value is closed");
                urls.push(&rest[..end]);
            }
        }
        urls
    }

    fn header_value<'a>(response: &'a Response, name: &HeaderName) -> &'a str {
        response.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or_default()
    }

    #[test]
    fn the_page_refers_only_to_files_under_graphiql_on_its_own_origin() {
        let urls = referenced_urls();
        assert_eq!(urls.len(), ASSETS.len(), "the page's URLs: {urls:?}");
        for url in urls {
            assert!(url.starts_with("/graphiql/") && !url.contains("//"), "{url} is not a local /graphiql/ file");
        }
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"), "the page names another host: {PAGE}");
    }

    #[tokio::test]
    async fn every_file_the_page_refers_to_is_served_with_its_content_type() {
        for url in referenced_urls() {
            let name = url.trim_start_matches("/graphiql/");
            let response = asset(Path(name.to_owned())).await;
            assert_eq!(response.status(), StatusCode::OK, "{url}");
            let expected = if name.ends_with(".css") { CSS } else { JAVASCRIPT };
            assert_eq!(header_value(&response, &header::CONTENT_TYPE), expected, "{url}");
            assert_eq!(header_value(&response, &header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{url}");
            let body = to_bytes(response.into_body(), usize::MAX).await.expect("a body");
            assert!(body.len() > 100, "{url} is {} bytes", body.len());
        }
    }

    #[tokio::test]
    async fn a_file_with_a_version_in_its_name_is_cached_for_good_and_any_other_is_revalidated() {
        for asset in &ASSETS {
            let response = super::asset(Path(asset.name.to_owned())).await;
            let versioned = asset.name.contains(|character: char| character.is_ascii_digit());
            let expected = if versioned { CACHE_FOREVER } else { CACHE_REVALIDATE };
            assert_eq!(header_value(&response, &header::CACHE_CONTROL), expected, "{}", asset.name);
        }
    }

    #[tokio::test]
    async fn any_other_file_is_not_found() {
        for name in ["index.html", "graphiql.min.js", "graphiql-4.1.2.min.js.map", "../Cargo.toml", ""] {
            let response = asset(Path(name.to_owned())).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "/graphiql/{name}");
        }
    }

    #[test]
    fn the_page_may_load_from_its_own_origin_only_and_run_no_inline_script() {
        let response = page();
        assert_eq!(header_value(&response, &header::CONTENT_TYPE), "text/html; charset=utf-8");
        let policy = header_value(&response, &header::CONTENT_SECURITY_POLICY);
        assert!(policy.starts_with("default-src 'none';"), "{policy}");
        for directive in policy.split(';').map(str::trim) {
            let mut words = directive.split_whitespace();
            let name = words.next().unwrap_or_default();
            for source in words {
                assert!(
                    ["'none'", "'self'", "data:"].contains(&source)
                        || (name == "style-src" && source == "'unsafe-inline'"),
                    "{name} allows {source}"
                );
            }
        }
        assert!(!PAGE.contains("<script>"), "the page has an inline script, which its policy refuses");
    }
}
