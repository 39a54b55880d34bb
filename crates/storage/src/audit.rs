//! Verifying the tamper-evident history: each appeal's hash chain, its anchor on
//! the appeal row, and that replaying the history reproduces the stored appeal.

use appeals_core::events::{ChainAnchor, ChainBreak, replay, verify_chain};
use appeals_core::{Appeal, AppealId, RecordedEvent};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::Store;
use crate::database::begin_read;
use crate::entity::appeal;
use crate::error::{Result, StorageError};
use crate::queries::{histories_on, history_on};

/// The verdict on one appeal's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub appeal_id: AppealId,
    pub number: String,
    pub events_checked: usize,
    /// The first break, if the history does not verify.
    pub broken: Option<ChainBreak>,
}

impl AuditReport {
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// The verdict on every appeal, stopping at the first one that fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSummary {
    pub appeals_checked: u64,
    pub events_checked: u64,
    pub first_failure: Option<AuditReport>,
}

/// How many appeals are verified per round trip.
const BATCH: u64 = 500;

impl Store {
    /// Verifies one appeal's history; `None` if there is no such appeal.
    ///
    /// The appeal row and its events are read in one snapshot: read apart, a
    /// command committing in between would look like tampering (a history that
    /// goes on past its anchor, or stops short of it).
    pub async fn verify_appeal(&self, id: AppealId) -> Result<Option<AuditReport>> {
        let txn = begin_read(self.db()).await?;
        let Some(row) = appeal::Entity::find_by_id(id.as_uuid()).one(&txn).await? else {
            txn.commit().await?;
            return Ok(None);
        };
        let events = history_on(&txn, id).await?.into_iter().map(|stored| stored.event).collect::<Vec<_>>();
        txn.commit().await?;
        Ok(Some(audit(row, &events)))
    }

    /// Verifies every appeal, in batches, until the first failure.
    pub async fn verify_all(&self) -> Result<AuditSummary> {
        let mut summary = AuditSummary { appeals_checked: 0, events_checked: 0, first_failure: None };
        let mut after: Option<sea_orm::prelude::Uuid> = None;
        loop {
            let mut query = appeal::Entity::find().order_by_asc(appeal::Column::Id).limit(BATCH);
            if let Some(last) = after {
                query = query.filter(appeal::Column::Id.gt(last));
            }
            // Each batch's rows and histories come from one snapshot, as in
            // `verify_appeal`.
            let txn = begin_read(self.db()).await?;
            let rows = query.all(&txn).await?;
            let Some(last) = rows.last() else {
                txn.commit().await?;
                break;
            };
            after = Some(last.id);
            let ids: Vec<AppealId> = rows.iter().map(|row| AppealId::from_uuid(row.id)).collect();
            let mut histories = histories_on(&txn, &ids).await?;
            txn.commit().await?;
            for row in rows {
                let events: Vec<RecordedEvent> = histories
                    .remove(&AppealId::from_uuid(row.id))
                    .unwrap_or_default()
                    .into_iter()
                    .map(|stored| stored.event)
                    .collect();
                let report = audit(row, &events);
                summary.appeals_checked += 1;
                summary.events_checked += report.events_checked as u64;
                if !report.ok() {
                    summary.first_failure = Some(report);
                    return Ok(summary);
                }
            }
        }
        Ok(summary)
    }
}

fn audit(row: appeal::Model, events: &[RecordedEvent]) -> AuditReport {
    let appeal_id = AppealId::from_uuid(row.id);
    let number = row.number.clone();
    let anchor_hash = row.last_event_hash.clone();
    let anchor = ChainAnchor { seq: row.last_event_seq, hash: &anchor_hash };
    let verdict = verify_chain(appeal_id, events, anchor).and_then(|checked| {
        let last_seq = i32::try_from(checked).unwrap_or(i32::MAX);
        let mismatch = ChainBreak { seq: last_seq, reason: "the appeal does not match the replay of its history" };
        let stored: Result<Appeal, StorageError> = Appeal::try_from(row);
        match (stored, replay(events)) {
            (Ok(stored), Ok(replayed)) if stored == replayed => Ok(checked),
            (_, Err(appeals_core::ReplayError::Refused { seq, .. } | appeals_core::ReplayError::Mismatch { seq })) => {
                Err(ChainBreak { seq, reason: "the event is not a valid step of the state machine" })
            }
            _ => Err(mismatch),
        }
    });
    match verdict {
        Ok(checked) => AuditReport { appeal_id, number, events_checked: checked, broken: None },
        Err(broken) => AuditReport { appeal_id, number, events_checked: events.len(), broken: Some(broken) },
    }
}
