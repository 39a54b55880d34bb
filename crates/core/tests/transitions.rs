//! The state machine, pair by pair: every status an appeal can be in against every
//! command, each row checked by one `check` helper, followed by the deadline
//! arithmetic that rides along (extensions, `overdue`, `seenOverdue`).

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use appeals_core::text::{AppealText, Category, NoteText, Reason, ResponseText, Tag};
use appeals_core::{
    Appeal, AppealId, Applied, Channel, Command, CommandError, DeadlinePolicy, EventData, EventKind, ExtensionDays,
    MunicipalityId, Outcome, Priority, Status, Submission, UserId,
};

use Expect::Refused;
use Given as G;
use Original::{AnotherAppeal, Nothing, TheAppealItself};
use Refusal::{AlreadyExtended, InvalidDuplicateOf, InvalidTransition, VersionConflict};
use Status::{Received as RECEIVED, Resolved as RESOLVED, Seen as SEEN};

const DAY: i64 = 86_400;

const NOTE: &str = "Звонил заявитель, уточнил адрес";
const EXTENSION_REASON: &str = "Нужен ответ подрядчика";
const RESPONSE: &str = "Яму заделают до конца месяца";
const REOPEN_REASON: &str = "Ответ не по существу";

/// The days by which the `*Extended` starting points have had their deadline extended.
const SETUP_EXTENSION_DAYS: i64 = 10;

/// Where a row starts: an appeal brought to a status through the state machine itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Given {
    Received,
    ReceivedExtended,
    Seen,
    SeenExtended,
    Resolved,
    ResolvedExtended,
    /// Resolved, then reopened: `SEEN` again, with a resolution in its past.
    Reopened,
}

/// The command a row issues, described so that the tables can be constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Triage,
    AddNote,
    MarkSeen,
    Extend { days: i64 },
    Resolve { outcome: Outcome, duplicate_of: Original },
    Reopen,
}

/// What a resolution names as the appeal it duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Original {
    Nothing,
    AnotherAppeal,
    TheAppealItself,
}

/// The `expected_version` a row passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// The appeal's current version, as an up-to-date client sends it.
    Current,
    /// The current version moved by this much: negative is stale, positive is a
    /// version the appeal never had.
    Off(i32),
    /// No version, as `addNote` is issued.
    Unversioned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Accepted {
        status: Status,
        /// How much the version grows: 1 for changes, 0 for notes.
        version_step: i32,
        kind: EventKind,
        /// The event's `from_status` and `to_status`, set only when the status moves.
        moves: Option<(Status, Status)>,
    },
    Refused(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    InvalidTransition,
    AlreadyExtended,
    VersionConflict,
    /// `CommandError::Invalid` about the `duplicateOf` field.
    InvalidDuplicateOf,
}

struct Row {
    name: &'static str,
    given: Given,
    command: Cmd,
    version: Version,
    expect: Expect,
}

const fn stays(status: Status, version_step: i32, kind: EventKind) -> Expect {
    Expect::Accepted { status, version_step, kind, moves: None }
}

const fn moves(from: Status, to: Status, kind: EventKind) -> Expect {
    Expect::Accepted { status: to, version_step: 1, kind, moves: Some((from, to)) }
}

const fn resolve(outcome: Outcome, duplicate_of: Original) -> Cmd {
    Cmd::Resolve { outcome, duplicate_of }
}

const fn row(name: &'static str, given: Given, command: Cmd, expect: Expect) -> Row {
    let version = match command {
        Cmd::AddNote => Version::Unversioned,
        _ => Version::Current,
    };
    Row { name, given, command, version, expect }
}

const fn stale(name: &'static str, given: Given, command: Cmd) -> Row {
    Row { name, given, command, version: Version::Off(-1), expect: Expect::Refused(Refusal::VersionConflict) }
}

