//! Invariants of the state machine and of the audit chain over random histories:
//! random commands with random (valid) parameters, expected versions that are
//! sometimes stale, random actors and times that only move forward, applied to an
//! appeal from `Appeal::receive`.

use chrono::TimeDelta;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use uuid::Uuid;

use appeals_core::text::{AppealText, Category, NoteText, Reason, ResponseText, Tag};
use appeals_core::{
    Appeal, AppealId, Applied, ChainAnchor, ChainBreak, Channel, Command, CommandError, DeadlinePolicy, EventData,
    EventKind, ExtensionDays, MunicipalityId, NewEvent, Outcome, Priority, RecordedEvent, Status, Submission, UserId,
    replay, verify_chain,
};

/// The `expected_version` a step passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// The version the appeal has: an up-to-date client.
    Current,
    /// Older than the current one by this much: a client that missed a change.
    Behind(i32),
    /// A version the appeal never had.
    Ahead(i32),
    /// No version, as notes are issued (and as replay applies commands).
    Unversioned,
}

/// One command in a random history.
#[derive(Debug, Clone)]
struct Step {
    command: Command,
    version: Version,
    actor: UserId,
    /// Time since the previous step; always positive.
    after: TimeDelta,
}

/// A random history: how the appeal was received, then the steps tried on it.
#[derive(Debug, Clone)]
struct Scenario {
    channel: Channel,
    text: AppealText,
    submitted_by: Option<UserId>,
    steps: Vec<Step>,
}

/// What happened when a scenario was played.
struct Played {
    appeal: Appeal,
    /// The receipt and every accepted command's event, recorded into one chain.
    chain: Vec<RecordedEvent>,
}

/// A single change to a recorded chain, as someone tampering with storage might make.
#[derive(Debug, Clone)]
enum Tamper {
    Note(Index, bool),
    Data(Index),
    At(Index, i64),
    Actor(Index, bool),
    Seq(Index, i32),
    Kind(Index, Index),
    Statuses(Index),
    AppealId(Index),
    Hash(Index, Index),
    Swap(Index, Index),
    Delete(Index),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_appeal_is_resolved_without_a_seen_event_before_it(scenario in scenario()) {
        let played = play(&scenario);
        for (position, event) in played.chain.iter().enumerate() {
            if event.kind == EventKind::Resolved {
                let seen_before = played.chain[..position].iter().any(|earlier| earlier.kind == EventKind::Seen);
                prop_assert!(seen_before, "event {} resolves an appeal the head never read", event.seq);
                prop_assert_eq!(event.from_status, Some(Status::Seen), "event {} resolves from SEEN", event.seq);
            }
        }
        if played.appeal.status == Status::Resolved {
            prop_assert!(played.appeal.seen_at.is_some(), "a resolved appeal has been seen");
        }
    }

    #[test]
    fn the_version_grows_by_one_per_change_and_every_refusal_has_its_reason_and_changes_nothing(scenario in scenario()) {
        let mut appeal = receive(&scenario).appeal;
        let mut at = appeal.received_at;
        let mut changes = 0;
        for (index, step) in scenario.steps.iter().enumerate() {
            at += step.after;
            let before = appeal.clone();
            let expected_version = expected_version(&before, step.version);
            match before.apply(&step.command, step.actor, at, expected_version) {
                Ok(applied) => {
                    let is_note = matches!(step.command, Command::AddNote { .. });
                    let step_size = if is_note { 0 } else { 1 };
                    prop_assert_eq!(
                        applied.appeal.version, before.version + step_size,
                        "step {} ({}) accepted", index, step.command.name()
                    );
                    prop_assert!(
                        expected_version.is_none_or(|expected| expected == before.version),
                        "step {} was accepted at version {:?} while the appeal was at {}",
                        index, expected_version, before.version
                    );
                    prop_assert!(
                        allowed_from(before.status, &step.command),
                        "step {} ({}) was accepted from {}", index, step.command.name(), before.status
                    );
                    changes += step_size;
                    appeal = applied.appeal;
                }
                Err(error) => {
                    let stale = expected_version.filter(|expected| *expected != before.version);
                    let explained = match (&error, &step.command) {
                        (CommandError::VersionConflict { expected, current }, _) => {
                            stale == Some(*expected) && *current == before.version
                        }
                        (_, _) if stale.is_some() => false,
                        (CommandError::InvalidTransition { status, .. }, command) => {
                            *status == before.status && !allowed_from(before.status, command)
                        }
                        (CommandError::AlreadyExtended, Command::ExtendDeadline { .. }) => {
                            before.deadline_extended && before.status != Status::Resolved
                        }
                        (CommandError::Invalid(input), Command::Resolve { outcome, duplicate_of, .. }) => {
                            input.field == "duplicateOf"
                                && before.status == Status::Seen
                                && !names_its_original_consistently(*outcome, *duplicate_of)
                        }
                        _ => false,
                    };
                    prop_assert!(
                        explained,
                        "step {} ({}) from {} at version {:?} was refused with {:?}",
                        index, step.command.name(), before.status, expected_version, error
                    );
                    // `apply` borrows the appeal, so a refusal cannot have touched it; the
                    // history goes on from the appeal exactly as it was.
                    prop_assert_eq!(&appeal, &before, "step {} was refused and changed the appeal", index);
                }
            }
        }
        prop_assert_eq!(appeal.version, 1 + changes);
    }

