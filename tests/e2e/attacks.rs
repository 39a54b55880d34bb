//! A hostile client against the real `appeals` binary, on SQLite and on
//! PostgreSQL: each attack of the hardening list is tried for real over HTTP,
//! WebSocket or raw TCP, and after each one another client must still be served
//! within a second, nothing may be answered `INTERNAL` or 5xx, and the server's
//! peak memory is recorded (and bounded). At the end the server must stop on
//! SIGTERM within its shutdown deadline, sockets and all.
//!
//! Run with `--nocapture` to see the peak memory after each attack.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use appeals_core::text::{MunicipalityCode, NoteText, PersonName};
use appeals_core::{Actor, AppealId, Command, Role};
use appeals_storage::testing::{Backend, ThrowawayDatabase, on_both_databases};
use appeals_storage::{PoolSettings, Store};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::process::ServerProcess;

/// The server's peak memory must stay below this under every attack.
const PEAK_RSS_BOUND_KIB: u64 = 256 * 1024;

/// Short timeouts, so that the slow-client attacks finish quickly; everything
/// else is the default.
const SERVER_FLAGS: &[&str] = &[
    "--header-read-timeout",
    "2s",
    "--idle-timeout",
    "3s",
    "--websocket-init-timeout",
    "1s",
    "--websocket-ping-interval",
    "1s",
    "--max-connections-per-address",
    "128",
    "--max-sockets-per-user",
    "4",
    "--shutdown-timeout",
    "3s",
];

const ME: &str = "{ me { role } }";

on_both_databases!(every_attack_is_refused_and_other_clients_are_still_served);

async fn every_attack_is_refused_and_other_clients_are_still_served(backend: Backend) {
    let Some(database) = ThrowawayDatabase::create(backend).await else { return };
    let target = Target::start(&database.url).await;
    let mut peaks = Vec::new();
    let attacks: [(&str, Attack); 11] = [
        ("1 deep nesting", |target| Box::pin(deep_nesting(target))),
        ("2 fragment chain", |target| Box::pin(fragment_chain(target))),
        ("3 revocation on open sockets", |target| Box::pin(revocation_reaches_open_sockets(target))),
        ("4 list-sized cost", |target| Box::pin(costly_lists(target))),
        ("5 rate limits", |target| Box::pin(rate_limits_cannot_be_stepped_round(target))),
        ("6 database fan-out", |target| Box::pin(fan_out(target))),
        ("7 slow clients", |target| Box::pin(slow_clients(target))),
        ("malformed documents and frames", |target| Box::pin(malformed_corpus(target))),
        ("many sockets", |target| Box::pin(socket_caps(target))),
        ("9 existence oracle", |target| Box::pin(no_existence_oracle(target))),
        ("10 the same text written otherwise", |target| Box::pin(search_reads_text_as_a_reader_does(target))),
    ];
    for (name, attack) in attacks {
        attack(&target).await;
        target.still_serves(name).await;
        let peak = target.server.peak_rss_kib().expect("the server's memory can be read");
        peaks.push(format!("{name}: {} MiB", peak / 1024));
        assert!(peak < PEAK_RSS_BOUND_KIB, "after `{name}` the server peaked at {peak} KiB");
    }
    println!("{backend:?} peak RSS after each attack: {}", peaks.join("; "));
    let mut target = target;
    shutdown_within_its_deadline(&mut target).await;
}

/// One attack on the target.
type Attack = fn(&Target) -> futures_util::future::BoxFuture<'_, ()>;

/// The server under attack, the users, and a witness client that must always
/// be served: it connects from another loopback address, so that limits put on
/// the attacker's address do not apply to it.
struct Target {
    server: ServerProcess,
    store: Store,
    witness: reqwest::Client,
    attacker: reqwest::Client,
    assistant: String,
    head: String,
    admin: String,
    appeal: String,
}

