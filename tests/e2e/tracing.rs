//! OpenTelemetry traces, sent by the real `appeals` binary to a collector the
//! test starts ([`Collector`]) and decoded from OTLP/HTTP protobuf: the caller's
//! `traceparent` is continued, the operation has a span named by the semantic
//! conventions with its statements as children, a reply sent to a platform is a
//! client span that names no token, and nothing that was sent in a variable or
//! an appeal reaches a span or a log line. The JSON log lines of a request
//! carry its trace and span ids. Spans still queued at a graceful stop are
//! sent; with no endpoint nothing is sent and the log is as it was.

use std::time::Duration;

use appeals_storage::testing::{Backend, ThrowawayDatabase, on_both_databases};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::channels::TELEGRAM_MESSAGE;
use crate::support::collector::{Collector, ReceivedSpan};
use crate::support::platforms::FakePlatforms;
use crate::support::process::{ServerProcess, describe, random_u64, run_command, run_command_with_env};

on_both_databases!(
    a_request_continues_the_callers_trace_with_its_operation_and_statements,
    a_reply_sent_to_a_platform_is_a_client_span_that_names_no_token,
    spans_still_queued_are_sent_when_the_server_stops,
    a_subscription_continues_the_trace_of_its_upgrade,
    with_no_endpoint_nothing_is_exported_and_the_log_is_as_before,
);

const SERVICE: &str = "appeals-under-test";
const SUBMIT: &str = "mutation($input: SubmitAppealInput!) { submitAppeal(input: $input) { created appeal { id } } }";
const FIND: &str = "query FindAppeals($text: String) { appeals(filter: { text: $text }, first: 5) { totalCount \
                    edges { node { id status } } } }";
const TELEGRAM_SECRET: &str = "tg-webhook-Secret-Tr4c";
const TELEGRAM_TOKEN: &str = "7000000002:AAH-traced-bot-token-Vb7";
/// OTLP's `SpanKind`.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;
/// OTLP's status code of a failed span.
const ERROR: i32 = 2;

/// A caller's W3C trace context.
struct Traceparent {
    trace_id: String,
    parent_id: String,
}

impl Traceparent {
    fn new() -> Traceparent {
        Traceparent {
            trace_id: uuid::Uuid::new_v4().simple().to_string(),
            parent_id: format!("{:016x}", random_u64() | 1),
        }
    }

    fn header(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.parent_id)
    }
}

/// A migrated database with an intake user and the head of Tomsk.
struct Prepared {
    _database: ThrowawayDatabase,
    url: String,
    intake: String,
    head: String,
}

async fn prepare(backend: Backend) -> Option<Prepared> {
    let database = ThrowawayDatabase::create(backend).await?;
    let url = database.url.clone();
    let migrated = run_command(&url, &["migrate"]);
    assert!(migrated.status.success(), "migrate: {}", describe(&migrated));
    let token = |args: &[&str]| {
        let output = run_command(&url, args);
        assert!(output.status.success(), "{args:?}: {}", describe(&output));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let intake = token(&["user", "add", "--name", "Приёмная", "--role", "intake", "--quiet"]);
    let head = token(&["user", "add", "--name", "Глава", "--role", "head", "--municipality", "tomsk", "--quiet"]);
    Some(Prepared { _database: database, url, intake, head })
}

/// The variables that turn traces on, to `collector`, sampling everything and
/// exporting a batch every `delay_ms`.
fn traced<'a>(collector: &'a Collector, delay_ms: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_TRACES_SAMPLER", "always_on"),
        ("OTEL_SERVICE_NAME", SERVICE),
        ("OTEL_BSP_SCHEDULE_DELAY", delay_ms),
        // The request's own log lines (tower-http's, at debug) to check for ids.
        ("RUST_LOG", "info,tower_http=debug"),
    ]
}

