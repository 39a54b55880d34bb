//! Verifying the tamper-evident history: each appeal's hash chain, its anchor on
//! the appeal row, that replaying the history reproduces the stored appeal, and,
//! when the store has an audit key, the keyed seals on every event and anchor.
//! Also sealing a history written without the key (see
//! [`Store::seal_unsealed_history`] and [`Store::prepare_audit`]).
//!
//! Without a key the chain shows accidental change and clumsy edits only: its
//! hashes are plain SHA-256, which anyone with write access to the database can
//! recompute. With a key, a history edited and re-chained, or cut short with its
//! anchor rewritten, fails at the first event (or the anchor) whose seal does not
//! verify.

use appeals_core::events::{
    ANCHOR_SEAL_BROKEN, ChainAnchor, ChainBreak, EVENT_SEAL_BROKEN, Seals, verify_chain, verify_sealed_chain,
};
use appeals_core::replay::replay;
use appeals_core::{Appeal, AppealId, AuditKey, RecordedEvent};
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::Store;
use crate::database::{begin_read, begin_write};
use crate::entity::{appeal, appeal_event};
use crate::error::{Result, StorageError};
use crate::queries::{histories_on, history_on};
use crate::records::StoredEvent;

/// The verdict on one appeal's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub appeal_id: AppealId,
    pub number: String,
    pub events_checked: usize,
    /// The first break, if the history does not verify.
    pub broken: Option<ChainBreak>,
    /// Whether the seals were checked too (the store has an audit key).
    pub sealed: bool,
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
    /// Whether the seals were checked too (the store has an audit key).
    pub sealed: bool,
}

/// What sealing a history written without the key did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealingReport {
    pub appeals_sealed: u64,
    pub events_sealed: u64,
    /// Appeals left unsealed because their history does not verify as it stands.
    pub refused: u64,
    /// The first few of those, with where each breaks.
    pub first_refused: Vec<AuditReport>,
}

/// How many refused appeals a [`SealingReport`] names.
const REFUSALS_NAMED: usize = 20;

