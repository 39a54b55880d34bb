//! The appeal: a citizen's message to the head of a municipality, and what has
//! been done with it so far.

use chrono::{DateTime, Utc};

use crate::id::{AppealId, MunicipalityId, UserId};
use crate::text::{AppealText, Category, Contact, ExternalId, PersonName, ResponseText, Tag};
use crate::vocabulary;

vocabulary!(
    /// Where an appeal stands in the state machine (see [`crate::transition`]).
    Status {
        /// Registered, not yet read by the head.
        Received => "RECEIVED",
        /// Read by the head of the addressed municipality.
        Seen => "SEEN",
        /// An answer was recorded with an outcome.
        Resolved => "RESOLVED",
    }
);

vocabulary!(
    /// How the appeal reached the municipality.
    Channel {
        Telegram => "TELEGRAM",
        Vk => "VK",
        /// MAX, the national messenger.
        Max => "MAX",
        Email => "EMAIL",
        Web => "WEB",
        Phone => "PHONE",
        InPerson => "IN_PERSON",
        Post => "POST",
    }
);

vocabulary!(
    /// How urgently the assistants mean to handle the appeal.
    #[derive(Default)]
    Priority {
        Low => "LOW",
        #[default]
        Normal => "NORMAL",
        High => "HIGH",
        Urgent => "URGENT",
    }
);

vocabulary!(
    /// What a resolution amounted to.
    Outcome {
        /// The request was granted or the problem fixed.
        Satisfied => "SATISFIED",
        /// An explanation was given.
        Explained => "EXPLAINED",
        /// Refused with reasons.
        Declined => "DECLINED",
        /// Forwarded to the competent body.
        Redirected => "REDIRECTED",
        /// Repeats another appeal, named by `duplicate_of`.
        Duplicate => "DUPLICATE",
        /// Anonymous, abusive or unreadable, as the law allows.
        NoAnswerRequired => "NO_ANSWER_REQUIRED",
    }
);

/// What an intake service (or an official) submits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub channel: Channel,
    pub external_id: Option<ExternalId>,
    pub author_name: Option<PersonName>,
    pub author_contact: Option<Contact>,
    pub text: AppealText,
}

/// The recorded answer to an appeal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub outcome: Outcome,
    pub response: ResponseText,
    pub duplicate_of: Option<AppealId>,
    pub resolved_by: UserId,
    pub resolved_at: DateTime<Utc>,
}

/// An appeal as it stands now. Its fields change only through
/// [`Appeal::apply`](crate::transition), which also yields the event that records
/// the change; storage rebuilds it from rows, and [`crate::replay`](mod@crate::replay) from its
/// history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appeal {
    pub id: AppealId,
    /// The human-readable registration number, such as `TOMSK-2026-000042`.
    pub number: String,
    pub municipality_id: MunicipalityId,
    pub channel: Channel,
    pub external_id: Option<ExternalId>,
    pub author_name: Option<PersonName>,
    pub author_contact: Option<Contact>,
    pub text: AppealText,
    pub status: Status,
    pub priority: Priority,
    pub category: Option<Category>,
    pub tags: Vec<Tag>,
    pub received_at: DateTime<Utc>,
    /// When the head first read the appeal; reopening does not clear it.
    pub seen_at: Option<DateTime<Utc>>,
    pub seen_due_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub deadline_extended: bool,
    /// Grows by one with every accepted change of the appeal; notes leave it alone.
    pub version: i32,
    pub resolution: Option<Resolution>,
}

impl Appeal {
    /// When the current resolution was recorded, if the appeal is resolved.
    pub fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.resolution.as_ref().map(|resolution| resolution.resolved_at)
    }

    /// Past its answer deadline and not resolved.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.status.owes_answer() && now > self.due_at
    }

    /// Past its reading deadline and still unread by the head.
    pub fn is_seen_overdue(&self, now: DateTime<Utc>) -> bool {
        self.status.owes_reading() && now > self.seen_due_at
    }
}

impl Status {
    /// Whether an appeal in this status still owes its answer (by `dueAt`):
    /// until it is resolved.
    pub fn owes_answer(self) -> bool {
        self != Status::Resolved
    }

    /// Whether an appeal in this status still owes the head's reading (by
    /// `seenDueAt`): while it is `RECEIVED`.
    pub fn owes_reading(self) -> bool {
        self == Status::Received
    }
}

/// Formats a registration number: the municipality's code in capitals, the year
/// of receipt and a six-digit sequence within that year, e.g. `TOMSK-2026-000042`.
pub fn registration_number(municipality_code: &str, year: i32, sequence: i64) -> String {
    format!("{}-{year}-{sequence:06}", municipality_code.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_numbers_read_well() {
        assert_eq!(registration_number("tomsk", 2026, 42), "TOMSK-2026-000042");
        assert_eq!(registration_number("zato-seversk", 2027, 1_234_567), "ZATO-SEVERSK-2027-1234567");
    }

    #[test]
    fn vocabularies_round_trip_through_their_names() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(*status));
        }
        for outcome in Outcome::ALL {
            assert_eq!(outcome.as_str().parse::<Outcome>(), Ok(*outcome));
        }
        assert!("seen".parse::<Status>().is_err());
        assert_eq!("IN_PERSON".parse::<Channel>(), Ok(Channel::InPerson));
    }
}
