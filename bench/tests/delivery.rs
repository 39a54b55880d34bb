//! The mixed scenario's check that every subscriber received every event in its
//! scope exactly once, in order per appeal: what it counts as missing, repeated,
//! out of order, out of scope or other.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use appeals_bench::subscriptions::{Arrivals, Committed, EventKey, Followed, id_key, tally};

const TOMSK: usize = 0;
const SEVERSK: usize = 1;

/// Three events of appeal 1 in Tomsk, one of appeal 2 in Seversk, committed at
/// `at`; the tests name them 11, 12, 13 and 21.
fn committed(at: Instant) -> HashMap<EventKey, Committed> {
    let event = |appeal: u128, seq: i64, municipality: usize| {
        ((appeal, seq), Committed { appeal, seq, municipality, answered_at: at })
    };
    HashMap::from([event(1, 1, TOMSK), event(1, 2, TOMSK), event(1, 3, TOMSK), event(2, 1, SEVERSK)])
}

/// 11 is appeal 1's first event, 21 appeal 2's; 99 an appeal of the warm-up.
fn key(name: u32) -> EventKey {
    (u128::from(name / 10), i64::from(name % 10))
}

fn follower(scope: Option<usize>, arrivals: &[u32], at: Instant) -> Followed {
    let mut received = Arrivals::default();
    for (index, name) in arrivals.iter().enumerate() {
        received.record(key(*name), at + Duration::from_millis(index as u64 + 1), Some(Duration::from_millis(5)));
    }
    Followed { scope, arrivals: received, reconnected: false, error: None }
}

#[test]
fn a_subscriber_that_received_its_scope_once_and_in_order_is_exact() {
    let at = Instant::now();
    let followed = [follower(None, &[11, 21, 12, 13], at), follower(Some(TOMSK), &[11, 12, 13], at)];
    let (counted, times) = tally(&committed(at), &followed);
    assert_eq!((counted.committed, counted.expected, counted.once), (4, 7, 7));
    assert_eq!((counted.missing, counted.duplicated, counted.out_of_order, counted.other), (0, 0, 0, 0));
    assert_eq!(times.from_answer.len(), 7, "one delivery time per owed delivery");
    assert_eq!(times.from_answer.iter().max(), Some(&Duration::from_millis(4)));
}

#[test]
fn missing_repeated_and_unordered_deliveries_are_counted_apart() {
    let at = Instant::now();
    // The region's subscriber misses Seversk's event and gets one twice; the
    // head of Tomsk gets the appeal's second event before its first.
    let followed = [follower(None, &[11, 12, 12, 13], at), follower(Some(TOMSK), &[12, 11, 13], at)];
    let (counted, _) = tally(&committed(at), &followed);
    assert_eq!(counted.expected, 7);
    assert_eq!(counted.missing, 1, "Seversk's event never reached the region's subscriber");
    assert_eq!((counted.duplicated, counted.extra_copies), (1, 1));
    assert_eq!(counted.once, 5);
    assert_eq!(counted.out_of_order, 1, "seq 2 before seq 1 at the head");
}

#[test]
fn events_outside_the_run_or_the_scope_are_not_owed() {
    let at = Instant::now();
    let followed = [follower(Some(SEVERSK), &[91, 21, 11], at)];
    let (counted, _) = tally(&committed(at), &followed);
    assert_eq!((counted.expected, counted.once, counted.missing), (1, 1, 0));
    assert_eq!((counted.other, counted.out_of_scope), (1, 1));
}

#[test]
fn appeal_ids_that_are_uuids_keep_their_value() {
    let id = "0193a0c4-0000-7000-8000-00000000002a";
    assert_eq!(id_key(id), uuid::Uuid::parse_str(id).unwrap().as_u128());
    assert_ne!(id_key("not-a-uuid"), id_key("not-a-uuid-either"));
}
