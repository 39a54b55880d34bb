//! Writing appeals: idempotent intake with gap-free registration numbers, and
//! commands applied in one transaction each. These are the only writers of
//! `appeal` and `appeal_event`, and they keep the dashboard's tallies in step.

use appeals_core::appeal::registration_number;
use appeals_core::channels::ReplyKind;
use appeals_core::text::MunicipalityCode;
use appeals_core::{
    AccessDenied, Actor, Appeal, AppealId, Applied, AuditKey, ChainAnchor, Command, InvalidInput, MunicipalityId,
    Operation, Scope, Submission, UserId, authorize,
};
use chrono::{DateTime, Datelike, Utc};
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Alias, CommonTableExpression, Expr, ExprTrait, OnConflict, Query, WithClause};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
    TryInsert,
};

use crate::Store;
use crate::dashboard::{self, Contribution, TallyFacts};
use crate::database::begin_write;
use crate::directory::{Municipality, inserted};
use crate::entity::{appeal, appeal_event, registration_counter};
use crate::error::{Result, StorageError};
use crate::events;
use crate::records::{StoredEvent, appeal_row, changed_appeal_row};

/// The outcome of a submission: the appeal, and whether this call created it
/// (`false` when the same channel message had been submitted to the same
/// municipality before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub appeal: Appeal,
    pub created: bool,
    /// The `RECEIVED` event, when this call created the appeal.
    pub event: Option<StoredEvent>,
}

/// An accepted command: the appeal as it now stands and the event recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub appeal: Appeal,
    pub event: StoredEvent,
}

impl Store {
    /// Registers an appeal to the municipality `code`, or returns the one already
    /// registered there for the same (`channel`, `externalId`).
    ///
    /// Idempotency is per municipality: the same channel message id submitted to
    /// another municipality is that municipality's own appeal (channel ids are per
    /// chat or bot), so nothing a submitter sees depends on appeals outside the
    /// municipality it submits to. However many identical submissions arrive at
    /// once, exactly one appeal is created: the database's unique index on
    /// (`municipality_id`, `channel`, `external_id`) decides, and every loser reads
    /// the winner's appeal back. Nothing is looked up before the write, as a new
    /// message is the common case: a retry learns that it is one from the
    /// conflict, and costs a rolled-back transaction and that read.
    pub async fn submit(&self, actor: &Actor, code: &MunicipalityCode, submission: Submission) -> Result<Submitted> {
        actor.scope(Operation::SubmitAppeal)?;
        let municipality = self.known_municipality(code).await?;
        authorize(actor, Operation::SubmitAppeal, municipality.id)?;

        let txn = begin_write(self.db()).await?;
        let Some((appeal, event)) =
            self.register(&txn, &municipality, submission.clone(), Some(actor.user_id), self.now()).await?
        else {
            // The same message is registered already (a retry), or another
            // submission of it committed first. Rolling back gives the
            // registration number back, so numbers keep no gaps.
            txn.rollback().await?;
            let existing = self.find_by_external_id(municipality.id, &submission).await?.ok_or_else(|| {
                StorageError::Corrupt("a conflicting submission vanished after its commit".to_owned())
            })?;
            return Ok(Submitted { appeal: existing, created: false, event: None });
        };
        txn.commit().await?;
        self.events_committed();
        Ok(Submitted { appeal, created: true, event: Some(event) })
    }

