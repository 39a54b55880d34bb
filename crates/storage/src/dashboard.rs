//! The governor's office dashboard: per municipality in the caller's scope, how
//! many appeals there are by status, how many are overdue, and how fast heads read
//! and resolve them. Counted from the committed rows at the time of the query.

use std::collections::HashMap;

use appeals_core::clock::check_storable;
use appeals_core::text::MunicipalityCode;
use appeals_core::{InvalidInput, MunicipalityId, Scope, Status};
use chrono::{DateTime, Utc};
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Func};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use crate::Store;
use crate::database::begin_read;
use crate::directory::Municipality;
use crate::entity::appeal;
use crate::error::Result;

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
    pub async fn dashboard(&self, scope: Scope, filter: &DashboardFilter) -> Result<Dashboard> {
        let now = self.now();
        let mut municipalities: Vec<Municipality> = self.municipalities().await?;
        if let Some(code) = &filter.municipality_code {
            if !municipalities.iter().any(|m| m.code == code.as_str()) {
                return Err(InvalidInput::new("municipalityCode", format!("no municipality `{code}`")).into());
            }
            municipalities.retain(|m| m.code == code.as_str());
        }
        municipalities.retain(|m| scope.contains(m.id));
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
        let seen: Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)> = appeal::Entity::find()
            .select_only()
            .columns([appeal::Column::MunicipalityId, appeal::Column::ReceivedAt, appeal::Column::SeenAt])
            .filter(condition.clone().add(appeal::Column::SeenAt.is_not_null()))
            .into_tuple()
            .all(&txn)
            .await?;
        let resolved: Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)> = appeal::Entity::find()
            .select_only()
            .columns([appeal::Column::MunicipalityId, appeal::Column::ReceivedAt, appeal::Column::ResolvedAt])
            .filter(condition.add(appeal::Column::ResolvedAt.is_not_null()))
            .into_tuple()
            .all(&txn)
            .await?;
        txn.commit().await?;

        let mut counts: HashMap<MunicipalityId, Counts> = HashMap::new();
        for (municipality, status, total, past_due, past_seen_due) in counted {
            let entry = counts.entry(municipality.into()).or_default();
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
        let hours_to_seen = hours_by_municipality(seen);
        let hours_to_resolve = hours_by_municipality(resolved);

        let mut dashboard = Dashboard { counts: Counts::default(), municipalities: Vec::new() };
        for municipality in municipalities {
            let counts = counts.get(&municipality.id).copied().unwrap_or_default();
            dashboard.counts += counts;
            dashboard.municipalities.push(MunicipalityStats {
                median_hours_to_seen: hours_to_seen.get(&municipality.id).and_then(|hours| median(hours)),
                median_hours_to_resolve: hours_to_resolve.get(&municipality.id).and_then(|hours| median(hours)),
                municipality,
                counts,
            });
        }
        Ok(dashboard)
    }
}

fn hours_by_municipality(rows: Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)>) -> HashMap<MunicipalityId, Vec<f64>> {
    let mut hours: HashMap<MunicipalityId, Vec<f64>> = HashMap::new();
    for (municipality, from, to) in rows {
        let elapsed = (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 3_600_000_000.0;
        hours.entry(municipality.into()).or_default().push(elapsed);
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
