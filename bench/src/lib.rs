//! `appeals-bench`: how close the Appeals API comes to the database's own limit.
//!
//! One run loads a realistic region into a fresh database, starts the real
//! server (the workspace's `appeals` binary) on it, and measures each scenario
//! twice, one after the other on the same machine: through the API, by a closed
//! loop of HTTP clients at a fixed concurrency, and as the floor, the same SQL
//! statements and transactions sent straight to the database at the same
//! concurrency. The ratio of the two is what the API passes on of the
//! database's capacity; it holds even though the machine's speed drifts.
//!
//! This is a measuring tool, not part of the service: the floor is the one place
//! outside `appeals-storage` that writes to a database (the benchmark's own).
//!
//! Layout, in reading order:
//! - [`config`]: the command line.
//! - [`database`]: the benchmark's own SQLite file or PostgreSQL database.
//! - [`region`] and [`texts`]: the generated region and the Russian it is written in.
//! - [`server`]: the `appeals` child process and its CPU and memory.
//! - [`load`]: the closed-loop load generator and its latency percentiles.
//! - [`scenario`]: what is measured, and what the workers share.
//! - [`api`], [`floor`], [`subscriptions`]: the scenarios through GraphQL, straight
//!   to the database, and over WebSockets.
//! - [`report`]: the table and the JSON.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use appeals_storage::{PoolSettings, Store};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};

pub mod api;
pub mod config;
pub mod database;
pub mod floor;
pub mod load;
pub mod region;
pub mod report;
pub mod scenario;
pub mod server;
pub mod subscriptions;
pub mod texts;

use crate::api::{ApiWorker, GraphqlClient};
use crate::config::{Options, Settings};
use crate::database::BenchDatabase;
use crate::floor::{Floor, FloorWorker};
use crate::report::{Machine, Phase, RegionFacts, Report, RunSettings, ScenarioReport};
use crate::scenario::{Scenario, Shared};
use crate::server::Server;
use crate::subscriptions::Delivery;

