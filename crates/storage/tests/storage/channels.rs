//! Channels: each municipality's channel settings and the webhook's gate, a
//! resident's message taken in exactly once as a new appeal or a follow-up on
//! the open one, the replies that registrations and commands queue, the outbox
//! the delivery worker drains, and the reply texts.

use appeals_core::channels::{Attachment, InboundMessage, ReplyKind, ReplyTarget, default_template};
use appeals_core::{Appeal, AppealId, Channel, Command, EventKind, Outcome, Status};
use appeals_storage::channels::ChannelMessage;
use appeals_storage::channels::templates::ReplyText;
use appeals_storage::testing::{Backend, on_both_databases};
use appeals_storage::{ChannelChange, ChannelSettings, DueReply, Intake, Reply, ReplyStatus, StoredEvent};
use chrono::TimeDelta;
use sea_orm::prelude::Uuid;

use crate::support::{Region, at, audit_key, code, hours, note, outcome, race, resolve, submission, web};

on_both_databases!(
    a_new_channel_is_enabled_and_its_secrets_are_never_read_back,
    bad_channel_settings_are_refused_and_change_nothing,
    the_webhook_gate_admits_only_the_exact_secret_of_its_own_municipality_and_channel,
    a_telegram_message_registers_an_appeal_and_queues_its_acknowledgement,
    a_message_delivered_again_changes_nothing,
    concurrent_copies_of_a_message_register_one_appeal_with_one_acknowledgement,
    a_message_whose_id_an_api_submission_used_is_a_repeat_of_that_appeal,
    a_message_in_the_same_conversation_within_the_window_is_a_follow_up_and_the_window_slides,
    a_reply_to_the_engines_message_threads_outside_the_window_but_only_for_its_own_resident,
    a_message_after_the_appeal_is_resolved_registers_a_new_appeal,
    concurrent_copies_of_a_follow_up_record_one_event,
    mark_seen_and_resolve_queue_replies_only_for_appeals_that_came_through_a_chat,
    a_due_reply_is_claimed_by_one_worker_at_a_time,
    a_retried_reply_is_not_due_until_its_next_attempt,
    an_expired_claim_is_claimed_again_in_doubt,
    a_reply_sent_in_parts_is_recorded_as_sent_with_its_keys,
    a_failed_reply_marks_the_channel_until_another_reply_is_delivered,
    only_an_official_of_the_municipality_may_resend_a_reply_and_only_a_failed_one,
    the_default_reply_texts_and_a_custom_acknowledgement_used_by_the_next_registration,
    an_invalid_reply_text_changes_none_and_an_empty_one_restores_the_default,
    a_history_with_follow_ups_verifies_and_a_rewritten_follow_up_is_caught,
);

/// How long after a resident's latest message a new one in the same
/// conversation is a follow-up (the server's default).
fn window() -> TimeDelta {
    hours(24)
}

/// How long the delivery worker holds a claimed reply.
fn lease() -> TimeDelta {
    TimeDelta::minutes(5)
}

/// Message `message_id` in the Telegram chat `chat_id`, written by the user
/// `from`, shaped as the Telegram parser shapes it.
fn telegram(chat_id: i64, message_id: i64, from: i64, text: &str) -> InboundMessage {
    InboundMessage {
        external_id: format!("chat:{chat_id}:msg:{message_id}"),
        conversation: format!("chat:{chat_id}:from:{from}"),
        message_key: format!("{chat_id}:{message_id}"),
        replied_to: None,
        text: text.to_owned(),
        author_name: Some("Мария Иванова".to_owned()),
        author_contact: format!("telegram:{from}"),
        attachments: Vec::new(),
        target: ReplyTarget::Telegram { chat_id, message_id },
        sent_at: None,
    }
}

/// The same message, written in reply to the message with `key`.
fn replying_to(mut message: InboundMessage, key: &str) -> InboundMessage {
    message.replied_to = Some(key.to_owned());
    message
}

fn secret_and_token(secret: &str, token: &str) -> ChannelChange {
    ChannelChange {
        webhook_secret: Some(secret.to_owned()),
        bot_token: Some(token.to_owned()),
        ..ChannelChange::default()
    }
}

/// Takes `message` in on Tomsk's Telegram channel; it must be accepted.
async fn receive(region: &Region, message: &InboundMessage) -> Intake {
    region
        .store
        .receive_channel_message(region.tomsk.id, Channel::Telegram, message, window())
        .await
        .unwrap_or_else(|error| panic!("taking in {} failed: {error}", message.external_id))
}

/// The appeal and event of an intake that must have registered a new appeal.
fn registered(case: &str, intake: Intake) -> (Appeal, StoredEvent) {
    match intake {
        Intake::Registered { appeal, event } => (appeal, event),
        other => panic!("{case}: expected a new appeal, got {other:?}"),
    }
}

/// The appeal and event of an intake that must have been a follow-up.
fn followed_up(case: &str, intake: Intake) -> (Appeal, StoredEvent) {
    match intake {
        Intake::FollowUp { appeal, event } => (appeal, event),
        other => panic!("{case}: expected a follow-up, got {other:?}"),
    }
}

async fn replies(region: &Region, id: AppealId) -> Vec<Reply> {
    region.store.replies_of(&[id]).await.expect("an appeal's replies can be read")
}

async fn reply_kinds(region: &Region, id: AppealId) -> Vec<ReplyKind> {
    replies(region, id).await.iter().map(|reply| reply.kind).collect()
}

async fn history_kinds(region: &Region, id: AppealId) -> Vec<EventKind> {
    region.store.history(id).await.expect("history").iter().map(|stored| stored.event.kind).collect()
}

async fn messages(region: &Region, id: AppealId) -> Vec<ChannelMessage> {
    region.store.channel_messages_of(&[id]).await.expect("an appeal's channel messages can be read")
}

async fn claim(region: &Region) -> Vec<DueReply> {
    region.store.claim_due_replies(10, lease()).await.expect("claiming due replies")
}

/// The one reply claimable now; there must be exactly one.
async fn claim_one(case: &str, region: &Region) -> DueReply {
    let mut due = claim(region).await;
    assert_eq!(due.len(), 1, "{case}: one reply is due: {due:?}");
    due.remove(0)
}

async fn tomsk_telegram_settings(region: &Region) -> ChannelSettings {
    let settings = region.store.channel_settings(Some(&code("tomsk"))).await.expect("Tomsk's settings");
    settings.into_iter().find(|s| s.channel == Channel::Telegram).expect("Tomsk's Telegram channel is configured")
}

async fn count(region: &Region, table: &str) -> i64 {
    region.number(&format!("SELECT COUNT(*) FROM {table}")).await
}

