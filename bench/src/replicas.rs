//! The servers under test: one or more `appeals serve` processes on the one
//! benchmark database, each on its own port, all started at the same moment
//! (on PostgreSQL they migrate one at a time, under an advisory lock); and the
//! budget of PostgreSQL connections they share with the floor.
//!
//! Clients are spread over the replicas round-robin, and each keeps to the one it
//! was given, as behind a balancer that reuses its connections.

use std::path::Path;

use anyhow::Context as _;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

use crate::server::{ProcessWatch, Server, ServerDatabase};

/// The replicas of one run.
pub struct Replicas {
    servers: Vec<Server>,
    pub database: ServerDatabase,
}

impl Replicas {
    /// Starts `count` servers on `database` at the same moment, then waits until
    /// each answers `/readyz`. `label` names their logs.
    pub async fn start(
        binary: &Path,
        database: &ServerDatabase,
        count: usize,
        label: &str,
    ) -> anyhow::Result<Replicas> {
        let mut servers = Vec::with_capacity(count);
        for index in 0..count {
            let log =
                std::env::temp_dir().join(format!("appeals-bench-server-{}-{label}-{index}.log", std::process::id()));
            servers.push(Server::spawn(binary, database, log)?);
        }
        for server in &mut servers {
            server.ready().await?;
        }
        for (index, server) in servers.iter().enumerate() {
            eprintln!(
                "server {index} ({label}) {} on port {} (log: {})",
                binary.display(),
                server.port,
                server.log.display()
            );
        }
        Ok(Replicas { servers, database: database.clone() })
    }

    pub fn len(&self) -> usize {
        self.servers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Each replica's `http://127.0.0.1:PORT`, in order.
    pub fn base_urls(&self) -> Vec<String> {
        self.servers.iter().map(Server::base_url).collect()
    }

    /// All the replicas' processes, watched as one.
    pub fn watch(&self) -> ProcessWatch {
        ProcessWatch::joined(self.servers.iter().map(Server::watch))
    }

    /// The SQL statements the replicas have sent so far, added up.
    pub async fn statements(&self) -> Option<u64> {
        let mut total = 0;
        for server in &self.servers {
            total += server.statements().await?;
        }
        Some(total)
    }

    /// Stops every replica: asks them all at once, then waits for each.
    pub fn stop(self) {
        for server in &self.servers {
            server.ask_to_stop();
        }
        for server in self.servers {
            server.stop();
        }
    }
}

/// Connections each server opens beside its pool: the migration's session at
/// start, the one that listens for the other replicas' events and revocations,
/// and the one its event feed reads on.
pub const DEDICATED_PER_SERVER: u32 =
    1 + appeals_storage::database::LISTENING_CONNECTIONS + appeals_storage::database::FOLLOWING_CONNECTIONS;

/// A server's pool when nothing else is asked and it runs alone.
pub const DEFAULT_POOL: u32 = 16;

/// The most a replica's pool is given unasked when several share the database.
pub const MOST_PER_REPLICA: u32 = 24;

/// The fewest pooled connections a replica may be given.
pub const FEWEST_PER_REPLICA: u32 = 4;

/// Connections left free for whoever else connects during the run (psql, the
/// benchmark's own admin connection).
pub const HEADROOM: u32 = 4;

/// What the PostgreSQL server allows, as read at the start of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: u32,
    /// `superuser_reserved_connections`: not counted on.
    pub reserved: u32,
    /// Connections open already, to any database.
    pub in_use: u32,
}

/// How the connections are shared out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Budget {
    pub servers: usize,
    /// Each server's `--database-pool-size`.
    pub pool_per_server: u32,
    /// The floor's pool.
    pub floor_pool: u32,
    /// PostgreSQL's `max_connections`, when on PostgreSQL.
    pub max_connections: Option<u32>,
    /// Connections other clients held when the run started.
    pub in_use_before: Option<u32>,
}

