//! Replaying a history: the appeal rebuilt from its recorded events by running
//! each one's command through the state machine again, and checking that it
//! produces exactly the event that was recorded.
//!
//! It sits above both [`crate::events`] (what was recorded) and
//! [`crate::transition`] (what a command does), so that those two depend one
//! way only: the state machine produces events; events know nothing of it.

use thiserror::Error;

use crate::appeal::{Appeal, Submission};
use crate::events::{EventData, RecordedEvent};
use crate::transition::{Applied, Command, CommandError};

/// Why a history could not be replayed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReplayError {
    #[error("the history is empty")]
    Empty,
    #[error("event {seq} has a payload that cannot be read: {message}")]
    Unreadable { seq: i32, message: String },
    #[error("event {seq} should be the receipt and only the first event is")]
    MisplacedReceipt { seq: i32 },
    #[error("event {seq} was refused on replay: {error}")]
    Refused { seq: i32, error: CommandError },
    #[error("event {seq} does not record what its command does")]
    Mismatch { seq: i32 },
}

/// Rebuilds an appeal from its history by re-running every command through the
/// state machine, checking that each produces exactly the event that was recorded.
pub fn replay(events: &[RecordedEvent]) -> Result<Appeal, ReplayError> {
    let (first, rest) = events.split_first().ok_or(ReplayError::Empty)?;
    let appeal = match read_payload(first)? {
        EventData::Received {
            number,
            municipality_id,
            channel,
            external_id,
            author_name,
            author_contact,
            text,
            seen_due_at,
            due_at,
        } => Appeal {
            seen_due_at,
            due_at,
            ..Appeal::receive(
                first.appeal_id,
                number,
                municipality_id,
                Submission { channel, external_id, author_name, author_contact, text },
                first.actor_id,
                first.at,
                &crate::deadline::DeadlinePolicy::default(),
            )
            .appeal
        },
        _ => return Err(ReplayError::MisplacedReceipt { seq: first.seq }),
    };
    rest.iter().try_fold(appeal, |appeal, event| {
        let payload = read_payload(event)?;
        let replayed = match payload.clone() {
            EventData::Received { .. } => return Err(ReplayError::MisplacedReceipt { seq: event.seq }),
            // Recorded by the system, never by an official's command.
            EventData::ResidentMessage { .. } if event.actor_id.is_some() => {
                return Err(ReplayError::Mismatch { seq: event.seq });
            }
            EventData::ResidentMessage { text, external_id } => {
                appeal.record_resident_message(text, external_id, event.at)
            }
            data => {
                let command = command_of(data).ok_or(ReplayError::Mismatch { seq: event.seq })?;
                let actor = event.actor_id.ok_or(ReplayError::Mismatch { seq: event.seq })?;
                appeal.apply(&command, actor, event.at, None)
            }
        };
        let Applied { appeal: next, event: produced } =
            replayed.map_err(|error| ReplayError::Refused { seq: event.seq, error })?;
        // Payloads and notes are compared as the domain reads them, not byte for
        // byte: a text stored before texts were NFC-normalised reads back
        // normalised, as the command replaying it does. The hash still covers
        // the stored bytes.
        let stored_note = event.note.as_deref().map(crate::text::normalize);
        let same = produced.data == payload
            && produced.kind() == event.kind
            && produced.from_status == event.from_status
            && produced.to_status == event.to_status
            && produced.note == stored_note;
        if same { Ok(next) } else { Err(ReplayError::Mismatch { seq: event.seq }) }
    })
}

/// The command that produced an event recorded by an official; `None` for the
/// events no command produces.
fn command_of(data: EventData) -> Option<Command> {
    Some(match data {
        EventData::Triaged { priority, category, tags } => {
            Command::Triage { priority: Some(priority), category, tags: Some(tags) }
        }
        EventData::NoteAdded { text } => Command::AddNote { text },
        EventData::Seen => Command::MarkSeen,
        EventData::DeadlineExtended { days, reason, .. } => Command::ExtendDeadline { days, reason },
        EventData::Resolved { outcome, response, duplicate_of } => Command::Resolve { outcome, response, duplicate_of },
        EventData::Reopened { reason } => Command::Reopen { reason },
        EventData::Received { .. } | EventData::ResidentMessage { .. } => return None,
    })
}

fn read_payload(event: &RecordedEvent) -> Result<EventData, ReplayError> {
    event.payload().map_err(|error| ReplayError::Unreadable { seq: event.seq, message: error.to_string() })
}
