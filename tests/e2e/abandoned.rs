//! A search its client abandons, or that outlives the request timeout, stops in
//! the database instead of holding a connection of the pool until it ends by
//! itself. On PostgreSQL, where the test can keep a search waiting as long as it
//! likes: it holds a lock on the appeals, and watches the server's statement
//! wait in `pg_stat_activity`, then stop waiting once the request is abandoned,
//! while the lock is still held. SQLite's interruption of an abandoned statement
//! is tested in the storage crate (`abandon.rs`).

use std::time::{Duration, Instant};

use appeals_core::Role;
use appeals_storage::testing::Backend;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::json;

use crate::support::spawn_app_with;

const SEARCH: &str = "{ appeals(first: 20, filter: { text: \"подъезд\" }) { totalCount edges { node { id } } } }";
const ME: &str = "{ me { role } }";

/// How long the test waits for the database to show what it expects.
const PATIENCE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_search_abandoned_by_its_client_or_its_timeout_stops_in_the_database() {
    let mut url = String::new();
    let Some(app) = spawn_app_with(Backend::Postgres, |config| {
        config.request_timeout = Duration::from_secs(2);
        // Without a statement timeout, only the cancellation can stop the search.
        config.pool.statement_timeout = None;
        // Two connections: an abandoned search that kept its connection would
        // leave the last search of the test none.
        config.pool.max_connections = 2;
        url.clone_from(&config.database_url);
    })
    .await
    else {
        return;
    };
    let assistant = app.token(Role::Assistant, Some("tomsk")).await;
    app.submit(&assistant, "tomsk", "Не убирают подъезд").await;

    let holder = single_connection(&url).await;
    let monitor = single_connection(&url).await;
    holder.execute_unprepared("BEGIN").await.expect("BEGIN");
    holder.execute_unprepared("LOCK TABLE appeal IN ACCESS EXCLUSIVE MODE").await.expect("the lock");

    // The client gives up after half a second.
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().expect("a client");
    let request = impatient
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&assistant)
        .json(&json!({ "query": SEARCH }))
        .send();
    let (answer, seen) = tokio::join!(request, until(&monitor, |waiting| waiting == 1));
    assert!(seen, "the search waited for the lock in the database");
    assert!(answer.is_err(), "the client gave up: {answer:?}");
    assert!(until(&monitor, |waiting| waiting == 0).await, "the abandoned search still waits in the database");

    // Others are served meanwhile.
    let me = app.graphql(Some(&assistant), ME, json!({})).await;
    assert_eq!(me["data"]["me"]["role"], "ASSISTANT", "{me}");

    // The server gives up after its request timeout.
    let search = json!({ "query": SEARCH });
    let request = app.post(Some(&assistant), &search);
    let (answer, seen) = tokio::join!(request, until(&monitor, |waiting| waiting == 1));
    assert!(seen, "the search waited for the lock in the database");
    assert_eq!(answer.status(), reqwest::StatusCode::REQUEST_TIMEOUT);
    assert!(until(&monitor, |waiting| waiting == 0).await, "the timed-out search still waits in the database");

    holder.execute_unprepared("ROLLBACK").await.expect("ROLLBACK");
    let found = app.graphql(Some(&assistant), SEARCH, json!({})).await;
    assert_eq!(found["data"]["appeals"]["totalCount"], 1, "{found}");
}

async fn single_connection(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url.to_owned());
    options.max_connections(1).min_connections(1).sqlx_logging(false);
    Database::connect(options).await.expect("a connection to the test database")
}

/// Whether, within [`PATIENCE`], the number of the database's statements
/// waiting for a lock comes to satisfy `expected`.
async fn until(monitor: &DatabaseConnection, expected: impl Fn(i64) -> bool) -> bool {
    let started = Instant::now();
    let count = Statement::from_string(
        monitor.get_database_backend(),
        "SELECT count(*) AS waiting FROM pg_stat_activity \
         WHERE datname = current_database() AND state = 'active' AND wait_event_type = 'Lock'",
    );
    while started.elapsed() < PATIENCE {
        let row = monitor.query_one_raw(count.clone()).await.expect("pg_stat_activity").expect("a row");
        if expected(row.try_get::<i64>("", "waiting").expect("a count")) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
