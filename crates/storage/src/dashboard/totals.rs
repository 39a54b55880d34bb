//! Keeping the dashboard's running totals (`municipality_tally`,
//! `deadline_tally`) in step with the appeals, inside the transactions that
//! change them (`contribution` says what each appeal contributes), and building
//! those that are missing.
//!
//! Lock order: a writer locks its appeal (or its registration counter) first,
//! then the deadline rows it changes, in (deadline, day) order, then its
//! municipality's tally row, so two writers never wait on each other in a
//! cycle. The tally row, which every write of the municipality needs, is taken
//! last of all, just before the commit, so it is held as briefly as the commit
//! takes.
//!
//! On PostgreSQL a registration adds its contribution inside the statement that
//! inserts the appeal ([`record_when`]), as parts of one `WITH`; SQLite, which
//! allows no writes in a `WITH`, sends the statements of [`record`].

use std::collections::{BTreeMap, HashMap};

use appeals_core::{Appeal, MunicipalityId};
use chrono::{DateTime, Utc};
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{
    Alias, Asterisk, CommonTableExpression, Expr, ExprTrait, Func, InsertStatement, OnConflict, Query, UnionType,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect,
    QueryTrait, UpdateMany,
};

use super::contribution::{Contribution, Deadline, TallyFacts};
use super::histogram::DelayHistogram;
use crate::entity::{appeal, deadline_tally, municipality, municipality_tally};
use crate::error::{Result, StorageError};

/// Deadline rows written per statement at most (four values each).
const DEADLINE_ROWS_PER_STATEMENT: usize = 5_000;

/// The part of [`record_when`]'s statement that updates the tally row; it
/// returns the row's key, so it is empty when the municipality has no tally row.
pub(crate) const TALLY_UPDATED: &str = "tally_updated";

/// The part of [`record_when`]'s statement that adds to the open deadlines.
const DEADLINES_UPDATED: &str = "deadlines_updated";

/// Adds `change` to the totals of `municipality`, inside the transaction that
/// makes the change. The writers of this crate call it; so does the benchmark's
/// floor, which issues their statements without the API.
pub(crate) async fn record(
    txn: &DatabaseTransaction,
    municipality: MunicipalityId,
    change: &Contribution,
) -> Result<()> {
    if change.is_empty() {
        return Ok(());
    }
    let id = municipality.as_uuid();
    record_deadlines(txn, id, &change.deadlines).await?;
    if change.to_seen.is_empty() && change.to_resolution.is_empty() {
        if change.changes_counts() {
            let updated = increment_counts(id, change).exec(txn).await?.rows_affected;
            if updated == 0 {
                record_in_new_row(txn, municipality, change).await?;
            }
        }
        return Ok(());
    }
    let row = match lock_row(txn, id).await? {
        Some(row) => row,
        None => {
            create_row(txn, id).await?;
            lock_row(txn, id).await?.ok_or_else(|| corrupt(id, "its tally row vanished"))?
        }
    };
    let mut to_seen = DelayHistogram::from_bytes(&row.to_seen).map_err(|error| corrupt(id, error))?;
    let mut to_resolution = DelayHistogram::from_bytes(&row.to_resolution).map_err(|error| corrupt(id, error))?;
    for (histogram, durations) in [(&mut to_seen, &change.to_seen), (&mut to_resolution, &change.to_resolution)] {
        for (&micros, &count) in durations {
            histogram.add(micros, count).map_err(|error| corrupt(id, error))?;
        }
    }
    municipality_tally::Entity::update(municipality_tally::ActiveModel {
        municipality_id: Set(id),
        received: Set(row.received + change.received),
        seen: Set(row.seen + change.seen),
        resolved: Set(row.resolved + change.resolved),
        to_seen: Set(to_seen.to_bytes()),
        to_resolution: Set(to_resolution.to_bytes()),
    })
    .exec(txn)
    .await?;
    Ok(())
}

