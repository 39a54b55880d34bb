//! The `appealEvents` subscription over WebSocket (`graphql-transport-ws`): who
//! receives which events, how a connection authenticates, who is refused, and
//! that revoking a user ends their subscription.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use appeals_core::Role;
use appeals_storage::testing::on_both_databases;
use serde_json::{Value, json};

use crate::support::{Backend, TestApp, WsClient, error_code, spawn_app};

const EVENTS: &str =
    "subscription($code: String) { appealEvents(municipalityCode: $code) { seq kind appealId toStatus } }";
const SEE: &str =
    "mutation($id: ID!, $v: Int!) { markSeen(id: $id, expectedVersion: $v) { appeal { status version } } }";
const REVOKE: &str = "mutation($id: ID!) { revokeUser(id: $id) { user { id revoked } } }";

/// How long an expected message may take to arrive.
const ARRIVES_WITHIN: Duration = Duration::from_secs(10);
/// How long to listen before concluding that a message is not coming.
const QUIET_FOR: Duration = Duration::from_millis(500);

/// A subscription that is known to be listening, and the probe appeals that
/// proved it (whose events it skips).
struct LiveSubscription {
    socket: WsClient,
    probes: HashSet<String>,
}

impl LiveSubscription {
    /// Subscribes `socket` to `appealEvents` and returns once the subscription
    /// listens. The server starts a subscription's resolver only when it first
    /// polls the subscription's stream, some time after reading `subscribe`, so
    /// an event committed right after `subscribe` is sent could precede the
    /// listener. Probe appeals to `probe_municipality` are submitted until the
    /// event of one arrives; from then on every event is delivered.
    async fn start(
        app: &TestApp,
        intake: &str,
        mut socket: WsClient,
        municipality_code: Option<&str>,
        probe_municipality: &str,
    ) -> LiveSubscription {
        socket.subscribe("events", EVENTS, json!({ "code": municipality_code })).await;
        let mut probes = HashSet::new();
        let deadline = Instant::now() + ARRIVES_WITHIN;
        while Instant::now() < deadline {
            let probe = app.submit(intake, probe_municipality, "Проверка подписки").await;
            probes.insert(probe["id"].as_str().expect("a probe appeal id").to_owned());
            if let Some(message) = socket.next_message(Duration::from_millis(300)).await {
                let delivered = &message["payload"]["data"]["appealEvents"]["appealId"];
                assert!(
                    message["type"] == "next" && delivered.as_str().is_some_and(|id| probes.contains(id)),
                    "the first message of a live subscription should be a probe's event: {message}"
                );
                return LiveSubscription { socket, probes };
            }
        }
        panic!("no probe event reached the subscription within {ARRIVES_WITHIN:?}");
    }

    /// The next message other than a ping or a probe's event, or `None` if none
    /// arrives within `wait`.
    async fn next_message(&mut self, wait: Duration) -> Option<Value> {
        let deadline = Instant::now() + wait;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let message = self.socket.next_message(remaining).await?;
            let appeal_id = message["payload"]["data"]["appealEvents"]["appealId"].as_str();
            let is_probe = message["type"] == "next" && appeal_id.is_some_and(|id| self.probes.contains(id));
            if message["type"] != "ping" && !is_probe {
                return Some(message);
            }
        }
    }

    /// The next delivered event (`seq kind appealId toStatus`); fails the test on
    /// anything else or on silence.
    async fn next_event(&mut self) -> Value {
        let message = self.next_message(ARRIVES_WITHIN).await.expect("an event should arrive");
        assert_eq!(message["type"], "next", "expected an event: {message}");
        assert!(message["payload"]["errors"].is_null(), "expected an event without errors: {message}");
        message["payload"]["data"]["appealEvents"].clone()
    }

    /// Fails the test if any event (other than a probe's) arrives shortly.
    async fn assert_quiet(&mut self, context: &str) {
        if let Some(message) = self.next_message(QUIET_FOR).await {
            panic!("{context}: expected no message, got {message}");
        }
    }
}

fn id_of(appeal: &Value) -> String {
    appeal["id"].as_str().unwrap_or_else(|| panic!("an appeal with an id: {appeal}")).to_owned()
}

fn received(appeal_id: &str) -> Value {
    json!({ "seq": 1, "kind": "RECEIVED", "appealId": appeal_id, "toStatus": "RECEIVED" })
}

