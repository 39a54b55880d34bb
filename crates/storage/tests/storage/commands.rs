//! Commands: the life of an appeal, refusals that change nothing, and commands
//! racing on one appeal.

use appeals_core::text::{Category, ResponseText, Tag};
use appeals_core::{Actor, Appeal, AppealId, Command, CommandError, EventKind, Outcome, Priority, Role, Status};
use appeals_storage::testing::{Backend, on_both_databases};
use appeals_storage::{StorageError, StoredEvent};

use crate::support::{
    Region, categorize, days, duplicate_of, extend, hours, note, outcome, prioritize, race, reopen, resolve,
};

on_both_databases!(
    concurrent_mark_seen_with_one_expected_version_succeeds_exactly_once,
    concurrent_triage_with_one_expected_version_succeeds_exactly_once,
    concurrent_notes_all_succeed_and_number_the_history_without_gaps,
    an_appeal_lives_through_seen_resolved_reopened_and_resolved_again,
    a_refused_command_changes_nothing,
    a_duplicate_must_name_an_appeal_the_resolver_can_see,
    triage_and_a_deadline_extension_round_trip_through_storage,
);

/// A command that must be refused: the case, who, on which appeal, what, at
/// which version, and the refusal expected.
type Refusal = (&'static str, Actor, AppealId, Command, Option<i32>, &'static str);

/// The callers whose command succeeded; every other caller must have met a
/// version conflict, having expected `expected` while the appeal was at `current`.
fn winners_and_conflicts<T>(
    case: &str,
    results: &[Result<T, StorageError>],
    expected: i32,
    current: i32,
) -> Vec<usize> {
    let mut winners = Vec::new();
    for (i, result) in results.iter().enumerate() {
        match result {
            Ok(_) => winners.push(i),
            Err(StorageError::Command(CommandError::VersionConflict { expected: e, current: c })) => {
                assert_eq!((*e, *c), (expected, current), "{case}: caller {i}'s conflict");
            }
            Err(error) => panic!("{case}: caller {i} failed otherwise than by a version conflict: {error}"),
        }
    }
    winners
}

fn kinds(history: &[StoredEvent]) -> Vec<EventKind> {
    history.iter().map(|stored| stored.event.kind).collect()
}

fn seqs(history: &[StoredEvent]) -> Vec<i32> {
    history.iter().map(|stored| stored.event.seq).collect()
}

/// Every event's hash chains to the one before it.
fn assert_chained(case: &str, history: &[StoredEvent]) {
    let mut previous = String::new();
    for stored in history {
        assert_eq!(
            stored.event.hash,
            stored.event.expected_hash(&previous),
            "{case}: the hash of event {}",
            stored.event.seq
        );
        previous = stored.event.hash.clone();
    }
}

async fn assert_verifies(case: &str, region: &Region, id: AppealId, events: usize) {
    let report = region.store.verify_appeal(id).await.expect("verifying").expect("the appeal exists");
    assert!(report.ok(), "{case}: the history verifies: {report:?}");
    assert_eq!(report.events_checked, events, "{case}: events checked");
}

async fn concurrent_mark_seen_with_one_expected_version_succeeds_exactly_once(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let appeal = region.submit("tomsk", "Не работает светофор на Ленина").await;
    let results = race(16, |_| {
        let (store, head) = (region.store.clone(), region.tomsk_head);
        async move { store.execute_command(&head, appeal.id, &Command::MarkSeen, Some(1)).await }
    })
    .await;
    let winners = winners_and_conflicts("markSeen", &results, 1, 2);
    assert_eq!(winners.len(), 1, "exactly one markSeen succeeded: {winners:?}");
    let stored = region.fetch(appeal.id).await;
    assert_eq!((stored.status, stored.version), (Status::Seen, 2), "the appeal after the race");
    let history = region.store.history(appeal.id).await.expect("history");
    assert_eq!(kinds(&history), [EventKind::Received, EventKind::Seen], "the history has exactly two events");
    assert_verifies("markSeen", &region, appeal.id, 2).await;
}

