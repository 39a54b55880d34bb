//! The messaging channels in GraphQL: the administrators' settings and reply
//! texts, and what an appeal shows of its channel (the replies to the
//! resident, the attachments of the resident's messages).
//!
//! Secrets and bot tokens are write-only: an input takes them, no output
//! returns them (only `hasWebhookSecret`, `hasBotToken`), and no error quotes
//! them.

use appeals_core::channels::{Attachment, ReplyKind as CoreReplyKind};
use appeals_core::text::MunicipalityCode;
use appeals_core::{AppealId, Operation};
use appeals_storage::channels::ChannelMessage;
use appeals_storage::channels::templates::ReplyText;
use appeals_storage::{ChannelChange, ChannelSettings, Reply};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::auth::current_actor;
use crate::error::{ApiError, ApiResult};
use crate::schema::context::store;
use crate::schema::loaders::loaders;
use crate::schema::types::{Channel, MunicipalityNode};

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "appeals_core::channels::ReplyKind")]
pub enum ReplyKind {
    /// The appeal was registered: its number and the date an answer is due.
    Acknowledgement,
    /// The head has read the appeal.
    SeenNotice,
    /// The appeal was resolved: the response.
    Answer,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "appeals_storage::ReplyStatus")]
pub enum ReplyStatus {
    /// Queued, or waiting to be tried again.
    Pending,
    /// The platform took it.
    Sent,
    /// Refused for good (`lastError` says why), or its delivery could not be
    /// confirmed; `resendReply` queues it again.
    Failed,
}

/// A message the engine sends the resident on the appeal's channel.
pub struct ReplyNode(pub Reply);

#[Object(name = "Reply")]
impl ReplyNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn kind(&self) -> ReplyKind {
        self.0.kind.into()
    }

    async fn status(&self) -> ReplyStatus {
        self.0.status.into()
    }

    /// Attempts made so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }

    /// Why the last attempt did not deliver it (the platform's reason).
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.sent_at
    }

    /// The text, as the resident receives it.
    #[graphql(complexity = "crate::budget::TEXT_COST")]
    async fn text(&self) -> &str {
        &self.0.text
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum AttachmentKind {
    Photo,
    Document,
    Location,
    /// Anything else (a video, a voice message…): see `platformType`.
    Other,
}

/// Something the resident sent with a message: a reference to the platform's
/// file (the engine does not download it) or a point on the map.
#[derive(SimpleObject)]
pub struct AppealAttachment {
    pub kind: AttachmentKind,
    /// The platform's id of the file (Telegram `file_id`, VK `photo1_2`, MAX's url).
    pub file_id: Option<String>,
    pub file_name: Option<String>,
    pub mime_type: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// The platform's own name for an `OTHER` attachment, such as `voice`.
    pub platform_type: Option<String>,
    /// When the message that carried it arrived.
    pub received_at: DateTime<Utc>,
}

impl AppealAttachment {
    fn new(attachment: Attachment, received_at: DateTime<Utc>) -> Self {
        let mut node = AppealAttachment {
            kind: AttachmentKind::Other,
            file_id: None,
            file_name: None,
            mime_type: None,
            latitude: None,
            longitude: None,
            platform_type: None,
            received_at,
        };
        match attachment {
            Attachment::Photo { file_id } => {
                node.kind = AttachmentKind::Photo;
                node.file_id = Some(file_id);
            }
            Attachment::Document { file_id, file_name, mime_type } => {
                node.kind = AttachmentKind::Document;
                node.file_id = Some(file_id);
                node.file_name = file_name;
                node.mime_type = mime_type;
            }
            Attachment::Location { latitude, longitude } => {
                node.kind = AttachmentKind::Location;
                node.latitude = Some(latitude);
                node.longitude = Some(longitude);
            }
            Attachment::Other { platform_type, file_id } => {
                node.platform_type = Some(platform_type);
                node.file_id = file_id;
            }
        }
        node
    }
}

/// The most attachments `Appeal.attachments` returns.
pub const MAX_ATTACHMENTS: usize = 100;

/// The attachments of an appeal's messages, oldest first, at most [`MAX_ATTACHMENTS`].
pub async fn attachments_of(ctx: &Context<'_>, id: AppealId) -> ApiResult<Vec<AppealAttachment>> {
    let messages: Vec<ChannelMessage> = loaders(ctx)?.appeals.load_one(MessagesOf(id)).await?.unwrap_or_default();
    Ok(messages
        .into_iter()
        .flat_map(|message| {
            let at = message.received_at;
            message.attachments.into_iter().map(move |attachment| AppealAttachment::new(attachment, at))
        })
        .take(MAX_ATTACHMENTS)
        .collect())
}

/// The replies of an appeal, oldest first.
pub async fn replies_of(ctx: &Context<'_>, id: AppealId) -> ApiResult<Vec<ReplyNode>> {
    let replies = loaders(ctx)?.appeals.load_one(RepliesOf(id)).await?.unwrap_or_default();
    Ok(replies.into_iter().map(ReplyNode).collect())
}

/// Loader keys: an appeal's replies, and its channel messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RepliesOf(pub AppealId);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessagesOf(pub AppealId);

/// A municipality's settings for one messaging channel. The secrets are never
/// shown, only whether they are set.
pub struct ChannelSettingsNode(pub ChannelSettings);

#[Object(name = "ChannelSettings")]
impl ChannelSettingsNode {
    async fn municipality(&self, ctx: &Context<'_>) -> ApiResult<MunicipalityNode> {
        loaders(ctx)?
            .directory
            .load_one(self.0.municipality_id)
            .await?
            .map(MunicipalityNode)
            .ok_or_else(|| ApiError::internal("channel settings of a missing municipality"))
    }

    async fn channel(&self) -> Channel {
        self.0.channel.into()
    }

    async fn enabled(&self) -> bool {
        self.0.enabled
    }

    /// The path the platform must call, on this server's public address.
    async fn webhook_path(&self) -> String {
        webhook_path(self.0.channel, &self.0.municipality_code)
    }

    async fn has_webhook_secret(&self) -> bool {
        self.0.has_webhook_secret
    }

    async fn has_bot_token(&self) -> bool {
        self.0.has_bot_token
    }

    /// The VK community's id (not a secret).
    async fn vk_group_id(&self) -> Option<&str> {
        self.0.vk_group_id.as_deref()
    }

    async fn has_vk_confirmation(&self) -> bool {
        self.0.has_vk_confirmation
    }

    /// When the platform last called the webhook with the right secret.
    async fn last_update_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_update_at
    }

    /// The last delivery error, cleared by the next reply delivered.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
}

