//! The governor's office dashboard: per municipality in the caller's scope, how
//! many appeals there are by status, how many are overdue, and how fast heads read
//! and resolve them, from every change committed before the query, with overdue
//! judged at the time of the query.

use std::collections::HashMap;

use appeals_core::clock::check_storable;
use appeals_core::tally::{Deadline, DelayHistogram, MedianProbe, day_of, median_hours, start_of_day};
use appeals_core::text::MunicipalityCode;
use appeals_core::{InvalidInput, MunicipalityId, Scope, Status};
use chrono::{DateTime, Utc};
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, Func};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter, QuerySelect, Statement,
};

use crate::Store;
use crate::database::begin_read;
use crate::directory::Municipality;
use crate::entity::{appeal, deadline_tally, municipality_tally};
use crate::error::{Result, StorageError};

/// Appeal counts of one municipality or of the whole scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    pub received: u64,
    pub seen: u64,
    pub resolved: u64,
    pub overdue: u64,
    pub seen_overdue: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.total += other.total;
        self.received += other.received;
        self.seen += other.seen;
        self.resolved += other.resolved;
        self.overdue += other.overdue;
        self.seen_overdue += other.seen_overdue;
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MunicipalityStats {
    pub municipality: Municipality,
    pub counts: Counts,
    /// The median time from receipt to the head's reading; `None` if none was read.
    pub median_hours_to_seen: Option<f64>,
    /// The median time from receipt to the current resolution; `None` if none.
    pub median_hours_to_resolve: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    pub counts: Counts,
    /// Every municipality in scope, empty ones too, by code.
    pub municipalities: Vec<MunicipalityStats>,
}

/// Which appeals the dashboard counts.
#[derive(Debug, Clone, Default)]
pub struct DashboardFilter {
    pub municipality_code: Option<MunicipalityCode>,
    /// Appeals received at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Appeals received before this time.
    pub to: Option<DateTime<Utc>>,
}

impl Store {
    /// The dashboard of `scope`. Over all time it is read from the running totals
    /// that every write keeps (`tally`): a few hundred rows whatever the number of
    /// appeals, judged against the time of the query. Over a `from`/`to` range it
    /// is counted from the appeals received in the range.
    pub async fn dashboard(&self, scope: Scope, filter: &DashboardFilter) -> Result<Dashboard> {
        let mut municipalities: Vec<Municipality> = self.municipalities().await?;
        if let Some(code) = &filter.municipality_code {
            if !municipalities.iter().any(|m| m.code == code.as_str()) {
                return Err(InvalidInput::new("municipalityCode", format!("no municipality `{code}`")).into());
            }
            municipalities.retain(|m| m.code == code.as_str());
        }
        municipalities.retain(|m| scope.contains(m.id));
        let stats = if filter.from.is_none() && filter.to.is_none() {
            self.tallied_stats(&municipalities).await?
        } else {
            self.counted_stats(&municipalities, filter).await?
        };
        let mut dashboard = Dashboard { counts: Counts::default(), municipalities: Vec::new() };
        for municipality in municipalities {
            let (counts, median_hours_to_seen, median_hours_to_resolve) =
                stats.get(&municipality.id).copied().unwrap_or_default();
            dashboard.counts += counts;
            dashboard.municipalities.push(MunicipalityStats {
                municipality,
                counts,
                median_hours_to_seen,
                median_hours_to_resolve,
            });
        }
        Ok(dashboard)
    }

