//! What each appeal adds to the dashboard's running totals, so that storage can
//! keep them up to date in the transaction that changes the appeal, and answer a
//! dashboard without reading every appeal.
//!
//! An appeal contributes ([`Contribution::of`]):
//! - one to the count of its status;
//! - while it is not resolved, one to the appeals whose answer falls due on its
//!   `dueAt`'s day; while it is unread, one to those whose reading falls due on
//!   its `seenDueAt`'s day ([`day_of`]). Whether an appeal is overdue is judged at
//!   the time of the query: the appeals due before today are overdue, those due
//!   after today are not, and only today's are looked at one by one;
//! - once read, its time to reading, and once resolved its time to resolution,
//!   to a [`DelayHistogram`] of its municipality, from which the medians are found.
//!
//! A change of the appeal changes the totals by [`Contribution::change`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::appeal::{Appeal, Status};

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
        if facts.status != Status::Resolved {
            contribution.deadlines.insert((Deadline::Answer, day_of(facts.due_at)), 1);
        }
        if facts.status == Status::Received {
            contribution.deadlines.insert((Deadline::Reading, day_of(facts.seen_due_at)), 1);
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

/// How many sub-buckets each power of two of seconds is split into: a bucket is
/// at most 1/64 (1.6%) as wide as the times it holds, so the appeals between a
/// bucket's bounds, from which the exact median is picked, are few.
const SUB_BUCKETS: i64 = 64;

/// A histogram of durations (times to reading or to resolution) of one
/// municipality, in buckets of whole seconds that widen with the duration: one
/// second wide below 64 s, then 64 per power of two. It finds which bucket holds
/// the median and how many durations lie below it; the exact median is then read
/// from the appeals in that bucket alone ([`MedianProbe`]).
///
/// Stored as bytes: for each non-empty bucket in increasing order, its number
/// (`u16`) and count (`u32`), little-endian.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DelayHistogram {
    /// The non-empty buckets with their counts, in increasing order.
    counts: Vec<(u16, u32)>,
}

/// Where the median of a histogram's durations lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MedianProbe {
    /// The first duration, in microseconds, the median's bucket holds.
    pub from_micros: i64,
    /// How many durations of at least `from_micros` precede the lower middle one.
    pub offset: u64,
    /// One duration is the median when the count is odd, two (their mean) when even.
    pub middle: usize,
}

/// A histogram that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a delay histogram is damaged: {0}")]
pub struct DamagedHistogram(&'static str);

impl DelayHistogram {
    /// The bucket that holds `micros` (negative durations go to the first).
    pub fn bucket_of(micros: i64) -> u16 {
        let seconds = micros.max(0) / 1_000_000;
        if seconds < SUB_BUCKETS {
            return seconds as u16;
        }
        let exponent = 63 - i64::from(seconds.leading_zeros()); // 6 and up
        let shift = exponent - 6;
        let sub = (seconds >> shift) - SUB_BUCKETS; // 0..64
        ((shift + 1) * SUB_BUCKETS + sub) as u16
    }

    /// The first duration, in microseconds, that `bucket` holds.
    pub fn bucket_start(bucket: u16) -> i64 {
        let bucket = i64::from(bucket);
        if bucket == 0 {
            return i64::MIN;
        }
        if bucket < SUB_BUCKETS {
            return bucket * 1_000_000;
        }
        let shift = bucket / SUB_BUCKETS - 1;
        let sub = bucket % SUB_BUCKETS;
        ((SUB_BUCKETS + sub) << shift).saturating_mul(1_000_000)
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&(_, count)| u64::from(count)).sum()
    }

    /// Adds `change` durations (removes them when negative) of `micros`.
    pub fn add(&mut self, micros: i64, change: i64) -> Result<(), DamagedHistogram> {
        let bucket = DelayHistogram::bucket_of(micros);
        let position = self.counts.binary_search_by_key(&bucket, |&(bucket, _)| bucket);
        let current = position.map_or(0, |index| i64::from(self.counts[index].1));
        let count =
            u32::try_from(current + change).map_err(|_| DamagedHistogram("a bucket's count would leave its range"))?;
        match (position, count) {
            (Ok(index), 0) => {
                self.counts.remove(index);
            }
            (Ok(index), count) => self.counts[index].1 = count,
            (Err(_), 0) => {}
            (Err(index), count) => self.counts.insert(index, (bucket, count)),
        }
        Ok(())
    }

    /// Where the median lies, or `None` when there are no durations.
    pub fn median_probe(&self) -> Option<MedianProbe> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let lower_middle = (total - 1) / 2;
        let mut below = 0;
        for &(bucket, count) in &self.counts {
            if below + u64::from(count) > lower_middle {
                return Some(MedianProbe {
                    from_micros: DelayHistogram::bucket_start(bucket),
                    offset: lower_middle - below,
                    middle: if total.is_multiple_of(2) { 2 } else { 1 },
                });
            }
            below += u64::from(count);
        }
        None
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.counts.len() * 6);
        for (bucket, count) in &self.counts {
            bytes.extend_from_slice(&bucket.to_le_bytes());
            bytes.extend_from_slice(&count.to_le_bytes());
        }
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<DelayHistogram, DamagedHistogram> {
        if !bytes.len().is_multiple_of(6) {
            return Err(DamagedHistogram("its length is not a whole number of buckets"));
        }
        let mut counts: Vec<(u16, u32)> = Vec::with_capacity(bytes.len() / 6);
        for chunk in bytes.chunks_exact(6) {
            let bucket = u16::from_le_bytes([chunk[0], chunk[1]]);
            let count = u32::from_le_bytes([chunk[2], chunk[3], chunk[4], chunk[5]]);
            if counts.last().is_some_and(|&(previous, _)| previous >= bucket) || count == 0 {
                return Err(DamagedHistogram("its buckets are out of order or empty"));
            }
            counts.push((bucket, count));
        }
        Ok(DelayHistogram { counts })
    }
}

