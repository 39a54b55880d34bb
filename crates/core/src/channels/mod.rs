//! Residents write where they already are (spec, "Channels"): the head's Telegram
//! bot or channel discussion, the head's VK community (private messages and wall
//! comments), and MAX. This module reads what those platforms post to our webhooks
//! and writes the calls that answer the resident, without doing any IO itself: the
//! HTTP layer hands it a body and gets back an [`Inbound`]; the delivery worker
//! gets an [`OutboundCall`] to make and hands back the platform's answer to
//! [`classify`].
//!
//! What a webhook call amounts to is deliberately coarse. A resident's message
//! with text (or a caption) is an [`InboundMessage`]; everything else the
//! platforms send (edits, stickers, service messages, a photo without a caption,
//! the bot's own messages, unknown update types) is [`Inbound::Ignored`], which
//! the HTTP layer acknowledges so the platform does not retry it. Only a body
//! that is not JSON, not an object, or a known update without its documented
//! fields is a [`ParseError`] (a `400`).
//!
//! Every identifier the engine keeps is derived from the platform's own ids, in
//! three key spaces per platform: the idempotency key of an appeal
//! ([`InboundMessage::external_id`]), the resident's conversation
//! ([`InboundMessage::conversation`]), and a message's key
//! ([`InboundMessage::message_key`], [`Delivery::Sent`]), which lets a resident's
//! reply to one of our messages be threaded to its appeal.
//!
//! Layout:
//! - this file: the platform-neutral values and the few rules all three share;
//! - [`telegram`], [`vk`], [`max`]: each platform's payloads, as its own
//!   documentation describes them, in and out;
//! - [`reply`]: the outbound call for a [`ReplyTarget`], what the platform's answer
//!   means, reply texts split to the platforms' limits, and the default Russian
//!   reply templates.

pub mod max;
pub mod reply;
pub mod telegram;
pub mod vk;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

pub use reply::{
    Delivery, OutboundBody, OutboundCall, Platform, ReplyKind, build_call, classify, default_template, render,
    split_text, validate_template,
};

/// What a webhook call amounts to.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant, reason = "one value per webhook call, moved once; matched on by value")]
pub enum Inbound {
    /// A resident's message with text (or a caption): an appeal or a follow-up.
    Message(InboundMessage),
    /// Acknowledged with success and creates nothing; `kind` names what it was, for
    /// logs and metrics (e.g. `edited_message`, `sticker`, `photo without caption`,
    /// ``unknown update type `foo` ``, `message from a bot`, `outgoing message`).
    /// It is at most [`MAX_KIND_CHARS`] characters long and never carries message text.
    Ignored { kind: String },
}

/// A resident's message, with everything needed to register it and to answer it.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// Idempotency key, unique within one municipality's channel and derived from
    /// the platform's own ids: Telegram `chat:{chat_id}:msg:{message_id}`, VK private
    /// `msg:{peer_id}:{conversation_message_id}`, VK wall
    /// `wall:{owner_id}:{post_id}:{comment_id}`, MAX `mid:{mid}`. At most
    /// [`MAX_ID_CHARS`] characters.
    pub external_id: String,
    /// The resident's conversation (the same chat and the same author), so that
    /// follow-ups can be threaded: Telegram `chat:{chat_id}:from:{user_id}`, VK
    /// private `msg:{peer_id}:from:{from_id}`, VK wall
    /// `wall:{owner_id}:{post_id}:from:{from_id}`, MAX `chat:{chat_id}:from:{user_id}`.
    pub conversation: String,
    /// This message's key, in the key space of [`Delivery::Sent::message_key`]:
    /// Telegram `{chat_id}:{message_id}`, VK private `{peer_id}:{id}` (or
    /// `{peer_id}:c{conversation_message_id}` where VK gives no id, as in chats), VK
    /// wall `wall:{owner_id}:{comment_id}`, MAX the `mid`.
    pub message_key: String,
    /// The key of the message this one replies to, if any, in the same key space:
    /// Telegram `reply_to_message`, VK `reply_message` or the comment's
    /// `reply_to_comment`, MAX a `link` of type `reply`.
    pub replied_to: Option<String>,
    /// The text or the caption, as sent; the caller trims and validates it.
    pub text: String,
    /// The author's name as the platform gives it (`first_name last_name`), at most
    /// 200 characters; `None` where the platform gives none (VK's callbacks never do).
    pub author_name: Option<String>,
    /// `@username` where there is one, else `telegram:{user_id}`, `vk:id{from_id}` or
    /// `max:{user_id}`.
    pub author_contact: String,
    /// What came with the text, at most [`MAX_ATTACHMENTS`] of them.
    pub attachments: Vec<Attachment>,
    /// Where replies to this resident go.
    pub target: ReplyTarget,
    /// The platform's timestamp of the message, if it gave a valid one.
    pub sent_at: Option<DateTime<Utc>>,
}