const FROM_RECEIVED: &[Row] = &[
    row("triaging an unread appeal", G::Received, Cmd::Triage, stays(RECEIVED, 1, EventKind::Triaged)),
    row("noting on an unread appeal", G::Received, Cmd::AddNote, stays(RECEIVED, 0, EventKind::NoteAdded)),
    row("the head reading an unread appeal", G::Received, Cmd::MarkSeen, moves(RECEIVED, SEEN, EventKind::Seen)),
    row(
        "extending an unread appeal's deadline",
        G::Received,
        Cmd::Extend { days: 30 },
        stays(RECEIVED, 1, EventKind::DeadlineExtended),
    ),
    row(
        "extending an unread appeal's deadline twice",
        G::ReceivedExtended,
        Cmd::Extend { days: 1 },
        Refused(AlreadyExtended),
    ),
    row("resolving an unread appeal", G::Received, resolve(Outcome::Satisfied, Nothing), Refused(InvalidTransition)),
    row(
        "resolving an unread appeal as a duplicate",
        G::Received,
        resolve(Outcome::Duplicate, AnotherAppeal),
        Refused(InvalidTransition),
    ),
    row("reopening an unread appeal", G::Received, Cmd::Reopen, Refused(InvalidTransition)),
    stale("triaging an unread appeal at a stale version", G::Received, Cmd::Triage),
    stale("reading an unread appeal at a stale version", G::Received, Cmd::MarkSeen),
    stale("extending an unread appeal at a stale version", G::Received, Cmd::Extend { days: 5 }),
    Row {
        name: "reading an unread appeal at a version it never had",
        given: G::Received,
        command: Cmd::MarkSeen,
        version: Version::Off(1),
        expect: Refused(VersionConflict),
    },
];

const FROM_SEEN: &[Row] = &[
    row("triaging a read appeal", G::Seen, Cmd::Triage, stays(SEEN, 1, EventKind::Triaged)),
    row("noting on a read appeal", G::Seen, Cmd::AddNote, stays(SEEN, 0, EventKind::NoteAdded)),
    row("marking a read appeal seen again", G::Seen, Cmd::MarkSeen, Refused(InvalidTransition)),
    row("marking a reopened appeal seen again", G::Reopened, Cmd::MarkSeen, Refused(InvalidTransition)),
    row(
        "extending a read appeal's deadline",
        G::Seen,
        Cmd::Extend { days: 1 },
        stays(SEEN, 1, EventKind::DeadlineExtended),
    ),
    row("extending a read appeal's deadline twice", G::SeenExtended, Cmd::Extend { days: 1 }, Refused(AlreadyExtended)),
    row(
        "resolving a read appeal as satisfied",
        G::Seen,
        resolve(Outcome::Satisfied, Nothing),
        moves(SEEN, RESOLVED, EventKind::Resolved),
    ),
    row(
        "resolving a read appeal as explained",
        G::Seen,
        resolve(Outcome::Explained, Nothing),
        moves(SEEN, RESOLVED, EventKind::Resolved),
    ),
    row(
        "resolving a read appeal as declined",
        G::Seen,
        resolve(Outcome::Declined, Nothing),
        moves(SEEN, RESOLVED, EventKind::Resolved),
    ),
    row(
        "resolving a read appeal as redirected",
        G::Seen,
        resolve(Outcome::Redirected, Nothing),
        moves(SEEN, RESOLVED, EventKind::Resolved),
    ),
    row(
        "resolving a read appeal as needing no answer",
        G::Seen,
        resolve(Outcome::NoAnswerRequired, Nothing),
        moves(SEEN, RESOLVED, EventKind::Resolved),
    ),
    row(
        "resolving a read appeal as a duplicate of another",
        G::Seen,
        resolve(Outcome::Duplicate, AnotherAppeal),
        moves(SEEN, RESOLVED, EventKind::Resolved),
    ),
    row(
        "resolving a reopened appeal again",
        G::Reopened,
        resolve(Outcome::Explained, Nothing),
        moves(SEEN, RESOLVED, EventKind::Resolved),
    ),
    row(
        "resolving a read appeal as a duplicate without naming the original",
        G::Seen,
        resolve(Outcome::Duplicate, Nothing),
        Refused(InvalidDuplicateOf),
    ),
    row(
        "resolving a read appeal as a duplicate of itself",
        G::Seen,
        resolve(Outcome::Duplicate, TheAppealItself),
        Refused(InvalidDuplicateOf),
    ),
    row(
        "resolving a read appeal as satisfied while naming an original",
        G::Seen,
        resolve(Outcome::Satisfied, AnotherAppeal),
        Refused(InvalidDuplicateOf),
    ),
    row(
        "resolving a read appeal as needing no answer while naming an original",
        G::Seen,
        resolve(Outcome::NoAnswerRequired, AnotherAppeal),
        Refused(InvalidDuplicateOf),
    ),
    row("reopening a read appeal", G::Seen, Cmd::Reopen, Refused(InvalidTransition)),
    row("reopening a reopened appeal", G::Reopened, Cmd::Reopen, Refused(InvalidTransition)),
    stale("triaging a read appeal at a stale version", G::Seen, Cmd::Triage),
    stale("extending a read appeal at a stale version", G::Seen, Cmd::Extend { days: 5 }),
    stale("resolving a read appeal at a stale version", G::Seen, resolve(Outcome::Satisfied, Nothing)),
    stale("resolving a reopened appeal at a stale version", G::Reopened, resolve(Outcome::Satisfied, Nothing)),
];

