//! Logs and metrics. Logs are structured (tracing), human-readable or JSON; they
//! carry request ids, never tokens or appeal texts. Metrics are Prometheus text at
//! `/metrics`. Traces ([`crate::traces`]) join the logs' subscriber when they are on.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;
use crate::traces::Traces;
use crate::traces::log_ids::{self, WithTraceIds};

/// Installs the global log subscriber at `default_level` (`RUST_LOG` overrides
/// it), with the layer of `traces` if they are on. Spans are at `info`, so a
/// level above it leaves traces empty.
pub fn init_logging(format: LogFormat, default_level: &str, traces: Option<&Traces>) {
    // PostgreSQL's notices ("relation already exists, skipping" as migrations
    // check their table) are no news to an operator; `RUST_LOG` can ask for them.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},sqlx::postgres::notice=warn")));
    // Colours only for a terminal: a log file or journald gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let lines = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr);
    let json = || tracing_subscriber::fmt::format().json().flatten_event(true);
    let lines = match (format, traces.is_some()) {
        (LogFormat::Human, _) => lines.boxed(),
        (LogFormat::Json, false) => lines.json().event_format(json()).boxed(),
        (LogFormat::Json, true) => lines.json().event_format(WithTraceIds::new(json())).boxed(),
    };
    let logs = tracing_subscriber::registry().with(filter).with(lines);
    let _ = match traces {
        None => logs.try_init(),
        Some(traces) => {
            let subscriber = tracing::Dispatch::new(logs.with(traces.layer()));
            log_ids::remember(&subscriber);
            subscriber.try_init()
        }
    };
}

/// The process's metrics recorder, installed on first use. Every server in the
/// process (tests start several) shares it.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_buckets(LATENCY_BUCKETS) {
            Ok(with_buckets) => with_buckets,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may be installed already (a host embedding this
        // library); then this one still renders, it just records nothing global.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}