    /// Registers `submission` to `municipality` inside `txn`: the next number of
    /// its year, the appeal's row, its first event and the tallies. `None` when
    /// the same channel message is registered there already; the caller then
    /// rolls back, which gives the number back.
    ///
    /// The number is a statement of its own, as the appeal and its event (whose
    /// hash covers the appeal) are built from it. On PostgreSQL the rest is one
    /// statement ([`insert_registration_at_once`]); SQLite, which allows no writes
    /// in a `WITH`, takes one statement for each.
    pub(crate) async fn register(
        &self,
        txn: &DatabaseTransaction,
        municipality: &Municipality,
        submission: Submission,
        submitted_by: Option<UserId>,
        received_at: DateTime<Utc>,
    ) -> Result<Option<(Appeal, StoredEvent)>> {
        let sequence = next_registration_number(txn, municipality.id.as_uuid(), received_at.year()).await?;
        let Applied { appeal, event } = Appeal::receive(
            AppealId::generate(),
            registration_number(&municipality.code, received_at.year(), sequence),
            municipality.id,
            submission,
            submitted_by,
            received_at,
            self.policy(),
        );
        let mut event = StoredEvent::new(event.record(appeal.id, 1, ""), self.audit_key());
        let row = appeal_row(&appeal, &event.event, self.audit_key());
        let contribution = Contribution::of(&TallyFacts::of(&appeal));
        let tallies = (txn.get_database_backend() == DbBackend::Postgres)
            .then(|| dashboard::record_when(APPEAL_INSERTED, appeal.municipality_id, &contribution))
            .flatten();
        let inserted = match tallies {
            Some(tallies) => {
                let (inserted, tallied) = insert_registration_at_once(txn, row, &mut event, tallies).await?;
                if inserted && !tallied {
                    dashboard::record_in_new_row(txn, appeal.municipality_id, &contribution).await?;
                }
                inserted
            }
            _ => insert_registration_one_by_one(txn, row, &mut event, appeal.municipality_id, &contribution).await?,
        };
        Ok(inserted.then_some((appeal, event)))
    }

    /// Applies `command` to the appeal `id` on behalf of `actor`, who last saw
    /// `expected_version` (`None` for notes), in one transaction: lock and load the
    /// appeal, check access, ask the state machine, write the appeal, append the
    /// chained event. A refused command changes nothing.
    pub async fn execute_command(
        &self,
        actor: &Actor,
        id: AppealId,
        command: &Command,
        expected_version: Option<i32>,
    ) -> Result<Changed> {
        let operation = command.operation();
        // A role that may never do this learns so before anything is looked up.
        let scope = actor.scope(operation)?;
        let txn = begin_write(self.db()).await?;
        // SELECT … FOR UPDATE on PostgreSQL: concurrent commands on one appeal queue
        // here, and each one sees the version its predecessor committed. On SQLite
        // the clause is dropped; the IMMEDIATE transaction already holds the only
        // write lock.
        let row = appeal::Entity::find_by_id(id.as_uuid())
            .lock_exclusive()
            .one(&txn)
            .await?
            .ok_or(StorageError::Access(AccessDenied::NotFound))?;
        let (last_seq, last_hash) = (row.last_event_seq, row.last_event_hash.clone());
        let anchor_seal = row.last_event_seal.clone();
        let current = Appeal::try_from(row)?;
        authorize(actor, operation, current.municipality_id)?;
        if let Some(key) = self.audit_key() {
            let anchor = ChainAnchor { seq: last_seq, hash: &last_hash };
            check_anchor_before_append(&txn, key, id, anchor, anchor_seal.as_deref()).await?;
        }
        if let Command::Resolve { duplicate_of: Some(original), .. } = command {
            check_original_exists(&txn, scope, *original).await?;
        }
        let Applied { appeal, event } = current.apply(command, actor.user_id, self.now(), expected_version)?;
        let mut event = StoredEvent::new(event.record(appeal.id, last_seq + 1, &last_hash), self.audit_key());
        let updated = appeal::Entity::update_many()
            .set(changed_appeal_row(&appeal, &event.event, self.audit_key()))
            .filter(appeal::Column::Id.eq(appeal.id.as_uuid()))
            .filter(appeal::Column::Version.eq(current.version))
            .filter(appeal::Column::LastEventSeq.eq(last_seq))
            .exec(&txn)
            .await?;
        if updated.rows_affected != 1 {
            // Unreachable while the row lock holds; kept as a second line of defence.
            return Err(appeals_core::CommandError::VersionConflict {
                expected: expected_version.unwrap_or(current.version),
                current: current.version + 1,
            }
            .into());
        }
        let change = Contribution::change(&TallyFacts::of(&current), &TallyFacts::of(&appeal));
        dashboard::record(&txn, appeal.municipality_id, &change).await?;
        let reply = match command {
            Command::MarkSeen => Some(ReplyKind::SeenNotice),
            Command::Resolve { .. } => Some(ReplyKind::Answer),
            _ => None,
        };
        let queued = match reply {
            Some(kind) => self.enqueue_reply_for(&txn, &appeal, kind).await?,
            None => false,
        };
        // Last, as it takes the event's position (see `events`).
        events::insert(&txn, &mut event).await?;
        txn.commit().await?;
        self.events_committed();
        if queued {
            self.outbox_signal().notify_one();
        }
        Ok(Changed { appeal, event })
    }