/// Something that came with a resident's text. Stored as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Attachment {
    /// Telegram: the largest size's `file_id`; VK: `photo{owner_id}_{id}`; MAX: the
    /// image's `url` (or its `token` where there is no url).
    Photo { file_id: String },
    /// A file: Telegram's `Document`, VK's `doc` (`doc{owner_id}_{id}`), MAX's `file`.
    Document { file_id: String, file_name: Option<String>, mime_type: Option<String> },
    /// A point on the map.
    Location { latitude: f64, longitude: f64 },
    /// Anything else that came alongside text (a video, a voice message, a sticker),
    /// named by the platform's own type.
    Other { platform_type: String, file_id: Option<String> },
}

/// Where a reply to a resident goes, and which of their messages it answers.
/// Stored as JSON with the reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReplyTarget {
    /// A Telegram chat, replying to the resident's message.
    Telegram { chat_id: i64, message_id: i64 },
    /// A VK conversation with the community. VK gives bots in group chats no
    /// message id (`0`), only the `conversation_message_id`.
    VkMessage { peer_id: i64, conversation_message_id: Option<i64>, message_id: Option<i64> },
    /// A comment on the community's wall, answered by a reply comment.
    VkWall { owner_id: i64, post_id: i64, comment_id: i64 },
    /// A MAX dialog or chat. Replies go to `chat_id` where there is one, else to the
    /// user.
    Max { chat_id: Option<i64>, user_id: Option<i64>, mid: String },
}

/// A webhook body that cannot be read. The HTTP layer answers `400` and stores
/// nothing. The message names fields, never their values, so it can be logged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Not JSON at all (or nested deeper than the parser allows).
    #[error("the body is not valid JSON (line {line}, column {column})")]
    Malformed { line: usize, column: usize },
    /// Valid JSON, but not an object.
    #[error("the body is not a JSON object")]
    NotAnObject,
    /// A known update without the fields its documentation promises.
    #[error("a `{update}` update does not have the documented shape: {problem}")]
    Shape { update: &'static str, problem: String },
}

/// The most attachments recorded for one message; the rest are dropped.
pub const MAX_ATTACHMENTS: usize = 20;

/// The longest [`InboundMessage::external_id`], in characters.
pub const MAX_ID_CHARS: usize = 200;

/// The longest [`Inbound::Ignored`] kind, in characters.
pub const MAX_KIND_CHARS: usize = 80;

/// The longest author name kept, in characters (the limit of a person's name).
const MAX_NAME_CHARS: usize = 200;

/// The longest identifier, URL or file name kept in an [`Attachment`]; an
/// attachment whose id is longer is dropped rather than kept cut short.
const MAX_ATTACHMENT_FIELD_CHARS: usize = 2048;

impl ReplyTarget {
    /// The platform the reply goes out on.
    pub fn platform(&self) -> Platform {
        match self {
            ReplyTarget::Telegram { .. } => Platform::Telegram,
            ReplyTarget::VkMessage { .. } | ReplyTarget::VkWall { .. } => Platform::Vk,
            ReplyTarget::Max { .. } => Platform::Max,
        }
    }
}

impl Inbound {
    /// An update that creates nothing, named for logs and metrics.
    fn ignored(kind: impl Into<String>) -> Inbound {
        Inbound::Ignored { kind: bounded_kind(kind.into()) }
    }

    /// An update type the platform's documentation does not list (yet).
    fn unknown_type(name: &str) -> Inbound {
        Inbound::ignored(format!("unknown update type `{}`", printable(name, 40)))
    }
}

/// Reads a webhook body as a JSON object. serde_json's recursion limit (128) bounds
/// how deep an untrusted body may nest.
fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ParseError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ParseError::NotAnObject),
        Err(error) => Err(ParseError::Malformed { line: error.line(), column: error.column() }),
    }
}

/// Reads `value` as the documented shape `T` of an `update`. serde's own messages
/// quote the offending value, which may be a secret or a resident's words, so only
/// the field's name or the expected type is kept.
fn shape<'a, T: Deserialize<'a>>(update: &'static str, value: &'a Value) -> Result<T, ParseError> {
    T::deserialize(value).map_err(|error| ParseError::Shape { update, problem: shape_problem(&error.to_string()) })
}

fn shape_problem(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or_default();
    if let Some(field) = message.strip_prefix("missing field ") {
        format!("missing field {field}")
    } else if let Some((_, expected)) = message.split_once(", expected ") {
        format!("a field has the wrong type (expected {expected})")
    } else {
        "a field has the wrong type".to_owned()
    }
}

/// A missing required field, said the way serde says it.
fn missing(update: &'static str, field: &str) -> ParseError {
    ParseError::Shape { update, problem: format!("missing field `{field}`") }
}

