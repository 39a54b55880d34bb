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

use std::collections::{BTreeMap, HashMap};

use appeals_core::{Appeal, MunicipalityId};
use chrono::{DateTime, Utc};
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect,
    UpdateMany,
};

use super::contribution::{Contribution, Deadline, TallyFacts};
use super::histogram::DelayHistogram;
use crate::entity::{appeal, deadline_tally, municipality, municipality_tally};
use crate::error::{Result, StorageError};

/// Deadline rows written per statement at most (four values each).
const DEADLINE_ROWS_PER_STATEMENT: usize = 5_000;

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
                create_row(txn, id).await?;
                increment_counts(id, change).exec(txn).await?;
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
    use deadline_tally::Column;
    let rows: Vec<_> = deadlines.iter().filter(|(_, change)| **change != 0).collect();
    for batch in rows.chunks(DEADLINE_ROWS_PER_STATEMENT) {
        let mut upsert = Query::insert()
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
            .to_owned();
        for ((deadline, day), change) in batch {
            upsert.values_panic([deadline.as_str().into(), (*day).into(), municipality.into(), (**change).into()]);
        }
        txn.execute(&upsert).await?;
    }
    Ok(())
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
