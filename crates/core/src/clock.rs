//! The source of "now". Time is truncated to microseconds, the precision both
//! databases keep, so that a timestamp hashed into the audit chain reads back
//! from storage exactly as it was hashed.

use std::sync::Mutex;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// Tells the time. The server uses [`SystemClock`]; tests use [`ManualClock`].
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Truncates a timestamp to whole microseconds.
pub fn to_storage_precision(at: DateTime<Utc>) -> DateTime<Utc> {
    // Truncation fails only for timestamps hundreds of thousands of years away,
    // which no clock of ours produces; keep the value as it was in that case.
    at.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(at)
}

/// The earliest and latest instants every supported database stores (years 1 to
/// 9999); PostgreSQL refuses some beyond them, and their text forms stop sorting
/// in order on SQLite.
pub fn storable_range() -> (DateTime<Utc>, DateTime<Utc>) {
    let first = DateTime::from_timestamp(-62_135_596_800, 0).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let last = DateTime::from_timestamp(253_402_300_799, 999_999_000).unwrap_or(DateTime::<Utc>::MAX_UTC);
    (first, last)
}

/// Checks that a timestamp from a client lies in [`storable_range`].
pub fn check_storable(field: &'static str, at: DateTime<Utc>) -> Result<DateTime<Utc>, crate::text::InvalidInput> {
    let (first, last) = storable_range();
    if (first..=last).contains(&at) {
        Ok(at)
    } else {
        Err(crate::text::InvalidInput::new(field, "must be a time between the years 1 and 9999"))
    }
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        to_storage_precision(Utc::now())
    }
}

/// A clock that stands still until told to move.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(to_storage_precision(at)))
    }

    pub fn advance(&self, by: TimeDelta) {
        let mut now = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *now = to_storage_precision(*now + by);
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = to_storage_precision(at);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
