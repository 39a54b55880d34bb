//! The histograms of durations (times to reading and to resolution) from which
//! the dashboard's exact medians are found, and their byte format in
//! `municipality_tally` (`to_seen`, `to_resolution`). The arithmetic is pure;
//! the format is this crate's, read and written nowhere else.

/// How many sub-buckets each power of two of seconds is split into: a bucket is
/// at most 1/64 (1.6%) as wide as the times it holds, so the appeals between a
/// bucket's bounds, from which the exact median is picked, are few.
const SUB_BUCKETS: i64 = 64;

/// The stored size of a bucket: its number (`u16`) and count (`u32`).
const BUCKET_BYTES: usize = 6;

/// A histogram of durations (times to reading or to resolution) of one
/// municipality, in buckets of whole seconds that widen with the duration: one
/// second wide below 64 s, then 64 per power of two. It finds which bucket holds
/// the median and how many durations lie below it; the exact median is then read
/// from the appeals in that bucket alone ([`MedianProbe`]).
///
/// Stored as bytes ([`DelayHistogram::to_bytes`]): for each non-empty bucket in
/// increasing order, its number (`u16`) and count (`u32`), little-endian.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DelayHistogram {
    /// The non-empty buckets, in increasing order of their numbers.
    buckets: Vec<Bucket>,
}

/// One non-empty bucket of a [`DelayHistogram`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    /// Which bucket ([`DelayHistogram::bucket_of`]).
    number: u16,
    /// How many durations it holds, never zero.
    count: u32,
}

/// Which of a municipality's two histograms, and of an appeal's two durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Measure {
    ToSeen,
    ToResolution,
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
        self.buckets.iter().map(|bucket| u64::from(bucket.count)).sum()
    }

    /// Adds `change` durations (removes them when negative) of `micros`.
    pub fn add(&mut self, micros: i64, change: i64) -> Result<(), DamagedHistogram> {
        let number = DelayHistogram::bucket_of(micros);
        let position = self.buckets.binary_search_by_key(&number, |bucket| bucket.number);
        let current = position.map_or(0, |index| i64::from(self.buckets[index].count));
        let count =
            u32::try_from(current + change).map_err(|_| DamagedHistogram("a bucket's count would leave its range"))?;
        match (position, count) {
            (Ok(index), 0) => {
                self.buckets.remove(index);
            }
            (Ok(index), count) => self.buckets[index].count = count,
            (Err(_), 0) => {}
            (Err(index), count) => self.buckets.insert(index, Bucket { number, count }),
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
        for bucket in &self.buckets {
            if below + u64::from(bucket.count) > lower_middle {
                return Some(MedianProbe {
                    from_micros: DelayHistogram::bucket_start(bucket.number),
                    offset: lower_middle - below,
                    middle: if total.is_multiple_of(2) { 2 } else { 1 },
                });
            }
            below += u64::from(bucket.count);
        }
        None
    }

    /// The stored form: six bytes per non-empty bucket.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.buckets.len() * BUCKET_BYTES);
        for bucket in &self.buckets {
            bytes.extend_from_slice(&bucket.number.to_le_bytes());
            bytes.extend_from_slice(&bucket.count.to_le_bytes());
        }
        bytes
    }

    /// Reads the stored form back; empty bytes are an empty histogram.
    pub fn from_bytes(bytes: &[u8]) -> Result<DelayHistogram, DamagedHistogram> {
        if !bytes.len().is_multiple_of(BUCKET_BYTES) {
            return Err(DamagedHistogram("its length is not a whole number of buckets"));
        }
        let mut buckets: Vec<Bucket> = Vec::with_capacity(bytes.len() / BUCKET_BYTES);
        for chunk in bytes.chunks_exact(BUCKET_BYTES) {
            let number = u16::from_le_bytes([chunk[0], chunk[1]]);
            let count = u32::from_le_bytes([chunk[2], chunk[3], chunk[4], chunk[5]]);
            if buckets.last().is_some_and(|previous| previous.number >= number) || count == 0 {
                return Err(DamagedHistogram("its buckets are out of order or empty"));
            }
            buckets.push(Bucket { number, count });
        }
        Ok(DelayHistogram { buckets })
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
}
