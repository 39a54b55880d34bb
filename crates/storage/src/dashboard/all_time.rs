//! The dashboard over all time, and the list's `totalCount`, read from the
//! running totals: a few hundred rows whatever the number of appeals, judged
//! against the time of the query.
//!
//! Overdue counts: the appeals that owe a deadline on a day before today are
//! overdue, those that owe it from today on are not, and only today's are
//! looked at one by one (on the partial indexes of the appeals that owe it).
//! Medians are exact: the histogram says which bucket holds the middle and at
//! what offset, and the one or two middle durations are read from the index on
//! that duration.

use std::collections::HashMap;

use appeals_core::{MunicipalityId, Status};
use chrono::{DateTime, Utc};
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QuerySelect, Select, Statement,
};

use super::Figures;
use super::contribution::{Deadline, day_of, start_of_day};
use super::histogram::{DelayHistogram, Measure, MedianProbe, median_hours};
use crate::Store;
use crate::database::begin_read;
use crate::directory::Municipality;
use crate::entity::{appeal, deadline_tally, municipality, municipality_tally};
use crate::error::{Result, StorageError};

/// Where to look for one median: a municipality's histogram of one measure,
/// and where in it the middle lies.
#[derive(Debug, Clone, Copy)]
pub(super) struct MedianLookup {
    pub municipality: MunicipalityId,
    pub measure: Measure,
    pub probe: MedianProbe,
}

/// How many appeals of one municipality owe one deadline, by when it falls due.
#[derive(Debug, Clone, Copy, Default)]
struct Owed {
    /// All the appeals that owe it (from the counts by status).
    all: i64,
    /// Those owing it on today or a later day (from `deadline_tally`).
    from_today: i64,
    /// Those whose deadline passed earlier today (from the appeals themselves).
    due_earlier_today: i64,
}

impl Owed {
    /// The appeals past the deadline: due before today, or earlier today.
    fn past_due(&self) -> u64 {
        let before_today = u64::try_from(self.all - self.from_today).unwrap_or(0);
        before_today + u64::try_from(self.due_earlier_today).unwrap_or(0)
    }
}

/// Counts and medians from the tallies, in one read transaction: the tally
/// rows; the deadlines owed from today on; the appeals falling due earlier
/// today, one by one; and the one or two middle durations of each median.
pub(super) async fn figures(
    store: &Store,
    db: &DatabaseConnection,
    municipalities: &[Municipality],
) -> Result<HashMap<MunicipalityId, Figures>> {
    let now = store.now();
    let today = day_of(now);
    let ids: Vec<Uuid> = municipalities.iter().map(|m| m.id.as_uuid()).collect();
    let txn = begin_read(db).await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        // These statements keep their text and are prepared once per
        // connection; planned afresh for each set of values, the medians'
        // forty-part statement cost more to plan (2 ms) than to run. Their
        // generic plans are the right ones whatever the values.
        txn.execute_unprepared("SET LOCAL plan_cache_mode = force_generic_plan").await?;
    }
    let tallies = tally_rows(ids.clone()).all(&txn).await?;
    let owed_from_today: Vec<(String, Uuid, i64)> = owed_from_today(ids, today).into_tuple().all(&txn).await?;
    let mut due_earlier: Vec<(Deadline, Vec<(Uuid, i64)>)> = Vec::new();
    for deadline in Deadline::ALL {
        due_earlier.push((deadline, due_earlier_today(deadline, today, now).into_tuple().all(&txn).await?));
    }

    let mut figures: HashMap<MunicipalityId, Figures> = HashMap::new();
    let mut owed: HashMap<(MunicipalityId, Deadline), Owed> = HashMap::new();
    let mut lookups = Vec::new();
    for tally in tallies {
        let municipality = MunicipalityId::from_uuid(tally.municipality_id);
        let counts = &mut figures.entry(municipality).or_default().counts;
        for (status, appeals) in
            [(Status::Received, tally.received), (Status::Seen, tally.seen), (Status::Resolved, tally.resolved)]
        {
            counts.add_in_status(status, appeals as u64);
            for deadline in Deadline::ALL.into_iter().filter(|deadline| deadline.is_owed_in(status)) {
                owed.entry((municipality, deadline)).or_default().all += appeals;
            }
        }
        for (measure, bytes) in [(Measure::ToSeen, &tally.to_seen), (Measure::ToResolution, &tally.to_resolution)] {
            let histogram = DelayHistogram::from_bytes(bytes).map_err(|error| {
                StorageError::Corrupt(format!("the dashboard tally of municipality {municipality}: {error}"))
            })?;
            if let Some(probe) = histogram.median_probe() {
                lookups.push(MedianLookup { municipality, measure, probe });
            }
        }
    }
    for (deadline, municipality, appeals) in owed_from_today {
        let deadline = Deadline::parse(&deadline)
            .ok_or_else(|| StorageError::Corrupt(format!("a deadline tally of `{deadline}`")))?;
        owed.entry((municipality.into(), deadline)).or_default().from_today += appeals;
    }
    for (deadline, rows) in due_earlier {
        for (municipality, appeals) in rows {
            owed.entry((municipality.into(), deadline)).or_default().due_earlier_today += appeals;
        }
    }
    for ((municipality, deadline), owed) in owed {
        figures.entry(municipality).or_default().counts.add_past_due(deadline, owed.past_due());
    }
    lookups.sort_by_key(|lookup| (lookup.municipality, lookup.measure));
    for (lookup, hours) in middle_durations(&txn, &lookups).await? {
        let entry = figures.entry(lookup.municipality).or_default();
        match lookup.measure {
            Measure::ToSeen => entry.median_hours_to_seen = hours,
            Measure::ToResolution => entry.median_hours_to_resolve = hours,
        }
    }
    txn.commit().await?;
    Ok(figures)
}