    #[test]
    fn replaying_the_recorded_history_reproduces_the_appeal(scenario in scenario()) {
        let played = play(&scenario);
        prop_assert_eq!(replay(&played.chain), Ok(played.appeal));
    }

    #[test]
    fn the_recorded_chain_verifies_against_its_anchor(scenario in scenario()) {
        let played = play(&scenario);
        prop_assert_eq!(verify_chain(appeal_id(), &played.chain, anchor(&played.chain)), Ok(played.chain.len()));
    }

    #[test]
    fn any_single_alteration_of_the_chain_breaks_it_at_the_first_position_affected(
        scenario in scenario(),
        tamper in tamper(),
    ) {
        let played = play(&scenario);
        let anchor = anchor(&played.chain);
        let mut tampered = played.chain.clone();
        let Some(first_affected) = apply_tamper(&mut tampered, &tamper) else {
            // Swapping needs two events; this history has only its receipt.
            return Ok(());
        };
        let result = verify_chain(appeal_id(), &tampered, anchor);
        let at = result.as_ref().err().map(|broken: &ChainBreak| broken.seq);
        prop_assert_eq!(
            at, Some(first_affected),
            "{:?} on a chain of {} should break at {}, verify_chain said {:?}",
            tamper, played.chain.len(), first_affected, result
        );
    }

    #[test]
    fn events_appended_after_the_anchor_are_caught(scenario in scenario(), appended in 1..=3_usize, note in words()) {
        let played = play(&scenario);
        let anchor = anchor(&played.chain);
        let mut forged = played.chain.clone();
        for _ in 0..appended {
            let last = forged.last().expect("the chain starts with the receipt");
            let text = NoteText::parse(&note).expect("a valid note");
            let event = NewEvent {
                at: last.at + TimeDelta::seconds(1),
                actor_id: Some(intruder()),
                from_status: None,
                to_status: None,
                note: Some(text.as_str().to_owned()),
                data: EventData::NoteAdded { text },
            };
            let (seq, hash) = (last.seq + 1, last.hash.clone());
            forged.push(event.record(appeal_id(), seq, &hash));
        }
        let result = verify_chain(appeal_id(), &forged, anchor);
        let at = result.as_ref().err().map(|broken: &ChainBreak| broken.seq);
        // The break lies among the appended events. verify_chain currently names the
        // last of them rather than the first, so only the range is asserted.
        let appended_positions = (anchor.seq + 1)..=i32::try_from(forged.len()).expect("chains here are short");
        prop_assert!(
            at.is_some_and(|seq| appended_positions.contains(&seq)),
            "{} events appended after seq {}: verify_chain said {:?}", appended, anchor.seq, result
        );
    }
}

