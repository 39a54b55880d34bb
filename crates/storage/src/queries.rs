//! Reading appeals: one by id or number, the filtered list page with keyset
//! (cursor) pagination, newest first, and histories.

use std::collections::HashMap;

use appeals_core::clock::check_storable;
use appeals_core::search::WordQuery;
use appeals_core::text::{MunicipalityCode, fold_for_search};
use appeals_core::{Appeal, AppealId, Channel, InvalidInput, MunicipalityId, Priority, Scope, Status};
use chrono::{DateTime, TimeZone, Utc};
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Condition, Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::Store;
use crate::abandon::CancellableRead;
use crate::database::begin_read;
use crate::entity::{appeal, appeal_event};
use crate::error::Result;
use crate::records::StoredEvent;
use crate::search::{self, IndexCount};

/// The longest text a search may look for.
pub const MAX_SEARCH_CHARS: usize = 200;

/// The list page's filters; every one that is set must hold.
#[derive(Debug, Clone, Default)]
pub struct AppealFilter {
    pub municipality_code: Option<MunicipalityCode>,
    pub status: Option<Status>,
    pub channel: Option<Channel>,
    pub priority: Option<Priority>,
    pub overdue: Option<bool>,
    pub seen_overdue: Option<bool>,
    pub received_from: Option<DateTime<Utc>>,
    pub received_to: Option<DateTime<Utc>>,
    /// A case-insensitive substring of the appeal's text, in any script.
    pub text: Option<String>,
    /// Words that must all occur in the appeal's text, in some form
    /// (`appeals_core::search`).
    pub search: Option<WordQuery>,
}

impl AppealFilter {
    /// Whether the dashboard's running totals know how many appeals match: they
    /// count by municipality and status only. The other filters (a text above
    /// all) may scan many rows, so their reads are [`CancellableRead`]s.
    fn counted_by_tallies(&self) -> bool {
        let AppealFilter {
            municipality_code: _,
            status: _,
            channel,
            priority,
            overdue,
            seen_overdue,
            received_from,
            received_to,
            text,
            search,
        } = self;
        channel.is_none()
            && priority.is_none()
            && overdue.is_none()
            && seen_overdue.is_none()
            && received_from.is_none()
            && received_to.is_none()
            && text.as_deref().is_none_or(|text| text.trim().is_empty())
            && search.is_none()
    }
}

impl AppealFilter {
    /// Whether one search, `text` or `search`, is the only filter besides a
    /// municipality.
    fn only_one_search(&self) -> bool {
        let text = self.text.as_deref().is_some_and(|text| !text.trim().is_empty());
        let only_searches = AppealFilter { municipality_code: None, text: None, search: None, ..self.clone() };
        (text != self.search.is_some()) && only_searches.counted_by_tallies() && self.status.is_none()
    }
}

/// A position in the list: the last appeal of the previous page. The list is
/// ordered by `received_at` then `id`, both descending, so pages neither skip nor
/// repeat an appeal, even as new ones arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub received_at: DateTime<Utc>,
    pub id: AppealId,
}

impl Cursor {
    pub fn of(appeal: &Appeal) -> Self {
        Cursor { received_at: appeal.received_at, id: appeal.id }
    }

    /// The opaque text form clients pass back as `after`.
    pub fn encode(&self) -> String {
        hex::encode(format!("{}/{}", self.received_at.timestamp_micros(), self.id))
    }

    pub fn decode(text: &str) -> Result<Self, InvalidInput> {
        let invalid = || InvalidInput::new("after", "is not a cursor this server issued");
        let bytes = hex::decode(text.trim()).map_err(|_| invalid())?;
        let plain = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (micros, id) = plain.split_once('/').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        let received_at = Utc.timestamp_micros(micros).single().ok_or_else(invalid)?;
        let received_at = check_storable("after", received_at).map_err(|_| invalid())?;
        Ok(Cursor { received_at, id: id.parse().map_err(|_| invalid())? })
    }
}