async fn concurrent_triage_with_one_expected_version_succeeds_exactly_once(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let appeal = region.submit("tomsk", "Не работает светофор на Ленина").await;
    let results = race(16, |i| {
        let store = region.store.clone();
        let actor = if i % 2 == 0 { region.tomsk_head } else { region.tomsk_assistant };
        async move {
            store.execute_command(&actor, appeal.id, &categorize(&format!("Категория {i}")), Some(1)).await
        }
    })
    .await;
    let winners = winners_and_conflicts("triage", &results, 1, 2);
    assert_eq!(winners.len(), 1, "exactly one triage succeeded: {winners:?}");
    let stored = region.fetch(appeal.id).await;
    let winner = format!("Категория {}", winners[0]);
    assert_eq!(stored.category.as_ref().map(Category::as_str), Some(winner.as_str()), "the winner's category stands");
    assert_eq!((stored.status, stored.version), (Status::Received, 2), "the appeal after the race");
    let history = region.store.history(appeal.id).await.expect("history");
    assert_eq!(kinds(&history), [EventKind::Received, EventKind::Triaged], "the history has exactly two events");
    assert_verifies("triage", &region, appeal.id, 2).await;
}

async fn concurrent_notes_all_succeed_and_number_the_history_without_gaps(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let appeal = region.submit("tomsk", "Во дворе не убирают снег").await;
    // Task 0 is the head reading the appeal at version 1, in the middle of the
    // notes: a colleague's note never makes one's own command stale.
    let results = race(25, |i| {
        let store = region.store.clone();
        let (head, assistant) = (region.tomsk_head, region.tomsk_assistant);
        async move {
            if i == 0 {
                store.execute_command(&head, appeal.id, &Command::MarkSeen, Some(1)).await
            } else {
                let author = if i % 3 == 0 { head } else { assistant };
                store.execute_command(&author, appeal.id, &note(&format!("Заметка {i}")), None).await
            }
        }
    })
    .await;
    for (i, result) in results.iter().enumerate() {
        assert_eq!(outcome(result), "Ok", "command {i}");
    }
    let history = region.store.history(appeal.id).await.expect("history");
    assert_eq!(seqs(&history), (1..=26).collect::<Vec<_>>(), "seq numbers 1..=26, without gaps");
    let mut notes: Vec<&str> = history.iter().filter_map(|stored| stored.event.note.as_deref()).collect();
    notes.sort();
    let mut expected: Vec<String> = (1..25).map(|i| format!("Заметка {i}")).collect();
    expected.sort();
    assert_eq!(notes, expected, "every note recorded once");
    let stored = region.fetch(appeal.id).await;
    assert_eq!((stored.status, stored.version), (Status::Seen, 2), "notes left the version alone");
    assert_chained("notes", &history);
    assert_verifies("notes", &region, appeal.id, 26).await;
}

