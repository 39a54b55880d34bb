//! GraphiQL in a real browser that can reach no host but the server's own, as in
//! the closed networks the service runs in: Debian's Chromium, headless, with
//! every other name unresolvable. The page must render GraphiQL from the server's
//! own files, and GraphiQL's fetcher must reach `/graphql`. One database is
//! enough here, so the tests run on SQLite only.
//!
//! Without Chromium (`/usr/bin/chromium`; `apt-get install chromium`) the tests
//! print a note and return, except under `CI`, where they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
