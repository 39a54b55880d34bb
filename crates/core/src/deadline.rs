//! The deadline policy: how long the head has to read an appeal, how long the
//! municipality has to answer it, and how far the answer deadline may be extended
//! (once). The defaults follow Russian Federal Law 59-FZ; the policy is
//! configuration, and an appeal's deadlines are fixed when it is received.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};

use crate::text::InvalidInput;

/// A positive span of time written as `30d`, `72h`, `15m`, `90s` or a sum such as
/// `1d12h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PolicyDuration(TimeDelta);

impl PolicyDuration {
    pub fn days(days: i64) -> Self {
        Self(TimeDelta::days(days))
    }

    pub fn as_time_delta(self) -> TimeDelta {
        self.0
    }
}

impl FromStr for PolicyDuration {
    type Err = InvalidInput;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let invalid =
            || InvalidInput::new("duration", format!("`{raw}` is not a duration such as 30d, 72h, 15m or 90s"));
        let mut total = TimeDelta::zero();
        let mut digits = String::new();
        for c in raw.trim().chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let amount: i64 = digits.parse().map_err(|_| invalid())?;
            digits.clear();
            let part = match c {
                'd' => TimeDelta::try_days(amount),
                'h' => TimeDelta::try_hours(amount),
                'm' => TimeDelta::try_minutes(amount),
                's' => TimeDelta::try_seconds(amount),
                _ => None,
            }
            .ok_or_else(invalid)?;
            total = total.checked_add(&part).ok_or_else(invalid)?;
        }
        if !digits.is_empty() || total <= TimeDelta::zero() {
            return Err(invalid());
        }
        Ok(Self(total))
    }
}

impl fmt::Display for PolicyDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.num_seconds();
        match seconds {
            s if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            s if s % 3_600 == 0 => write!(f, "{}h", s / 3_600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

/// The deadlines an appeal is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlinePolicy {
    /// From receipt to the head's reading (`seenDueAt`).
    pub seen_within: PolicyDuration,
    /// From receipt to the answer (`dueAt`), before any extension.
    pub answer_within: PolicyDuration,
    /// The longest single extension of the answer deadline.
    pub max_extension: PolicyDuration,
}

impl Default for DeadlinePolicy {
    fn default() -> Self {
        Self {
            seen_within: PolicyDuration::days(3),
            answer_within: PolicyDuration::days(30),
            max_extension: PolicyDuration::days(30),
        }
    }
}

impl DeadlinePolicy {
    pub fn seen_due_at(&self, received_at: DateTime<Utc>) -> DateTime<Utc> {
        received_at + self.seen_within.0
    }

    pub fn due_at(&self, received_at: DateTime<Utc>) -> DateTime<Utc> {
        received_at + self.answer_within.0
    }

    /// The most days one extension may add under this policy (at least one).
    pub fn max_extension_days(&self) -> i64 {
        self.max_extension.0.num_days().max(1)
    }
}

/// The number of days a deadline extension adds: at least one, and no more than
/// the policy allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ExtensionDays(i64);

impl ExtensionDays {
    pub fn parse(days: i64, policy: &DeadlinePolicy) -> Result<Self, InvalidInput> {
        let max = policy.max_extension_days();
        if (1..=max).contains(&days) {
            Ok(Self(days))
        } else {
            Err(InvalidInput::new("days", format!("must be from 1 to {max}, got {days}")))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }

    pub fn as_time_delta(self) -> TimeDelta {
        TimeDelta::days(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_written_in_configuration() {
        let cases = [
            ("30d", Some(TimeDelta::days(30))),
            ("72h", Some(TimeDelta::hours(72))),
            ("90s", Some(TimeDelta::seconds(90))),
            ("15m", Some(TimeDelta::minutes(15))),
            ("1d12h", Some(TimeDelta::hours(36))),
            (" 3d ", Some(TimeDelta::days(3))),
            ("", None),
            ("0d", None),
            ("30", None),
            ("d", None),
            ("3w", None),
            ("-3d", None),
            ("99999999999999999d", None),
        ];
        for (raw, expected) in cases {
            let got = raw.parse::<PolicyDuration>().ok().map(PolicyDuration::as_time_delta);
            assert_eq!(got, expected, "duration {raw:?}");
        }
    }

    #[test]
    fn durations_display_in_their_largest_whole_unit() {
        for raw in ["30d", "72h", "90s", "15m"] {
            let parsed: PolicyDuration = raw.parse().unwrap();
            let shown = parsed.to_string();
            assert_eq!(shown.parse::<PolicyDuration>().unwrap(), parsed, "{raw}");
        }
        assert_eq!("48h".parse::<PolicyDuration>().unwrap().to_string(), "2d");
    }

    #[test]
    fn the_default_policy_is_the_law() {
        let policy = DeadlinePolicy::default();
        let received = DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z").unwrap().to_utc();
        assert_eq!(policy.seen_due_at(received).to_rfc3339(), "2026-03-04T10:00:00+00:00");
        assert_eq!(policy.due_at(received).to_rfc3339(), "2026-03-31T10:00:00+00:00");
        assert!(ExtensionDays::parse(30, &policy).is_ok());
        assert!(ExtensionDays::parse(31, &policy).is_err());
        assert!(ExtensionDays::parse(0, &policy).is_err());
        assert!(ExtensionDays::parse(-1, &policy).is_err());
    }
}