    /// The appeal registered to `municipality_id` for the submission's channel
    /// message, if any; never one of another municipality.
    async fn find_by_external_id(
        &self,
        municipality_id: MunicipalityId,
        submission: &Submission,
    ) -> Result<Option<Appeal>> {
        let Some(external_id) = &submission.external_id else { return Ok(None) };
        let row = appeal::Entity::find()
            .filter(appeal::Column::MunicipalityId.eq(municipality_id.as_uuid()))
            .filter(appeal::Column::Channel.eq(submission.channel.as_str()))
            .filter(appeal::Column::ExternalId.eq(external_id.as_str()))
            .one(self.db())
            .await?;
        row.map(Appeal::try_from).transpose()
    }
}

/// With a key, an event is appended only where the history ends as sealed.
/// Otherwise someone who cut events off the end and rewrote the anchor would
/// have the next command seal the shortened history as if nothing had been cut.
/// An unsealed anchor is accepted only after an unsealed last event (a history
/// written without the key, which verification reports until it is sealed);
/// an unsealed anchor after a sealed event is a seal stripped off.
pub(crate) async fn check_anchor_before_append(
    txn: &DatabaseTransaction,
    key: &AuditKey,
    id: AppealId,
    anchor: ChainAnchor<'_>,
    anchor_seal: Option<&str>,
) -> Result<()> {
    let intact = match anchor_seal {
        Some(seal) => key.anchor_seal_verifies(id, anchor, seal),
        None => {
            let last_seal = appeal_event::Entity::find()
                .select_only()
                .column(appeal_event::Column::Seal)
                .filter(appeal_event::Column::AppealId.eq(id.as_uuid()))
                .filter(appeal_event::Column::Seq.eq(anchor.seq))
                .into_tuple::<Option<String>>()
                .one(txn)
                .await?;
            !matches!(last_seal, Some(Some(_)))
        }
    };
    if intact {
        Ok(())
    } else {
        Err(StorageError::Corrupt(format!(
            "appeal {id}: the seal on where its history ends does not verify, so nothing is appended to it \
             (the history may have been cut short; see `appeals audit verify --appeal {id}`)"
        )))
    }
}

/// `duplicateOf` must name an appeal the actor can see.
async fn check_original_exists(txn: &DatabaseTransaction, scope: Scope, original: AppealId) -> Result<()> {
    let found = appeal::Entity::find_by_id(original.as_uuid())
        .select_only()
        .column(appeal::Column::MunicipalityId)
        .into_tuple::<Uuid>()
        .one(txn)
        .await?;
    match found {
        Some(municipality) if scope.contains(municipality.into()) => Ok(()),
        _ => Err(InvalidInput::new("duplicateOf", format!("no appeal {original}")).into()),
    }
}

/// The part of the combined registration statement that inserts the appeal; it
/// returns the appeal's id, so it is empty when the appeal conflicted.
const APPEAL_INSERTED: &str = "appeal_inserted";

