//! GraphiQL in a real browser that can reach no host but the server's own, as in
//! the closed networks the service runs in: Debian's Chromium, headless, driven
//! through [`Browser`], which makes every other name unresolvable and records
//! every request Chromium tries to send anywhere but 127.0.0.1. The page must
//! render GraphiQL from the server's own files, and GraphiQL's fetcher must reach
//! `/graphql`. One database is enough here, so the tests run on SQLite only.
//!
//! Without Chromium and chromedriver (`apt-get install chromium
//! chromium-driver`) the tests print a note and return, except under `CI`, where
//! they fail.

use serde_json::json;

use crate::support::browser::Browser;
use crate::support::{Backend, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_renders_with_no_network_but_the_servers_own() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.expect("SQLite needs no configuration");
    browser.goto(&format!("{}/graphql", app.address)).await;
    browser.wait_for(".graphiql-container").await;
    browser.wait_for(".graphiql-query-editor .CodeMirror").await;
    browser.wait_for(".graphiql-execute-button").await;
    let page = browser.text("body").await;
    assert!(!page.contains("Loading"), "the page still says it is loading: {page}");
    browser.finish().await;
}

/// What the browser tests rely on, checked without a browser: through the real
/// router, the page and every file it names come from the server itself, under a
/// policy that allows nothing else.
#[tokio::test]
async fn the_page_and_every_file_it_loads_come_from_the_server_itself() {
    let app = spawn_app(Backend::Sqlite).await.expect("SQLite needs no configuration");
    let page = app.page("/graphql").await;
    assert_eq!(page.status(), 200, "GET /graphql");
    let policy = page.headers().get("content-security-policy").and_then(|value| value.to_str().ok());
    assert!(policy.is_some_and(|policy| policy.starts_with("default-src 'none';")), "the page's policy: {policy:?}");
    let html = page.text().await.expect("a page");
    let files: Vec<&str> = html.split(['"', '\'']).filter(|value| value.starts_with("/graphiql/")).collect();
    assert!(files.len() >= 4, "the page should load GraphiQL, React, ReactDOM and their boot script: {html}");
    for file in files {
        let response = app.get(file).await;
        assert_eq!(response.status(), 200, "GET {file}");
    }
    assert_eq!(app.get("/graphiql/graphiql.min.js").await.status(), 404, "a file the page does not name");
}

/// GraphiQL asks `/graphql` for the schema as it starts; with it, the editor
/// underlines a field that the schema does not have. Without it (had the fetcher
/// failed, or the server refused GraphiQL's introspection query) nothing would be
/// underlined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_fetches_the_schema_from_the_server() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.expect("SQLite needs no configuration");
    browser.goto(&format!("{}/graphql#query=%7B%20noSuchField%20%7D", app.address)).await;
    browser.wait_for_text(".graphiql-query-editor", "noSuchField").await;
    // Waited for: the schema arrives after the editor shows the query.
    browser.wait_for(".CodeMirror-lint-mark-error").await;
    browser.finish().await;
}

/// Driven: GraphiQL renders and runs a query, with nothing sent anywhere but
/// 127.0.0.1 and nothing refused by the page's Content-Security-Policy. The
/// screenshot is kept for CI's artefacts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_runs_a_query_in_a_driven_browser_and_nothing_leaves_the_machine() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.expect("SQLite needs no configuration");
    browser.goto(&format!("{}/graphql#query=%7B%20__typename%20%7D", app.address)).await;
    browser.wait_for(".graphiql-container").await;
    browser.click(".graphiql-execute-button").await;
    browser.wait_for_text(".graphiql-response", "\"Query\"").await;
    let screenshot = browser.screenshot("graphiql").await;
    let png = std::fs::read(&screenshot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{} is not a PNG", screenshot.display());
    browser.finish().await;
}

/// The recorder sees what it is there to catch: a page with no policy
/// (`/healthz`) fetching from another host, by a name no resolver is asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_for_another_host_is_recorded() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.expect("SQLite needs no configuration");
    browser.goto(&format!("{}/healthz", app.address)).await;
    let outcome = browser.eval("return fetch('http://example.invalid/x').then(() => 'answered', () => 'failed')").await;
    assert_eq!(outcome, json!("failed"), "the recorder answers 502, which a cross-origin fetch cannot read");
    let elsewhere = browser.requests_elsewhere();
    assert!(
        elsewhere.iter().any(|request| request.starts_with("GET http://example.invalid/x ")),
        "the fetch is not among the recorded requests: {elsewhere:?}"
    );
    browser.close().await;
}

/// GraphiQL's policy refuses a request to another host before it is sent: the
/// refusal is in the browser's log, and the recorder sees nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiqls_policy_refuses_a_request_to_another_host_before_it_is_sent() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.expect("SQLite needs no configuration");
    browser.goto(&format!("{}/graphql", app.address)).await;
    browser.wait_for(".graphiql-container").await;
    let outcome =
        browser.eval("return fetch('http://example.invalid/x').then(() => 'answered', () => 'refused')").await;
    assert_eq!(outcome, json!("refused"));
    let errors = browser.console_errors().await;
    assert!(
        errors.iter().any(|error| error.starts_with("security:") && error.contains("http://example.invalid/x")),
        "no refusal in the browser's log: {errors:?}"
    );
    assert_eq!(browser.requests_elsewhere(), Vec::<String>::new(), "requests that left 127.0.0.1");
    browser.close().await;
}

/// At a phone's width the page lays out in 360 CSS pixels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewport_can_be_a_phones_width() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.expect("SQLite needs no configuration");
    browser.set_viewport(360, 740).await;
    browser.goto(&format!("{}/graphql", app.address)).await;
    browser.wait_for(".graphiql-container").await;
    assert_eq!(browser.eval("return document.documentElement.clientWidth").await, json!(360));
    browser.screenshot("graphiql-360").await;
    browser.close().await;
}

/// The driver itself, on a form of its own (on `about:blank`, so with no
/// server): it types over what a field held, chooses an option, clicks, waits
/// for an element to go and for text to come, and reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_types_chooses_clicks_and_reads() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser.goto("about:blank").await;
    browser
        .eval(
            "document.body.innerHTML = `<input id=name value=old><select id=kind><option value=a>A</option>
                <option value=b>B</option></select><button id=go>Go</button><p id=busy>…</p><p class=out></p>
                <p class=out></p>`;
            document.querySelector('#go').onclick = () => setTimeout(() => {
                const outs = document.querySelectorAll('.out');
                outs[0].textContent = document.querySelector('#name').value;
                outs[1].textContent = document.querySelector('#kind').value;
                document.querySelector('#busy').hidden = true;
            }, 300);
            return null;",
        )
        .await;
    browser.fill("#name", "Иван Петров").await;
    browser.select("#kind", "b").await;
    browser.click("#go").await;
    browser.wait_gone("#busy").await;
    browser.wait_for_text(".out", "Иван").await;
    assert_eq!(browser.text(".out").await, "Иван Петров");
    assert_eq!(browser.texts(".out").await, ["Иван Петров", "b"]);
    browser.close().await;
}
