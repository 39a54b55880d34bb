//! Mapping between rows and `appeals-core` values. Rows are parsed back through
//! the domain's own constructors, so a row that breaks an invariant surfaces as
//! [`StorageError::Corrupt`] instead of leaking into the API.

use appeals_core::text::{AppealText, Category, Contact, ExternalId, PersonName, ResponseText, Tag, fold_for_search};
use appeals_core::{Appeal, AppealId, AuditKey, ChainAnchor, MunicipalityId, RecordedEvent, Resolution, Role, UserId};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::prelude::Uuid;

use crate::dashboard::TallyFacts;
use crate::directory::{Municipality, User};
use crate::entity::{app_user, appeal, appeal_event, municipality};
use crate::error::StorageError;

fn corrupt(what: &str, id: impl std::fmt::Display, error: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("{what} {id}: {error}"))
}

fn parse<T: std::str::FromStr>(id: Uuid, value: &str) -> Result<T, StorageError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|error| corrupt("appeal", id, error))
}

fn optional<T>(
    id: Uuid,
    value: Option<&str>,
    parse: impl Fn(&str) -> Result<T, appeals_core::InvalidInput>,
) -> Result<Option<T>, StorageError> {
    value.map(|raw| parse(raw).map_err(|error| corrupt("appeal", id, error))).transpose()
}

impl TryFrom<appeal::Model> for Appeal {
    type Error = StorageError;

    fn try_from(row: appeal::Model) -> Result<Self, Self::Error> {
        let id = row.id;
        let tags: Vec<String> = serde_json::from_str(&row.tags).map_err(|error| corrupt("appeal", id, error))?;
        let tags = tags
            .iter()
            .map(|tag| Tag::parse(tag))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt("appeal", id, e))?;
        let resolution = match (row.outcome.as_deref(), row.response, row.resolved_by, row.resolved_at) {
            (Some(outcome), Some(response), Some(resolved_by), Some(resolved_at)) => Some(Resolution {
                outcome: parse(id, outcome)?,
                response: ResponseText::parse(&response).map_err(|error| corrupt("appeal", id, error))?,
                duplicate_of: row.duplicate_of.map(AppealId::from_uuid),
                resolved_by: UserId::from_uuid(resolved_by),
                resolved_at,
            }),
            (None, None, None, None) => None,
            _ => return Err(corrupt("appeal", id, "a partial resolution")),
        };
        Ok(Appeal {
            id: AppealId::from_uuid(id),
            number: row.number,
            municipality_id: MunicipalityId::from_uuid(row.municipality_id),
            channel: parse(id, &row.channel)?,
            external_id: optional(id, row.external_id.as_deref(), ExternalId::parse)?,
            author_name: optional(id, row.author_name.as_deref(), PersonName::parse)?,
            author_contact: optional(id, row.author_contact.as_deref(), Contact::parse)?,
            text: AppealText::parse(&row.text).map_err(|error| corrupt("appeal", id, error))?,
            status: parse(id, &row.status)?,
            priority: parse(id, &row.priority)?,
            category: optional(id, row.category.as_deref(), Category::parse)?,
            tags,
            received_at: row.received_at,
            seen_at: row.seen_at,
            seen_due_at: row.seen_due_at,
            due_at: row.due_at,
            deadline_extended: row.deadline_extended,
            version: row.version,
            resolution,
        })
    }
}

/// The appeal's row, anchored at the end of its chain by `last_event`, the
/// anchor sealed when there is a `key`.
pub(crate) fn appeal_row(appeal: &Appeal, last_event: &RecordedEvent, key: Option<&AuditKey>) -> appeal::ActiveModel {
    appeal::ActiveModel {
        text: Set(appeal.text.as_str().to_owned()),
        text_folded: Set(fold_for_search(appeal.text.as_str())),
        search_terms: Set(Some(crate::search::stored_terms(appeal.text.as_str(), appeal.municipality_id))),
        ..changed_appeal_row(appeal, last_event, key)
    }
}

