//! MAX Bot API: webhook updates in, `POST /messages` out.
//!
//! Shapes from <https://dev.max.ru/docs-api> and its OpenAPI schema
//! (github.com/max-messenger/api-schema, 0.0.33): `Update` with `update_type` and
//! `timestamp`; `message_created` with `message: {sender, recipient, timestamp,
//! body: {mid, seq, text, attachments}, link}`; `User` (`user_id`, `first_name`,
//! `last_name`, `username`, `is_bot`; older payloads also carry `name`);
//! attachments `image`, `file`, `location` (latitude and longitude beside `type`)
//! and the rest; `POST /subscriptions` (its `secret` comes back in
//! [`SECRET_HEADER`]); `POST /messages?chat_id=…` or `?user_id=…` with
//! `NewMessageBody {text, link: {type: "reply", mid}}` answered by `{message}`;
//! errors as `{code, message}` with `401`, `403`, `404`, `429`, `5xx`. Times are
//! milliseconds since the epoch. The token goes in the `Authorization` header.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::reply::{self, Delivery, OutboundBody, OutboundCall};
use super::{
    Attachment, Inbound, InboundMessage, MAX_ATTACHMENTS, ParseError, ReplyTarget, attachment_field, bare_command,
    external_id, full_name, handle, is_blank, lenient, missing, parse_object, printable, shape,
};

/// The header that carries the subscription's `secret`.
pub const SECRET_HEADER: &str = "X-Max-Bot-Api-Secret";

/// Where the Bot API lives unless configured otherwise: MAX's documentation
/// now sends bots to `platform-api2.max.ru` rather than `platform-api.max.ru`.
pub const DEFAULT_API_URL: &str = "https://platform-api2.max.ru";

/// The longest message text (`NewMessageBody.text`, 4000 characters), counted in
/// UTF-16 code units to be safe whichever way MAX counts.
pub const MAX_TEXT_UTF16: usize = 4000;

/// Reads a webhook `Update`.
pub fn parse_update(body: &[u8]) -> Result<Inbound, ParseError> {
    let update = parse_object(body)?;
    let Some(update_type) = update.get("update_type") else {
        return Err(missing("update", "update_type"));
    };
    let Some(update_type) = update_type.as_str() else {
        return Err(ParseError::Shape {
            update: "update",
            problem: "a field has the wrong type (expected a string)".into(),
        });
    };
    match update_type {
        "message_created" => message_created(update.get("message")),
        known if UPDATE_TYPES.contains(&known) => Ok(Inbound::ignored(known)),
        unknown => Ok(Inbound::unknown_type(unknown)),
    }
}

/// The update types other than `message_created`, as the schema lists them.
const UPDATE_TYPES: &[&str] = &[
    "message_callback",
    "message_edited",
    "message_removed",
    "message_chat_created",
    "comment_created",
    "comment_edited",
    "comment_removed",
    "bot_added",
    "bot_removed",
    "user_added",
    "user_removed",
    "bot_started",
    "bot_stopped",
    "dialog_cleared",
    "dialog_removed",
    "dialog_muted",
    "dialog_unmuted",
    "chat_title_changed",
    "bot_admin_permissions_changed",
];

#[derive(Deserialize)]
struct Message {
    /// `null` for a post on behalf of a channel.
    sender: Option<User>,
    recipient: Recipient,
    timestamp: Option<i64>,
    /// `null` for a message that only forwards another.
    body: Option<Body>,
    #[serde(default, deserialize_with = "lenient")]
    link: Option<Link>,
}

#[derive(Deserialize)]
struct User {
    user_id: i64,
    first_name: Option<String>,
    last_name: Option<String>,
    /// The single name of payloads older than schema 0.0.33.
    name: Option<String>,
    username: Option<String>,
    #[serde(default, deserialize_with = "super::flag")]
    is_bot: bool,
}

#[derive(Deserialize)]
struct Recipient {
    chat_id: Option<i64>,
    chat_type: Option<String>,
}

#[derive(Deserialize)]
struct Body {
    mid: String,
    text: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    attachments: Option<Vec<Map<String, Value>>>,
}

/// A forwarded or replied-to message.
#[derive(Deserialize)]
struct Link {
    #[serde(rename = "type")]
    kind: String,
    message: LinkedBody,
}

#[derive(Deserialize)]
struct LinkedBody {
    mid: String,
}

