//! The messaging channels (Telegram, VK, MAX): each municipality's settings,
//! residents' messages taken in from the webhooks, and the outbox of replies
//! back to them.
//!
//! - this file: the settings an administrator configures, and what the
//!   webhooks need to check a call.
//! - [`intake`]: a resident's message becomes an appeal, or a follow-up on the
//!   open one, exactly once however often the platform sends it.
//! - [`outbox`]: replies queued in the transaction of the change that causes
//!   them, claimed and recorded by the delivery worker.
//! - [`templates`]: each municipality's reply texts.
//!
//! Secrets never leave this module in anything that is printed: the webhook
//! secret is kept as a SHA-256 digest and checked here in constant time; the bot
//! token is handed only to the delivery worker, wrapped in [`BotToken`], whose
//! `Debug` hides it.

use appeals_core::text::MunicipalityCode;
use appeals_core::{Channel, InvalidInput, MunicipalityId};
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};

use crate::Store;
use crate::database::begin_write;
use crate::entity::channel_setting;
use crate::error::{Result, StorageError};

pub mod intake;
pub mod outbox;
pub mod templates;

pub use intake::{ChannelMessage, Intake};
pub use outbox::{DueReply, Reply, ReplyStatus};

/// The platforms whose messages the engine takes in and answers.
pub const MESSAGING: [Channel; 3] = [Channel::Telegram, Channel::Vk, Channel::Max];

/// Whether appeals of `channel` arrive through a webhook and get replies.
pub fn is_messaging(channel: Channel) -> bool {
    MESSAGING.contains(&channel)
}

/// The longest secret, token, group id or confirmation string accepted.
const MAX_SETTING_CHARS: usize = 512;

/// A channel's settings as anyone may see them: never the secrets, only whether
/// they are set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSettings {
    pub municipality_id: MunicipalityId,
    pub municipality_code: String,
    pub channel: Channel,
    pub enabled: bool,
    pub has_webhook_secret: bool,
    pub has_bot_token: bool,
    pub vk_group_id: Option<String>,
    pub has_vk_confirmation: bool,
    /// When the platform last reached the webhook with a valid secret.
    pub last_update_at: Option<DateTime<Utc>>,
    /// The last delivery error, cleared by the next reply delivered.
    pub last_error: Option<String>,
}

/// A change to a channel's settings; `None` leaves a value as it is, an empty
/// string clears it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ChannelChange {
    pub enabled: Option<bool>,
    pub webhook_secret: Option<String>,
    pub bot_token: Option<String>,
    pub vk_group_id: Option<String>,
    pub vk_confirmation: Option<String>,
}

impl std::fmt::Debug for ChannelChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |value: &Option<String>| value.as_ref().map(|_| "…");
        f.debug_struct("ChannelChange")
            .field("enabled", &self.enabled)
            .field("webhook_secret", &hidden(&self.webhook_secret))
            .field("bot_token", &hidden(&self.bot_token))
            .field("vk_group_id", &self.vk_group_id)
            .field("vk_confirmation", &hidden(&self.vk_confirmation))
            .finish()
    }
}

/// A bot token on its way to the platform. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct BotToken(String);

impl BotToken {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BotToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BotToken(…)")
    }
}

/// What a webhook needs to accept a call for one municipality's channel.
#[derive(Clone)]
pub struct WebhookGate {
    pub municipality_id: MunicipalityId,
    pub enabled: bool,
    secret_digest: Option<String>,
    /// VK's confirmation string, answered to its `confirmation` call.
    pub vk_confirmation: Option<String>,
    pub vk_group_id: Option<String>,
}

