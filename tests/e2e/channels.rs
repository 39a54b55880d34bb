//! Appeals from Telegram, VK and MAX, and the replies back, through the real
//! webhooks and a fake of each platform's API ([`FakePlatforms`]) that records
//! what it receives. The payloads are the platforms' documented examples (kept
//! with the parsers' tests in `crates/core/tests/data/channels/`), with their
//! ids changed where a test needs several.

use std::time::{Duration, Instant};

use appeals_core::Role;
use appeals_storage::testing::on_both_databases;
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::platforms::{FakePlatforms, Scripted};
use crate::support::{Backend, TestApp, error_code, spawn_app_with};

on_both_databases!(
    an_update_sent_many_times_at_once_creates_one_appeal_and_one_acknowledgement,
    wrong_missing_and_other_municipalities_secrets_are_refused_and_store_nothing,
    updates_that_are_not_appeals_are_acknowledged_and_create_nothing,
    malformed_and_oversized_bodies_are_refused_with_a_4xx,
    vk_confirmation_is_answered_with_the_configured_string,
    a_follow_up_is_threaded_onto_the_open_appeal_and_a_message_after_resolution_starts_a_new_one,
    the_three_replies_reach_each_platform_with_their_texts_and_reply_targets,
    delivery_is_retried_after_failures_and_after_a_429_with_retry_after,
    a_blocked_bot_is_a_failed_reply_with_the_platforms_reason_and_can_be_resent,
    attachments_are_recorded_and_shown_and_the_text_stays_the_appeals,
    only_admins_configure_channels_and_no_secret_is_ever_returned,
    a_municipality_writes_its_own_reply_texts,
    a_flood_of_forged_calls_is_limited_while_the_platform_and_other_clients_are_served,
);

pub const TELEGRAM_MESSAGE: &str = include_str!("../../crates/core/tests/data/channels/telegram_message.json");
pub const TELEGRAM_PHOTO: &str = include_str!("../../crates/core/tests/data/channels/telegram_photo_caption.json");
pub const VK_MESSAGE: &str = include_str!("../../crates/core/tests/data/channels/vk_message_new.json");
const VK_PHOTO: &str = include_str!("../../crates/core/tests/data/channels/vk_message_new_photo.json");
const VK_WALL_REPLY: &str = include_str!("../../crates/core/tests/data/channels/vk_wall_reply_new.json");
const VK_CONFIRMATION: &str = include_str!("../../crates/core/tests/data/channels/vk_confirmation.json");
const MAX_MESSAGE: &str = include_str!("../../crates/core/tests/data/channels/max_message_created.json");

/// Every update the platforms send that is not an appeal, by platform.
const IGNORED: &[(&str, &str)] = &[
    ("telegram", include_str!("../../crates/core/tests/data/channels/telegram_edited_message.json")),
    ("telegram", include_str!("../../crates/core/tests/data/channels/telegram_sticker.json")),
    ("telegram", include_str!("../../crates/core/tests/data/channels/telegram_photo_without_caption.json")),
    ("telegram", include_str!("../../crates/core/tests/data/channels/telegram_location.json")),
    ("telegram", include_str!("../../crates/core/tests/data/channels/telegram_callback_query.json")),
    ("telegram", include_str!("../../crates/core/tests/data/channels/telegram_my_chat_member.json")),
    ("telegram", include_str!("../../crates/core/tests/data/channels/telegram_new_chat_members.json")),
    ("telegram", include_str!("../../crates/core/tests/data/channels/telegram_start.json")),
    ("telegram", include_str!("../../crates/core/tests/data/channels/telegram_channel_post.json")),
    ("telegram", include_str!("../../crates/core/tests/data/channels/telegram_automatic_forward.json")),
    (
        "telegram",
        r#"{"update_id": 734151999, "message_reaction": {"chat": {"id": 1, "type": "private"}, "message_id": 2, "date": 1767225600}}"#,
    ),
    ("vk", include_str!("../../crates/core/tests/data/channels/vk_message_edit.json")),
    ("vk", include_str!("../../crates/core/tests/data/channels/vk_message_reply.json")),
    ("vk", include_str!("../../crates/core/tests/data/channels/vk_message_new_sticker.json")),
    ("vk", include_str!("../../crates/core/tests/data/channels/vk_message_start_button.json")),
    ("vk", include_str!("../../crates/core/tests/data/channels/vk_wall_post_new.json")),
    ("vk", include_str!("../../crates/core/tests/data/channels/vk_wall_reply_community.json")),
    (
        "vk",
        r#"{"group_id": 229123456, "type": "group_join", "event_id": "x1", "v": "5.199", "object": {"user_id": 1, "join_type": "join"}, "secret": "SECRET"}"#,
    ),
    ("max", include_str!("../../crates/core/tests/data/channels/max_bot_started.json")),
    ("max", include_str!("../../crates/core/tests/data/channels/max_message_edited.json")),
    ("max", include_str!("../../crates/core/tests/data/channels/max_message_callback.json")),
    ("max", include_str!("../../crates/core/tests/data/channels/max_message_from_bot.json")),
    ("max", include_str!("../../crates/core/tests/data/channels/max_message_sticker.json")),
    (
        "max",
        r#"{"update_type": "user_added", "timestamp": 1767229200000, "chat_id": 1, "user": {"user_id": 1, "name": "x"}}"#,
    ),
];

