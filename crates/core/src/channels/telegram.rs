//! Telegram Bot API: webhook updates in, `sendMessage` out.
//!
//! Shapes from <https://core.telegram.org/bots/api>: `Update` (one optional field
//! besides `update_id` says what happened), `Message`, `User`, `Chat`,
//! `PhotoSize`, `Document`, `Location`; `setWebhook` (the `secret_token` comes
//! back in [`SECRET_HEADER`]); `sendMessage` with `ReplyParameters`; and the
//! answer `{ok, result}` or `{ok: false, error_code, description, parameters}`
//! with `ResponseParameters.retry_after`.
//!
//! Only `message` can be an appeal: a resident writing to the bot, or commenting
//! on the head's channel in its discussion group. `channel_post` is the head's own
//! post; `business_message` would need a `business_connection_id` on every reply,
//! which [`ReplyTarget::Telegram`] does not carry, and the spec does not ask for it.
//! Messages sent on behalf of a chat (the channel's posts forwarded into the
//! discussion group, anonymous admins) and bots' messages are not residents'.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::reply::{self, Delivery, OutboundBody, OutboundCall};
use super::{
    Attachment, Inbound, InboundMessage, MAX_ATTACHMENTS, ParseError, ReplyTarget, attachment_field, bare_command,
    external_id, from_unix_seconds, full_name, handle, is_blank, lenient, missing, parse_object, shape,
};

/// The header that carries the webhook's `secret_token`.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// Where the Bot API lives unless configured otherwise.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";

/// The longest message text, in UTF-16 code units (Telegram counts the text after
/// entity parsing that way; we send plain text, so nothing is parsed).
pub const MAX_TEXT_UTF16: usize = 4096;

/// Reads a webhook `Update`.
pub fn parse_update(body: &[u8]) -> Result<Inbound, ParseError> {
    let update = parse_object(body)?;
    if !update.get("update_id").is_some_and(Value::is_i64) {
        return Err(missing("update", "update_id"));
    }
    if let Some(message) = update.get("message") {
        return parse_message(message);
    }
    if let Some(kind) = UPDATE_TYPES.iter().find(|kind| update.contains_key(**kind)) {
        return Ok(Inbound::ignored(*kind));
    }
    Ok(match update.keys().filter(|key| *key != "update_id").min() {
        Some(unknown) => Inbound::unknown_type(unknown),
        None => Inbound::ignored("empty update"),
    })
}

/// The `Update` fields other than `message`, as the Bot API documents them.
const UPDATE_TYPES: &[&str] = &[
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
];

/// What a message without text or caption carried, in the order it is named:
/// the `Message` field and the kind it is ignored as. A message with none of them
/// is a service message (a member joined, a title changed, a pin, …).
const CONTENT_WITHOUT_TEXT: &[(&str, &str)] = &[
    ("sticker", "sticker"),
    ("photo", "photo without caption"),
    ("animation", "animation without caption"),
    ("video", "video without caption"),
    ("video_note", "video note"),
    ("voice", "voice message without caption"),
    ("audio", "audio without caption"),
    ("document", "document without caption"),
    ("paid_media", "paid media without caption"),
    ("location", "location without text"),
    ("venue", "venue"),
    ("contact", "contact"),
    ("poll", "poll"),
    ("dice", "dice"),
    ("game", "game"),
    ("story", "story"),
];

#[derive(Deserialize)]
struct Message {
    message_id: i64,
    date: Option<i64>,
    chat: Chat,
    from: Option<User>,
    sender_chat: Option<IgnoredAny>,
    #[serde(default, deserialize_with = "super::flag")]
    is_automatic_forward: bool,
    text: Option<String>,
    caption: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    reply_to_message: Option<MessageRef>,
    #[serde(default, deserialize_with = "lenient")]
    photo: Option<Vec<PhotoSize>>,
    #[serde(default, deserialize_with = "lenient")]
    document: Option<Document>,
    #[serde(default, deserialize_with = "lenient")]
    location: Option<Location>,
    #[serde(default, deserialize_with = "lenient")]
    video: Option<File>,
    #[serde(default, deserialize_with = "lenient")]
    animation: Option<File>,
    #[serde(default, deserialize_with = "lenient")]
    audio: Option<File>,
    #[serde(default, deserialize_with = "lenient")]
    voice: Option<File>,
    #[serde(default, deserialize_with = "lenient")]
    video_note: Option<File>,
    #[serde(default, deserialize_with = "lenient")]
    sticker: Option<File>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
}

#[derive(Deserialize)]
struct User {
    id: i64,
    #[serde(default, deserialize_with = "super::flag")]
    is_bot: bool,
    first_name: Option<String>,
    last_name: Option<String>,
    username: Option<String>,
}

#[derive(Deserialize)]
struct MessageRef {
    message_id: i64,
}

#[derive(Deserialize)]
struct PhotoSize {
    file_id: String,
    #[serde(default)]
    width: u64,
    #[serde(default)]
    height: u64,
}

#[derive(Deserialize)]
struct Document {
    file_id: String,
    file_name: Option<String>,
    mime_type: Option<String>,
}

#[derive(Deserialize)]
struct Location {
    latitude: f64,
    longitude: f64,
}

/// Any of the media that is kept only by its `file_id`.
#[derive(Deserialize)]
struct File {
    file_id: String,
}

