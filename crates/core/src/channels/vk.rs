//! VK: the community's Callback API in, `messages.send` and `wall.createComment`
//! out.
//!
//! Shapes from <https://dev.vk.com/ru/api/callback/getting-started> and
//! <https://dev.vk.com/ru/api/community-events/json-schema> (`{type, event_id, v,
//! object, group_id, secret}`; `confirmation`; `message_new` whose object is
//! `{message, client_info}` from API 5.103 on; `wall_reply_new`, a comment with
//! `post_id` and `post_owner_id`), the message object
//! (<https://dev.vk.com/ru/reference/objects/message>), the methods
//! <https://dev.vk.com/ru/method/messages.send> and
//! <https://dev.vk.com/ru/method/wall.createComment>, and the error codes
//! (<https://dev.vk.com/ru/reference/errors>, `errors.json` in VKCOM/vk-api-schema).
//!
//! VK's callbacks carry no names, so a VK appeal's author is known by id only.
//! The community's own messages (`message_reply`, `out`) and comments (a negative
//! `from_id`) are not residents'.

use std::fmt;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use super::reply::{self, Delivery, OutboundBody, OutboundCall};
use super::{
    Attachment, Inbound, InboundMessage, MAX_ATTACHMENTS, ParseError, ReplyTarget, attachment_field, bare_command,
    external_id, from_unix_seconds, is_blank, lenient, missing, parse_object, printable, shape,
};

/// Where the API lives unless configured otherwise.
pub const DEFAULT_API_URL: &str = "https://api.vk.com";

/// The API version the calls are written against.
pub const API_VERSION: &str = "5.199";

/// The longest reply part, in UTF-16 code units. VK documents 9000 characters for
/// `messages.send` but shows and splits messages at about 4096, and documents no
/// limit for a wall comment; one conservative limit serves both.
pub const MAX_TEXT_UTF16: usize = 3500;

/// One Callback API call.
#[derive(Clone, PartialEq)]
pub struct Callback {
    /// The community the event happened in, to check against the configured one.
    pub group_id: i64,
    /// The `secret` configured for the server; absent only in `confirmation` calls
    /// of servers without one. Compare it in constant time; never log it (this
    /// type's `Debug` does not show it).
    pub secret: Option<String>,
    pub event: VkEvent,
}

/// What a Callback API call asks for.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant, reason = "one value per webhook call, moved once; matched on by value")]
pub enum VkEvent {
    /// VK checks the server: answer with the configured confirmation string.
    Confirmation,
    /// Anything else: answer `ok`.
    Update(Inbound),
}

/// Reads a Callback API call.
pub fn parse_callback(body: &[u8]) -> Result<Callback, ParseError> {
    let call = Value::Object(parse_object(body)?);
    let envelope: Envelope = shape("callback", &call)?;
    let event = match envelope.kind.as_str() {
        "confirmation" => VkEvent::Confirmation,
        "message_new" => VkEvent::Update(message_new(envelope.object.as_ref())?),
        "wall_reply_new" => VkEvent::Update(wall_reply_new(envelope.object.as_ref(), envelope.group_id)?),
        known if EVENT_TYPES.contains(&known) => VkEvent::Update(Inbound::ignored(known)),
        unknown => VkEvent::Update(Inbound::unknown_type(unknown)),
    };
    Ok(Callback { group_id: envelope.group_id, secret: envelope.secret, event })
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("group_id", &self.group_id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("event", &self.event)
            .finish()
    }
}