async fn an_appeal_lives_through_seen_resolved_reopened_and_resolved_again(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let store = &region.store;
    let received = region.submit("tomsk", "Яма на дороге у школы №5").await;
    let id = received.id;

    region.advance(hours(5));
    let seen =
        store.execute_command(&region.tomsk_head, id, &Command::MarkSeen, Some(1)).await.expect("the head reads it");
    let seen_at = region.now();
    assert_eq!(
        (seen.appeal.status, seen.appeal.version, seen.appeal.seen_at),
        (Status::Seen, 2, Some(seen_at)),
        "seen"
    );
    assert_eq!(
        (seen.event.event.seq, seen.event.event.kind, seen.event.event.from_status, seen.event.event.to_status),
        (2, EventKind::Seen, Some(Status::Received), Some(Status::Seen)),
        "the SEEN event"
    );
    assert_eq!((seen.event.event.actor_id, seen.event.event.at), (Some(region.tomsk_head.user_id), seen_at), "by whom");

    region.advance(days(2));
    let first_response = "Ремонт дороги включён в план на май";
    let resolved = store
        .execute_command(&region.tomsk_assistant, id, &resolve(Outcome::Explained, first_response), Some(2))
        .await
        .expect("the assistant records the answer");
    let resolution = resolved.appeal.resolution.clone().expect("a resolved appeal has a resolution");
    assert_eq!((resolved.appeal.status, resolved.appeal.version), (Status::Resolved, 3), "resolved");
    assert_eq!(
        (resolution.outcome, resolution.response.as_str(), resolution.duplicate_of),
        (Outcome::Explained, first_response, None),
        "the resolution"
    );
    assert_eq!((resolution.resolved_by, resolution.resolved_at), (region.tomsk_assistant.user_id, region.now()), "by");
    assert_eq!(region.fetch(id).await, resolved.appeal, "the resolved appeal as stored");

    region.advance(days(1));
    let reopened = store
        .execute_command(&region.tomsk_head, id, &reopen("Ответ не по существу"), Some(3))
        .await
        .expect("the head reopens it");
    assert_eq!((reopened.appeal.status, reopened.appeal.version), (Status::Seen, 4), "reopened");
    assert_eq!((reopened.appeal.resolution.clone(), reopened.appeal.resolved_at()), (None, None), "resolution cleared");
    assert_eq!(reopened.appeal.seen_at, Some(seen_at), "reopening keeps the first reading");
    let stored = region.fetch(id).await;
    assert_eq!(stored, reopened.appeal, "the reopened appeal as stored, resolution cleared");
    let history = store.history(id).await.expect("history");
    assert_eq!(
        kinds(&history),
        [EventKind::Received, EventKind::Seen, EventKind::Resolved, EventKind::Reopened],
        "the history after reopening has four events"
    );
    assert_eq!(history[2].event.note.as_deref(), Some(first_response), "the earlier resolution stays in the history");

    region.advance(days(1));
    let again = store
        .execute_command(&region.tomsk_head, id, &resolve(Outcome::Satisfied, "Яму заделали"), Some(4))
        .await
        .expect("the head resolves it again");
    let resolution = again.appeal.resolution.clone().expect("resolved again");
    assert_eq!((again.appeal.status, again.appeal.version), (Status::Resolved, 5), "resolved again");
    assert_eq!((resolution.outcome, resolution.resolved_by), (Outcome::Satisfied, region.tomsk_head.user_id), "anew");
    assert_eq!(resolution.resolved_at, region.now(), "the new resolution's time");

    let history = store.history(id).await.expect("history");
    assert_eq!(seqs(&history), [1, 2, 3, 4, 5], "seq numbers");
    let statuses: Vec<_> = history.iter().map(|s| (s.event.from_status, s.event.to_status)).collect();
    assert_eq!(
        statuses,
        [
            (None, Some(Status::Received)),
            (Some(Status::Received), Some(Status::Seen)),
            (Some(Status::Seen), Some(Status::Resolved)),
            (Some(Status::Resolved), Some(Status::Seen)),
            (Some(Status::Seen), Some(Status::Resolved)),
        ],
        "the statuses each event moved between"
    );
    let returned = [seen.event, resolved.event, reopened.event, again.event.clone()];
    assert_eq!(history[1..], returned, "commands returned what was stored, row ids included");
    assert_chained("the life", &history);
    assert_eq!(region.fetch(id).await, again.appeal, "the appeal as stored at the end");
    assert_verifies("the life", &region, id, 5).await;
}

