//! The state machine, exactly as the product draws it:
//!
//! ```text
//! RECEIVED --markSeen (the head)--> SEEN --resolveAppeal--> RESOLVED
//!                                    ^                          |
//!                                    +------reopenAppeal--------+
//! ```
//!
//! | command          | allowed from            | leads to   | version |
//! |------------------|-------------------------|------------|---------|
//! | `markSeen`       | `RECEIVED`              | `SEEN`     | +1      |
//! | `resolveAppeal`  | `SEEN`                  | `RESOLVED` | +1      |
//! | `reopenAppeal`   | `RESOLVED`              | `SEEN`     | +1      |
//! | `triageAppeal`   | any                     | unchanged  | +1      |
//! | `extendDeadline` | `RECEIVED`, `SEEN`, once| unchanged  | +1      |
//! | `addNote`        | any                     | unchanged  | same    |
//! | resident writes  | `RECEIVED`, `SEEN`      | unchanged  | same    |
//!
//! Every other pair is refused with [`CommandError::InvalidTransition`] and changes
//! nothing. Receipt itself (`RECEIVED`, version 1) is [`Appeal::receive`]. Who may
//! issue a command is [`crate::access`]'s question, not this module's.

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::appeal::{Appeal, Outcome, Priority, Resolution, Status, Submission};
use crate::deadline::{DeadlinePolicy, ExtensionDays};
use crate::events::{EventData, NewEvent};
use crate::id::{AppealId, MunicipalityId, UserId};
use crate::text::{AppealText, Category, ExternalId, InvalidInput, NoteText, Reason, ResponseText, Tag};

/// A request to change an appeal, already parsed from its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Sets any of priority, category and tags; fields left `None` stay as they are.
    Triage {
        priority: Option<Priority>,
        category: Option<Category>,
        tags: Option<Vec<Tag>>,
    },
    AddNote {
        text: NoteText,
    },
    MarkSeen,
    ExtendDeadline {
        days: ExtensionDays,
        reason: Reason,
    },
    Resolve {
        outcome: Outcome,
        response: ResponseText,
        duplicate_of: Option<AppealId>,
    },
    Reopen {
        reason: Reason,
    },
}

/// Why a command was refused. Nothing changes when one is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    /// The command is not allowed from the appeal's status. Clients see
    /// `INVALID_TRANSITION`.
    #[error("cannot {command} an appeal that is {status}")]
    InvalidTransition { command: &'static str, status: Status },
    /// The deadline was extended before; the law allows one extension. Clients see
    /// `INVALID_TRANSITION`.
    #[error("the deadline of this appeal was already extended once")]
    AlreadyExtended,
    /// The caller acted on an older version than the current one. Clients see
    /// `VERSION_CONFLICT`.
    #[error("the appeal changed meanwhile: expected version {expected}, current version is {current}")]
    VersionConflict { expected: i32, current: i32 },
    /// The command's input is inconsistent (for instance `DUPLICATE` without the
    /// original). Clients see `VALIDATION`.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
}

/// An accepted command: the appeal as it now stands and the event that records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub appeal: Appeal,
    pub event: NewEvent,
}

impl Command {
    /// The command's name in the public API, as error messages use it.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Triage { .. } => "triage",
            Command::AddNote { .. } => "add a note to",
            Command::MarkSeen => "mark seen",
            Command::ExtendDeadline { .. } => "extend the deadline of",
            Command::Resolve { .. } => "resolve",
            Command::Reopen { .. } => "reopen",
        }
    }

    /// Whether an accepted command of this kind bumps the appeal's version. Notes do
    /// not, so that a colleague's note never makes one's own command stale.
    pub fn changes_version(&self) -> bool {
        !matches!(self, Command::AddNote { .. })
    }
}

impl Appeal {
    /// Registers a new appeal: `RECEIVED`, version 1, with its deadlines fixed by
    /// `policy` from `received_at`.
    pub fn receive(
        id: AppealId,
        number: String,
        municipality_id: MunicipalityId,
        submission: Submission,
        submitted_by: Option<UserId>,
        received_at: DateTime<Utc>,
        policy: &DeadlinePolicy,
    ) -> Applied {
        let appeal = Appeal {
            id,
            number,
            municipality_id,
            channel: submission.channel,
            external_id: submission.external_id,
            author_name: submission.author_name,
            author_contact: submission.author_contact,
            text: submission.text,
            status: Status::Received,
            priority: Priority::default(),
            category: None,
            tags: Vec::new(),
            received_at,
            seen_at: None,
            seen_due_at: policy.seen_due_at(received_at),
            due_at: policy.due_at(received_at),
            deadline_extended: false,
            version: 1,
            resolution: None,
        };
        let event = NewEvent {
            at: received_at,
            actor_id: submitted_by,
            from_status: None,
            to_status: Some(Status::Received),
            note: None,
            data: EventData::received(&appeal),
        };
        Applied { appeal, event }
    }