fn message_created(message: Option<&Value>) -> Result<Inbound, ParseError> {
    let message: Message = shape("message_created", message.ok_or_else(|| missing("message_created", "message"))?)?;
    let Some(sender) = &message.sender else {
        return Ok(Inbound::ignored("message without a sender"));
    };
    if message.recipient.chat_type.as_deref() == Some("channel") {
        return Ok(Inbound::ignored("channel post"));
    }
    if sender.is_bot {
        return Ok(Inbound::ignored("message from a bot"));
    }
    let Some(body) = message.body else {
        return Ok(Inbound::ignored("forwarded message without text"));
    };
    let Some(text) = body.text.filter(|text| !is_blank(text)) else {
        return Ok(Inbound::ignored(without_text(body.attachments.as_deref())));
    };
    if let Some(command) = bare_command(&text) {
        return Ok(Inbound::ignored(format!("command {command}")));
    }

    let chat_id = message.recipient.chat_id;
    let user_id = sender.user_id;
    Ok(Inbound::Message(InboundMessage {
        external_id: external_id("message_created", format!("mid:{}", body.mid))?,
        conversation: match chat_id {
            Some(chat_id) => format!("chat:{chat_id}:from:{user_id}"),
            None => format!("user:{user_id}"),
        },
        message_key: body.mid.clone(),
        replied_to: message.link.filter(|link| link.kind == "reply").map(|link| link.message.mid),
        text,
        author_name: full_name([sender.first_name.as_deref(), sender.last_name.as_deref()])
            .or_else(|| full_name([sender.name.as_deref()])),
        author_contact: handle(sender.username.as_deref()).unwrap_or_else(|| format!("max:{user_id}")),
        attachments: attachments(body.attachments.as_deref()),
        target: ReplyTarget::Max { chat_id, user_id: Some(user_id), mid: body.mid },
        sent_at: message.timestamp.and_then(chrono::DateTime::from_timestamp_millis),
    }))
}

/// How a message without text is named: by its first attachment's type.
fn without_text(attachments: Option<&[Map<String, Value>]>) -> String {
    let first_type = attachments.and_then(|attachments| attachments.first()).and_then(|first| first.get("type"));
    match first_type.and_then(Value::as_str) {
        Some("sticker") => "sticker".to_owned(),
        Some("image") => "image without caption".to_owned(),
        Some(kind) => format!("{} without text", printable(kind, 32)),
        None => "message without text".to_owned(),
    }
}

/// MAX's attachments `{type, payload, …}`, as far as they are understood. The
/// keyboard a message carries is not content.
fn attachments(raw: Option<&[Map<String, Value>]>) -> Vec<Attachment> {
    raw.unwrap_or_default()
        .iter()
        .filter(|raw| raw.get("type").and_then(Value::as_str) != Some("inline_keyboard"))
        .take(MAX_ATTACHMENTS)
        .filter_map(attachment)
        .collect()
}

fn attachment(raw: &Map<String, Value>) -> Option<Attachment> {
    let kind = raw.get("type")?.as_str()?;
    let payload = raw.get("payload");
    let payload_field = |field: &str| payload.and_then(|payload| payload.get(field)).and_then(Value::as_str);
    let reference = attachment_field(payload_field("url")).or_else(|| attachment_field(payload_field("token")));
    Some(match kind {
        "image" => Attachment::Photo { file_id: reference? },
        "file" => Attachment::Document {
            file_id: reference?,
            file_name: attachment_field(raw.get("filename").and_then(Value::as_str)),
            mime_type: None,
        },
        "location" => Attachment::Location {
            latitude: raw.get("latitude")?.as_f64()?,
            longitude: raw.get("longitude")?.as_f64()?,
        },
        other => Attachment::Other { platform_type: printable(other, 32), file_id: reference },
    })
}

/// `POST /messages` to the chat the resident wrote in (or to the resident, where
/// the chat is not known), as a reply to their message. Plain text: no `format`.
pub(super) fn send_message(
    chat_id: Option<i64>,
    user_id: Option<i64>,
    mid: &str,
    token: &str,
    text: &str,
) -> OutboundCall {
    let path = match (chat_id, user_id) {
        (Some(chat_id), _) => format!("/messages?chat_id={chat_id}"),
        (None, Some(user_id)) => format!("/messages?user_id={user_id}"),
        // No recipient to name: MAX refuses the call, and the reply shows as refused.
        (None, None) => "/messages".to_owned(),
    };
    OutboundCall {
        path,
        headers: vec![("Authorization".to_owned(), token.to_owned())],
        body: OutboundBody::Json(json!({ "text": text, "link": { "type": "reply", "mid": mid } })),
    }
}

/// What the answer to `POST /messages` means. A `2xx` is delivered even if its body
/// cannot be read, since sending again would show the text twice; `401` waits for
/// an admin to fix the token; `403` (the resident stopped the bot, no access to
/// the chat) and the other `4xx` are final.
pub(super) fn classify(status: u16, retry_after_header: Option<&str>, body: &[u8]) -> Delivery {
    let answer = serde_json::from_slice::<Value>(body).unwrap_or_default();
    let header_delay = reply::retry_after(retry_after_header);
    let field = |name: &str| answer.get(name).and_then(Value::as_str);
    let detail = match (field("code"), field("message")) {
        (Some(code), Some(message)) => format!("MAX answered {status} ({code}): {message}"),
        (Some(code), None) => format!("MAX answered {status} ({code})"),
        (None, Some(message)) => format!("MAX answered {status}: {message}"),
        (None, None) => format!("MAX answered {status}"),
    };
    match status {
        200..=299 => Delivery::Sent {
            message_key: answer.pointer("/message/body/mid").and_then(Value::as_str).map(str::to_owned),
        },
        401 => Delivery::Retry { reason: reply::token_refused(&detail), after: None },
        429 => Delivery::Retry { reason: reply::reason(&detail), after: header_delay },
        400..=499 => Delivery::Refused { reason: reply::reason(&detail) },
        _ => Delivery::Retry { reason: reply::reason(&detail), after: header_delay },
    }
}