/// How many appeals are sealed per write transaction: short enough that
/// commands on other appeals barely wait.
const SEAL_BATCH: u64 = 200;

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
        let events = history_on(&txn, id).await?;
        txn.commit().await?;
        Ok(Some(audit(row, events, self.audit_key())))
    }

    /// Verifies every appeal, in batches, until the first failure.
    pub async fn verify_all(&self) -> Result<AuditSummary> {
        let mut summary = AuditSummary {
            appeals_checked: 0,
            events_checked: 0,
            first_failure: None,
            sealed: self.audit_key().is_some(),
        };
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
            let mut histories = histories_on(&txn, &ids, None).await?;
            txn.commit().await?;
            for row in rows {
                let events = histories.remove(&AppealId::from_uuid(row.id)).unwrap_or_default();
                let report = audit(row, events, self.audit_key());
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

    /// What `appeals serve` does with its audit key at start-up.
    ///
    /// Without a key it warns that the history is protected against accidental
    /// change only. With one, the store seals from now on, and:
    /// - if no event in the database carries a seal yet (the key is configured for
    ///   the first time), the existing history is sealed now, once, and the count
    ///   logged, so that old appeals are covered from then on;
    /// - if some events are sealed and others not, nothing is sealed
    ///   automatically: those events were written without the key (by a server
    ///   run without it) or had their seals stripped, and sealing them would
    ///   bless whatever was done to them. A warning says so; verification reports
    ///   them, and `appeals audit seal` seals them once someone has looked.
    pub async fn prepare_audit(self, key: Option<AuditKey>) -> Result<Store> {
        let Some(key) = key else {
            tracing::warn!(
                "no audit key is configured (--audit-key-file, APPEALS_AUDIT_KEY_FILE or APPEALS_AUDIT_KEY): \
                 the history is hash-chained but not sealed, which shows accidental change only; \
                 anyone who can write to the database can rewrite it and its hashes undetected"
            );
            return Ok(self);
        };
        let fingerprint = key.fingerprint();
        let store = self.with_audit_key(key);
        let unsealed =
            appeal_event::Entity::find().filter(appeal_event::Column::Seal.is_null()).count(store.db()).await?;
        if unsealed == 0 {
            tracing::info!(key = %fingerprint, "the history is sealed with the audit key");
            return Ok(store);
        }
        let sealed_before = appeal_event::Entity::find()
            .select_only()
            .column(appeal_event::Column::Id)
            .filter(appeal_event::Column::Seal.is_not_null())
            .into_tuple::<Uuid>()
            .one(store.db())
            .await?
            .is_some();
        if sealed_before {
            tracing::warn!(
                key = %fingerprint,
                unsealed_events = unsealed,
                "{unsealed} events carry no seal although the history was sealed before: they were written \
                 without the audit key, or their seals were stripped. They are not sealed automatically; \
                 `appeals audit verify` reports them, and `appeals audit seal` seals them once checked"
            );
            return Ok(store);
        }
        tracing::info!(key = %fingerprint, unsealed_events = unsealed, "sealing the existing history with the audit key, once");
        let report = store.seal_unsealed_history().await?;
        tracing::info!(
            key = %fingerprint,
            appeals = report.appeals_sealed,
            events = report.events_sealed,
            "sealed the existing history: {} events of {} appeals are covered from now on",
            report.events_sealed,
            report.appeals_sealed
        );
        if report.refused > 0 {
            let first = report.first_refused.first().map(describe).unwrap_or_default();
            tracing::warn!(
                refused = report.refused,
                "{} appeals were left unsealed because their history does not verify; the first: {first}",
                report.refused
            );
        }
        Ok(store)
    }

    /// Seals, with the store's key, every event that carries no seal and the
    /// anchor of every appeal holding one, for appeals whose history verifies as
    /// it stands: its chain, its replay, and whatever seals it already carries.
    /// An appeal that does not verify is left as it is and counted as refused.
    ///
    /// Sealing vouches for a history written without the key; it cannot tell
    /// whether that history was edited before. Run it on a database whose history
    /// you trust (the server does so by itself only the first time a key is
    /// configured).
    pub async fn seal_unsealed_history(&self) -> Result<SealingReport> {
        let key = self
            .audit_key()
            .ok_or_else(|| StorageError::Corrupt("sealing the history needs an audit key".to_owned()))?;
        let mut report = SealingReport::default();
        let mut after: Option<Uuid> = None;
        loop {
            let mut pending = appeal_event::Entity::find()
                .select_only()
                .column(appeal_event::Column::AppealId)
                .distinct()
                .filter(appeal_event::Column::Seal.is_null())
                .order_by_asc(appeal_event::Column::AppealId)
                .limit(SEAL_BATCH);
            if let Some(last) = after {
                pending = pending.filter(appeal_event::Column::AppealId.gt(last));
            }
            let ids: Vec<Uuid> = pending.into_tuple().all(self.db()).await?;
            let Some(&last) = ids.last() else { break };
            after = Some(last);
            // Each batch is one write transaction, with its appeals locked
            // (PostgreSQL) or the database's write lock held (SQLite), so that no
            // command appends to a history between its check and its sealing.
            let txn = begin_write(self.db()).await?;
            let rows = appeal::Entity::find()
                .filter(appeal::Column::Id.is_in(ids))
                .order_by_asc(appeal::Column::Id)
                .lock_exclusive()
                .all(&txn)
                .await?;
            let appeal_ids: Vec<AppealId> = rows.iter().map(|row| AppealId::from_uuid(row.id)).collect();
            let mut histories = histories_on(&txn, &appeal_ids, None).await?;
            for row in rows {
                let events = histories.remove(&AppealId::from_uuid(row.id)).unwrap_or_default();
                match seal_appeal(&txn, key, row, events).await? {
                    Ok(events_sealed) => {
                        report.appeals_sealed += 1;
                        report.events_sealed += events_sealed;
                    }
                    Err(refused) => {
                        report.refused += 1;
                        if report.first_refused.len() < REFUSALS_NAMED {
                            report.first_refused.push(refused);
                        }
                    }
                }
            }
            txn.commit().await?;
        }
        Ok(report)
    }
}

/// One line about a refused or broken appeal, for logs.
pub fn describe(report: &AuditReport) -> String {
    match &report.broken {
        Some(broken) => format!("{} ({}) at seq {}: {}", report.number, report.appeal_id, broken.seq, broken.reason),
        None => format!("{} ({})", report.number, report.appeal_id),
    }
}

/// Seals one appeal's unsealed events and anchor, if its history verifies as it
/// stands; returns how many events it sealed, or the report of why not.
async fn seal_appeal(
    txn: &DatabaseTransaction,
    key: &AuditKey,
    row: appeal::Model,
    events: Vec<StoredEvent>,
) -> Result<std::result::Result<u64, AuditReport>> {
    let appeal_id = AppealId::from_uuid(row.id);
    let anchor_seal = row.last_event_seal.clone();
    let (last_seq, last_hash) = (row.last_event_seq, row.last_event_hash.clone());
    let number = row.number.clone();
    let refuse = |seq: i32, reason: &'static str, checked: usize| AuditReport {
        appeal_id,
        number: number.clone(),
        events_checked: checked,
        broken: Some(ChainBreak { seq, reason }),
        sealed: true,
    };
    let unsealed: Vec<(Uuid, String)> = events
        .iter()
        .filter(|stored| stored.seal.is_none())
        .map(|stored| (stored.id, key.seal_event(&stored.event)))
        .collect();
    for stored in &events {
        if let Some(seal) = &stored.seal
            && !key.event_seal_verifies(&stored.event, seal)
        {
            return Ok(Err(refuse(stored.event.seq, EVENT_SEAL_BROKEN, events.len())));
        }
    }
    let anchor = ChainAnchor { seq: last_seq, hash: &last_hash };
    let anchor_intact = match &anchor_seal {
        Some(seal) => key.anchor_seal_verifies(appeal_id, anchor, seal),
        // An unsealed anchor after a sealed last event is a seal stripped off.
        None => events.last().is_none_or(|last| last.seal.is_none()),
    };
    if !anchor_intact {
        return Ok(Err(refuse(last_seq.max(1), ANCHOR_SEAL_BROKEN, events.len())));
    }
    let new_anchor_seal = anchor_seal.is_none().then(|| key.seal_anchor(appeal_id, anchor));
    let report = audit(row, events, None);
    if !report.ok() {
        return Ok(Err(report));
    }
    for (id, seal) in &unsealed {
        appeal_event::Entity::update_many()
            .col_expr(appeal_event::Column::Seal, Expr::value(seal.clone()))
            .filter(appeal_event::Column::Id.eq(*id))
            .filter(appeal_event::Column::Seal.is_null())
            .exec(txn)
            .await?;
    }
    if let Some(seal) = new_anchor_seal {
        appeal::Entity::update_many()
            .col_expr(appeal::Column::LastEventSeal, Expr::value(seal))
            .filter(appeal::Column::Id.eq(appeal_id.as_uuid()))
            .filter(appeal::Column::LastEventSeq.eq(last_seq))
            .exec(txn)
            .await?;
    }
    Ok(Ok(unsealed.len() as u64))
}