const FROM_RESOLVED: &[Row] = &[
    row("triaging a resolved appeal", G::Resolved, Cmd::Triage, stays(RESOLVED, 1, EventKind::Triaged)),
    row("noting on a resolved appeal", G::Resolved, Cmd::AddNote, stays(RESOLVED, 0, EventKind::NoteAdded)),
    row("marking a resolved appeal seen", G::Resolved, Cmd::MarkSeen, Refused(InvalidTransition)),
    row("extending a resolved appeal's deadline", G::Resolved, Cmd::Extend { days: 1 }, Refused(InvalidTransition)),
    row(
        "extending the already extended deadline of a resolved appeal",
        G::ResolvedExtended,
        Cmd::Extend { days: 1 },
        Refused(InvalidTransition),
    ),
    row("resolving a resolved appeal", G::Resolved, resolve(Outcome::Declined, Nothing), Refused(InvalidTransition)),
    row("reopening a resolved appeal", G::Resolved, Cmd::Reopen, moves(RESOLVED, SEEN, EventKind::Reopened)),
    row(
        "reopening a resolved appeal whose deadline was extended",
        G::ResolvedExtended,
        Cmd::Reopen,
        moves(RESOLVED, SEEN, EventKind::Reopened),
    ),
    stale("triaging a resolved appeal at a stale version", G::Resolved, Cmd::Triage),
    stale("reopening a resolved appeal at a stale version", G::Resolved, Cmd::Reopen),
];

#[test]
fn every_command_on_a_received_appeal_is_accepted_or_refused_as_the_table_says() {
    FROM_RECEIVED.iter().for_each(check);
}

#[test]
fn every_command_on_a_seen_appeal_is_accepted_or_refused_as_the_table_says() {
    FROM_SEEN.iter().for_each(check);
}

#[test]
fn every_command_on_a_resolved_appeal_is_accepted_or_refused_as_the_table_says() {
    FROM_RESOLVED.iter().for_each(check);
}

#[test]
fn the_tables_name_every_status_and_command_pair() {
    let tables = [(RECEIVED, FROM_RECEIVED), (SEEN, FROM_SEEN), (RESOLVED, FROM_RESOLVED)];
    let mut covered = BTreeSet::new();
    for (status, rows) in tables {
        for row in rows {
            let given = appeal_in(row.given);
            assert_eq!(given.status, status, "{}: listed under {status} but starts {}", row.name, given.status);
            if row.version != Version::Off(-1) && row.version != Version::Off(1) {
                covered.insert((status, row.command.build(given.id).name()));
            }
        }
    }
    let every_command = [
        Cmd::Triage,
        Cmd::AddNote,
        Cmd::MarkSeen,
        Cmd::Extend { days: 1 },
        resolve(Outcome::Satisfied, Nothing),
        Cmd::Reopen,
    ];
    for status in Status::ALL {
        for command in every_command {
            let name = command.build(appeal_id()).name();
            assert!(covered.contains(&(*status, name)), "no row issues `{name}` on a {status} appeal");
        }
    }
}

#[test]
fn a_new_appeal_is_received_at_version_one_with_its_deadlines_fixed() {
    let submitted_by = UserId::from_uuid(Uuid::from_u128(0x1a));
    let Applied { appeal, event } = Appeal::receive(
        appeal_id(),
        "TOMSK-2026-000001".to_owned(),
        municipality_id(),
        submission(),
        Some(submitted_by),
        received_at(),
        &DeadlinePolicy::default(),
    );
    assert_eq!(appeal.status, Status::Received);
    assert_eq!(appeal.version, 1);
    assert_eq!(appeal.seen_due_at, received_at() + TimeDelta::hours(72));
    assert_eq!(appeal.due_at, received_at() + TimeDelta::hours(30 * 24));
    assert_eq!((appeal.seen_at, appeal.resolution.clone(), appeal.deadline_extended), (None, None, false));
    assert_eq!(appeal.priority, Priority::Normal);
    assert_eq!(event.kind(), EventKind::Received);
    assert_eq!((event.from_status, event.to_status), (None, Some(Status::Received)));
    assert_eq!((event.actor_id, event.at), (Some(submitted_by), received_at()));
}