/// What [`record`] sends, as data-modifying common table expressions to add to
/// one PostgreSQL statement, in which `gate` names an earlier part: they change
/// nothing unless `gate` returns a row (the appeal was inserted). The deadline
/// rows are upserted first, then the tally row is updated; [`TALLY_UPDATED`]
/// returns nothing when the municipality has no tally row yet, and then
/// [`record_in_new_row`] finishes the work. `None` unless `change` moves the
/// status counts and no durations, as a registration's does: adding durations
/// needs the tally row read first.
pub(crate) fn record_when(
    gate: &str,
    municipality: MunicipalityId,
    change: &Contribution,
) -> Option<Vec<CommonTableExpression>> {
    let rows = deadline_rows(municipality.as_uuid(), &change.deadlines);
    let reads_the_tally_row = !change.to_seen.is_empty() || !change.to_resolution.is_empty();
    if !change.changes_counts() || reads_the_tally_row || rows.len() > DEADLINE_ROWS_PER_STATEMENT {
        return None;
    }
    let mut parts = Vec::new();
    let tally_gate = match rows.split_first() {
        None => has_a_row(gate),
        Some((first, rest)) => {
            // Each row is selected from the gate, so none is written unless the
            // gate has a row; UNION ALL keeps them in (deadline, day) order.
            let from_gate = |row: &[Expr; 4]| Query::select().exprs(row.clone()).from(Alias::new(gate)).to_owned();
            let mut select = from_gate(first);
            for row in rest {
                select.union(UnionType::All, from_gate(row));
            }
            let mut upsert = deadline_upsert();
            // Safe: four expressions a row for its four columns.
            upsert.select_from(select).expect("a value for each column").returning_col(deadline_tally::Column::Day);
            parts.push(CommonTableExpression::new().table_name(Alias::new(DEADLINES_UPDATED)).query(upsert).to_owned());
            // Counting the deadline rows waits for every one of them to be written
            // (and locked), so the tally row is locked after them, in the lock
            // order above: the parts of a WITH run in no order of their own. There
            // are none unless the gate has a row.
            let counted =
                Query::select().expr(Func::count(Expr::col(Asterisk))).from(Alias::new(DEADLINES_UPDATED)).to_owned();
            Expr::expr(counted).gt(0)
        }
    };
    let mut update = increment_counts(municipality.as_uuid(), change).into_query();
    update.and_where(tally_gate).returning_col(municipality_tally::Column::MunicipalityId);
    parts.push(CommonTableExpression::new().table_name(Alias::new(TALLY_UPDATED)).query(update).to_owned());
    Some(parts)
}

/// Whether `part`, an earlier part of the same `WITH`, returned a row.
pub(crate) fn has_a_row(part: &str) -> Expr {
    Expr::exists(Query::select().expr(Expr::val(1)).from(Alias::new(part)).to_owned())
}

/// Finishes [`record`] or [`record_when`] for a municipality that had no tally
/// row to add the counts of `change` to: creates it and adds them.
pub(crate) async fn record_in_new_row(
    txn: &DatabaseTransaction,
    municipality: MunicipalityId,
    change: &Contribution,
) -> Result<()> {
    let id = municipality.as_uuid();
    create_row(txn, id).await?;
    increment_counts(id, change).exec(txn).await?;
    Ok(())
}

fn corrupt(municipality: Uuid, problem: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("the dashboard tally of municipality {municipality}: {problem}"))
}

/// The tally row, locked for the rest of the transaction (PostgreSQL; on SQLite
/// the write transaction holds the only write lock already).
async fn lock_row(txn: &DatabaseTransaction, id: Uuid) -> Result<Option<municipality_tally::Model>> {
    Ok(municipality_tally::Entity::find_by_id(id).lock_exclusive().one(txn).await?)
}