impl Target {
    async fn start(url: &str) -> Target {
        let store = Store::open(url, PoolSettings::default()).await.expect("the database opens");
        let server = ServerProcess::start(url, SERVER_FLAGS).await;
        let token = |role: Role, municipality: Option<&str>| {
            let store = store.clone();
            let municipality = municipality.map(|code| MunicipalityCode::parse(code).expect("a code"));
            async move {
                let name = PersonName::parse(&format!("{role}")).expect("a name");
                store.create_user(name, role, municipality.as_ref()).await.expect("a user").1.expose().to_owned()
            }
        };
        let assistant = token(Role::Assistant, Some("tomsk")).await;
        let head = token(Role::Head, Some("tomsk")).await;
        let admin = token(Role::Admin, None).await;
        // Neither client keeps a connection between requests: reusing one the
        // server is closing at that moment (its head timeout is 2 s here, and a
        // loaded machine can be late to drop an idle one from the pool) would
        // fail the request for a reason that is no attack.
        let witness = reqwest::Client::builder()
            .local_address("127.0.0.2".parse::<std::net::IpAddr>().expect("an address"))
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(0)
            .build()
            .expect("a client");
        let attacker = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(0)
            .build()
            .expect("a client");
        let mut target = Target { server, store, witness, attacker, assistant, head, admin, appeal: String::new() };
        let submitted = target
            .graphql(
                Some(&target.assistant.clone()),
                "mutation { submitAppeal(input: { municipalityCode: \"tomsk\", channel: WEB, text: \"Яма на дороге\" }) { appeal { id } } }",
                json!({}),
            )
            .await;
        target.appeal = submitted["data"]["submitAppeal"]["appeal"]["id"].as_str().expect("an appeal").to_owned();
        target
    }

    fn url(&self) -> String {
        format!("{}/graphql", self.server.address())
    }

    fn ws_url(&self) -> String {
        self.url().replacen("http", "ws", 1)
    }

    /// Posts as the attacker and returns the status and the JSON body.
    /// Posts as a client of `application/graphql-response+json`, for which a
    /// refused document is a `400`.
    async fn post(&self, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request =
            self.attacker.post(self.url()).header("accept", "application/graphql-response+json").json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        assert_no_internal(status, &body);
        (status, body)
    }

    async fn graphql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        self.post(token, &json!({ "query": query, "variables": variables })).await.1
    }

    /// The witness asks for itself and must be answered, correctly, within a second.
    async fn still_serves(&self, after: &str) {
        let started = Instant::now();
        let response = self
            .witness
            .post(self.url())
            .bearer_auth(&self.head)
            .json(&json!({ "query": ME }))
            .send()
            .await
            .unwrap_or_else(|error| panic!("after `{after}` the witness got no answer: {error}"));
        let elapsed = started.elapsed();
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["data"]["me"]["role"], "HEAD", "after `{after}` the witness was refused: {body}");
        assert!(elapsed < Duration::from_secs(1), "after `{after}` the witness waited {elapsed:?}");
    }

    async fn socket(&self, token: &str) -> Socket {
        let mut request = self.ws_url().into_client_request().expect("a request");
        request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().expect("a header"));
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("the upgrade succeeds");
        let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
        socket.send(Message::text(init.to_string())).await.expect("init is sent");
        Socket(socket)
    }
}

struct Socket(tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>);

impl Socket {
    async fn send(&mut self, message: Value) {
        self.0.send(Message::text(message.to_string())).await.expect("the message is sent");
    }

    /// The next protocol message, or a close as `{"type": "close", "code": …}`,
    /// or `None` after `wait` or when the socket ends. Pings are answered by the
    /// client library as it reads.
    async fn next(&mut self, wait: Duration) -> Option<Value> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.0.next()).await.ok()?? {
                Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
                Ok(Message::Close(frame)) => {
                    return Some(json!({ "type": "close", "code": frame.map(|frame| u16::from(frame.code)) }));
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Reads until a message of `kind` (skipping others), or `None`.
    async fn until(&mut self, kind: &str, wait: Duration) -> Option<Value> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let message = self.next(left).await?;
            if message["type"] == kind || message["type"] == "close" {
                return Some(message);
            }
        }
    }
}