/// The verdict on one appeal: its chain and anchor (with their seals, given a
/// key), then the replay of its history against the row.
fn audit(row: appeal::Model, stored: Vec<StoredEvent>, key: Option<&AuditKey>) -> AuditReport {
    let appeal_id = AppealId::from_uuid(row.id);
    let number = row.number.clone();
    let anchor_hash = row.last_event_hash.clone();
    let anchor_seal = row.last_event_seal.clone();
    let anchor = ChainAnchor { seq: row.last_event_seq, hash: &anchor_hash };
    let (events, seals): (Vec<RecordedEvent>, Vec<Option<String>>) =
        stored.into_iter().map(|stored| (stored.event, stored.seal)).unzip();
    let chain = match key {
        Some(key) => {
            let seals: Vec<Option<&str>> = seals.iter().map(Option::as_deref).collect();
            let seals = Seals { key, events: &seals, anchor: anchor_seal.as_deref() };
            verify_sealed_chain(appeal_id, &events, anchor, seals)
        }
        None => verify_chain(appeal_id, &events, anchor),
    };
    let verdict = chain.and_then(|checked| {
        let last_seq = i32::try_from(checked).unwrap_or(i32::MAX);
        let mismatch = ChainBreak { seq: last_seq, reason: "the appeal does not match the replay of its history" };
        let stored: Result<Appeal, StorageError> = Appeal::try_from(row);
        match (stored, replay(&events)) {
            (Ok(stored), Ok(replayed)) if stored == replayed => Ok(checked),
            (_, Err(appeals_core::ReplayError::Refused { seq, .. } | appeals_core::ReplayError::Mismatch { seq })) => {
                Err(ChainBreak { seq, reason: "the event is not a valid step of the state machine" })
            }
            _ => Err(mismatch),
        }
    });
    let sealed = key.is_some();
    match verdict {
        Ok(checked) => AuditReport { appeal_id, number, events_checked: checked, broken: None, sealed },
        Err(broken) => AuditReport { appeal_id, number, events_checked: events.len(), broken: Some(broken), sealed },
    }
}
