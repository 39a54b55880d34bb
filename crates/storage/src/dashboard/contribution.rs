//! What each appeal adds to the dashboard's running totals, so that they can be
//! kept up to date in the transaction that changes the appeal, and a dashboard
//! answered without reading every appeal. Pure arithmetic: no IO.
//!
//! An appeal contributes ([`Contribution::of`]):
//! - one to the count of its status;
//! - while it is not resolved, one to the appeals whose answer falls due on its
//!   `dueAt`'s day; while it is unread, one to those whose reading falls due on
//!   its `seenDueAt`'s day ([`day_of`]). Whether an appeal is overdue is judged at
//!   the time of the query: the appeals due before today are overdue, those due
//!   after today are not, and only today's are looked at one by one;
//! - once read, its time to reading, and once resolved its time to resolution,
//!   to a histogram of its municipality (`histogram`), from which the medians
//!   are found.
//!
//! A change of the appeal changes the totals by [`Contribution::change`].

use std::collections::BTreeMap;

use appeals_core::{Appeal, Status};
use chrono::{DateTime, Utc};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The UTC day (days since 1970-01-01) of `at`.
pub fn day_of(at: DateTime<Utc>) -> i32 {
    at.timestamp_micros().div_euclid(MICROS_PER_DAY) as i32
}

/// The first moment of `day`.
pub fn start_of_day(day: i32) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(i64::from(day) * MICROS_PER_DAY).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Which deadline a day count is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Deadline {
    /// The answer (`dueAt`), owed while the appeal is not resolved.
    Answer,
    /// The head's reading (`seenDueAt`), owed while the appeal is `RECEIVED`.
    Reading,
}

impl Deadline {
    pub const ALL: [Deadline; 2] = [Deadline::Answer, Deadline::Reading];

    /// Whether an appeal in `status` still owes this deadline.
    pub fn is_owed_in(self, status: Status) -> bool {
        match self {
            Deadline::Answer => status.owes_answer(),
            Deadline::Reading => status.owes_reading(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Deadline::Answer => "ANSWER",
            Deadline::Reading => "READING",
        }
    }

    pub fn parse(text: &str) -> Option<Deadline> {
        Deadline::ALL.into_iter().find(|deadline| deadline.as_str() == text)
    }
}

/// How much one appeal adds to its municipality's totals, or how much a change
/// of one appeal changes them (then counts may be negative).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contribution {
    pub received: i64,
    pub seen: i64,
    pub resolved: i64,
    /// Open deadlines by (deadline, day).
    pub deadlines: BTreeMap<(Deadline, i32), i64>,
    /// Times to reading, in microseconds, with their counts.
    pub to_seen: BTreeMap<i64, i64>,
    /// Times to the current resolution, in microseconds, with their counts.
    pub to_resolution: BTreeMap<i64, i64>,
}

/// The facts about an appeal that its contribution depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TallyFacts {
    pub status: Status,
    pub received_at: DateTime<Utc>,
    pub seen_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub seen_due_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
}

impl TallyFacts {
    pub fn of(appeal: &Appeal) -> TallyFacts {
        TallyFacts {
            status: appeal.status,
            received_at: appeal.received_at,
            seen_at: appeal.seen_at,
            resolved_at: appeal.resolution.as_ref().map(|resolution| resolution.resolved_at),
            seen_due_at: appeal.seen_due_at,
            due_at: appeal.due_at,
        }
    }

    /// When `deadline` falls due.
    pub fn due(&self, deadline: Deadline) -> DateTime<Utc> {
        match deadline {
            Deadline::Answer => self.due_at,
            Deadline::Reading => self.seen_due_at,
        }
    }

    /// Microseconds from receipt to the head's reading, once read.
    pub fn micros_to_seen(&self) -> Option<i64> {
        self.seen_at.map(|seen_at| micros_between(self.received_at, seen_at))
    }

    /// Microseconds from receipt to the current resolution, if resolved.
    pub fn micros_to_resolution(&self) -> Option<i64> {
        self.resolved_at.map(|resolved_at| micros_between(self.received_at, resolved_at))
    }
}

fn micros_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX)
}

impl Contribution {
    pub fn of(facts: &TallyFacts) -> Contribution {
        let mut contribution = Contribution::default();
        match facts.status {
            Status::Received => contribution.received = 1,
            Status::Seen => contribution.seen = 1,
            Status::Resolved => contribution.resolved = 1,
        }
        for deadline in Deadline::ALL {
            if deadline.is_owed_in(facts.status) {
                contribution.deadlines.insert((deadline, day_of(facts.due(deadline))), 1);
            }
        }
        if let Some(micros) = facts.micros_to_seen() {
            contribution.to_seen.insert(micros, 1);
        }
        if let Some(micros) = facts.micros_to_resolution() {
            contribution.to_resolution.insert(micros, 1);
        }
        contribution
    }

    /// How the totals change when an appeal goes from `before` to `after`; only
    /// what changed is left in it.
    pub fn change(before: &TallyFacts, after: &TallyFacts) -> Contribution {
        let mut change = Contribution::of(after);
        change.merge(&Contribution::of(before), -1);
        for counts in [&mut change.to_seen, &mut change.to_resolution] {
            counts.retain(|_, count| *count != 0);
        }
        change.deadlines.retain(|_, count| *count != 0);
        change
    }

    /// Adds `other` to this one (the totals of several appeals).
    pub fn add(&mut self, other: &Contribution) {
        self.merge(other, 1);
    }

    /// Adds `sign` times `other` to this one.
    fn merge(&mut self, other: &Contribution, sign: i64) {
        self.received += sign * other.received;
        self.seen += sign * other.seen;
        self.resolved += sign * other.resolved;
        for (mine, theirs) in [(&mut self.to_seen, &other.to_seen), (&mut self.to_resolution, &other.to_resolution)] {
            for (micros, count) in theirs {
                *mine.entry(*micros).or_default() += sign * count;
            }
        }
        for (key, count) in &other.deadlines {
            *self.deadlines.entry(*key).or_default() += sign * count;
        }
    }

    /// Whether it changes the status counts.
    pub fn changes_counts(&self) -> bool {
        self.received != 0 || self.seen != 0 || self.resolved != 0
    }

    pub fn is_empty(&self) -> bool {
        !self.changes_counts() && self.deadlines.is_empty() && self.to_seen.is_empty() && self.to_resolution.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_keeps_only_what_moved() {
        let at = |h: i64| DateTime::from_timestamp(1_780_000_000 + h * 3600, 0).unwrap();
        let received = TallyFacts {
            status: Status::Received,
            received_at: at(0),
            seen_at: None,
            resolved_at: None,
            seen_due_at: at(72),
            due_at: at(720),
        };
        let seen = TallyFacts { status: Status::Seen, seen_at: Some(at(3)), ..received };
        let change = Contribution::change(&received, &seen);
        assert_eq!((change.received, change.seen, change.resolved), (-1, 1, 0));
        assert_eq!(change.deadlines, BTreeMap::from([((Deadline::Reading, day_of(at(72))), -1)]));
        assert_eq!(change.to_seen, BTreeMap::from([(3 * 3_600_000_000, 1)]));
        assert!(change.to_resolution.is_empty());
        assert!(Contribution::change(&seen, &seen).is_empty());
    }
}