/// Submits an appeal whose text holds `marker`, then looks for it by that text
/// as `FindAppeals`, under `caller`'s trace.
async fn submit_and_find(server: &ServerProcess, prepared: &Prepared, marker: &str, caller: Option<&Traceparent>) {
    let text = format!("Во дворе по улице Мира яма, отметка {marker}");
    let input = json!({ "input": { "municipalityCode": "tomsk", "channel": "WEB", "text": text } });
    let submitted = server.graphql(&prepared.intake, SUBMIT, input).await;
    assert_eq!(submitted["data"]["submitAppeal"]["created"], true, "{submitted}");
    let mut request = reqwest::Client::new()
        .post(format!("{}/graphql", server.address()))
        .bearer_auth(&prepared.head)
        .json(&json!({ "query": FIND, "operationName": "FindAppeals", "variables": { "text": marker } }));
    if let Some(caller) = caller {
        request = request.header("traceparent", caller.header());
    }
    let found: Value = request.send().await.expect("an answer").json().await.expect("JSON");
    assert_eq!(found["data"]["appeals"]["totalCount"], 1, "{found}");
}

fn new_marker() -> String {
    format!("marker-{}", uuid::Uuid::new_v4().simple())
}

/// The server's log, one JSON object per line.
fn json_lines(server: &ServerProcess) -> Vec<Value> {
    server.log().lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
}

fn find(spans: &[ReceivedSpan], what: impl Fn(&ReceivedSpan) -> bool) -> Option<&ReceivedSpan> {
    spans.iter().find(|span| what(span))
}

async fn a_request_continues_the_callers_trace_with_its_operation_and_statements(backend: Backend) {
    let Some(prepared) = prepare(backend).await else { return };
    let collector = Collector::start().await;
    let server =
        ServerProcess::start_with_env(&prepared.url, &["--log-format", "json"], &traced(&collector, "100")).await;
    let marker = new_marker();
    let caller = Traceparent::new();
    submit_and_find(&server, &prepared, &marker, Some(&caller)).await;
    let broken = reqwest::Client::new()
        .post(format!("{}/graphql", server.address()))
        .bearer_auth(&prepared.head)
        .json(&json!({ "query": "query Broken { noSuchField }", "operationName": "Broken" }))
        .send()
        .await
        .expect("an answer");
    assert_eq!(broken.status(), 200);

    let in_trace = |span: &ReceivedSpan| span.trace_id == caller.trace_id;
    let spans = collector
        .wait_for(Duration::from_secs(20), |spans| {
            let operation = find(spans, |span| in_trace(span) && span.attribute("graphql.operation.name").is_some());
            let request = find(spans, |span| in_trace(span) && span.kind == SERVER);
            let broken = find(spans, |span| span.attribute("graphql.operation.name") == Some("Broken"));
            operation.is_some_and(|operation| spans.iter().any(|span| span.parent_span_id == operation.span_id))
                && request.is_some()
                && broken.is_some()
        })
        .await;
    let everything = collector.everything_received();

    let request = find(&spans, |span| in_trace(span) && span.kind == SERVER)
        .unwrap_or_else(|| panic!("no server span in the caller's trace: {spans:#?}"));
    assert_eq!(request.parent_span_id, caller.parent_id, "the request continues the caller's span: {request:?}");
    assert_eq!(request.name, "POST /graphql", "{request:?}");
    assert_eq!(request.attribute("http.response.status_code"), Some("200"), "{request:?}");
    assert_eq!(request.service_name, SERVICE, "{request:?}");

    let operation = find(&spans, |span| in_trace(span) && span.attribute("graphql.operation.name").is_some())
        .unwrap_or_else(|| panic!("no operation span in the caller's trace: {spans:#?}"));
    assert_eq!(operation.attribute("graphql.operation.name"), Some("FindAppeals"), "{operation:?}");
    assert_eq!(operation.attribute("graphql.operation.type"), Some("query"), "{operation:?}");
    assert_eq!(operation.name, "query FindAppeals", "{operation:?}");
    assert_eq!(operation.parent_span_id, request.span_id, "the operation is the request's child: {operation:?}");

    let system = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgresql",
    };
    // The statement that reads the appeals (a search first learns which session
    // runs it, by a statement of its own).
    let reads_appeals =
        |span: &ReceivedSpan| span.attribute("db.query.text").is_some_and(|sql| sql.contains("\"appeal\""));
    let statement = find(&spans, |span| {
        span.parent_span_id == operation.span_id && span.attribute("db.system").is_some() && reads_appeals(span)
    })
    .unwrap_or_else(|| panic!("no statement under the operation: {spans:#?}"));
    assert_eq!(statement.trace_id, caller.trace_id, "{statement:?}");
    assert_eq!(statement.attribute("db.system"), Some(system), "{statement:?}");
    assert_eq!(statement.kind, CLIENT, "{statement:?}");
    let sql = statement.attribute("db.query.text").unwrap_or_default();
    assert!(sql.contains("appeal"), "the statement's shape: {statement:?}");
    assert!(sql.contains(if backend == Backend::Sqlite { "?" } else { "$1" }), "placeholders, not values: {sql}");

    // A failed operation is marked by its code, never its message.
    let broken = find(&spans, |span| span.attribute("graphql.operation.name") == Some("Broken"))
        .unwrap_or_else(|| panic!("no span of the failed operation: {spans:#?}"));
    assert_eq!(broken.status_code, ERROR, "{broken:?}");
    assert_eq!(broken.attribute("error.type"), Some("VALIDATION"), "{broken:?}");
    assert!(!everything.contains("noSuchField"), "an error message left the server in a span: {everything}");

    // The submission's span is there too, and neither its text nor the
    // variable holding the marker is in anything sent.
    assert!(find(&spans, |span| span.name == "mutation").is_some(), "the anonymous mutation's span: {spans:#?}");
    assert!(!everything.contains(&marker), "the marker left the server in a span: {everything}");
    assert!(!everything.contains("улице Мира"), "an appeal's text left the server in a span");
    assert!(!server.log().contains(&marker), "the marker is in the log");

    // Every log line written inside a span names its trace and span; the
    // request's own lines name the caller's trace and the request's span.
    let lines = json_lines(&server);
    let inside_spans: Vec<&Value> = lines.iter().filter(|line| line.get("span").is_some()).collect();
    assert!(!inside_spans.is_empty(), "no log line inside a span: {}", server.log_tail(30));
    for line in &inside_spans {
        let span_id = line["span_id"].as_str().unwrap_or_default();
        assert!(line["trace_id"].as_str().is_some_and(|id| id.len() == 32), "no trace_id: {line}");
        assert!(span_id.len() == 16 && span_id.chars().all(|c| c.is_ascii_hexdigit()), "no span_id: {line}");
    }
    let finished = lines
        .iter()
        .find(|line| line["trace_id"] == caller.trace_id.as_str() && line["message"] == "finished processing request")
        .unwrap_or_else(|| panic!("no line of the caller's request: {}", server.log_tail(30)));
    assert_eq!(finished["span_id"], request.span_id.as_str(), "{finished}");
    assert_eq!(finished["span"]["path"], "/graphql", "{finished}");
}