/// The appeals matching `condition` after `after`, newest first, at most
/// `first` of them, and whether more follow (one row more is read to tell).
async fn page(
    db: &impl ConnectionTrait,
    mut condition: Condition,
    first: u64,
    after: Option<Cursor>,
) -> Result<(Vec<Appeal>, bool)> {
    if let Some(cursor) = after {
        // A row comparison, which both databases answer from the
        // (received_at, id) indexes as one range.
        let position = Expr::tuple([Expr::col(appeal::Column::ReceivedAt), Expr::col(appeal::Column::Id)]);
        let cursor = Expr::tuple([Expr::value(cursor.received_at), Expr::value(cursor.id.as_uuid())]);
        condition = condition.add(position.lt(cursor));
    }
    let rows = appeal::Entity::find()
        .filter(condition)
        .order_by_desc(appeal::Column::ReceivedAt)
        .order_by_desc(appeal::Column::Id)
        .limit(first + 1)
        .all(db)
        .await?;
    let has_next_page = rows.len() as u64 > first;
    let appeals = rows.into_iter().take(first as usize).map(Appeal::try_from).collect::<Result<Vec<_>>>()?;
    Ok((appeals, has_next_page))
}

/// A filter as SQL.
struct Filtered {
    condition: Condition,
    /// The same condition, as counting all its matches reads it best.
    counting: Condition,
    /// The one municipality the filter keeps to, if any.
    only: Option<MunicipalityId>,
    /// A statement that counts the matches from a search's index alone,
    /// when that search is all there is to count.
    index_count: Option<IndexCount>,
}

/// One page of the list.
#[derive(Debug, Clone)]
pub struct AppealPage {
    pub appeals: Vec<Appeal>,
    pub has_next_page: bool,
    /// How many appeals match the filter, over all pages.
    pub total_count: u64,
}

impl Store {
    pub async fn appeal(&self, id: AppealId) -> Result<Option<Appeal>> {
        let row = appeal::Entity::find_by_id(id.as_uuid()).one(self.db()).await?;
        row.map(Appeal::try_from).transpose()
    }

    /// The appeal registered as `number`; a number that could never have been
    /// issued (control characters, over 100 characters) is `Invalid`.
    pub async fn appeal_by_number(&self, number: &str) -> Result<Option<Appeal>> {
        let number = number.trim();
        if number.chars().count() > 100 || number.chars().any(char::is_control) {
            return Err(InvalidInput::new("number", "is not a registration number").into());
        }
        let row = appeal::Entity::find().filter(appeal::Column::Number.eq(number)).one(self.db()).await?;
        row.map(Appeal::try_from).transpose()
    }

