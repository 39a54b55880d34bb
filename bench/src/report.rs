//! The report: per scenario, the API's throughput and latency, the floor's, their
//! ratio, and what the server spent; as a table on the terminal and as JSON.

use serde::Serialize;

use crate::load::{Latency, Measurement};
use crate::mixed::DeliveryReport;
use crate::replicas::Budget;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When the run started, RFC 3339.
    pub date: String,
    pub machine: Machine,
    pub run: RunSettings,
    pub region: RegionFacts,
    pub scenarios: Vec<ScenarioReport>,
    /// The 1-minute load average when the run ended.
    pub load_average_after: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    /// The 1-minute load average before the region was loaded.
    pub load_average_before: Option<f64>,
    pub commit: Option<String>,
    /// `release` or `debug`: the cargo profile of the bench and the server.
    pub profile: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSettings {
    pub database: &'static str,
    pub appeals: usize,
    pub concurrency: usize,
    pub pool_size: u32,
    pub warmup_seconds: f64,
    pub duration_seconds: f64,
    pub subscribers: usize,
    pub events_per_second: f64,
    pub smoke: bool,
    pub replicas: usize,
    /// How the database's connections were shared out.
    pub connections: Option<Budget>,
    /// The standby the servers read from (`--database-read-url`), if any.
    pub database_read_url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegionFacts {
    pub appeals: usize,
    pub events: usize,
    pub load_seconds: f64,
    pub appeals_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// The scenario, or `scenario/kind` for a scenario of several kinds of request.
    pub name: String,
    pub api: Phase,
    pub floor: Option<Phase>,
    /// API throughput over the floor's.
    pub ratio: Option<f64>,
    /// The server's peak resident memory during the API phase.
    pub server_peak_rss_mib: Option<f64>,
    /// Server CPU time (user + system) per 1,000 requests of the API phase (per
    /// 1,000 deliveries for subscriptions).
    pub server_cpu_ms_per_1000: Option<f64>,
    /// The 1-minute load average when the scenario started.
    pub load_average: Option<f64>,
    /// The mixed scenario's subscribers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The workers ran out of fresh appeals before the time was up.
    pub ran_out: bool,
    /// No request was answered within the measured time, so it was stretched to
    /// the last answer.
    pub stretched: bool,
    /// Subscriptions only: delivery latency counted from sending the mutation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_request_ms: Option<Latency>,
    /// SQL statements sent to the database per answered request (`BEGIN` and
    /// `COMMIT` not counted), over the whole phase.
    pub statements_per_request: Option<f64>,
}

impl From<&Measurement> for Phase {
    fn from(measurement: &Measurement) -> Phase {
        Phase {
            requests: measurement.requests,
            errors: measurement.errors,
            first_error: measurement.first_error.clone(),
            seconds: measurement.elapsed.as_secs_f64(),
            throughput: measurement.throughput(),
            p50_ms: measurement.latency.p50,
            p95_ms: measurement.latency.p95,
            p99_ms: measurement.latency.p99,
            max_ms: measurement.latency.max,
            ran_out: measurement.exhausted,
            stretched: measurement.stretched,
            from_request_ms: measurement.latency_from_request,
            statements_per_request: None,
        }
    }
}

impl Report {
    /// Failed requests and, where they count, lost deliveries.
    pub fn errors(&self) -> u64 {
        self.scenarios.iter().map(|s| s.api.errors + s.floor.as_ref().map_or(0, |floor| floor.errors)).sum()
    }

    /// The table, one scenario a row.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let run = &self.run;
        let replicas = match run.replicas {
            1 => String::new(),
            n => format!(" · {n} replicas"),
        };
        let pool = run.connections.map_or_else(String::new, |budget| format!(" · pool {}", budget.pool_per_server));
        let standby = if run.database_read_url.is_some() { " · reads on a standby" } else { "" };
        out.push_str(&format!(
            "{} · {} appeals{replicas}{pool}{standby} · concurrency {} · {} s per phase · {} · {} cores, {:.0} GiB · load {} → {}\n",
            run.database,
            run.appeals,
            run.concurrency,
            run.duration_seconds,
            self.machine.profile,
            self.machine.cores,
            self.machine.memory_gib,
            show(self.machine.load_average_before, 2),
            show(self.load_average_after, 2),
        ));
        out.push_str(&format!(
            "{:<23} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>11} {:>9} {:>8} {:>7}\n",
            "scenario",
            "API req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "floor r/s",
            "fl p99",
            "API/fl",
            "SQL API/fl",
            "peak MiB",
            "CPU ms/k",
            "errors",
        ));
        for scenario in &self.scenarios {
            let floor = scenario.floor.as_ref();
            let errors = scenario.api.errors + floor.map_or(0, |floor| floor.errors);
            out.push_str(&format!(
                "{:<23} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>9} {:>8} {:>8} {:>11} {:>9} {:>8} {:>7}{}\n",
                scenario.name,
                scenario.api.throughput,
                scenario.api.p50_ms,
                scenario.api.p95_ms,
                scenario.api.p99_ms,
                show(floor.map(|floor| floor.throughput), 1),
                show(floor.map(|floor| floor.p99_ms), 2),
                scenario.ratio.map_or_else(|| "-".to_owned(), |ratio| format!("{:.0}%", ratio * 100.0)),
                format!(
                    "{}/{}",
                    show(scenario.api.statements_per_request, 1),
                    show(floor.and_then(|floor| floor.statements_per_request), 1)
                ),
                show(scenario.server_peak_rss_mib, 1),
                show(scenario.server_cpu_ms_per_1000, 0),
                errors,
                notes(scenario),
            ));
        }
        if let Some(budget) = &run.connections {
            out.push_str(&format!("connections: {}\n", budget.describe()));
        }
        for delivery in self.scenarios.iter().filter_map(|scenario| scenario.delivery.as_ref()) {
            out.push_str(&delivery.describe());
        }
        for scenario in &self.scenarios {
            for (phase, measured) in [("API", Some(&scenario.api)), ("floor", scenario.floor.as_ref())] {
                if let Some(error) = measured.and_then(|measured| measured.first_error.as_ref()) {
                    out.push_str(&format!("{} ({phase}): first error: {error}\n", scenario.name));
                }
            }
        }
        out
    }
}

/// Why a row's measured time differs from the others'.
fn notes(scenario: &ScenarioReport) -> &'static str {
    let phases = || std::iter::once(&scenario.api).chain(scenario.floor.as_ref());
    if phases().any(|phase| phase.stretched) {
        "  (slower than the measured time: stretched to the last answer)"
    } else if phases().any(|phase| phase.ran_out) {
        "  (ran out of unread appeals)"
    } else {
        ""
    }
}

fn show(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.decimals$}"))
}