#[test]
fn triage_changes_only_the_fields_it_is_given() {
    let appeal = appeal_in(G::Seen);
    let roads = Category::parse("дороги").expect("a valid category");
    let pothole = Tag::parse("яма").expect("a valid tag");

    let set_all = Command::Triage {
        priority: Some(Priority::Urgent),
        category: Some(roads.clone()),
        tags: Some(vec![pothole.clone()]),
    };
    let triaged = appeal.apply(&set_all, actor(), command_at(), Some(appeal.version)).expect("triage is accepted");
    assert_eq!(
        (triaged.appeal.priority, triaged.appeal.category.clone(), triaged.appeal.tags.clone()),
        (Priority::Urgent, Some(roads.clone()), vec![pothole.clone()])
    );

    let only_priority = Command::Triage { priority: Some(Priority::Low), category: None, tags: None };
    let reprioritised = triaged
        .appeal
        .apply(&only_priority, actor(), command_at(), Some(triaged.appeal.version))
        .expect("triage is accepted");
    assert_eq!(
        (reprioritised.appeal.priority, reprioritised.appeal.category.clone(), reprioritised.appeal.tags.clone()),
        (Priority::Low, Some(roads.clone()), vec![pothole.clone()]),
        "fields left out keep their values"
    );
    assert_eq!(
        reprioritised.event.data,
        EventData::Triaged { priority: Priority::Low, category: Some(roads), tags: vec![pothole] },
        "the event records the triage fields as they stand after the command"
    );
}

#[test]
fn resolving_records_the_outcome_the_response_and_who_resolved_it_when() {
    let appeal = appeal_in(G::Seen);
    let resolver = UserId::from_uuid(Uuid::from_u128(0x2b));
    let command = resolve(Outcome::Duplicate, AnotherAppeal).build(appeal.id);
    let Applied { appeal: resolved, event } =
        appeal.apply(&command, resolver, command_at(), Some(appeal.version)).expect("a seen appeal can be resolved");
    let resolution = resolved.resolution.clone().expect("a resolved appeal has a resolution");
    assert_eq!(resolution.outcome, Outcome::Duplicate);
    assert_eq!(resolution.response.as_str(), RESPONSE);
    assert_eq!(resolution.duplicate_of, Some(another_appeal_id()));
    assert_eq!((resolution.resolved_by, resolution.resolved_at), (resolver, command_at()));
    assert_eq!(resolved.resolved_at(), Some(command_at()));
    assert_eq!(resolved.seen_at, appeal.seen_at, "resolving does not touch when the head read the appeal");
    assert_eq!(event.note.as_deref(), Some(RESPONSE));
}

#[test]
fn reopening_clears_the_resolution_but_keeps_when_the_head_first_read_the_appeal() {
    let resolved = appeal_in(G::Resolved);
    let seen_at = resolved.seen_at.expect("a resolved appeal was seen");
    let Applied { appeal: reopened, event } = resolved
        .apply(&Cmd::Reopen.build(resolved.id), actor(), command_at(), Some(resolved.version))
        .expect("a resolved appeal can be reopened");
    assert_eq!(reopened.status, Status::Seen);
    assert_eq!(reopened.resolution, None);
    assert_eq!(reopened.resolved_at(), None);
    assert_eq!(reopened.seen_at, Some(seen_at));
    assert_eq!(event.data, EventData::Reopened { reason: Reason::parse(REOPEN_REASON).expect("a valid reason") });

    let later = command_at() + TimeDelta::hours(5);
    let resolved_again = reopened
        .apply(&resolve(Outcome::Declined, Nothing).build(reopened.id), actor(), later, Some(reopened.version))
        .expect("a reopened appeal can be resolved again")
        .appeal;
    assert_eq!(resolved_again.resolution.as_ref().map(|resolution| resolution.outcome), Some(Outcome::Declined));
    assert_eq!(resolved_again.resolved_at(), Some(later));
    assert_eq!(resolved_again.seen_at, Some(seen_at));
}

