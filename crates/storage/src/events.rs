//! The events of every appeal in one order, the order they were committed in,
//! and following it.
//!
//! Each event has a `position` over the whole database (1, 2, 3…, no gaps). A
//! writer takes the next position in the statement that inserts the event, the
//! last one before its commit: on PostgreSQL from the one row of
//! `event_counter`, whose lock it then holds until it commits, so that positions
//! are handed out in commit order; on SQLite as the highest position so far plus
//! one, under the database's only write lock. So a reader that sees position `p`
//! sees every position before it, and "the events after `p`" is the whole
//! answer to "what did I miss", on every server.
//!
//! [`Store::events_after`] reads them in pages; [`Store::follow_events`] wakes a
//! follower whenever events may have been committed (see `announcements`).

use appeals_core::{AppealId, MunicipalityId};
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{
    Alias, CommonTableExpression, Expr, ExprTrait, Func, InsertStatement, Query, SimpleExpr, UpdateStatement,
    WithClause,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    EntityTrait, Iterable, QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::watch;

use crate::Store;
use crate::entity::{appeal, appeal_event};
use crate::error::{Result, StorageError};
use crate::records::{StoredEvent, event_row};

tokio::task_local! {
    /// Set while a server's feed follows the events (see [`following`]).
    static FOLLOWING: ();
}

/// Runs `work`, a follower's reading of new events, as background work: its
/// statements are timed and reported like any, but not counted in
/// [`Store::statements_executed`], which counts what requests cost.
pub async fn following<F: std::future::Future>(work: F) -> F::Output {
    FOLLOWING.scope((), work).await
}

pub(crate) fn is_following() -> bool {
    FOLLOWING.try_with(|_| ()).is_ok()
}

/// The most events [`Store::events_after`] returns at once.
pub const MAX_PAGE: u64 = 1000;

/// The part of a PostgreSQL statement that takes the next position.
const NEXT_POSITION: &str = "next_position";
const LAST_POSITION: &str = "last_position";
const EVENT_COUNTER: &str = "event_counter";

/// A committed event, with the municipality of its appeal (for scoping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowedEvent {
    pub municipality_id: MunicipalityId,
    pub event: StoredEvent,
}

/// The opaque text form of a position that clients pass back as a
/// subscription's `after`.
pub fn encode_cursor(position: i64) -> String {
    hex::encode(format!("event/{position}"))
}

/// The position a cursor from [`encode_cursor`] names.
pub fn decode_cursor(text: &str) -> std::result::Result<i64, appeals_core::InvalidInput> {
    let invalid = || appeals_core::InvalidInput::new("after", "is not an event cursor this server issued");
    let bytes = hex::decode(text.trim()).map_err(|_| invalid())?;
    let plain = String::from_utf8(bytes).map_err(|_| invalid())?;
    let position = plain.strip_prefix("event/").ok_or_else(invalid)?;
    position.parse::<i64>().ok().filter(|position| *position >= 0).ok_or_else(invalid)
}

impl Store {
    /// The events after `after`, at most `limit`, read on a connection of the
    /// followers' own, outside the pool, so that a server's feed never waits
    /// behind its requests for a connection (see [`Store::events_after`]).
    pub async fn next_events(&self, after: i64, limit: u64) -> Result<Vec<FollowedEvent>> {
        let follower = self.follower();
        events_after_on(&follower, after, None, limit).await
    }

    /// The position of the last event committed; 0 when there is none.
    pub async fn last_event_position(&self) -> Result<i64> {
        let last = appeal_event::Entity::find()
            .select_only()
            .column(appeal_event::Column::Position)
            .order_by_desc(appeal_event::Column::Position)
            .limit(1)
            .into_tuple::<i64>()
            .one(self.db())
            .await?;
        Ok(last.unwrap_or(0))
    }

    /// The first `limit` events (at most [`MAX_PAGE`]) after position `after`, in
    /// order, of the appeals of `municipality` (of every one with `None`).
    pub async fn events_after(
        &self,
        after: i64,
        municipality: Option<MunicipalityId>,
        limit: u64,
    ) -> Result<Vec<FollowedEvent>> {
        events_after_on(self.db(), after, municipality, limit).await
    }

    /// Changes every time events may have been committed, by this store or (on
    /// PostgreSQL) any other on the same database.
    pub fn follow_events(&self) -> watch::Receiver<u64> {
        self.listen();
        self.announcements().follow_events()
    }