impl Budget {
    /// SQLite: one server, its pool as asked (16 by default), and the floor's
    /// the same.
    pub fn unlimited(asked: Option<u32>) -> Budget {
        let pool = asked.unwrap_or(DEFAULT_POOL);
        Budget { servers: 1, pool_per_server: pool, floor_pool: pool, max_connections: None, in_use_before: None }
    }

    /// Shares PostgreSQL's connections between `servers` servers and the floor:
    /// `servers × (pool + DEDICATED_PER_SERVER) + floor + HEADROOM` must fit in
    /// what `limits` leave. An asked pool is kept or refused; unasked, a lone
    /// server gets [`DEFAULT_POOL`] and replicas what fits, up to
    /// [`MOST_PER_REPLICA`]. The floor gets the asked pool (16 by default) when a
    /// scenario has one, and 2 connections otherwise (for `ANALYZE`).
    pub fn plan(limits: Limits, servers: usize, asked: Option<u32>, floor_runs: bool) -> anyhow::Result<Budget> {
        let floor_pool = if floor_runs { asked.unwrap_or(DEFAULT_POOL) } else { 2 };
        let usable = limits.max_connections.saturating_sub(limits.reserved + limits.in_use + HEADROOM + floor_pool);
        let count = servers.max(1) as u32;
        let fits = (usable / count).saturating_sub(DEDICATED_PER_SERVER);
        let pool = match asked {
            Some(pool) => pool,
            None if servers <= 1 => DEFAULT_POOL.min(fits).max(FEWEST_PER_REPLICA),
            None => MOST_PER_REPLICA.min(fits),
        };
        anyhow::ensure!(
            pool >= 1 && pool <= fits && (asked.is_some() || pool >= FEWEST_PER_REPLICA),
            "{servers} server(s) with a pool of {pool} and {DEDICATED_PER_SERVER} more connections each, beside the \
             floor's {floor_pool}, do not fit in PostgreSQL's max_connections = {} ({} reserved, {} in use, \
             {HEADROOM} kept free): at most {fits} per server fits",
            limits.max_connections,
            limits.reserved,
            limits.in_use,
        );
        Ok(Budget {
            servers,
            pool_per_server: pool,
            floor_pool,
            max_connections: Some(limits.max_connections),
            in_use_before: Some(limits.in_use),
        })
    }

    /// One line saying how the connections were shared out.
    pub fn describe(&self) -> String {
        let servers = match self.servers {
            1 => format!("1 server with a pool of {}", self.pool_per_server),
            n => format!("{n} replicas with a pool of {} each", self.pool_per_server),
        };
        match (self.max_connections, self.in_use_before) {
            (Some(max), Some(in_use)) => format!(
                "{servers} (+{DEDICATED_PER_SERVER} dedicated each), the floor {}: at most {} of PostgreSQL's \
                 max_connections = {max} ({in_use} in use before the run)",
                self.floor_pool,
                self.servers as u32 * (self.pool_per_server + DEDICATED_PER_SERVER) + self.floor_pool,
            ),
            _ => format!("{servers}, the floor {}", self.floor_pool),
        }
    }
}

/// Reads what the PostgreSQL server at `url` allows, and how many connections
/// are open on it now.
pub async fn limits(url: &str) -> anyhow::Result<Limits> {
    let db = Database::connect(url).await.context("connecting to read max_connections")?;
    let limits = Limits {
        max_connections: number(&db, "SELECT current_setting('max_connections')::bigint").await?,
        reserved: number(&db, "SELECT current_setting('superuser_reserved_connections')::bigint").await?,
        // Not counting this one, which is closed before the servers start.
        in_use: number(&db, "SELECT count(*) - 1 FROM pg_stat_activity WHERE backend_type = 'client backend'").await?,
    };
    db.close().await?;
    Ok(limits)
}

async fn number(db: &DatabaseConnection, sql: &str) -> anyhow::Result<u32> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .with_context(|| format!("no answer to {sql}"))?;
    let value: i64 = row.try_get_by_index(0)?;
    Ok(value.clamp(0, i64::from(u32::MAX)) as u32)
}