fn assert_no_internal(status: u16, body: &Value) {
    assert!(status < 500 || status == 503, "a 5xx other than 503: {status} {body}");
    let text = body.to_string();
    assert!(!text.contains("\"INTERNAL\""), "answered INTERNAL: {text}");
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

async fn deep_nesting(target: &Target) {
    let list = format!("{{ appeal(id: {}1{}) {{ id }} }}", "[".repeat(2_000), "]".repeat(2_000));
    let (status, body) = target.post(None, &json!({ "query": list })).await;
    assert_eq!((status, code(&body)), (400, "VALIDATION"), "{body}");
    assert!(body.to_string().contains("more than 64 deep"), "the message names the limit: {body}");

    let selections = format!("{}{}", "{ me ".repeat(500), "}".repeat(500));
    let (status, body) = target.post(Some(&target.assistant), &json!({ "query": selections })).await;
    assert_eq!((status, code(&body)), (400, "VALIDATION"), "{body}");

    for depth in [40, 120, 5_000] {
        // Written out as text: a value this deep would overflow this test's own
        // stack as a `serde_json::Value`.
        let body = format!(
            r#"{{"query": "query($x: [Int]) {{ me {{ role }} }}", "variables": {{"x": {}1{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let response = target
            .attacker
            .post(target.url())
            .bearer_auth(&target.assistant)
            .header("content-type", "application/json")
            .header("accept", "application/graphql-response+json")
            .body(body)
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!((status, code(&body)), (400, "VALIDATION"), "variables {depth} deep: {body}");
    }
}

async fn fragment_chain(target: &Target) {
    let mut query = String::from("query { ...F0 }\n");
    for level in 0..11 {
        let spreads = vec![format!("...F{}", level + 1); 10].join(" ");
        query.push_str(&format!("fragment F{level} on Query {{ {spreads} }}\n"));
    }
    query.push_str("fragment F11 on Query { me { role } }\n");
    let started = Instant::now();
    let (status, body) = target.post(None, &json!({ "query": query })).await;
    assert_eq!((status, code(&body)), (400, "VALIDATION"), "{body}");
    assert!(body.to_string().contains("once its fragments are expanded"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once, not after expanding: {:?}",
        started.elapsed()
    );
}

async fn revocation_reaches_open_sockets(target: &Target) {
    let name = PersonName::parse("Временный помощник").expect("a name");
    let code = MunicipalityCode::parse("tomsk").expect("a code");
    let (user, token) = target.store.create_user(name, Role::Assistant, Some(&code)).await.expect("a user");
    let token = token.expose().to_owned();
    let mut socket = target.socket(&token).await;
    assert_eq!(socket.next(Duration::from_secs(5)).await.expect("an answer")["type"], "connection_ack");
    socket.send(json!({ "id": "q1", "type": "subscribe", "payload": { "query": ME } })).await;
    let before = socket.until("next", Duration::from_secs(5)).await.expect("an answer");
    assert_eq!(before["payload"]["data"]["me"]["role"], "ASSISTANT", "{before}");

    let revoke = "mutation($id: ID!) { revokeUser(id: $id) { user { revoked } } }";
    let revoked = target.graphql(Some(&target.admin), revoke, json!({ "id": user.id.to_string() })).await;
    assert_eq!(revoked["data"]["revokeUser"]["user"]["revoked"], true, "{revoked}");
    let started = Instant::now();
    let closed = socket.until("close", Duration::from_secs(2)).await.expect("the socket is closed");
    assert_eq!(closed["code"], 4403, "{closed}");
    assert!(started.elapsed() < Duration::from_secs(1), "closed within a second: {:?}", started.elapsed());

    // A revoked user's new socket is refused at `connection_init`.
    let mut again = target.socket(&token).await;
    let answer = again.next(Duration::from_secs(5)).await.unwrap_or(json!({ "type": "ended" }));
    assert_ne!(answer["type"], "connection_ack", "{answer}");
}

async fn costly_lists(target: &Target) {
    let aliases: String = (0..10)
        .map(|index| {
            format!("a{index}: appeals(first: 100) {{ edges {{ node {{ id history {{ actor {{ name }} }} }} }} }} ")
        })
        .collect();
    let body = target.graphql(Some(&target.assistant), &format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
    let extensions = &body["errors"][0]["extensions"];
    assert!(extensions["cost"].as_u64() > extensions["budget"].as_u64(), "the cost and the budget are given: {body}");

    // An assistant writes 400 long notes on one appeal, then asks for every
    // appeal's history through the appeal of each event.
    let assistant = target.store.user_by_token(&target.assistant).await.expect("a lookup").expect("the user");
    let actor: Actor = assistant.actor();
    let id: AppealId = target.appeal.parse().expect("an id");
    let note = NoteText::parse(&"Примечание. ".repeat(400)).expect("a note");
    for _ in 0..400 {
        target.store.execute_command(&actor, id, &Command::AddNote { text: note.clone() }, None).await.expect("a note");
    }
    let recursive = "{ appeals(first: 100) { edges { node { history(first: 1000) { note appeal { history(first: 1000) { note } } } } } } }";
    let body = target.graphql(Some(&target.assistant), recursive, json!({})).await;
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");

    // The most an accepted query can read of that history, page by page.
    let page = "query($id: ID!, $after: Int) { appeal(id: $id) { history(first: 200, after: $after) { seq note actor { name } } } }";
    let mut after = 0;
    loop {
        let body = target.graphql(Some(&target.assistant), page, json!({ "id": target.appeal, "after": after })).await;
        let events = body["data"]["appeal"]["history"].as_array().cloned().unwrap_or_else(|| panic!("{body}"));
        let Some(last) = events.last() else { break };
        after = last["seq"].as_i64().expect("a seq");
    }
    assert_eq!(after, 401, "every event is read, a page at a time");
}

async fn rate_limits_cannot_be_stepped_round(target: &Target) {
    let mut limited = 0;
    for attempt in 0..150 {
        let (status, body) = target.post(Some(&format!("made-up-{attempt}")), &json!({ "query": ME })).await;
        if status == 429 {
            assert_eq!(code(&body), "RATE_LIMITED", "{body}");
            limited += 1;
        }
    }
    assert!(limited >= 90, "made-up tokens are charged to their address: {limited} of 150 limited");

    // Operations sent over a socket count against the user's budget.
    let mut socket = target.socket(&target.assistant).await;
    assert_eq!(socket.next(Duration::from_secs(5)).await.expect("an answer")["type"], "connection_ack");
    for index in 0..160 {
        socket.send(json!({ "id": format!("m{index}"), "type": "subscribe", "payload": { "query": ME } })).await;
    }
    let mut socket_limited = 0;
    for _ in 0..160 {
        let Some(message) = socket.until("next", Duration::from_secs(5)).await else { break };
        if message["payload"]["errors"][0]["extensions"]["code"] == "RATE_LIMITED" {
            socket_limited += 1;
        }
    }
    assert!(socket_limited > 0, "a socket's operations are rate limited too");
    tokio::time::sleep(Duration::from_secs(3)).await;
}

async fn fan_out(target: &Target) {
    let aliases: String = (0..20)
        .map(|index| format!("a{index}: appeals(first: 10) {{ totalCount edges {{ node {{ id text }} }} }} "))
        .collect();
    let query = format!("{{ {aliases} }}");
    let hostile = (0..40).map(|_| {
        let query = query.clone();
        async move { target.post(Some(&target.assistant), &json!({ "query": query })).await }
    });
    let flood = futures_util::future::join_all(hostile);
    let watch = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        target.still_serves("the fan-out, while it runs").await;
    };
    let (answers, ()) = tokio::join!(flood, watch);
    let served = answers.iter().filter(|(status, body)| *status == 200 && body["errors"].is_null()).count();
    assert!(served > 0, "the fan-out itself is served in turn, not refused outright");
}

async fn slow_clients(target: &Target) {
    let address: SocketAddr = target.server.address().trim_start_matches("http://").parse().expect("an address");

    // Slowloris: heads never finished. They are closed after the head timeout,
    // and no more than the per-address cap are ever held.
    let mut held = Vec::new();
    for _ in 0..200 {
        let Ok(mut stream) = TcpStream::connect(address).await else { continue };
        let _ = stream.write_all(b"POST /graphql HTTP/1.1\r\nHost: appeals\r\nX-Slow: ").await;
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut open_now = 0;
    for stream in &mut held {
        if is_open(stream, Duration::from_millis(20)).await {
            open_now += 1;
        }
    }
    assert!(open_now <= 128, "at most 128 connections from one address are held: {open_now}");
    target.still_serves("two hundred unfinished heads").await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mut still_open = 0;
    for stream in &mut held {
        if is_open(stream, Duration::from_millis(20)).await {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "unfinished heads are closed after the head timeout");

    // An idle keep-alive connection is closed: waiting for the next request's
    // head is bounded by the head timeout.
    let mut idle = TcpStream::connect(address).await.expect("a connection");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: appeals\r\n\r\n").await.expect("a request");
    let mut buffer = [0u8; 512];
    let read = idle.read(&mut buffer).await.expect("an answer");
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"), "served first");
    let closed = tokio::time::timeout(Duration::from_secs(4), idle.read(&mut buffer)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the idle connection is closed: {closed:?}");

    // A WebSocket client that stops reading answers no ping, and is closed after
    // the idle timeout.
    let mut silent = target.socket(&target.assistant).await;
    assert_eq!(silent.next(Duration::from_secs(5)).await.expect("an answer")["type"], "connection_ack");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let started = Instant::now();
    let mut ended = false;
    while started.elapsed() < Duration::from_secs(2) {
        if let Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) =
            tokio::time::timeout(Duration::from_millis(500), silent.0.next()).await
        {
            ended = true;
            break;
        }
    }
    assert!(ended, "a socket that answers no ping is closed");

    // A WebSocket that never sends `connection_init` is closed with 4408.
    let mut request = target.ws_url().into_client_request().expect("a request");
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().expect("a header"));
    let (socket, _) = tokio_tungstenite::connect_async(request).await.expect("the upgrade succeeds");
    let mut socket = Socket(socket);
    let closed = socket.until("close", Duration::from_secs(3)).await.expect("the socket is closed");
    assert_eq!(closed["code"], 4408, "{closed}");
}

/// Whether the server still holds `stream` open: a read that times out means
/// open; end of file or an error means closed.
async fn is_open(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(wait, stream.read(&mut byte)).await {
        Err(_) => true,
        Ok(Ok(0)) | Ok(Err(_)) => false,
        Ok(Ok(_)) => true,
    }
}

async fn malformed_corpus(target: &Target) {
    let valid = [
        "query($id: ID!) { appeal(id: $id) { id number text status history { seq kind note actor { name } } } }",
        "{ appeals(first: 5, filter: { status: RECEIVED, text: \"яма\" }) { totalCount edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }",
        "mutation($id: ID!) { addNote(id: $id, text: \"Проверка\") { event { seq } } }",
        "{ dashboard { total municipalities { municipality { code } medianHoursToSeen } } }",
        "fragment A on Appeal { id status } query($id: ID!) { appeal(id: $id) { ...A } }",
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..300 {
        let mut bytes = valid[round % valid.len()].as_bytes().to_vec();
        for _ in 0..(1 + random() % 6) {
            let at = (random() as usize) % bytes.len().max(1);
            match random() % 4 {
                0 => {
                    bytes.remove(at.min(bytes.len().saturating_sub(1)));
                }
                1 => bytes.insert(at, b"{[(\"}])#\\$@!."[(random() % 13) as usize]),
                2 => {
                    let piece: Vec<u8> = bytes[at..bytes.len().min(at + 16)].to_vec();
                    for _ in 0..(random() % 50) {
                        bytes.splice(at..at, piece.iter().copied());
                    }
                }
                _ => bytes[at] = (random() % 256) as u8,
            }
        }
        let query = String::from_utf8_lossy(&bytes).into_owned();
        target.post(Some(&target.assistant), &json!({ "query": query, "variables": { "id": target.appeal } })).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Frames no client should send.
    let frames = [
        Message::binary(vec![0xff, 0x00, 0x13]),
        Message::text("not json"),
        Message::text(json!({ "type": "subscribe" }).to_string()),
        Message::text(
            json!({ "type": "subscribe", "id": "x".repeat(100_000), "payload": { "query": ME } }).to_string(),
        ),
        Message::text(json!({ "type": "what" }).to_string()),
        Message::text(format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000))),
        Message::text(format!(
            r#"{{"type": "subscribe", "id": "deep", "payload": {{"query": "{{ me {{ role }} }}", "variables": {{"x": {}1{}}}}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        )),
    ];
    for frame in frames {
        let mut socket = target.socket(&target.assistant).await;
        let _ = socket.next(Duration::from_secs(5)).await;
        let _ = socket.0.send(frame).await;
        let answer = socket.next(Duration::from_secs(3)).await;
        if let Some(answer) = answer {
            assert!(!answer.to_string().contains("\"INTERNAL\""), "{answer}");
        }
    }
}

async fn socket_caps(target: &Target) {
    let mut sockets = Vec::new();
    for _ in 0..4 {
        let mut socket = target.socket(&target.head).await;
        assert_eq!(socket.next(Duration::from_secs(5)).await.expect("an answer")["type"], "connection_ack");
        sockets.push(socket);
    }
    let mut fifth = target.socket(&target.head).await;
    let refused = fifth.next(Duration::from_secs(5)).await.unwrap_or(json!({ "type": "ended" }));
    assert_ne!(refused["type"], "connection_ack", "a user holds at most 4 sockets here: {refused}");

    let socket = &mut sockets[0];
    let subscription = "subscription { appealEvents { seq } }";
    for index in 0..40 {
        socket
            .send(json!({ "id": format!("s{index}"), "type": "subscribe", "payload": { "query": subscription } }))
            .await;
    }
    let mut refused = 0;
    while let Some(message) = socket.next(Duration::from_millis(1_500)).await {
        if message["payload"]["errors"][0]["message"].as_str().is_some_and(|text| text.contains("at most 32")) {
            refused += 1;
        }
    }
    assert_eq!(refused, 8, "a socket runs at most 32 operations at once");
    drop(sockets);
}

/// A channel message id known in another municipality tells a caller nothing:
/// it registers a separate appeal, as any new message would.
async fn no_existence_oracle(target: &Target) {
    let code = MunicipalityCode::parse("seversk").expect("a code");
    let name = PersonName::parse("Помощник главы Северска").expect("a name");
    let (_, other) = target.store.create_user(name, Role::Assistant, Some(&code)).await.expect("a user");
    let submit = "mutation($code: String!) { submitAppeal(input: { municipalityCode: $code, channel: TELEGRAM, externalId: \"tg-secret-1\", text: \"Нет света\" }) { created appeal { id municipality { code } } } }";
    let first = target.graphql(Some(&target.assistant), submit, json!({ "code": "tomsk" })).await;
    assert_eq!(first["data"]["submitAppeal"]["created"], true, "{first}");
    let probe = target.graphql(Some(other.expose()), submit, json!({ "code": "seversk" })).await;
    assert!(probe["errors"].is_null(), "no error tells the other municipality anything: {probe}");
    assert_eq!(probe["data"]["submitAppeal"]["created"], true, "{probe}");
    assert_eq!(probe["data"]["submitAppeal"]["appeal"]["municipality"]["code"], "seversk", "{probe}");
    assert_ne!(probe["data"]["submitAppeal"]["appeal"]["id"], first["data"]["submitAppeal"]["appeal"]["id"]);
    let repeat = target.graphql(Some(&target.assistant), submit, json!({ "code": "tomsk" })).await;
    assert_eq!(repeat["data"]["submitAppeal"]["created"], false, "a repeat is still one appeal: {repeat}");
}

/// Decomposed letters and `ё` are found as a reader sees them.
async fn search_reads_text_as_a_reader_does(target: &Target) {
    // "Зелёная скамейка сломана": `ё` as `е` + U+0308, `й` as `и` + U+0306.
    let decomposed = "Зеле\u{0308}ная скаме\u{0438}\u{0306}ка сломана";
    let submit = "mutation($text: String!) { submitAppeal(input: { municipalityCode: \"tomsk\", channel: WEB, text: $text }) { appeal { id text } } }";
    let submitted = target.graphql(Some(&target.assistant), submit, json!({ "text": decomposed })).await;
    let stored = submitted["data"]["submitAppeal"]["appeal"]["text"].as_str().expect("a text").to_owned();
    assert_eq!(stored, "Зелёная скамейка сломана", "stored composed (NFC), with its ё");
    let search = "query($text: String!) { appeals(filter: { text: $text }) { totalCount } }";
    for needle in ["зеленая", "ЗЕЛЁНАЯ", "скамейка", "скаме\u{0438}\u{0306}ка"] {
        let found = target.graphql(Some(&target.assistant), search, json!({ "text": needle })).await;
        assert_eq!(found["data"]["appeals"]["totalCount"], 1, "`{needle}` finds it: {found}");
    }
}

async fn shutdown_within_its_deadline(target: &mut Target) {
    let mut socket = target.socket(&target.assistant).await;
    assert_eq!(socket.next(Duration::from_secs(5)).await.expect("an answer")["type"], "connection_ack");
    let mut idle =
        TcpStream::connect(target.server.address().trim_start_matches("http://")).await.expect("a connection");
    let _ = idle.write_all(b"POST /graphql HTTP/1.1\r\nHost: appeals\r\nContent-Length: 100\r\n\r\n{").await;
    let took = target.server.terminate(Duration::from_secs(8));
    let took = took.expect("the server exits on SIGTERM within its deadline (3 s) and a margin");
    println!("stopped {took:?} after SIGTERM, with a socket and an unfinished request open");
    let closed = socket.until("close", Duration::from_secs(1)).await;
    assert!(closed.is_none_or(|message| message["code"] == 1001), "sockets are told the server goes away");
}