async fn a_new_channel_is_enabled_and_its_secrets_are_never_read_back(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let store = &region.store;
    let (secret, token) = ("s3cret_Webhook-Token", "123456:AAH-bot-token-of-tomsk");
    let change = secret_and_token(secret, token);
    assert!(!format!("{change:?}").contains(secret) && !format!("{change:?}").contains(token), "{change:?}");

    let created = store.configure_channel(&code("tomsk"), Channel::Telegram, &change).await.expect("configuring");
    let expected = ChannelSettings {
        municipality_id: region.tomsk.id,
        municipality_code: region.tomsk.code.clone(),
        channel: Channel::Telegram,
        enabled: true,
        has_webhook_secret: true,
        has_bot_token: true,
        vk_group_id: None,
        has_vk_confirmation: false,
        last_update_at: None,
        last_error: None,
    };
    assert_eq!(created, expected, "a new channel is enabled, with flags for its secrets");
    assert_eq!(store.channel_settings(None).await.expect("all settings"), std::slice::from_ref(&expected), "read back");
    let printed = format!("{:?}", store.channel_settings(None).await.expect("all settings"));
    assert!(!printed.contains(secret) && !printed.contains(token), "no secret in the settings: {printed}");

    let disabled = ChannelChange { enabled: Some(false), ..ChannelChange::default() };
    let disabled = store.configure_channel(&code("tomsk"), Channel::Telegram, &disabled).await.expect("disabling");
    assert_eq!(disabled, ChannelSettings { enabled: false, ..expected.clone() }, "only `enabled` changed");
    let enabled = ChannelChange { enabled: Some(true), ..ChannelChange::default() };
    store.configure_channel(&code("tomsk"), Channel::Telegram, &enabled).await.expect("enabling again");

    let cleared = ChannelChange { webhook_secret: Some(String::new()), ..ChannelChange::default() };
    let cleared = store.configure_channel(&code("tomsk"), Channel::Telegram, &cleared).await.expect("clearing");
    assert_eq!(cleared, ChannelSettings { has_webhook_secret: false, ..expected.clone() }, "an empty secret clears it");
    let gate = store.webhook_gate("tomsk", Channel::Telegram).await.expect("the gate").expect("configured");
    assert!(!gate.admits(Some(secret)), "a cleared secret admits nothing, not even the old one");
    assert!(!gate.admits(Some("")), "nor an empty one");

    let vk = ChannelChange {
        enabled: Some(false),
        webhook_secret: Some("vk-secret".to_owned()),
        vk_group_id: Some(" 229876543 ".to_owned()),
        vk_confirmation: Some("a1b2c3d4".to_owned()),
        ..ChannelChange::default()
    };
    let vk = store.configure_channel(&code("Seversk"), Channel::Vk, &vk).await.expect("configuring VK");
    assert_eq!(
        (
            vk.municipality_code.as_str(),
            vk.enabled,
            vk.vk_group_id.as_deref(),
            vk.has_vk_confirmation,
            vk.has_bot_token
        ),
        ("seversk", false, Some("229876543"), true, false),
        "a new channel created disabled, with its group id (trimmed) and confirmation"
    );
    let all: Vec<(String, Channel)> = store
        .channel_settings(None)
        .await
        .expect("all settings")
        .into_iter()
        .map(|s| (s.municipality_code, s.channel))
        .collect();
    assert_eq!(
        all,
        [("seversk".to_owned(), Channel::Vk), ("tomsk".to_owned(), Channel::Telegram)],
        "every channel, by code"
    );
    let tomsk_only = store.channel_settings(Some(&code("tomsk"))).await.expect("Tomsk's settings");
    assert_eq!(tomsk_only.len(), 1, "one municipality's settings: {tomsk_only:?}");
    let unknown = store.channel_settings(Some(&code("atlantis"))).await;
    assert_eq!(outcome(&unknown), "Invalid(municipalityCode)", "an unknown municipality's settings");
}

async fn bad_channel_settings_are_refused_and_change_nothing(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let store = &region.store;
    store
        .configure_channel(&code("tomsk"), Channel::Vk, &secret_and_token("good-secret", "vk1.a.token"))
        .await
        .expect("a valid configuration");
    let before = store.channel_settings(None).await.expect("settings");
    let secret = |value: &str| ChannelChange { webhook_secret: Some(value.to_owned()), ..ChannelChange::default() };
    let group = |value: &str| ChannelChange { vk_group_id: Some(value.to_owned()), ..ChannelChange::default() };
    let cases: Vec<(&str, &str, Channel, ChannelChange, &str)> = vec![
        ("a secret with a space", "tomsk", Channel::Vk, secret("two words"), "Invalid(webhookSecret)"),
        ("a secret of 257 characters", "tomsk", Channel::Vk, secret(&"a".repeat(257)), "Invalid(webhookSecret)"),
        ("a secret of 600 characters", "tomsk", Channel::Vk, secret(&"a".repeat(600)), "Invalid(webhookSecret)"),
        ("a secret in Cyrillic", "tomsk", Channel::Vk, secret("секрет"), "Invalid(webhookSecret)"),
        ("a secret with a colon", "tomsk", Channel::Vk, secret("a:b"), "Invalid(webhookSecret)"),
        ("a group id with letters", "tomsk", Channel::Vk, group("club229876543"), "Invalid(vkGroupId)"),
        ("a negative group id", "tomsk", Channel::Vk, group("-229876543"), "Invalid(vkGroupId)"),
        (
            "a valid secret with an invalid group id",
            "tomsk",
            Channel::Vk,
            ChannelChange { webhook_secret: Some("new-secret".to_owned()), ..group("abc") },
            "Invalid(vkGroupId)",
        ),
        (
            "a bot token with a line break",
            "tomsk",
            Channel::Vk,
            ChannelChange { bot_token: Some("vk1.a\ntoken".to_owned()), ..ChannelChange::default() },
            "Invalid(botToken)",
        ),
        ("EMAIL", "tomsk", Channel::Email, secret("good-secret"), "Invalid(channel)"),
        ("WEB", "tomsk", Channel::Web, ChannelChange::default(), "Invalid(channel)"),
        ("an unknown municipality", "atlantis", Channel::Telegram, secret("good-secret"), "Invalid(municipalityCode)"),
    ];
    for (case, to, channel, change, expected) in cases {
        let result = store.configure_channel(&code(to), channel, &change).await;
        assert_eq!(outcome(&result), expected, "{case}");
        if let Err(error) = &result {
            let said = format!("{error} {error:?}");
            for value in [&change.webhook_secret, &change.bot_token].into_iter().flatten() {
                assert!(!said.contains(value.as_str()), "{case}: the error repeats no secret: {said}");
            }
        }
        assert_eq!(store.channel_settings(None).await.expect("settings"), before, "{case}: nothing changed");
        let gate = store.webhook_gate("tomsk", Channel::Vk).await.expect("gate").expect("configured");
        assert!(gate.admits(Some("good-secret")), "{case}: the secret stands");
    }
    let longest = "Z".repeat(256);
    let accepted = store.configure_channel(&code("tomsk"), Channel::Vk, &secret(&longest)).await;
    assert_eq!(outcome(&accepted), "Ok", "a secret of exactly 256 characters");
}

