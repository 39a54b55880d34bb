//! The harness of the end-to-end tests: a real server on port 0 over its own
//! throwaway database (a temporary SQLite file, or a randomly named PostgreSQL
//! database), and clients that talk to it over HTTP and WebSocket. [`process`]
//! runs the `appeals` binary instead, for the tests that need a process of its own.
//!
//! `TEST_LOG=1` (any non-empty value) shows the servers' logs: the in-process
//! servers log to the test's output at `RUST_LOG` (default `info`), and each
//! binary's log is printed when it stops. Without it the output stays quiet,
//! except that a binary's log is printed when its test panics. [`collector`] is
//! an OpenTelemetry collector for the tracing tests, [`platforms`] the
//! Telegram, VK and MAX APIs for the channel tests, [`browser`] headless
//! Chromium for the tests of pages.

pub mod browser;
pub mod collector;
pub mod platforms;
pub mod process;

use std::sync::Once;
use std::time::Duration;

use appeals_api::{Application, ServerConfig};
use appeals_core::Role;
use appeals_core::text::{MunicipalityCode, PersonName};
use appeals_storage::Store;
pub use appeals_storage::testing::Backend;
use appeals_storage::testing::ThrowawayDatabase;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tracing_subscriber::EnvFilter;

/// A running server and what the test needs to talk to it.
pub struct TestApp {
    pub address: String,
    pub store: Store,
    pub client: reqwest::Client,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _database: ThrowawayDatabase,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Whether `TEST_LOG` asks for the servers' logs.
pub fn test_log_is_on() -> bool {
    std::env::var_os("TEST_LOG").is_some_and(|value| !value.is_empty())
}

/// Starts a server with the default configuration on a fresh database of
/// `backend`, or returns `None` when PostgreSQL is not configured (outside CI).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// As [`spawn_app`], after `configure` adjusts the configuration.
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut ServerConfig)) -> Option<TestApp> {
    log_to_the_tests_output();
    let database = ThrowawayDatabase::create(backend).await?;
    let mut config = ServerConfig::new(database.url.clone());
    config.listen = "127.0.0.1:0".parse().expect("a literal address");
    configure(&mut config);
    let application = Application::build(config).await.expect("the server should start");
    let address = format!("http://127.0.0.1:{}", application.port());
    let store = application.store().clone();
    let server = tokio::spawn(application.run_until(std::future::pending()));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("a client");
    Some(TestApp { address, store, client, server, _database: database })
}

impl TestApp {
    /// Creates a user directly in the store and returns its token.
    pub async fn token(&self, role: Role, municipality: Option<&str>) -> String {
        let code = municipality.map(|code| MunicipalityCode::parse(code).expect("a valid code"));
        let name = PersonName::parse(&format!("{role} {}", municipality.unwrap_or("region"))).expect("a valid name");
        let (_, token) = self.store.create_user(name, role, code.as_ref()).await.expect("the user should be created");
        token.expose().to_owned()
    }

    /// Posts a GraphQL request and returns the JSON response.
    pub async fn graphql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let response = self.post(token, &json!({ "query": query, "variables": variables })).await;
        response.json().await.expect("the response should be JSON")
    }

    /// Posts any JSON body to `/graphql`.
    pub async fn post(&self, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.client.post(format!("{}/graphql", self.address)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("the server should answer")
    }

    /// Posts raw bytes to `/graphql`.
    pub async fn post_raw(&self, token: Option<&str>, body: Vec<u8>) -> reqwest::Response {
        let mut request =
            self.client.post(format!("{}/graphql", self.address)).header("content-type", "application/json").body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("the server should answer")
    }

    /// A GET as a browser asks for a page (`Accept: text/html`).
    pub async fn page(&self, path: &str) -> reqwest::Response {
        let request = self.client.get(format!("{}{path}", self.address)).header("accept", "text/html");
        request.send().await.expect("the server should answer")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.address)).send().await.expect("the server should answer")
    }

    /// Submits an appeal as `token` and returns `submitAppeal.appeal`.
    pub async fn submit(&self, token: &str, municipality: &str, text: &str) -> Value {
        let response = self
            .graphql(
                Some(token),
                "mutation($input: SubmitAppealInput!) { submitAppeal(input: $input) { created appeal { id number status version } } }",
                json!({ "input": { "municipalityCode": municipality, "channel": "WEB", "text": text } }),
            )
            .await;
        response["data"]["submitAppeal"]["appeal"].clone()
    }

    /// Opens a `graphql-transport-ws` connection, authenticated by the upgrade
    /// request's header (`header_token`) and/or the `connection_init` payload
    /// (`payload_token`). Returns the socket after `connection_ack`, or the
    /// server's refusal.
    pub async fn websocket(&self, header_token: Option<&str>, payload_token: Option<&str>) -> Result<WsClient, String> {
        websocket(&self.address, header_token, payload_token).await
    }
}

/// [`TestApp::websocket`] to the server at `address` (`http://HOST:PORT`).
pub async fn websocket(
    address: &str,
    header_token: Option<&str>,
    payload_token: Option<&str>,
) -> Result<WsClient, String> {
    let url = format!("{}/graphql", address.replacen("http", "ws", 1));
    let mut request = url.into_client_request().expect("a websocket request");
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().expect("a header"));
    if let Some(token) = header_token {
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("a header"));
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.map_err(|error| error.to_string())?;
    let payload = payload_token.map_or(json!({}), |token| json!({ "Authorization": format!("Bearer {token}") }));
    socket
        .send(Message::text(json!({ "type": "connection_init", "payload": payload }).to_string()))
        .await
        .map_err(|error| error.to_string())?;
    let mut client = WsClient { socket };
    match client.next_message(Duration::from_secs(10)).await {
        Some(message) if message["type"] == "connection_ack" => Ok(client),
        other => Err(format!("no connection_ack: {other:?}")),
    }
}

/// A `graphql-transport-ws` client.
pub struct WsClient {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl WsClient {
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let message = json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } });
        self.socket.send(Message::text(message.to_string())).await.expect("the subscription should be sent");
    }

    /// The next JSON message, or `None` if none arrives within `wait` or the
    /// socket closes. A close frame is returned as `{"type": "close", "code": …}`.
    pub async fn next_message(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(wait, self.socket.next()).await.ok()??;
            match message {
                Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
                Ok(Message::Close(frame)) => {
                    return Some(json!({ "type": "close", "code": frame.map(|f| u16::from(f.code)) }));
                }
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}

/// The `extensions.code` of the first error of a response, if any.
pub fn error_code(response: &Value) -> Option<&str> {
    response["errors"][0]["extensions"]["code"].as_str()
}

/// With `TEST_LOG`, installs (once per process) a log subscriber that writes
/// through the test harness, so that each test's server log is captured with
/// that test and shown when it fails (or always, with `--nocapture`).
fn log_to_the_tests_output() {
    static INSTALLED: Once = Once::new();
    if !test_log_is_on() {
        return;
    }
    INSTALLED.call_once(|| {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    });
}