/// The Callback API's event types other than the two that become appeals.
const EVENT_TYPES: &[&str] = &[
    "message_reply",
    "message_edit",
    "message_allow",
    "message_deny",
    "message_typing_state",
    "message_event",
    "message_reaction_event",
    "message_read",
    "photo_new",
    "photo_comment_new",
    "photo_comment_edit",
    "photo_comment_restore",
    "photo_comment_delete",
    "audio_new",
    "video_new",
    "video_comment_new",
    "video_comment_edit",
    "video_comment_restore",
    "video_comment_delete",
    "wall_post_new",
    "wall_repost",
    "wall_reply_edit",
    "wall_reply_restore",
    "wall_reply_delete",
    "like_add",
    "like_remove",
    "board_post_new",
    "board_post_edit",
    "board_post_restore",
    "board_post_delete",
    "market_comment_new",
    "market_comment_edit",
    "market_comment_restore",
    "market_comment_delete",
    "market_order_new",
    "market_order_edit",
    "group_leave",
    "group_join",
    "user_block",
    "user_unblock",
    "poll_vote_new",
    "group_officers_edit",
    "group_change_settings",
    "group_change_photo",
    "vkpay_transaction",
    "app_payload",
    "donut_subscription_create",
    "donut_subscription_prolonged",
    "donut_subscription_expired",
    "donut_subscription_cancelled",
    "donut_subscription_price_changed",
    "donut_money_withdraw",
    "donut_money_withdraw_error",
];

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    group_id: i64,
    secret: Option<String>,
    object: Option<Value>,
}

#[derive(Deserialize)]
struct Message {
    /// `0` where VK gives bots no id (group chats).
    #[serde(default)]
    id: i64,
    date: Option<i64>,
    peer_id: i64,
    from_id: i64,
    #[serde(default)]
    text: String,
    #[serde(default, deserialize_with = "super::flag")]
    out: bool,
    conversation_message_id: Option<i64>,
    action: Option<IgnoredAny>,
    #[serde(default, deserialize_with = "lenient")]
    payload: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    reply_message: Option<RepliedMessage>,
    #[serde(default, deserialize_with = "lenient")]
    attachments: Option<Vec<Map<String, Value>>>,
    #[serde(default, deserialize_with = "lenient")]
    geo: Option<Geo>,
}

#[derive(Deserialize)]
struct RepliedMessage {
    #[serde(default)]
    id: i64,
    conversation_message_id: Option<i64>,
}

#[derive(Deserialize)]
struct Geo {
    coordinates: Coordinates,
}

#[derive(Deserialize)]
struct Coordinates {
    latitude: f64,
    longitude: f64,
}

/// A wall comment as `wall_reply_new` carries it.
#[derive(Deserialize)]
struct Comment {
    id: i64,
    from_id: i64,
    post_id: i64,
    post_owner_id: Option<i64>,
    owner_id: Option<i64>,
    date: Option<i64>,
    #[serde(default)]
    text: String,
    reply_to_comment: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    attachments: Option<Vec<Map<String, Value>>>,
}

fn message_new(object: Option<&Value>) -> Result<Inbound, ParseError> {
    let object = object.ok_or_else(|| missing("message_new", "object"))?;
    // From API 5.103 on the message comes with `client_info`; before, it was the object.
    let message = object.get("message").unwrap_or(object);
    let message: Message = shape("message_new", message)?;
    if message.out {
        return Ok(Inbound::ignored("outgoing message"));
    }
    if message.from_id < 0 {
        return Ok(Inbound::ignored("message from a community"));
    }
    if message.action.is_some() {
        return Ok(Inbound::ignored("service message"));
    }
    if is_start_button(message.payload.as_deref()) {
        return Ok(Inbound::ignored("command /start"));
    }
    if is_blank(&message.text) {
        return Ok(Inbound::ignored(without_text("message", message.attachments.as_deref())));
    }
    if let Some(command) = bare_command(&message.text) {
        return Ok(Inbound::ignored(format!("command {command}")));
    }

    let peer_id = message.peer_id;
    let message_id = (message.id > 0).then_some(message.id);
    let conversation_message_id = message.conversation_message_id.filter(|id| *id > 0);
    let Some(own_key) = message_key(peer_id, message_id, conversation_message_id) else {
        return Err(missing("message_new", "conversation_message_id"));
    };
    let id = match conversation_message_id {
        Some(conversation_message_id) => format!("msg:{peer_id}:{conversation_message_id}"),
        None => format!("msg:{peer_id}:id{}", message.id),
    };
    let mut attachments = attachments(message.attachments.as_deref());
    if let Some(geo) = &message.geo {
        let Coordinates { latitude, longitude } = geo.coordinates;
        attachments.insert(0, Attachment::Location { latitude, longitude });
        attachments.truncate(MAX_ATTACHMENTS);
    }
    Ok(Inbound::Message(InboundMessage {
        external_id: external_id("message_new", id)?,
        conversation: format!("msg:{peer_id}:from:{}", message.from_id),
        message_key: own_key,
        replied_to: message.reply_message.and_then(|replied| {
            message_key(peer_id, (replied.id > 0).then_some(replied.id), replied.conversation_message_id)
        }),
        text: message.text,
        author_name: None,
        author_contact: format!("vk:id{}", message.from_id),
        attachments,
        target: ReplyTarget::VkMessage { peer_id, conversation_message_id, message_id },
        sent_at: from_unix_seconds(message.date),
    }))
}

