//! Bulk import of appeals built elsewhere, with their whole recorded histories:
//! a region generated for the benchmarks, or appeals carried over from an older
//! system. Rows go in as multi-row INSERTs inside one write transaction per call,
//! many times faster than registering appeals one by one.
//!
//! The import writes what it is given. Each appeal must come with the history the
//! live path would have recorded for it (`Appeal::receive`, then `Appeal::apply`
//! for each command, each event placed with `NewEvent::record` after the one
//! before), so that `appeals audit verify` accepts it; the import checks only that
//! the history is present, numbered and the appeal's own.

use std::collections::HashMap;

use appeals_core::{Appeal, InvalidInput, MunicipalityId, RecordedEvent};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, EntityTrait};

use crate::Store;
use crate::database::begin_write;
use crate::entity::{appeal, appeal_event, registration_counter};
use crate::error::Result;
use crate::records::{StoredEvent, appeal_row, event_row};

/// An appeal as it stands, with its history oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedAppeal {
    pub appeal: Appeal,
    /// `seq` 1, 2, 3…, each event chained to the one before it.
    pub events: Vec<RecordedEvent>,
}

/// Values bound per statement at most. SQLite allows 32,766 and PostgreSQL 65,535;
/// staying well below both keeps each statement a few megabytes at most.
const MAX_VALUES_PER_STATEMENT: usize = 30_000;
const APPEAL_COLUMNS: usize = 30;
const EVENT_COLUMNS: usize = 13;

impl Store {
    /// Inserts `appeals` and their events in one write transaction, and raises each
    /// municipality's registration counter past the highest imported number of
    /// each year, so that the next appeal registered live gets the next number.
    /// The dashboard's tallies take the appeals in, in the same transaction. An
    /// appeal whose id, number or (`channel`, `externalId`) is taken fails the
    /// whole call, which then changes nothing.
    pub async fn import_appeals(&self, appeals: &[ImportedAppeal]) -> Result<()> {
        let mut counters: HashMap<(MunicipalityId, i32), i64> = HashMap::new();
        let mut appeal_rows = Vec::with_capacity(appeals.len());
        let mut event_rows = Vec::with_capacity(appeals.len() * 4);
        for imported in appeals {
            let last = check_history(imported)?;
            let (year, sequence) = registration_of(&imported.appeal.number)?;
            let highest = counters.entry((imported.appeal.municipality_id, year)).or_default();
            *highest = std::cmp::max(*highest, sequence);
            appeal_rows.push(appeal_row(&imported.appeal, last, self.audit_key()));
            event_rows.extend(
                imported.events.iter().map(|event| event_row(&StoredEvent::new(event.clone(), self.audit_key()))),
            );
        }

        let txn = begin_write(self.db()).await?;
        // Imported histories take their positions in the order given.
        let first = crate::events::take_positions(&txn, i64::try_from(event_rows.len()).unwrap_or(i64::MAX)).await?;
        for (offset, row) in (0..).zip(event_rows.iter_mut()) {
            row.position = Set(first + offset);
        }
        let mut appeal_rows = appeal_rows.into_iter().peekable();
        while appeal_rows.peek().is_some() {
            let batch: Vec<_> = appeal_rows.by_ref().take(MAX_VALUES_PER_STATEMENT / APPEAL_COLUMNS).collect();
            appeal::Entity::insert_many(batch).exec_without_returning(&txn).await?;
        }
        let mut event_rows = event_rows.into_iter().peekable();
        while event_rows.peek().is_some() {
            let batch: Vec<_> = event_rows.by_ref().take(MAX_VALUES_PER_STATEMENT / EVENT_COLUMNS).collect();
            appeal_event::Entity::insert_many(batch).exec_without_returning(&txn).await?;
        }
        for ((municipality_id, year), highest) in counters {
            raise_registration_counter(&txn, municipality_id, year, highest).await?;
        }
        crate::dashboard::record_all(&txn, appeals.iter().map(|imported| &imported.appeal)).await?;
        txn.commit().await?;
        self.events_committed();
        Ok(())
    }
}

/// The last event of a well-formed history: present, numbered from 1 without
/// gaps, every event the appeal's own.
fn check_history(imported: &ImportedAppeal) -> Result<&RecordedEvent> {
    let invalid = |problem: &str| InvalidInput::new("events", format!("appeal {}: {problem}", imported.appeal.number));
    for (index, event) in imported.events.iter().enumerate() {
        if event.appeal_id != imported.appeal.id {
            return Err(invalid("an event belongs to another appeal").into());
        }
        if usize::try_from(event.seq).ok() != Some(index + 1) {
            return Err(invalid("the events are not numbered 1, 2, 3…").into());
        }
    }
    imported.events.last().ok_or_else(|| invalid("the history is empty").into())
}

/// The year and sequence of a registration number such as `TOMSK-2026-000042`.
fn registration_of(number: &str) -> Result<(i32, i64)> {
    let invalid = || InvalidInput::new("number", format!("`{number}` is not a registration number"));
    let mut parts = number.rsplitn(3, '-');
    let sequence = parts.next().and_then(|part| part.parse().ok()).ok_or_else(invalid)?;
    let year = parts.next().and_then(|part| part.parse().ok()).ok_or_else(invalid)?;
    parts.next().filter(|code| !code.is_empty()).ok_or_else(invalid)?;
    Ok((year, sequence))
}

/// Sets the counter of (`municipality_id`, `year`) to `highest`, unless it is
/// already past it.
async fn raise_registration_counter(
    txn: &DatabaseTransaction,
    municipality_id: MunicipalityId,
    year: i32,
    highest: i64,
) -> Result<()> {
    use registration_counter::Column;
    let current = Expr::col((registration_counter::Entity, Column::LastValue));
    let proposed = Expr::col((Alias::new("excluded"), Column::LastValue));
    let upsert = Query::insert()
        .into_table(registration_counter::Entity)
        .columns([Column::MunicipalityId, Column::Year, Column::LastValue])
        .values_panic([municipality_id.as_uuid().into(), year.into(), highest.into()])
        .on_conflict(
            OnConflict::columns([Column::MunicipalityId, Column::Year])
                .value(Column::LastValue, Expr::case(proposed.clone().gt(current.clone()), proposed).finally(current))
                .to_owned(),
        )
        .to_owned();
    txn.execute(&upsert).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::registration_of;

    #[test]
    fn registration_numbers_are_read_back() {
        assert_eq!(registration_of("TOMSK-2026-000042").ok(), Some((2026, 42)));
        assert_eq!(registration_of("ZATO-SEVERSK-2027-1234567").ok(), Some((2027, 1_234_567)));
        for bad in ["", "TOMSK", "TOMSK-2026", "-2026-000001", "TOMSK-20x6-000001", "TOMSK-2026-"] {
            assert!(registration_of(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