fn parse_message(value: &Value) -> Result<Inbound, ParseError> {
    let message: Message = shape("message", value)?;
    let Some(author) = &message.from else {
        return Ok(Inbound::ignored("message without a sender"));
    };
    if message.sender_chat.is_some() || message.is_automatic_forward {
        return Ok(Inbound::ignored("message on behalf of a chat"));
    }
    if author.is_bot {
        return Ok(Inbound::ignored("message from a bot"));
    }
    let text = [&message.text, &message.caption].into_iter().flatten().find(|text| !is_blank(text));
    let Some(text) = text else {
        let fields = value.as_object();
        let carried = CONTENT_WITHOUT_TEXT
            .iter()
            .find(|(field, _)| fields.and_then(|fields| fields.get(*field)).is_some_and(|value| !value.is_null()));
        let kind = match carried {
            Some((_, kind)) => kind,
            None if message.text.is_some() || message.caption.is_some() => "message without text",
            None => "service message",
        };
        return Ok(Inbound::ignored(kind));
    };
    if let Some(command) = bare_command(text) {
        return Ok(Inbound::ignored(format!("command {command}")));
    }

    let chat_id = message.chat.id;
    Ok(Inbound::Message(InboundMessage {
        external_id: external_id("message", format!("chat:{chat_id}:msg:{}", message.message_id))?,
        conversation: format!("chat:{chat_id}:from:{}", author.id),
        message_key: message_key(chat_id, message.message_id),
        replied_to: message.reply_to_message.as_ref().map(|replied| message_key(chat_id, replied.message_id)),
        text: text.clone(),
        author_name: full_name([author.first_name.as_deref(), author.last_name.as_deref()]),
        author_contact: handle(author.username.as_deref()).unwrap_or_else(|| format!("telegram:{}", author.id)),
        attachments: attachments(&message),
        target: ReplyTarget::Telegram { chat_id, message_id: message.message_id },
        sent_at: from_unix_seconds(message.date),
    }))
}

/// A message's key: message ids are unique within a chat.
fn message_key(chat_id: i64, message_id: i64) -> String {
    format!("{chat_id}:{message_id}")
}

fn attachments(message: &Message) -> Vec<Attachment> {
    let mut attachments = Vec::new();
    let largest_photo = message.photo.iter().flatten().max_by_key(|size| size.width.saturating_mul(size.height));
    if let Some(file_id) = largest_photo.and_then(|size| attachment_field(Some(&size.file_id))) {
        attachments.push(Attachment::Photo { file_id });
    }
    // An animation also fills `document`, for clients that predate animations.
    let document = message.document.as_ref().filter(|_| message.animation.is_none());
    if let Some(document) = document
        && let Some(file_id) = attachment_field(Some(&document.file_id))
    {
        attachments.push(Attachment::Document {
            file_id,
            file_name: attachment_field(document.file_name.as_deref()),
            mime_type: attachment_field(document.mime_type.as_deref()),
        });
    }
    if let Some(location) = &message.location {
        attachments.push(Attachment::Location { latitude: location.latitude, longitude: location.longitude });
    }
    let media = [
        ("video", &message.video),
        ("animation", &message.animation),
        ("audio", &message.audio),
        ("voice", &message.voice),
        ("video_note", &message.video_note),
        ("sticker", &message.sticker),
    ];
    for (platform_type, file) in media {
        if let Some(file) = file {
            let file_id = attachment_field(Some(&file.file_id));
            attachments.push(Attachment::Other { platform_type: platform_type.to_owned(), file_id });
        }
    }
    attachments.truncate(MAX_ATTACHMENTS);
    attachments
}

/// `sendMessage` to `chat_id`, replying to `message_id` (and sent anyway if that
/// message is gone). The text goes as plain text: no `parse_mode`, so a resident's
/// or an official's `<` and `*` are shown as written.
pub(super) fn send_message(chat_id: i64, message_id: i64, token: &str, text: &str) -> OutboundCall {
    OutboundCall {
        path: format!("/bot{token}/sendMessage"),
        headers: Vec::new(),
        body: OutboundBody::Json(json!({
            "chat_id": chat_id,
            "text": text,
            "reply_parameters": { "message_id": message_id, "allow_sending_without_reply": true },
        })),
    }
}

/// The Bot API's answer to a method call.
#[derive(Deserialize, Default)]
struct Answer {
    #[serde(default, deserialize_with = "lenient")]
    result: Option<SentMessage>,
    #[serde(default, deserialize_with = "lenient")]
    description: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct SentMessage {
    message_id: i64,
    #[serde(default, deserialize_with = "lenient")]
    chat: Option<Chat>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    retry_after: Option<u64>,
}

/// What `sendMessage`'s answer means. A `2xx` is delivered even if its body cannot
/// be read, since sending again would show the resident the text twice. A `401`
/// (or the `404` Telegram gives for a malformed token) waits for an admin to fix
/// the token; other `4xx` are the chat's final word (blocked, kicked, not found).
pub(super) fn classify(chat_id: i64, status: u16, retry_after_header: Option<&str>, body: &[u8]) -> Delivery {
    let answer: Answer = serde_json::from_slice(body).unwrap_or_default();
    let description = answer.description.as_deref().unwrap_or("no description");
    let header_delay = reply::retry_after(retry_after_header);
    match status {
        200..=299 => Delivery::Sent {
            message_key: answer
                .result
                .map(|sent| message_key(sent.chat.map_or(chat_id, |chat| chat.id), sent.message_id)),
        },
        401 | 404 => Delivery::Retry {
            reason: reply::token_refused(&format!("Telegram answered {status}: {description}")),
            after: None,
        },
        429 => Delivery::Retry {
            reason: reply::reason(&format!("Telegram is limiting the bot's requests: {description}")),
            after: answer.parameters.and_then(|parameters| parameters.retry_after).map(reply::seconds).or(header_delay),
        },
        400..=499 => Delivery::Refused { reason: reply::reason(&format!("Telegram answered {status}: {description}")) },
        _ => Delivery::Retry {
            reason: reply::reason(&format!("Telegram answered {status}: {description}")),
            after: header_delay,
        },
    }
}