/// Applies `tamper` to `chain` and returns the 1-based position of the first
/// event that no longer verifies, or `None` if the chain is too short for it.
fn apply_tamper(chain: &mut Vec<RecordedEvent>, tamper: &Tamper) -> Option<i32> {
    let length = chain.len();
    let position = |index: usize| Some(i32::try_from(index + 1).expect("chains here are short"));
    match tamper {
        Tamper::Note(index, remove) => {
            let event = &mut chain[index.index(length)];
            event.note = match (&event.note, remove) {
                (Some(_), true) => None,
                (Some(note), false) => Some(format!("{note} (исправлено)")),
                (None, _) => Some("подложная запись".to_owned()),
            };
            position(index.index(length))
        }
        Tamper::Data(index) => {
            let event = &mut chain[index.index(length)];
            let forged = EventData::Reopened { reason: Reason::parse("подлог").expect("a valid reason") };
            let forged = if forged.to_canonical_json() == event.data {
                EventData::Seen.to_canonical_json()
            } else {
                forged.to_canonical_json()
            };
            event.data = forged;
            position(index.index(length))
        }
        Tamper::At(index, micros) => {
            chain[index.index(length)].at += TimeDelta::microseconds(*micros);
            position(index.index(length))
        }
        Tamper::Actor(index, remove) => {
            let event = &mut chain[index.index(length)];
            event.actor_id = match event.actor_id {
                Some(_) if *remove => None,
                _ => Some(intruder()),
            };
            position(index.index(length))
        }
        Tamper::Seq(index, delta) => {
            chain[index.index(length)].seq += delta;
            position(index.index(length))
        }
        Tamper::Kind(index, kind) => {
            let event = &mut chain[index.index(length)];
            let others: Vec<EventKind> = EventKind::ALL.iter().copied().filter(|other| *other != event.kind).collect();
            event.kind = others[kind.index(others.len())];
            position(index.index(length))
        }
        Tamper::Statuses(index) => {
            let event = &mut chain[index.index(length)];
            (event.from_status, event.to_status) = match (event.from_status, event.to_status) {
                (None, None) => (Some(Status::Seen), Some(Status::Resolved)),
                (from, to) => (to, from),
            };
            position(index.index(length))
        }
        Tamper::AppealId(index) => {
            chain[index.index(length)].appeal_id = another_appeal_id();
            position(index.index(length))
        }
        Tamper::Hash(index, digit) => {
            let event = &mut chain[index.index(length)];
            let digit = digit.index(event.hash.len());
            let replacement = if &event.hash[digit..=digit] == "0" { "1" } else { "0" };
            event.hash.replace_range(digit..=digit, replacement);
            position(index.index(length))
        }
        Tamper::Swap(first, second) => {
            if length < 2 {
                return None;
            }
            let first = first.index(length);
            // Picks the second among the other events, so the two always differ.
            let second = (first + 1 + second.index(length - 1)) % length;
            chain.swap(first, second);
            position(first.min(second))
        }
        Tamper::Delete(index) => {
            // Deleting event k leaves event k+1 at position k, which then carries the
            // wrong seq; deleting the last leaves a chain that verifies on its own and
            // ends one event before the anchor, which verify_chain reports as the
            // position just past the remaining chain. Both are position k.
            let index = index.index(length);
            chain.remove(index);
            position(index)
        }
    }
}

/// Whether the state machine allows `command` from `status` (the spec's table; a
/// second extension is refused for another reason).
fn allowed_from(status: Status, command: &Command) -> bool {
    match command {
        Command::Triage { .. } | Command::AddNote { .. } => true,
        Command::MarkSeen => status == Status::Received,
        Command::ExtendDeadline { .. } => status != Status::Resolved,
        Command::Resolve { .. } => status == Status::Seen,
        Command::Reopen { .. } => status == Status::Resolved,
    }
}

/// `duplicate_of` names another appeal exactly when the outcome is `DUPLICATE`.
fn names_its_original_consistently(outcome: Outcome, duplicate_of: Option<AppealId>) -> bool {
    match (outcome, duplicate_of) {
        (Outcome::Duplicate, Some(original)) => original != appeal_id(),
        (Outcome::Duplicate, None) | (_, Some(_)) => false,
        (_, None) => true,
    }
}

fn play(scenario: &Scenario) -> Played {
    let Applied { mut appeal, event: received } = receive(scenario);
    let mut chain = vec![received.record(appeal_id(), 1, "")];
    let mut at = appeal.received_at;
    for step in &scenario.steps {
        at += step.after;
        if let Ok(applied) = appeal.apply(&step.command, step.actor, at, expected_version(&appeal, step.version)) {
            let last = chain.last().expect("the chain starts with the receipt");
            let seq = last.seq + 1;
            let recorded = applied.event.record(appeal_id(), seq, &last.hash);
            chain.push(recorded);
            appeal = applied.appeal;
        }
    }
    Played { appeal, chain }
}

fn receive(scenario: &Scenario) -> Applied {
    Appeal::receive(
        appeal_id(),
        "TOMSK-2026-000042".to_owned(),
        MunicipalityId::from_uuid(Uuid::from_u128(0x70)),
        Submission {
            channel: scenario.channel,
            external_id: None,
            author_name: None,
            author_contact: None,
            text: scenario.text.clone(),
        },
        scenario.submitted_by,
        "2026-03-02T09:00:00.123456Z".parse().expect("a valid timestamp"),
        &DeadlinePolicy::default(),
    )
}

fn expected_version(appeal: &Appeal, version: Version) -> Option<i32> {
    match version {
        Version::Current => Some(appeal.version),
        Version::Behind(by) => Some(appeal.version - by),
        Version::Ahead(by) => Some(appeal.version + by),
        Version::Unversioned => None,
    }
}

fn anchor(chain: &[RecordedEvent]) -> ChainAnchor<'_> {
    let last = chain.last().expect("a chain has at least its receipt");
    ChainAnchor { seq: last.seq, hash: &last.hash }
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (select(Channel::ALL), words(), option::of(actor()), vec(step(), 0..40)).prop_map(
        |(channel, text, submitted_by, steps)| Scenario {
            channel,
            text: AppealText::parse(&text).expect("generated words are a valid appeal text"),
            submitted_by,
            steps,
        },
    )
}

