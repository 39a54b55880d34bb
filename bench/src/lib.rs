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
//! - [`server`] and [`replicas`]: the `appeals` child processes, their CPU and
//!   memory, and the database connections they share.
//! - [`load`]: the closed-loop load generator and its latency percentiles.
//! - [`scenario`]: what is measured, and what the workers share.
//! - [`api`], [`floor`], [`subscriptions`]: the scenarios through GraphQL, straight
//!   to the database, and over WebSockets; [`mixed`]: all of them at once, over
//!   the replicas, and the reads a standby serves.
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
pub mod mixed;
pub mod region;
pub mod replicas;
pub mod report;
pub mod scenario;
pub mod server;
pub mod subscriptions;
pub mod texts;

use crate::api::{ApiWorker, GraphqlClient};
use crate::config::{DatabaseKind, Options, Settings};
use crate::database::BenchDatabase;
use crate::floor::{Floor, FloorWorker};
use crate::mixed::{Mix, ReadMix, Reader};
use crate::replicas::{Budget, Replicas};
use crate::report::{Machine, Phase, RegionFacts, Report, RunSettings, ScenarioReport};
use crate::scenario::{Scenario, Shared};
use crate::server::ServerDatabase;
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
    let Outcome { region, scenarios, budget, standby } = outcome?;
    let report = Report {
        date,
        machine,
        run: RunSettings {
            database: settings.db.name(),
            appeals: settings.appeals,
            concurrency: settings.concurrency,
            pool_size: budget.pool_per_server,
            warmup_seconds: settings.warmup.as_secs_f64(),
            duration_seconds: settings.duration.as_secs_f64(),
            subscribers: settings.subscribers,
            events_per_second: settings.events_per_second,
            smoke: settings.smoke,
            replicas: settings.replicas,
            connections: Some(budget),
            database_read_url: standby,
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

/// What a run measured, and on what.
struct Outcome {
    region: RegionFacts,
    scenarios: Vec<ScenarioReport>,
    budget: Budget,
    /// The standby's URL for the benchmark database, when reads went there.
    standby: Option<String>,
}

async fn run_on(settings: &Settings, url: &str) -> anyhow::Result<Outcome> {
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
    let floor_runs = settings.scenarios.iter().any(|scenario| scenario.has_floor());
    let budget = match settings.db {
        DatabaseKind::Sqlite => Budget::unlimited(settings.pool_size),
        DatabaseKind::Postgres => {
            let limits = replicas::limits(&settings.postgres_url).await?;
            Budget::plan(limits, settings.replicas, settings.pool_size, floor_runs)?
        }
    };
    eprintln!("connections: {}", budget.describe());
    let pool = PoolSettings {
        max_connections: budget.floor_pool,
        acquire_timeout: Duration::from_secs(30),
        statement_timeout: None,
    };
    let floor_db = appeals_storage::database::connect(url, pool).await?;
    analyze(&floor_db).await?;
    let floor = Floor::new(floor_db.clone());

    let standby = match &settings.database_read_url {
        Some(read_url) => {
            let standby = database::on_standby(read_url, url);
            eprintln!("waiting for the standby to replay the region: {standby}");
            let waited = database::wait_for_standby(url, &standby).await?;
            eprintln!("the standby caught up in {:.1} s", waited.as_secs_f64());
            Some(standby)
        }
        None => None,
    };
    let on_primary = ServerDatabase { url: url.to_owned(), read_url: None, pool_size: budget.pool_per_server };
    let shared = Arc::new(Shared::new(region)?);
    let mut reports = Vec::with_capacity(settings.scenarios.len());
    // Lists against the primary first, on servers without the standby, stopped
    // before the others start (the connections are counted for one set).
    if standby.is_some() && settings.scenarios.contains(&Scenario::Lists) {
        let servers = Replicas::start(&binary, &on_primary, settings.replicas, "primary").await?;
        let measured = measure(Scenario::Lists, settings, &servers, &shared, &floor, Some("primary")).await?;
        report_progress(&measured);
        reports.extend(measured);
        servers.stop();
    }
    let database = ServerDatabase { read_url: standby.clone(), ..on_primary };
    let label = if standby.is_some() { "standby" } else { "main" };
    let servers = Replicas::start(&binary, &database, settings.replicas, label).await?;
    for scenario in &settings.scenarios {
        let on = standby.as_ref().filter(|_| *scenario == Scenario::Lists).map(|_| "standby");
        let measured = measure(*scenario, settings, &servers, &shared, &floor, on).await?;
        report_progress(&measured);
        reports.extend(measured);
    }
    servers.stop();
    if settings.scenarios.iter().any(|scenario| matches!(scenario, Scenario::Intake | Scenario::Transitions)) {
        floor.forget_running_totals().await?;
    }
    floor_db.close().await?;
    Ok(Outcome { region: facts, scenarios: reports, budget, standby })
}

fn report_progress(reports: &[ScenarioReport]) {
    for report in reports {
        eprintln!(
            "  {:<27} API {:>8.1} req/s, p99 {:>8.2} ms; floor {}",
            report.name,
            report.api.throughput,
            report.api.p99_ms,
            report
                .floor
                .as_ref()
                .map_or_else(|| "-".to_owned(), |f| format!("{:.1} req/s, p99 {:.2} ms", f.throughput, f.p99_ms)),
        );
    }
}

/// One scenario: the API phase, with the servers' memory and CPU read around it,
/// then the floor. A scenario of several kinds of request (`mixed`, `lists`)
/// gives a row per kind, named `scenario/kind` (and `@on`, where given).
async fn measure(
    scenario: Scenario,
    settings: &Settings,
    servers: &Replicas,
    shared: &Arc<Shared>,
    floor: &Floor,
    on: Option<&str>,
) -> anyhow::Result<Vec<ScenarioReport>> {
    let load_average = load_average();
    let (api_unread, floor_unread) = if scenario == Scenario::Transitions {
        let (api, floor) = shared.split_unread();
        (Some(api), Some(floor))
    } else {
        (None, None)
    };
    let watch = servers.watch();
    let base_urls = servers.base_urls();
    let server_statements_before = servers.statements().await;
    let peak_is_per_scenario = watch.reset_peak_memory();
    let mut delivery = None;
    let api = match scenario {
        Scenario::Subscriptions => {
            let delivery = Delivery {
                subscribers: settings.subscribers,
                events_per_second: settings.events_per_second,
                duration: settings.duration,
            };
            subscriptions::measure(&base_urls, shared, &delivery, watch.clone()).await?
        }
        Scenario::Mixed => {
            let mix = Mix {
                subscribers: settings.subscribers,
                events_per_second: settings.events_per_second,
                readers: settings.concurrency,
                warmup: settings.warmup,
                duration: settings.duration,
            };
            let mixed = mixed::measure(&base_urls, shared, &mix, watch.clone()).await?;
            delivery = Some(mixed.delivery);
            mixed.requests
        }
        Scenario::Lists => {
            let clients = clients(&base_urls, settings.concurrency)?;
            let workers = (0..settings.concurrency)
                .map(|index| {
                    let client = clients[index % clients.len()].clone();
                    Reader::new(Arc::clone(shared), client, index, ReadMix::WithSearch)
                })
                .collect();
            let mut measured = load::drive(workers, settings.warmup, settings.duration, Some(watch.clone())).await;
            measured.kinds.sort_by_key(|(kind, _)| mixed::KINDS.iter().position(|known| known == kind));
            measured
        }
        _ => {
            let clients = clients(&base_urls, settings.concurrency)?;
            let workers = (0..settings.concurrency)
                .map(|index| {
                    let client = clients[index % clients.len()].clone();
                    ApiWorker::new(scenario, Arc::clone(shared), client, index, api_unread.clone())
                })
                .collect();
            load::drive(workers, settings.warmup, settings.duration, Some(watch.clone())).await
        }
    };
    let peak_rss_bytes = watch.usage()?.peak_rss_bytes;
    let server_peak_rss_mib = peak_is_per_scenario.then(|| peak_rss_bytes as f64 / (1024.0 * 1024.0));
    let api_statements = per_request(server_statements_before, servers.statements().await, api.answered_in_phase);
    let name = |kind: Option<&str>| {
        let kind = match (scenario, kind) {
            (Scenario::Lists, Some("lists")) => Some("filters"),
            (_, kind) => kind,
        };
        let mut name = scenario.name().to_owned();
        if let Some(kind) = kind {
            name = format!("{name}/{kind}");
        }
        if let Some(on) = on {
            name = format!("{name} @{on}");
        }
        name
    };
    if !api.kinds.is_empty() {
        let mut rows: Vec<ScenarioReport> = api
            .kinds
            .iter()
            .map(|(kind, measured)| ScenarioReport {
                name: name(Some(kind)),
                api: Phase::from(measured),
                floor: None,
                ratio: None,
                server_peak_rss_mib,
                server_cpu_ms_per_1000: None,
                load_average,
                delivery: None,
            })
            .collect();
        if let Some(delivery) = delivery {
            let tally = &delivery.tally;
            let received = tally.once + tally.duplicated;
            let errors = delivery.errors();
            let first_error = (errors > 0).then(|| {
                format!(
                    "{} of {} owed deliveries missing, {} extra copies",
                    tally.missing, tally.expected, tally.extra_copies
                )
            });
            let latency = delivery.from_answer_ms;
            rows.push(ScenarioReport {
                name: name(Some("delivery")),
                api: Phase {
                    requests: received,
                    errors,
                    first_error,
                    seconds: delivery.seconds,
                    throughput: received as f64 / delivery.seconds.max(1e-9),
                    p50_ms: latency.p50,
                    p95_ms: latency.p95,
                    p99_ms: latency.p99,
                    max_ms: latency.max,
                    ran_out: false,
                    stretched: false,
                    from_request_ms: None,
                    statements_per_request: None,
                },
                floor: None,
                ratio: None,
                server_peak_rss_mib,
                server_cpu_ms_per_1000: None,
                load_average,
                delivery: Some(delivery),
            });
        }
        return Ok(rows);
    }
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
    Ok(vec![ScenarioReport {
        name: name(None),
        ratio: floor.as_ref().filter(|floor| floor.throughput > 0.0).map(|floor| api.throughput / floor.throughput),
        server_peak_rss_mib,
        server_cpu_ms_per_1000: cpu_per_1000,
        load_average,
        api,
        floor,
        delivery: None,
    }])
}

/// One HTTP client per replica, sharing out `concurrency` connections.
fn clients(base_urls: &[String], concurrency: usize) -> anyhow::Result<Vec<GraphqlClient>> {
    base_urls.iter().map(|url| GraphqlClient::new(url, concurrency.div_ceil(base_urls.len()))).collect()
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
