//! A fake OpenTelemetry collector: an OTLP/HTTP receiver on a local port that
//! takes `POST /v1/traces` in protobuf, as the OTLP specification describes it,
//! decodes each export and keeps every span it held.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::{AnyValue as AnyValueMessage, KeyValue};
use prost::Message;
use tokio::net::TcpListener;

/// A span as the collector received it, its ids in lowercase hex.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// OTLP's `SpanKind`: 2 is server, 3 client.
    pub kind: i32,
    pub attributes: BTreeMap<String, String>,
    /// `service.name` of the resource that sent it.
    pub service_name: String,
    /// OTLP's status code: 2 is error.
    pub status_code: i32,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// The collector, on a port of its own, for as long as this lives.
pub struct Collector {
    /// `http://127.0.0.1:PORT`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    exports: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Collector {
    /// Starts a collector on a free port.
    pub async fn start() -> Collector {
        Collector::start_on("127.0.0.1:0").await.expect("a free port")
    }

    /// Starts a collector on `address`, if it can be bound.
    pub async fn start_on(address: &str) -> std::io::Result<Collector> {
        let listener = TcpListener::bind(address).await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let exports = Arc::new(Mutex::new(Vec::new()));
        let router = Router::new().route("/v1/traces", post(receive)).with_state(Arc::clone(&exports));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Collector { endpoint, exports, server })
    }

    /// How many exports have arrived.
    pub fn exports(&self) -> usize {
        self.exports.lock().expect("the exports").len()
    }

    /// Every export received, as its message's debug text: every name, string
    /// and attribute in it.
    pub fn everything_received(&self) -> String {
        format!("{:?}", self.exports.lock().expect("the exports"))
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let exports = self.exports.lock().expect("the exports");
        let mut spans = Vec::new();
        for export in exports.iter() {
            for resource_spans in &export.resource_spans {
                let resource = resource_spans.resource.as_ref().map(|resource| attributes(&resource.attributes));
                let service_name = resource.and_then(|resource| resource.get("service.name").cloned());
                for scope_spans in &resource_spans.scope_spans {
                    for span in &scope_spans.spans {
                        spans.push(ReceivedSpan {
                            trace_id: hex(&span.trace_id),
                            span_id: hex(&span.span_id),
                            parent_span_id: hex(&span.parent_span_id),
                            name: span.name.clone(),
                            kind: span.kind,
                            attributes: attributes(&span.attributes),
                            service_name: service_name.clone().unwrap_or_default(),
                            status_code: span.status.as_ref().map_or(0, |status| status.code),
                        });
                    }
                }
            }
        }
        spans
    }

    /// The spans received once `done` holds for them, or all received when
    /// `within` runs out.
    pub async fn wait_for(&self, within: Duration, done: impl Fn(&[ReceivedSpan]) -> bool) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + within;
        loop {
            let spans = self.spans();
            if done(&spans) || Instant::now() > deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(
    State(exports): State<Arc<Mutex<Vec<ExportTraceServiceRequest>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default();
    if content_type != "application/x-protobuf" {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "OTLP/HTTP in protobuf only").into_response();
    }
    let Ok(export) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, "not an ExportTraceServiceRequest").into_response();
    };
    exports.lock().expect("the exports").push(export);
    let answer = ExportTraceServiceResponse::default().encode_to_vec();
    ([(header::CONTENT_TYPE, "application/x-protobuf")], answer).into_response()
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter().map(|pair| (pair.key.clone(), pair.value.as_ref().map(text).unwrap_or_default())).collect()
}

/// An attribute's value as text: strings as they are, anything else as debug text.
fn text(value: &AnyValueMessage) -> String {
    match &value.value {
        Some(AnyValue::StringValue(text)) => text.clone(),
        Some(AnyValue::IntValue(number)) => number.to_string(),
        Some(AnyValue::BoolValue(flag)) => flag.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