fn wall_reply_new(object: Option<&Value>, group_id: i64) -> Result<Inbound, ParseError> {
    let object = object.ok_or_else(|| missing("wall_reply_new", "object"))?;
    let comment: Comment = shape("wall_reply_new", object)?;
    if comment.from_id < 0 {
        return Ok(Inbound::ignored("comment from a community"));
    }
    if is_blank(&comment.text) {
        return Ok(Inbound::ignored(without_text("comment", comment.attachments.as_deref())));
    }

    let owner_id = comment.post_owner_id.or(comment.owner_id).unwrap_or(-group_id);
    let (post_id, comment_id) = (comment.post_id, comment.id);
    Ok(Inbound::Message(InboundMessage {
        external_id: external_id("wall_reply_new", format!("wall:{owner_id}:{post_id}:{comment_id}"))?,
        conversation: format!("wall:{owner_id}:{post_id}:from:{}", comment.from_id),
        message_key: comment_key(owner_id, comment_id),
        replied_to: comment
            .reply_to_comment
            .filter(|replied| *replied > 0)
            .map(|replied| comment_key(owner_id, replied)),
        text: comment.text,
        author_name: None,
        author_contact: format!("vk:id{}", comment.from_id),
        attachments: attachments(comment.attachments.as_deref()),
        target: ReplyTarget::VkWall { owner_id, post_id, comment_id },
        sent_at: from_unix_seconds(comment.date),
    }))
}

/// Whether a message's `payload` is the one VK's "Начать" (Start) button sends.
fn is_start_button(payload: Option<&str>) -> bool {
    let Some(payload) = payload else { return false };
    serde_json::from_str::<Value>(payload)
        .is_ok_and(|payload| payload.get("command").and_then(Value::as_str) == Some("start"))
}

/// How a message or comment without text is named: by its first attachment's type.
fn without_text(what: &str, attachments: Option<&[Map<String, Value>]>) -> String {
    let first_type = attachments.and_then(|attachments| attachments.first()).and_then(|first| first.get("type"));
    match first_type.and_then(Value::as_str) {
        Some("sticker") => "sticker".to_owned(),
        Some(kind) => format!("{} without text", printable(kind, 32)),
        None => format!("{what} without text"),
    }
}

/// A message's key: VK's message id within the community's conversation, or the
/// conversation's own message number where VK gives no id.
fn message_key(peer_id: i64, message_id: Option<i64>, conversation_message_id: Option<i64>) -> Option<String> {
    match (message_id, conversation_message_id.filter(|id| *id > 0)) {
        (Some(id), _) => Some(format!("{peer_id}:{id}")),
        (None, Some(conversation_message_id)) => Some(format!("{peer_id}:c{conversation_message_id}")),
        (None, None) => None,
    }
}