#[test]
fn an_extension_adds_its_days_in_whole_days_of_24_hours_to_the_answer_deadline() {
    for given in [G::Received, G::Seen, G::Reopened] {
        for days in [1, 7, 29, 30] {
            let name = format!("{days} days from {given:?}");
            let appeal = appeal_in(given);
            let Applied { appeal: extended, event } = appeal
                .apply(&Cmd::Extend { days }.build(appeal.id), actor(), command_at(), Some(appeal.version))
                .unwrap_or_else(|error| panic!("{name}: refused with {error:?}"));
            let expected_due_at = received_at() + TimeDelta::hours(30 * 24) + TimeDelta::hours(days * 24);
            assert_eq!(extended.due_at, expected_due_at, "{name}: due_at");
            assert_eq!(extended.seen_due_at, appeal.seen_due_at, "{name}: the reading deadline stays");
            assert!(extended.deadline_extended, "{name}: the appeal is marked extended");
            assert_eq!(
                event.data,
                EventData::DeadlineExtended {
                    days: ExtensionDays::parse(days, &DeadlinePolicy::default()).expect("a valid extension"),
                    reason: Reason::parse(EXTENSION_REASON).expect("a valid reason"),
                    due_at: expected_due_at,
                },
                "{name}: the event records the new deadline"
            );
        }
    }
}

#[test]
fn an_extension_is_from_one_day_to_the_policy_maximum() {
    let default = DeadlinePolicy::default();
    let shorter = DeadlinePolicy { max_extension: "10d".parse().expect("a valid duration"), ..default };
    let cases = [
        ("0 days by default", 0, default, false),
        ("1 day by default", 1, default, true),
        ("30 days by default", 30, default, true),
        ("31 days by default", 31, default, false),
        ("-5 days by default", -5, default, false),
        ("10 days under a 10-day maximum", 10, shorter, true),
        ("11 days under a 10-day maximum", 11, shorter, false),
    ];
    for (name, days, policy, accepted) in cases {
        let parsed = ExtensionDays::parse(days, &policy);
        assert_eq!(parsed.is_ok(), accepted, "{name}: {parsed:?}");
        if let Ok(parsed) = parsed {
            assert_eq!(parsed.get(), days, "{name}");
        }
    }
}

#[test]
fn a_colleagues_note_never_makes_ones_own_command_stale() {
    let appeal = appeal_in(G::Received);
    let version_read = appeal.version;
    let noted = appeal
        .apply(&Cmd::AddNote.build(appeal.id), UserId::from_uuid(Uuid::from_u128(0x3c)), command_at(), None)
        .expect("a note is accepted")
        .appeal;
    assert_eq!(noted.version, version_read);
    let seen = noted
        .apply(&Cmd::MarkSeen.build(noted.id), actor(), command_at(), Some(version_read))
        .expect("the version read before the note is still current");
    assert_eq!(seen.appeal.status, Status::Seen);
}

/// One row of the `overdue` table: an appeal, a moment measured from its receipt,
/// and whether it is then `overdue` and `seenOverdue`.
struct Moment {
    name: &'static str,
    given: Given,
    after_receipt: TimeDelta,
    overdue: bool,
    seen_overdue: bool,
}

const fn moment(name: &'static str, given: Given, seconds: i64, overdue: bool, seen_overdue: bool) -> Moment {
    Moment { name, given, after_receipt: TimeDelta::seconds(seconds), overdue, seen_overdue }
}

/// Seconds from receipt to the answer deadline of the `*Extended` starting points.
const EXTENDED_DUE: i64 = (30 + SETUP_EXTENSION_DAYS) * DAY;