/// `/hooks/telegram/tomsk` and the like.
pub fn webhook_path(channel: appeals_core::Channel, code: &str) -> String {
    format!("/hooks/{}/{code}", channel.as_str().to_ascii_lowercase())
}

#[derive(InputObject)]
pub struct ConfigureChannelInput {
    pub municipality_code: String,
    /// `TELEGRAM`, `VK` or `MAX`.
    pub channel: Channel,
    /// A new channel is enabled unless this says otherwise.
    pub enabled: Option<bool>,
    /// The secret the platform sends with every call (Telegram's
    /// `secret_token`, VK's `secret`, MAX's subscription `secret`): 1 to 256 of
    /// `A-Z a-z 0-9 _ -`. An empty string removes it.
    pub webhook_secret: Option<String>,
    /// The bot's (or VK community's) access token, for replies. An empty
    /// string removes it.
    pub bot_token: Option<String>,
    /// The VK community's numeric id.
    pub vk_group_id: Option<String>,
    /// The string VK's `confirmation` call must be answered with.
    pub vk_confirmation: Option<String>,
}

#[derive(SimpleObject)]
pub struct ConfigureChannelPayload {
    pub settings: ChannelSettingsNode,
}

/// A municipality's text for one kind of reply.
#[derive(SimpleObject)]
pub struct ReplyTextNode {
    pub kind: ReplyKind,
    /// With `{number}`, `{due_date}` and `{response}` where the values go.
    pub template: String,
    /// Whether this is the default (Russian) text.
    pub is_default: bool,
}

impl From<ReplyText> for ReplyTextNode {
    fn from(text: ReplyText) -> Self {
        ReplyTextNode { kind: text.kind.into(), template: text.template, is_default: text.is_default }
    }
}

#[derive(InputObject)]
pub struct ConfigureReplyTextsInput {
    pub municipality_code: String,
    /// Each given text replaces the municipality's text of its kind; an empty
    /// one goes back to the default. `{number}` and `{due_date}` are filled in.
    pub acknowledgement: Option<String>,
    /// `{number}` is filled in.
    pub seen_notice: Option<String>,
    /// Must contain `{response}`.
    pub answer: Option<String>,
}