/// The row of an appeal a command changed, for its UPDATE: [`appeal_row`]
/// without the text and what is derived from it, which no command changes, so
/// that no transition analyses the text again or touches the search indexes.
pub(crate) fn changed_appeal_row(
    appeal: &Appeal,
    last_event: &RecordedEvent,
    key: Option<&AuditKey>,
) -> appeal::ActiveModel {
    let resolution = appeal.resolution.as_ref();
    let tags: Vec<&str> = appeal.tags.iter().map(Tag::as_str).collect();
    let facts = TallyFacts::of(appeal);
    appeal::ActiveModel {
        id: Set(appeal.id.as_uuid()),
        number: Set(appeal.number.clone()),
        municipality_id: Set(appeal.municipality_id.as_uuid()),
        channel: Set(appeal.channel.as_str().to_owned()),
        external_id: Set(appeal.external_id.as_ref().map(|value| value.as_str().to_owned())),
        author_name: Set(appeal.author_name.as_ref().map(|value| value.as_str().to_owned())),
        author_contact: Set(appeal.author_contact.as_ref().map(|value| value.as_str().to_owned())),
        text: NotSet,
        text_folded: NotSet,
        search_terms: NotSet,
        status: Set(appeal.status.as_str().to_owned()),
        priority: Set(appeal.priority.as_str().to_owned()),
        category: Set(appeal.category.as_ref().map(|value| value.as_str().to_owned())),
        tags: Set(serde_json::to_string(&tags).unwrap_or_else(|_| "[]".to_owned())),
        received_at: Set(appeal.received_at),
        seen_at: Set(appeal.seen_at),
        resolved_at: Set(appeal.resolved_at()),
        seen_due_at: Set(appeal.seen_due_at),
        due_at: Set(appeal.due_at),
        deadline_extended: Set(appeal.deadline_extended),
        version: Set(appeal.version),
        outcome: Set(resolution.map(|r| r.outcome.as_str().to_owned())),
        response: Set(resolution.map(|r| r.response.as_str().to_owned())),
        duplicate_of: Set(resolution.and_then(|r| r.duplicate_of).map(|id| id.as_uuid())),
        resolved_by: Set(resolution.map(|r| r.resolved_by.as_uuid())),
        last_event_seq: Set(last_event.seq),
        last_event_hash: Set(last_event.hash.clone()),
        last_event_seal: Set(
            key.map(|key| key.seal_anchor(appeal.id, ChainAnchor { seq: last_event.seq, hash: &last_event.hash }))
        ),
        micros_to_seen: Set(facts.micros_to_seen()),
        micros_to_resolution: Set(facts.micros_to_resolution()),
    }
}

pub(crate) fn event_row(stored: &StoredEvent) -> appeal_event::ActiveModel {
    let event = &stored.event;
    appeal_event::ActiveModel {
        id: Set(stored.id),
        appeal_id: Set(event.appeal_id.as_uuid()),
        seq: Set(event.seq),
        kind: Set(event.kind.as_str().to_owned()),
        at: Set(event.at),
        actor_id: Set(event.actor_id.map(|id| id.as_uuid())),
        from_status: Set(event.from_status.map(|status| status.as_str().to_owned())),
        to_status: Set(event.to_status.map(|status| status.as_str().to_owned())),
        note: Set(event.note.clone()),
        data: Set(event.data.clone()),
        hash: Set(event.hash.clone()),
        seal: Set(stored.seal.clone()),
        // Taken as the event is inserted (see `events::insert`).
        position: NotSet,
    }
}

/// An event as stored: the recorded event, its row id, and its seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: Uuid,
    pub event: RecordedEvent,
    /// The keyed seal (hex HMAC-SHA256), if the event was written or later sealed
    /// with an audit key. Not part of the public history: it proves nothing to
    /// anyone without the key.
    pub seal: Option<String>,
    /// Its place in the order events were committed in, over the whole database
    /// (1, 2, 3…): what a subscription's cursor names. 0 only for an event not
    /// stored yet; storing it assigns its position (see `events`).
    pub position: i64,
}

impl StoredEvent {
    /// A recorded event about to be stored, with a new row id, sealed when there
    /// is a `key`.
    pub(crate) fn new(event: RecordedEvent, key: Option<&AuditKey>) -> Self {
        let seal = key.map(|key| key.seal_event(&event));
        StoredEvent { id: Uuid::now_v7(), event, seal, position: 0 }
    }
}

impl TryFrom<appeal_event::Model> for StoredEvent {
    type Error = StorageError;

    fn try_from(row: appeal_event::Model) -> Result<Self, Self::Error> {
        let id = row.id;
        let status = |value: Option<String>| {
            value.map(|raw| raw.parse().map_err(|error| corrupt("event", id, error))).transpose()
        };
        Ok(StoredEvent {
            id,
            event: RecordedEvent {
                appeal_id: AppealId::from_uuid(row.appeal_id),
                seq: row.seq,
                kind: row.kind.parse().map_err(|error| corrupt("event", id, error))?,
                at: row.at,
                actor_id: row.actor_id.map(UserId::from_uuid),
                from_status: status(row.from_status)?,
                to_status: status(row.to_status)?,
                note: row.note,
                data: row.data,
                hash: row.hash,
            },
            seal: row.seal,
            position: row.position,
        })
    }
}

impl From<municipality::Model> for Municipality {
    fn from(row: municipality::Model) -> Self {
        Municipality { id: MunicipalityId::from_uuid(row.id), code: row.code, name: row.name }
    }
}

impl TryFrom<app_user::Model> for User {
    type Error = StorageError;

    fn try_from(row: app_user::Model) -> Result<Self, Self::Error> {
        Ok(User {
            id: UserId::from_uuid(row.id),
            name: row.name,
            role: row.role.parse::<Role>().map_err(|error| corrupt("user", row.id, error))?,
            municipality_id: row.municipality_id.map(MunicipalityId::from_uuid),
            revoked_at: row.revoked_at,
        })
    }
}