const MOMENTS: &[Moment] = &[
    moment("an unread appeal on receipt", G::Received, 0, false, false),
    moment("an unread appeal exactly at its reading deadline", G::Received, 3 * DAY, false, false),
    moment("an unread appeal a second past its reading deadline", G::Received, 3 * DAY + 1, false, true),
    moment("an unread appeal exactly at its answer deadline", G::Received, 30 * DAY, false, true),
    moment("an unread appeal a second past its answer deadline", G::Received, 30 * DAY + 1, true, true),
    moment("a read appeal a second past its reading deadline", G::Seen, 3 * DAY + 1, false, false),
    moment("a read appeal exactly at its answer deadline", G::Seen, 30 * DAY, false, false),
    moment("a read appeal a second past its answer deadline", G::Seen, 30 * DAY + 1, true, false),
    moment("an unread extended appeal past the original deadline", G::ReceivedExtended, 30 * DAY + 1, false, true),
    moment("an unread extended appeal exactly at the new deadline", G::ReceivedExtended, EXTENDED_DUE, false, true),
    moment("an unread extended appeal past the new deadline", G::ReceivedExtended, EXTENDED_DUE + 1, true, true),
    moment("a read extended appeal past the original deadline", G::SeenExtended, 30 * DAY + 1, false, false),
    moment("a read extended appeal past the new deadline", G::SeenExtended, EXTENDED_DUE + 1, true, false),
    moment("a resolved appeal past its reading deadline", G::Resolved, 3 * DAY + 1, false, false),
    moment("a resolved appeal past its answer deadline", G::Resolved, 30 * DAY + 1, false, false),
    moment("a resolved appeal years later", G::Resolved, 1_000 * DAY, false, false),
    moment("a resolved extended appeal past the new deadline", G::ResolvedExtended, EXTENDED_DUE + 1, false, false),
    moment("a reopened appeal before its answer deadline", G::Reopened, 29 * DAY, false, false),
    moment("a reopened appeal past its answer deadline", G::Reopened, 30 * DAY + 1, true, false),
];

#[test]
fn overdue_and_seen_overdue_are_judged_against_the_time_asked_about() {
    for moment in MOMENTS {
        let appeal = appeal_in(moment.given);
        let now = received_at() + moment.after_receipt;
        assert_eq!(appeal.is_overdue(now), moment.overdue, "{}: overdue", moment.name);
        assert_eq!(appeal.is_seen_overdue(now), moment.seen_overdue, "{}: seen overdue", moment.name);
    }
}

#[test]
fn resolving_a_late_appeal_ends_its_overdue_and_reopening_brings_it_back() {
    let late = received_at() + TimeDelta::days(45);
    let seen = appeal_in(G::Seen);
    assert!(seen.is_overdue(late), "a read, unanswered appeal is overdue after 45 days");
    let resolved = seen
        .apply(&resolve(Outcome::Satisfied, Nothing).build(seen.id), actor(), late, Some(seen.version))
        .expect("a late appeal can still be resolved")
        .appeal;
    assert!(!resolved.is_overdue(late), "a resolved appeal is not overdue");
    assert!(!resolved.is_overdue(late + TimeDelta::days(365)), "a resolved appeal stays not overdue");
    let reopened = resolved
        .apply(&Cmd::Reopen.build(resolved.id), actor(), late, Some(resolved.version))
        .expect("a resolved appeal can be reopened")
        .appeal;
    assert!(reopened.is_overdue(late), "a reopened appeal is held to its old deadline");
    assert!(!reopened.is_seen_overdue(late), "a reopened appeal was read");
}

/// Applies `row` to its starting appeal and asserts the result, naming the row.
fn check(row: &Row) {
    let name = row.name;
    let before = appeal_in(row.given);
    let command = row.command.build(before.id);
    let expected_version = match row.version {
        Version::Current => Some(before.version),
        Version::Off(offset) => Some(before.version + offset),
        Version::Unversioned => None,
    };
    let result = before.apply(&command, actor(), command_at(), expected_version);
    match row.expect {
        Expect::Accepted { status, version_step, kind, moves } => {
            let Applied { appeal, event } =
                result.unwrap_or_else(|error| panic!("{name}: should be accepted, was refused with {error:?}"));
            assert_eq!(appeal.status, status, "{name}: status");
            assert_eq!(appeal.version, before.version + version_step, "{name}: version");
            assert_eq!(event.kind(), kind, "{name}: event kind");
            assert_eq!((event.from_status, event.to_status), moves.unzip(), "{name}: event from/to statuses");
            assert_eq!(event.actor_id, Some(actor()), "{name}: event actor");
            assert_eq!(event.at, command_at(), "{name}: event time");
            assert_eq!(event.note.as_deref(), row.command.note(), "{name}: event note");
        }
        Expect::Refused(refusal) => {
            let error = result.expect_err(&format!("{name}: should be refused with {refusal:?}"));
            match refusal {
                Refusal::InvalidTransition => assert_eq!(
                    error,
                    CommandError::InvalidTransition { command: command.name(), status: before.status },
                    "{name}"
                ),
                Refusal::AlreadyExtended => assert_eq!(error, CommandError::AlreadyExtended, "{name}"),
                Refusal::VersionConflict => assert_eq!(
                    error,
                    CommandError::VersionConflict {
                        expected: expected_version.expect("a conflict row passes a version"),
                        current: before.version,
                    },
                    "{name}"
                ),
                Refusal::InvalidDuplicateOf => assert!(
                    matches!(&error, CommandError::Invalid(input) if input.field == "duplicateOf"),
                    "{name}: expected an invalid duplicateOf, got {error:?}"
                ),
            }
        }
    }
}