/// Runs the benchmark; exits with status 1 if any request failed.
pub async fn run(options: Options) -> anyhow::Result<ExitCode> {
    let settings = Settings::try_from(options)?;
    let date = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let machine = machine();
    let database = BenchDatabase::create(&settings).await.context("creating the benchmark database")?;
    eprintln!("benchmark database: {}", database.url);
    let outcome = run_on(&settings, &database.url).await;
    if settings.keep_database {
        eprintln!("kept the benchmark database: {}", database.url);
    } else if let Err(error) = database.remove().await {
        eprintln!("could not remove the benchmark database: {error:#}");
    }
    let (region, scenarios) = outcome?;
    let report = Report {
        date,
        machine,
        run: RunSettings {
            database: settings.db.name(),
            appeals: settings.appeals,
            concurrency: settings.concurrency,
            pool_size: settings.pool_size,
            warmup_seconds: settings.warmup.as_secs_f64(),
            duration_seconds: settings.duration.as_secs_f64(),
            subscribers: settings.subscribers,
            events_per_second: settings.events_per_second,
            smoke: settings.smoke,
        },
        region,
        scenarios,
        load_average_after: load_average(),
    };
    println!("{}", report.table());
    if let Some(path) = &settings.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(if report.errors() == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn run_on(settings: &Settings, url: &str) -> anyhow::Result<(RegionFacts, Vec<ScenarioReport>)> {
    let binary = match &settings.server_binary {
        Some(binary) => binary.clone(),
        None => server::binary()?,
    };

    eprintln!("loading {} appeals", settings.appeals);
    let store = Store::open(url, PoolSettings::default()).await.context("opening the benchmark database")?;
    let region = region::load(&store, settings.appeals, settings.seed).await?;
    store.close().await?;
    let facts = RegionFacts {
        appeals: region.appeals,
        events: region.events,
        load_seconds: region.load_time.as_secs_f64(),
        appeals_per_second: region.appeals as f64 / region.load_time.as_secs_f64().max(1e-3),
    };
    eprintln!(
        "loaded {} appeals and {} events in {:.1} s ({:.0} appeals/s)",
        facts.appeals, facts.events, facts.load_seconds, facts.appeals_per_second
    );
    let pool = PoolSettings {
        max_connections: settings.pool_size,
        acquire_timeout: Duration::from_secs(30),
        statement_timeout: None,
    };
    let floor_db = appeals_storage::database::connect(url, pool).await?;
    analyze(&floor_db).await?;
    let floor = Floor::new(floor_db.clone());

    let log = std::env::temp_dir().join(format!("appeals-bench-server-{}.log", std::process::id()));
    let server = Server::start(&binary, url, settings.pool_size, log).await?;
    eprintln!("server {} on port {} (log: {})", binary.display(), server.port, server.log.display());
    let shared = Arc::new(Shared::new(region)?);
    let mut reports = Vec::with_capacity(settings.scenarios.len());
    for scenario in &settings.scenarios {
        let report = measure(*scenario, settings, &server, &shared, &floor).await?;
        eprintln!(
            "  {:<23} API {:>8.1} req/s, p99 {:>8.2} ms; floor {}",
            report.name,
            report.api.throughput,
            report.api.p99_ms,
            report
                .floor
                .as_ref()
                .map_or_else(|| "-".to_owned(), |f| format!("{:.1} req/s, p99 {:.2} ms", f.throughput, f.p99_ms)),
        );
        reports.push(report);
    }
    server.stop();
    if settings.scenarios.iter().any(|scenario| matches!(scenario, Scenario::Intake | Scenario::Transitions)) {
        floor.forget_running_totals().await?;
    }
    floor_db.close().await?;
    Ok((facts, reports))
}

/// One scenario: the API phase, with the server's memory and CPU read around it,
/// then the floor.
async fn measure(
    scenario: Scenario,
    settings: &Settings,
    server: &Server,
    shared: &Arc<Shared>,
    floor: &Floor,
) -> anyhow::Result<ScenarioReport> {
    let load_average = load_average();
    let (api_unread, floor_unread) = if scenario == Scenario::Transitions {
        let (api, floor) = shared.split_unread();
        (Some(api), Some(floor))
    } else {
        (None, None)
    };
    let watch = server.watch();
    let server_statements_before = server.statements().await;
    let peak_is_per_scenario = watch.reset_peak_memory();
    let api = if scenario == Scenario::Subscriptions {
        let delivery = Delivery {
            subscribers: settings.subscribers,
            events_per_second: settings.events_per_second,
            duration: settings.duration,
        };
        subscriptions::measure(&server.base_url(), shared, &delivery, watch).await?
    } else {
        let client = GraphqlClient::new(&server.base_url(), settings.concurrency)?;
        let workers = (0..settings.concurrency)
            .map(|index| ApiWorker::new(scenario, Arc::clone(shared), client.clone(), index, api_unread.clone()))
            .collect();
        load::drive(workers, settings.warmup, settings.duration, Some(watch)).await
    };
    let peak_rss_bytes = watch.usage()?.peak_rss_bytes;
    let api_statements = per_request(server_statements_before, server.statements().await, api.answered_in_phase);
    let floor_statements_before = floor.statements();
    let floor_measured = if scenario.has_floor() {
        let workers = (0..settings.concurrency)
            .map(|index| FloorWorker::new(scenario, Arc::clone(shared), floor.clone(), index, floor_unread.clone()))
            .collect();
        Some(load::drive(workers, settings.warmup, settings.duration, None).await)
    } else {
        None
    };
    let floor_statements = floor_measured.as_ref().and_then(|measured| {
        per_request(Some(floor_statements_before), Some(floor.statements()), measured.answered_in_phase)
    });
    let floor = floor_measured;
    let cpu_per_1000 = api
        .server_cpu_seconds
        .filter(|_| api.answered_in_phase > 0)
        .map(|cpu| cpu * 1e6 / api.answered_in_phase as f64);
    let api = Phase { statements_per_request: api_statements, ..Phase::from(&api) };
    let floor = floor.as_ref().map(|floor| Phase { statements_per_request: floor_statements, ..Phase::from(floor) });
    Ok(ScenarioReport {
        name: scenario.name(),
        ratio: floor.as_ref().filter(|floor| floor.throughput > 0.0).map(|floor| api.throughput / floor.throughput),
        server_peak_rss_mib: peak_is_per_scenario.then(|| peak_rss_bytes as f64 / (1024.0 * 1024.0)),
        server_cpu_ms_per_1000: cpu_per_1000,
        load_average,
        api,
        floor,
    })
}

/// Statements per answered request between two readings of a counter.
fn per_request(before: Option<u64>, after: Option<u64>, answered: u64) -> Option<f64> {
    let (before, after) = (before?, after?);
    (answered > 0).then(|| after.saturating_sub(before) as f64 / answered as f64)
}

/// Gives the planner statistics on the freshly loaded tables, as a database that
/// has been in use for a year would have.
async fn analyze(db: &DatabaseConnection) -> anyhow::Result<()> {
    let started = Instant::now();
    let statement = match db.get_database_backend() {
        DbBackend::Postgres => "VACUUM ANALYZE",
        _ => "ANALYZE",
    };
    db.execute_unprepared(statement).await.with_context(|| format!("running {statement}"))?;
    eprintln!("{statement} took {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn machine() -> Machine {
    let memory_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|info| {
        info.lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
    });
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|commit| commit.trim().to_owned());
    Machine {
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        memory_gib: memory_kib.unwrap_or_default() / (1024.0 * 1024.0),
        load_average_before: load_average(),
        commit,
        profile: if cfg!(debug_assertions) { "debug" } else { "release" },
    }
}

/// The 1-minute load average.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}