impl std::fmt::Debug for WebhookGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookGate")
            .field("municipality_id", &self.municipality_id)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl WebhookGate {
    /// Whether `presented` is the configured secret. The digests are compared
    /// in constant time, so the time taken says nothing of how much matched; a
    /// channel without a secret accepts nothing.
    pub fn admits(&self, presented: Option<&str>) -> bool {
        let (Some(expected), Some(presented)) = (self.secret_digest.as_deref(), presented) else { return false };
        let presented = hex::encode(Sha256::digest(presented.as_bytes()));
        constant_time_eq(expected.as_bytes(), presented.as_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Both are 64 hex digits; a length difference means a corrupt row.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn secret_digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A setting's new value: `None` to leave it, `Some(None)` to clear it.
fn setting(field: &'static str, value: Option<&str>) -> Result<Option<Option<String>>> {
    let Some(value) = value else { return Ok(None) };
    let value = value.trim();
    if value.chars().count() > MAX_SETTING_CHARS {
        return Err(InvalidInput::new(field, format!("is longer than {MAX_SETTING_CHARS} characters")).into());
    }
    if value.chars().any(char::is_control) {
        return Err(InvalidInput::new(field, "contains control characters").into());
    }
    Ok(Some((!value.is_empty()).then(|| value.to_owned())))
}

impl Store {
    /// Creates or changes a municipality's settings for a messaging channel.
    /// Whether the caller may is the API's question (the command line is
    /// trusted). A new channel is enabled unless the change says otherwise.
    pub async fn configure_channel(
        &self,
        code: &MunicipalityCode,
        channel: Channel,
        change: &ChannelChange,
    ) -> Result<ChannelSettings> {
        if !is_messaging(channel) {
            return Err(InvalidInput::new(
                "channel",
                format!("{channel} has no webhook; configurable channels are TELEGRAM, VK and MAX"),
            )
            .into());
        }
        let municipality = self.known_municipality(code).await?;
        if change.webhook_secret.as_deref().is_some_and(|secret| secret != secret.trim()) {
            // The platform sends the secret exactly; one kept trimmed would never match.
            return Err(InvalidInput::new("webhookSecret", "must not begin or end with spaces").into());
        }
        let secret = setting("webhookSecret", change.webhook_secret.as_deref())?;
        if let Some(Some(secret)) = &secret {
            // Telegram allows 1–256 characters A–Z, a–z, 0–9, `_` and `-` in its
            // secret_token header; the same rule keeps every platform's header simple.
            if secret.len() > 256 || !secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                return Err(InvalidInput::new(
                    "webhookSecret",
                    "must be 1 to 256 characters of A-Z, a-z, 0-9, `_` and `-`",
                )
                .into());
            }
        }
        let token = setting("botToken", change.bot_token.as_deref())?;
        let group = setting("vkGroupId", change.vk_group_id.as_deref())?;
        if let Some(Some(group)) = &group
            && !group.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(InvalidInput::new("vkGroupId", "must be the community's numeric id").into());
        }
        let confirmation = setting("vkConfirmation", change.vk_confirmation.as_deref())?;

        let txn = begin_write(self.db()).await?;
        let existing = channel_setting::Entity::find_by_id((municipality.id.as_uuid(), channel.as_str().to_owned()))
            .one(&txn)
            .await?;
        let (enabled, mut digest, mut bot_token, mut vk_group_id, mut vk_confirmation, last_update_at, last_error) =
            match existing {
                Some(row) => (
                    row.enabled,
                    row.webhook_secret_digest,
                    row.bot_token,
                    row.vk_group_id,
                    row.vk_confirmation,
                    row.last_update_at,
                    row.last_error,
                ),
                None => (true, None, None, None, None, None, None),
            };
        if let Some(secret) = secret {
            digest = secret.as_deref().map(secret_digest);
        }
        if let Some(token) = token {
            bot_token = token;
        }
        if let Some(group) = group {
            vk_group_id = group;
        }
        if let Some(confirmation) = confirmation {
            vk_confirmation = confirmation;
        }
        let row = channel_setting::ActiveModel {
            municipality_id: Set(municipality.id.as_uuid()),
            channel: Set(channel.as_str().to_owned()),
            enabled: Set(change.enabled.unwrap_or(enabled)),
            webhook_secret_digest: Set(digest),
            bot_token: Set(bot_token),
            vk_group_id: Set(vk_group_id),
            vk_confirmation: Set(vk_confirmation),
            last_update_at: Set(last_update_at),
            last_error: Set(last_error),
            updated_at: Set(self.now()),
        };
        channel_setting::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([channel_setting::Column::MunicipalityId, channel_setting::Column::Channel])
                    .update_columns([
                        channel_setting::Column::Enabled,
                        channel_setting::Column::WebhookSecretDigest,
                        channel_setting::Column::BotToken,
                        channel_setting::Column::VkGroupId,
                        channel_setting::Column::VkConfirmation,
                        channel_setting::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        txn.commit().await?;
        let settings = self.channel_settings(Some(code)).await?;
        settings
            .into_iter()
            .find(|settings| settings.channel == channel)
            .ok_or_else(|| StorageError::Corrupt("a channel's settings vanished after they were written".to_owned()))
    }

    /// The configured channels, of one municipality or of all, by municipality
    /// code and channel.
    pub async fn channel_settings(&self, code: Option<&MunicipalityCode>) -> Result<Vec<ChannelSettings>> {
        let mut query = channel_setting::Entity::find();
        if let Some(code) = code {
            let municipality = self.known_municipality(code).await?;
            query = query.filter(channel_setting::Column::MunicipalityId.eq(municipality.id.as_uuid()));
        }
        let rows = query.all(self.db()).await?;
        let ids: Vec<MunicipalityId> = rows.iter().map(|row| MunicipalityId::from_uuid(row.municipality_id)).collect();
        let codes: std::collections::HashMap<MunicipalityId, String> =
            self.municipalities_by_ids(&ids).await?.into_iter().map(|m| (m.id, m.code)).collect();
        let mut settings = rows
            .into_iter()
            .map(|row| {
                let municipality_id = MunicipalityId::from_uuid(row.municipality_id);
                let corrupt =
                    |error: String| StorageError::Corrupt(format!("channel settings of {municipality_id}: {error}"));
                Ok(ChannelSettings {
                    municipality_id,
                    municipality_code: codes
                        .get(&municipality_id)
                        .cloned()
                        .ok_or_else(|| corrupt("no such municipality".to_owned()))?,
                    channel: row.channel.parse().map_err(|error: InvalidInput| corrupt(error.to_string()))?,
                    enabled: row.enabled,
                    has_webhook_secret: row.webhook_secret_digest.is_some(),
                    has_bot_token: row.bot_token.is_some(),
                    vk_group_id: row.vk_group_id,
                    has_vk_confirmation: row.vk_confirmation.is_some(),
                    last_update_at: row.last_update_at,
                    last_error: row.last_error,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        settings.sort_by(|a, b| (&a.municipality_code, a.channel).cmp(&(&b.municipality_code, b.channel)));
        Ok(settings)
    }

    /// What the webhook of `channel` for the municipality `code` checks a call
    /// against; `None` when the municipality or its channel is not configured.
    pub async fn webhook_gate(&self, code: &str, channel: Channel) -> Result<Option<WebhookGate>> {
        let Ok(code) = MunicipalityCode::parse(code) else { return Ok(None) };
        let Some(municipality) = self.municipality_by_code(&code).await? else { return Ok(None) };
        let row = channel_setting::Entity::find_by_id((municipality.id.as_uuid(), channel.as_str().to_owned()))
            .one(self.db())
            .await?;
        Ok(row.map(|row| WebhookGate {
            municipality_id: municipality.id,
            enabled: row.enabled,
            secret_digest: row.webhook_secret_digest,
            vk_confirmation: row.vk_confirmation,
            vk_group_id: row.vk_group_id,
        }))
    }

    /// Records that the platform reached the webhook with a valid secret.
    pub async fn note_webhook_call(&self, municipality_id: MunicipalityId, channel: Channel) -> Result<()> {
        channel_setting::Entity::update_many()
            .col_expr(channel_setting::Column::LastUpdateAt, sea_orm::sea_query::Expr::value(self.now()))
            .filter(channel_setting::Column::MunicipalityId.eq(municipality_id.as_uuid()))
            .filter(channel_setting::Column::Channel.eq(channel.as_str()))
            .exec(self.db())
            .await?;
        Ok(())
    }
}