async fn a_reply_sent_to_a_platform_is_a_client_span_that_names_no_token(backend: Backend) {
    let Some(prepared) = prepare(backend).await else { return };
    let fake = FakePlatforms::start().await;
    fake.accept_token(TELEGRAM_TOKEN);
    let channel = run_command(
        &prepared.url,
        &[
            "channel",
            "set",
            "--municipality",
            "tomsk",
            "--channel",
            "telegram",
            "--webhook-secret",
            TELEGRAM_SECRET,
            "--bot-token",
            TELEGRAM_TOKEN,
        ],
    );
    assert!(channel.status.success(), "channel set: {}", describe(&channel));
    let collector = Collector::start().await;
    let server = ServerProcess::start_with_env(
        &prepared.url,
        &["--log-format", "json", "--telegram-api-url", &fake.url],
        &traced(&collector, "100"),
    )
    .await;
    let answer = reqwest::Client::new()
        .post(format!("{}/hooks/telegram/tomsk", server.address()))
        .header("X-Telegram-Bot-Api-Secret-Token", TELEGRAM_SECRET)
        .header("content-type", "application/json")
        .body(TELEGRAM_MESSAGE)
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), 200);
    assert_eq!(fake.wait_for_calls(1, Duration::from_secs(20)).await.len(), 1, "the acknowledgement is sent");

    let is_call = |span: &ReceivedSpan| span.kind == CLIENT && span.attribute("http.request.method").is_some();
    // The delivery's span ends after its call, and may come in a later batch.
    let spans = collector
        .wait_for(Duration::from_secs(20), |spans| {
            let call = find(spans, |span| is_call(span) && span.attribute("http.response.status_code").is_some());
            let delivery = call.and_then(|call| find(spans, |span| span.span_id == call.parent_span_id));
            delivery.is_some_and(|delivery| {
                spans
                    .iter()
                    .any(|span| span.parent_span_id == delivery.span_id && span.attribute("db.system").is_some())
            })
        })
        .await;
    let call = find(&spans, |span| is_call(span)).unwrap_or_else(|| panic!("no client span: {spans:#?}"));
    assert_eq!(call.name, "POST", "{call:?}");
    assert_eq!(call.attribute("server.address"), Some("127.0.0.1"), "{call:?}");
    assert_eq!(call.attribute("http.response.status_code"), Some("200"), "{call:?}");
    let delivery = find(&spans, |span| span.span_id == call.parent_span_id)
        .unwrap_or_else(|| panic!("the call has no parent: {spans:#?}"));
    assert_eq!(delivery.name, "deliver reply", "{delivery:?}");
    assert!(
        spans.iter().any(|span| span.parent_span_id == delivery.span_id && span.attribute("db.system").is_some()),
        "the delivery's statements are its children: {spans:#?}"
    );

    let everything = collector.everything_received();
    let message: Value = serde_json::from_str(TELEGRAM_MESSAGE).expect("the example");
    let text = message["message"]["text"].as_str().expect("a text");
    for secret in [TELEGRAM_TOKEN, "AAH-traced", TELEGRAM_SECRET, "/bot", text, "фонари"] {
        assert!(!everything.contains(secret), "{secret:?} left the server in a span");
    }
}

