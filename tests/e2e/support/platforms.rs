//! Fake Telegram, VK and MAX APIs: one local HTTP server that answers the calls
//! the delivery worker makes as the platforms' documentation says they answer,
//! and records every call it receives.
//!
//! What a resident would see is kept apart from what was called: VK drops a
//! `messages.send` that repeats a `random_id` of the same conversation, and a
//! `wall.createComment` that repeats a `guid`, as VK does, so a repeated call
//! is received but not delivered twice. Telegram and MAX deliver every call
//! they accept.
//!
//! A test scripts the next answers ([`FakePlatforms::script`]): a status and
//! body, or [`Scripted::Hold`], which accepts the call (a resident would see
//! it) and never answers, as when the server is killed while the platform is
//! answering.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

/// A call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    /// `telegram`, `vk` or `max`.
    pub platform: &'static str,
    /// The path without the query, with Telegram's token as sent.
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    /// The JSON body, or the form as an object of strings.
    pub body: Value,
    /// The id the platform gave the message it delivered (in `delivered()` only).
    pub sent_id: Option<i64>,
}

impl Call {
    /// The message's text, whichever platform.
    pub fn text(&self) -> &str {
        self.body["text"].as_str().or_else(|| self.body["message"].as_str()).unwrap_or_default()
    }
}

/// An answer a test chose for the next call.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// Answer with this status, body and `Retry-After` header; the call
    /// delivers nothing.
    Answer { status: u16, body: Value, retry_after: Option<u64> },
    /// Deliver the message and never answer.
    Hold,
}

#[derive(Default)]
struct Recorded {
    calls: Vec<Call>,
    /// What residents received: (platform, the call) for every message delivered.
    delivered: Vec<Call>,
    script: VecDeque<Scripted>,
    vk_random_ids: HashMap<(String, String), i64>,
    vk_guids: HashMap<String, i64>,
    next_id: i64,
}

/// The fake APIs, on a port of their own, for as long as this lives.
pub struct FakePlatforms {
    pub url: String,
    recorded: Arc<Mutex<Recorded>>,
    server: tokio::task::JoinHandle<()>,
    /// Tokens the fake accepts; any other is refused as the platform would.
    tokens: Arc<Mutex<HashSet<String>>>,
}

impl Drop for FakePlatforms {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Clone)]
struct Fake {
    recorded: Arc<Mutex<Recorded>>,
    tokens: Arc<Mutex<HashSet<String>>>,
}

impl FakePlatforms {
    pub async fn start() -> FakePlatforms {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port for the fake platforms");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let recorded = Arc::new(Mutex::new(Recorded { next_id: 5000, ..Recorded::default() }));
        let tokens = Arc::new(Mutex::new(HashSet::new()));
        let fake = Fake { recorded: Arc::clone(&recorded), tokens: Arc::clone(&tokens) };
        let router = Router::new().fallback(answer).with_state(fake);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakePlatforms { url, recorded, server, tokens }
    }

    /// Makes `token` one the platforms accept.
    pub fn accept_token(&self, token: &str) {
        self.tokens.lock().expect("the fake's lock").insert(token.to_owned());
    }