#[derive(SimpleObject)]
pub struct ConfigureReplyTextsPayload {
    pub texts: Vec<ReplyTextNode>,
}

#[derive(SimpleObject)]
pub struct ResendReplyPayload {
    pub reply: ReplyNode,
}

#[derive(Default)]
pub struct ChannelsQuery;

#[Object]
impl ChannelsQuery {
    /// The configured channels, of one municipality or of all (admin only).
    #[graphql(complexity = "crate::budget::list(crate::budget::MUNICIPALITIES_ESTIMATE * 3, child_complexity)")]
    async fn channel_settings(
        &self,
        ctx: &Context<'_>,
        municipality_code: Option<String>,
    ) -> ApiResult<Vec<ChannelSettingsNode>> {
        current_actor(ctx)?.scope(Operation::ManageDirectory)?;
        let code = municipality_code.as_deref().map(MunicipalityCode::parse).transpose()?;
        let settings = store(ctx)?.channel_settings(code.as_ref()).await?;
        Ok(settings.into_iter().map(ChannelSettingsNode).collect())
    }

    /// The municipality's reply texts, one per kind (admin only).
    async fn reply_texts(&self, ctx: &Context<'_>, municipality_code: String) -> ApiResult<Vec<ReplyTextNode>> {
        current_actor(ctx)?.scope(Operation::ManageDirectory)?;
        let code = MunicipalityCode::parse(&municipality_code)?;
        Ok(store(ctx)?.reply_texts(&code).await?.into_iter().map(ReplyTextNode::from).collect())
    }
}

#[derive(Default)]
pub struct ChannelsMutation;

#[Object]
impl ChannelsMutation {
    /// Creates or changes a municipality's Telegram, VK or MAX channel (admin only).
    async fn configure_channel(
        &self,
        ctx: &Context<'_>,
        input: ConfigureChannelInput,
    ) -> ApiResult<ConfigureChannelPayload> {
        current_actor(ctx)?.scope(Operation::ManageDirectory)?;
        let code = MunicipalityCode::parse(&input.municipality_code)?;
        let channel: appeals_core::Channel = input.channel.into();
        let change = ChannelChange {
            enabled: input.enabled,
            webhook_secret: input.webhook_secret,
            bot_token: input.bot_token,
            vk_group_id: input.vk_group_id,
            vk_confirmation: input.vk_confirmation,
        };
        let settings = store(ctx)?.configure_channel(&code, channel, &change).await?;
        Ok(ConfigureChannelPayload { settings: ChannelSettingsNode(settings) })
    }

    /// Sets a municipality's reply texts (admin only). All or nothing.
    async fn configure_reply_texts(
        &self,
        ctx: &Context<'_>,
        input: ConfigureReplyTextsInput,
    ) -> ApiResult<ConfigureReplyTextsPayload> {
        current_actor(ctx)?.scope(Operation::ManageDirectory)?;
        let code = MunicipalityCode::parse(&input.municipality_code)?;
        let texts: Vec<(CoreReplyKind, String)> = [
            (CoreReplyKind::Acknowledgement, input.acknowledgement),
            (CoreReplyKind::SeenNotice, input.seen_notice),
            (CoreReplyKind::Answer, input.answer),
        ]
        .into_iter()
        .filter_map(|(kind, text)| text.map(|text| (kind, text)))
        .collect();
        let texts = store(ctx)?.configure_reply_texts(&code, &texts).await?;
        Ok(ConfigureReplyTextsPayload { texts: texts.into_iter().map(ReplyTextNode::from).collect() })
    }

    /// Queues a `FAILED` reply again: after the resident unblocked the bot, or
    /// after checking that a reply whose delivery was not confirmed did not
    /// arrive. Assistants and heads of the appeal's municipality.
    async fn resend_reply(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ResendReplyPayload> {
        let actor = current_actor(ctx)?;
        let id = id.parse().map_err(|_| ApiError::validation("id", "is not a valid reply id"))?;
        let reply = store(ctx)?.resend_reply(&actor, id).await?;
        Ok(ResendReplyPayload { reply: ReplyNode(reply) })
    }
}
