//! The command line of `appeals-bench`, and the settings it resolves to.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::scenario::Scenario;

/// Measures how close the Appeals API comes to the database's own limit: loads a
/// realistic region, starts the real server on it, drives each scenario over
/// HTTP, then issues the same statements straight to the database (the floor),
/// and reports both.
#[derive(Debug, Parser)]
#[command(name = "appeals-bench", version, about)]
pub struct Options {
    /// The database to run on: a fresh SQLite file, or a fresh PostgreSQL database.
    #[arg(long, value_enum, default_value_t = DatabaseKind::Sqlite)]
    pub db: DatabaseKind,

    /// How many appeals the region holds before the run (default 100000; 2000
    /// with --smoke).
    #[arg(long)]
    pub appeals: Option<usize>,

    /// Concurrent clients, through the API and on the floor alike.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,

    /// Seconds measured per scenario and phase, after a short warm-up (default
    /// 10; 1 with --smoke).
    #[arg(long)]
    pub duration: Option<u64>,

    /// The scenarios to run, comma-separated (default: all, in this order).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub scenarios: Vec<Scenario>,

    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// A quick run that checks the harness works: a small region, a second per
    /// scenario and phase, few subscribers.
    #[arg(long)]
    pub smoke: bool,

    /// Subscribers in the delivery scenario (default 1000; 20 with --smoke).
    #[arg(long)]
    pub subscribers: Option<usize>,

    /// Events committed per second while the subscribers listen: appeals
    /// submitted in `subscriptions`; in `mixed`, half submitted appeals and half
    /// transitions (triage, markSeen, resolve).
    #[arg(long, default_value_t = 20.0)]
    pub events_per_second: f64,

    /// Each server's database pool (`--database-pool-size`), and the floor's
    /// (default 16; with several replicas, what fits them all into PostgreSQL's
    /// `max_connections`, at most 24 each).
    #[arg(long)]
    pub pool_size: Option<u32>,

    /// How many `appeals serve` processes to run on the one database, each on its
    /// own port, started at the same moment (PostgreSQL only). The clients are
    /// spread over them round-robin, each client keeping to one.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,

    /// A hot standby of the `--postgres-url` server: its URL with any database
    /// name, which is replaced by the benchmark database's. The servers get the
    /// result as `--database-read-url`, and the `lists` scenario is measured
    /// twice, without it (primary) and with it (standby).
    #[arg(long, env = "APPEALS_BENCH_DATABASE_READ_URL")]
    pub database_read_url: Option<String>,

    /// The PostgreSQL server on which the benchmark creates (and then drops) a
    /// database of its own.
    #[arg(long, env = "APPEALS_BENCH_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres_url: String,

    /// Where to create the SQLite file (default: the system's temporary folder).
    #[arg(long)]
    pub sqlite_dir: Option<PathBuf>,

    /// Run this `appeals` binary instead of building the workspace's.
    #[arg(long)]
    pub server_binary: Option<PathBuf>,

    /// Keep the benchmark database after the run (its URL is printed).
    #[arg(long)]
    pub keep_database: bool,

    /// The seed of the generated region: the same seed gives the same appeals.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

impl DatabaseKind {
    pub fn name(self) -> &'static str {
        match self {
            DatabaseKind::Sqlite => "sqlite",
            DatabaseKind::Postgres => "postgres",
        }
    }
}

/// Every setting of a run, with the defaults of a full or a smoke run applied.
#[derive(Debug, Clone)]
pub struct Settings {
    pub db: DatabaseKind,
    pub appeals: usize,
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub scenarios: Vec<Scenario>,
    pub json: Option<PathBuf>,
    pub smoke: bool,
    pub subscribers: usize,
    pub events_per_second: f64,
    /// Each server's pool, as asked; `None` leaves it to [`crate::replicas::Budget`].
    pub pool_size: Option<u32>,
    pub replicas: usize,
    pub database_read_url: Option<String>,
    pub postgres_url: String,
    pub sqlite_dir: PathBuf,
    pub server_binary: Option<PathBuf>,
    pub keep_database: bool,
    pub seed: u64,
}

