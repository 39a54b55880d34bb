//! The GraphQL output types. Each wraps a domain or storage value; no sea-orm
//! entity ever reaches the schema. Related objects are fetched through the
//! request's [`Loaders`](super::loaders::Loaders), so a page of appeals costs a
//! handful of queries, not one per appeal.

use appeals_core::Appeal;
use appeals_storage::{HistoryWindow, Municipality, StoredEvent, User};
use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::error::{ApiError, ApiResult};
use crate::schema::context::{load_user, readable_appeal, store};
use crate::schema::loaders::{HistoryOf, loaders};

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "appeals_core::Status", name = "AppealStatus")]
pub enum AppealStatus {
    Received,
    Seen,
    Resolved,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "appeals_core::Channel")]
pub enum Channel {
    Telegram,
    Vk,
    Max,
    Email,
    Web,
    Phone,
    InPerson,
    Post,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "appeals_core::Priority")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "appeals_core::Outcome")]
pub enum Outcome {
    Satisfied,
    Explained,
    Declined,
    Redirected,
    Duplicate,
    NoAnswerRequired,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "appeals_core::EventKind")]
pub enum EventKind {
    Received,
    Triaged,
    NoteAdded,
    Seen,
    DeadlineExtended,
    Resolved,
    Reopened,
    /// The resident wrote again through the channel while the appeal was open.
    ResidentMessage,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "appeals_core::Role")]
pub enum Role {
    Intake,
    Assistant,
    Head,
    GovernorOffice,
    Auditor,
    Admin,
}

/// A municipality: a city district or a rural district of the region.
pub struct MunicipalityNode(pub Municipality);

#[Object(name = "Municipality")]
impl MunicipalityNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The short Latin code, such as `tomsk`.
    async fn code(&self) -> &str {
        &self.0.code
    }

    async fn name(&self) -> &str {
        &self.0.name
    }
}

/// A user of the API: a person or a service such as an intake bot.
pub struct UserNode(pub User);

#[Object(name = "User")]
impl UserNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn role(&self) -> Role {
        self.0.role.into()
    }

    /// The municipality of an assistant or a head; null for the other roles.
    async fn municipality(&self, ctx: &Context<'_>) -> ApiResult<Option<MunicipalityNode>> {
        let Some(id) = self.0.municipality_id else { return Ok(None) };
        Ok(loaders(ctx)?.directory.load_one(id).await?.map(MunicipalityNode))
    }

    /// Whether the user was revoked (its token no longer works).
    async fn revoked(&self) -> bool {
        self.0.revoked_at.is_some()
    }
}

/// How many events `Appeal.history` returns when `first` is not given.
pub const DEFAULT_HISTORY: i32 = 100;
/// The most events `Appeal.history` returns at once.
pub const MAX_HISTORY: i32 = 1_000;

/// A citizen's appeal to the head of a municipality.
pub struct AppealNode(pub Appeal);

#[Object(name = "Appeal")]
impl AppealNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The human-readable registration number, such as `TOMSK-2026-000042`.
    async fn number(&self) -> &str {
        &self.0.number
    }

    async fn municipality(&self, ctx: &Context<'_>) -> ApiResult<MunicipalityNode> {
        loaders(ctx)?
            .directory
            .load_one(self.0.municipality_id)
            .await?
            .map(MunicipalityNode)
            .ok_or_else(|| ApiError::internal(format_args!("appeal {} has no municipality", self.0.id)))
    }

    async fn channel(&self) -> Channel {
        self.0.channel.into()
    }

    /// The channel's own id of the message (idempotency key with `channel`).
    async fn external_id(&self) -> Option<&str> {
        self.0.external_id.as_ref().map(|value| value.as_str())
    }

    async fn author_name(&self) -> Option<&str> {
        self.0.author_name.as_ref().map(|value| value.as_str())
    }

    async fn author_contact(&self) -> Option<&str> {
        self.0.author_contact.as_ref().map(|value| value.as_str())
    }

    #[graphql(complexity = "crate::budget::TEXT_COST")]
    async fn text(&self) -> &str {
        self.0.text.as_str()
    }

    async fn status(&self) -> AppealStatus {
        self.0.status.into()
    }

    async fn priority(&self) -> Priority {
        self.0.priority.into()
    }

    async fn category(&self) -> Option<&str> {
        self.0.category.as_ref().map(|value| value.as_str())
    }

    async fn tags(&self) -> Vec<&str> {
        self.0.tags.iter().map(|tag| tag.as_str()).collect()
    }

    async fn received_at(&self) -> DateTime<Utc> {
        self.0.received_at
    }

    /// When the head first read the appeal.
    async fn seen_at(&self) -> Option<DateTime<Utc>> {
        self.0.seen_at
    }

    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at()
    }

    /// The head should read the appeal by then.
    async fn seen_due_at(&self) -> DateTime<Utc> {
        self.0.seen_due_at
    }

    /// The answer is due by then (extension included).
    async fn due_at(&self) -> DateTime<Utc> {
        self.0.due_at
    }

    /// Past `dueAt` and not resolved, as of this query.
    async fn overdue(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        Ok(self.0.is_overdue(store(ctx)?.now()))
    }

    /// Past `seenDueAt` and still unread, as of this query.
    async fn seen_overdue(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        Ok(self.0.is_seen_overdue(store(ctx)?.now()))
    }

    async fn deadline_extended(&self) -> bool {
        self.0.deadline_extended
    }

    /// Grows by one with every change of the appeal; pass it back as
    /// `expectedVersion`. Notes do not change it.
    async fn version(&self) -> i32 {
        self.0.version
    }

    async fn resolution(&self) -> Option<ResolutionNode> {
        self.0.resolution.clone().map(ResolutionNode)
    }

    /// The messages sent to the resident on the appeal's channel (Telegram, VK,
    /// MAX), oldest first.
    #[graphql(complexity = "crate::budget::list(10, child_complexity)")]
    async fn replies(&self, ctx: &Context<'_>) -> ApiResult<Vec<crate::schema::channels::ReplyNode>> {
        crate::schema::channels::replies_of(ctx, self.0.id).await
    }

    /// What the resident sent with their messages (photos, documents,
    /// locations), oldest first, at most 100. The text stays the appeal's text.
    #[graphql(complexity = "crate::budget::list(crate::schema::channels::MAX_ATTACHMENTS as i32, child_complexity)")]
    async fn attachments(&self, ctx: &Context<'_>) -> ApiResult<Vec<crate::schema::channels::AppealAttachment>> {
        crate::schema::channels::attachments_of(ctx, self.0.id).await
    }

    /// Everything that happened to the appeal, oldest first: the `first` events
    /// (default 100, at most 1,000) after the event numbered `after` (default 0,
    /// the start). A longer history is read a page at a time, passing the last
    /// `seq` seen as `after`.
    #[graphql(complexity = "crate::budget::list(first.unwrap_or(DEFAULT_HISTORY).min(MAX_HISTORY), child_complexity)")]
    async fn history(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<i32>,
    ) -> ApiResult<Vec<AppealEventNode>> {
        let first = first.unwrap_or(DEFAULT_HISTORY);
        if !(0..=MAX_HISTORY).contains(&first) {
            return Err(ApiError::validation("first", format!("must be from 0 to {MAX_HISTORY}")));
        }
        let after_seq = after.unwrap_or(0);
        if after_seq < 0 {
            return Err(ApiError::validation("after", "must be a seq, 0 or more"));
        }
        let window = HistoryWindow { after_seq, first };
        let events = loaders(ctx)?.appeals.load_one(HistoryOf(self.0.id, window)).await?.unwrap_or_default();
        Ok(events.into_iter().map(AppealEventNode).collect())
    }
}