/// The median of the `middle` durations (one or two), in hours.
pub fn median_hours(middle: &[i64]) -> Option<f64> {
    let hours = |micros: i64| micros as f64 / 3_600_000_000.0;
    match middle {
        [one] => Some(hours(*one)),
        [lower, upper] => Some((hours(*lower) + hours(*upper)) / 2.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_exactly_the_durations_between_their_starts() {
        let mut previous_start = i64::MIN;
        for bucket in 1..2000u16 {
            let start = DelayHistogram::bucket_start(bucket);
            assert!(start > previous_start, "bucket {bucket} starts after bucket {}", bucket - 1);
            assert_eq!(DelayHistogram::bucket_of(start), bucket, "the start of bucket {bucket}");
            assert_eq!(DelayHistogram::bucket_of(start - 1), bucket - 1, "just before bucket {bucket}");
            previous_start = start;
        }
        assert_eq!(DelayHistogram::bucket_of(-5), 0);
        assert!(DelayHistogram::bucket_of(i64::MAX) < 4000);
    }

    #[test]
    fn a_bucket_is_at_most_a_sixty_fourth_of_its_durations() {
        for bucket in 64..1900u16 {
            let (start, end) = (DelayHistogram::bucket_start(bucket), DelayHistogram::bucket_start(bucket + 1));
            assert!((end - start) * 64 <= start, "bucket {bucket}: {start}..{end}");
        }
    }

    #[test]
    fn the_probe_points_at_the_middle_durations() {
        let hours = |h: i64| h * 3_600_000_000;
        let mut histogram = DelayHistogram::default();
        for h in [2, 4, 5] {
            histogram.add(hours(h), 1).unwrap();
        }
        let start = |h: i64| DelayHistogram::bucket_start(DelayHistogram::bucket_of(hours(h)));
        let probe = histogram.median_probe().unwrap();
        assert_eq!((probe.from_micros, probe.offset, probe.middle), (start(4), 0, 1), "of 2, 4 and 5 hours");
        histogram.add(hours(5), -1).unwrap();
        let probe = histogram.median_probe().unwrap();
        assert_eq!((probe.from_micros, probe.offset, probe.middle), (start(2), 0, 2), "of 2 and 4 hours");
        assert_eq!(DelayHistogram::from_bytes(&histogram.to_bytes()), Ok(histogram));
        assert!(DelayHistogram::default().median_probe().is_none());
        assert!(DelayHistogram::default().add(5, -1).is_err(), "nothing to remove");
        assert!(DelayHistogram::from_bytes(&[1, 2, 3]).is_err());
    }

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