impl Cmd {
    fn build(self, appeal_id: AppealId) -> Command {
        match self {
            Cmd::Triage => Command::Triage {
                priority: Some(Priority::High),
                category: Some(Category::parse("дороги").expect("a valid category")),
                tags: Some(vec![Tag::parse("яма").expect("a valid tag")]),
            },
            Cmd::AddNote => Command::AddNote { text: NoteText::parse(NOTE).expect("a valid note") },
            Cmd::MarkSeen => Command::MarkSeen,
            Cmd::Extend { days } => Command::ExtendDeadline {
                days: ExtensionDays::parse(days, &DeadlinePolicy::default()).expect("a valid extension"),
                reason: Reason::parse(EXTENSION_REASON).expect("a valid reason"),
            },
            Cmd::Resolve { outcome, duplicate_of } => Command::Resolve {
                outcome,
                response: ResponseText::parse(RESPONSE).expect("a valid response"),
                duplicate_of: match duplicate_of {
                    Original::Nothing => None,
                    Original::AnotherAppeal => Some(another_appeal_id()),
                    Original::TheAppealItself => Some(appeal_id),
                },
            },
            Cmd::Reopen => Command::Reopen { reason: Reason::parse(REOPEN_REASON).expect("a valid reason") },
        }
    }

    /// The human text the command's event carries.
    fn note(self) -> Option<&'static str> {
        match self {
            Cmd::Triage | Cmd::MarkSeen => None,
            Cmd::AddNote => Some(NOTE),
            Cmd::Extend { .. } => Some(EXTENSION_REASON),
            Cmd::Resolve { .. } => Some(RESPONSE),
            Cmd::Reopen => Some(REOPEN_REASON),
        }
    }
}

/// An appeal brought to `given` by the state machine, each step an hour after the last.
fn appeal_in(given: Given) -> Appeal {
    let extend = Cmd::Extend { days: SETUP_EXTENSION_DAYS };
    let satisfied = resolve(Outcome::Satisfied, Nothing);
    let steps: &[Cmd] = match given {
        G::Received => &[],
        G::ReceivedExtended => &[extend],
        G::Seen => &[Cmd::MarkSeen],
        G::SeenExtended => &[Cmd::MarkSeen, extend],
        G::Resolved => &[Cmd::MarkSeen, satisfied],
        G::ResolvedExtended => &[Cmd::MarkSeen, extend, satisfied],
        G::Reopened => &[Cmd::MarkSeen, satisfied, Cmd::Reopen],
    };
    let mut appeal = Appeal::receive(
        appeal_id(),
        "TOMSK-2026-000001".to_owned(),
        municipality_id(),
        submission(),
        None,
        received_at(),
        &DeadlinePolicy::default(),
    )
    .appeal;
    for (hour, step) in (1..).zip(steps) {
        appeal = appeal
            .apply(&step.build(appeal.id), actor(), received_at() + TimeDelta::hours(hour), Some(appeal.version))
            .unwrap_or_else(|error| panic!("setting up {given:?}: {step:?} was refused with {error:?}"))
            .appeal;
    }
    appeal
}

fn submission() -> Submission {
    Submission {
        channel: Channel::Telegram,
        external_id: None,
        author_name: None,
        author_contact: None,
        text: AppealText::parse("Яма на дороге у дома 5").expect("a valid appeal text"),
    }
}

fn received_at() -> DateTime<Utc> {
    "2026-03-02T09:00:00Z".parse().expect("a valid timestamp")
}

/// When the rows' commands are issued: after every setup step.
fn command_at() -> DateTime<Utc> {
    received_at() + TimeDelta::days(1)
}

fn appeal_id() -> AppealId {
    AppealId::from_uuid(Uuid::from_u128(1))
}

fn another_appeal_id() -> AppealId {
    AppealId::from_uuid(Uuid::from_u128(2))
}

fn municipality_id() -> MunicipalityId {
    MunicipalityId::from_uuid(Uuid::from_u128(0x70))
}

fn actor() -> UserId {
    UserId::from_uuid(Uuid::from_u128(0x5e))
}