/// A wall comment's key: comment ids are unique on a wall.
fn comment_key(owner_id: i64, comment_id: i64) -> String {
    format!("wall:{owner_id}:{comment_id}")
}

/// VK's attachment objects `{type, <type>: {id, owner_id, …}}`, as far as they are
/// understood.
fn attachments(raw: Option<&[Map<String, Value>]>) -> Vec<Attachment> {
    raw.unwrap_or_default().iter().take(MAX_ATTACHMENTS).filter_map(attachment).collect()
}

fn attachment(raw: &Map<String, Value>) -> Option<Attachment> {
    let kind = raw.get("type")?.as_str()?;
    let media = raw.get(kind);
    let media_id = media.and_then(|media| {
        let owner_id = media.get("owner_id")?.as_i64()?;
        let id = media.get("id")?.as_i64()?;
        Some(format!("{kind}{owner_id}_{id}"))
    });
    Some(match kind {
        "photo" => Attachment::Photo { file_id: attachment_field(media_id.as_deref())? },
        "doc" => Attachment::Document {
            file_id: attachment_field(media_id.as_deref())?,
            file_name: attachment_field(media.and_then(|doc| doc.get("title")).and_then(Value::as_str)),
            mime_type: None,
        },
        other => {
            Attachment::Other { platform_type: printable(other, 32), file_id: attachment_field(media_id.as_deref()) }
        }
    })
}

/// `messages.send` to the resident's conversation, as a reply to their message.
/// `forward` with `is_reply` works in private dialogs and in group chats alike
/// (where a bot's `reply_to` fails, having no message id); `reply_to` is the
/// fallback for a message known only by id. `random_id` makes a retried call
/// send nothing twice. The token travels in the form body, never in the URL.
pub(super) fn send_message(
    peer_id: i64,
    conversation_message_id: Option<i64>,
    message_id: Option<i64>,
    token: &str,
    text: &str,
    random_id: i32,
) -> OutboundCall {
    let mut form = vec![
        ("peer_id".to_owned(), peer_id.to_string()),
        ("random_id".to_owned(), random_id.to_string()),
        ("message".to_owned(), text.to_owned()),
    ];
    if let Some(conversation_message_id) = conversation_message_id {
        let forward = serde_json::json!({
            "peer_id": peer_id,
            "conversation_message_ids": [conversation_message_id],
            "is_reply": true,
        });
        form.push(("forward".to_owned(), forward.to_string()));
    } else if let Some(message_id) = message_id {
        form.push(("reply_to".to_owned(), message_id.to_string()));
    }
    method_call("messages.send", form, token)
}

/// `wall.createComment` answering a comment, on behalf of the community. `guid`
/// makes a retried call post nothing twice; it names the comment answered as well
/// as the reply part, so that two replies never share one.
pub(super) fn create_comment(
    owner_id: i64,
    post_id: i64,
    comment_id: i64,
    token: &str,
    vk_group_id: Option<&str>,
    text: &str,
    idempotency_key: i32,
) -> OutboundCall {
    let mut form = vec![
        ("owner_id".to_owned(), owner_id.to_string()),
        ("post_id".to_owned(), post_id.to_string()),
        ("reply_to_comment".to_owned(), comment_id.to_string()),
        ("message".to_owned(), text.to_owned()),
        ("guid".to_owned(), format!("{owner_id}_{post_id}_{comment_id}_{idempotency_key}")),
    ];
    let configured = vk_group_id.and_then(|id| id.trim().trim_start_matches('-').parse::<i64>().ok());
    let group_id = configured.filter(|id| *id > 0).or((owner_id < 0).then(|| -owner_id));
    if let Some(group_id) = group_id {
        form.push(("from_group".to_owned(), group_id.to_string()));
    }
    method_call("wall.createComment", form, token)
}