/// The VK community of the documented examples.
pub const VK_GROUP: &str = "229123456";

const APPEALS: &str = "query($channel: Channel) { appeals(filter: { channel: $channel }, first: 8) { totalCount edges { node { \
    id number status version text channel externalId authorName authorContact dueAt \
    attachments { kind fileId fileName latitude longitude platformType } \
    replies { id kind status attempts lastError sentAt text } \
    history(first: 10) { seq kind note actor { id } } } } } }";
const SEE: &str = "mutation($id: ID!, $v: Int!) { markSeen(id: $id, expectedVersion: $v) { appeal { version } } }";
const RESOLVE: &str = "mutation($id: ID!, $v: Int!, $response: String!) { resolveAppeal(id: $id, expectedVersion: $v, \
    input: { outcome: SATISFIED, response: $response }) { appeal { version } } }";
const CONFIGURE: &str = "mutation($input: ConfigureChannelInput!) { configureChannel(input: $input) { settings { \
    channel enabled webhookPath hasWebhookSecret hasBotToken vkGroupId hasVkConfirmation lastUpdateAt lastError } } }";

/// A server whose delivery worker talks to the fake platforms, and the tokens
/// of the people who work with it.
pub struct Setup {
    pub app: TestApp,
    pub fake: FakePlatforms,
    pub admin: String,
    pub head: String,
    pub assistant: String,
}

impl Setup {
    pub async fn start(backend: Backend) -> Option<Setup> {
        let fake = FakePlatforms::start().await;
        let url = fake.url.clone();
        let app = spawn_app_with(backend, |config| {
            config.channels.delivery.telegram_api_url = url.clone();
            config.channels.delivery.vk_api_url = url.clone();
            config.channels.delivery.max_api_url = url;
            config.channels.delivery.lease = Duration::from_secs(3);
            config.channels.delivery.poll_interval = Duration::from_millis(200);
        })
        .await?;
        let admin = app.token(Role::Admin, None).await;
        let head = app.token(Role::Head, Some("tomsk")).await;
        let assistant = app.token(Role::Assistant, Some("tomsk")).await;
        Some(Setup { app, fake, admin, head, assistant })
    }

    /// Configures `code`'s `channel` with `secret` and a bot token the fake accepts.
    pub async fn configure(&self, code: &str, channel: &str, secret: &str) -> Value {
        let token = format!("{channel}-token-of-{code}");
        self.fake.accept_token(&token);
        let mut input =
            json!({ "municipalityCode": code, "channel": channel, "webhookSecret": secret, "botToken": token });
        if channel == "VK" {
            input["vkGroupId"] = json!(VK_GROUP);
            input["vkConfirmation"] = json!(format!("confirm-{code}"));
        }
        let answer = self.app.graphql(Some(&self.admin), CONFIGURE, json!({ "input": input })).await;
        assert!(answer["errors"].is_null(), "{answer}");
        answer["data"]["configureChannel"]["settings"].clone()
    }

    /// Posts `body` to `/hooks/{platform}/{code}` with `secret` where the
    /// platform puts it (a header, or VK's `secret` field).
    pub async fn hook(&self, platform: &str, code: &str, secret: Option<&str>, body: &Value) -> reqwest::Response {
        let mut body = body.clone();
        let mut request = self.app.client.post(format!("{}/hooks/{platform}/{code}", self.app.address));
        match (platform, secret) {
            ("telegram", Some(secret)) => request = request.header("X-Telegram-Bot-Api-Secret-Token", secret),
            ("max", Some(secret)) => request = request.header("X-Max-Bot-Api-Secret", secret),
            ("vk", Some(secret)) => body["secret"] = json!(secret),
            ("vk", None) => {
                body.as_object_mut().map(|object| object.remove("secret"));
            }
            _ => {}
        }
        request.json(&body).send().await.expect("the server should answer")
    }

    pub async fn appeals(&self, channel: Option<&str>) -> Vec<Value> {
        let answer = self.app.graphql(Some(&self.assistant), APPEALS, json!({ "channel": channel })).await;
        assert!(answer["errors"].is_null(), "{answer}");
        let mut appeals: Vec<Value> = answer["data"]["appeals"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|edge| edge["node"].clone())
            .collect();
        appeals.reverse(); // oldest first
        appeals
    }