/// The appeal's insert, which does nothing when the same channel message is
/// registered to the municipality already.
fn insert_appeal(row: appeal::ActiveModel) -> TryInsert<appeal::ActiveModel> {
    appeal::Entity::insert(row).on_conflict_do_nothing_on([
        appeal::Column::MunicipalityId,
        appeal::Column::Channel,
        appeal::Column::ExternalId,
    ])
}

/// Inserts a registration's appeal, its first event and its tallies (`tallies`,
/// from [`dashboard::record_when`]) in one PostgreSQL statement of
/// data-modifying common table expressions, each part after the appeal's
/// selected from it, so that a conflicting appeal writes nothing at all.
/// Returns whether the appeal was inserted, and whether its municipality's
/// tally row was updated (it has none yet if not).
async fn insert_registration_at_once(
    txn: &DatabaseTransaction,
    row: appeal::ActiveModel,
    event: &mut StoredEvent,
    tallies: Vec<CommonTableExpression>,
) -> Result<(bool, bool)> {
    let mut appeal = insert_appeal(row).into_query();
    appeal.returning_col(appeal::Column::Id);
    let mut with = WithClause::new();
    with.cte(CommonTableExpression::new().table_name(Alias::new(APPEAL_INSERTED)).query(appeal).to_owned());
    for part in events::insert_parts_for_each_row_of(APPEAL_INSERTED, event) {
        with.cte(part);
    }
    for tally in tallies {
        with.cte(tally);
    }
    let outcome = Query::select()
        .expr(dashboard::has_a_row(APPEAL_INSERTED))
        .expr(dashboard::has_a_row(dashboard::TALLY_UPDATED))
        .expr(events::position_taken())
        .to_owned();
    let row = txn
        .query_one(&with.query(outcome))
        .await?
        .ok_or_else(|| StorageError::Corrupt("the registering statement returned no row".to_owned()))?;
    event.position = row.try_get_by_index::<i64>(2)?;
    Ok((row.try_get_by_index::<bool>(0)?, row.try_get_by_index::<bool>(1)?))
}

/// Inserts a registration's appeal, then, unless it conflicted, its first event
/// and its tallies, one statement each. Returns whether the appeal was inserted.
async fn insert_registration_one_by_one(
    txn: &DatabaseTransaction,
    row: appeal::ActiveModel,
    event: &mut StoredEvent,
    municipality: MunicipalityId,
    contribution: &Contribution,
) -> Result<bool> {
    if inserted(insert_appeal(row).exec_without_returning(txn).await?).unwrap_or(0) == 0 {
        return Ok(false);
    }
    dashboard::record(txn, municipality, contribution).await?;
    events::insert(txn, event).await?;
    Ok(true)
}

/// Takes the next registration number of a municipality's year, inside the
/// registering transaction. The upsert locks the counter row (PostgreSQL) or runs
/// under the write lock (SQLite), so concurrent submissions get distinct, gap-free
/// numbers; a rolled-back submission rolls its increment back too.
async fn next_registration_number(txn: &DatabaseTransaction, municipality_id: Uuid, year: i32) -> Result<i64> {
    use registration_counter::Column;
    let upsert = Query::insert()
        .into_table(registration_counter::Entity)
        .columns([Column::MunicipalityId, Column::Year, Column::LastValue])
        .values_panic([municipality_id.into(), year.into(), 1i64.into()])
        .on_conflict(
            OnConflict::columns([Column::MunicipalityId, Column::Year])
                .value(Column::LastValue, Expr::col((registration_counter::Entity, Column::LastValue)).add(1))
                .to_owned(),
        )
        .returning_col(Column::LastValue)
        .to_owned();
    let row = txn
        .query_one(&upsert)
        .await?
        .ok_or_else(|| StorageError::Corrupt("the registration counter returned no row".to_owned()))?;
    Ok(row.try_get_by_index::<i64>(0)?)
}