async fn the_webhook_gate_admits_only_the_exact_secret_of_its_own_municipality_and_channel(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let store = &region.store;
    let configure = async |to: &str, channel: Channel, secret: &str| {
        store.configure_channel(&code(to), channel, &secret_and_token(secret, "token")).await.expect("configuring")
    };
    configure("tomsk", Channel::Telegram, "tomsk-telegram-secret").await;
    configure("tomsk", Channel::Max, "tomsk-max-secret").await;
    configure("seversk", Channel::Telegram, "seversk-telegram-secret").await;

    let gate = store.webhook_gate("tomsk", Channel::Telegram).await.expect("the gate").expect("Tomsk's Telegram");
    assert_eq!((gate.municipality_id, gate.enabled), (region.tomsk.id, true), "whose gate, and enabled");
    let presented: [(&str, Option<&str>, bool); 9] = [
        ("the exact secret", Some("tomsk-telegram-secret"), true),
        ("nothing", None, false),
        ("an empty secret", Some(""), false),
        ("a prefix", Some("tomsk-telegram-secre"), false),
        ("the secret and more", Some("tomsk-telegram-secret-"), false),
        ("another case", Some("TOMSK-TELEGRAM-SECRET"), false),
        ("with a space around it", Some(" tomsk-telegram-secret"), false),
        ("another municipality's", Some("seversk-telegram-secret"), false),
        ("another channel's", Some("tomsk-max-secret"), false),
    ];
    for (case, secret, admitted) in presented {
        assert_eq!(gate.admits(secret), admitted, "Tomsk's Telegram gate and {case}");
    }
    let printed = format!("{gate:?}");
    assert!(!printed.contains("tomsk-telegram-secret"), "the gate's Debug hides the secret: {printed}");

    let seversk = store.webhook_gate("SEVERSK", Channel::Telegram).await.expect("gate").expect("Seversk's Telegram");
    assert!(seversk.admits(Some("seversk-telegram-secret")), "Seversk's own secret, by a code in capitals");
    assert!(!seversk.admits(Some("tomsk-telegram-secret")), "not Tomsk's");
    for (case, to, channel) in [
        ("an unknown municipality", "atlantis", Channel::Telegram),
        ("a malformed code", "../tomsk", Channel::Telegram),
        ("an unconfigured channel", "tomsk", Channel::Vk),
        ("a municipality without channels", "kedrovy", Channel::Telegram),
        ("a channel without a webhook", "tomsk", Channel::Email),
    ] {
        let gate = store.webhook_gate(to, channel).await.expect("looking up a gate");
        assert!(gate.is_none(), "{case}: no gate");
    }

    let disable = ChannelChange { enabled: Some(false), ..ChannelChange::default() };
    store.configure_channel(&code("tomsk"), Channel::Telegram, &disable).await.expect("disabling");
    let gate = store.webhook_gate("tomsk", Channel::Telegram).await.expect("gate").expect("still configured");
    assert!(!gate.enabled, "a disabled channel's gate says so");
    assert!(gate.admits(Some("tomsk-telegram-secret")), "and still knows its secret");

    region.advance(hours(1));
    store.note_webhook_call(region.tomsk.id, Channel::Telegram).await.expect("noting a call");
    assert_eq!(tomsk_telegram_settings(&region).await.last_update_at, Some(region.now()), "the last call's time");
}

async fn a_telegram_message_registers_an_appeal_and_queues_its_acknowledgement(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    // Late in the UTC day: in Tomsk (+07:00) it is already the next morning,
    // and so is the date the answer is due by.
    region.clock.set(at("2026-03-02T20:00:00Z"));
    // Coordinates a binary float holds exactly, so that the JSON round trip is exact.
    let attachments = vec![
        Attachment::Photo { file_id: "AgACAgIAAxkBAAIBY2Z".to_owned() },
        Attachment::Location { latitude: 56.484375, longitude: 84.9453125 },
    ];
    let message = InboundMessage {
        external_id: "chat:5:msg:10".to_owned(),
        conversation: "chat:5:from:77".to_owned(),
        message_key: "5:10".to_owned(),
        replied_to: None,
        text: "  Яма на дороге у дома 5 по улице Ленина \n".to_owned(),
        author_name: Some("Мария Иванова".to_owned()),
        author_contact: "@maria_iv".to_owned(),
        attachments: attachments.clone(),
        target: ReplyTarget::Telegram { chat_id: 5, message_id: 10 },
        sent_at: Some(at("2026-03-02T19:59:58Z")),
    };
    let (appeal, event) = registered("the first message", receive(&region, &message).await);

    assert_eq!((appeal.channel, appeal.municipality_id), (Channel::Telegram, region.tomsk.id), "channel and where");
    assert_eq!(appeal.external_id.as_ref().map(|id| id.as_str()), Some("chat:5:msg:10"), "the external id");
    assert_eq!(appeal.author_name.as_ref().map(|n| n.as_str()), Some("Мария Иванова"), "the author's name");
    assert_eq!(appeal.author_contact.as_ref().map(|c| c.as_str()), Some("@maria_iv"), "the author's contact");
    assert_eq!(appeal.text.as_str(), "Яма на дороге у дома 5 по улице Ленина", "the text, trimmed");
    assert_eq!(
        (appeal.number.as_str(), appeal.status, appeal.version),
        ("TOMSK-2026-000001", Status::Received, 1),
        "the first number, received"
    );
    assert_eq!(appeal.received_at, region.now(), "received when the engine took it in, not when it was sent");
    assert_eq!(appeal.due_at, at("2026-04-01T20:00:00Z"), "due thirty days later");
    assert_eq!(region.fetch(appeal.id).await, appeal, "the appeal as stored");

    let recorded = &event.event;
    assert_eq!((recorded.seq, recorded.kind, recorded.appeal_id), (1, EventKind::Received, appeal.id), "the event");
    assert_eq!(recorded.actor_id, None, "a resident's message has no official behind it");
    assert_eq!(
        region.store.history(appeal.id).await.expect("history"),
        std::slice::from_ref(&event),
        "the history is that event"
    );

    let queued = replies(&region, appeal.id).await;
    assert_eq!(queued.len(), 1, "one reply queued: {queued:?}");
    let acknowledgement = &queued[0];
    assert_eq!(
        (acknowledgement.kind, acknowledgement.status, acknowledgement.attempts),
        (ReplyKind::Acknowledgement, ReplyStatus::Pending, 0),
        "a pending acknowledgement"
    );
    assert_eq!((acknowledgement.appeal_id, acknowledgement.created_at), (appeal.id, region.now()), "whose, and when");
    assert_eq!((acknowledgement.sent_at, acknowledgement.last_error.clone()), (None, None), "not sent yet");
    assert!(acknowledgement.text.contains("TOMSK-2026-000001"), "it names the number: {}", acknowledgement.text);
    assert!(acknowledgement.text.contains("02.04.2026"), "the due date in Tomsk: {}", acknowledgement.text);
    assert!(!acknowledgement.text.contains("01.04.2026"), "not the UTC date: {}", acknowledgement.text);

    let stored = messages(&region, appeal.id).await;
    assert_eq!(
        stored,
        [ChannelMessage { appeal_id: appeal.id, origin: true, received_at: region.now(), attachments }],
        "the message with its attachments"
    );
    let due = claim_one("the acknowledgement", &region).await;
    assert_eq!((due.id, due.appeal_id, due.kind), (acknowledgement.id, appeal.id, ReplyKind::Acknowledgement), "due");
    assert_eq!(due.target, ReplyTarget::Telegram { chat_id: 5, message_id: 10 }, "answering the resident's message");
    assert_eq!(
        (due.channel, due.municipality_id, due.text.as_str()),
        (Channel::Telegram, region.tomsk.id, acknowledgement.text.as_str()),
        "what to send, and where"
    );
}