/// The error code of a subscription's refusal, whichever way the server sends
/// it: a `next` whose payload has errors, or an `error` message.
fn refusal_code(message: &Value) -> Option<&str> {
    match message["type"].as_str() {
        Some("next") => error_code(&message["payload"]),
        Some("error") => message["payload"][0]["extensions"]["code"].as_str(),
        _ => None,
    }
}

async fn a_head_receives_the_events_of_their_municipality_and_no_other(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let intake = app.token(Role::Intake, None).await;
    let head = app.token(Role::Head, Some("tomsk")).await;
    let socket = app.websocket(Some(&head), None).await.expect("the head should be accepted by the upgrade header");
    let mut subscription = LiveSubscription::start(&app, &intake, socket, None, "tomsk").await;

    let first = id_of(&app.submit(&intake, "tomsk", "Не убирают снег во дворе").await);
    assert_eq!(subscription.next_event().await, received(&first));

    let seen = app.graphql(Some(&head), SEE, json!({ "id": first, "v": 1 })).await;
    assert_eq!(seen["data"]["markSeen"]["appeal"]["status"], "SEEN", "{seen}");
    assert_eq!(
        subscription.next_event().await,
        json!({ "seq": 2, "kind": "SEEN", "appealId": first, "toStatus": "SEEN" })
    );

    let elsewhere = id_of(&app.submit(&intake, "seversk", "Не работает фонарь").await);
    let second = id_of(&app.submit(&intake, "tomsk", "Нет горячей воды").await);
    let next = subscription.next_event().await;
    assert_ne!(next["appealId"], json!(elsewhere), "a head of tomsk must not receive a seversk event");
    assert_eq!(next, received(&second));
    subscription.assert_quiet("after the last tomsk event").await;
}

async fn the_governors_office_receives_every_municipality_and_may_narrow_to_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let intake = app.token(Role::Intake, None).await;
    let governor = app.token(Role::GovernorOffice, None).await;
    let everything = app
        .websocket(None, Some(&governor))
        .await
        .expect("the governor's office should be accepted by the connection_init payload");
    let mut everything = LiveSubscription::start(&app, &intake, everything, None, "tomsk").await;
    let narrowed = app.websocket(None, Some(&governor)).await.expect("a second connection should be accepted");
    let mut narrowed = LiveSubscription::start(&app, &intake, narrowed, Some("seversk"), "seversk").await;
    everything.probes.extend(narrowed.probes.iter().cloned());

    let tomsk = id_of(&app.submit(&intake, "tomsk", "Яма у школы").await);
    let seversk = id_of(&app.submit(&intake, "seversk", "Яма у больницы").await);

    assert_eq!(everything.next_event().await, received(&tomsk));
    assert_eq!(everything.next_event().await, received(&seversk));
    assert_eq!(narrowed.next_event().await, received(&seversk), "the narrowed subscription skips tomsk");
    narrowed.assert_quiet("after the seversk event").await;
    everything.assert_quiet("after both events").await;
}

async fn a_subscriber_authenticates_by_the_upgrade_header_or_the_connection_init_payload(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let intake = app.token(Role::Intake, None).await;
    let assistant = app.token(Role::Assistant, Some("seversk")).await;
    for (way, header, payload) in [("header", Some(&assistant), None), ("payload", None, Some(&assistant))] {
        let socket = app
            .websocket(header.map(String::as_str), payload.map(String::as_str))
            .await
            .unwrap_or_else(|refusal| panic!("a token in the {way} should be accepted: {refusal}"));
        let mut subscription = LiveSubscription::start(&app, &intake, socket, None, "seversk").await;
        let appeal = id_of(&app.submit(&intake, "seversk", &format!("Обращение, подписка по {way}")).await);
        assert_eq!(subscription.next_event().await, received(&appeal), "authenticated by the {way}");
    }
}

async fn a_connection_without_a_valid_token_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.token(Role::Admin, None).await;
    let revoked = app.token(Role::Head, Some("tomsk")).await;
    let revoked_id = app.graphql(Some(&revoked), "{ me { id } }", json!({})).await["data"]["me"]["id"].clone();
    let revocation = app.graphql(Some(&admin), REVOKE, json!({ "id": revoked_id })).await;
    assert_eq!(revocation["data"]["revokeUser"]["user"]["revoked"], true, "{revocation}");

    let cases = [
        ("no token at all", None, None),
        ("an unknown token in the payload", None, Some("not-a-token")),
        ("an unknown token in the header", Some("not-a-token"), None),
        ("a revoked user's token", Some(revoked.as_str()), None),
    ];
    for (case, header, payload) in cases {
        match app.websocket(header, payload).await {
            Ok(_) => panic!("{case}: the connection was acknowledged"),
            Err(refusal) => assert!(
                refusal.contains("\"close\"") || refusal.contains("error"),
                "{case}: expected the server to close the socket or send an error, got {refusal}"
            ),
        }
    }
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200, "the server stays up after refusing connections");
}

