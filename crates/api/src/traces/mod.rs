//! OpenTelemetry traces, configured by the standard `OTEL_*` variables and off
//! unless an OTLP endpoint is given: then nothing below runs, and no exporter,
//! layer or extension exists.
//!
//! When on, each HTTP request is a server span that continues the caller's W3C
//! `traceparent`; each GraphQL operation a span named by the semantic
//! conventions ([`operation`]); each SQL statement ([`statements`]) and each
//! call to a platform's API (`delivery.rs`) a child span. Spans carry names,
//! kinds, error codes and the shapes of statements, never a variable's value, a
//! query string or an appeal's text. JSON log lines inside a span carry its
//! `trace_id` and `span_id` ([`log_ids`]). Spans leave in batches over OTLP/HTTP
//! ([`export`]) and are flushed when the server stops.

pub mod export;
pub mod log_ids;
pub mod operation;
mod statements;

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Status, TraceContextExt, TracerProvider};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::registry::LookupSpan;

use crate::exit::Failure;

/// How long the spans still queued at shutdown are given to leave.
const FLUSH_DEADLINE: Duration = Duration::from_secs(5);
/// The OTLP exporter's timeout when `OTEL_EXPORTER_OTLP_TIMEOUT` says nothing.
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The tracer of this process, once traces are on.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// The traces of this process: the provider, whose batch exporter sends spans
/// to the OTLP endpoint, and the tracer the spans are made with.
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

/// Whether traces are on in this process.
pub fn are_on() -> bool {
    TRACER.get().is_some()
}

impl Traces {
    /// Reads the `OTEL_*` variables and, if they name an endpoint, starts the
    /// exporter. `None` when no endpoint is set, `OTEL_SDK_DISABLED` is `true` or
    /// `OTEL_TRACES_EXPORTER` is `none`. A protocol or exporter this build cannot
    /// speak is a usage error. Must run on the Tokio runtime, which carries the
    /// exports.
    pub fn start_from_env() -> anyhow::Result<Option<Traces>> {
        let variable = |name: &str| std::env::var(name).ok().map(|value| value.trim().to_owned());
        let set = |name: &str| variable(name).is_some_and(|value| !value.is_empty());
        if variable("OTEL_SDK_DISABLED").is_some_and(|value| value.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match variable("OTEL_TRACES_EXPORTER").as_deref() {
            None | Some("" | "otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                return Err(Failure::Usage(format!(
                    "OTEL_TRACES_EXPORTER={other} is not supported: traces go over OTLP (`otlp`) or nowhere (`none`)"
                ))
                .into());
            }
        }
        if !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_ENDPOINT") {
            return Ok(None);
        }
        let protocol = match variable("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .filter(|value| !value.is_empty())
            .or_else(|| variable("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref()
        {
            None | Some("" | "http/protobuf") => Protocol::HttpBinary,
            Some("http/json") => Protocol::HttpJson,
            Some(other) => {
                return Err(Failure::Usage(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL={other} is not supported: this server exports over \
                     `http/protobuf` (the default) or `http/json`, to the collector's OTLP/HTTP port (4318)"
                ))
                .into());
            }
        };
        let timeout = variable("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| variable("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .and_then(|millis| millis.parse().ok())
            .map_or(DEFAULT_EXPORT_TIMEOUT, Duration::from_millis);
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_timeout(timeout)
            .with_http_client(export::ExportClient::new(timeout)?)
            .build()
            .map_err(|error| Failure::Usage(format!("cannot export traces: {error}")))?;
        let provider = SdkTracerProvider::builder().with_resource(resource()).with_batch_exporter(exporter).build();
        let scope = InstrumentationScope::builder("appeals").with_version(env!("CARGO_PKG_VERSION")).build();
        let tracer = provider.tracer_with_scope(scope);
        let _ = TRACER.set(tracer.clone());
        appeals_storage::statements::observe(statements::trace_statement);
        Ok(Some(Traces { provider, tracer }))
    }

    /// The layer that turns `tracing` spans into OpenTelemetry spans. It records
    /// the spans' own fields and no more: no source locations, threads or busy
    /// times, which would cost on every poll and say little.
    pub fn layer<S>(&self) -> OpenTelemetryLayer<S, SdkTracer>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer.clone())
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_level(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
    }

    /// Sends the spans still queued, and stops the exporter; waits at most a few
    /// seconds for the endpoint.
    pub async fn shutdown(self) {
        let provider = self.provider;
        // The SDK blocks while it flushes; the export itself runs on the runtime.
        let flushing = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_DEADLINE));
        match tokio::time::timeout(FLUSH_DEADLINE + Duration::from_secs(1), flushing).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "the last spans may not have been exported"),
            Ok(Err(_)) | Err(_) => tracing::warn!("the last spans were not exported in time"),
        }
    }
}

/// Makes `span`, a request's, a server span named by its method and route, the
/// child of the caller's `traceparent` if it sent one. Does nothing when traces
/// are off.
pub fn continue_trace(span: &Span, method: &str, route: Option<&str>, headers: &HeaderMap) {
    if !are_on() {
        return;
    }
    let caller = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if caller.span().span_context().is_valid() {
        let _ = span.set_parent(caller);
    }
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    span.record("otel.name", name.as_str());
    span.record("otel.kind", "server");
    span.set_attribute("http.request.method", method.to_owned());
    if let Some(route) = route {
        span.set_attribute("http.route", route.to_owned());
    }
}

/// The span a WebSocket's operations run under, to be captured while the
/// upgrade request is handled: that request's span when traces are on, so that
/// the operations join its trace; none when they are off, which leaves the
/// socket's log lines as they were.
pub fn socket_parent() -> Span {
    if are_on() { Span::current() } else { Span::none() }
}

/// Records a request's status on its span; a 5xx marks it failed.
pub fn record_response(span: &Span, status: StatusCode) {
    if !are_on() {
        return;
    }
    span.set_attribute("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.set_status(Status::error(""));
    }
}

/// `service.name` is `OTEL_SERVICE_NAME` (or `service.name` in
/// `OTEL_RESOURCE_ATTRIBUTES`), else `appeals`.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    let builder = Resource::builder().with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if named { builder.build() } else { builder.with_service_name("appeals").build() }
}
