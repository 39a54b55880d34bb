//! The channels against the platforms' documented payloads (`tests/data/channels/`):
//! each example reads as the expected message or is ignored under its name,
//! malformed bodies are errors that quote nothing, the reply calls are the
//! documented ones, the platforms' answers mean what their documentation says,
//! and reply texts are split within the platforms' limits.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;

use appeals_core::channels::reply::{MAX_RETRY_AFTER, ReplyKind, default_template, render};
use appeals_core::channels::vk::{Callback, VkEvent};
use appeals_core::channels::{
    Attachment, Delivery, Inbound, InboundMessage, OutboundBody, ParseError, Platform, ReplyTarget, build_call,
    classify, max, split_text, telegram, vk,
};

macro_rules! data {
    ($name:literal) => {
        include_str!(concat!("data/channels/", $name))
    };
}

const TOKEN: &str = "7000000001:AAH-very-secret-token";

fn appeal(parsed: Result<Inbound, ParseError>, row: &str) -> InboundMessage {
    match parsed {
        Ok(Inbound::Message(message)) => message,
        other => panic!("{row}: expected a resident's message, got {other:?}"),
    }
}

fn vk_update(body: &str) -> Result<Inbound, ParseError> {
    vk::parse_callback(body.as_bytes()).map(|callback| match callback.event {
        VkEvent::Update(inbound) => inbound,
        VkEvent::Confirmation => panic!("expected an update, got a confirmation"),
    })
}

/// Checks that every row is acknowledged and ignored under its kind.
fn check_ignored(parse: fn(&str) -> Result<Inbound, ParseError>, rows: &[(&str, &str)]) {
    for (body, kind) in rows {
        assert_eq!(parse(body), Ok(Inbound::Ignored { kind: (*kind).to_owned() }), "row {kind:?}");
    }
}

/// Checks that every row is refused as malformed, with the expected error text.
fn check_malformed(parse: fn(&str) -> Result<Inbound, ParseError>, rows: &[(&str, &str)]) {
    for (body, expected) in rows {
        let error = parse(body).expect_err(body);
        assert_eq!(error.to_string(), *expected, "row {body}");
    }
}

fn telegram(body: &str) -> Result<Inbound, ParseError> {
    telegram::parse_update(body.as_bytes())
}

fn max(body: &str) -> Result<Inbound, ParseError> {
    max::parse_update(body.as_bytes())
}

fn at(seconds: i64) -> Option<chrono::DateTime<Utc>> {
    Some(Utc.timestamp_opt(seconds, 0).unwrap())
}

// Telegram -------------------------------------------------------------------

#[test]
fn a_private_telegram_message_is_an_appeal() {
    assert_eq!(
        appeal(telegram(data!("telegram_message.json")), "message"),
        InboundMessage {
            external_id: "chat:1111111:msg:1365".into(),
            conversation: "chat:1111111:from:1111111".into(),
            message_key: "1111111:1365".into(),
            replied_to: None,
            text: "Здравствуйте! На улице Ленина, 12 третью неделю не горят фонари.".into(),
            author_name: Some("Иван Петров".into()),
            author_contact: "@ivan_petrov".into(),
            attachments: vec![],
            target: ReplyTarget::Telegram { chat_id: 1111111, message_id: 1365 },
            sent_at: at(1767225600),
        }
    );
}

#[test]
fn a_telegram_caption_is_the_text_and_the_largest_photo_is_kept() {
    let message = appeal(telegram(data!("telegram_photo_caption.json")), "photo with caption");
    assert_eq!(message.text, "Яма на дороге у школы №5, уже второй раз за месяц 🚧");
    assert_eq!(message.attachments, vec![Attachment::Photo { file_id: "AgACAgIAAxkBAAIBYmZ-large".into() }]);
    assert_eq!(message.author_name.as_deref(), Some("Мария"));
    assert_eq!(message.author_contact, "telegram:2222222");
}

#[test]
fn a_telegram_document_with_a_caption_keeps_its_name_and_type() {
    let message = appeal(telegram(data!("telegram_document_caption.json")), "document");
    assert_eq!(
        message.attachments,
        vec![Attachment::Document {
            file_id: "BQACAgIAAxkBAAIBZmZ-document".into(),
            file_name: Some("заявление.pdf".into()),
            mime_type: Some("application/pdf".into()),
        }]
    );
    assert_eq!(message.author_contact, "@petr_s");
}

