//! The real `appeals serve` with a hot standby for reads (PostgreSQL only):
//! the lists and the dashboard are read there, and a write shows in the very
//! next read over HTTP; a read URL that is not a standby of the database keeps
//! the server from starting.

use appeals_storage::testing::{Backend, ThrowawayDatabase};
use serde_json::json;

use crate::support::process::{ServerProcess, describe, run_command};

/// A token made with `appeals user add … --quiet`.
fn token(url: &str, name: &str, role: &str) -> String {
    let output = run_command(url, &["user", "add", "--name", name, "--role", role, "--quiet"]);
    assert!(output.status.success(), "{}", describe(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The sum of `appeals_reads_total` over the lines of `/metrics` with `label`.
fn reads(metrics: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with("appeals_reads_total{") && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_reads_lists_and_dashboards_on_the_standby_and_they_show_a_write_at_once() {
    let Some(database) = ThrowawayDatabase::create(Backend::Postgres).await else { return };
    let Some(standby) = database.on_standby().await else { return };
    let intake = token(&database.url, "Бот приёма", "intake");
    let governor = token(&database.url, "Центр управления регионом", "governor-office");
    // The read URL from the environment, as a deployment (and the bench) sets
    // it; a wait long enough that a busy test machine never reads on the primary.
    let server = ServerProcess::start_with_env(
        &database.url,
        &["--database-read-max-lag", "10s"],
        &[("APPEALS_DATABASE_READ_URL", standby.as_str())],
    )
    .await;

    let submit = "mutation($input: SubmitAppealInput!) { submitAppeal(input: $input) { created } }";
    let read = "{ appeals(first: 1) { totalCount } dashboard { total } }";
    for round in 1..=30u64 {
        let input =
            json!({ "input": { "municipalityCode": "tomsk", "channel": "WEB", "text": format!("Обращение {round}") } });
        let submitted = server.graphql(&intake, submit, input).await;
        assert_eq!(submitted["data"]["submitAppeal"]["created"], true, "round {round}: {submitted}");
        let answer = server.graphql(&governor, read, json!({})).await;
        assert_eq!(answer["data"]["appeals"]["totalCount"], round, "round {round}: {answer}");
        assert_eq!(answer["data"]["dashboard"]["total"], round, "round {round}: {answer}");
    }

    let metrics = server.get("/metrics").await.text().await.expect("the metrics");
    assert_eq!(reads(&metrics, "on=\"standby\""), 60.0, "every list and dashboard on the standby:\n{metrics}");
    assert_eq!(reads(&metrics, "on=\"primary\""), 0.0, "none on the primary:\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_does_not_start_with_a_read_url_that_is_not_a_standby_of_its_database() {
    let Some(database) = ThrowawayDatabase::create(Backend::Postgres).await else { return };
    let Some(_standby) = database.on_standby().await else { return };
    let serve = |read_url: &str| {
        run_command(&database.url, &["serve", "--listen", "127.0.0.1:0", "--database-read-url", read_url])
    };

    let primary = serve(&database.url);
    assert_eq!(primary.status.code(), Some(3), "the primary as its own standby: {}", describe(&primary));
    assert!(String::from_utf8_lossy(&primary.stderr).contains("not a hot standby"), "{}", describe(&primary));
    let sqlite = serve("sqlite://replica.db");
    assert_eq!(sqlite.status.code(), Some(2), "an SQLite read URL: {}", describe(&sqlite));
}