/// Deserializes an optional decoration (an attachment, a reply reference) that
/// should not cost the resident their appeal when its shape is unexpected: it is
/// `None` then, as if absent.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(deserializer: D) -> Result<Option<T>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// Deserializes a flag that the platforms send as `true`/`false` or as `1`/`0`;
/// anything else reads as unset.
fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Bool(flag) => flag,
        Value::Number(number) => number.as_i64().is_some_and(|number| number != 0),
        _ => false,
    })
}

/// Whether a text shows nothing to a reader: whitespace and the invisible format
/// characters (zero-width spaces and joiners, directional marks, the byte-order
/// mark), as [`crate::text`] judges an empty text.
fn is_blank(text: &str) -> bool {
    text.chars().all(|c| {
        c.is_whitespace()
            || matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
    })
}

/// The command a text consists of, if it is nothing but a bot command: `/start`,
/// `/help@SomeBot`, or `/start` with a deep-link payload (a single word of letters,
/// digits, `_` and `-`, as Telegram's and MAX's start links carry). A resident
/// pressing Start is not writing an appeal; a command followed by words is text.
fn bare_command(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    let name = words.next()?.strip_prefix('/')?;
    let name = name.split_once('@').map_or(name, |(name, _bot)| name);
    let is_name = !name.is_empty() && name.len() <= 32 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !is_name {
        return None;
    }
    let payload: Vec<&str> = words.collect();
    let is_start_link = |word: &str| {
        name.eq_ignore_ascii_case("start")
            && word.len() <= 512
            && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    match payload.as_slice() {
        [] => Some(format!("/{name}")),
        [word] if is_start_link(word) => Some(format!("/{name}")),
        _ => None,
    }
}

/// A person's name from its parts, trimmed, at most [`MAX_NAME_CHARS`] long;
/// `None` if nothing is left.
fn full_name<'a>(parts: impl IntoIterator<Item = Option<&'a str>>) -> Option<String> {
    let joined =
        parts.into_iter().flatten().map(str::trim).filter(|part| !part.is_empty()).collect::<Vec<_>>().join(" ");
    (!joined.is_empty()).then(|| joined.chars().take(MAX_NAME_CHARS).collect())
}

/// `@username` if the platform gives a non-empty one.
fn handle(username: Option<&str>) -> Option<String> {
    let username = username?.trim().trim_start_matches('@');
    let is_handle = !username.is_empty()
        && username.len() <= 64
        && username.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    is_handle.then(|| format!("@{username}"))
}

/// An attachment field kept only if it fits [`MAX_ATTACHMENT_FIELD_CHARS`].
fn attachment_field(value: Option<&str>) -> Option<String> {
    let value = value?.trim();
    (!value.is_empty() && value.chars().count() <= MAX_ATTACHMENT_FIELD_CHARS).then(|| value.to_owned())
}

/// An external id checked against [`MAX_ID_CHARS`].
fn external_id(update: &'static str, id: String) -> Result<String, ParseError> {
    if id.chars().count() > MAX_ID_CHARS {
        return Err(ParseError::Shape {
            update,
            problem: format!("the message id is longer than {MAX_ID_CHARS} characters"),
        });
    }
    Ok(id)
}

/// A platform's type name, cut to `max_chars` and with anything unprintable
/// replaced, fit for a log line or a metric label.
fn printable(name: &str, max_chars: usize) -> String {
    name.chars().take(max_chars).map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn bounded_kind(kind: String) -> String {
    if kind.chars().count() <= MAX_KIND_CHARS { kind } else { kind.chars().take(MAX_KIND_CHARS).collect() }
}

/// A Unix time in seconds, if it is a valid date.
fn from_unix_seconds(seconds: Option<i64>) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds?, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_command_is_recognised_and_a_command_with_words_is_text() {
        let rows: &[(&str, Option<&str>)] = &[
            ("/start", Some("/start")),
            ("  /start  ", Some("/start")),
            ("/start@AppealsBot", Some("/start")),
            ("/start ref_poster-2024", Some("/start")),
            ("/help", Some("/help")),
            ("/help me please", None),
            ("/start Яма на дороге", None),
            ("/start two words", None),
            ("/", None),
            ("/ start", None),
            ("/старт", None),
            ("Яма на дороге /start", None),
            ("http://example.org", None),
        ];
        for (text, expected) in rows {
            assert_eq!(bare_command(text).as_deref(), *expected, "row {text:?}");
        }
    }

    #[test]
    fn serde_messages_lose_the_values_they_quote() {
        assert_eq!(shape_problem("missing field `chat`"), "missing field `chat`");
        assert_eq!(
            shape_problem("invalid type: string \"hunter2\", expected i64 at line 1 column 9"),
            "a field has the wrong type (expected i64)"
        );
        assert_eq!(shape_problem("something else about \"hunter2\""), "a field has the wrong type");
    }

    #[test]
    fn blank_texts_show_nothing() {
        assert!(is_blank(""));
        assert!(is_blank(" \n\t\u{200B}\u{FEFF}"));
        assert!(!is_blank(" а "));
    }
}