#[test]
fn a_comment_in_the_channels_discussion_group_is_an_appeal_in_its_thread() {
    let message = appeal(telegram(data!("telegram_discussion_comment.json")), "discussion comment");
    assert_eq!(message.external_id, "chat:-1009876543210:msg:5021");
    assert_eq!(message.conversation, "chat:-1009876543210:from:4444444");
    assert_eq!(message.replied_to.as_deref(), Some("-1009876543210:5019"));
    assert_eq!(message.author_name.as_deref(), Some("Светлана К."));
    assert_eq!(message.target, ReplyTarget::Telegram { chat_id: -1009876543210, message_id: 5021 });
}

#[test]
fn everything_else_telegram_sends_is_ignored_under_its_name() {
    let from_bot = r#"{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":5,"type":"private"},
        "from":{"id":5,"is_bot":true,"first_name":"B"},"text":"Привет"}}"#;
    let without_sender =
        r#"{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":5,"type":"group"},"text":"x"}}"#;
    let blank = r#"{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":5},"from":{"id":5,"first_name":"A"},
        "text":" \u200b "}}"#;
    let help = r#"{"update_id":1,"future_field":{"a":[1]},"message":{"message_id":1,"date":1,"chat":{"id":5},
        "from":{"id":5,"first_name":"A"},"text":"/help@tomsk_appeals_bot"}}"#;
    check_ignored(
        telegram,
        &[
            (data!("telegram_edited_message.json"), "edited_message"),
            (data!("telegram_photo_without_caption.json"), "photo without caption"),
            (data!("telegram_sticker.json"), "sticker"),
            (data!("telegram_start.json"), "command /start"),
            (data!("telegram_channel_post.json"), "channel_post"),
            (data!("telegram_callback_query.json"), "callback_query"),
            (data!("telegram_my_chat_member.json"), "my_chat_member"),
            (data!("telegram_automatic_forward.json"), "message on behalf of a chat"),
            (data!("telegram_location.json"), "location without text"),
            (data!("telegram_new_chat_members.json"), "service message"),
            (from_bot, "message from a bot"),
            (without_sender, "message without a sender"),
            (blank, "message without text"),
            (help, "command /help"),
            (r#"{"update_id":1,"business_message":{"anything":true}}"#, "business_message"),
            (r#"{"update_id":1,"future_update":{"x":1}}"#, "unknown update type `future_update`"),
            (r#"{"update_id":1}"#, "empty update"),
        ],
    );
}

#[test]
fn a_malformed_telegram_update_is_an_error() {
    check_malformed(
        telegram,
        &[
            ("", "the body is not valid JSON (line 1, column 0)"),
            ("{\"update_id\": 1", "the body is not valid JSON (line 1, column 15)"),
            ("[1, 2]", "the body is not a JSON object"),
            ("\"update\"", "the body is not a JSON object"),
            ("{}", "a `update` update does not have the documented shape: missing field `update_id`"),
            (
                r#"{"update_id":"1","message":{}}"#,
                "a `update` update does not have the documented shape: missing field `update_id`",
            ),
            (
                r#"{"update_id":1,"message":{"message_id":1,"date":1,"text":"x"}}"#,
                "a `message` update does not have the documented shape: missing field `chat`",
            ),
            (
                r#"{"update_id":1,"message":"Ремонт дороги"}"#,
                "a `message` update does not have the documented shape: a field has the wrong type (expected struct Message)",
            ),
        ],
    );
    let nested_too_deep = format!(r#"{{"update_id":1,"message":{}{}}}"#, "[".repeat(200), "]".repeat(200));
    assert!(matches!(telegram(&nested_too_deep), Err(ParseError::Malformed { .. })));
}

#[test]
fn a_parse_error_never_quotes_the_body() {
    let body = r#"{"update_id":1,"message":{"message_id":1,"chat":{"id":"Улица Ленина 12"},"text":"x"}}"#;
    let error = telegram(body).unwrap_err();
    assert_eq!(
        error.to_string(),
        "a `message` update does not have the documented shape: a field has the wrong type (expected i64)"
    );
}

// VK -------------------------------------------------------------------------

#[test]
fn a_vk_confirmation_names_the_community() {
    let callback = vk::parse_callback(data!("vk_confirmation.json").as_bytes()).unwrap();
    assert_eq!(callback, Callback { group_id: 229123456, secret: None, event: VkEvent::Confirmation });
}

#[test]
fn a_private_message_to_the_vk_community_is_an_appeal() {
    let callback = vk::parse_callback(data!("vk_message_new.json").as_bytes()).unwrap();
    assert_eq!(callback.group_id, 229123456);
    assert_eq!(callback.secret.as_deref(), Some("Callback-Secret-5hQ"));
    let VkEvent::Update(inbound) = callback.event else { panic!("expected an update") };
    assert_eq!(
        appeal(Ok(inbound), "message_new"),
        InboundMessage {
            external_id: "msg:2222222:37".into(),
            conversation: "msg:2222222:from:2222222".into(),
            message_key: "2222222:412".into(),
            replied_to: None,
            text: "Добрый день. Во дворе дома 5 по улице Кирова вторую неделю не вывозят мусор.".into(),
            author_name: None,
            author_contact: "vk:id2222222".into(),
            attachments: vec![],
            target: ReplyTarget::VkMessage {
                peer_id: 2222222,
                conversation_message_id: Some(37),
                message_id: Some(412)
            },
            sent_at: at(1767229200),
        }
    );
}

#[test]
fn a_vk_reply_names_the_message_it_answers_and_keeps_its_attachments() {
    let message = appeal(vk_update(data!("vk_message_new_reply.json")), "reply");
    assert_eq!(message.replied_to.as_deref(), Some("2222222:413"));
    assert_eq!(
        message.attachments,
        vec![
            Attachment::Location { latitude: 56.488512, longitude: 84.952191 },
            Attachment::Photo { file_id: "photo2222222_457239017".into() },
            Attachment::Document {
                file_id: "doc2222222_675432101".into(),
                file_name: Some("акт.pdf".into()),
                mime_type: None
            },
            Attachment::Other {
                platform_type: "audio_message".into(),
                file_id: Some("audio_message2222222_675432102".into())
            },
        ]
    );
}

#[test]
fn a_comment_on_the_vk_communitys_wall_is_an_appeal() {
    assert_eq!(
        appeal(vk_update(data!("vk_wall_reply_new.json")), "wall_reply_new"),
        InboundMessage {
            external_id: "wall:-229123456:5:8".into(),
            conversation: "wall:-229123456:5:from:4444444".into(),
            message_key: "wall:-229123456:8".into(),
            replied_to: None,
            text: "Когда починят освещение в сквере на Мира?".into(),
            author_name: None,
            author_contact: "vk:id4444444".into(),
            attachments: vec![],
            target: ReplyTarget::VkWall { owner_id: -229123456, post_id: 5, comment_id: 8 },
            sent_at: at(1767236400),
        }
    );
    let reply = appeal(vk_update(data!("vk_wall_reply_thread.json")), "wall thread");
    assert_eq!(reply.replied_to.as_deref(), Some("wall:-229123456:9"));
    assert_eq!(reply.target, ReplyTarget::VkWall { owner_id: -229123456, post_id: 5, comment_id: 12 });
}

#[test]
fn a_message_in_a_vk_group_chat_is_known_by_its_conversation_number() {
    let body = r#"{"type":"message_new","group_id":7,"object":{"message":{"id":0,"date":1,"peer_id":2000000003,
        "from_id":42,"text":"Когда откроют каток?","conversation_message_id":911,
        "reply_message":{"id":0,"conversation_message_id":900,"from_id":-7,"text":"…"}}}}"#;
    let message = appeal(vk_update(body), "group chat");
    assert_eq!(message.external_id, "msg:2000000003:911");
    assert_eq!(message.message_key, "2000000003:c911");
    assert_eq!(message.replied_to.as_deref(), Some("2000000003:c900"));
    assert_eq!(
        message.target,
        ReplyTarget::VkMessage { peer_id: 2000000003, conversation_message_id: Some(911), message_id: None }
    );
}