fn method_call(method: &str, mut form: Vec<(String, String)>, token: &str) -> OutboundCall {
    form.push(("access_token".to_owned(), token.to_owned()));
    form.push(("v".to_owned(), API_VERSION.to_owned()));
    OutboundCall { path: format!("/method/{method}"), headers: Vec::new(), body: OutboundBody::Form(form) }
}

/// Error codes that pass: an unknown error, request rates (6, 9, 29), VK's own
/// trouble (10, 36, 43), the daily action quota (601), a captcha, too many replies
/// on one post (223).
const TRANSIENT_ERRORS: &[i64] = &[1, 6, 9, 10, 14, 29, 36, 43, 223, 601];

/// Error codes that mean the community's token no longer works: authorization
/// failed (5), group or application authorization failed (27, 28), an expired or
/// invalid token (1116, 1117).
const TOKEN_ERRORS: &[i64] = &[5, 27, 28, 1116, 1117];

/// What a method's answer means. VK reports its errors as `200` with
/// `{error: {error_code, error_msg}}`; the transient ones and a refused token are
/// retried, every other code is final (blacklisted 900, no permission 901, privacy
/// 902, access denied 7/15, deleted user 18, closed comments 212/213, …). A `2xx`
/// that cannot be read is retried too: `random_id` and `guid` keep a repeated call
/// from sending twice.
pub(super) fn classify(target: &ReplyTarget, status: u16, retry_after_header: Option<&str>, body: &[u8]) -> Delivery {
    let header_delay = reply::retry_after(retry_after_header);
    if !(200..=299).contains(&status) {
        return match status {
            429 => {
                Delivery::Retry { reason: format!("VK is limiting the requests (HTTP {status})"), after: header_delay }
            }
            400..=499 => Delivery::Refused { reason: format!("VK answered HTTP {status}") },
            _ => Delivery::Retry { reason: format!("VK answered HTTP {status}"), after: header_delay },
        };
    }
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        return Delivery::Retry { reason: "VK's answer could not be read".to_owned(), after: None };
    };
    if let Some(error) = answer.get("error") {
        let code = error.get("error_code").and_then(Value::as_i64).unwrap_or_default();
        let message = error.get("error_msg").and_then(Value::as_str).unwrap_or("no description");
        let detail = format!("VK error {code}: {message}");
        return if TOKEN_ERRORS.contains(&code) {
            Delivery::Retry { reason: reply::token_refused(&detail), after: None }
        } else if TRANSIENT_ERRORS.contains(&code) {
            Delivery::Retry { reason: reply::reason(&detail), after: header_delay }
        } else {
            Delivery::Refused { reason: reply::reason(&detail) }
        };
    }
    let Some(response) = answer.get("response") else {
        return Delivery::Retry { reason: "VK answered neither a response nor an error".to_owned(), after: None };
    };
    Delivery::Sent { message_key: sent_key(target, response) }
}

/// The key of the message or comment VK reports as created.
fn sent_key(target: &ReplyTarget, response: &Value) -> Option<String> {
    match target {
        ReplyTarget::VkMessage { peer_id, .. } => {
            // `messages.send` answers the message id; with `peer_ids`, a list of
            // `{peer_id, message_id, conversation_message_id}`.
            let sent = response.as_array().and_then(|sent| sent.first()).unwrap_or(response);
            let message_id = sent.as_i64().or_else(|| sent.get("message_id").and_then(Value::as_i64));
            let conversation_message_id = sent.get("conversation_message_id").and_then(Value::as_i64);
            message_key(*peer_id, message_id.filter(|id| *id > 0), conversation_message_id)
        }
        ReplyTarget::VkWall { owner_id, .. } => {
            let comment_id = response.get("comment_id").and_then(Value::as_i64)?;
            Some(comment_key(*owner_id, comment_id))
        }
        ReplyTarget::Telegram { .. } | ReplyTarget::Max { .. } => None,
    }
}