/// The fewest appeals a region may have: the scenarios sample from it.
const MIN_APPEALS: usize = 100;

/// The most replicas a run starts: each holds a pool of PostgreSQL connections.
const MAX_REPLICAS: usize = 8;

impl TryFrom<Options> for Settings {
    type Error = anyhow::Error;

    fn try_from(options: Options) -> anyhow::Result<Settings> {
        let smoke = options.smoke;
        let appeals = options.appeals.unwrap_or(if smoke { 2_000 } else { 100_000 });
        anyhow::ensure!(appeals >= MIN_APPEALS, "--appeals must be at least {MIN_APPEALS}");
        anyhow::ensure!(options.concurrency >= 1, "--concurrency must be at least 1");
        anyhow::ensure!(options.events_per_second > 0.0, "--events-per-second must be positive");
        anyhow::ensure!((1..=MAX_REPLICAS).contains(&options.replicas), "--replicas must be 1 to {MAX_REPLICAS}");
        let postgres = options.db == DatabaseKind::Postgres;
        anyhow::ensure!(postgres || options.replicas == 1, "--replicas above 1 needs --db postgres");
        anyhow::ensure!(postgres || options.database_read_url.is_none(), "--database-read-url needs --db postgres");
        let duration = Duration::from_secs(options.duration.unwrap_or(if smoke { 1 } else { 10 }).max(1));
        let scenarios =
            if options.scenarios.is_empty() { Scenario::value_variants().to_vec() } else { options.scenarios };
        Ok(Settings {
            db: options.db,
            appeals,
            concurrency: options.concurrency,
            // Enough to open the connections and warm the caches, not counted.
            warmup: (duration / 5).min(Duration::from_secs(2)),
            duration,
            scenarios,
            json: options.json,
            smoke,
            subscribers: options.subscribers.unwrap_or(if smoke { 20 } else { 1_000 }).max(1),
            events_per_second: options.events_per_second,
            pool_size: options.pool_size.map(|size| size.max(1)),
            replicas: options.replicas,
            database_read_url: options.database_read_url,
            postgres_url: options.postgres_url,
            sqlite_dir: options.sqlite_dir.unwrap_or_else(std::env::temp_dir),
            server_binary: options.server_binary,
            keep_database: options.keep_database,
            seed: options.seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Options::command().debug_assert();
    }

    #[test]
    fn smoke_runs_are_small_unless_told_otherwise() {
        let settings = |args: &[&str]| Settings::try_from(Options::parse_from(args)).unwrap();
        let full = settings(&["appeals-bench"]);
        assert_eq!((full.appeals, full.duration.as_secs(), full.subscribers), (100_000, 10, 1_000));
        assert_eq!(full.scenarios.len(), Scenario::value_variants().len());
        let smoke = settings(&["appeals-bench", "--smoke", "--db", "postgres"]);
        assert_eq!((smoke.appeals, smoke.duration.as_secs(), smoke.subscribers), (2_000, 1, 20));
        assert_eq!(smoke.db, DatabaseKind::Postgres);
        let chosen = settings(&["appeals-bench", "--smoke", "--appeals", "500", "--scenarios", "intake,list-deep"]);
        assert_eq!(chosen.appeals, 500);
        assert_eq!(chosen.scenarios, [Scenario::Intake, Scenario::ListDeep]);
    }

    #[test]
    fn replicas_and_a_standby_are_for_postgres_only() {
        let settings = |args: &[&str]| Settings::try_from(Options::parse_from(args));
        assert_eq!(settings(&["appeals-bench"]).unwrap().replicas, 1);
        let three = settings(&["appeals-bench", "--db", "postgres", "--replicas", "3"]).unwrap();
        assert_eq!((three.replicas, three.pool_size), (3, None));
        assert!(settings(&["appeals-bench", "--replicas", "2"]).is_err(), "SQLite has no replicas");
        assert!(settings(&["appeals-bench", "--database-read-url", "postgres://x/y"]).is_err());
        assert!(settings(&["appeals-bench", "--db", "postgres", "--replicas", "0"]).is_err());
    }
}