#[test]
fn everything_else_vk_sends_is_ignored_under_its_name() {
    let outgoing = r#"{"type":"message_new","group_id":7,"object":{"message":{"id":5,"peer_id":42,"from_id":42,
        "out":1,"conversation_message_id":5,"text":"Ответ"}}}"#;
    let from_community = r#"{"type":"message_new","group_id":7,"object":{"message":{"id":5,"peer_id":42,"from_id":-7,
        "conversation_message_id":5,"text":"Ответ"}}}"#;
    let service = r#"{"type":"message_new","group_id":7,"object":{"message":{"id":0,"peer_id":2000000001,
        "from_id":42,"conversation_message_id":5,"text":"","action":{"type":"chat_invite_user","member_id":-7}}}}"#;
    check_ignored(
        vk_update,
        &[
            (data!("vk_message_new_photo.json"), "photo without text"),
            (data!("vk_message_new_sticker.json"), "sticker"),
            (data!("vk_message_start_button.json"), "command /start"),
            (data!("vk_message_reply.json"), "message_reply"),
            (data!("vk_message_edit.json"), "message_edit"),
            (data!("vk_wall_reply_community.json"), "comment from a community"),
            (data!("vk_wall_post_new.json"), "wall_post_new"),
            (outgoing, "outgoing message"),
            (from_community, "message from a community"),
            (service, "service message"),
            (r#"{"type":"group_join","group_id":7,"object":{"user_id":1,"join_type":"join"}}"#, "group_join"),
            (r#"{"type":"future_event","group_id":7,"object":{}}"#, "unknown update type `future_event`"),
        ],
    );
}

#[test]
fn a_malformed_vk_callback_is_an_error() {
    check_malformed(
        vk_update,
        &[
            ("{\"type\":", "the body is not valid JSON (line 1, column 8)"),
            ("42", "the body is not a JSON object"),
            (r#"{"group_id":7}"#, "a `callback` update does not have the documented shape: missing field `type`"),
            (
                r#"{"type":"message_new"}"#,
                "a `callback` update does not have the documented shape: missing field `group_id`",
            ),
            (
                r#"{"type":"message_new","group_id":7}"#,
                "a `message_new` update does not have the documented shape: missing field `object`",
            ),
            (
                r#"{"type":"message_new","group_id":7,"object":{"message":{"peer_id":42,"text":"x"}}}"#,
                "a `message_new` update does not have the documented shape: missing field `from_id`",
            ),
            (
                r#"{"type":"message_new","group_id":7,"object":{"message":{"peer_id":42,"from_id":42,"text":"x"}}}"#,
                "a `message_new` update does not have the documented shape: missing field `conversation_message_id`",
            ),
            (
                r#"{"type":"wall_reply_new","group_id":7,"object":{"id":1,"from_id":42,"text":"x"}}"#,
                "a `wall_reply_new` update does not have the documented shape: missing field `post_id`",
            ),
        ],
    );
}

#[test]
fn a_vk_secret_is_never_shown() {
    let error = vk::parse_callback(br#"{"type":"confirmation","group_id":7,"secret":31415926}"#).unwrap_err();
    assert!(!error.to_string().contains("31415926"), "{error}");
    let callback = vk::parse_callback(data!("vk_message_new.json").as_bytes()).unwrap();
    let shown = format!("{callback:?}");
    assert!(!shown.contains("Callback-Secret-5hQ") && shown.contains("<redacted>"), "{shown}");
}

// MAX ------------------------------------------------------------------------

#[test]
fn a_message_to_the_max_bot_is_an_appeal() {
    assert_eq!(
        appeal(max(data!("max_message_created.json")), "message_created"),
        InboundMessage {
            external_id: "mid:mid.0000000008a53b9b019c44bd612d33e0".into(),
            conversation: "chat:68524973:from:10001".into(),
            message_key: "mid.0000000008a53b9b019c44bd612d33e0".into(),
            replied_to: None,
            text: "Здравствуйте! На остановке «Площадь Ленина» сломан павильон.".into(),
            author_name: Some("Анна Смирнова".into()),
            author_contact: "max:10001".into(),
            attachments: vec![],
            target: ReplyTarget::Max {
                chat_id: Some(68524973),
                user_id: Some(10001),
                mid: "mid.0000000008a53b9b019c44bd612d33e0".into()
            },
            sent_at: Some(Utc.timestamp_millis_opt(1767229200000).unwrap()),
        }
    );
}

#[test]
fn a_max_reply_names_the_message_it_answers_and_keeps_its_attachments() {
    let message = appeal(max(data!("max_message_created_reply.json")), "reply");
    assert_eq!(message.replied_to.as_deref(), Some("mid.0000000008a53b9b019c44bd6a11f001"));
    assert_eq!(message.author_contact, "@anna_smirnova");
    assert_eq!(
        message.attachments,
        vec![
            Attachment::Photo { file_id: "https://i.oneme.ru/i?r=BTGBPUwtwgYUeoFhO7rESmr8FddYu8EkRnc1BbDFbQm1".into() },
            Attachment::Document {
                file_id: "https://files.oneme.ru/f?r=example-file".into(),
                file_name: Some("жалоба.docx".into()),
                mime_type: None
            },
            Attachment::Location { latitude: 56.463256, longitude: 84.948215 },
        ]
    );
}

#[test]
fn everything_else_max_sends_is_ignored_under_its_name() {
    let channel_post = r#"{"update_type":"message_created","timestamp":1,"message":{"sender":null,
        "recipient":{"chat_id":-5,"chat_type":"channel"},"timestamp":1,"body":{"mid":"mid.1","seq":1,"text":"Пост"}}}"#;
    let start = r#"{"update_type":"message_created","timestamp":1,"message":{"sender":{"user_id":3,"first_name":"Олег",
        "is_bot":false},"recipient":{"chat_id":9,"chat_type":"dialog"},"timestamp":1,"body":{"mid":"mid.2","seq":2,
        "text":"/start"}}}"#;
    check_ignored(
        max,
        &[
            (data!("max_bot_started.json"), "bot_started"),
            (data!("max_message_edited.json"), "message_edited"),
            (data!("max_message_callback.json"), "message_callback"),
            (data!("max_message_sticker.json"), "sticker"),
            (data!("max_message_from_bot.json"), "message from a bot"),
            (channel_post, "message without a sender"),
            (start, "command /start"),
            (r#"{"update_type":"future_update","timestamp":1}"#, "unknown update type `future_update`"),
        ],
    );
}