async fn intake_services_and_admins_may_not_subscribe(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    for role in [Role::Intake, Role::Admin] {
        let token = app.token(role, None).await;
        let mut socket = app.websocket(Some(&token), None).await.expect("the connection itself is authenticated");
        socket.subscribe("events", EVENTS, json!({})).await;
        let message = socket.next_message(ARRIVES_WITHIN).await.expect("a refusal should arrive");
        assert_eq!(refusal_code(&message), Some("FORBIDDEN"), "{role}: {message}");
    }
}

async fn a_subscription_to_an_unknown_municipality_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let governor = app.token(Role::GovernorOffice, None).await;
    for (case, code) in [("an unknown municipality", "atlantis"), ("a malformed code", "tomsk' OR 1=1 --")] {
        let mut socket = app.websocket(Some(&governor), None).await.expect("the governor's office should be accepted");
        socket.subscribe("events", EVENTS, json!({ "code": code })).await;
        let message = socket.next_message(ARRIVES_WITHIN).await.expect("a refusal should arrive");
        assert_eq!(refusal_code(&message), Some("VALIDATION"), "{case}: {message}");
    }
}

async fn revoking_the_subscriber_ends_the_subscription(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let intake = app.token(Role::Intake, None).await;
    let admin = app.token(Role::Admin, None).await;
    let head = app.token(Role::Head, Some("tomsk")).await;
    let head_id = app.graphql(Some(&head), "{ me { id } }", json!({})).await["data"]["me"]["id"].clone();
    assert!(head_id.is_string(), "the head's id: {head_id}");
    let socket = app.websocket(Some(&head), None).await.expect("the head should be accepted");
    let mut subscription = LiveSubscription::start(&app, &intake, socket, None, "tomsk").await;

    let revocation = app.graphql(Some(&admin), REVOKE, json!({ "id": head_id })).await;
    assert_eq!(revocation["data"]["revokeUser"]["user"]["revoked"], true, "{revocation}");

    let ending = subscription.next_message(ARRIVES_WITHIN).await.expect("the subscription should be ended");
    // The subscription's own end and the socket's close race; either ends it.
    let ended = ending["type"] == "complete"
        || refusal_code(&ending) == Some("UNAUTHENTICATED")
        || (ending["type"] == "close" && ending["code"] == 4403);
    assert!(ended, "expected UNAUTHENTICATED, complete or a 4403 close, got {ending}");

    let after = id_of(&app.submit(&intake, "tomsk", "Обращение после отзыва").await);
    let deadline = Instant::now() + QUIET_FOR;
    while let Some(message) = subscription.next_message(deadline.saturating_duration_since(Instant::now())).await {
        assert_ne!(message["type"], "next", "a revoked user received an event after the end ({after}): {message}");
    }
    assert!(app.websocket(Some(&head), None).await.is_err(), "a revoked user cannot connect again");
}

on_both_databases!(
    a_head_receives_the_events_of_their_municipality_and_no_other,
    the_governors_office_receives_every_municipality_and_may_narrow_to_one,
    a_subscriber_authenticates_by_the_upgrade_header_or_the_connection_init_payload,
    a_connection_without_a_valid_token_is_refused,
    intake_services_and_admins_may_not_subscribe,
    a_subscription_to_an_unknown_municipality_is_refused,
    revoking_the_subscriber_ends_the_subscription,
);

/// An operation that GraphQL validation refuses is `VALIDATION` over a
/// WebSocket too, as over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_that_fails_validation_is_coded_validation() {
    let Some(app) = spawn_app(Backend::Sqlite).await else { return };
    let head = app.token(Role::Head, Some("tomsk")).await;
    let mut socket = app.websocket(None, Some(&head)).await.expect("the socket opens");
    socket.subscribe("1", "subscription { appealEvents { seq password } }", json!({})).await;
    let message = socket.next_message(ARRIVES_WITHIN).await.expect("an answer");
    assert_eq!(message["type"], "next", "{message}");
    assert_eq!(message["payload"]["errors"][0]["extensions"]["code"], "VALIDATION", "{message}");
}
