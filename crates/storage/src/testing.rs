//! Throwaway databases for tests: a temporary SQLite file, or a randomly named
//! PostgreSQL database created on the server that `APPEALS_TEST_POSTGRES_URL`
//! points at. Every test gets its own, so tests run in parallel without sharing
//! state. [`on_both_databases!`] turns one test body into a test on each. A
//! PostgreSQL database is found on the hot standby of that server too
//! ([`ThrowawayDatabase::on_standby`], from `APPEALS_TEST_STANDBY_URL`).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use sea_orm::{ConnectionTrait, Database};

// `#[macro_export]` puts the macro at the crate's root; tests import it from here,
// next to the `Backend` it takes.
pub use crate::on_both_databases;

/// The environment variable naming the PostgreSQL server for tests, e.g.
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub const POSTGRES_URL_VARIABLE: &str = "APPEALS_TEST_POSTGRES_URL";

/// The environment variable naming a streaming hot standby of the server
/// [`POSTGRES_URL_VARIABLE`] names, e.g.
/// `postgres://postgres@127.0.0.1:5433/postgres` (`scripts/standby start`).
pub const STANDBY_URL_VARIABLE: &str = "APPEALS_TEST_STANDBY_URL";

/// How long a new database may take to appear on the standby.
const STANDBY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Test databases older than this are dropped when a new one is made, so that
/// aborted runs do not pile up databases.
const STALE_AFTER_SECONDS: u64 = 6 * 3600;

/// Emits, for each named `async fn name(backend: Backend)` of the calling module,
/// two tests that call it: `sqlite::name` on a temporary SQLite file and
/// `postgres::name` on a fresh PostgreSQL database (which, without
/// [`POSTGRES_URL_VARIABLE`], returns at once, except under `CI`, where it fails).
/// A function left out of the list is dead code, which `clippy -D warnings`
/// refuses. The storage suite and the end-to-end suite both use it; the calling
/// crate needs `tokio` with its `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! on_both_databases {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case($crate::testing::Backend::Sqlite).await
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case($crate::testing::Backend::Postgres).await
                }
            )+
        }
    };
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database; its URL is what the code under test connects to.
/// Dropping it removes the database: the SQLite file, or the PostgreSQL database
/// (with `FORCE`, ending any connection still open to it).
#[derive(Debug)]
pub struct ThrowawayDatabase {
    pub url: String,
    file: Option<PathBuf>,
    /// The server's URL and the database's name, for PostgreSQL.
    postgres: Option<(String, String)>,
}

impl ThrowawayDatabase {
    /// Creates a database on `backend`. For PostgreSQL, the server URL comes from
    /// [`POSTGRES_URL_VARIABLE`]; when it is unset this returns `None` — unless the
    /// variable `CI` is set, where a missing database is a failure, not a skip.
    pub async fn create(backend: Backend) -> Option<ThrowawayDatabase> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite()),
            Backend::Postgres => match std::env::var(POSTGRES_URL_VARIABLE) {
                Ok(server) => Some(Self::postgres(&server).await),
                Err(_) if std::env::var_os("CI").is_some() => {
                    panic!("{POSTGRES_URL_VARIABLE} must be set in CI: the PostgreSQL tests may not be skipped")
                }
                Err(_) => None,
            },
        }
    }

    fn sqlite() -> ThrowawayDatabase {
        let path = std::env::temp_dir().join(format!("appeals-test-{}.db", random_suffix()));
        ThrowawayDatabase { url: format!("sqlite://{}?mode=rwc", path.display()), file: Some(path), postgres: None }
    }

    async fn postgres(server: &str) -> ThrowawayDatabase {
        let admin = Database::connect(server).await.expect("the test PostgreSQL server should accept connections");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        drop_stale_databases(&admin, now).await;
        let name = format!("appeals_test_{now}_{}", random_suffix());
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("CREATE DATABASE should succeed");
        let _ = admin.close().await;
        let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
        ThrowawayDatabase { url: format!("{base}/{name}"), file: None, postgres: Some((server.to_owned(), name)) }
    }
}

impl ThrowawayDatabase {
    /// The URL of this PostgreSQL database on the hot standby that
    /// [`STANDBY_URL_VARIABLE`] names, once the standby has replayed its
    /// creation. `None` for SQLite, and when the variable is unset — unless
    /// `CI` is set, where a missing standby is a failure, not a skip.
    ///
    /// # Panics
    /// Under `CI` without the variable, or when the database does not appear
    /// on the standby within 30 s.
    pub async fn on_standby(&self) -> Option<String> {
        let (_, name) = self.postgres.as_ref()?;
        let standby = match std::env::var(STANDBY_URL_VARIABLE) {
            Ok(standby) => standby,
            Err(_) if std::env::var_os("CI").is_some() => {
                panic!("{STANDBY_URL_VARIABLE} must be set in CI: the standby's tests may not be skipped")
            }
            Err(_) => return None,
        };
        let server = Database::connect(standby.as_str()).await.expect("the test standby should accept connections");
        let started = std::time::Instant::now();
        // The name is this crate's own: letters, digits and underscores.
        let sql = format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'");
        loop {
            let statement = sea_orm::Statement::from_string(server.get_database_backend(), sql.clone());
            let row = server.query_one_raw(statement).await.expect("the standby lists its databases");
            let found = row.and_then(|row| row.try_get_by_index::<i64>(0).ok()).unwrap_or(0);
            if found == 1 {
                break;
            }
            assert!(
                started.elapsed() < STANDBY_WAIT,
                "{name} did not appear on the standby {standby} within {STANDBY_WAIT:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let _ = server.close().await;
        let base = standby.rsplit_once('/').map_or(standby.as_str(), |(base, _)| base);
        Some(format!("{base}/{name}"))
    }
}

impl Drop for ThrowawayDatabase {
    fn drop(&mut self) {
        if let Some(path) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        if let Some((server, name)) = self.postgres.take() {
            // `drop` cannot await, and it runs inside the test's runtime, which
            // cannot block on a future either: a thread with a runtime of its own
            // drops the database. Without this every test run would leave its
            // databases behind for `STALE_AFTER_SECONDS`.
            let dropping = std::thread::spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                runtime.block_on(async {
                    let Ok(admin) = Database::connect(server.as_str()).await else { return };
                    let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                    let _ = admin.close().await;
                });
            });
            let _ = dropping.join();
        }
    }
}

async fn drop_stale_databases(admin: &sea_orm::DatabaseConnection, now: u64) {
    let Ok(rows) = admin
        .query_all_raw(sea_orm::Statement::from_string(
            admin.get_database_backend(),
            "SELECT datname FROM pg_database WHERE datname LIKE 'appeals\\_test\\_%'",
        ))
        .await
    else {
        return;
    };
    for row in rows {
        let Ok(name) = row.try_get_by_index::<String>(0) else { continue };
        let created = name.split('_').nth(2).and_then(|secs| secs.parse::<u64>().ok()).unwrap_or(now);
        if now.saturating_sub(created) > STALE_AFTER_SECONDS {
            let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        }
    }
}

fn random_suffix() -> String {
    hex::encode(rand::random::<[u8; 6]>())
}