    /// Counts and medians from the tallies, in one read transaction: the tally
    /// rows; the deadlines owed from today on; the appeals falling due earlier
    /// today, one by one; and the one or two middle durations of each median.
    async fn tallied_stats(&self, municipalities: &[Municipality]) -> Result<HashMap<MunicipalityId, Stats>> {
        let now = self.now();
        let today = day_of(now);
        let ids: Vec<Uuid> = municipalities.iter().map(|m| m.id.as_uuid()).collect();
        let txn = begin_read(self.db()).await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            // These statements keep their text and are prepared once per
            // connection; planned afresh for each set of values, the medians'
            // forty-part statement cost more to plan (2 ms) than to run. Their
            // generic plans are the right ones whatever the values.
            txn.execute_unprepared("SET LOCAL plan_cache_mode = force_generic_plan").await?;
        }
        let tallies = municipality_tally::Entity::find()
            .filter(municipality_tally::Column::MunicipalityId.is_in(ids.clone()))
            .all(&txn)
            .await?;
        let owed_from_today: Vec<(String, Uuid, i64)> = deadline_tally::Entity::find()
            .select_only()
            .column(deadline_tally::Column::Deadline)
            .column(deadline_tally::Column::MunicipalityId)
            // PostgreSQL sums a BIGINT to a NUMERIC.
            .column_as(Expr::expr(Func::cast_as(deadline_tally::Column::Owed.sum(), Alias::new("BIGINT"))), "owed")
            .filter(deadline_tally::Column::Day.gte(today))
            .filter(deadline_tally::Column::MunicipalityId.is_in(ids.clone()))
            .group_by(deadline_tally::Column::Deadline)
            .group_by(deadline_tally::Column::MunicipalityId)
            .into_tuple()
            .all(&txn)
            .await?;
        let due_earlier_today = |deadline: Deadline| {
            // The status condition repeats the partial index's word for word.
            let (owing, column) = match deadline {
                Deadline::Answer => (r#""appeal"."status" <> 'RESOLVED'"#, appeal::Column::DueAt),
                Deadline::Reading => (r#""appeal"."status" = 'RECEIVED'"#, appeal::Column::SeenDueAt),
            };
            appeal::Entity::find()
                .select_only()
                .column(appeal::Column::MunicipalityId)
                .column_as(Expr::cust("COUNT(*)"), "owed")
                .filter(Expr::cust(owing))
                .filter(column.gte(start_of_day(today)))
                .filter(column.lt(now))
                .group_by(appeal::Column::MunicipalityId)
                .into_tuple::<(Uuid, i64)>()
                .all(&txn)
        };
        let answers_due_earlier_today = due_earlier_today(Deadline::Answer).await?;
        let readings_due_earlier_today = due_earlier_today(Deadline::Reading).await?;

        let mut stats: HashMap<MunicipalityId, Stats> = HashMap::new();
        let mut probes = Vec::new();
        for tally in tallies {
            let municipality = MunicipalityId::from_uuid(tally.municipality_id);
            let counts = stats.entry(municipality).or_default();
            let (received, seen, resolved) = (tally.received, tally.seen, tally.resolved);
            counts.0.received = received as u64;
            counts.0.seen = seen as u64;
            counts.0.resolved = resolved as u64;
            counts.0.total = (received + seen + resolved) as u64;
            counts.0.overdue = (received + seen) as u64;
            counts.0.seen_overdue = received as u64;
            for (measure, bytes) in [(Measure::ToSeen, &tally.to_seen), (Measure::ToResolution, &tally.to_resolution)] {
                let histogram = DelayHistogram::from_bytes(bytes).map_err(|error| {
                    StorageError::Corrupt(format!("the dashboard tally of municipality {municipality}: {error}"))
                })?;
                if let Some(probe) = histogram.median_probe() {
                    probes.push((municipality, measure, probe));
                }
            }
        }
        for (deadline, municipality, owed) in owed_from_today {
            let counts = &mut stats.entry(municipality.into()).or_default().0;
            match Deadline::parse(&deadline) {
                Some(Deadline::Answer) => counts.overdue = counts.overdue.saturating_sub(owed as u64),
                Some(Deadline::Reading) => counts.seen_overdue = counts.seen_overdue.saturating_sub(owed as u64),
                None => return Err(StorageError::Corrupt(format!("a deadline tally of `{deadline}`"))),
            }
        }
        for (municipality, owed) in answers_due_earlier_today {
            stats.entry(municipality.into()).or_default().0.overdue += owed as u64;
        }
        for (municipality, owed) in readings_due_earlier_today {
            stats.entry(municipality.into()).or_default().0.seen_overdue += owed as u64;
        }
        probes.sort_by_key(|(municipality, measure, _)| (*municipality, *measure));
        for (municipality, measure, hours) in middle_durations(&txn, &probes).await? {
            let entry = stats.entry(municipality).or_default();
            match measure {
                Measure::ToSeen => entry.1 = hours,
                Measure::ToResolution => entry.2 = hours,
            }
        }
        txn.commit().await?;
        Ok(stats)
    }

    /// Counts and medians of the appeals received between `filter.from` and
    /// `filter.to`, counted from their rows.
    async fn counted_stats(
        &self,
        municipalities: &[Municipality],
        filter: &DashboardFilter,
    ) -> Result<HashMap<MunicipalityId, Stats>> {
        let now = self.now();
        let ids: Vec<Uuid> = municipalities.iter().map(|m| m.id.as_uuid()).collect();
        let mut condition = Condition::all().add(appeal::Column::MunicipalityId.is_in(ids));
        if let Some(from) = filter.from {
            condition = condition.add(appeal::Column::ReceivedAt.gte(check_storable("from", from)?));
        }
        if let Some(to) = filter.to {
            condition = condition.add(appeal::Column::ReceivedAt.lt(check_storable("to", to)?));
        }

        let txn = begin_read(self.db()).await?;
        let flag = |column: appeal::Column| Func::sum(Expr::case(Expr::col(column).lt(now), 1).finally(0)).into();
        let counted: Vec<(Uuid, String, i64, i64, i64)> = appeal::Entity::find()
            .select_only()
            .column(appeal::Column::MunicipalityId)
            .column(appeal::Column::Status)
            .column_as(appeal::Column::Id.count(), "total")
            .column_as::<sea_orm::sea_query::SimpleExpr, _>(flag(appeal::Column::DueAt), "past_due")
            .column_as::<sea_orm::sea_query::SimpleExpr, _>(flag(appeal::Column::SeenDueAt), "past_seen_due")
            .filter(condition.clone())
            .group_by(appeal::Column::MunicipalityId)
            .group_by(appeal::Column::Status)
            .into_tuple()
            .all(&txn)
            .await?;
        let seen: Vec<(Uuid, i64)> = appeal::Entity::find()
            .select_only()
            .columns([appeal::Column::MunicipalityId, appeal::Column::MicrosToSeen])
            .filter(condition.clone().add(appeal::Column::MicrosToSeen.is_not_null()))
            .into_tuple()
            .all(&txn)
            .await?;
        let resolved: Vec<(Uuid, i64)> = appeal::Entity::find()
            .select_only()
            .columns([appeal::Column::MunicipalityId, appeal::Column::MicrosToResolution])
            .filter(condition.add(appeal::Column::MicrosToResolution.is_not_null()))
            .into_tuple()
            .all(&txn)
            .await?;
        txn.commit().await?;

        let mut stats: HashMap<MunicipalityId, Stats> = HashMap::new();
        for (municipality, status, total, past_due, past_seen_due) in counted {
            let entry = &mut stats.entry(municipality.into()).or_default().0;
            let (total, past_due, past_seen_due) = (total as u64, past_due as u64, past_seen_due as u64);
            entry.total += total;
            match status.parse::<Status>() {
                Ok(Status::Received) => {
                    entry.received += total;
                    entry.overdue += past_due;
                    entry.seen_overdue += past_seen_due;
                }
                Ok(Status::Seen) => {
                    entry.seen += total;
                    entry.overdue += past_due;
                }
                Ok(Status::Resolved) => entry.resolved += total,
                Err(_) => {}
            }
        }
        for (municipality, hours) in hours_by_municipality(seen) {
            stats.entry(municipality).or_default().1 = median(&hours);
        }
        for (municipality, hours) in hours_by_municipality(resolved) {
            stats.entry(municipality).or_default().2 = median(&hours);
        }
        Ok(stats)
    }
}

/// A municipality's counts, median hours to reading and to resolution.
type Stats = (Counts, Option<f64>, Option<f64>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Measure {
    ToSeen,
    ToResolution,
}

impl Measure {
    fn column(self) -> &'static str {
        match self {
            Measure::ToSeen => "micros_to_seen",
            Measure::ToResolution => "micros_to_resolution",
        }
    }
}

/// The medians the `probes` point at, read in one statement: for each, the one or
/// two durations at its offset within its bucket, from the municipality's index
/// on that duration.
async fn middle_durations(
    txn: &DatabaseTransaction,
    probes: &[(MunicipalityId, Measure, MedianProbe)],
) -> Result<Vec<(MunicipalityId, Measure, Option<f64>)>> {
    if probes.is_empty() {
        return Ok(Vec::new());
    }
    let backend = txn.get_database_backend();
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(probes.len() * 2);
    let mut parts = Vec::with_capacity(probes.len());
    for (part, (municipality, measure, probe)) in probes.iter().enumerate() {
        let mut placeholder = |value: sea_orm::Value| {
            values.push(value);
            match backend {
                DbBackend::Postgres => format!("${}", values.len()),
                _ => "?".to_owned(),
            }
        };
        let municipality = placeholder(municipality.as_uuid().into());
        let from = placeholder(probe.from_micros.into());
        let limit = placeholder((probe.middle as i64).into());
        let offset = placeholder(i64::try_from(probe.offset).unwrap_or(i64::MAX).into());
        let column = measure.column();
        // Everything that varies is bound, so that the statement's text is the
        // same from one dashboard to the next and stays prepared.
        parts.push(format!(
            r#"SELECT * FROM (SELECT {part} AS "part", "{column}" AS "micros" FROM "appeal" WHERE "municipality_id" = {municipality} AND "{column}" IS NOT NULL AND "{column}" >= {from} ORDER BY "{column}" LIMIT {limit} OFFSET {offset}) AS "part_{part}""#,
        ));
    }
    let sql = parts.join(" UNION ALL ");
    let rows = txn.query_all_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
    let mut middles: Vec<Vec<i64>> = vec![Vec::new(); probes.len()];
    for row in rows {
        let part: i32 = row.try_get("", "part")?;
        let micros: i64 = row.try_get("", "micros")?;
        if let Some(middle) = usize::try_from(part).ok().and_then(|part| middles.get_mut(part)) {
            middle.push(micros);
        }
    }
    Ok(probes
        .iter()
        .zip(middles)
        .map(|((municipality, measure, _), mut middle)| {
            middle.sort_unstable();
            (*municipality, *measure, median_hours(&middle))
        })
        .collect())
}

fn hours_by_municipality(rows: Vec<(Uuid, i64)>) -> HashMap<MunicipalityId, Vec<f64>> {
    let mut hours: HashMap<MunicipalityId, Vec<f64>> = HashMap::new();
    for (municipality, micros) in rows {
        hours.entry(municipality.into()).or_default().push(micros as f64 / 3_600_000_000.0);
    }
    hours
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) { (sorted[middle - 1] + sorted[middle]) / 2.0 } else { sorted[middle] })
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_is_the_middle_value() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
