//! The command line as a newcomer meets it: what it prints, what it refuses
//! and the status it exits with (README, "Exit statuses"), run as the real
//! binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use appeals_storage::testing::{Backend, ThrowawayDatabase};
use serde_json::Value;

use crate::support::process::{ServerProcess, appeals_binary, describe, free_port, run_command};

/// A folder of its own, removed afterwards.
struct Folder(PathBuf);

impl Folder {
    fn new() -> Folder {
        let path = std::env::temp_dir().join(format!("appeals-cli-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("a folder");
        Folder(path)
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `appeals ARGS` run in `folder`, with no `APPEALS_*` variable of the test's.
fn appeals_in(folder: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(appeals_binary());
    command.args(args).current_dir(folder);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("APPEALS_") {
            command.env_remove(name);
        }
    }
    command.output().expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One line on standard error, `error: …`, and the status.
fn assert_fails(output: &Output, status: i32, mentions: &[&str]) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(status), "{}", describe(output));
    assert_eq!(text.trim_end().lines().count(), 1, "one line: {text}");
    assert!(text.starts_with("error: "), "{text}");
    for mention in mentions {
        assert!(text.to_lowercase().contains(&mention.to_lowercase()), "the message names {mention}: {text}");
    }
    assert!(!text.contains(" at line "), "no driver positions: {text}");
}

#[test]
fn a_one_shot_command_never_creates_a_database_and_says_where_it_looked() {
    let folder = Folder::new();
    let output = appeals_in(&folder.0, &["user", "add", "--name", "Иван", "--role", "intake"]);
    let expected = folder.0.join("appeals.db");
    assert_fails(&output, 3, &[&format!("no database at {}", expected.display()), "--database-url"]);
    assert!(!expected.exists(), "no database was created");
    for args in [
        &["municipality", "list"][..],
        &["audit", "verify"],
        &["channel", "set", "--municipality", "tomsk", "--channel", "vk"],
    ] {
        let output = appeals_in(&folder.0, args);
        assert_fails(&output, 3, &["no database at"]);
    }
    assert!(!expected.exists(), "still none");

    // `migrate` creates it, and a bare path is an SQLite file.
    let output = appeals_in(&folder.0, &["migrate", "--database-url", "appeals.db"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(stdout(&output).contains(&expected.display().to_string()), "{}", stdout(&output));
    let listed = appeals_in(&folder.0, &["municipality", "list", "--json"]);
    assert!(listed.status.success(), "{}", describe(&listed));
    let municipalities: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    assert_eq!(municipalities.as_array().map(Vec::len), Some(20), "{municipalities}");
    assert!(municipalities.as_array().unwrap().iter().any(|m| m["code"] == "tomsk"));
    let quiet = appeals_in(&folder.0, &["municipality", "list", "--quiet"]);
    assert!(stdout(&quiet).lines().any(|line| line == "tomsk"), "{}", stdout(&quiet));

    let token = appeals_in(&folder.0, &["user", "add", "--name", "Бот", "--role", "intake", "--quiet"]);
    let printed = stdout(&token);
    assert_eq!(printed.lines().count(), 1, "the token alone: {printed}");
    assert!(printed.starts_with("apl_"), "{printed}");
    let json = appeals_in(
        &folder.0,
        &["user", "add", "--name", "Глава", "--role", "head", "--municipality", "tomsk", "--json"],
    );
    let user: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!((user["role"].as_str(), user["municipality"].as_str()), (Some("HEAD"), Some("tomsk")), "{user}");
    assert!(user["token"].as_str().is_some_and(|token| token.starts_with("apl_")), "{user}");

    // Wrong values are usage errors.
    let role = appeals_in(&folder.0, &["user", "add", "--name", "X", "--role", "mayor"]);
    assert_fails(&role, 2, &["mayor"]);
    let place = appeals_in(&folder.0, &["user", "add", "--name", "X", "--role", "head", "--municipality", "atlantis"]);
    assert_fails(&place, 2, &["atlantis"]);
    let verified = appeals_in(&folder.0, &["audit", "verify"]);
    assert!(stdout(&verified).contains("checked 0 appeals, 0 events"), "{}", stdout(&verified));
}

#[test]
fn database_errors_are_one_line_naming_what_was_tried_and_never_the_password() {
    let folder = Folder::new();
    let port = free_port();
    let url = format!("postgres://appeals:hunter2secret@127.0.0.1:{port}/appeals");
    let output = appeals_in(&folder.0, &["migrate", "--database-url", &url]);
    assert_fails(&output, 3, &[&format!("PostgreSQL at 127.0.0.1:{port}, database appeals, as appeals"), "refused"]);
    assert!(!stderr(&output).contains("hunter2secret"), "{}", stderr(&output));

    let missing = appeals_in(&folder.0, &["migrate", "--database-url", "/no/such/folder/appeals.db"]);
    assert_fails(&missing, 3, &["the SQLite file /no/such/folder/appeals.db"]);

    let unsupported = appeals_in(&folder.0, &["migrate", "--database-url", "mysql://root@localhost/appeals"]);
    assert_fails(&unsupported, 3, &["mysql"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_postgresql_database_is_named_with_what_to_do() {
    let Some(database) = ThrowawayDatabase::create(Backend::Postgres).await else { return };
    let missing = format!("{}_missing", database.url);
    let output = run_command(&missing, &["migrate"]);
    assert_fails(&output, 3, &["does not exist", "createdb"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_log_says_where_to_go_and_a_fresh_postgresql_raises_no_alarm() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(database) = ThrowawayDatabase::create(backend).await else { continue };
        let mut server = ServerProcess::start(&database.url, &[]).await;
        let address = server.address();
        // A second start on the same database: its migrations are all applied.
        server.restart().await;
        let log = server.log();
        assert!(log.contains(env!("CARGO_PKG_VERSION")), "the version: {log}");
        for url in ["/graphql", "/healthz", "/metrics"] {
            assert!(log.contains(&format!("{address}{url}")), "{url} in the start log: {log}");
        }
        let described = if backend == Backend::Sqlite { "the SQLite file" } else { "PostgreSQL at" };
        assert!(log.contains(described), "the database: {log}");
        assert!(!log.contains("already exists"), "no PostgreSQL notices: {log}");
        // The one warning a fresh install gets is that its history is not sealed.
        let alarming: Vec<&str> = log
            .lines()
            .filter(|line| (line.contains("WARN") || line.contains("ERROR")) && !line.contains("no audit key"))
            .collect();
        assert!(alarming.is_empty(), "nothing alarming: {alarming:#?}");
        assert!(!log.contains('\u{1b}'), "no terminal colours in a log file");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_named_with_the_flag_that_changes_it() {
    let Some(database) = ThrowawayDatabase::create(Backend::Sqlite).await else { return };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = taken.local_addr().expect("an address").to_string();
    let output = run_command(&database.url, &["serve", "--listen", &address]);
    assert_fails(&output, 4, &[&address, "--listen"]);
}

#[test]
fn completions_and_the_version_come_from_the_command_line_itself() {
    let folder = Folder::new();
    let bash = appeals_in(&folder.0, &["completions", "bash"]);
    assert!(bash.status.success(), "{}", describe(&bash));
    let script = stdout(&bash);
    assert!(script.contains("appeals") && script.contains("municipality"), "{script}");
    let version = appeals_in(&folder.0, &["--version"]);
    assert_eq!(stdout(&version).trim(), format!("appeals {}", env!("CARGO_PKG_VERSION")));
    let usage = appeals_in(&folder.0, &["serve", "--no-such-flag"]);
    assert_eq!(usage.status.code(), Some(2), "{}", describe(&usage));
}
