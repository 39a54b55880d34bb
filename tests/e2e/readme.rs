//! The README's walk-through works as written: its shell blocks, pasted in
//! order into one shell, run against the `appeals` binary serving a fresh
//! database in the folder the commands run in, and every answer is what the
//! README says it is.

use std::process::Command;
use std::time::Instant;

use crate::support::process::{ServerProcess, appeals_binary};

/// The section of the README that is the walk-through.
const SECTION: &str = "## A newcomer's first ten minutes";

/// The shell blocks of the walk-through, in order.
fn walk_through() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let start = readme.find(SECTION).expect("the README has the walk-through");
    let section = &readme[start + SECTION.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + "```sh\n".len()..];
        let close = body.find("```").expect("a closed block");
        blocks.push(body[..close].to_owned());
        rest = &body[close + 3..];
    }
    blocks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walk_through_runs_as_written() {
    let blocks = walk_through();
    assert!(blocks.len() >= 6, "the walk-through's blocks: {blocks:?}");
    let folder = std::env::temp_dir().join(format!("appeals-readme-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&folder).expect("a folder");
    // The server's database is `appeals.db` in the folder the commands run in.
    let url = format!("sqlite://{}", folder.join("appeals.db").display());
    let server = ServerProcess::start(&url, &[]).await;

    let script = format!("set -euo pipefail\n{}", blocks.join("\n"));
    let started = Instant::now();
    let mut command = Command::new("bash");
    command.arg("-c").arg(&script).current_dir(&folder);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("APPEALS_") {
            command.env_remove(name);
        }
    }
    let output =
        command.env("APPEALS", appeals_binary()).env("APPEALS_URL", server.address()).output().expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("the walk-through took {:?}", started.elapsed());
    assert!(output.status.success(), "the walk-through failed:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("\"errors\""), "an answer with errors:\n{stdout}");
    for expected in [
        "tomsk",
        "\"created\":true",
        "\"status\":\"SEEN\"",
        "\"status\":\"RESOLVED\"",
        "\"response\":\"Яму заделали 12 мая\"",
        "\"ok\":true",
        "\"totalCount\":1",
        "ok: every hash chain verifies",
    ] {
        assert!(stdout.contains(expected), "the walk-through's output lacks {expected}:\n{stdout}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&folder);
}
