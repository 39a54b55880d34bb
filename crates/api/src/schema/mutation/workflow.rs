use appeals_core::text::{Category, NoteText, Reason, ResponseText, parse_tags};
use appeals_core::{AppealId, Command, ExtensionDays};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use crate::auth::current_actor;
use crate::error::ApiResult;
use crate::schema::context::store;
use crate::schema::query::appeal_id;
use crate::schema::types::{AppealEventNode, AppealNode, Outcome, Priority};

#[derive(Default)]
pub struct WorkflowMutation;

/// Triage fields to set; those left out stay as they are.
#[derive(InputObject)]
pub struct TriageAppealInput {
    pub priority: Option<Priority>,
    pub category: Option<String>,
    pub tags: Option<Vec<String>>,
}

#[derive(InputObject)]
pub struct ResolveAppealInput {
    pub outcome: Outcome,
    /// What the citizen was told, or why no answer was owed.
    pub response: String,
    /// The original appeal; required exactly when the outcome is `DUPLICATE`.
    pub duplicate_of: Option<ID>,
}

/// The appeal after a command, and the event that recorded it.
#[derive(SimpleObject)]
pub struct AppealPayload {
    pub appeal: AppealNode,
    pub event: AppealEventNode,
}

/// Runs `command` on the appeal `id` for the calling user and counts the
/// transition (subscribers hear of its event through the feed).
async fn run(ctx: &Context<'_>, id: &ID, command: Command, expected_version: Option<i32>) -> ApiResult<AppealPayload> {
    let actor = current_actor(ctx)?;
    let id: AppealId = appeal_id(id, "id")?;
    let changed = store(ctx)?.execute_command(&actor, id, &command, expected_version).await?;
    metrics::counter!("appeals_transitions_total", "kind" => changed.event.event.kind.as_str()).increment(1);
    Ok(AppealPayload { appeal: AppealNode(changed.appeal), event: AppealEventNode(changed.event) })
}

#[Object]
impl WorkflowMutation {
    /// Sets the appeal's priority, category or tags.
    async fn triage_appeal(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: i32,
        input: TriageAppealInput,
    ) -> ApiResult<AppealPayload> {
        let command = Command::Triage {
            priority: input.priority.map(Into::into),
            category: input.category.as_deref().map(Category::parse).transpose()?,
            tags: input.tags.as_deref().map(parse_tags).transpose()?,
        };
        run(ctx, &id, command, Some(expected_version)).await
    }

    /// Adds an internal note. Takes no version and leaves the version alone, so a
    /// colleague's note never makes one's own command stale.
    async fn add_note(&self, ctx: &Context<'_>, id: ID, text: String) -> ApiResult<AppealPayload> {
        run(ctx, &id, Command::AddNote { text: NoteText::parse(&text)? }, None).await
    }

    /// Records that the head has read the appeal. Only the head of its
    /// municipality may.
    async fn mark_seen(&self, ctx: &Context<'_>, id: ID, expected_version: i32) -> ApiResult<AppealPayload> {
        run(ctx, &id, Command::MarkSeen, Some(expected_version)).await
    }

    /// Extends the answer deadline, once, by 1 to 30 days (by default), with a
    /// reason.
    async fn extend_deadline(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: i32,
        days: i32,
        reason: String,
    ) -> ApiResult<AppealPayload> {
        let days = ExtensionDays::parse(i64::from(days), store(ctx)?.policy())?;
        let command = Command::ExtendDeadline { days, reason: Reason::parse(&reason)? };
        run(ctx, &id, command, Some(expected_version)).await
    }

    /// Records the answer and its outcome. Only a `SEEN` appeal can be resolved.
    async fn resolve_appeal(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: i32,
        input: ResolveAppealInput,
    ) -> ApiResult<AppealPayload> {
        let command = Command::Resolve {
            outcome: input.outcome.into(),
            response: ResponseText::parse(&input.response)?,
            duplicate_of: input.duplicate_of.as_ref().map(|id| appeal_id(id, "duplicateOf")).transpose()?,
        };
        run(ctx, &id, command, Some(expected_version)).await
    }

    /// Returns a resolved appeal to work: the resolution is cleared, and stays in
    /// the history.
    async fn reopen_appeal(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: i32,
        reason: String,
    ) -> ApiResult<AppealPayload> {
        run(ctx, &id, Command::Reopen { reason: Reason::parse(&reason)? }, Some(expected_version)).await
    }
}
