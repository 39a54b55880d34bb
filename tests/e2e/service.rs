//! The service around the API: the probes, the metrics, GraphiQL, request ids, and
//! the `appeals` binary itself (`migrate`, `user add`, `serve`, `audit verify`),
//! run as a separate process on a temporary SQLite file.

use std::path::PathBuf;
use std::process::Output;

use appeals_core::Role;
use serde_json::{Value, json};

use crate::support::process::{ServerProcess, describe, run_command};
use crate::support::{Backend, error_code, spawn_app};

/// A temporary SQLite database file, removed (with its WAL) on drop.
struct DatabaseFile {
    path: PathBuf,
}

impl DatabaseFile {
    fn new() -> DatabaseFile {
        let path = std::env::temp_dir().join(format!("appeals-cli-{}.db", uuid::Uuid::new_v4().simple()));
        DatabaseFile { path }
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
}

impl Drop for DatabaseFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

/// Runs `appeals ARGS` on `database`.
fn appeals(database: &DatabaseFile, args: &[&str]) -> Output {
    run_command(&database.url(), args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `appeals user add`; returns the token, the last line of standard output.
fn add_user(database: &DatabaseFile, name: &str, role: &str, municipality: Option<&str>) -> String {
    let mut args = vec!["user", "add", "--name", name, "--role", role];
    if let Some(code) = municipality {
        args.extend(["--municipality", code]);
    }
    let output = appeals(database, &args);
    assert!(output.status.success(), "user add --role {role}: {}", describe(&output));
    let printed = stdout(&output);
    let token = printed.lines().last().unwrap_or_default().to_owned();
    assert!(
        !token.is_empty() && !token.contains(char::is_whitespace),
        "the last line of stdout should be the token alone: {printed:?}"
    );
    token
}

const SUBMIT: &str = "mutation($input: SubmitAppealInput!) { submitAppeal(input: $input) { appeal { id number } } }";

fn submission(text: &str) -> Value {
    json!({ "input": { "municipalityCode": "tomsk", "channel": "WEB", "text": text } })
}

/// Overwrites, in the database file itself, the first occurrence of `original`
/// with `forged` (as long), the way someone editing the file behind the
/// service's back would: `UPDATE appeal_event SET note = …` without the API.
/// The first occurrence is the event's `note` column, which SQLite stores before
/// the event's `data`. The database must be closed and checkpointed (no WAL).
fn forge_in_file(database: &DatabaseFile, original: &str, forged: &str) {
    assert_eq!(original.len(), forged.len(), "a forgery of the same length keeps the file well-formed");
    let wal = PathBuf::from(format!("{}-wal", database.path.display()));
    let wal_size = std::fs::metadata(&wal).map(|metadata| metadata.len()).unwrap_or(0);
    assert_eq!(wal_size, 0, "the write-ahead log should be checkpointed into the file before forging");
    let mut bytes = std::fs::read(&database.path).expect("the database file");
    let at = bytes
        .windows(original.len())
        .position(|window| window == original.as_bytes())
        .unwrap_or_else(|| panic!("{original:?} should be in the database file"));
    bytes[at..at + forged.len()].copy_from_slice(forged.as_bytes());
    std::fs::write(&database.path, bytes).expect("the forged database file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probes_answer_and_graphiql_is_served() {
    let Some(app) = spawn_app(Backend::Sqlite).await else { return };
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200, "/healthz");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200, "/readyz");

    let graphiql = app.page("/graphql").await;
    assert_eq!(graphiql.status(), 200, "GET /graphql");
    let content_type = graphiql.headers().get("content-type").and_then(|value| value.to_str().ok()).unwrap_or("");
    assert!(content_type.starts_with("text/html"), "GraphiQL is HTML: {content_type}");
    let page = graphiql.text().await.expect("a page");
    assert!(page.to_lowercase().contains("graphiql"), "GraphiQL page: {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_its_own_request_id() {
    let Some(app) = spawn_app(Backend::Sqlite).await else { return };
    let token = app.token(Role::GovernorOffice, None).await;
    let graphql = format!("{}/graphql", app.address);
    let requests = [
        ("GET /healthz", app.client.get(format!("{}/healthz", app.address))),
        ("GET /readyz", app.client.get(format!("{}/readyz", app.address))),
        ("GET /metrics", app.client.get(format!("{}/metrics", app.address))),
        ("GET /graphql", app.client.get(&graphql)),
        ("GET of an unknown path", app.client.get(format!("{}/nowhere", app.address))),
        ("POST /graphql", app.client.post(&graphql).bearer_auth(&token).json(&json!({ "query": "{ me { id } }" }))),
        ("POST /graphql without a token", app.client.post(&graphql).json(&json!({ "query": "{ me { id } }" }))),
        (
            "POST /graphql of malformed JSON",
            app.client.post(&graphql).header("content-type", "application/json").body("{"),
        ),
        ("POST /graphql over the body limit", app.client.post(&graphql).body(vec![b' '; 1024 * 1024 + 1])),
    ];
    let mut seen = std::collections::HashSet::new();
    for (case, request) in requests {
        let response = send_retrying_broken_connections(case, request).await;
        let id = response.headers().get("x-request-id").and_then(|value| value.to_str().ok()).map(str::to_owned);
        let id = id.unwrap_or_else(|| panic!("{case} (HTTP {}): no x-request-id", response.status()));
        assert!(!id.is_empty(), "{case}: an empty x-request-id");
        assert!(seen.insert(id.clone()), "{case}: the request id {id} was given twice");
    }
}

/// Sends `request`, trying again (twice at most) if the connection breaks: a
/// server that refuses an oversized body with 413 before reading all of it may
/// close the connection while the client is still writing.
async fn send_retrying_broken_connections(case: &str, request: reqwest::RequestBuilder) -> reqwest::Response {
    for _ in 0..2 {
        let attempt = request.try_clone().expect("a request without a streamed body");
        if let Ok(response) = attempt.send().await {
            return response;
        }
    }
    request.send().await.unwrap_or_else(|error| panic!("{case}: {error}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_server_counts_requests_and_submissions_in_its_metrics() {
    let database = DatabaseFile::new();
    let migrated = appeals(&database, &["migrate"]);
    assert!(migrated.status.success(), "migrate: {}", describe(&migrated));
    let intake = add_user(&database, "Бот приёма", "intake", None);
    let server = ServerProcess::start(&database.url(), &[]).await;

    let submitted = server.graphql(&intake, SUBMIT, submission("Не горят фонари")).await;
    assert!(submitted["data"]["submitAppeal"]["appeal"]["id"].is_string(), "{submitted}");

    let metrics = server.get("/metrics").await;
    assert_eq!(metrics.status(), 200, "/metrics");
    let text = metrics.text().await.expect("the metrics");
    for name in ["appeals_http_requests_total", "appeals_submitted_total"] {
        assert!(text.contains(&format!("# TYPE {name} counter")), "{name} should be a counter in:\n{text}");
        let sample = text.lines().find(|line| line.starts_with(name) && !line.starts_with('#'));
        let value = sample.and_then(|line| line.rsplit(' ').next()).and_then(|value| value.parse::<f64>().ok());
        assert!(value.is_some_and(|value| value >= 1.0), "{name} should count at least one, in:\n{text}");
    }
    assert!(
        text.lines().any(|line| line.starts_with("appeals_http_requests_total") && line.contains("path=\"/graphql\"")),
        "the POST /graphql request should be counted, in:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_migrates_adds_a_user_and_serves_with_its_token() {
    let database = DatabaseFile::new();
    let migrated = appeals(&database, &["migrate"]);
    assert!(migrated.status.success(), "migrate: {}", describe(&migrated));
    let again = appeals(&database, &["migrate"]);
    assert!(again.status.success(), "migrate is idempotent: {}", describe(&again));

    let governor = add_user(&database, "Ситуационный центр", "governor-office", None);
    let head = add_user(&database, "Глава Северска", "HEAD", Some("seversk"));
    let auditor = add_user(&database, "Аудитор", "Auditor", None);

    let server = ServerProcess::start(&database.url(), &[]).await;
    let me = "{ me { name role municipality { code } } }";
    let governor_view = server.graphql(&governor, me, json!({})).await;
    assert_eq!(
        governor_view["data"]["me"],
        json!({ "name": "Ситуационный центр", "role": "GOVERNOR_OFFICE", "municipality": null }),
        "{governor_view}"
    );
    let head_view = server.graphql(&head, me, json!({})).await;
    assert_eq!(head_view["data"]["me"]["role"], "HEAD", "{head_view}");
    assert_eq!(head_view["data"]["me"]["municipality"]["code"], "seversk", "{head_view}");
    let auditor_view = server.graphql(&auditor, me, json!({})).await;
    assert_eq!(auditor_view["data"]["me"]["role"], "AUDITOR", "{auditor_view}");
    let stranger = server.graphql("apl_not-a-token", me, json!({})).await;
    assert_eq!(error_code(&stranger), Some("UNAUTHENTICATED"), "{stranger}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_refuses_users_that_break_the_rules() {
    let database = DatabaseFile::new();
    let migrated = appeals(&database, &["migrate"]);
    assert!(migrated.status.success(), "migrate: {}", describe(&migrated));
    let cases: [(&str, &[&str]); 5] = [
        ("a head without a municipality", &["--name", "Глава", "--role", "head"]),
        ("an assistant without a municipality", &["--name", "Помощник", "--role", "assistant"]),
        ("an auditor with a municipality", &["--name", "Аудитор", "--role", "auditor", "--municipality", "tomsk"]),
        ("an unknown role", &["--name", "Мэр", "--role", "mayor"]),
        ("an unknown municipality", &["--name", "Глава", "--role", "head", "--municipality", "atlantis"]),
    ];
    for (case, args) in cases {
        let output = appeals(&database, &[&["user", "add"], args].concat());
        assert!(!output.status.success(), "{case}: should fail: {}", describe(&output));
        assert!(!output.stderr.is_empty(), "{case}: should say why on stderr: {}", describe(&output));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_passes_an_intact_history_and_names_the_forged_event() {
    let database = DatabaseFile::new();
    let migrated = appeals(&database, &["migrate"]);
    assert!(migrated.status.success(), "migrate: {}", describe(&migrated));
    let intake = add_user(&database, "Бот приёма", "intake", None);
    let assistant = add_user(&database, "Помощник", "assistant", Some("tomsk"));

    let mut server = ServerProcess::start(&database.url(), &[]).await;
    let mut appeals_made = Vec::new();
    for text in ["Разбита дорога на Ленина", "Не работает лифт"] {
        let submitted = server.graphql(&intake, SUBMIT, submission(text)).await;
        let appeal = submitted["data"]["submitAppeal"]["appeal"].clone();
        assert!(appeal["id"].is_string(), "{submitted}");
        appeals_made.push(appeal);
    }
    let (forged_appeal, intact_appeal) = (&appeals_made[0], &appeals_made[1]);
    let note = "mutation($id: ID!, $text: String!) { addNote(id: $id, text: $text) { event { seq } } }";
    let original = "Original note 4f1c9e2a7b";
    let noted = server.graphql(&assistant, note, json!({ "id": forged_appeal["id"], "text": original })).await;
    assert_eq!(noted["data"]["addNote"]["event"]["seq"], 2, "{noted}");
    // Killed and waited for, the server has released the database file.
    server.kill();

    // Verifying also closes the last connection, which checkpoints the WAL into the file.
    let intact = appeals(&database, &["audit", "verify"]);
    assert_eq!(intact.status.code(), Some(0), "an intact database verifies: {}", describe(&intact));

    forge_in_file(&database, original, "Forged!! note 4f1c9e2a7b");
    let broken = appeals(&database, &["audit", "verify"]);
    assert_eq!(broken.status.code(), Some(1), "a forged event fails verification: {}", describe(&broken));
    let report = stdout(&broken);
    let (id, number) = (forged_appeal["id"].as_str().unwrap(), forged_appeal["number"].as_str().unwrap());
    assert!(report.contains(id) || report.contains(number), "the report names the appeal {number} ({id}): {report}");
    assert!(report.contains("seq 2"), "the report names the forged event, seq 2: {report}");

    let one = appeals(&database, &["audit", "verify", "--appeal", id]);
    assert_eq!(one.status.code(), Some(1), "verifying the forged appeal alone: {}", describe(&one));
    let other = appeals(&database, &["audit", "verify", "--appeal", intact_appeal["id"].as_str().unwrap()]);
    assert_eq!(other.status.code(), Some(0), "the other appeal still verifies: {}", describe(&other));
}