    /// Wakes this store's followers after a commit that stored events.
    pub(crate) fn events_committed(&self) {
        self.announcements().events_committed();
    }
}

/// [`Store::events_after`] on `db`.
async fn events_after_on(
    db: &DatabaseConnection,
    after: i64,
    municipality: Option<MunicipalityId>,
    limit: u64,
) -> Result<Vec<FollowedEvent>> {
    let mut query = appeal_event::Entity::find()
        .filter(appeal_event::Column::Position.gt(after))
        .order_by_asc(appeal_event::Column::Position)
        .limit(limit.clamp(1, MAX_PAGE));
    if let Some(municipality) = municipality {
        // Tested event by event as the positions are walked, through the
        // appeal's primary key.
        query = query.filter(Expr::exists(
            Query::select()
                .expr(Expr::val(1))
                .from(appeal::Entity)
                .and_where(
                    Expr::col((appeal::Entity, appeal::Column::Id))
                        .equals((appeal_event::Entity, appeal_event::Column::AppealId)),
                )
                .and_where(Expr::col((appeal::Entity, appeal::Column::MunicipalityId)).eq(municipality.as_uuid()))
                .to_owned(),
        ));
    }
    let events: Vec<StoredEvent> =
        query.all(db).await?.into_iter().map(StoredEvent::try_from).collect::<Result<_>>()?;
    let municipalities = match municipality {
        Some(only) => events.iter().map(|event| (event.event.appeal_id, only)).collect(),
        None => municipalities_of(db, events.iter().map(|event| event.event.appeal_id)).await?,
    };
    events
        .into_iter()
        .map(|event| {
            let municipality_id = *municipalities
                .get(&event.event.appeal_id)
                .ok_or_else(|| StorageError::Corrupt(format!("event {} belongs to no appeal", event.id)))?;
            Ok(FollowedEvent { municipality_id, event })
        })
        .collect()
}

async fn municipalities_of(
    db: &DatabaseConnection,
    appeals: impl Iterator<Item = AppealId>,
) -> Result<std::collections::HashMap<AppealId, MunicipalityId>> {
    let mut ids: Vec<Uuid> = appeals.map(|id| id.as_uuid()).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let rows = appeal::Entity::find()
        .select_only()
        .columns([appeal::Column::Id, appeal::Column::MunicipalityId])
        .filter(appeal::Column::Id.is_in(ids))
        .into_tuple::<(Uuid, Uuid)>()
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|(id, municipality)| (AppealId::from_uuid(id), municipality.into())).collect())
}

/// A pool of [`crate::database::FOLLOWING_CONNECTIONS`] connection to the
/// database `db` serves, opened when first used, for the followers alone.
pub(crate) fn follower_connection(db: &DatabaseConnection) -> DatabaseConnection {
    use crate::database::FOLLOWING_CONNECTIONS;
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let options = db.get_postgres_connection_pool().connect_options().as_ref().clone();
            let pool = sea_orm::sqlx::postgres::PgPoolOptions::new()
                .max_connections(FOLLOWING_CONNECTIONS)
                .min_connections(0)
                .connect_lazy_with(options);
            sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool)
        }
        _ => {
            let options = db.get_sqlite_connection_pool().connect_options().as_ref().clone();
            let pool = sea_orm::sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(FOLLOWING_CONNECTIONS)
                .min_connections(0)
                .connect_lazy_with(options);
            sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool)
        }
    }
}

/// Inserts `event` with the next position, which it is given; the last
/// statement of its transaction before the commit (see the module's doc).
pub(crate) async fn insert(txn: &DatabaseTransaction, event: &mut StoredEvent) -> Result<()> {
    let statement = match txn.get_database_backend() {
        DbBackend::Postgres => {
            let mut insert =
                insert_for_each_row_of(NEXT_POSITION, event_row(event), Expr::col(Alias::new(LAST_POSITION)));
            insert.returning_col(appeal_event::Column::Position);
            let mut with = WithClause::new();
            with.cte(next_position_part());
            txn.query_one(&insert.with(with)).await?
        }
        _ => {
            let mut insert = insert_for_each_row_of(
                sea_orm::EntityName::table_name(&appeal_event::Entity),
                event_row(event),
                Func::coalesce([Expr::col(appeal_event::Column::Position).max(), Expr::val(0i64)]).add(1i64),
            );
            insert.returning_col(appeal_event::Column::Position);
            txn.query_one(&insert).await?
        }
    };
    let row = statement.ok_or_else(|| StorageError::Corrupt("inserting an event returned no row".to_owned()))?;
    event.position = row.try_get_by_index::<i64>(0)?;
    Ok(())
}