async fn spans_still_queued_are_sent_when_the_server_stops(backend: Backend) {
    let Some(prepared) = prepare(backend).await else { return };
    let collector = Collector::start().await;
    // A batch would wait ten minutes: only the flush at shutdown sends it.
    let mut server =
        ServerProcess::start_with_env(&prepared.url, &["--log-format", "json"], &traced(&collector, "600000")).await;
    let caller = Traceparent::new();
    submit_and_find(&server, &prepared, &new_marker(), Some(&caller)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(collector.exports(), 0, "nothing is sent before the batch is due");

    let stopped = server.terminate(Duration::from_secs(30));
    assert!(stopped.is_some(), "the server did not stop on SIGTERM: {}", server.log_tail(30));
    let spans = collector
        .wait_for(Duration::from_secs(5), |spans| {
            spans.iter().any(|span| span.attribute("graphql.operation.name") == Some("FindAppeals"))
        })
        .await;
    let operation = find(&spans, |span| span.attribute("graphql.operation.name") == Some("FindAppeals"))
        .unwrap_or_else(|| panic!("the queued spans were not sent at shutdown: {spans:#?}"));
    assert_eq!(operation.trace_id, caller.trace_id, "{operation:?}");
}

async fn a_subscription_continues_the_trace_of_its_upgrade(backend: Backend) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let Some(prepared) = prepare(backend).await else { return };
    let collector = Collector::start().await;
    let server = ServerProcess::start_with_env(&prepared.url, &[], &traced(&collector, "200")).await;
    let caller = Traceparent::new();
    let url = format!("{}/graphql", server.address().replacen("http", "ws", 1));
    let mut request = url.into_client_request().expect("a websocket request");
    let headers = request.headers_mut();
    headers.insert("sec-websocket-protocol", "graphql-transport-ws".parse().expect("a header"));
    headers.insert("authorization", format!("Bearer {}", prepared.head).parse().expect("a header"));
    headers.insert("traceparent", caller.header().parse().expect("a header"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("the upgrade");
    let send = |message: Value| Message::text(message.to_string());
    socket.send(send(json!({ "type": "connection_init", "payload": {} }))).await.expect("init");
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": {
        "query": "subscription Watch { appealEvents { seq kind } }", "operationName": "Watch" } });
    socket.send(send(subscribe)).await.expect("subscribe");
    let input = json!({ "input": { "municipalityCode": "tomsk", "channel": "WEB", "text": "Не вывозят мусор" } });
    let mut delivered = false;
    for _ in 0..20 {
        server.graphql(&prepared.intake, SUBMIT, input.clone()).await;
        let next = tokio::time::timeout(Duration::from_millis(500), async {
            while let Some(Ok(message)) = socket.next().await {
                if message.to_text().is_ok_and(|text| text.contains("\"next\"")) {
                    return true;
                }
            }
            false
        });
        if next.await.unwrap_or(false) {
            delivered = true;
            break;
        }
    }
    assert!(delivered, "the subscription delivered no event");
    // An operation's span ends with its stream.
    socket.send(send(json!({ "id": "1", "type": "complete" }))).await.expect("complete");
    let _ = socket.close(None).await;
    let spans = collector
        .wait_for(Duration::from_secs(10), |spans| {
            spans.iter().any(|span| span.attribute("graphql.operation.name") == Some("Watch"))
        })
        .await;
    let operation = find(&spans, |span| span.attribute("graphql.operation.name") == Some("Watch"))
        .unwrap_or_else(|| panic!("no span for the subscription: {spans:#?}"));
    assert_eq!(operation.attribute("graphql.operation.type"), Some("subscription"), "{operation:?}");
    assert_eq!(operation.trace_id, caller.trace_id, "the subscription is in the upgrade's trace: {operation:?}");
}

