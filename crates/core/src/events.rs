//! The history of an appeal: every accepted command is an event, numbered
//! `seq` = 1, 2, 3… per appeal, and chained by SHA-256 to the event before it.
//!
//! An event's hash covers the previous event's hash and a canonical encoding of
//! everything the event says (appeal, `seq`, kind, time in microseconds, actor,
//! statuses, note and payload), so changing a stored event, reordering events or
//! deleting one breaks the chain at that point. The payload is stored as the exact
//! JSON text that was hashed, so verification never depends on how a database
//! round-trips JSON. Deleting events from the end is caught by the anchor: the
//! appeal row keeps its last `seq` and hash (see [`verify_chain`]).
//!
//! The chain is unkeyed: it catches accidents and clumsy edits, not someone who
//! rewrites every later hash and the anchor. [`verify_sealed_chain`] also checks
//! the keyed seals of [`crate::seal`], which catch that too.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::appeal::{Appeal, Channel, Outcome, Priority, Status};
use crate::deadline::ExtensionDays;
use crate::id::{AppealId, MunicipalityId, UserId};
use crate::seal::AuditKey;
use crate::text::{AppealText, Category, Contact, ExternalId, NoteText, PersonName, Reason, ResponseText, Tag};
use crate::vocabulary;

vocabulary!(
    /// What kind of thing happened to an appeal.
    EventKind {
        Received => "RECEIVED",
        Triaged => "TRIAGED",
        NoteAdded => "NOTE_ADDED",
        Seen => "SEEN",
        DeadlineExtended => "DEADLINE_EXTENDED",
        Resolved => "RESOLVED",
        Reopened => "REOPENED",
        /// The resident wrote again, through the channel, while the appeal was open.
        ResidentMessage => "RESIDENT_MESSAGE",
    }
);

/// What an event records, in enough detail to replay the appeal from its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum EventData {
    Received {
        number: String,
        municipality_id: MunicipalityId,
        channel: Channel,
        external_id: Option<ExternalId>,
        author_name: Option<PersonName>,
        author_contact: Option<Contact>,
        text: AppealText,
        seen_due_at: DateTime<Utc>,
        due_at: DateTime<Utc>,
    },
    /// The triage fields as they stand after the command.
    Triaged {
        priority: Priority,
        category: Option<Category>,
        tags: Vec<Tag>,
    },
    NoteAdded {
        text: NoteText,
    },
    Seen,
    /// `due_at` is the new answer deadline.
    DeadlineExtended {
        days: ExtensionDays,
        reason: Reason,
        due_at: DateTime<Utc>,
    },
    Resolved {
        outcome: Outcome,
        response: ResponseText,
        duplicate_of: Option<AppealId>,
    },
    Reopened {
        reason: Reason,
    },
    /// A follow-up from the resident, threaded onto the open appeal; the
    /// platform's id of the message keeps a retry from recording it twice.
    ResidentMessage {
        text: AppealText,
        external_id: ExternalId,
    },
}

impl EventData {
    pub(crate) fn received(appeal: &Appeal) -> Self {
        EventData::Received {
            number: appeal.number.clone(),
            municipality_id: appeal.municipality_id,
            channel: appeal.channel,
            external_id: appeal.external_id.clone(),
            author_name: appeal.author_name.clone(),
            author_contact: appeal.author_contact.clone(),
            text: appeal.text.clone(),
            seen_due_at: appeal.seen_due_at,
            due_at: appeal.due_at,
        }
    }

    pub fn kind(&self) -> EventKind {
        match self {
            EventData::Received { .. } => EventKind::Received,
            EventData::Triaged { .. } => EventKind::Triaged,
            EventData::NoteAdded { .. } => EventKind::NoteAdded,
            EventData::Seen => EventKind::Seen,
            EventData::DeadlineExtended { .. } => EventKind::DeadlineExtended,
            EventData::Resolved { .. } => EventKind::Resolved,
            EventData::Reopened { .. } => EventKind::Reopened,
            EventData::ResidentMessage { .. } => EventKind::ResidentMessage,
        }
    }

    /// The canonical JSON text of the payload, as hashed and stored.
    pub fn to_canonical_json(&self) -> String {
        // Serializing these plain enums, strings, ids and timestamps cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// An event produced by a command, not yet placed in its appeal's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub at: DateTime<Utc>,
    /// Who acted; `None` for the system.
    pub actor_id: Option<UserId>,
    /// Set only on events that change the status.
    pub from_status: Option<Status>,
    pub to_status: Option<Status>,
    /// The human text of the event: a note, a reason or a response.
    pub note: Option<String>,
    pub data: EventData,
}

impl NewEvent {
    pub fn kind(&self) -> EventKind {
        self.data.kind()
    }

    /// Places the event at `seq` in the chain of `appeal_id`, after the event
    /// whose hash is `previous_hash` (empty for the first event).
    pub fn record(&self, appeal_id: AppealId, seq: i32, previous_hash: &str) -> RecordedEvent {
        let mut event = RecordedEvent {
            appeal_id,
            seq,
            kind: self.kind(),
            at: self.at,
            actor_id: self.actor_id,
            from_status: self.from_status,
            to_status: self.to_status,
            note: self.note.clone(),
            data: self.data.to_canonical_json(),
            hash: String::new(),
        };
        event.hash = event.expected_hash(previous_hash);
        event
    }
}

/// An event as stored: its place in the chain, its payload as JSON text, its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub appeal_id: AppealId,
    pub seq: i32,
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    pub actor_id: Option<UserId>,
    pub from_status: Option<Status>,
    pub to_status: Option<Status>,
    pub note: Option<String>,
    /// The payload's canonical JSON text, exactly as hashed.
    pub data: String,
    /// Lowercase hex SHA-256 chaining this event to the previous one.
    pub hash: String,
}

