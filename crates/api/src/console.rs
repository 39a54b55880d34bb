//! The web console, in Russian, at `/`: the inbox of assistants and heads, an
//! appeal with its history and the actions the role allows, the governor's
//! office dashboard and the auditor's verification. It is a client of the
//! public GraphQL API like any other, so it can do nothing the API would refuse.
//!
//! Everything it loads is compiled into the binary (`assets/console/`): its own
//! modules, written for the browser as they are served (no build step, so
//! `cargo build` alone makes the console), Chart.js and graphql-ws vendored from
//! npm (`assets/console/vendor/README.md` names their tarballs and integrity),
//! and `documents.js`, made here of the project's own GraphQL documents
//! (`documents/`) exactly as the trusted documents' manifest holds them, so the
//! console also works against a server that runs only trusted documents.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::HeaderMap;
use axum::response::Response;

use crate::persisted::with_fragments;
use crate::static_files::{CSS, Caching, HTML, JAVASCRIPT, SVG, StaticFile, serve};

/// Where the console may load from and connect to: its own origin (`'self'`
/// covers `ws:` and `wss:` to it as well), and nothing inline. Chart.js draws on
/// a canvas and sets styles through the DOM, which `style-src` does not govern.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The GraphQL documents the console sends, by operation name, each as the
/// file in `documents/` holds it; the fragments they share follow.
const DOCUMENTS: [(&str, &str); 16] = [
    ("Me", include_str!("../../../documents/Me.graphql")),
    ("Municipalities", include_str!("../../../documents/Municipalities.graphql")),
    ("Inbox", include_str!("../../../documents/Inbox.graphql")),
    ("Appeal", include_str!("../../../documents/Appeal.graphql")),
    ("AppealIdByNumber", include_str!("../../../documents/AppealIdByNumber.graphql")),
    ("AppealEvents", include_str!("../../../documents/AppealEvents.graphql")),
    ("Dashboard", include_str!("../../../documents/Dashboard.graphql")),
    ("VerifyAudit", include_str!("../../../documents/VerifyAudit.graphql")),
    ("SubmitAppeal", include_str!("../../../documents/SubmitAppeal.graphql")),
    ("TriageAppeal", include_str!("../../../documents/TriageAppeal.graphql")),
    ("AddNote", include_str!("../../../documents/AddNote.graphql")),
    ("MarkSeen", include_str!("../../../documents/MarkSeen.graphql")),
    ("ExtendDeadline", include_str!("../../../documents/ExtendDeadline.graphql")),
    ("ResolveAppeal", include_str!("../../../documents/ResolveAppeal.graphql")),
    ("ReopenAppeal", include_str!("../../../documents/ReopenAppeal.graphql")),
    ("ResendReply", include_str!("../../../documents/ResendReply.graphql")),
];

const FRAGMENTS: [&str; 3] = [
    include_str!("../../../documents/fragments/AppealDetail.graphql"),
    include_str!("../../../documents/fragments/Change.graphql"),
    include_str!("../../../documents/fragments/HistoryEvent.graphql"),
];

/// `documents.js`: a module whose default export maps each operation's name to
/// its document, fragments included.
fn documents_module() -> String {
    let documents: serde_json::Map<String, serde_json::Value> =
        DOCUMENTS.iter().map(|(name, text)| ((*name).to_owned(), with_fragments(text, &FRAGMENTS).into())).collect();
    let json = serde_json::to_string_pretty(&documents).unwrap_or_default();
    format!("// The console's GraphQL documents, made by the server from documents/.\nexport default {json};\n")
}

static PAGE: LazyLock<StaticFile> = LazyLock::new(|| {
    StaticFile::new("index.html", HTML, Caching::Revalidate, include_bytes!("../assets/console/index.html"))
});