async fn a_message_delivered_again_changes_nothing(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let message = telegram(5, 10, 77, "Не вывозят мусор");
    let (appeal, _) = registered("the first delivery", receive(&region, &message).await);
    let history = region.store.history(appeal.id).await.expect("history");
    let queued = replies(&region, appeal.id).await;
    let mut edited = message.clone();
    edited.text = "Не вывозят мусор уже неделю".to_owned();
    let deliveries = [
        ("a minute later", TimeDelta::minutes(1), &message),
        ("after the follow-up window", window() * 2, &message),
        ("with another text (the ids decide)", TimeDelta::minutes(1), &edited),
    ];
    for (case, after, again) in deliveries {
        region.advance(after);
        assert_eq!(receive(&region, again).await, Intake::Repeat { appeal_id: appeal.id }, "{case}: a repeat");
        assert_eq!(region.fetch(appeal.id).await, appeal, "{case}: the appeal is unchanged");
        assert_eq!(region.store.history(appeal.id).await.expect("history"), history, "{case}: no event");
        assert_eq!(replies(&region, appeal.id).await, queued, "{case}: no new reply");
        assert_eq!(
            (count(&region, "appeal").await, count(&region, "reply").await, count(&region, "channel_message").await),
            (1, 1, 1),
            "{case}: one appeal, one reply, one message"
        );
    }

    // The same platform ids on another channel, or at another municipality's
    // bot, are another message.
    let vk = region.store.receive_channel_message(region.tomsk.id, Channel::Vk, &message, window()).await;
    let (vk, _) = registered("the same ids on VK", vk.expect("taking in on VK"));
    assert_eq!((vk.channel, vk.number.as_str()), (Channel::Vk, "TOMSK-2026-000002"), "a VK appeal of Tomsk's");
    let seversk = region.store.municipality_by_code(&code("seversk")).await.expect("lookup").expect("Seversk");
    let elsewhere = region.store.receive_channel_message(seversk.id, Channel::Telegram, &message, window()).await;
    let (elsewhere, _) = registered("the same ids at Seversk", elsewhere.expect("taking in at Seversk"));
    assert_eq!(elsewhere.number, "SEVERSK-2026-000001", "Seversk's own appeal");
    assert_eq!(reply_kinds(&region, elsewhere.id).await, [ReplyKind::Acknowledgement], "acknowledged at Seversk");
}