    /// Queues answers for the next calls, in order; after them, calls succeed.
    pub fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.recorded.lock().expect("the fake's lock").script.extend(answers);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.recorded.lock().expect("the fake's lock").calls.clone()
    }

    pub fn delivered(&self) -> Vec<Call> {
        self.recorded.lock().expect("the fake's lock").delivered.clone()
    }

    /// Waits until `count` calls have arrived, or `within` passes; returns them.
    pub async fn wait_for_calls(&self, count: usize, within: Duration) -> Vec<Call> {
        let deadline = Instant::now() + within;
        loop {
            let calls = self.calls();
            if calls.len() >= count || Instant::now() >= deadline {
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `count` messages have been delivered, or `within` passes.
    pub async fn wait_for_delivered(&self, count: usize, within: Duration) -> Vec<Call> {
        let deadline = Instant::now() + within;
        loop {
            let delivered = self.delivered();
            if delivered.len() >= count || Instant::now() >= deadline {
                return delivered;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn answer(
    State(fake): State<Fake>,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let platform = if path.starts_with("/bot") {
        "telegram"
    } else if path.starts_with("/method/") {
        "vk"
    } else {
        "max"
    };
    let is_json =
        headers.get("content-type").and_then(|value| value.to_str().ok()).is_some_and(|value| value.contains("json"));
    let body = if is_json {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else {
        let form = form_urlencoded::parse(&body).into_owned();
        Value::Object(form.map(|(name, value)| (name, Value::String(value))).collect::<Map<_, _>>())
    };
    let call = Call {
        at: Instant::now(),
        platform,
        path: path.clone(),
        query: query.unwrap_or_default(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body,
        sent_id: None,
    };
    let token = match platform {
        "telegram" => path.trim_start_matches("/bot").split('/').next().unwrap_or_default().to_owned(),
        "vk" => call.body["access_token"].as_str().unwrap_or_default().to_owned(),
        _ => call
            .headers
            .iter()
            .find(|(name, _)| name == "authorization")
            .map(|(_, value)| value.clone())
            .unwrap_or_default(),
    };
    let token_accepted = fake.tokens.lock().expect("the fake's lock").contains(&token);
    let (scripted, response) = {
        let mut recorded = fake.recorded.lock().expect("the fake's lock");
        recorded.calls.push(call.clone());
        let scripted = recorded.script.pop_front();
        let response = match &scripted {
            Some(Scripted::Answer { status, body, retry_after }) => {
                let mut response =
                    (StatusCode::from_u16(*status).unwrap_or(StatusCode::OK), axum::Json(body.clone())).into_response();
                if let Some(seconds) = retry_after {
                    response.headers_mut().insert("retry-after", (*seconds).into());
                }
                Some(response)
            }
            None | Some(Scripted::Hold) if !token_accepted => Some(refuse_token(platform)),
            None | Some(Scripted::Hold) => Some(success(&mut recorded, &call)),
        };
        (scripted, response)
    };
    if matches!(scripted, Some(Scripted::Hold)) && token_accepted {
        // Delivered; the answer never comes.
        std::future::pending::<()>().await;
    }
    response.unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn refuse_token(platform: &str) -> Response {
    match platform {
        "telegram" => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
        )
            .into_response(),
        "vk" => axum::Json(
            json!({"error": {"error_code": 5, "error_msg": "User authorization failed: invalid access_token (4)."}}),
        )
        .into_response(),
        _ => (StatusCode::UNAUTHORIZED, axum::Json(json!({"code": "verify.token", "message": "Invalid access_token"})))
            .into_response(),
    }
}

/// The platform's answer to a message it accepted, recording the delivery.
fn success(recorded: &mut Recorded, call: &Call) -> Response {
    recorded.next_id += 1;
    let id = recorded.next_id;
    match call.platform {
        "telegram" => {
            recorded.delivered.push(Call { sent_id: Some(id), ..call.clone() });
            let chat_id = call.body["chat_id"].clone();
            axum::Json(json!({"ok": true, "result": {
                "message_id": id, "date": 1767225610, "text": call.body["text"],
                "chat": {"id": chat_id, "type": "private"},
                "from": {"id": 7000000001i64, "is_bot": true, "first_name": "Приёмная главы"}
            }}))
            .into_response()
        }
        "vk" if call.path.ends_with("messages.send") => {
            let key = (
                call.body["peer_id"].as_str().unwrap_or_default().to_owned(),
                call.body["random_id"].as_str().unwrap_or_default().to_owned(),
            );
            let message_id = match recorded.vk_random_ids.get(&key) {
                Some(first) => *first,
                None => {
                    recorded.vk_random_ids.insert(key, id);
                    recorded.delivered.push(Call { sent_id: Some(id), ..call.clone() });
                    id
                }
            };
            axum::Json(json!({"response": message_id})).into_response()
        }
        "vk" => {
            let guid = call.body["guid"].as_str().unwrap_or_default().to_owned();
            let comment_id = match recorded.vk_guids.get(&guid) {
                Some(first) => *first,
                None => {
                    recorded.vk_guids.insert(guid, id);
                    recorded.delivered.push(Call { sent_id: Some(id), ..call.clone() });
                    id
                }
            };
            axum::Json(json!({"response": {"comment_id": comment_id, "parents_stack": []}})).into_response()
        }
        _ => {
            recorded.delivered.push(Call { sent_id: Some(id), ..call.clone() });
            axum::Json(json!({"message": {
                "recipient": {"chat_id": 68524973, "chat_type": "dialog"},
                "timestamp": 1767229201000i64,
                "body": {"mid": format!("mid.sent.{id}"), "seq": id, "text": call.body["text"]},
                "sender": {"user_id": 90000001, "first_name": "Приёмная главы", "is_bot": true}
            }}))
            .into_response()
        }
    }
}