/// The tally rows of the municipalities `ids`, by key.
pub(super) fn tally_rows(ids: Vec<Uuid>) -> Select<municipality_tally::Entity> {
    municipality_tally::Entity::find().filter(municipality_tally::Column::MunicipalityId.is_in(ids))
}

/// Per deadline and municipality, how many appeals owe it on `today` or later.
pub(super) fn owed_from_today(ids: Vec<Uuid>, today: i32) -> Select<deadline_tally::Entity> {
    deadline_tally::Entity::find()
        .select_only()
        .column(deadline_tally::Column::Deadline)
        .column(deadline_tally::Column::MunicipalityId)
        // PostgreSQL sums a BIGINT to a NUMERIC.
        .column_as(Expr::expr(Func::cast_as(deadline_tally::Column::Owed.sum(), Alias::new("BIGINT"))), "owed")
        .filter(deadline_tally::Column::Day.gte(today))
        .filter(deadline_tally::Column::MunicipalityId.is_in(ids))
        .group_by(deadline_tally::Column::Deadline)
        .group_by(deadline_tally::Column::MunicipalityId)
}

/// Per municipality, how many appeals owe `deadline` and saw it pass between
/// the start of `today` and `now`, read from the deadline's partial index.
pub(super) fn due_earlier_today(deadline: Deadline, today: i32, now: DateTime<Utc>) -> Select<appeal::Entity> {
    let due = deadline.due_column();
    appeal::Entity::find()
        .select_only()
        .column(appeal::Column::MunicipalityId)
        .column_as(Expr::cust("COUNT(*)"), "owed")
        .filter(Expr::cust(deadline.owing_predicate()))
        .filter(due.gte(start_of_day(today)))
        .filter(due.lt(now))
        .group_by(appeal::Column::MunicipalityId)
}

/// The medians the `lookups` point at, read in one statement: for each, the one
/// or two durations at its offset within its bucket.
async fn middle_durations(
    txn: &DatabaseTransaction,
    lookups: &[MedianLookup],
) -> Result<Vec<(MedianLookup, Option<f64>)>> {
    if lookups.is_empty() {
        return Ok(Vec::new());
    }
    let statement = middle_durations_statement(txn.get_database_backend(), lookups);
    let rows = txn.query_all_raw(statement).await?;
    let mut middles: Vec<Vec<i64>> = vec![Vec::new(); lookups.len()];
    for row in rows {
        let part: i32 = row.try_get("", "part")?;
        let micros: i64 = row.try_get("", "micros")?;
        if let Some(middle) = usize::try_from(part).ok().and_then(|part| middles.get_mut(part)) {
            middle.push(micros);
        }
    }
    Ok(lookups
        .iter()
        .zip(middles)
        .map(|(lookup, mut middle)| {
            middle.sort_unstable();
            (*lookup, median_hours(&middle))
        })
        .collect())
}