async fn a_refused_command_changes_nothing(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let answered = region.submit("tomsk", "Не вывозят мусор").await;
    let answered = region.apply(&region.tomsk_head, &answered, Command::MarkSeen).await;
    let answered = region.apply(&region.tomsk_assistant, &answered, resolve(Outcome::Satisfied, "Вывезли")).await;
    let unread = region.submit("tomsk", "Нет воды").await;
    assert_eq!((answered.version, unread.version), (3, 1), "the starting versions");

    const CONFLICT: &str = "Command(VersionConflict)";
    const TRANSITION: &str = "Command(InvalidTransition)";
    const FORBIDDEN: &str = "Access(Forbidden)";
    const NOT_FOUND: &str = "Access(NotFound)";
    let (head, assistant, done, fresh) = (region.tomsk_head, region.tomsk_assistant, answered.id, unread.id);
    let (other_head, other_assistant) = (region.seversk_head, region.seversk_assistant);
    let response = || resolve(Outcome::Declined, "Отказано");
    let cases: Vec<Refusal> = vec![
        ("a stale version", head, done, reopen("Ещё раз"), Some(2), CONFLICT),
        ("a version from the future", head, done, reopen("Ещё"), Some(4), CONFLICT),
        ("marking a resolved appeal seen", head, done, Command::MarkSeen, Some(3), TRANSITION),
        ("resolving a resolved appeal", assistant, done, response(), Some(3), TRANSITION),
        ("extending a resolved appeal", assistant, done, extend(5, "Нужно время"), Some(3), TRANSITION),
        ("an assistant reopening", assistant, done, reopen("Плохо"), Some(3), FORBIDDEN),
        ("an auditor adding a note", region.auditor, done, note("Аудит"), None, FORBIDDEN),
        ("intake triaging", region.intake, done, prioritize(Priority::Urgent), Some(3), FORBIDDEN),
        ("the governor's office resolving", region.governor, done, response(), Some(3), FORBIDDEN),
        ("Seversk's head reopening", other_head, done, reopen("Плохо"), Some(3), NOT_FOUND),
        ("Seversk's assistant adding a note", other_assistant, done, note("Чужое"), None, NOT_FOUND),
        ("an assistant marking seen", assistant, fresh, Command::MarkSeen, Some(1), FORBIDDEN),
        ("the governor's office marking seen", region.governor, fresh, Command::MarkSeen, Some(1), FORBIDDEN),
        ("Seversk's head marking seen", other_head, fresh, Command::MarkSeen, Some(1), NOT_FOUND),
        ("resolving an unread appeal", head, fresh, response(), Some(1), TRANSITION),
        ("reopening an unread appeal", head, fresh, reopen("Плохо"), Some(1), TRANSITION),
        ("an unread appeal at a stale version", head, fresh, response(), Some(0), CONFLICT),
        ("an appeal that does not exist", head, AppealId::generate(), Command::MarkSeen, Some(1), NOT_FOUND),
        (
            "an auditor on an appeal that does not exist",
            region.auditor,
            AppealId::generate(),
            note("?"),
            None,
            FORBIDDEN,
        ),
    ];
    let events_before = region.number("SELECT COUNT(*) FROM appeal_event").await;
    let history_before =
        (region.store.history(answered.id).await.expect("h"), region.store.history(unread.id).await.expect("h"));
    for (case, actor, id, command, version, expected) in cases {
        let result = region.store.execute_command(&actor, id, &command, version).await;
        assert_eq!(outcome(&result), expected, "{case}");
        assert_eq!(region.fetch(answered.id).await, answered, "{case}: the resolved appeal is unchanged");
        assert_eq!(region.fetch(unread.id).await, unread, "{case}: the unread appeal is unchanged");
        let history_after =
            (region.store.history(answered.id).await.expect("h"), region.store.history(unread.id).await.expect("h"));
        assert_eq!(history_after, history_before, "{case}: the histories are unchanged");
        assert_eq!(region.number("SELECT COUNT(*) FROM appeal_event").await, events_before, "{case}: no event row");
    }
    let stale = region.store.execute_command(&region.tomsk_head, answered.id, &reopen("Ещё раз"), Some(2)).await;
    assert!(
        matches!(stale, Err(StorageError::Command(CommandError::VersionConflict { expected: 2, current: 3 }))),
        "a stale version names both versions: {stale:?}"
    );

    // The same commands by those allowed, at the right version, go through.
    let reopened = region.apply(&region.governor, &answered, reopen("Ответ неполный")).await;
    assert_eq!((reopened.status, reopened.version), (Status::Seen, 4), "the governor's office reopens anywhere");
    let seen = region.apply(&region.tomsk_head, &unread, Command::MarkSeen).await;
    assert_eq!((seen.status, seen.version), (Status::Seen, 2), "Tomsk's head marks Tomsk's appeal seen");
    assert_verifies("after refusals", &region, answered.id, 4).await;
}

