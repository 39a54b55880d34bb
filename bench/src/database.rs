//! The benchmark's own database: a fresh SQLite file, or a fresh PostgreSQL
//! database named `appeals_bench_<time>_<random>`, removed after the run.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use sea_orm::{ConnectionTrait, Database};

use crate::config::{DatabaseKind, Settings};

pub struct BenchDatabase {
    pub url: String,
    kind: Place,
}

enum Place {
    SqliteFile(PathBuf),
    /// The server's URL and the database's name.
    Postgres {
        server: String,
        name: String,
    },
}

impl BenchDatabase {
    pub async fn create(settings: &Settings) -> anyhow::Result<BenchDatabase> {
        let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let suffix = format!("{seconds}_{:08x}", rand::rng().random::<u32>());
        match settings.db {
            DatabaseKind::Sqlite => {
                let path = settings.sqlite_dir.join(format!("appeals-bench-{suffix}.db"));
                Ok(BenchDatabase {
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    kind: Place::SqliteFile(path),
                })
            }
            DatabaseKind::Postgres => {
                let server = settings.postgres_url.clone();
                let name = format!("appeals_bench_{suffix}");
                let admin = Database::connect(server.as_str()).await?;
                admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
                admin.close().await?;
                let base = server.rsplit_once('/').map_or(server.as_str(), |(base, _)| base);
                Ok(BenchDatabase { url: format!("{base}/{name}"), kind: Place::Postgres { server, name } })
            }
        }
    }

    /// Removes the database: the SQLite file with its WAL, or the PostgreSQL
    /// database (ending any connection still open to it).
    pub async fn remove(self) -> anyhow::Result<()> {
        match self.kind {
            Place::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Place::Postgres { server, name } => {
                let admin = Database::connect(server.as_str()).await?;
                admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
                admin.close().await?;
            }
        }
        Ok(())
    }
}

/// The benchmark database at `database_url` as read on a hot standby of its
/// server: `standby_url` with its database name replaced by the benchmark's.
pub fn on_standby(standby_url: &str, database_url: &str) -> String {
    let name = database_url.rsplit_once('/').map_or(database_url, |(_, name)| name);
    let server = standby_url.rsplit_once('/').map_or(standby_url, |(server, _)| server);
    format!("{server}/{name}")
}

/// Waits until the standby at `standby_url` has replayed everything the primary
/// at `primary_url` has written so far (the loaded region, its `VACUUM ANALYZE`),
/// and returns how long that took.
pub async fn wait_for_standby(primary_url: &str, standby_url: &str) -> anyhow::Result<std::time::Duration> {
    use anyhow::Context as _;
    use sea_orm::Statement;

    let started = std::time::Instant::now();
    let primary = Database::connect(primary_url).await.context("connecting to the primary")?;
    let backend = primary.get_database_backend();
    let row = primary
        .query_one_raw(Statement::from_string(backend, "SELECT pg_current_wal_lsn()::text"))
        .await?
        .context("no WAL position")?;
    let written: String = row.try_get_by_index(0)?;
    primary.close().await?;
    let deadline = started + std::time::Duration::from_secs(30 * 60);
    loop {
        // The benchmark database may not exist there yet: it comes with the WAL.
        if let Ok(standby) = Database::connect(standby_url).await {
            let caught_up = standby
                .query_one_raw(Statement::from_sql_and_values(
                    backend,
                    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() >= $1::pg_lsn",
                    [written.clone().into()],
                ))
                .await;
            standby.close().await?;
            if let Some(row) = caught_up? {
                let in_recovery: bool = row.try_get_by_index(0)?;
                anyhow::ensure!(in_recovery, "{standby_url} is not a standby (pg_is_in_recovery() is false)");
                if row.try_get_by_index::<Option<bool>>(1)?.unwrap_or(false) {
                    return Ok(started.elapsed());
                }
            }
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "the standby did not catch up in 30 minutes");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