impl RecordedEvent {
    /// The hash this event must carry if `previous_hash` is the hash before it.
    pub fn expected_hash(&self, previous_hash: &str) -> String {
        fn optional(value: Option<impl ToString>) -> String {
            value.map_or_else(|| "-".to_owned(), |v| v.to_string())
        }
        let mut hasher = Sha256::new();
        // Fixed-form fields are separated by newlines (none can contain one); the
        // free texts are length-prefixed so that no choice of text can imitate
        // another event's encoding.
        let head = format!(
            "appeals-event-v1\n{previous_hash}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
            self.appeal_id,
            self.seq,
            self.kind,
            self.at.timestamp_micros(),
            optional(self.actor_id),
            optional(self.from_status),
            optional(self.to_status),
        );
        hasher.update(head.as_bytes());
        match &self.note {
            Some(note) => hasher.update(format!("{}:{note}\n", note.len()).as_bytes()),
            None => hasher.update(b"~\n"),
        }
        hasher.update(format!("{}:{}", self.data.len(), self.data).as_bytes());
        hex::encode(hasher.finalize())
    }

    /// The payload, parsed.
    pub fn payload(&self) -> Result<EventData, serde_json::Error> {
        serde_json::from_str(&self.data)
    }
}

/// Where and why a hash chain fails to verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the history breaks at event {seq}: {reason}")]
pub struct ChainBreak {
    /// The first position in the chain (1-based) that does not verify.
    pub seq: i32,
    pub reason: &'static str,
}

/// The last `seq` and hash that the appeal itself says its history ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainAnchor<'a> {
    pub seq: i32,
    pub hash: &'a str,
}

/// The seals a keyed verification checks besides the chain.
#[derive(Debug, Clone, Copy)]
pub struct Seals<'a> {
    pub key: &'a AuditKey,
    /// The stored seal of each event, in the order of the events (`None`: the
    /// event carries no seal).
    pub events: &'a [Option<&'a str>],
    /// The stored seal of the anchor.
    pub anchor: Option<&'a str>,
}

/// Why an event's seal does not verify.
pub const EVENT_SEAL_BROKEN: &str = "the event's seal does not verify (edited or re-chained without the audit key)";
/// Why an event without a seal fails a keyed verification.
pub const EVENT_SEAL_MISSING: &str =
    "the event carries no seal (written without the audit key, or its seal was removed)";
/// Why an anchor's seal does not verify, or is missing.
pub const ANCHOR_SEAL_BROKEN: &str = "the seal on where the history ends does not verify \
     (the history was cut short or its anchor rewritten without the audit key)";

/// Verifies the chain of one appeal's events, given in stored order, and that it
/// ends where `anchor` says. Returns the number of events checked.
pub fn verify_chain(
    appeal_id: AppealId,
    events: &[RecordedEvent],
    anchor: ChainAnchor<'_>,
) -> Result<usize, ChainBreak> {
    check_chain(appeal_id, events, anchor, None)
}

/// As [`verify_chain`], and every event and the anchor must carry a seal that
/// verifies under `seals.key`. The break reported is the first position where
/// either the chain or a seal fails.
pub fn verify_sealed_chain(
    appeal_id: AppealId,
    events: &[RecordedEvent],
    anchor: ChainAnchor<'_>,
    seals: Seals<'_>,
) -> Result<usize, ChainBreak> {
    check_chain(appeal_id, events, anchor, Some(seals))
}

fn check_chain(
    appeal_id: AppealId,
    events: &[RecordedEvent],
    anchor: ChainAnchor<'_>,
    seals: Option<Seals<'_>>,
) -> Result<usize, ChainBreak> {
    let mut previous_hash = "";
    for (index, event) in events.iter().enumerate() {
        let position = i32::try_from(index + 1).unwrap_or(i32::MAX);
        if event.seq != position {
            return Err(ChainBreak { seq: position, reason: "an event is missing or out of order" });
        }
        if event.appeal_id != appeal_id {
            return Err(ChainBreak { seq: position, reason: "the event belongs to another appeal" });
        }
        if event.hash != event.expected_hash(previous_hash) {
            return Err(ChainBreak { seq: position, reason: "the event does not match its hash" });
        }
        if let Some(seals) = seals {
            match seals.events.get(index).copied().flatten() {
                None => return Err(ChainBreak { seq: position, reason: EVENT_SEAL_MISSING }),
                Some(seal) if !seals.key.event_seal_verifies(event, seal) => {
                    return Err(ChainBreak { seq: position, reason: EVENT_SEAL_BROKEN });
                }
                Some(_) => {}
            }
        }
        previous_hash = &event.hash;
    }
    let checked = i32::try_from(events.len()).unwrap_or(i32::MAX);
    if checked < anchor.seq {
        return Err(ChainBreak { seq: checked + 1, reason: "the history ends before the appeal says it does" });
    }
    if checked > anchor.seq {
        return Err(ChainBreak {
            seq: anchor.seq + 1,
            reason: "the history goes on past where the appeal says it ends",
        });
    }
    if previous_hash != anchor.hash {
        return Err(ChainBreak {
            seq: checked.max(1),
            reason: "the history does not end where the appeal says it does",
        });
    }
    if let Some(seals) = seals {
        let sealed = seals.anchor.is_some_and(|seal| seals.key.anchor_seal_verifies(appeal_id, anchor, seal));
        if !sealed {
            return Err(ChainBreak { seq: checked.max(1), reason: ANCHOR_SEAL_BROKEN });
        }
    }
    Ok(events.len())
}