/// The recorded answer to an appeal.
pub struct ResolutionNode(pub appeals_core::Resolution);

#[Object(name = "Resolution")]
impl ResolutionNode {
    async fn outcome(&self) -> Outcome {
        self.0.outcome.into()
    }

    /// What the citizen was told, or why no answer was owed.
    #[graphql(complexity = "crate::budget::TEXT_COST")]
    async fn response(&self) -> &str {
        self.0.response.as_str()
    }

    /// The original appeal, when the outcome is `DUPLICATE`.
    async fn duplicate_of(&self, ctx: &Context<'_>) -> ApiResult<Option<AppealNode>> {
        let Some(original) = self.0.duplicate_of else { return Ok(None) };
        readable_appeal(ctx, original).await
    }

    async fn resolved_by(&self, ctx: &Context<'_>) -> ApiResult<UserNode> {
        load_user(ctx, self.0.resolved_by).await
    }

    async fn resolved_at(&self) -> DateTime<Utc> {
        self.0.resolved_at
    }
}

/// One entry of an appeal's tamper-evident history.
pub struct AppealEventNode(pub StoredEvent);

#[Object(name = "AppealEvent")]
impl AppealEventNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The event's position in its appeal's history: 1, 2, 3…
    async fn seq(&self) -> i32 {
        self.0.event.seq
    }

    /// Where the event stands among every event committed: pass the `cursor` of
    /// the last event seen as `appealEvents(after:)` to replay what came after.
    async fn cursor(&self) -> String {
        appeals_storage::events::encode_cursor(self.0.position)
    }

    async fn kind(&self) -> EventKind {
        self.0.event.kind.into()
    }

    async fn at(&self) -> DateTime<Utc> {
        self.0.event.at
    }

    /// Who acted; null for the system.
    async fn actor(&self, ctx: &Context<'_>) -> ApiResult<Option<UserNode>> {
        match self.0.event.actor_id {
            Some(id) => load_user(ctx, id).await.map(Some),
            None => Ok(None),
        }
    }

    /// Set on events that change the status (and on `RECEIVED`, as its target).
    async fn from_status(&self) -> Option<AppealStatus> {
        self.0.event.from_status.map(Into::into)
    }

    async fn to_status(&self) -> Option<AppealStatus> {
        self.0.event.to_status.map(Into::into)
    }

    /// The event's text: a note, a reason, or the response of a resolution.
    #[graphql(complexity = "crate::budget::TEXT_COST")]
    async fn note(&self) -> Option<&str> {
        self.0.event.note.as_deref()
    }

    /// Hex SHA-256 chaining this event to the previous one of the same appeal.
    async fn hash(&self) -> &str {
        &self.0.event.hash
    }

    /// The appeal the event belongs to.
    async fn appeal_id(&self) -> ID {
        ID(self.0.event.appeal_id.to_string())
    }

    /// The appeal the event belongs to, as it stands now.
    async fn appeal(&self, ctx: &Context<'_>) -> ApiResult<Option<AppealNode>> {
        readable_appeal(ctx, self.0.event.appeal_id).await
    }
}

/// A page of appeals, Relay style.
#[derive(SimpleObject)]
#[graphql(name = "AppealConnection")]
pub struct AppealConnection {
    pub edges: Vec<AppealEdge>,
    pub page_info: PageInfo,
    /// How many appeals match the filter, over all pages.
    pub total_count: u64,
}

#[derive(SimpleObject)]
pub struct AppealEdge {
    pub cursor: String,
    pub node: AppealNode,
}

#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}