    pub async fn appeals_by_ids(&self, ids: &[AppealId]) -> Result<Vec<Appeal>> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let rows = appeal::Entity::find().filter(appeal::Column::Id.is_in(ids)).all(self.db()).await?;
        rows.into_iter().map(Appeal::try_from).collect()
    }

    /// A page of at most `first` appeals within `scope` that match `filter`,
    /// after `after`, newest first; the page and its total come from one
    /// snapshot. Read on the standby when there is one (see [`crate::standby`]).
    pub async fn list_appeals(
        &self,
        scope: Scope,
        filter: &AppealFilter,
        first: u64,
        after: Option<Cursor>,
    ) -> Result<AppealPage> {
        self.read_routed(|db| async move { self.list_appeals_on(&db, scope, filter, first, after).await }).await
    }

    async fn list_appeals_on(
        &self,
        db: &DatabaseConnection,
        scope: Scope,
        filter: &AppealFilter,
        first: u64,
        after: Option<Cursor>,
    ) -> Result<AppealPage> {
        // Counted from the dashboard's running totals when they can tell, as
        // they can for a municipality and a status; by counting rows otherwise.
        if filter.counted_by_tallies() {
            let Some(Filtered { condition, only: municipality, .. }) = self.filter_condition(db, scope, filter).await?
            else {
                return Ok(AppealPage { appeals: Vec::new(), has_next_page: false, total_count: 0 });
            };
            let txn = begin_read(db).await?;
            let (appeals, has_next_page) = page(&txn, condition, first, after).await?;
            let total_count = crate::dashboard::count(&txn, municipality, filter.status).await?;
            txn.commit().await?;
            return Ok(AppealPage { appeals, has_next_page, total_count });
        }
        // A search's plan reads its index, so it runs in the read too.
        let mut read = CancellableRead::begin(db).await?;
        // A filter refused (or one that matches nothing) ends the read as
        // finished: only abandoned work is stopped.
        let Some(Filtered { condition, counting, index_count, .. }) =
            read.finished_unless(self.filter_condition(read.txn(), scope, filter).await)?
        else {
            read.commit().await?;
            return Ok(AppealPage { appeals: Vec::new(), has_next_page: false, total_count: 0 });
        };
        let (appeals, has_next_page) = page(read.txn(), condition, first, after).await?;
        let total_count = match index_count {
            Some(IndexCount::Known(count)) => count,
            Some(IndexCount::Counted(statement)) => {
                let row = read.txn().query_one_raw(statement).await?;
                let counted = row.map(|row| row.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0);
                u64::try_from(counted).unwrap_or(0)
            }
            None => appeal::Entity::find().filter(counting).count(read.txn()).await?,
        };
        read.commit().await?;
        Ok(AppealPage { appeals, has_next_page, total_count })
    }

    /// As [`Store::list_appeals`] without the total: one statement, outside any
    /// transaction. Whether there is a next page comes from the same statement.
    pub async fn list_appeals_uncounted(
        &self,
        scope: Scope,
        filter: &AppealFilter,
        first: u64,
        after: Option<Cursor>,
    ) -> Result<(Vec<Appeal>, bool)> {
        self.read_routed(|db| async move { self.list_appeals_uncounted_on(&db, scope, filter, first, after).await })
            .await
    }

    async fn list_appeals_uncounted_on(
        &self,
        db: &DatabaseConnection,
        scope: Scope,
        filter: &AppealFilter,
        first: u64,
        after: Option<Cursor>,
    ) -> Result<(Vec<Appeal>, bool)> {
        if filter.counted_by_tallies() {
            let Some(Filtered { condition, .. }) = self.filter_condition(db, scope, filter).await? else {
                return Ok((Vec::new(), false));
            };
            return page(db, condition, first, after).await;
        }
        let mut read = CancellableRead::begin(db).await?;
        let found = match read.finished_unless(self.filter_condition(read.txn(), scope, filter).await)? {
            Some(Filtered { condition, .. }) => page(read.txn(), condition, first, after).await?,
            None => (Vec::new(), false),
        };
        read.commit().await?;
        Ok(found)
    }

    /// The SQL condition for `filter` within `scope`, and the one municipality
    /// it keeps to, if any; `None` when nothing can match (a municipality
    /// outside the scope).
    /// A search's plan is read on `db`.
    async fn filter_condition(
        &self,
        db: &impl ConnectionTrait,
        scope: Scope,
        filter: &AppealFilter,
    ) -> Result<Option<Filtered>> {
        let now = self.now();
        let mut condition = Condition::all();
        let mut only = None;
        if let Scope::Municipality(own) = scope {
            condition = condition.add(appeal::Column::MunicipalityId.eq(own.as_uuid()));
            only = Some(own);
        }
        if let Some(code) = &filter.municipality_code {
            let municipality = self.known_municipality(code).await?;
            if !scope.contains(municipality.id) {
                return Ok(None);
            }
            condition = condition.add(appeal::Column::MunicipalityId.eq(municipality.id.as_uuid()));
            only = Some(municipality.id);
        }
        if let Some(status) = filter.status {
            condition = condition.add(appeal::Column::Status.eq(status.as_str()));
        }
        if let Some(channel) = filter.channel {
            condition = condition.add(appeal::Column::Channel.eq(channel.as_str()));
        }
        if let Some(priority) = filter.priority {
            condition = condition.add(appeal::Column::Priority.eq(priority.as_str()));
        }
        if let Some(overdue) = filter.overdue {
            let is_overdue = Condition::all()
                .add(appeal::Column::Status.ne(Status::Resolved.as_str()))
                .add(appeal::Column::DueAt.lt(now));
            condition = condition.add(if overdue { is_overdue } else { is_overdue.not() });
        }
        if let Some(seen_overdue) = filter.seen_overdue {
            let is_seen_overdue = Condition::all()
                .add(appeal::Column::Status.eq(Status::Received.as_str()))
                .add(appeal::Column::SeenDueAt.lt(now));
            condition = condition.add(if seen_overdue { is_seen_overdue } else { is_seen_overdue.not() });
        }
        if let Some(from) = filter.received_from {
            condition = condition.add(appeal::Column::ReceivedAt.gte(check_storable("receivedFrom", from)?));
        }
        if let Some(to) = filter.received_to {
            condition = condition.add(appeal::Column::ReceivedAt.lt(check_storable("receivedTo", to)?));
        }
        let mut index_count = None;
        let mut counting = condition.clone();
        if let Some(text) = filter.text.as_deref().map(str::trim).filter(|text| !text.is_empty()) {
            if text.chars().count() > MAX_SEARCH_CHARS {
                return Err(InvalidInput::new("text", format!("must be at most {MAX_SEARCH_CHARS} characters")).into());
            }
            if text.chars().any(char::is_control) {
                return Err(InvalidInput::new("text", "must not contain control characters").into());
            }
            let planned = search::plan_substring(db, &fold_for_search(text), only).await?;
            counting = counting.add(planned.count_condition.unwrap_or_else(|| planned.condition.clone()));
            condition = condition.add(planned.condition);
            index_count = planned.index_count;
        }
        if let Some(query) = &filter.search {
            let planned = search::plan_words(db, query, only).await?;
            counting = counting.add(planned.count_condition.unwrap_or_else(|| planned.condition.clone()));
            condition = condition.add(planned.condition);
            index_count = planned.index_count;
        }
        // The index's count is the total only when its search is the only
        // restriction besides the one municipality it was planned for.
        let index_count = index_count.filter(|_| filter.only_one_search());
        Ok(Some(Filtered { condition, counting, only, index_count }))
    }

    /// An appeal's history, oldest first.
    pub async fn history(&self, id: AppealId) -> Result<Vec<StoredEvent>> {
        history_on(self.db(), id).await
    }

    /// The events of each appeal in `ids` with `seq` in `window`, oldest first, in
    /// one statement. `seq` runs 1, 2, 3… without gaps, so the window bounds what is
    /// read however long a history grows.
    pub async fn history_windows(
        &self,
        ids: &[AppealId],
        window: HistoryWindow,
    ) -> Result<HashMap<AppealId, Vec<StoredEvent>>> {
        histories_on(self.db(), ids, Some(window)).await
    }
}

