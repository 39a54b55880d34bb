//! Answers going back to the resident: the one HTTP call that sends a part of a
//! reply ([`build_call`]), what the platform's answer to it means ([`classify`]),
//! the reply text cut to the platform's length limit ([`split_text`]), and the
//! default reply texts ([`default_template`], [`render`]).
//!
//! The calls follow the platforms' documentation: Telegram `sendMessage`
//! (<https://core.telegram.org/bots/api#sendmessage>), VK `messages.send` and
//! `wall.createComment` (<https://dev.vk.com/ru/method/messages.send>,
//! <https://dev.vk.com/ru/method/wall.createComment>), MAX `POST /messages`
//! (<https://dev.max.ru/docs-api/methods/POST/messages>); see each platform's
//! module for the details.
//!
//! A token is part of every call: in Telegram's path, in VK's form body, in MAX's
//! `Authorization` header. [`OutboundCall`]'s `Debug` and
//! [`OutboundCall::redacted_path`] hide it; nothing else about a call may be logged.
//! No [`Delivery`] reason ever contains it.

mod parts;
mod template;

use std::fmt;
use std::time::Duration;

use super::{ReplyTarget, max, telegram, vk};
use crate::vocabulary;

pub use parts::split_text;
pub use template::{MAX_TEMPLATE_CHARS, ReplyKind, default_template, render, validate_template};

vocabulary!(
    /// A messaging platform residents write on.
    Platform {
        Telegram => "TELEGRAM",
        Vk => "VK",
        Max => "MAX",
    }
);

/// One HTTP call the delivery worker makes: a `POST` of `body` to the configured
/// API base URL followed by `path`, with `headers`.
#[derive(Clone, PartialEq)]
pub struct OutboundCall {
    /// Appended to the base URL, e.g. `/bot{token}/sendMessage`,
    /// `/method/messages.send`, `/messages?chat_id=…`. It may contain the token:
    /// log [`OutboundCall::redacted_path`] instead.
    pub path: String,
    /// Extra headers (MAX's `Authorization`); the body's content type is implied
    /// by its kind.
    pub headers: Vec<(String, String)>,
    pub body: OutboundBody,
}

/// The body of an [`OutboundCall`].
#[derive(Clone, PartialEq)]
pub enum OutboundBody {
    /// `application/json`.
    Json(serde_json::Value),
    /// `application/x-www-form-urlencoded`, in this order.
    Form(Vec<(String, String)>),
}

/// What the platform's answer to an [`OutboundCall`] means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Delivered. `message_key` names the message the engine sent, in the key space
    /// of [`super::InboundMessage::message_key`], so that a resident's reply to it
    /// can be threaded; `None` when the answer does not say.
    Sent { message_key: Option<String> },
    /// Not delivered yet: try again, no sooner than `after` if the platform said
    /// when. Rate limits, the platform's own failures, and a refused token (an admin
    /// fixes it and delivery continues).
    Retry { reason: String, after: Option<Duration> },
    /// Never deliverable: the resident blocked the bot, the chat is gone, the
    /// platform refused the call for good.
    Refused { reason: String },
}

/// The longest [`Delivery`] reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// The longest wait a platform may ask for before a retry; a longer one is cut to
/// this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Builds the call that sends `text`, one part of a reply, to `target`.
///
/// `idempotency_key` is a stable number the caller derives from the reply and the
/// part; VK uses it (`random_id`, and in the `guid` of a wall comment) so that a
/// retried call sends nothing twice. Telegram and MAX have no such parameter.
/// `vk_group_id` is the community a wall reply is posted on behalf of; without it,
/// the community that owns the wall.
pub fn build_call(
    target: &ReplyTarget,
    token: &str,
    vk_group_id: Option<&str>,
    text: &str,
    idempotency_key: i32,
) -> OutboundCall {
    match target {
        ReplyTarget::Telegram { chat_id, message_id } => telegram::send_message(*chat_id, *message_id, token, text),
        ReplyTarget::VkMessage { peer_id, conversation_message_id, message_id } => {
            vk::send_message(*peer_id, *conversation_message_id, *message_id, token, text, idempotency_key)
        }
        ReplyTarget::VkWall { owner_id, post_id, comment_id } => {
            vk::create_comment(*owner_id, *post_id, *comment_id, token, vk_group_id, text, idempotency_key)
        }
        ReplyTarget::Max { chat_id, user_id, mid } => max::send_message(*chat_id, *user_id, mid, token, text),
    }
}

/// What the platform's answer to the call built for `target` means:
/// `http_status`, the `Retry-After` header if there was one, and the body.
/// Network failures never reach here; the caller retries those itself.
pub fn classify(target: &ReplyTarget, http_status: u16, retry_after_header: Option<&str>, body: &[u8]) -> Delivery {
    match target {
        ReplyTarget::Telegram { chat_id, .. } => telegram::classify(*chat_id, http_status, retry_after_header, body),
        ReplyTarget::VkMessage { .. } | ReplyTarget::VkWall { .. } => {
            vk::classify(target, http_status, retry_after_header, body)
        }
        ReplyTarget::Max { .. } => max::classify(http_status, retry_after_header, body),
    }
}

impl Platform {
    /// The longest part of a reply, in UTF-16 code units.
    pub fn max_part_utf16(self) -> usize {
        match self {
            Platform::Telegram => telegram::MAX_TEXT_UTF16,
            Platform::Vk => vk::MAX_TEXT_UTF16,
            Platform::Max => max::MAX_TEXT_UTF16,
        }
    }
}

impl OutboundCall {
    /// The path with Telegram's `bot{token}` segment hidden, fit for a log line.
    pub fn redacted_path(&self) -> String {
        match self.path.strip_prefix("/bot") {
            Some(rest) => match rest.split_once('/') {
                Some((_token, method)) => format!("/bot{REDACTED}/{method}"),
                None => format!("/bot{REDACTED}"),
            },
            None => self.path.clone(),
        }
    }
}

const REDACTED: &str = "<redacted>";

/// Headers and form fields whose values are credentials.
const SECRET_NAMES: &[&str] = &["authorization", "access_token"];

fn redacted_pairs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(name, value)| {
            let secret = SECRET_NAMES.contains(&name.to_ascii_lowercase().as_str());
            (name.as_str(), if secret { REDACTED } else { value.as_str() })
        })
        .collect()
}

impl fmt::Debug for OutboundCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundCall")
            .field("path", &self.redacted_path())
            .field("headers", &redacted_pairs(&self.headers))
            .field("body", &self.body)
            .finish()
    }
}

impl fmt::Debug for OutboundBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutboundBody::Json(value) => f.debug_tuple("Json").field(value).finish(),
            OutboundBody::Form(pairs) => f.debug_tuple("Form").field(&redacted_pairs(pairs)).finish(),
        }
    }
}

/// A platform's words made fit for a stored reason: one line, at most
/// [`MAX_REASON_CHARS`].
pub(super) fn reason(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_REASON_CHARS).collect()
}

/// The reason given while a token is refused: an admin's problem, not the
/// resident's.
pub(super) fn token_refused(detail: &str) -> String {
    reason(&format!("the bot token was refused ({detail})"))
}

/// A `Retry-After` header given in seconds. (The HTTP-date form would need the
/// current time; it is left to the caller's own backoff.)
pub(super) fn retry_after(header: Option<&str>) -> Option<Duration> {
    header?.trim().parse::<u64>().ok().map(seconds)
}

/// A delay in seconds, at most [`MAX_RETRY_AFTER`].
pub(super) fn seconds(seconds: u64) -> Duration {
    Duration::from_secs(seconds).min(MAX_RETRY_AFTER)
}