/// An empty tally row for a municipality that has none yet (one created after
/// the tallies were built); a concurrent writer that creates it first wins.
async fn create_row(txn: &DatabaseTransaction, id: Uuid) -> Result<()> {
    municipality_tally::Entity::insert(empty_row(id))
        .on_conflict_do_nothing_on([municipality_tally::Column::MunicipalityId])
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

fn empty_row(id: Uuid) -> municipality_tally::ActiveModel {
    municipality_tally::ActiveModel {
        municipality_id: Set(id),
        received: Set(0),
        seen: Set(0),
        resolved: Set(0),
        to_seen: Set(Vec::new()),
        to_resolution: Set(Vec::new()),
    }
}

/// Adds the status counts of `change` to the tally row of `id`, by key.
pub(super) fn increment_counts(id: Uuid, change: &Contribution) -> UpdateMany<municipality_tally::Entity> {
    use municipality_tally::Column;
    municipality_tally::Entity::update_many()
        .col_expr(Column::Received, Expr::col(Column::Received).add(change.received))
        .col_expr(Column::Seen, Expr::col(Column::Seen).add(change.seen))
        .col_expr(Column::Resolved, Expr::col(Column::Resolved).add(change.resolved))
        .filter(Column::MunicipalityId.eq(id))
}

/// Adds the changes of open deadlines, one upsert per batch of days.
async fn record_deadlines(
    txn: &DatabaseTransaction,
    municipality: Uuid,
    deadlines: &BTreeMap<(Deadline, i32), i64>,
) -> Result<()> {
    for batch in deadline_rows(municipality, deadlines).chunks(DEADLINE_ROWS_PER_STATEMENT) {
        let mut upsert = deadline_upsert();
        for row in batch {
            upsert.values_panic(row.clone());
        }
        txn.execute(&upsert).await?;
    }
    Ok(())
}

/// The upsert that adds to the open deadlines of a (deadline, day,
/// municipality), without its rows.
fn deadline_upsert() -> InsertStatement {
    use deadline_tally::Column;
    Query::insert()
        .into_table(deadline_tally::Entity)
        .columns([Column::Deadline, Column::Day, Column::MunicipalityId, Column::Owed])
        .on_conflict(
            OnConflict::columns([Column::Deadline, Column::Day, Column::MunicipalityId])
                .value(
                    Column::Owed,
                    Expr::col((deadline_tally::Entity, Column::Owed))
                        .add(Expr::col((Alias::new("excluded"), Column::Owed))),
                )
                .to_owned(),
        )
        .to_owned()
}

/// The rows of [`deadline_upsert`] for the deadlines that change, in (deadline,
/// day) order.
fn deadline_rows(municipality: Uuid, deadlines: &BTreeMap<(Deadline, i32), i64>) -> Vec<[Expr; 4]> {
    deadlines
        .iter()
        .filter(|(_, change)| **change != 0)
        .map(|((deadline, day), change)| {
            [deadline.as_str().into(), (*day).into(), municipality.into(), (*change).into()]
        })
        .collect()
}

/// Builds the totals of every municipality that has no tally row yet, from its
/// appeals: those stored before the tallies existed. Run after the migrations,
/// under their lock; a database whose tallies are built reads one short list and
/// is done. Appeals stored before `micros_to_seen` and `micros_to_resolution`
/// existed get them filled in.
pub(crate) async fn build_missing(txn: &DatabaseTransaction) -> Result<()> {
    let tallied: Vec<Uuid> = municipality_tally::Entity::find()
        .select_only()
        .column(municipality_tally::Column::MunicipalityId)
        .into_tuple()
        .all(txn)
        .await?;
    let missing: Vec<Uuid> = municipality::Entity::find()
        .select_only()
        .column(municipality::Column::Id)
        .filter(municipality::Column::Id.is_not_in(tallied))
        .into_tuple()
        .all(txn)
        .await?;
    for municipality in missing {
        build(txn, municipality).await?;
    }
    Ok(())
}

type FactsRow = (
    Uuid,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<i64>,
    Option<i64>,
);

async fn build(txn: &DatabaseTransaction, municipality: Uuid) -> Result<()> {
    use appeal::Column;
    let rows: Vec<FactsRow> = appeal::Entity::find()
        .select_only()
        .columns([
            Column::Id,
            Column::Status,
            Column::ReceivedAt,
            Column::SeenAt,
            Column::ResolvedAt,
            Column::SeenDueAt,
            Column::DueAt,
            Column::MicrosToSeen,
            Column::MicrosToResolution,
        ])
        .filter(Column::MunicipalityId.eq(municipality))
        .into_tuple()
        .all(txn)
        .await?;
    let mut total = Contribution::default();
    for (id, status, received_at, seen_at, resolved_at, seen_due_at, due_at, to_seen, to_resolution) in rows {
        let status = status.parse().map_err(|error| StorageError::Corrupt(format!("appeal {id}: {error}")))?;
        let facts = TallyFacts { status, received_at, seen_at, resolved_at, seen_due_at, due_at };
        total.add(&Contribution::of(&facts));
        if (to_seen, to_resolution) != (facts.micros_to_seen(), facts.micros_to_resolution()) {
            appeal::Entity::update_many()
                .col_expr(Column::MicrosToSeen, Expr::value(facts.micros_to_seen()))
                .col_expr(Column::MicrosToResolution, Expr::value(facts.micros_to_resolution()))
                .filter(Column::Id.eq(id))
                .exec(txn)
                .await?;
        }
    }
    deadline_tally::Entity::delete_many()
        .filter(deadline_tally::Column::MunicipalityId.eq(municipality))
        .exec(txn)
        .await?;
    create_row(txn, municipality).await?;
    record(txn, municipality.into(), &total).await
}

/// Adds what `appeals` contribute, per municipality (a bulk import).
pub(crate) async fn record_all<'a>(
    txn: &DatabaseTransaction,
    appeals: impl IntoIterator<Item = &'a Appeal>,
) -> Result<()> {
    let mut totals: HashMap<MunicipalityId, Contribution> = HashMap::new();
    for appeal in appeals {
        totals.entry(appeal.municipality_id).or_default().add(&Contribution::of(&TallyFacts::of(appeal)));
    }
    for (municipality, total) in totals {
        record(txn, municipality, &total).await?;
    }
    Ok(())
}
