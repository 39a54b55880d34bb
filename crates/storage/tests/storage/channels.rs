//! Channels: each municipality's channel settings and the webhook's gate, a
//! resident's message taken in exactly once as a new appeal or a follow-up on
//! the open one, the replies that registrations and commands queue, the outbox
//! the delivery worker drains, and the reply texts.

use appeals_core::channels::{Attachment, InboundMessage, ReplyKind, ReplyTarget, default_template};
use appeals_core::{Appeal, AppealId, Channel, Command, EventKind, Outcome, Status};
use appeals_storage::channels::ChannelMessage;
use appeals_storage::testing::{Backend, on_both_databases};
use appeals_storage::{ChannelChange, ChannelSettings, DueReply, Intake, Reply, ReplyStatus, StoredEvent};
use chrono::TimeDelta;
use sea_orm::prelude::Uuid;

use crate::support::{Region, at, audit_key, code, hours, outcome, race, resolve, submission, web};

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
    assert_eq!(store.channel_settings(None).await.expect("all settings"), [expected.clone()], "read back");
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
        (vk.municipality_code.as_str(), vk.enabled, vk.vk_group_id.as_deref(), vk.has_vk_confirmation, vk.has_bot_token),
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
    assert_eq!(region.store.history(appeal.id).await.expect("history"), [event.clone()], "the history is that event");

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
