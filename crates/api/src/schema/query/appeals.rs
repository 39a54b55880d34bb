use appeals_core::search::WordQuery;
use appeals_core::text::MunicipalityCode;
use appeals_core::{AppealId, MunicipalityId, Operation};
use appeals_storage::{AppealFilter, Cursor};
use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, Utc};

use crate::auth::current_actor;
use crate::error::{ApiError, ApiResult};
use crate::schema::context::{readable_appeal, store};
use crate::schema::loaders::loaders;
use crate::schema::types::{AppealConnection, AppealEdge, AppealNode, AppealStatus, Channel, PageInfo, Priority};

/// The largest page `appeals(first:)` serves.
pub const MAX_PAGE: i32 = 100;
const DEFAULT_PAGE: i32 = 20;

#[derive(Default)]
pub struct AppealsQuery;

/// Filters of the appeal list; every one that is set must hold.
#[derive(InputObject, Default)]
#[graphql(name = "AppealFilter")]
pub struct AppealFilterInput {
    pub municipality_code: Option<String>,
    pub status: Option<AppealStatus>,
    pub channel: Option<Channel>,
    pub priority: Option<Priority>,
    pub overdue: Option<bool>,
    pub seen_overdue: Option<bool>,
    /// Appeals received at or after this time.
    pub received_from: Option<DateTime<Utc>>,
    /// Appeals received before this time.
    pub received_to: Option<DateTime<Utc>>,
    /// A case-insensitive substring of the appeal's text, in any script.
    pub text: Option<String>,
    /// Words that must all occur in the appeal's text, in some form: Russian
    /// and English words are matched by their stems (`ямы`, `яму` and `ямой`
    /// find `яма`), `ё` is `е`, case does not matter, and a word ending in `*`
    /// matches as a prefix (`освещ*`). Common words (`и`, `на`, `the`) are not
    /// searched; a search with no other words is a `VALIDATION` error.
    pub search: Option<String>,
}

impl TryFrom<AppealFilterInput> for AppealFilter {
    type Error = ApiError;

    fn try_from(input: AppealFilterInput) -> ApiResult<Self> {
        Ok(AppealFilter {
            municipality_code: input.municipality_code.as_deref().map(MunicipalityCode::parse).transpose()?,
            status: input.status.map(Into::into),
            channel: input.channel.map(Into::into),
            priority: input.priority.map(Into::into),
            overdue: input.overdue,
            seen_overdue: input.seen_overdue,
            received_from: input.received_from,
            received_to: input.received_to,
            text: input.text,
            search: input.search.as_deref().map(WordQuery::parse).transpose()?,
        })
    }
}

/// Parses a GraphQL `ID` as an appeal id (`VALIDATION` if it is not one).
pub(crate) fn appeal_id(id: &ID, field: &'static str) -> ApiResult<AppealId> {
    id.parse().map_err(|_| ApiError::validation(field, "is not a valid appeal id"))
}

#[Object]
impl AppealsQuery {
    /// One appeal, or null if it does not exist or is outside the caller's scope.
    async fn appeal(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<AppealNode>> {
        let id = appeal_id(&id, "id")?;
        readable_appeal(ctx, id).await
    }

    /// One appeal by its registration number, or null as for `appeal`.
    async fn appeal_by_number(&self, ctx: &Context<'_>, number: String) -> ApiResult<Option<AppealNode>> {
        let scope = current_actor(ctx)?.scope(Operation::ReadAppeals)?;
        let appeal = store(ctx)?.appeal_by_number(&number).await?;
        Ok(appeal.filter(|appeal| scope.contains(appeal.municipality_id)).map(AppealNode))
    }

    /// The appeals in the caller's scope, newest first (ties broken by id), a page
    /// of at most 100 at a time.
    #[graphql(complexity = "crate::budget::list(first.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE), child_complexity)")]
    async fn appeals(
        &self,
        ctx: &Context<'_>,
        filter: Option<AppealFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<AppealConnection> {
        let scope = current_actor(ctx)?.scope(Operation::ReadAppeals)?;
        let first = first.unwrap_or(DEFAULT_PAGE);
        if !(0..=MAX_PAGE).contains(&first) {
            return Err(ApiError::validation("first", format!("must be from 0 to {MAX_PAGE}")));
        }
        let after = after.as_deref().map(Cursor::decode).transpose()?;
        let filter = AppealFilter::try_from(filter.unwrap_or_default())?;
        // The total costs a statement (and a transaction around both) of its own:
        // only when it is asked for.
        let store = store(ctx)?;
        let (appeals, has_next_page, total_count) = if ctx.look_ahead().field("totalCount").exists() {
            let page = store.list_appeals(scope, &filter, first as u64, after).await?;
            (page.appeals, page.has_next_page, page.total_count)
        } else {
            let (appeals, has_next_page) = store.list_appeals_uncounted(scope, &filter, first as u64, after).await?;
            (appeals, has_next_page, 0)
        };
        prefetch_municipalities(ctx, &appeals).await?;
        let edges: Vec<AppealEdge> = appeals
            .into_iter()
            .map(|appeal| AppealEdge { cursor: Cursor::of(&appeal).encode(), node: AppealNode(appeal) })
            .collect();
        let end_cursor = edges.last().map(|edge| edge.cursor.clone());
        Ok(AppealConnection { edges, page_info: PageInfo { has_next_page, end_cursor }, total_count })
    }
}

/// Loads the municipalities of a page in one statement, before its fields are
/// resolved, when the query asks for them: each appeal's `municipality` is then
/// found in the request's cache at once, instead of waiting for the loader's
/// batch to gather.
async fn prefetch_municipalities(ctx: &Context<'_>, appeals: &[appeals_core::Appeal]) -> ApiResult<()> {
    let wanted = ctx.look_ahead().field("edges").field("node").field("municipality").exists();
    if !wanted || appeals.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<MunicipalityId> = appeals.iter().map(|appeal| appeal.municipality_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let found = store(ctx)?.municipalities_by_ids(&ids).await?;
    loaders(ctx)?.directory.feed_many(found.into_iter().map(|municipality| (municipality.id, municipality))).await;
    Ok(())
}