/// A stretch of an appeal's history: the `first` events after `seq` `after_seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HistoryWindow {
    pub after_seq: i32,
    pub first: i32,
}

/// [`Store::history`] on `db`, which may be a transaction.
pub(crate) async fn history_on(db: &impl ConnectionTrait, id: AppealId) -> Result<Vec<StoredEvent>> {
    let rows = appeal_event::Entity::find()
        .filter(appeal_event::Column::AppealId.eq(id.as_uuid()))
        .order_by_asc(appeal_event::Column::Seq)
        .all(db)
        .await?;
    rows.into_iter().map(StoredEvent::try_from).collect()
}

/// The histories of `ids` (only the events in `window`, if given), oldest first,
/// on `db`, which may be a transaction.
pub(crate) async fn histories_on(
    db: &impl ConnectionTrait,
    ids: &[AppealId],
    window: Option<HistoryWindow>,
) -> Result<HashMap<AppealId, Vec<StoredEvent>>> {
    let uuids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
    let mut query = appeal_event::Entity::find().filter(appeal_event::Column::AppealId.is_in(uuids));
    if let Some(window) = window {
        query = query
            .filter(appeal_event::Column::Seq.gt(window.after_seq))
            .filter(appeal_event::Column::Seq.lte(window.after_seq.saturating_add(window.first)));
    }
    let rows =
        query.order_by_asc(appeal_event::Column::AppealId).order_by_asc(appeal_event::Column::Seq).all(db).await?;
    let mut histories: HashMap<AppealId, Vec<StoredEvent>> = HashMap::with_capacity(ids.len());
    for row in rows {
        let event = StoredEvent::try_from(row)?;
        histories.entry(event.event.appeal_id).or_default().push(event);
    }
    Ok(histories)
}