    /// Waits until every reply of every appeal has left `PENDING`.
    pub async fn settled(&self, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let appeals = self.appeals(None).await;
            let pending = appeals
                .iter()
                .flat_map(|appeal| appeal["replies"].as_array().cloned().unwrap_or_default())
                .any(|reply| reply["status"] == "PENDING");
            if !pending || Instant::now() >= deadline {
                return appeals;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Tomsk's Telegram channel, and a resident's message whose acknowledgement
    /// the platform refuses for good (403: the resident blocked the bot); the
    /// appeals once no reply is pending.
    pub async fn an_acknowledgement_refused_by_a_blocked_bot(&self) -> Vec<Value> {
        self.configure("tomsk", "TELEGRAM", "SECRET").await;
        let blocked =
            json!({ "ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user" });
        self.fake.script([Scripted::Answer { status: 403, body: blocked, retry_after: None }]);
        let message = telegram_message(1, 801, 41, "Сломана скамейка в парке");
        assert_eq!(self.hook("telegram", "tomsk", Some("SECRET"), &message).await.status(), 200);
        self.settled(Duration::from_secs(15)).await
    }

    /// markSeen by the head, then resolveAppeal by the assistant.
    pub async fn resolve(&self, id: &str, response: &str) {
        let seen = self.app.graphql(Some(&self.head), SEE, json!({ "id": id, "v": 1 })).await;
        assert!(seen["errors"].is_null(), "{seen}");
        let resolved =
            self.app.graphql(Some(&self.assistant), RESOLVE, json!({ "id": id, "v": 2, "response": response })).await;
        assert!(resolved["errors"].is_null(), "{resolved}");
    }
}

/// The documented Telegram message with its ids replaced.
pub fn telegram_message(update_id: i64, chat_id: i64, message_id: i64, text: &str) -> Value {
    let mut update: Value = serde_json::from_str(TELEGRAM_MESSAGE).expect("the example");
    update["update_id"] = json!(update_id);
    update["message"]["message_id"] = json!(message_id);
    update["message"]["chat"]["id"] = json!(chat_id);
    update["message"]["from"]["id"] = json!(chat_id);
    update["message"]["text"] = json!(text);
    update
}

/// The documented VK private message with its ids replaced.
pub fn vk_message(peer_id: i64, conversation_message_id: i64, text: &str) -> Value {
    let mut update: Value = serde_json::from_str(VK_MESSAGE).expect("the example");
    let message = &mut update["object"]["message"];
    message["peer_id"] = json!(peer_id);
    message["from_id"] = json!(peer_id);
    message["conversation_message_id"] = json!(conversation_message_id);
    message["id"] = json!(conversation_message_id + 400);
    message["text"] = json!(text);
    update
}

pub fn example(text: &str) -> Value {
    serde_json::from_str(text).expect("a documented example")
}

async fn an_update_sent_many_times_at_once_creates_one_appeal_and_one_acknowledgement(backend: Backend) {
    let Some(setup) = Setup::start(backend).await else { return };
    setup.configure("tomsk", "TELEGRAM", "tg-secret-1").await;
    let update = example(TELEGRAM_MESSAGE);
    let copies = join_all((0..20).map(|_| setup.hook("telegram", "tomsk", Some("tg-secret-1"), &update))).await;
    for copy in &copies {
        assert_eq!(copy.status(), 200, "every copy is acknowledged");
    }
    let appeals = setup.settled(Duration::from_secs(15)).await;
    assert_eq!(appeals.len(), 1, "one appeal for one message: {appeals:#?}");
    let appeal = &appeals[0];
    assert_eq!(appeal["channel"], "TELEGRAM");
    assert_eq!(appeal["text"], update["message"]["text"]);
    assert_eq!(appeal["authorName"], "Иван Петров");
    assert_eq!(appeal["authorContact"], "@ivan_petrov");
    assert_eq!(appeal["history"][0]["kind"], "RECEIVED");
    assert!(appeal["history"][0]["actor"].is_null(), "the system registered it");
    let replies = appeal["replies"].as_array().expect("replies");
    assert_eq!(replies.len(), 1, "one acknowledgement: {replies:?}");
    assert_eq!(replies[0]["kind"], "ACKNOWLEDGEMENT");
    assert_eq!(replies[0]["status"], "SENT", "{replies:?}");
    assert_eq!(setup.fake.delivered().len(), 1, "the resident got one message");
}

async fn wrong_missing_and_other_municipalities_secrets_are_refused_and_store_nothing(backend: Backend) {
    let Some(setup) = Setup::start(backend).await else { return };
    for channel in ["TELEGRAM", "VK", "MAX"] {
        setup.configure("tomsk", channel, "tomsk-secret").await;
        setup.configure("seversk", channel, "seversk-secret").await;
    }
    let bodies = [("telegram", example(TELEGRAM_MESSAGE)), ("vk", example(VK_MESSAGE)), ("max", example(MAX_MESSAGE))];
    for (platform, body) in &bodies {
        for (code, secret) in [
            ("tomsk", Some("tomsk-secreT")),
            ("tomsk", Some("tomsk-secret-")),
            ("tomsk", Some("")),
            ("tomsk", None),
            ("tomsk", Some("seversk-secret")),
            ("kolpashevo", Some("tomsk-secret")),
            ("no-such-place", Some("tomsk-secret")),
        ] {
            let answer = setup.hook(platform, code, secret, body).await;
            assert_eq!(answer.status(), 401, "{platform} to {code} with {secret:?}");
        }
    }
    assert!(setup.appeals(None).await.is_empty(), "nothing stored");
    assert!(setup.fake.calls().is_empty(), "nothing sent");
    // The right secret is still accepted after all those refusals.
    for (platform, body) in &bodies {
        let answer = setup.hook(platform, "tomsk", Some("tomsk-secret"), body).await;
        assert_eq!(answer.status(), 200, "{platform} with the right secret");
    }
    assert_eq!(setup.appeals(None).await.len(), 3);
}

async fn updates_that_are_not_appeals_are_acknowledged_and_create_nothing(backend: Backend) {
    let Some(setup) = Setup::start(backend).await else { return };
    for channel in ["TELEGRAM", "VK", "MAX"] {
        setup.configure("tomsk", channel, "SECRET").await;
    }
    for (platform, body) in IGNORED {
        let answer = setup.hook(platform, "tomsk", Some("SECRET"), &example(body)).await;
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        assert_eq!(status, 200, "{platform} {body}: {text}");
        if *platform == "vk" {
            assert_eq!(text, "ok", "VK is answered `ok`");
        }
    }
    assert!(setup.appeals(None).await.is_empty(), "nothing registered");
    assert!(setup.fake.calls().is_empty(), "nothing sent");
}

async fn malformed_and_oversized_bodies_are_refused_with_a_4xx(backend: Backend) {
    let Some(setup) = Setup::start(backend).await else { return };
    for channel in ["TELEGRAM", "VK", "MAX"] {
        setup.configure("tomsk", channel, "SECRET").await;
    }
    // A connection per request: the server closes one after refusing an
    // oversized body, and reusing it would fail the next request for no fault
    // of the server's.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("a client");
    for platform in ["telegram", "vk", "max"] {
        let url = format!("{}/hooks/{platform}/tomsk", setup.app.address);
        for body in [&b"{not json"[..], b"[1, 2]", b"\"text\"", b"", &[0xff, 0xfe, 0x00]] {
            let answer = client
                .post(&url)
                .header("X-Telegram-Bot-Api-Secret-Token", "SECRET")
                .header("X-Max-Bot-Api-Secret", "SECRET")
                .body(body.to_vec())
                .send()
                .await
                .expect("an answer");
            let status = answer.status().as_u16();
            assert!((400..500).contains(&status), "{platform} {body:?}: {status}");
        }
        let oversized = format!("{{\"update_id\": 1, \"pad\": \"{}\"}}", "я".repeat(1024 * 1024));
        let answer = client
            .post(&url)
            .header("X-Telegram-Bot-Api-Secret-Token", "SECRET")
            .header("X-Max-Bot-Api-Secret", "SECRET")
            .body(oversized)
            .send()
            .await;
        match answer {
            Ok(answer) => assert_eq!(answer.status(), 413, "{platform}: an oversized body"),
            // The server may answer 413 and close the connection before the
            // client has finished sending; the client then sees the write fail.
            Err(error) => assert!(error.is_request() || error.is_body(), "{platform}: an oversized body: {error}"),
        }
    }
    // Known updates without their documented fields.
    let no_chat = json!({ "update_id": 5, "message": { "message_id": 1, "date": 1, "text": "без чата" } });
    assert_eq!(setup.hook("telegram", "tomsk", Some("SECRET"), &no_chat).await.status(), 400);
    let no_peer = json!({ "group_id": 229123456, "type": "message_new", "object": { "message": { "text": "x" } } });
    assert_eq!(setup.hook("vk", "tomsk", Some("SECRET"), &no_peer).await.status(), 400);
    let no_body =
        json!({ "update_type": "message_created", "timestamp": 1, "message": { "sender": { "user_id": 1 } } });
    assert_eq!(setup.hook("max", "tomsk", Some("SECRET"), &no_body).await.status(), 400);
    assert!(setup.appeals(None).await.is_empty(), "nothing stored");
    let healthy = setup.app.get("/healthz").await;
    assert_eq!(healthy.status(), 200, "the server still serves");
}

async fn vk_confirmation_is_answered_with_the_configured_string(backend: Backend) {
    let Some(setup) = Setup::start(backend).await else { return };
    setup.configure("tomsk", "VK", "SECRET").await;
    let url = format!("{}/hooks/vk/tomsk", setup.app.address);
    let answer = setup.app.client.post(&url).json(&example(VK_CONFIRMATION)).send().await.expect("an answer");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.expect("a body"), "confirm-tomsk", "the configured string, as the plain body");
    let other = json!({ "type": "confirmation", "group_id": 1 });
    let answer = setup.app.client.post(&url).json(&other).send().await.expect("an answer");
    assert_eq!(answer.status(), 401, "another community learns nothing");
    let unconfigured = setup
        .app
        .client
        .post(format!("{}/hooks/vk/seversk", setup.app.address))
        .json(&example(VK_CONFIRMATION))
        .send()
        .await
        .expect("an answer");
    assert_eq!(unconfigured.status(), 401, "a municipality without VK");
}

async fn a_follow_up_is_threaded_onto_the_open_appeal_and_a_message_after_resolution_starts_a_new_one(
    backend: Backend,
) {
    let Some(setup) = Setup::start(backend).await else { return };
    setup.configure("tomsk", "TELEGRAM", "SECRET").await;
    let first = telegram_message(1, 501, 10, "Не горят фонари на Ленина, 12");
    assert_eq!(setup.hook("telegram", "tomsk", Some("SECRET"), &first).await.status(), 200);
    let delivered = setup.fake.wait_for_delivered(1, Duration::from_secs(15)).await;
    assert_eq!(delivered.len(), 1, "the acknowledgement");

    // A reply to the engine's acknowledgement, by the id the platform gave it.
    let acknowledgement_id = delivered[0].sent_id.expect("the platform's id of the acknowledgement");
    let mut reply = telegram_message(2, 501, 11, "Уточняю: и у дома 14 тоже");
    reply["message"]["reply_to_message"] = json!({ "message_id": acknowledgement_id, "date": 1767225610, "chat": { "id": 501, "type": "private" }, "text": "…" });
    assert_eq!(setup.hook("telegram", "tomsk", Some("SECRET"), &reply).await.status(), 200);
    // And a plain message in the same chat, within the window.
    let plain = telegram_message(3, 501, 12, "Фото приложу позже");
    assert_eq!(setup.hook("telegram", "tomsk", Some("SECRET"), &plain).await.status(), 200);
    // The same follow-up again changes nothing.
    assert_eq!(setup.hook("telegram", "tomsk", Some("SECRET"), &plain).await.status(), 200);
    // Another resident writes at the same time: their own appeal.
    let other = telegram_message(4, 777, 1, "Во дворе не убран снег");
    assert_eq!(setup.hook("telegram", "tomsk", Some("SECRET"), &other).await.status(), 200);

    let appeals = setup.settled(Duration::from_secs(15)).await;
    assert_eq!(appeals.len(), 2, "the follow-ups made no appeal: {appeals:#?}");
    let appeal = &appeals[0];
    assert_eq!(appeal["text"], "Не горят фонари на Ленина, 12", "the text stays the first message's");
    let kinds: Vec<&str> =
        appeal["history"].as_array().unwrap().iter().map(|event| event["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["RECEIVED", "RESIDENT_MESSAGE", "RESIDENT_MESSAGE"], "{appeal}");
    assert_eq!(appeal["history"][1]["note"], "Уточняю: и у дома 14 тоже");
    assert_eq!(appeal["history"][2]["note"], "Фото приложу позже");
    assert!(appeal["history"][1]["actor"].is_null(), "the resident is no user");
    assert_eq!(appeal["version"], 1, "a follow-up does not make an official's version stale");

    // Resolved: the next message is a new appeal, acknowledged in its turn.
    let id = appeal["id"].as_str().unwrap();
    setup.resolve(id, "Фонари заменили").await;
    let after = telegram_message(5, 501, 13, "Спасибо! А ещё на Кирова яма");
    assert_eq!(setup.hook("telegram", "tomsk", Some("SECRET"), &after).await.status(), 200);
    let appeals = setup.settled(Duration::from_secs(15)).await;
    assert_eq!(appeals.len(), 3, "a message after the resolution is a new appeal");
    assert_eq!(appeals[2]["text"], "Спасибо! А ещё на Кирова яма");
    assert_eq!(appeals[2]["replies"][0]["kind"], "ACKNOWLEDGEMENT");
}

async fn the_three_replies_reach_each_platform_with_their_texts_and_reply_targets(backend: Backend) {
    let Some(setup) = Setup::start(backend).await else { return };
    for channel in ["TELEGRAM", "VK", "MAX"] {
        setup.configure("tomsk", channel, "SECRET").await;
    }
    let messages = [
        ("telegram", telegram_message(1, 601, 21, "Телеграм: яма на Ленина")),
        ("vk", vk_message(2222222, 37, "ВК: не вывозят мусор")),
        ("vk", example(VK_WALL_REPLY)),
        ("max", example(MAX_MESSAGE)),
    ];
    for (platform, body) in &messages {
        assert_eq!(setup.hook(platform, "tomsk", Some("SECRET"), body).await.status(), 200, "{platform}");
    }
    let appeals = setup.settled(Duration::from_secs(20)).await;
    assert_eq!(appeals.len(), 4);
    for appeal in &appeals {
        setup.resolve(appeal["id"].as_str().unwrap(), &format!("Ответ по обращению {}", appeal["number"])).await;
    }
    let appeals = setup.settled(Duration::from_secs(20)).await;
    let delivered = setup.fake.delivered();
    assert_eq!(delivered.len(), 12, "three replies to each of four appeals: {delivered:#?}");

    for appeal in &appeals {
        let number = appeal["number"].as_str().unwrap();
        let replies = appeal["replies"].as_array().unwrap();
        let kinds: Vec<&str> = replies.iter().map(|reply| reply["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["ACKNOWLEDGEMENT", "SEEN_NOTICE", "ANSWER"], "{appeal}");
        for reply in replies {
            assert_eq!(reply["status"], "SENT", "{reply}");
            assert!(reply["sentAt"].is_string(), "{reply}");
        }
        let texts: Vec<&str> = replies.iter().map(|reply| reply["text"].as_str().unwrap()).collect();
        assert!(texts[0].contains(number) && texts[0].contains("зарегистрировано"), "{}", texts[0]);
        assert!(texts[1].contains(number) && texts[1].contains("прочитано"), "{}", texts[1]);
        assert!(texts[2].contains(&format!("Ответ по обращению \"{number}\"")), "{}", texts[2]);
        // The due date, as the resident reads it (dd.mm.yyyy, in Tomsk's time).
        let due: chrono::DateTime<chrono::FixedOffset> = appeal["dueAt"].as_str().unwrap().parse().unwrap();
        let due = due.with_timezone(&chrono::FixedOffset::east_opt(7 * 3600).unwrap()).format("%d.%m.%Y").to_string();
        assert!(texts[0].contains(&due), "{} has {due}", texts[0]);
        // Each text reached the platform as it is shown.
        for text in texts {
            assert!(delivered.iter().any(|call| call.text() == text), "{text} was delivered");
        }
    }

    let telegram: Vec<_> = delivered.iter().filter(|call| call.platform == "telegram").collect();
    assert_eq!(telegram.len(), 3);
    for call in &telegram {
        assert!(call.path.ends_with("/sendMessage"), "{}", call.path);
        assert_eq!(call.body["chat_id"], 601);
        assert_eq!(call.body["reply_parameters"]["message_id"], 21, "a reply to the resident's message");
    }
    let vk_messages: Vec<_> = delivered.iter().filter(|call| call.path == "/method/messages.send").collect();
    assert_eq!(vk_messages.len(), 3);
    for call in &vk_messages {
        assert_eq!(call.body["peer_id"], "2222222");
        assert!(call.body["random_id"].as_str().is_some_and(|id| id.parse::<i64>().is_ok()), "{:?}", call.body);
        let forward: Value = serde_json::from_str(call.body["forward"].as_str().unwrap()).unwrap();
        assert_eq!(forward["conversation_message_ids"], json!([37]), "a reply to the resident's message");
        assert_eq!(forward["is_reply"], true);
    }
    let wall: Vec<_> = delivered.iter().filter(|call| call.path == "/method/wall.createComment").collect();
    assert_eq!(wall.len(), 3);
    for call in &wall {
        assert_eq!(call.body["owner_id"], "-229123456");
        assert_eq!(call.body["post_id"], "5");
        assert_eq!(call.body["reply_to_comment"], "8", "a reply to the resident's comment");
        assert_eq!(call.body["from_group"], VK_GROUP);
    }
    let max: Vec<_> = delivered.iter().filter(|call| call.platform == "max").collect();
    assert_eq!(max.len(), 3);
    for call in &max {
        assert_eq!(call.path, "/messages");
        assert!(call.query.contains("chat_id=68524973"), "{}", call.query);
        assert_eq!(call.body["link"]["type"], "reply");
        assert_eq!(call.body["link"]["mid"], "mid.0000000008a53b9b019c44bd612d33e0");
        assert!(call.headers.iter().any(|(name, value)| name == "authorization" && value == "MAX-token-of-tomsk"));
    }
}

async fn delivery_is_retried_after_failures_and_after_a_429_with_retry_after(backend: Backend) {
    let Some(setup) = Setup::start(backend).await else { return };
    setup.configure("tomsk", "TELEGRAM", "SECRET").await;
    let bad_gateway = json!({ "ok": false, "error_code": 502, "description": "Bad Gateway" });
    setup.fake.script([
        Scripted::Answer { status: 502, body: bad_gateway.clone(), retry_after: None },
        Scripted::Answer {
            status: 500,
            body: json!({ "ok": false, "error_code": 500, "description": "Internal" }),
            retry_after: None,
        },
    ]);
    let message = telegram_message(1, 701, 31, "Нет воды в доме 3");
    assert_eq!(setup.hook("telegram", "tomsk", Some("SECRET"), &message).await.status(), 200);
    let delivered = setup.fake.wait_for_delivered(1, Duration::from_secs(20)).await;
    assert_eq!(delivered.len(), 1, "delivered on the third attempt");
    let calls = setup.fake.calls();
    assert_eq!(calls.len(), 3, "two failures, then the delivery");
    let appeals = setup.settled(Duration::from_secs(10)).await;
    let reply = &appeals[0]["replies"][0];
    assert_eq!((reply["status"].as_str(), reply["attempts"].as_i64()), (Some("SENT"), Some(3)), "{reply}");

    // A 429 with Telegram's retry_after: the next attempt waits that long.
    let too_many = json!({ "ok": false, "error_code": 429, "description": "Too Many Requests: retry after 2",
                           "parameters": { "retry_after": 2 } });
    setup.fake.script([Scripted::Answer { status: 429, body: too_many, retry_after: Some(2) }]);
    setup.resolve(appeals[0]["id"].as_str().unwrap(), "Воду дали").await;
    let calls = setup.fake.wait_for_calls(6, Duration::from_secs(20)).await;
    assert_eq!(calls.len(), 6, "the seen notice (refused, then sent) and the answer");
    let limited = &calls[3];
    let retried = calls[4..].iter().find(|call| call.text() == limited.text()).expect("the limited reply again");
    let waited = retried.at.duration_since(limited.at);
    assert!(waited >= Duration::from_millis(1900), "waited {waited:?} of the 2 s asked for");
    let appeals = setup.settled(Duration::from_secs(10)).await;
    assert!(appeals[0]["replies"].as_array().unwrap().iter().all(|reply| reply["status"] == "SENT"), "{}", appeals[0]);
}

async fn a_blocked_bot_is_a_failed_reply_with_the_platforms_reason_and_can_be_resent(backend: Backend) {
    let Some(setup) = Setup::start(backend).await else { return };
    let appeals = setup.an_acknowledgement_refused_by_a_blocked_bot().await;
    let reply = &appeals[0]["replies"][0];
    assert_eq!(reply["status"], "FAILED", "{reply}");
    assert!(reply["lastError"].as_str().unwrap().contains("bot was blocked by the user"), "{reply}");
    assert_eq!(setup.fake.calls().len(), 1, "a permanent refusal is not retried");
    let settings = setup
        .app
        .graphql(
            Some(&setup.admin),
            "{ channelSettings(municipalityCode: \"tomsk\") { lastError lastUpdateAt } }",
            json!({}),
        )
        .await;
    assert!(settings["data"]["channelSettings"][0]["lastError"].as_str().unwrap().contains("blocked"), "{settings}");
    assert!(settings["data"]["channelSettings"][0]["lastUpdateAt"].is_string(), "{settings}");

    // The resident unblocked the bot; the assistant sends it again.
    let resend = "mutation($id: ID!) { resendReply(id: $id) { reply { status } } }";
    let other_assistant = setup.app.token(Role::Assistant, Some("seversk")).await;
    let refused = setup.app.graphql(Some(&other_assistant), resend, json!({ "id": reply["id"] })).await;
    assert_eq!(error_code(&refused), Some("NOT_FOUND"), "{refused}");
    for hostile in [json!("not-a-reply"), json!(""), json!("0".repeat(10_000))] {
        let refused = setup.app.graphql(Some(&setup.assistant), resend, json!({ "id": hostile })).await;
        assert_eq!(error_code(&refused), Some("VALIDATION"), "{refused}");
    }
    let unknown = setup.app.graphql(Some(&setup.assistant), resend, json!({ "id": uuid::Uuid::new_v4() })).await;
    assert_eq!(error_code(&unknown), Some("NOT_FOUND"), "{unknown}");
    let resent = setup.app.graphql(Some(&setup.assistant), resend, json!({ "id": reply["id"] })).await;
    assert_eq!(resent["data"]["resendReply"]["reply"]["status"], "PENDING", "{resent}");
    assert_eq!(setup.fake.wait_for_delivered(1, Duration::from_secs(15)).await.len(), 1);
    let appeals = setup.settled(Duration::from_secs(10)).await;
    assert_eq!(appeals[0]["replies"][0]["status"], "SENT");
    let again = setup.app.graphql(Some(&setup.assistant), resend, json!({ "id": reply["id"] })).await;
    assert_eq!(error_code(&again), Some("VALIDATION"), "a sent reply is not sent twice: {again}");
}

async fn attachments_are_recorded_and_shown_and_the_text_stays_the_appeals(backend: Backend) {
    let Some(setup) = Setup::start(backend).await else { return };
    setup.configure("tomsk", "TELEGRAM", "SECRET").await;
    setup.configure("tomsk", "VK", "SECRET").await;
    let photo = example(TELEGRAM_PHOTO);
    assert_eq!(setup.hook("telegram", "tomsk", Some("SECRET"), &photo).await.status(), 200);
    // The documented photo has no text (not an appeal); the resident's words added.
    let mut vk_photo = example(VK_PHOTO);
    vk_photo["object"]["message"]["text"] = json!("Вот фото ямы во дворе");
    assert_eq!(setup.hook("vk", "tomsk", Some("SECRET"), &example(VK_PHOTO)).await.status(), 200);
    assert_eq!(setup.hook("vk", "tomsk", Some("SECRET"), &vk_photo).await.status(), 200);
    let appeals = setup.appeals(None).await;
    assert_eq!(appeals.len(), 2);
    let telegram = &appeals[0];
    assert_eq!(telegram["text"], photo["message"]["caption"], "the caption is the text");
    assert_eq!(
        telegram["attachments"],
        json!([{ "kind": "PHOTO", "fileId": "AgACAgIAAxkBAAIBYmZ-large",
        "fileName": null, "latitude": null, "longitude": null, "platformType": null }]),
        "the largest size"
    );
    let vk = &appeals[1];
    assert_eq!(vk["text"], "Вот фото ямы во дворе");
    assert_eq!(vk["attachments"][0]["kind"], "PHOTO", "{vk}");
    assert_eq!(vk["attachments"][0]["fileId"], "photo2222222_457239018", "{vk}");
}

async fn only_admins_configure_channels_and_no_secret_is_ever_returned(backend: Backend) {
    let Some(setup) = Setup::start(backend).await else { return };
    let input = json!({ "input": { "municipalityCode": "tomsk", "channel": "TELEGRAM",
                                    "webhookSecret": "s3cr3t-value", "botToken": "123456:bot-token-value" } });
    for token in [&setup.head, &setup.assistant] {
        let refused = setup.app.graphql(Some(token), CONFIGURE, input.clone()).await;
        assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{refused}");
        let hidden = setup.app.graphql(Some(token), "{ channelSettings { channel } }", json!({})).await;
        assert_eq!(error_code(&hidden), Some("FORBIDDEN"), "{hidden}");
    }
    let configured = setup.app.graphql(Some(&setup.admin), CONFIGURE, input).await;
    let settings = &configured["data"]["configureChannel"]["settings"];
    assert_eq!(settings["webhookPath"], "/hooks/telegram/tomsk", "{configured}");
    assert_eq!((settings["hasWebhookSecret"].as_bool(), settings["hasBotToken"].as_bool()), (Some(true), Some(true)));
    let listed = setup
        .app
        .graphql(
            Some(&setup.admin),
            "{ channelSettings { channel enabled municipality { code } webhookPath hasWebhookSecret hasBotToken } }",
            json!({}),
        )
        .await;
    for answer in [&configured, &listed] {
        let text = answer.to_string();
        assert!(!text.contains("s3cr3t-value") && !text.contains("bot-token-value"), "{text}");
    }
    // A bad secret is refused without being echoed.
    let bad =
        json!({ "input": { "municipalityCode": "tomsk", "channel": "TELEGRAM", "webhookSecret": "has spaces in-it" } });
    let refused = setup.app.graphql(Some(&setup.admin), CONFIGURE, bad).await;
    assert_eq!(error_code(&refused), Some("VALIDATION"), "{refused}");
    assert!(!refused.to_string().contains("has spaces"), "{refused}");
    let email = json!({ "input": { "municipalityCode": "tomsk", "channel": "EMAIL", "webhookSecret": "x" } });
    assert_eq!(error_code(&setup.app.graphql(Some(&setup.admin), CONFIGURE, email).await), Some("VALIDATION"));
    // Disabled: the webhook refuses even the right secret.
    let disable = json!({ "input": { "municipalityCode": "tomsk", "channel": "TELEGRAM", "enabled": false } });
    let disabled = setup.app.graphql(Some(&setup.admin), CONFIGURE, disable).await;
    assert_eq!(disabled["data"]["configureChannel"]["settings"]["enabled"], false, "{disabled}");
    assert_eq!(disabled["data"]["configureChannel"]["settings"]["hasWebhookSecret"], true, "the secret is kept");
    let refused = setup.hook("telegram", "tomsk", Some("s3cr3t-value"), &example(TELEGRAM_MESSAGE)).await;
    assert_eq!(refused.status(), 401);
}

async fn a_municipality_writes_its_own_reply_texts(backend: Backend) {
    let Some(setup) = Setup::start(backend).await else { return };
    setup.configure("tomsk", "TELEGRAM", "SECRET").await;
    const TEXTS: &str = "query { replyTexts(municipalityCode: \"tomsk\") { kind template isDefault } }";
    const SET: &str = "mutation($input: ConfigureReplyTextsInput!) { configureReplyTexts(input: $input) { texts { kind template isDefault } } }";
    let defaults = setup.app.graphql(Some(&setup.admin), TEXTS, json!({})).await;
    let defaults = defaults["data"]["replyTexts"].as_array().cloned().expect("the texts");
    assert_eq!(defaults.len(), 3);
    assert!(defaults.iter().all(|text| text["isDefault"] == true), "{defaults:?}");

    // All or nothing: an answer without `{response}` refuses the whole change.
    let invalid = json!({ "input": { "municipalityCode": "tomsk", "acknowledgement": "Принято: {number}", "answer": "Готово." } });
    let refused = setup.app.graphql(Some(&setup.admin), SET, invalid).await;
    assert_eq!(error_code(&refused), Some("VALIDATION"), "{refused}");
    let unchanged = setup.app.graphql(Some(&setup.admin), TEXTS, json!({})).await;
    assert_eq!(unchanged["data"]["replyTexts"], json!(defaults), "nothing changed");
    let by_assistant = setup.app.graphql(Some(&setup.assistant), TEXTS, json!({})).await;
    assert_eq!(error_code(&by_assistant), Some("FORBIDDEN"), "{by_assistant}");

    let own = "Обращение {number} принято. Ответим до {due_date}.";
    let set = json!({ "input": { "municipalityCode": "tomsk", "acknowledgement": own } });
    let changed = setup.app.graphql(Some(&setup.admin), SET, set).await;
    assert!(changed["errors"].is_null(), "{changed}");
    let message = telegram_message(1, 901, 51, "Не работает светофор");
    assert_eq!(setup.hook("telegram", "tomsk", Some("SECRET"), &message).await.status(), 200);
    let appeals = setup.settled(Duration::from_secs(15)).await;
    let number = appeals[0]["number"].as_str().unwrap();
    let text = appeals[0]["replies"][0]["text"].as_str().unwrap();
    assert!(text.starts_with(&format!("Обращение {number} принято. Ответим до ")), "{text}");
    assert_eq!(setup.fake.delivered()[0].text(), text, "the resident got the municipality's text");

    let reset = json!({ "input": { "municipalityCode": "tomsk", "acknowledgement": "" } });
    let reset = setup.app.graphql(Some(&setup.admin), SET, reset).await;
    assert_eq!(reset["data"]["configureReplyTexts"]["texts"], json!(defaults), "an empty text restores the default");
}

async fn a_flood_of_forged_calls_is_limited_while_the_platform_and_other_clients_are_served(backend: Backend) {
    let Some(setup) = Setup::start(backend).await else { return };
    setup.configure("tomsk", "TELEGRAM", "SECRET").await;
    let first = telegram_message(1, 1001, 1, "Первое обращение");
    assert_eq!(setup.hook("telegram", "tomsk", Some("SECRET"), &first).await.status(), 200);
    // An official at work from the same address: their token is known good too.
    assert_eq!(setup.appeals(None).await.len(), 1);

    // 200 forged calls from the same address as the platform, all at once
    // (within the connections one address may hold).
    let setup = &setup;
    let forged = join_all((0..200).map(|n| {
        let body = telegram_message(100 + n, 2000 + n, 1, "подделка");
        async move { setup.hook("telegram", "tomsk", Some("guessed-secret"), &body).await.status().as_u16() }
    }))
    .await;
    assert!(forged.iter().all(|status| *status == 401 || *status == 429), "{forged:?}");
    assert!(forged.contains(&429), "the address is limited: {forged:?}");

    // The platform, whose secret is known good, is not held back; nor is an official.
    let second = telegram_message(2, 1001, 2, "Второе сообщение");
    assert_eq!(setup.hook("telegram", "tomsk", Some("SECRET"), &second).await.status(), 200);
    let third = telegram_message(3, 1002, 1, "Третье обращение");
    assert_eq!(setup.hook("telegram", "tomsk", Some("SECRET"), &third).await.status(), 200);
    let appeals = setup.appeals(None).await;
    assert_eq!(appeals.len(), 2, "the platform's messages, none of the forged ones");
}