async fn concurrent_copies_of_a_message_register_one_appeal_with_one_acknowledgement(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let message = telegram(5, 10, 77, "Прорвало трубу на Ленина, 5");
    let results = race(20, |_| {
        let (store, tomsk, message) = (region.store.clone(), region.tomsk.id, message.clone());
        async move { store.receive_channel_message(tomsk, Channel::Telegram, &message, window()).await }
    })
    .await;
    let intakes: Vec<Intake> = results
        .into_iter()
        .enumerate()
        .map(|(i, result)| result.unwrap_or_else(|error| panic!("copy {i} failed: {error}")))
        .collect();
    let winners: Vec<&Appeal> = intakes
        .iter()
        .filter_map(|intake| match intake {
            Intake::Registered { appeal, .. } => Some(appeal),
            _ => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "exactly one copy registered the appeal: {intakes:?}");
    let appeal = winners[0].clone();
    for (i, intake) in intakes.iter().enumerate() {
        if !matches!(intake, Intake::Registered { .. }) {
            assert_eq!(intake, &Intake::Repeat { appeal_id: appeal.id }, "copy {i} is a repeat of the appeal");
        }
    }
    assert_eq!(appeal.number, "TOMSK-2026-000001", "the appeal's number");
    assert_eq!(count(&region, "appeal").await, 1, "one appeal");
    assert_eq!(count(&region, "channel_message").await, 1, "one stored message");
    assert_eq!(reply_kinds(&region, appeal.id).await, [ReplyKind::Acknowledgement], "one acknowledgement");
    assert_eq!(count(&region, "reply").await, 1, "no other reply anywhere");
    assert_eq!(history_kinds(&region, appeal.id).await, [EventKind::Received], "one event");
    let next = registered("the next message", receive(&region, &telegram(6, 1, 66, "Другое")).await).0;
    assert_eq!(next.number, "TOMSK-2026-000002", "the repeats gave their numbers back");
}

async fn a_message_whose_id_an_api_submission_used_is_a_repeat_of_that_appeal(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    // An intake bot that submitted Telegram messages through the API before the
    // webhook was configured, keyed by the platform's ids as the webhook keys them.
    let submitted = region
        .store
        .submit(&region.intake, &code("tomsk"), submission(Channel::Telegram, Some("chat:5:msg:10"), "Яма у школы"))
        .await
        .expect("a submission through the API");
    let message = telegram(5, 10, 77, "Яма у школы");
    let intake = region.store.receive_channel_message(region.tomsk.id, Channel::Telegram, &message, window()).await;
    let intake = intake.unwrap_or_else(|error| panic!("the webhook's copy of a submitted message failed: {error}"));
    assert_eq!(intake, Intake::Repeat { appeal_id: submitted.appeal.id }, "the submitted appeal's repeat");
    assert_eq!(count(&region, "appeal").await, 1, "no second appeal");
    assert_eq!(count(&region, "reply").await, 0, "nothing queued: the appeal came through the API");
    let next = region.submit("tomsk", "Следующее обращение").await;
    assert_eq!(next.number, "TOMSK-2026-000002", "the webhook's attempt took no number");
}

async fn a_message_in_the_same_conversation_within_the_window_is_a_follow_up_and_the_window_slides(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let (appeal, _) = registered("the first message", receive(&region, &telegram(5, 10, 77, "Яма у дома 5")).await);

    region.advance(hours(1));
    let second = telegram(5, 11, 77, "Добавлю: яма глубокая, уже два колеса пробиты");
    let (followed, event) = followed_up("an hour later", receive(&region, &second).await);
    assert_eq!(followed, appeal, "the same appeal, its version untouched");
    assert_eq!(region.fetch(appeal.id).await, appeal, "the appeal as stored is unchanged");
    let recorded = &event.event;
    assert_eq!(
        (recorded.appeal_id, recorded.seq, recorded.kind, recorded.actor_id),
        (appeal.id, 2, EventKind::ResidentMessage, None),
        "a RESIDENT_MESSAGE event with no official behind it"
    );
    assert_eq!((recorded.from_status, recorded.to_status), (None, None), "it moves no status");
    assert_eq!((recorded.note.as_deref(), recorded.at), (Some(second.text.as_str()), region.now()), "the text");
    let history = region.store.history(appeal.id).await.expect("history");
    assert_eq!(history.last(), Some(&event), "the event as stored");
    assert_eq!(reply_kinds(&region, appeal.id).await, [ReplyKind::Acknowledgement], "a follow-up is not answered");
    let origins: Vec<bool> = messages(&region, appeal.id).await.iter().map(|m| m.origin).collect();
    assert_eq!(origins, [true, false], "the first message and the follow-up, in order");

    // The window runs from the resident's latest message: 25 hours after the
    // first message but 23 after the second is still a follow-up.
    region.advance(window() - hours(1));
    let (followed, _) = followed_up("23 hours later", receive(&region, &telegram(5, 12, 77, "Никто не приехал")).await);
    assert_eq!(followed.id, appeal.id, "the window slid with the second message");

    region.advance(window() + TimeDelta::minutes(1));
    let (next, _) = registered("after the window", receive(&region, &telegram(5, 13, 77, "Теперь нет света")).await);
    assert_ne!(next.id, appeal.id, "a new appeal");
    assert_eq!(next.number, "TOMSK-2026-000002", "with the next number");
    assert_eq!(reply_kinds(&region, next.id).await, [ReplyKind::Acknowledgement], "acknowledged");
    assert_eq!(region.store.history(appeal.id).await.expect("history").len(), 3, "the first appeal kept its three");

    region.advance(hours(1));
    let (followed, _) = followed_up("after the new appeal", receive(&region, &telegram(5, 14, 77, "Уточню")).await);
    assert_eq!(followed.id, next.id, "a follow-up goes to the resident's latest appeal");

    let others = [
        ("another user in the same chat", telegram(5, 15, 88, "А у нас во дворе яма")),
        ("the same user in another chat", telegram(77, 1, 77, "Пишу в личные сообщения")),
    ];
    for (case, message) in others {
        let (other, _) = registered(case, receive(&region, &message).await);
        assert!(other.id != appeal.id && other.id != next.id, "{case}: its own appeal");
    }
}

async fn a_reply_to_the_engines_message_threads_outside_the_window_but_only_for_its_own_resident(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let (appeal, _) = registered("the first message", receive(&region, &telegram(5, 10, 77, "Не горит фонарь")).await);
    // The worker sends the acknowledgement, and Telegram names the message it became.
    let due = claim_one("the acknowledgement", &region).await;
    region.store.record_part_sent(&due, 0, Some("5:999"), lease()).await.expect("recording the sent part");
    region.store.record_reply_sent(&due).await.expect("recording the delivery");

    region.advance(window() * 3);
    let someone_else = replying_to(telegram(5, 20, 88, "И у нас не горит"), "5:999");
    let (other, _) = registered("another user's reply in the group", receive(&region, &someone_else).await);
    assert_ne!(other.id, appeal.id, "someone else's reply to the engine is their own appeal");
    assert_eq!(history_kinds(&region, appeal.id).await, [EventKind::Received], "nothing was added to the first");

    let resident = replying_to(telegram(5, 21, 77, "Так и не починили"), "5:999");
    let (threaded, event) = followed_up("the resident's reply three days later", receive(&region, &resident).await);
    assert_eq!((threaded.id, event.event.kind), (appeal.id, EventKind::ResidentMessage), "a follow-up on it");

    region.advance(window() * 3);
    let own = replying_to(telegram(5, 22, 77, "Напоминаю о фонаре"), "5:10");
    let (threaded, _) = followed_up("a reply to the resident's own first message", receive(&region, &own).await);
    assert_eq!(threaded.id, appeal.id, "a reply to one's own message on the appeal threads too");

    region.advance(window() * 3);
    let unknown = replying_to(telegram(5, 23, 77, "Новая беда: упало дерево"), "5:12345");
    let (fresh, _) = registered("a reply to a message the engine does not know", receive(&region, &unknown).await);
    assert!(fresh.id != appeal.id && fresh.id != other.id, "a new appeal");
    assert_eq!(
        history_kinds(&region, appeal.id).await,
        [EventKind::Received, EventKind::ResidentMessage, EventKind::ResidentMessage],
        "the first appeal's history"
    );
}

async fn a_message_after_the_appeal_is_resolved_registers_a_new_appeal(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let (appeal, _) = registered("the first message", receive(&region, &telegram(5, 10, 77, "Яма у подъезда")).await);
    let due = claim_one("the acknowledgement", &region).await;
    region.store.record_part_sent(&due, 0, Some("5:999"), lease()).await.expect("recording the sent part");
    region.store.record_reply_sent(&due).await.expect("recording the delivery");
    region.advance(hours(1));
    followed_up("a follow-up", receive(&region, &telegram(5, 11, 77, "Фото ямы")).await);
    let seen = region.apply(&region.tomsk_head, &appeal, Command::MarkSeen).await;
    let resolved = region.apply(&region.tomsk_assistant, &seen, resolve(Outcome::Satisfied, "Яму заделали")).await;
    let history = region.store.history(appeal.id).await.expect("history");

    region.advance(hours(1));
    let thanks = replying_to(telegram(5, 12, 77, "Спасибо, но рядом ещё одна яма"), "5:999");
    let (next, _) = registered("a reply to the engine after the answer", receive(&region, &thanks).await);
    assert_ne!(next.id, appeal.id, "a resolved appeal takes no follow-up");
    assert_eq!(next.number, "TOMSK-2026-000002", "a new appeal");
    assert_eq!(reply_kinds(&region, next.id).await, [ReplyKind::Acknowledgement], "acknowledged");

    region.advance(hours(1));
    let (followed, _) = followed_up("the next message", receive(&region, &telegram(5, 13, 77, "Она у дома 7")).await);
    assert_eq!(followed.id, next.id, "the conversation continues on the new appeal");
    assert_eq!(region.fetch(appeal.id).await, resolved, "the resolved appeal is unchanged");
    assert_eq!(region.store.history(appeal.id).await.expect("history"), history, "and so is its history");
    assert_eq!(
        reply_kinds(&region, appeal.id).await,
        [ReplyKind::Acknowledgement, ReplyKind::SeenNotice, ReplyKind::Answer],
        "the resolved appeal's replies"
    );
}

async fn concurrent_copies_of_a_follow_up_record_one_event(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let (appeal, _) = registered("the first message", receive(&region, &telegram(5, 10, 77, "Нет горячей воды")).await);
    region.advance(TimeDelta::minutes(10));
    let follow_up = telegram(5, 11, 77, "Уже третий день");
    let results = race(16, |_| {
        let (store, tomsk, message) = (region.store.clone(), region.tomsk.id, follow_up.clone());
        async move { store.receive_channel_message(tomsk, Channel::Telegram, &message, window()).await }
    })
    .await;
    let mut recorded = 0;
    for (i, result) in results.into_iter().enumerate() {
        match result.unwrap_or_else(|error| panic!("copy {i} failed: {error}")) {
            Intake::FollowUp { appeal: followed, .. } => {
                assert_eq!(followed.id, appeal.id, "copy {i} followed up on the appeal");
                recorded += 1;
            }
            other => assert_eq!(other, Intake::Repeat { appeal_id: appeal.id }, "copy {i} is a repeat"),
        }
    }
    assert_eq!(recorded, 1, "exactly one copy recorded the follow-up");
    assert_eq!(
        history_kinds(&region, appeal.id).await,
        [EventKind::Received, EventKind::ResidentMessage],
        "one RESIDENT_MESSAGE event"
    );
    assert_eq!((count(&region, "appeal").await, count(&region, "channel_message").await), (1, 2), "rows");
    assert_eq!(count(&region, "reply").await, 1, "only the acknowledgement");
    let report = region.store.verify_appeal(appeal.id).await.expect("verifying").expect("the appeal exists");
    assert!(report.ok() && report.events_checked == 2, "the history verifies: {report:?}");
}

async fn mark_seen_and_resolve_queue_replies_only_for_appeals_that_came_through_a_chat(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let (appeal, _) = registered("the first message", receive(&region, &telegram(5, 10, 77, "Не вывозят мусор")).await);
    region.advance(TimeDelta::minutes(30));
    followed_up("a follow-up", receive(&region, &telegram(5, 11, 77, "Уже неделю")).await);

    let noted = region.apply(&region.tomsk_assistant, &appeal, note("Позвонили в управляющую компанию")).await;
    assert_eq!(
        reply_kinds(&region, appeal.id).await,
        [ReplyKind::Acknowledgement],
        "a note tells the resident nothing"
    );
    let seen = region.apply(&region.tomsk_head, &noted, Command::MarkSeen).await;
    assert_eq!(
        reply_kinds(&region, appeal.id).await,
        [ReplyKind::Acknowledgement, ReplyKind::SeenNotice],
        "the head's reading is told"
    );
    let response = "Контейнеры вывезли 3 марта, график восстановлен";
    region.apply(&region.tomsk_assistant, &seen, resolve(Outcome::Satisfied, response)).await;
    let queued = replies(&region, appeal.id).await;
    let kinds: Vec<ReplyKind> = queued.iter().map(|reply| reply.kind).collect();
    assert_eq!(kinds, [ReplyKind::Acknowledgement, ReplyKind::SeenNotice, ReplyKind::Answer], "and the answer");
    assert!(queued.iter().all(|reply| reply.status == ReplyStatus::Pending), "all pending: {queued:?}");
    for reply in &queued {
        assert!(reply.text.contains(&appeal.number), "{}: names the number: {}", reply.kind, reply.text);
    }
    assert!(queued[2].text.contains(response), "the answer carries the response: {}", queued[2].text);
    let due = claim(&region).await;
    assert_eq!(due.len(), 3, "all three are due: {due:?}");
    for reply in &due {
        let origin = ReplyTarget::Telegram { chat_id: 5, message_id: 10 };
        assert_eq!(reply.target, origin, "{}: answers the message the appeal began with", reply.kind);
    }

    let through_the_api = [
        ("a WEB appeal", web("Нет света в подъезде")),
        (
            "a TELEGRAM appeal submitted through the API",
            submission(Channel::Telegram, Some("chat-9/msg-1"), "Нет воды"),
        ),
    ];
    for (case, submitted) in through_the_api {
        let submitted = region.store.submit(&region.intake, &code("tomsk"), submitted).await.expect("a submission");
        let seen = region.apply(&region.tomsk_head, &submitted.appeal, Command::MarkSeen).await;
        region.apply(&region.tomsk_assistant, &seen, resolve(Outcome::Explained, "Разъяснено")).await;
        assert_eq!(replies(&region, submitted.appeal.id).await, [], "{case}: nothing queued, there is no chat");
    }
    assert_eq!(count(&region, "reply").await, 3, "no reply anywhere else");
}

async fn a_due_reply_is_claimed_by_one_worker_at_a_time(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let token = "123456:AAH-bot-token-of-tomsk";
    region
        .store
        .configure_channel(&code("tomsk"), Channel::Telegram, &secret_and_token("secret", token))
        .await
        .expect("configuring Telegram");
    let (appeal, _) = registered("the first message", receive(&region, &telegram(5, 10, 77, "Сломана скамейка")).await);
    let acknowledgement = replies(&region, appeal.id).await.remove(0);

    let results = race(2, |_| {
        let store = region.store.clone();
        async move { store.claim_due_replies(10, lease()).await }
    })
    .await;
    let claimed: Vec<DueReply> = results.into_iter().flat_map(|result| result.expect("claiming")).collect();
    assert_eq!(claimed.iter().map(|due| due.id).collect::<Vec<_>>(), [acknowledgement.id], "claimed once by the two");
    let due = &claimed[0];
    assert_eq!((due.attempts, due.parts_sent, due.in_doubt), (1, 0, false), "a first attempt");
    assert_eq!(
        (due.enabled, due.bot_token.as_ref().map(|token| token.expose()), due.vk_group_id.as_deref()),
        (true, Some(token), None),
        "the channel's settings as they are now"
    );
    assert!(!format!("{due:?}").contains(token), "a due reply's Debug hides the token: {due:?}");
    let stored = replies(&region, appeal.id).await.remove(0);
    assert_eq!((stored.status, stored.attempts), (ReplyStatus::Pending, 1), "claimed, still pending");

    region.advance(lease() - TimeDelta::seconds(1));
    assert!(claim(&region).await.is_empty(), "nothing to claim while the lease holds");

    // Many workers, many replies: each reply goes to one of them.
    let mut expected = Vec::new();
    for chat in 10..15 {
        let (other, _) = registered("another chat", receive(&region, &telegram(chat, 1, chat, "Обращение")).await);
        expected.push(replies(&region, other.id).await.remove(0).id);
    }
    let results = race(8, |_| {
        let store = region.store.clone();
        async move { store.claim_due_replies(10, lease()).await }
    })
    .await;
    let mut claimed: Vec<Uuid> =
        results.into_iter().flat_map(|result| result.expect("claiming")).map(|due| due.id).collect();
    claimed.sort();
    expected.sort();
    assert_eq!(claimed, expected, "every due reply claimed by exactly one worker");
}

async fn a_retried_reply_is_not_due_until_its_next_attempt(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let (appeal, _) = registered("the first message", receive(&region, &telegram(5, 10, 77, "Сломана скамейка")).await);
    let due = claim_one("the first attempt", &region).await;
    let next_attempt_at = region.now() + TimeDelta::minutes(10);
    let error = "Too Many Requests: retry after 600";
    region.store.record_reply_retry(&due, error, next_attempt_at).await.expect("recording a retry");
    let stored = replies(&region, appeal.id).await.remove(0);
    assert_eq!(
        (stored.status, stored.attempts, stored.last_error.as_deref(), stored.sent_at),
        (ReplyStatus::Pending, 1, Some(error), None),
        "pending, with the error"
    );
    assert!(claim(&region).await.is_empty(), "not due right after");
    region.advance(TimeDelta::minutes(9));
    assert!(claim(&region).await.is_empty(), "not due a minute before its time");
    region.advance(TimeDelta::minutes(1));
    let again = claim_one("at its time", &region).await;
    assert_eq!((again.id, again.attempts, again.in_doubt), (due.id, 2, false), "the second attempt, not in doubt");
}

async fn an_expired_claim_is_claimed_again_in_doubt(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let (appeal, _) = registered("the first message", receive(&region, &telegram(5, 10, 77, "Сломана скамейка")).await);
    let due = claim_one("the first attempt", &region).await;
    region.advance(TimeDelta::minutes(2));
    // The first part went out, which extends the claim; then the worker stopped.
    region.store.record_part_sent(&due, 0, None, lease()).await.expect("recording a part");
    region.advance(lease() - TimeDelta::seconds(1));
    assert!(claim(&region).await.is_empty(), "the extended claim still holds");
    region.advance(TimeDelta::seconds(2));
    let again = claim_one("after the claim expired", &region).await;
    assert_eq!(
        (again.id, again.attempts, again.parts_sent, again.in_doubt),
        (due.id, 2, 1, true),
        "the same reply, its second attempt, one part sent, in doubt"
    );
    let stored = replies(&region, appeal.id).await.remove(0);
    assert_eq!((stored.status, stored.attempts), (ReplyStatus::Pending, 2), "still pending");

    // An attempt that ends with an outcome leaves no doubt behind.
    region.store.record_reply_retry(&again, "Bad Gateway", region.now()).await.expect("recording a retry");
    let third = claim_one("after a recorded retry", &region).await;
    assert_eq!((third.attempts, third.parts_sent, third.in_doubt), (3, 1, false), "the third attempt");
}

async fn a_reply_sent_in_parts_is_recorded_as_sent_with_its_keys(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let (appeal, _) = registered("the first message", receive(&region, &telegram(5, 10, 77, "Сломана скамейка")).await);
    let due = claim_one("the acknowledgement", &region).await;
    region.advance(TimeDelta::seconds(1));
    region.store.record_part_sent(&due, 0, Some("5:100"), lease()).await.expect("the first part");
    region.store.record_part_sent(&due, 1, Some("5:101"), lease()).await.expect("the second part");
    region.advance(TimeDelta::seconds(1));
    region.store.record_reply_sent(&due).await.expect("recording the delivery");
    let stored = replies(&region, appeal.id).await.remove(0);
    assert_eq!(
        (stored.status, stored.sent_at, stored.attempts, stored.last_error),
        (ReplyStatus::Sent, Some(region.now()), 1, None),
        "sent, and when"
    );
    region.advance(lease() * 2);
    assert!(claim(&region).await.is_empty(), "a sent reply is never due again");
    assert_eq!(count(&region, "sent_message").await, 2, "both parts' keys are kept");

    region.advance(window() * 2);
    let reply = replying_to(telegram(5, 30, 77, "Скамейку так и не починили"), "5:101");
    let (threaded, _) = followed_up("a reply to the second part", receive(&region, &reply).await);
    assert_eq!(threaded.id, appeal.id, "any part's key finds the appeal");
}

async fn a_failed_reply_marks_the_channel_until_another_reply_is_delivered(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    for to in ["tomsk", "seversk"] {
        let change = secret_and_token("secret", "123456:token");
        region.store.configure_channel(&code(to), Channel::Telegram, &change).await.expect("configuring");
    }
    let mut appeals = Vec::new();
    for chat in [5, 6, 7] {
        let (appeal, _) = registered("a message", receive(&region, &telegram(chat, 10, chat, "Обращение")).await);
        appeals.push(appeal.id);
    }
    let due = claim(&region).await;
    let of = |id: AppealId| due.iter().find(|due| due.appeal_id == id).expect("each appeal's reply was claimed");
    let (blocked, long, delivered) = (of(appeals[0]), of(appeals[1]), of(appeals[2]));

    let refusal = "Forbidden: bot was blocked by the user";
    region.store.record_reply_failed(blocked, refusal).await.expect("recording a failure");
    let stored = replies(&region, appeals[0]).await.remove(0);
    assert_eq!(
        (stored.status, stored.last_error.as_deref(), stored.sent_at),
        (ReplyStatus::Failed, Some(refusal), None),
        "failed, with the platform's words"
    );
    assert_eq!(tomsk_telegram_settings(&region).await.last_error.as_deref(), Some(refusal), "the channel shows it");
    let seversk = region.store.channel_settings(Some(&code("seversk"))).await.expect("Seversk's settings");
    assert_eq!(seversk[0].last_error, None, "another municipality's channel is untouched");
    region.advance(lease() * 2);
    assert!(claim(&region).await.iter().all(|due| due.id != blocked.id), "a failed reply is never due by itself");

    region.store.record_reply_failed(long, &"ошибка ".repeat(200)).await.expect("recording a long failure");
    let kept = replies(&region, appeals[1]).await.remove(0).last_error.expect("an error is kept");
    assert_eq!(kept.chars().count(), 500, "a platform's long error is cut to 500 characters");

    region.store.record_reply_sent(delivered).await.expect("recording a delivery");
    assert_eq!(tomsk_telegram_settings(&region).await.last_error, None, "a delivery clears the channel's error");
    let stored = replies(&region, appeals[0]).await.remove(0);
    assert_eq!((stored.status, stored.last_error.as_deref()), (ReplyStatus::Failed, Some(refusal)), "still failed");
}

async fn only_an_official_of_the_municipality_may_resend_a_reply_and_only_a_failed_one(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let (appeal, _) = registered("the first message", receive(&region, &telegram(5, 10, 77, "Сломана скамейка")).await);
    let due = claim_one("the acknowledgement", &region).await;
    region.store.record_reply_failed(&due, "Forbidden: bot was blocked by the user").await.expect("a failure");
    let failed = replies(&region, appeal.id).await.remove(0);
    assert_eq!(failed.status, ReplyStatus::Failed, "the reply failed");

    let refusals = [
        ("Seversk's assistant", region.seversk_assistant, "Access(NotFound)"),
        ("Seversk's head", region.seversk_head, "Access(NotFound)"),
        ("an administrator", region.admin, "Access(Forbidden)"),
        ("the governor's office", region.governor, "Access(Forbidden)"),
        ("an auditor", region.auditor, "Access(Forbidden)"),
        ("intake", region.intake, "Access(Forbidden)"),
    ];
    for (case, actor, expected) in refusals {
        assert_eq!(outcome(&region.store.resend_reply(&actor, failed.id).await), expected, "{case}");
        assert_eq!(replies(&region, appeal.id).await, std::slice::from_ref(&failed), "{case}: the reply is unchanged");
        assert!(claim(&region).await.is_empty(), "{case}: nothing became due");
    }
    let unknown = region.store.resend_reply(&region.tomsk_assistant, Uuid::now_v7()).await;
    assert_eq!(outcome(&unknown), "NotFound", "a reply that does not exist");

    region.advance(TimeDelta::minutes(1));
    let resent = region.store.resend_reply(&region.tomsk_assistant, failed.id).await.expect("Tomsk's assistant");
    assert_eq!(resent.status, ReplyStatus::Pending, "pending again");
    assert_eq!(replies(&region, appeal.id).await, std::slice::from_ref(&resent), "as stored");
    let again = region.store.resend_reply(&region.tomsk_assistant, failed.id).await;
    assert_eq!(outcome(&again), "Invalid(id)", "a PENDING reply is not resent");
    let due = claim_one("the resent reply", &region).await;
    assert_eq!((due.id, due.attempts, due.in_doubt), (failed.id, 2, false), "due at once, a second attempt");
    region.store.record_reply_sent(&due).await.expect("delivered");
    let sent = region.store.resend_reply(&region.tomsk_head, failed.id).await;
    assert_eq!(outcome(&sent), "Invalid(id)", "a SENT reply is not resent");

    // The head may too.
    region.apply(&region.tomsk_head, &appeal, Command::MarkSeen).await;
    let notice = claim_one("the seen notice", &region).await;
    region.store.record_reply_failed(&notice, "Forbidden: bot was blocked by the user").await.expect("a failure");
    let resent = region.store.resend_reply(&region.tomsk_head, notice.id).await.expect("Tomsk's head");
    assert_eq!((resent.kind, resent.status), (ReplyKind::SeenNotice, ReplyStatus::Pending), "the head's resend");
}

async fn the_default_reply_texts_and_a_custom_acknowledgement_used_by_the_next_registration(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let store = &region.store;
    let defaults: Vec<ReplyText> = ReplyKind::ALL
        .iter()
        .map(|&kind| ReplyText { kind, template: default_template(kind).to_owned(), is_default: true })
        .collect();
    assert_eq!(store.reply_texts(&code("tomsk")).await.expect("Tomsk's texts"), defaults, "the defaults, each kind");

    let (first, _) = registered("before", receive(&region, &telegram(5, 10, 77, "Яма")).await);
    assert_eq!(
        replies(&region, first.id).await[0].text,
        "Ваше обращение зарегистрировано под номером TOMSK-2026-000001. Ответ будет дан не позднее 01.04.2026.",
        "the default acknowledgement"
    );

    let custom = "Обращение № {number} принято. Ответим до {due_date}. Спасибо!";
    let texts = store
        .configure_reply_texts(&code("tomsk"), &[(ReplyKind::Acknowledgement, format!("  {custom}\n"))])
        .await
        .expect("a custom acknowledgement");
    let mut expected = defaults.clone();
    expected[0] = ReplyText { kind: ReplyKind::Acknowledgement, template: custom.to_owned(), is_default: false };
    assert_eq!(texts, expected, "the custom acknowledgement, trimmed, and the other defaults");
    assert_eq!(store.reply_texts(&code("tomsk")).await.expect("Tomsk's texts"), expected, "as stored");
    assert_eq!(store.reply_texts(&code("seversk")).await.expect("Seversk's"), defaults, "Seversk keeps the defaults");

    let (second, _) = registered("after", receive(&region, &telegram(6, 1, 66, "Ещё яма")).await);
    assert_eq!(
        replies(&region, second.id).await[0].text,
        "Обращение № TOMSK-2026-000002 принято. Ответим до 01.04.2026. Спасибо!",
        "the next registration uses the custom text"
    );
    assert!(replies(&region, first.id).await[0].text.starts_with("Ваше обращение"), "a queued reply keeps its text");
    let seversk = store.municipality_by_code(&code("seversk")).await.expect("lookup").expect("Seversk");
    let message = telegram(7, 1, 70, "Яма");
    let intake = store.receive_channel_message(seversk.id, Channel::Telegram, &message, window()).await;
    let (elsewhere, _) = registered("at Seversk", intake.expect("taking in at Seversk"));
    assert!(replies(&region, elsewhere.id).await[0].text.starts_with("Ваше обращение"), "Seversk's default text");
    let unknown = store.reply_texts(&code("atlantis")).await;
    assert_eq!(outcome(&unknown), "Invalid(municipalityCode)", "an unknown municipality's texts");
}

async fn an_invalid_reply_text_changes_none_and_an_empty_one_restores_the_default(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let store = &region.store;
    let custom = [
        (ReplyKind::Acknowledgement, "Принято: {number}".to_owned()),
        (ReplyKind::Answer, "{response}\n\nАдминистрация".to_owned()),
    ];
    store.configure_reply_texts(&code("tomsk"), &custom).await.expect("custom texts");
    let before = store.reply_texts(&code("tomsk")).await.expect("Tomsk's texts");

    type Change = Vec<(ReplyKind, String)>;
    let text = |kind: ReplyKind, template: &str| (kind, template.to_owned());
    let cases: Vec<(&str, &str, Change, &str)> = vec![
        (
            "a valid seen notice with an answer without {response}",
            "tomsk",
            vec![
                text(ReplyKind::SeenNotice, "Прочитано: {number}"),
                text(ReplyKind::Answer, "Ответ по {number} готов"),
            ],
            "Invalid(answer)",
        ),
        (
            "a placeholder the acknowledgement cannot fill",
            "tomsk",
            vec![text(ReplyKind::Acknowledgement, "Ответ: {response}")],
            "Invalid(acknowledgement)",
        ),
        (
            "an unknown placeholder",
            "tomsk",
            vec![text(ReplyKind::SeenNotice, "Прочитано {numbr}")],
            "Invalid(seenNotice)",
        ),
        (
            "a text over 2000 characters",
            "tomsk",
            vec![(ReplyKind::Acknowledgement, "я".repeat(2001))],
            "Invalid(acknowledgement)",
        ),
        (
            "an unknown municipality",
            "atlantis",
            vec![text(ReplyKind::SeenNotice, "Прочитано")],
            "Invalid(municipalityCode)",
        ),
    ];
    for (case, to, change, expected) in cases {
        assert_eq!(outcome(&store.configure_reply_texts(&code(to), &change).await), expected, "{case}");
        assert_eq!(store.reply_texts(&code("tomsk")).await.expect("texts"), before, "{case}: no text changed");
    }

    let restored = store
        .configure_reply_texts(
            &code("tomsk"),
            &[text(ReplyKind::Acknowledgement, " \n "), text(ReplyKind::SeenNotice, "")],
        )
        .await
        .expect("restoring the defaults");
    let acknowledgement = ReplyText {
        kind: ReplyKind::Acknowledgement,
        template: default_template(ReplyKind::Acknowledgement).to_owned(),
        is_default: true,
    };
    assert_eq!(restored[0], acknowledgement, "an empty text restores the default");
    assert!(restored[1].is_default, "restoring a default never replaced is no error");
    assert_eq!(restored[2], before[2], "the custom answer stays");
    let (appeal, _) = registered("after restoring", receive(&region, &telegram(5, 10, 77, "Яма")).await);
    assert!(replies(&region, appeal.id).await[0].text.starts_with("Ваше обращение"), "the default is used again");
}

async fn a_history_with_follow_ups_verifies_and_a_rewritten_follow_up_is_caught(backend: Backend) {
    for keyed in [false, true] {
        let Some(region) = Region::open(backend).await else { return };
        let (region, case) = if keyed {
            (region.with_audit_key(audit_key(1)), "with an audit key")
        } else {
            (region, "without an audit key")
        };
        let (appeal, _) = registered(case, receive(&region, &telegram(5, 10, 77, "Шумят соседи по ночам")).await);
        region.advance(hours(1));
        followed_up(case, receive(&region, &telegram(5, 11, 77, "Сегодня опять до трёх утра")).await);
        let seen = region.apply(&region.tomsk_head, &appeal, Command::MarkSeen).await;
        region.advance(hours(1));
        followed_up(case, receive(&region, &telegram(5, 12, 77, "И вчера тоже")).await);
        region.apply(&region.tomsk_assistant, &seen, resolve(Outcome::Explained, "Передано участковому")).await;

        let history = region.store.history(appeal.id).await.expect("history");
        let kinds: Vec<EventKind> = history.iter().map(|stored| stored.event.kind).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Received,
                EventKind::ResidentMessage,
                EventKind::Seen,
                EventKind::ResidentMessage,
                EventKind::Resolved
            ],
            "{case}: the history"
        );
        assert!(history.iter().all(|stored| stored.seal.is_some() == keyed), "{case}: sealed exactly with a key");
        let report = region.store.verify_appeal(appeal.id).await.expect("verifying").expect("the appeal exists");
        assert_eq!((report.ok(), report.events_checked, report.sealed), (true, 5, keyed), "{case}: {report:?}");
        let summary = region.store.verify_all().await.expect("verifying everything");
        assert_eq!(summary.first_failure, None, "{case}: every history verifies");

        let tamper = format!(
            "UPDATE appeal_event SET note = 'Претензий нет' WHERE seq = 2 AND appeal_id = \
             (SELECT id FROM appeal WHERE number = '{}')",
            appeal.number
        );
        assert_eq!(region.execute(&tamper).await, 1, "{case}: the follow-up was rewritten");
        let report = region.store.verify_appeal(appeal.id).await.expect("verifying").expect("the appeal exists");
        assert_eq!(report.broken.map(|broken| broken.seq), Some(2), "{case}: caught at the follow-up");
    }
}
