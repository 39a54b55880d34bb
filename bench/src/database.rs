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