/// The files served under `/console/`.
static FILES: LazyLock<Vec<StaticFile>> = LazyLock::new(|| {
    let own = |name, content_type, body| StaticFile::new(name, content_type, Caching::Revalidate, body);
    vec![
        own("console.css", CSS, include_bytes!("../assets/console/console.css")),
        own("icon.svg", SVG, include_bytes!("../assets/console/icon.svg")),
        own("main.js", JAVASCRIPT, include_bytes!("../assets/console/main.js")),
        own("api.js", JAVASCRIPT, include_bytes!("../assets/console/api.js")),
        own("ui.js", JAVASCRIPT, include_bytes!("../assets/console/ui.js")),
        own("inbox.js", JAVASCRIPT, include_bytes!("../assets/console/inbox.js")),
        own("appeal.js", JAVASCRIPT, include_bytes!("../assets/console/appeal.js")),
        own("dashboard.js", JAVASCRIPT, include_bytes!("../assets/console/dashboard.js")),
        own("audit.js", JAVASCRIPT, include_bytes!("../assets/console/audit.js")),
        own("intake.js", JAVASCRIPT, include_bytes!("../assets/console/intake.js")),
        own("documents.js", JAVASCRIPT, documents_module().leak().as_bytes()),
        StaticFile::new(
            "chart-4.6.1.umd.min.js",
            JAVASCRIPT,
            Caching::Forever,
            include_bytes!("../assets/console/vendor/chart-4.6.1.umd.min.js"),
        ),
        StaticFile::new(
            "graphql-ws-6.4.2.min.js",
            JAVASCRIPT,
            Caching::Forever,
            include_bytes!("../assets/console/vendor/graphql-ws-6.4.2.min.js"),
        ),
    ]
});

/// `GET /`: the console's page, with its Content-Security-Policy.
pub async fn page(request: HeaderMap) -> Response {
    PAGE.respond(&request, Some(CONTENT_SECURITY_POLICY))
}

/// `GET /console/{file}`: one of the console's files, or 404.
pub async fn file(Path(name): Path<String>, request: HeaderMap) -> Response {
    serve(&FILES, &name, &request)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::http::{StatusCode, header};

    use super::*;
    use crate::persisted::read_documents;

    fn page_text() -> &'static str {
        std::str::from_utf8(PAGE.body).expect("the page is UTF-8")
    }

    /// Every `/console/…` file that the page or a module names.
    fn referenced_files() -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let texts = std::iter::once(page_text()).chain(
            FILES
                .iter()
                .filter(|file| file.content_type == JAVASCRIPT && !file.name.contains("min.js"))
                .map(|file| std::str::from_utf8(file.body).expect("our modules are UTF-8")),
        );
        for text in texts {
            for quote in ['"', '\''] {
                for piece in text.split(quote) {
                    if let Some(name) = piece.strip_prefix("/console/").or_else(|| piece.strip_prefix("./")) {
                        names.insert(name.to_owned());
                    }
                }
            }
        }
        names
    }

    #[test]
    fn every_file_the_console_names_is_served_and_every_served_file_is_named() {
        let served: BTreeSet<String> = FILES.iter().map(|file| file.name.to_owned()).collect();
        assert_eq!(referenced_files(), served);
        let page = page_text();
        assert!(!page.contains("http://") && !page.contains("https://"), "the page names another host");
        assert!(!page.contains("<script>") && !page.contains("<style"), "the page has inline code its policy refuses");
        assert!(!page.contains(" style="), "the page has an inline style its policy refuses");
    }

    #[test]
    fn our_modules_name_no_other_host() {
        for file in
            FILES.iter().filter(|file| [JAVASCRIPT, CSS].contains(&file.content_type) && !file.name.contains("min.js"))
        {
            let text = std::str::from_utf8(file.body).expect("our files are UTF-8");
            assert!(!text.contains("http://") && !text.contains("https://"), "{} names another host", file.name);
        }
    }

    /// A server started with `--trusted-documents persisted-documents.json` runs
    /// exactly the manifest's documents: the console's must be among them, as
    /// they are, byte for byte.
    #[test]
    fn every_console_document_is_the_manifests_own() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../documents");
        let manifest: BTreeSet<String> =
            read_documents(&[folder]).expect("documents/ reads").into_iter().map(|(_, document)| document).collect();
        for (name, text) in DOCUMENTS {
            assert!(manifest.contains(&with_fragments(text, &FRAGMENTS)), "the console's {name} is not in documents/");
            assert!(text.contains(&format!(" {name}(")) || text.contains(&format!(" {name} {{")), "{name}");
        }
    }

    #[tokio::test]
    async fn the_page_may_load_from_its_own_origin_only() {
        let response = page(HeaderMap::new()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let policy = response.headers()[header::CONTENT_SECURITY_POLICY].to_str().expect("a policy");
        assert!(policy.starts_with("default-src 'none';"), "{policy}");
        for directive in policy.split(';').map(str::trim) {
            for source in directive.split_whitespace().skip(1) {
                assert!(["'none'", "'self'"].contains(&source), "{directive} allows {source}");
            }
        }
        assert_eq!(file(Path("../Cargo.toml".to_owned()), HeaderMap::new()).await.status(), StatusCode::NOT_FOUND);
    }
}