#[test]
fn a_malformed_max_update_is_an_error() {
    check_malformed(
        max,
        &[
            ("nope", "the body is not valid JSON (line 1, column 2)"),
            ("null", "the body is not a JSON object"),
            (r#"{"timestamp":1}"#, "a `update` update does not have the documented shape: missing field `update_type`"),
            (
                r#"{"update_type":5}"#,
                "a `update` update does not have the documented shape: a field has the wrong type (expected a string)",
            ),
            (
                r#"{"update_type":"message_created","timestamp":1}"#,
                "a `message_created` update does not have the documented shape: missing field `message`",
            ),
            (
                r#"{"update_type":"message_created","message":{"body":{"mid":"m","seq":1,"text":"x"},"sender":{"user_id":1}}}"#,
                "a `message_created` update does not have the documented shape: missing field `recipient`",
            ),
        ],
    );
}

// Replies out ----------------------------------------------------------------

fn form(call_body: &OutboundBody) -> Vec<(&str, &str)> {
    match call_body {
        OutboundBody::Form(pairs) => pairs.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect(),
        OutboundBody::Json(json) => panic!("expected a form, got {json}"),
    }
}

#[test]
fn a_telegram_reply_is_send_message_replying_to_the_residents_message() {
    let call = build_call(&ReplyTarget::Telegram { chat_id: 1111111, message_id: 1365 }, TOKEN, None, "Ответ", 17);
    assert_eq!(call.path, format!("/bot{TOKEN}/sendMessage"));
    assert!(call.headers.is_empty());
    assert_eq!(
        call.body,
        OutboundBody::Json(json!({
            "chat_id": 1111111,
            "text": "Ответ",
            "reply_parameters": { "message_id": 1365, "allow_sending_without_reply": true }
        }))
    );
    assert_eq!(call.redacted_path(), "/bot<redacted>/sendMessage");
}

#[test]
fn a_vk_reply_is_messages_send_with_the_token_in_the_form() {
    let target = ReplyTarget::VkMessage { peer_id: 2222222, conversation_message_id: Some(37), message_id: Some(412) };
    let call = build_call(&target, TOKEN, Some("229123456"), "Ответ", -5);
    assert_eq!(call.path, "/method/messages.send");
    assert_eq!(
        form(&call.body),
        vec![
            ("peer_id", "2222222"),
            ("random_id", "-5"),
            ("message", "Ответ"),
            ("forward", r#"{"conversation_message_ids":[37],"is_reply":true,"peer_id":2222222}"#),
            ("access_token", TOKEN),
            ("v", "5.199"),
        ]
    );
    let by_id = ReplyTarget::VkMessage { peer_id: 2222222, conversation_message_id: None, message_id: Some(412) };
    assert!(form(&build_call(&by_id, TOKEN, None, "Ответ", 1).body).contains(&("reply_to", "412")));
}

#[test]
fn a_vk_wall_reply_is_a_comment_on_behalf_of_the_community() {
    let target = ReplyTarget::VkWall { owner_id: -229123456, post_id: 5, comment_id: 8 };
    let call = build_call(&target, TOKEN, Some("229123456"), "Ответ", 1001);
    assert_eq!(call.path, "/method/wall.createComment");
    assert_eq!(
        form(&call.body),
        vec![
            ("owner_id", "-229123456"),
            ("post_id", "5"),
            ("reply_to_comment", "8"),
            ("message", "Ответ"),
            ("guid", "-229123456_5_8_1001"),
            ("from_group", "229123456"),
            ("access_token", TOKEN),
            ("v", "5.199"),
        ]
    );
    let unconfigured = build_call(&target, TOKEN, None, "Ответ", 1001);
    assert!(form(&unconfigured.body).contains(&("from_group", "229123456")));
}

#[test]
fn a_max_reply_is_post_messages_with_the_token_in_the_header() {
    let target = ReplyTarget::Max { chat_id: Some(68524973), user_id: Some(10001), mid: "mid.abc".into() };
    let call = build_call(&target, TOKEN, None, "Ответ", 3);
    assert_eq!(call.path, "/messages?chat_id=68524973");
    assert_eq!(call.headers, vec![("Authorization".to_owned(), TOKEN.to_owned())]);
    assert_eq!(
        call.body,
        OutboundBody::Json(json!({ "text": "Ответ", "link": { "type": "reply", "mid": "mid.abc" } }))
    );
    let to_user = ReplyTarget::Max { chat_id: None, user_id: Some(10001), mid: "mid.abc".into() };
    assert_eq!(build_call(&to_user, TOKEN, None, "Ответ", 3).path, "/messages?user_id=10001");
}

#[test]
fn no_call_shows_its_token_when_logged() {
    let targets = [
        ReplyTarget::Telegram { chat_id: 1, message_id: 2 },
        ReplyTarget::VkMessage { peer_id: 1, conversation_message_id: Some(2), message_id: None },
        ReplyTarget::VkWall { owner_id: -1, post_id: 2, comment_id: 3 },
        ReplyTarget::Max { chat_id: Some(1), user_id: None, mid: "mid.1".into() },
    ];
    for target in targets {
        let call = build_call(&target, TOKEN, None, "Ответ", 1);
        let shown = format!("{call:?} {}", call.redacted_path());
        assert!(!shown.contains(TOKEN), "{target:?}: {shown}");
        assert!(shown.contains("Ответ"), "{target:?}: {shown}");
    }
}

// The platforms' answers ---------------------------------------------------------

#[test]
fn the_platforms_answers_mean_what_their_documentation_says() {
    let telegram = ReplyTarget::Telegram { chat_id: 1111111, message_id: 1365 };
    let vk_message =
        ReplyTarget::VkMessage { peer_id: 2222222, conversation_message_id: Some(37), message_id: Some(412) };
    let vk_wall = ReplyTarget::VkWall { owner_id: -229123456, post_id: 5, comment_id: 8 };
    let max = ReplyTarget::Max { chat_id: Some(68524973), user_id: Some(10001), mid: "mid.x".into() };
    let sent = |key: &str| Delivery::Sent { message_key: Some(key.to_owned()) };
    let retry = |reason: &str, after: Option<u64>| Delivery::Retry {
        reason: reason.to_owned(),
        after: after.map(Duration::from_secs),
    };
    let refused = |reason: &str| Delivery::Refused { reason: reason.to_owned() };
    let token = |detail: &str| format!("the bot token was refused ({detail})");
    let rows: Vec<(&ReplyTarget, u16, Option<&str>, &str, Delivery)> = vec![
        (&telegram, 200, None, data!("telegram_sent.json"), sent("1111111:1366")),
        (&telegram, 200, None, "<html>", Delivery::Sent { message_key: None }),
        (
            &telegram,
            403,
            None,
            data!("telegram_error_blocked.json"),
            refused("Telegram answered 403: Forbidden: bot was blocked by the user"),
        ),
        (
            &telegram,
            400,
            None,
            data!("telegram_error_chat_not_found.json"),
            refused("Telegram answered 400: Bad Request: chat not found"),
        ),
        (
            &telegram,
            429,
            Some("10"),
            data!("telegram_error_too_many_requests.json"),
            retry("Telegram is limiting the bot's requests: Too Many Requests: retry after 35", Some(35)),
        ),
        (&telegram, 429, Some("7"), "{}", retry("Telegram is limiting the bot's requests: no description", Some(7))),
        (
            &telegram,
            401,
            None,
            data!("telegram_error_unauthorized.json"),
            retry(&token("Telegram answered 401: Unauthorized"), None),
        ),
        (
            &telegram,
            404,
            None,
            r#"{"ok":false,"error_code":404,"description":"Not Found"}"#,
            retry(&token("Telegram answered 404: Not Found"), None),
        ),
        (
            &telegram,
            502,
            None,
            data!("telegram_error_bad_gateway.json"),
            retry("Telegram answered 502: Bad Gateway", None),
        ),
        (&vk_message, 200, None, data!("vk_sent.json"), sent("2222222:416")),
        (
            &vk_message,
            200,
            None,
            r#"{"response":[{"peer_id":2000000003,"message_id":0,"conversation_message_id":77}]}"#,
            sent("2222222:c77"),
        ),
        (&vk_wall, 200, None, data!("vk_comment_created.json"), sent("wall:-229123456:9090")),
        (
            &vk_message,
            200,
            None,
            data!("vk_error_permission.json"),
            refused("VK error 901: Can't send messages for users without permission"),
        ),
        (
            &vk_message,
            200,
            None,
            data!("vk_error_authorization.json"),
            retry(&token("VK error 5: User authorization failed: invalid access_token (4)."), None),
        ),
        (
            &vk_message,
            200,
            None,
            data!("vk_error_too_many_requests.json"),
            retry("VK error 6: Too many requests per second", None),
        ),
        (
            &vk_wall,
            200,
            None,
            data!("vk_error_comments_closed.json"),
            refused("VK error 213: Access to status replies denied"),
        ),
        (&vk_message, 200, None, "<html>", retry("VK's answer could not be read", None)),
        (&vk_message, 503, Some("3"), "", retry("VK answered HTTP 503", Some(3))),
        (&vk_message, 429, Some("3"), "", retry("VK is limiting the requests (HTTP 429)", Some(3))),
        (&max, 200, None, data!("max_sent.json"), sent("mid.0000000008a53b9b019c44bd6a11f001")),
        (
            &max,
            401,
            None,
            data!("max_error_unauthorized.json"),
            retry(&token("MAX answered 401 (verify.token): Invalid access_token"), None),
        ),
        (
            &max,
            403,
            None,
            data!("max_error_chat_denied.json"),
            refused("MAX answered 403 (chat.denied): Forwarding messages from this chat or channel is prohibited"),
        ),
        (
            &max,
            404,
            None,
            data!("max_error_not_found.json"),
            refused("MAX answered 404 (not.found): Chat 68524973 not found"),
        ),
        (
            &max,
            429,
            Some("2"),
            data!("max_error_too_many_requests.json"),
            retry("MAX answered 429 (too.many.requests): Too many requests", Some(2)),
        ),
        (&max, 503, None, "", retry("MAX answered 503", None)),
    ];
    for (target, status, retry_after, body, expected) in rows {
        assert_eq!(classify(target, status, retry_after, body.as_bytes()), expected, "{target:?} {status} {body}");
    }
}

#[test]
fn a_platform_cannot_postpone_a_retry_beyond_a_day() {
    let target = ReplyTarget::Max { chat_id: Some(1), user_id: None, mid: "mid.x".into() };
    let Delivery::Retry { after, .. } = classify(&target, 429, Some("999999999"), b"") else { panic!() };
    assert_eq!(after, Some(MAX_RETRY_AFTER));
}

#[test]
fn a_residents_reply_to_our_message_is_threaded_to_it() {
    let telegram_target = ReplyTarget::Telegram { chat_id: 1111111, message_id: 1365 };
    let ours = classify(&telegram_target, 200, None, data!("telegram_sent.json").as_bytes());
    let theirs = appeal(telegram(data!("telegram_reply.json")), "telegram reply");
    assert_eq!(ours, Delivery::Sent { message_key: theirs.replied_to });

    let vk_target =
        ReplyTarget::VkMessage { peer_id: 2222222, conversation_message_id: Some(37), message_id: Some(412) };
    let ours = classify(&vk_target, 200, None, br#"{"response":413}"#);
    let theirs = appeal(vk_update(data!("vk_message_new_reply.json")), "vk reply");
    assert_eq!(ours, Delivery::Sent { message_key: theirs.replied_to });

    let wall_target = ReplyTarget::VkWall { owner_id: -229123456, post_id: 5, comment_id: 8 };
    let ours = classify(&wall_target, 200, None, br#"{"response":{"comment_id":9,"parents_stack":[8]}}"#);
    let theirs = appeal(vk_update(data!("vk_wall_reply_thread.json")), "vk wall reply");
    assert_eq!(ours, Delivery::Sent { message_key: theirs.replied_to });

    let max_target = ReplyTarget::Max { chat_id: Some(68524973), user_id: Some(10001), mid: "mid.x".into() };
    let ours = classify(&max_target, 200, None, data!("max_sent.json").as_bytes());
    let theirs = appeal(max(data!("max_message_created_reply.json")), "max reply");
    assert_eq!(ours, Delivery::Sent { message_key: theirs.replied_to });
}

// Stored values ----------------------------------------------------------------

#[test]
fn reply_targets_and_attachments_are_stored_as_tagged_json() {
    let rows = [
        (
            json!(ReplyTarget::Telegram { chat_id: 1, message_id: 2 }),
            json!({"platform": "TELEGRAM", "chat_id": 1, "message_id": 2}),
        ),
        (
            json!(ReplyTarget::VkMessage { peer_id: 1, conversation_message_id: Some(2), message_id: None }),
            json!({"platform": "VK_MESSAGE", "peer_id": 1, "conversation_message_id": 2, "message_id": null}),
        ),
        (
            json!(ReplyTarget::VkWall { owner_id: -1, post_id: 2, comment_id: 3 }),
            json!({"platform": "VK_WALL", "owner_id": -1, "post_id": 2, "comment_id": 3}),
        ),
        (
            json!(ReplyTarget::Max { chat_id: None, user_id: Some(4), mid: "mid.1".into() }),
            json!({"platform": "MAX", "chat_id": null, "user_id": 4, "mid": "mid.1"}),
        ),
        (json!(Attachment::Photo { file_id: "f".into() }), json!({"kind": "PHOTO", "file_id": "f"})),
        (
            json!(Attachment::Document { file_id: "f".into(), file_name: None, mime_type: Some("text/plain".into()) }),
            json!({"kind": "DOCUMENT", "file_id": "f", "file_name": null, "mime_type": "text/plain"}),
        ),
        (
            json!(Attachment::Location { latitude: 56.5, longitude: 84.9 }),
            json!({"kind": "LOCATION", "latitude": 56.5, "longitude": 84.9}),
        ),
        (
            json!(Attachment::Other { platform_type: "voice".into(), file_id: None }),
            json!({"kind": "OTHER", "platform_type": "voice", "file_id": null}),
        ),
    ];
    for (stored, expected) in rows {
        assert_eq!(stored, expected);
    }
    let target = ReplyTarget::Max { chat_id: Some(1), user_id: Some(2), mid: "mid.1".into() };
    let read: ReplyTarget = serde_json::from_value(json!(target)).unwrap();
    assert_eq!(read, target);
    assert_eq!(read.platform(), Platform::Max);
}

#[test]
fn the_default_replies_are_russian_sentences() {
    let answer =
        render(default_template(ReplyKind::Answer), "ТМ-2026-000017", "30.01.2026", "Фонари заменят до 1 февраля.");
    assert_eq!(answer, "Ответ на ваше обращение ТМ-2026-000017:\n\nФонари заменят до 1 февраля.");
    let seen = render(default_template(ReplyKind::SeenNotice), "ТМ-2026-000017", "30.01.2026", "");
    assert_eq!(seen, "Ваше обращение ТМ-2026-000017 прочитано главой.");
    assert_eq!(ReplyKind::SeenNotice.as_str(), "SEEN_NOTICE");
}

// Splitting replies ----------------------------------------------------------------

fn utf16(text: &str) -> usize {
    text.encode_utf16().count()
}

#[test]
fn telegram_counts_utf16_code_units() {
    assert_eq!(split_text(Platform::Telegram, &"я".repeat(4096)).len(), 1);
    assert_eq!(split_text(Platform::Telegram, &"я".repeat(4097)).len(), 2);
    assert_eq!(split_text(Platform::Telegram, &"😀".repeat(2048)).len(), 1);
    let parts = split_text(Platform::Telegram, &"😀".repeat(2049));
    assert_eq!(parts.iter().map(|part| part.chars().count()).collect::<Vec<_>>(), vec![2048, 1]);
}

#[test]
fn a_twenty_thousand_character_answer_takes_at_most_ten_messages() {
    let words =
        ["Уважаемый", "заявитель,", "ремонт", "дороги", "на", "улице", "Советской", "запланирован", "🚧", "2026"];
    let mut text = String::new();
    let mut index = 0;
    while text.chars().count() < 20_000 {
        text.push_str(words[index % words.len()]);
        text.push(if index % 97 == 96 { '\n' } else { ' ' });
        index += 1;
    }
    let text: String = text.chars().take(20_000).collect();
    for (platform, most) in [(Platform::Telegram, 10), (Platform::Max, 10), (Platform::Vk, 12)] {
        let parts = split_text(platform, &text);
        assert!(parts.len() <= most, "{platform}: {} parts", parts.len());
    }
}

fn reply_text() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        "[а-яё]{1,12}",
        "[A-Za-z0-9]{1,10}",
        Just("😀".to_owned()),
        Just("👨\u{200D}👩\u{200D}👧".to_owned()),
        Just("й".to_owned()),
        Just("№5,".to_owned()),
    ];
    let separator = prop_oneof![8 => Just(" "), 2 => Just("\n"), 1 => Just("\n\n"), 1 => Just("  \t")];
    proptest::collection::vec((word, separator), 0..3000)
        .prop_map(|pieces| pieces.into_iter().flat_map(|(word, separator)| [word, separator.to_owned()]).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn split_parts_fit_keep_the_words_and_are_never_empty(text in reply_text()) {
        for platform in Platform::ALL {
            let parts = split_text(*platform, &text);
            for part in &parts {
                prop_assert!(!part.is_empty());
                prop_assert_eq!(part.trim(), part.as_str());
                prop_assert!(utf16(part) <= platform.max_part_utf16(), "{}: {} units", platform, utf16(part));
            }
            let rejoined = parts.join(" ");
            prop_assert_eq!(rejoined.split_whitespace().collect::<Vec<_>>(), text.split_whitespace().collect::<Vec<_>>());
            let half = platform.max_part_utf16() / 2;
            prop_assert!(parts.len() <= utf16(&text) / half + 1, "{}: {} parts", platform, parts.len());
            prop_assert_eq!(&split_text(*platform, &text), &parts);
        }
    }
}