    /// Applies `command`, issued by `actor` at `at`, when the caller last saw
    /// `expected_version` (`None` for commands that take no version, such as notes).
    /// Returns the changed appeal and its event, or why nothing changes.
    pub fn apply(
        &self,
        command: &Command,
        actor: UserId,
        at: DateTime<Utc>,
        expected_version: Option<i32>,
    ) -> Result<Applied, CommandError> {
        if let Some(expected) = expected_version
            && expected != self.version
        {
            return Err(CommandError::VersionConflict { expected, current: self.version });
        }
        let refuse = || CommandError::InvalidTransition { command: command.name(), status: self.status };
        let mut next = self.clone();
        let mut note = None;
        let data = match command {
            Command::Triage { priority, category, tags } => {
                if let Some(priority) = priority {
                    next.priority = *priority;
                }
                if let Some(category) = category {
                    next.category = Some(category.clone());
                }
                if let Some(tags) = tags {
                    next.tags = tags.clone();
                }
                EventData::Triaged { priority: next.priority, category: next.category.clone(), tags: next.tags.clone() }
            }
            Command::AddNote { text } => {
                note = Some(text.as_str().to_owned());
                EventData::NoteAdded { text: text.clone() }
            }
            Command::MarkSeen => match self.status {
                Status::Received => {
                    next.status = Status::Seen;
                    next.seen_at = Some(at);
                    EventData::Seen
                }
                Status::Seen | Status::Resolved => return Err(refuse()),
            },
            Command::ExtendDeadline { days, reason } => match self.status {
                Status::Received | Status::Seen if self.deadline_extended => return Err(CommandError::AlreadyExtended),
                Status::Received | Status::Seen => {
                    next.deadline_extended = true;
                    next.due_at = self.due_at + days.as_time_delta();
                    note = Some(reason.as_str().to_owned());
                    EventData::DeadlineExtended { days: *days, reason: reason.clone(), due_at: next.due_at }
                }
                Status::Resolved => return Err(refuse()),
            },
            Command::Resolve { outcome, response, duplicate_of } => match self.status {
                Status::Seen => {
                    check_duplicate_of(self.id, *outcome, *duplicate_of)?;
                    next.status = Status::Resolved;
                    next.resolution = Some(Resolution {
                        outcome: *outcome,
                        response: response.clone(),
                        duplicate_of: *duplicate_of,
                        resolved_by: actor,
                        resolved_at: at,
                    });
                    note = Some(response.as_str().to_owned());
                    EventData::Resolved { outcome: *outcome, response: response.clone(), duplicate_of: *duplicate_of }
                }
                Status::Received | Status::Resolved => return Err(refuse()),
            },
            Command::Reopen { reason } => match self.status {
                Status::Resolved => {
                    next.status = Status::Seen;
                    next.resolution = None;
                    note = Some(reason.as_str().to_owned());
                    EventData::Reopened { reason: reason.clone() }
                }
                Status::Received | Status::Seen => return Err(refuse()),
            },
        };
        if command.changes_version() {
            next.version += 1;
        }
        let (from_status, to_status) =
            if next.status != self.status { (Some(self.status), Some(next.status)) } else { (None, None) };
        let event = NewEvent { at, actor_id: Some(actor), from_status, to_status, note, data };
        Ok(Applied { appeal: next, event })
    }
}

impl Appeal {
    /// Records a follow-up the resident sent through the appeal's channel. Only
    /// an open appeal takes one (a message after the resolution starts a new
    /// appeal); like a note it leaves the version alone, so it never makes an
    /// official's command stale. The system records it: there is no actor.
    pub fn record_resident_message(
        &self,
        text: AppealText,
        external_id: ExternalId,
        at: DateTime<Utc>,
    ) -> Result<Applied, CommandError> {
        if self.status == Status::Resolved {
            return Err(CommandError::InvalidTransition {
                command: "add a resident's message to",
                status: self.status,
            });
        }
        let event = NewEvent {
            at,
            actor_id: None,
            from_status: None,
            to_status: None,
            note: Some(text.as_str().to_owned()),
            data: EventData::ResidentMessage { text, external_id },
        };
        Ok(Applied { appeal: self.clone(), event })
    }
}

/// `duplicateOf` names the original exactly when the outcome is `DUPLICATE`, and an
/// appeal cannot duplicate itself.
fn check_duplicate_of(id: AppealId, outcome: Outcome, duplicate_of: Option<AppealId>) -> Result<(), InvalidInput> {
    match (outcome, duplicate_of) {
        (Outcome::Duplicate, None) => {
            Err(InvalidInput::new("duplicateOf", "is required when the outcome is DUPLICATE"))
        }
        (Outcome::Duplicate, Some(original)) if original == id => {
            Err(InvalidInput::new("duplicateOf", "an appeal cannot duplicate itself"))
        }
        (Outcome::Duplicate, Some(_)) => Ok(()),
        (_, Some(_)) => Err(InvalidInput::new("duplicateOf", "is allowed only when the outcome is DUPLICATE")),
        (_, None) => Ok(()),
    }
}