async fn a_duplicate_must_name_an_appeal_the_resolver_can_see(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let original = region.submit("tomsk", "Яма на Ленина, 10").await;
    let repeat = region.submit("tomsk", "Яма на Ленина, 10 — повторно").await;
    let repeat = region.apply(&region.tomsk_head, &repeat, Command::MarkSeen).await;
    let foreign = region.submit("seversk", "Яма на Курчатова").await;
    let foreign = region.apply(&region.seversk_head, &foreign, Command::MarkSeen).await;
    let response = || ResponseText::parse("Уже отвечено").expect("a response");

    let cases: Vec<(&str, Actor, &Appeal, Command, &str)> = vec![
        (
            "an original in another municipality",
            region.tomsk_assistant,
            &repeat,
            duplicate_of(foreign.id),
            "Invalid(duplicateOf)",
        ),
        (
            "an original that does not exist",
            region.tomsk_assistant,
            &repeat,
            duplicate_of(AppealId::generate()),
            "Invalid(duplicateOf)",
        ),
        (
            "Seversk's head naming Tomsk's appeal",
            region.seversk_head,
            &foreign,
            duplicate_of(original.id),
            "Invalid(duplicateOf)",
        ),
        (
            "the appeal itself",
            region.tomsk_assistant,
            &repeat,
            duplicate_of(repeat.id),
            "Command(Invalid(duplicateOf))",
        ),
        (
            "DUPLICATE without an original",
            region.tomsk_head,
            &repeat,
            Command::Resolve { outcome: Outcome::Duplicate, response: response(), duplicate_of: None },
            "Command(Invalid(duplicateOf))",
        ),
        (
            "an original with another outcome",
            region.tomsk_head,
            &repeat,
            Command::Resolve { outcome: Outcome::Explained, response: response(), duplicate_of: Some(original.id) },
            "Command(Invalid(duplicateOf))",
        ),
    ];
    for (case, actor, target, command, expected) in cases {
        let result = region.store.execute_command(&actor, target.id, &command, Some(target.version)).await;
        assert_eq!(outcome(&result), expected, "{case}");
        assert_eq!(&region.fetch(target.id).await, target, "{case}: the appeal is unchanged");
        assert_eq!(region.store.history(target.id).await.expect("h").len(), 2, "{case}: no event was added");
    }

    let resolved = region.apply(&region.tomsk_assistant, &repeat, duplicate_of(original.id)).await;
    let resolution = resolved.resolution.clone().expect("resolved as a duplicate");
    assert_eq!((resolution.outcome, resolution.duplicate_of), (Outcome::Duplicate, Some(original.id)), "the duplicate");
    assert_eq!(region.fetch(repeat.id).await, resolved, "the duplicate as stored");
    assert_verifies("the duplicate", &region, repeat.id, 3).await;
}

async fn triage_and_a_deadline_extension_round_trip_through_storage(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let appeal = region.submit("kedrovy", "Не ходит автобус №3").await;
    let assistant = region.user("Помощник главы Кедрового", Role::Assistant, Some("kedrovy")).await;
    let head = region.user("Глава Кедрового", Role::Head, Some("kedrovy")).await;

    let tags: Vec<Tag> = ["транспорт", "ЖКХ", "school #5"].iter().map(|t| Tag::parse(t).expect("a tag")).collect();
    let triage = Command::Triage {
        priority: Some(Priority::High),
        category: Some(Category::parse("Дороги и транспорт").expect("a category")),
        tags: Some(tags.clone()),
    };
    let triaged = region.apply(&assistant, &appeal, triage).await;
    assert_eq!((triaged.priority, triaged.tags.clone(), triaged.version), (Priority::High, tags.clone(), 2), "triaged");
    assert_eq!(region.fetch(appeal.id).await, triaged, "the triage as stored, tags in order");
    let recategorized = region.apply(&head, &triaged, categorize("Транспорт")).await;
    assert_eq!((recategorized.priority, recategorized.tags.clone()), (Priority::High, tags), "unset fields stay");

    let extended = region.apply(&assistant, &recategorized, extend(10, "Нужен ответ перевозчика")).await;
    assert_eq!(extended.due_at, appeal.due_at + days(10), "the answer deadline moved by ten days");
    assert_eq!((extended.deadline_extended, extended.seen_due_at), (true, appeal.seen_due_at), "only dueAt moved");
    assert_eq!(region.fetch(appeal.id).await, extended, "the extension as stored");
    let again = region.store.execute_command(&assistant, appeal.id, &extend(5, "Ещё"), Some(extended.version)).await;
    assert_eq!(outcome(&again), "Command(AlreadyExtended)", "a second extension");
    let seen = region.apply(&head, &extended, Command::MarkSeen).await;
    let again = region.store.execute_command(&head, appeal.id, &extend(5, "Ещё"), Some(seen.version)).await;
    assert_eq!(outcome(&again), "Command(AlreadyExtended)", "a second extension once seen");
    let noted = region.apply(&assistant, &seen, note("Перевозчик ответил")).await;
    assert_eq!(noted.version, seen.version, "a note keeps the version");

    let history = region.store.history(appeal.id).await.expect("history");
    assert_eq!(
        kinds(&history),
        [
            EventKind::Received,
            EventKind::Triaged,
            EventKind::Triaged,
            EventKind::DeadlineExtended,
            EventKind::Seen,
            EventKind::NoteAdded
        ],
        "the history"
    );
    assert_eq!(history[3].event.note.as_deref(), Some("Нужен ответ перевозчика"), "the extension's reason");
    assert_verifies("triage and extension", &region, appeal.id, 6).await;
}
