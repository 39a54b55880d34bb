//! GraphiQL in a real browser that can reach no host but the server's own, as in
//! the closed networks the service runs in: Debian's Chromium, headless, with
//! every other name unresolvable. The page must render GraphiQL from the server's
//! own files, and GraphiQL's fetcher must reach `/graphql`. One database is
//! enough here, so the tests run on SQLite only.
//!
//! The first tests load a page once and read the DOM Chromium prints
//! (`--dump-dom`); the rest drive the browser through [`Browser`], which also
//! records every request Chromium tries to send anywhere but 127.0.0.1.
//!
//! Without Chromium (`/usr/bin/chromium`; `apt-get install chromium`), or for the
//! driven tests without chromedriver (`chromium-driver`), the tests print a note
//! and return, except under `CI`, where they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::browser::Browser;
use crate::support::{Backend, spawn_app};

const CHROMIUM: &str = "/usr/bin/chromium";

/// How long Chromium may take, in wall-clock time, to load the page, run its
/// scripts for its virtual 15 seconds and print the DOM.
const CHROMIUM_TIME_LIMIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_renders_with_no_network_but_the_servers_own() {
    if !chromium_is_installed() {
        return;
    }
    let app = spawn_app(Backend::Sqlite).await.expect("SQLite needs no configuration");
    let dom = dom_after_scripts(&format!("{}/graphql", app.address)).await;
    assert!(dom.contains("class=\"graphiql-container\""), "GraphiQL did not render; the DOM:\n{dom}");
    assert!(dom.contains("graphiql-query-editor") && dom.contains("CodeMirror"), "no query editor; the DOM:\n{dom}");
    assert!(dom.contains("graphiql-execute-button"), "no button to run a query; the DOM:\n{dom}");
    assert!(!dom.contains(">Loading"), "the page still says it is loading; the DOM:\n{dom}");
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
    if !chromium_is_installed() {
        return;
    }
    let app = spawn_app(Backend::Sqlite).await.expect("SQLite needs no configuration");
    let dom = dom_after_scripts(&format!("{}/graphql#query=%7B%20noSuchField%20%7D", app.address)).await;
    assert!(dom.contains("noSuchField"), "the query from the link is not in the editor; the DOM:\n{dom}");
    assert!(
        dom.contains("CodeMirror-lint-mark-error"),
        "the unknown field is not underlined, so GraphiQL has no schema; the DOM:\n{dom}"
    );
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
    assert_eq!(browser.requests_elsewhere(), Vec::<String>::new(), "requests that left 127.0.0.1");
    let refused: Vec<String> =
        browser.console_errors().await.into_iter().filter(|error| error.starts_with("security:")).collect();
    assert_eq!(refused, Vec::<String>::new(), "what the page's policy refused");
    browser.close().await;
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

/// Whether Chromium is there; under `CI` its absence fails the test.
fn chromium_is_installed() -> bool {
    if Path::new(CHROMIUM).is_file() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "in CI, Chromium must be installed at {CHROMIUM} (apt-get install chromium): GraphiQL's test may not be skipped"
    );
    println!("skipped: no Chromium at {CHROMIUM} (apt-get install chromium)");
    false
}

/// A directory for one Chromium run (its profile and its output), removed on drop.
struct ScratchDirectory {
    path: PathBuf,
}

impl ScratchDirectory {
    fn new() -> ScratchDirectory {
        let path = std::env::temp_dir().join(format!("appeals-chromium-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("a scratch directory");
        ScratchDirectory { path }
    }
}

impl Drop for ScratchDirectory {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Loads `url` in headless Chromium, on a fresh profile, with every host but
/// 127.0.0.1 unresolvable, and returns the DOM once the page's scripts have run.
async fn dom_after_scripts(url: &str) -> String {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || run_chromium(&url)).await.expect("the Chromium run should not panic")
}

fn run_chromium(url: &str) -> String {
    let scratch = ScratchDirectory::new();
    let dom_file = scratch.path.join("dom.html");
    let log_file = scratch.path.join("chromium.log");
    let mut chromium = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", scratch.path.join("profile").display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&dom_file).expect("a file for the DOM"))
        .stderr(std::fs::File::create(&log_file).expect("a file for Chromium's log"))
        .spawn()
        .expect("Chromium should start");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = chromium.try_wait().expect("Chromium's status") {
            break status;
        }
        if started.elapsed() > CHROMIUM_TIME_LIMIT {
            let _ = chromium.kill();
            let _ = chromium.wait();
            panic!("Chromium did not finish within {CHROMIUM_TIME_LIMIT:?}; its log:\n{}", read(&log_file));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "Chromium failed ({status}); its log:\n{}", read(&log_file));
    read(&dom_file)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| format!("(cannot read {}: {error})", path.display()))
}