fn step() -> impl Strategy<Value = Step> {
    let version = prop_oneof![
        6 => Just(Version::Current),
        2 => (1..=3).prop_map(Version::Behind),
        1 => (1..=2).prop_map(Version::Ahead),
        1 => Just(Version::Unversioned),
    ];
    // Up to three days between steps, in whole microseconds as storage keeps them.
    let after = (1..=3 * 86_400_000_000_i64).prop_map(TimeDelta::microseconds);
    (command(), version, actor(), after).prop_map(|(command, version, actor, after)| {
        // Notes are issued without a version, as the API issues them.
        let version = if matches!(command, Command::AddNote { .. }) { Version::Unversioned } else { version };
        Step { command, version, actor, after }
    })
}

fn command() -> impl Strategy<Value = Command> {
    let triage = (option::of(select(Priority::ALL)), option::of(words()), option::of(vec(words(), 0..4))).prop_map(
        |(priority, category, tags)| Command::Triage {
            priority,
            category: category.map(|category| Category::parse(&category).expect("a valid category")),
            tags: tags.map(|tags| tags.iter().map(|tag| Tag::parse(tag).expect("a valid tag")).collect()),
        },
    );
    let note = words().prop_map(|text| Command::AddNote { text: NoteText::parse(&text).expect("a valid note") });
    let extend = (1..=30_i64, words()).prop_map(|(days, reason)| Command::ExtendDeadline {
        days: ExtensionDays::parse(days, &DeadlinePolicy::default()).expect("a valid extension"),
        reason: Reason::parse(&reason).expect("a valid reason"),
    });
    // Mostly consistent resolutions; one in ten names an original where none is
    // due, omits the original of a duplicate, or names the appeal itself, all of
    // which the state machine must refuse.
    let resolve = (select(Outcome::ALL), words(), 0..10_u8).prop_map(|(outcome, response, dice)| {
        let duplicate_of = match (outcome, dice) {
            (Outcome::Duplicate, 0) => None,
            (Outcome::Duplicate, 1) => Some(appeal_id()),
            (Outcome::Duplicate, _) | (_, 0) => Some(another_appeal_id()),
            (_, _) => None,
        };
        Command::Resolve { outcome, response: ResponseText::parse(&response).expect("a valid response"), duplicate_of }
    });
    let reopen = words().prop_map(|reason| Command::Reopen { reason: Reason::parse(&reason).expect("a valid reason") });
    prop_oneof![
        2 => triage,
        2 => note,
        3 => Just(Command::MarkSeen),
        2 => extend,
        4 => resolve,
        3 => reopen,
    ]
}

fn tamper() -> impl Strategy<Value = Tamper> {
    let nonzero_micros = prop_oneof![1..=1_000_000_000_i64, -1_000_000_000..=-1_i64];
    let nonzero_seq_delta = prop_oneof![1..=5_i32, -5..=-1_i32];
    prop_oneof![
        (any::<Index>(), any::<bool>()).prop_map(|(index, remove)| Tamper::Note(index, remove)),
        any::<Index>().prop_map(Tamper::Data),
        (any::<Index>(), nonzero_micros).prop_map(|(index, micros)| Tamper::At(index, micros)),
        (any::<Index>(), any::<bool>()).prop_map(|(index, remove)| Tamper::Actor(index, remove)),
        (any::<Index>(), nonzero_seq_delta).prop_map(|(index, delta)| Tamper::Seq(index, delta)),
        (any::<Index>(), any::<Index>()).prop_map(|(index, kind)| Tamper::Kind(index, kind)),
        any::<Index>().prop_map(Tamper::Statuses),
        any::<Index>().prop_map(Tamper::AppealId),
        (any::<Index>(), any::<Index>()).prop_map(|(index, digit)| Tamper::Hash(index, digit)),
        (any::<Index>(), any::<Index>()).prop_map(|(first, second)| Tamper::Swap(first, second)),
        any::<Index>().prop_map(Tamper::Delete),
    ]
}

/// One to four short words, Cyrillic or Latin, with no space at either end.
fn words() -> impl Strategy<Value = String> {
    "[a-zа-яё]{1,10}( [a-zа-яё]{1,10}){0,3}"
}

fn actor() -> impl Strategy<Value = UserId> {
    (1..=4_u128).prop_map(|n| UserId::from_uuid(Uuid::from_u128(0x5e00 + n)))
}

/// A user who never acts in the generated histories.
fn intruder() -> UserId {
    UserId::from_uuid(Uuid::from_u128(0xbad))
}

fn appeal_id() -> AppealId {
    AppealId::from_uuid(Uuid::from_u128(1))
}

fn another_appeal_id() -> AppealId {
    AppealId::from_uuid(Uuid::from_u128(2))
}
