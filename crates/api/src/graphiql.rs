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

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::HeaderMap;
use axum::response::Response;

use crate::static_files::{CSS, Caching, HTML, JAVASCRIPT, StaticFile, serve};

/// Where the page may load from and connect to: this origin only (`'self'`
/// covers `ws:` and `wss:` to it as well), fonts also from the `data:` URLs
/// GraphiQL's stylesheet embeds. Scripts must be files, so no inline script
/// runs. Inline styles are allowed: GraphiQL's dialogs insert a `<style>`
/// element, and a style can fetch nothing that `font-src` and `img-src` refuse.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; font-src 'self' data:; img-src 'self'; connect-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page. It refers to each of [`FILES`] by its name under `/graphiql/`.
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

static PAGE_FILE: LazyLock<StaticFile> =
    LazyLock::new(|| StaticFile::new("graphql", HTML, Caching::Revalidate, PAGE.as_bytes()));

/// The files served under `/graphiql/`.
static FILES: LazyLock<[StaticFile; 5]> = LazyLock::new(|| {
    [
        StaticFile::new(
            "react-18.3.1.production.min.js",
            JAVASCRIPT,
            Caching::Forever,
            include_bytes!("../assets/graphiql/react-18.3.1/react.production.min.js"),
        ),
        StaticFile::new(
            "react-dom-18.3.1.production.min.js",
            JAVASCRIPT,
            Caching::Forever,
            include_bytes!("../assets/graphiql/react-dom-18.3.1/react-dom.production.min.js"),
        ),
        StaticFile::new(
            "graphiql-4.1.2.min.js",
            JAVASCRIPT,
            Caching::Forever,
            include_bytes!("../assets/graphiql/graphiql-4.1.2/graphiql.min.js"),
        ),
        StaticFile::new(
            "graphiql-4.1.2.min.css",
            CSS,
            Caching::Forever,
            include_bytes!("../assets/graphiql/graphiql-4.1.2/graphiql.min.css"),
        ),
        StaticFile::new("boot.js", JAVASCRIPT, Caching::Revalidate, include_bytes!("../assets/graphiql/boot.js")),
    ]
});

/// The GraphiQL page, with its Content-Security-Policy.
pub fn page(request: &HeaderMap) -> Response {
    PAGE_FILE.respond(request, Some(CONTENT_SECURITY_POLICY))
}

/// `GET /graphiql/{file}`: one of the page's files, or 404.
pub async fn asset(Path(file): Path<String>, request: HeaderMap) -> Response {
    serve(&*FILES, &file, &request)
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use axum::http::{HeaderName, StatusCode, header};

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
        assert_eq!(urls.len(), FILES.len(), "the page's URLs: {urls:?}");
        for url in urls {
            assert!(url.starts_with("/graphiql/") && !url.contains("//"), "{url} is not a local /graphiql/ file");
        }
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"), "the page names another host: {PAGE}");
    }

    #[tokio::test]
    async fn every_file_the_page_refers_to_is_served_with_its_content_type() {
        for url in referenced_urls() {
            let name = url.trim_start_matches("/graphiql/");
            let response = asset(Path(name.to_owned()), HeaderMap::new()).await;
            assert_eq!(response.status(), StatusCode::OK, "{url}");
            let expected = if name.ends_with(".css") { CSS } else { JAVASCRIPT };
            assert_eq!(header_value(&response, &header::CONTENT_TYPE), expected, "{url}");
            assert_eq!(header_value(&response, &header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{url}");
            let body = to_bytes(response.into_body(), usize::MAX).await.expect("a body");
            assert!(body.len() > 100, "{url} is {} bytes", body.len());
        }
    }

    #[test]
    fn a_file_with_a_version_in_its_name_is_cached_for_good_and_any_other_is_revalidated() {
        for file in FILES.iter() {
            let versioned = file.name.contains(|character: char| character.is_ascii_digit());
            let expected = if versioned { Caching::Forever } else { Caching::Revalidate };
            assert_eq!(file.caching, expected, "{}", file.name);
        }
    }

    #[tokio::test]
    async fn any_other_file_is_not_found() {
        for name in ["index.html", "graphiql.min.js", "graphiql-4.1.2.min.js.map", "../Cargo.toml", ""] {
            let response = asset(Path(name.to_owned()), HeaderMap::new()).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "/graphiql/{name}");
        }
    }

    #[test]
    fn the_page_may_load_from_its_own_origin_only_and_run_no_inline_script() {
        let response = page(&HeaderMap::new());
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