/// The collectors on OTLP/HTTP's default port, one test at a time.
static DEFAULT_PORT: Mutex<()> = Mutex::const_new(());

async fn with_no_endpoint_nothing_is_exported_and_the_log_is_as_before(backend: Backend) {
    let Some(prepared) = prepare(backend).await else { return };

    // Switched off with an endpoint set: nothing reaches it, even at shutdown.
    let collector = Collector::start().await;
    let mut variables = traced(&collector, "100");
    variables.push(("OTEL_SDK_DISABLED", "true"));
    let mut server = ServerProcess::start_with_env(&prepared.url, &["--log-format", "json"], &variables).await;
    submit_and_find(&server, &prepared, &new_marker(), Some(&Traceparent::new())).await;
    assert!(server.terminate(Duration::from_secs(30)).is_some(), "the server did not stop on SIGTERM");
    assert_eq!(collector.exports(), 0, "OTEL_SDK_DISABLED=true sent spans");

    // No endpoint: no exporter, so nothing reaches the default one
    // (localhost:4318), and the log lines carry no trace ids.
    let _one_at_a_time = DEFAULT_PORT.lock().await;
    let default_collector = Collector::start_on("127.0.0.1:4318").await.ok();
    let variables = [
        ("OTEL_TRACES_SAMPLER", "always_on"),
        ("OTEL_SERVICE_NAME", SERVICE),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("RUST_LOG", "info,tower_http=debug"),
    ];
    let mut server = ServerProcess::start_with_env(&prepared.url, &["--log-format", "json"], &variables).await;
    submit_and_find(&server, &prepared, &new_marker(), Some(&Traceparent::new())).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.terminate(Duration::from_secs(30)).is_some(), "the server did not stop on SIGTERM");
    match &default_collector {
        Some(collector) => assert_eq!(collector.exports(), 0, "spans were sent to the default endpoint"),
        None => eprintln!("port 4318 is taken here: what reaches it is not checked"),
    }
    let lines = json_lines(&server);
    let finished: Vec<&Value> = lines.iter().filter(|line| line["message"] == "finished processing request").collect();
    assert!(!finished.is_empty(), "no line of a request: {}", server.log_tail(30));
    for line in &finished {
        assert!(line["span"]["request_id"].is_string(), "the request id, as before: {line}");
    }
    for line in &lines {
        assert!(line.get("trace_id").is_none() && line.get("span_id").is_none(), "an id without traces: {line}");
        assert!(line["span"].get("otel.name").is_none(), "a trace's field without traces: {line}");
    }
}

/// gRPC is not built in: asking for it stops the server at once with a usage
/// error, rather than leaving it without traces.
#[test]
fn an_exporter_protocol_this_build_cannot_speak_is_refused_at_start() {
    // A database that cannot be opened: were the protocol accepted, the server
    // would stop on it at once, with another status.
    let database = "sqlite:///nonexistent-folder-of-the-tracing-test/appeals.db";
    let output = run_command_with_env(
        database,
        &["serve", "--listen", "127.0.0.1:0"],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
    );
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc") && stderr.contains("http/protobuf"), "{stderr}");
}