/// One part per lookup, each read from the municipality's index on its
/// duration ([`Measure::index`]), joined by `UNION ALL`.
pub(super) fn middle_durations_statement(backend: DbBackend, lookups: &[MedianLookup]) -> Statement {
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(lookups.len() * 4);
    let mut parts = Vec::with_capacity(lookups.len());
    for (part, lookup) in lookups.iter().enumerate() {
        let mut placeholder = |value: sea_orm::Value| {
            values.push(value);
            match backend {
                DbBackend::Postgres => format!("${}", values.len()),
                _ => "?".to_owned(),
            }
        };
        let municipality = placeholder(lookup.municipality.as_uuid().into());
        let from = placeholder(lookup.probe.from_micros.into());
        let limit = placeholder((lookup.probe.middle as i64).into());
        let offset = placeholder(i64::try_from(lookup.probe.offset).unwrap_or(i64::MAX).into());
        let column = lookup.measure.column();
        // Everything that varies is bound, so that the statement's text is the
        // same from one dashboard to the next and stays prepared.
        parts.push(format!(
            r#"SELECT * FROM (SELECT {part} AS "part", "{column}" AS "micros" FROM "appeal" WHERE "municipality_id" = {municipality} AND "{column}" IS NOT NULL AND "{column}" >= {from} ORDER BY "{column}" LIMIT {limit} OFFSET {offset}) AS "part_{part}""#,
        ));
    }
    Statement::from_sql_and_values(backend, parts.join(" UNION ALL "), values)
}

/// How many appeals there are in `municipality` (or everywhere) with `status`
/// (or any), from the running totals: the list's `totalCount`.
///
/// The rows are looked up by key, never scanned: on PostgreSQL every write leaves
/// a dead version of its municipality's row behind until autovacuum comes (tens
/// of thousands a minute under load), and a scan reads them all (2.6 ms after
/// 100,000 updates, against 0.1 ms by key, where dead index entries are skipped).
pub(crate) async fn count(
    txn: &DatabaseTransaction,
    municipality: Option<MunicipalityId>,
    status: Option<Status>,
) -> Result<u64> {
    let keys: Vec<Uuid> = match municipality {
        Some(municipality) => vec![municipality.as_uuid()],
        None => {
            municipality::Entity::find().select_only().column(municipality::Column::Id).into_tuple().all(txn).await?
        }
    };
    let count: Option<i64> = summed_counts(keys, status).into_tuple().one(txn).await?;
    Ok(u64::try_from(count.unwrap_or(0)).unwrap_or(0))
}

/// The sum of the counts of `status` (or of every status) over the tally rows
/// of `keys`.
pub(super) fn summed_counts(keys: Vec<Uuid>, status: Option<Status>) -> Select<municipality_tally::Entity> {
    use municipality_tally::Column;
    let columns = match status {
        Some(Status::Received) => vec![Column::Received],
        Some(Status::Seen) => vec![Column::Seen],
        Some(Status::Resolved) => vec![Column::Resolved],
        None => vec![Column::Received, Column::Seen, Column::Resolved],
    };
    // Summed as BIGINT: PostgreSQL sums a BIGINT to a NUMERIC.
    let sum = columns
        .into_iter()
        .map(|column| Expr::col(column).sum())
        .reduce(|total, sum| total.add(sum))
        .map(|total| Func::coalesce([total, Expr::value(0i64)]))
        .map(|total| Func::cast_as(total, Alias::new("BIGINT")));
    municipality_tally::Entity::find()
        .select_only()
        .column_as(Expr::expr(sum.expect("at least one column")), "count")
        .filter(Column::MunicipalityId.is_in(keys))
}
