//! The dashboard over a `from`/`to` range of receipt, counted from the appeals
//! received in the range, so it costs in proportion to the range. Its counts go
//! through the same definitions as those read from the running totals.

use std::collections::HashMap;

use appeals_core::clock::check_storable;
use appeals_core::{MunicipalityId, Status};
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Func, SimpleExpr};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};

use super::contribution::Deadline;
use super::{DashboardFilter, Figures};
use crate::Store;
use crate::database::begin_read;
use crate::directory::Municipality;
use crate::entity::appeal;
use crate::error::{Result, StorageError};

/// Counts and medians of the appeals received between `filter.from` and
/// `filter.to`, counted from their rows.
pub(super) async fn figures(
    store: &Store,
    db: &DatabaseConnection,
    municipalities: &[Municipality],
    filter: &DashboardFilter,
) -> Result<HashMap<MunicipalityId, Figures>> {
    let now = store.now();
    let ids: Vec<Uuid> = municipalities.iter().map(|m| m.id.as_uuid()).collect();
    let mut condition = Condition::all().add(appeal::Column::MunicipalityId.is_in(ids));
    if let Some(from) = filter.from {
        condition = condition.add(appeal::Column::ReceivedAt.gte(check_storable("from", from)?));
    }
    if let Some(to) = filter.to {
        condition = condition.add(appeal::Column::ReceivedAt.lt(check_storable("to", to)?));
    }

    let txn = begin_read(db).await?;
    // How many of a group's appeals have seen `deadline` pass; whether they
    // still owe it depends on their status, which the group shares.
    let past = |deadline: Deadline| -> SimpleExpr {
        Func::sum(Expr::case(Expr::col(deadline.due_column()).lt(now), 1).finally(0)).into()
    };
    let counted: Vec<(Uuid, String, i64, i64, i64)> = appeal::Entity::find()
        .select_only()
        .column(appeal::Column::MunicipalityId)
        .column(appeal::Column::Status)
        .column_as(appeal::Column::Id.count(), "total")
        .column_as(past(Deadline::Answer), "past_due")
        .column_as(past(Deadline::Reading), "past_seen_due")
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

    let mut figures: HashMap<MunicipalityId, Figures> = HashMap::new();
    for (municipality, status, total, past_due, past_seen_due) in counted {
        let status: Status =
            status.parse().map_err(|error| StorageError::Corrupt(format!("an appeal's status: {error}")))?;
        let counts = &mut figures.entry(municipality.into()).or_default().counts;
        counts.add_in_status(status, total as u64);
        for (deadline, past) in [(Deadline::Answer, past_due), (Deadline::Reading, past_seen_due)] {
            if deadline.is_owed_in(status) {
                counts.add_past_due(deadline, past as u64);
            }
        }
    }
    for (municipality, hours) in hours_by_municipality(seen) {
        figures.entry(municipality).or_default().median_hours_to_seen = median(&hours);
    }
    for (municipality, hours) in hours_by_municipality(resolved) {
        figures.entry(municipality).or_default().median_hours_to_resolve = median(&hours);
    }
    Ok(figures)
}

fn hours_by_municipality(rows: Vec<(Uuid, i64)>) -> HashMap<MunicipalityId, Vec<f64>> {
    let mut hours: HashMap<MunicipalityId, Vec<f64>> = HashMap::new();
    for (municipality, micros) in rows {
        hours.entry(municipality.into()).or_default().push(micros as f64 / 3_600_000_000.0);
    }
    hours
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> Option<f64> {
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