/// The parts of a PostgreSQL statement that insert `event` once for each row
/// of the earlier part `source` (at most one) with the next position: a part
/// that takes it, named [`NEXT_POSITION`], and the insert. The statement's
/// final query reads the position with [`position_taken`].
pub(crate) fn insert_parts_for_each_row_of(source: &str, event: &StoredEvent) -> [CommonTableExpression; 2] {
    let insert = insert_for_each_row_of(source, event_row(event), position_taken());
    [
        next_position_part(),
        CommonTableExpression::new().table_name(Alias::new("event_inserted")).query(insert).to_owned(),
    ]
}

/// The position taken by the parts of [`insert_parts_for_each_row_of`].
pub(crate) fn position_taken() -> SimpleExpr {
    let select = Query::select().column(Alias::new(LAST_POSITION)).from(Alias::new(NEXT_POSITION)).to_owned();
    SimpleExpr::SubQuery(None, Box::new(select.into()))
}

/// The positions `first ..= first + count - 1`, taken for a bulk insert in
/// its transaction; `first` is returned.
pub(crate) async fn take_positions(txn: &DatabaseTransaction, count: i64) -> Result<i64> {
    let last = match txn.get_database_backend() {
        DbBackend::Postgres => {
            let mut update = counter_update(count);
            update.returning_col(Alias::new(LAST_POSITION));
            let row = txn.query_one(&update).await?;
            let row = row.ok_or_else(|| StorageError::Corrupt("the event counter has no row".to_owned()))?;
            row.try_get_by_index::<i64>(0)?
        }
        _ => {
            let highest = appeal_event::Entity::find()
                .select_only()
                .column_as(appeal_event::Column::Position.max(), "highest")
                .into_tuple::<Option<i64>>()
                .one(txn)
                .await?
                .flatten()
                .unwrap_or(0);
            highest + count
        }
    };
    Ok(last - count + 1)
}

fn counter_update(count: i64) -> UpdateStatement {
    Query::update()
        .table(Alias::new(EVENT_COUNTER))
        .value(Alias::new(LAST_POSITION), Expr::col(Alias::new(LAST_POSITION)).add(count))
        .to_owned()
}

fn next_position_part() -> CommonTableExpression {
    let mut update = counter_update(1);
    update.returning_col(Alias::new(LAST_POSITION));
    CommonTableExpression::new().table_name(Alias::new(NEXT_POSITION)).query(update).to_owned()
}

/// The insert of `row` as `INSERT … SELECT … FROM source`: the row once for each
/// row of `source`, an earlier part of the same statement, with `position` as
/// the event's position. Its other columns and values are those sea-orm's own
/// insert of `row` takes.
pub(crate) fn insert_for_each_row_of(
    source: &str,
    mut row: appeal_event::ActiveModel,
    position: impl Into<SimpleExpr>,
) -> InsertStatement {
    let mut columns = Vec::new();
    let mut values = Vec::new();
    for column in appeal_event::Column::iter() {
        if let ActiveValue::Set(value) | ActiveValue::Unchanged(value) = row.take(column) {
            columns.push(column);
            values.push(column.save_as(Expr::val(value)));
        }
    }
    columns.push(appeal_event::Column::Position);
    values.push(position.into());
    let mut insert = Query::insert();
    insert.into_table(appeal_event::Entity).columns(columns);
    // Safe: one value was taken for each column.
    insert
        .select_from(Query::select().exprs(values).from(Alias::new(source)).to_owned())
        .expect("a value for each column");
    insert
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_names_its_position_and_nothing_else_passes_for_one() {
        for position in [0, 1, 42, i64::MAX] {
            assert_eq!(decode_cursor(&encode_cursor(position)), Ok(position));
        }
        let list_cursor = hex::encode("1700000000/0193f0a2-7c4e-7d1a-9b2e-3f5c8a1d2e40");
        for text in ["", "zz", "1", &hex::encode("event/-1"), &hex::encode("event/x"), &list_cursor] {
            assert!(decode_cursor(text).is_err(), "{text:?} passed for a cursor");
        }
    }
}
