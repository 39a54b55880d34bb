//! The tamper-evident history: rows edited or deleted behind the store's back
//! are reported at the event where the history stops being trustworthy, by
//! `verify_appeal` for one appeal and by `verify_all` across every appeal. With
//! an audit key, so is an edit by someone who recomputes every plain SHA-256
//! hash and the anchor, as anyone with write access to the database can.

use appeals_core::events::{ANCHOR_SEAL_BROKEN, EVENT_SEAL_BROKEN, EVENT_SEAL_MISSING};
use appeals_core::{Appeal, AppealId, Command, Outcome};
use appeals_storage::testing::{Backend, on_both_databases};
use appeals_storage::{AuditReport, StorageError, Store};

use crate::support::{Region, audit_key, code, note, race, resolve, web};

on_both_databases!(
    every_kind_of_tampering_is_reported_at_the_event_where_it_happened,
    verify_all_checks_every_appeal_and_stops_at_the_first_broken_one,
    verifying_while_commands_commit_reports_no_false_break,
    an_edit_rechained_with_plain_sha256_fools_the_unkeyed_check_but_not_the_seals,
    cutting_off_the_last_event_and_rewriting_the_anchor_is_caught_by_the_anchor_seal,
    a_wrong_key_fails_verification,
    configuring_a_key_for_the_first_time_seals_the_history_already_written,
    events_written_without_the_key_after_sealing_are_not_sealed_automatically,
);

/// An appeal with four events: RECEIVED, NOTE_ADDED, SEEN, RESOLVED.
async fn four_events(region: &Region, text: &str) -> Appeal {
    let appeal = region.submit("tomsk", text).await;
    let appeal = region.apply(&region.tomsk_assistant, &appeal, note("Позвонили заявителю")).await;
    let appeal = region.apply(&region.tomsk_head, &appeal, Command::MarkSeen).await;
    region.apply(&region.tomsk_assistant, &appeal, resolve(Outcome::Satisfied, "Отремонтировано")).await
}

/// The `WHERE` clause picking event `seq` of the appeal numbered `number`,
/// without naming its id (SQLite stores ids as 16-byte blobs).
fn event(seq: i32, number: &str) -> String {
    format!("seq = {seq} AND appeal_id = (SELECT id FROM appeal WHERE number = '{number}')")
}

async fn every_kind_of_tampering_is_reported_at_the_event_where_it_happened(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    type Tamper = fn(&str) -> Vec<String>;
    let cases: [(&str, Tamper, i32); 11] = [
        ("a note rewritten", |n| vec![format!("UPDATE appeal_event SET note = 'x' WHERE {}", event(2, n))], 2),
        (
            "the appeal text rewritten in the first event's payload",
            |n| vec![format!("UPDATE appeal_event SET data = REPLACE(data, 'Яма', 'Лужа') WHERE {}", event(1, n))],
            1,
        ),
        ("an actor erased", |n| vec![format!("UPDATE appeal_event SET actor_id = NULL WHERE {}", event(3, n))], 3),
        (
            "a status rewritten",
            |n| vec![format!("UPDATE appeal_event SET to_status = 'SEEN' WHERE {}", event(4, n))],
            4,
        ),
        (
            "a hash replaced",
            |n| vec![format!("UPDATE appeal_event SET hash = '{}' WHERE {}", "0".repeat(64), event(3, n))],
            3,
        ),
        (
            "two events swapped",
            |n| {
                vec![
                    format!("UPDATE appeal_event SET seq = 100 WHERE {}", event(2, n)),
                    format!("UPDATE appeal_event SET seq = 2 WHERE {}", event(3, n)),
                    format!("UPDATE appeal_event SET seq = 3 WHERE {}", event(100, n)),
                ]
            },
            2,
        ),
        ("an event in the middle deleted", |n| vec![format!("DELETE FROM appeal_event WHERE {}", event(2, n))], 2),
        ("the last event deleted", |n| vec![format!("DELETE FROM appeal_event WHERE {}", event(4, n))], 4),
        (
            "the appeal's priority edited",
            |n| vec![format!("UPDATE appeal SET priority = 'URGENT' WHERE number = '{n}'")],
            4,
        ),
        (
            "the appeal's resolution erased",
            |n| {
                vec![format!(
                    "UPDATE appeal SET status = 'SEEN', outcome = NULL, response = NULL, resolved_by = NULL, \
                     resolved_at = NULL WHERE number = '{n}'"
                )]
            },
            4,
        ),
        (
            "the appeal's anchor moved back",
            |n| vec![format!("UPDATE appeal SET last_event_seq = 3 WHERE number = '{n}'")],
            4,
        ),
    ];
    let untouched = four_events(&region, "Яма у подъезда, никто не трогал").await;
    for (case, tamper, broken_at) in cases {
        let appeal = four_events(&region, &format!("Яма: {case}")).await;
        let before = region.store.verify_appeal(appeal.id).await.expect("verifying").expect("exists");
        assert!(before.ok() && before.events_checked == 4, "{case}: the history verifies before tampering: {before:?}");
        for statement in tamper(&appeal.number) {
            assert!(region.execute(&statement).await >= 1, "{case}: `{statement}` changed a row");
        }
        let report = region.store.verify_appeal(appeal.id).await.expect("verifying").expect("exists");
        assert!(!report.ok(), "{case}: the tampering is detected");
        assert_eq!(report.broken.as_ref().map(|b| b.seq), Some(broken_at), "{case}: where: {:?}", report.broken);
        assert_eq!((report.appeal_id, report.number.as_str()), (appeal.id, appeal.number.as_str()), "{case}: which");
        let other = region.store.verify_appeal(untouched.id).await.expect("verifying").expect("exists");
        assert!(other.ok(), "{case}: another appeal's history still verifies: {other:?}");
    }
    let summary = region.store.verify_all().await.expect("verifying everything");
    let failure = summary.first_failure.expect("verify_all finds a broken appeal");
    assert_ne!(failure.appeal_id, untouched.id, "the untouched appeal is not the broken one");
    assert!(!failure.ok(), "the failure names where: {failure:?}");
}

async fn verify_all_checks_every_appeal_and_stops_at_the_first_broken_one(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let empty = region.store.verify_all().await.expect("verifying nothing");
    assert_eq!((empty.appeals_checked, empty.events_checked, empty.first_failure), (0, 0, None), "an empty database");

    // More appeals than one batch of verification (500), in every municipality.
    let codes: Vec<String> =
        region.store.municipalities().await.expect("municipalities").into_iter().map(|m| m.code).collect();
    let mut appeals: Vec<Appeal> = Vec::new();
    for round in 0..26 {
        let submitted = race(codes.len(), |i| {
            let (store, intake, to) = (region.store.clone(), region.intake, codes[i].clone());
            async move { store.submit(&intake, &code(&to), web(&format!("Яма номер {round}-{i}"))).await }
        })
        .await;
        appeals.extend(submitted.into_iter().map(|s| s.expect("a submission").appeal));
    }
    let mut events = appeals.len() as u64;
    for appeal in appeals.iter().filter(|a| a.municipality_id == region.tomsk.id).take(5) {
        let seen = region.apply(&region.tomsk_head, appeal, Command::MarkSeen).await;
        region.apply(&region.tomsk_assistant, &seen, note("Заметка")).await;
        events += 2;
    }

    let summary = region.store.verify_all().await.expect("verifying everything");
    assert_eq!(summary.first_failure, None, "every history verifies");
    assert_eq!((summary.appeals_checked, summary.events_checked), (520, events), "appeals and events checked");

    let mut sorted: Vec<AppealId> = appeals.iter().map(|a| a.id).collect();
    sorted.sort();
    let number_of = |id: AppealId| appeals.iter().find(|a| a.id == id).expect("known").number.clone();
    let last = number_of(sorted[sorted.len() - 1]);
    region.execute(&format!("UPDATE appeal_event SET note = 'подделка' WHERE {}", event(1, &last))).await;
    let summary = region.store.verify_all().await.expect("verifying everything");
    let failure = summary.first_failure.expect("the appeal in the last batch is found broken");
    assert_eq!((failure.number.as_str(), failure.broken.map(|b| b.seq)), (last.as_str(), Some(1)), "the last appeal");
    assert_eq!(summary.appeals_checked, 520, "every appeal was checked up to the broken one, the last");

    let first = number_of(sorted[0]);
    region.execute(&format!("DELETE FROM appeal_event WHERE {}", event(1, &first))).await;
    let summary = region.store.verify_all().await.expect("verifying everything");
    let failure = summary.first_failure.expect("the first appeal is found broken");
    assert_eq!((failure.number.as_str(), failure.broken.map(|b| b.seq)), (first.as_str(), Some(1)), "the first appeal");
    assert_eq!(summary.appeals_checked, 1, "verification stops at the first broken appeal");
}

async fn verifying_while_commands_commit_reports_no_false_break(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let appeal = region.submit("tomsk", "Шумят соседи по ночам").await;
    let others = [region.submit("tomsk", "Другое").await, region.submit("seversk", "Третье").await];
    // One task appends notes as fast as it can; meanwhile the auditor verifies.
    let writer = {
        let (store, assistant) = (region.store.clone(), region.tomsk_assistant);
        tokio::spawn(async move {
            for i in 0..150 {
                let result = store.execute_command(&assistant, appeal.id, &note(&format!("Заметка {i}")), None).await;
                result.unwrap_or_else(|error| panic!("note {i} failed: {error}"));
            }
        })
    };
    let mut rounds = 0;
    while !writer.is_finished() {
        let report = region.store.verify_appeal(appeal.id).await.expect("verifying").expect("the appeal exists");
        assert!(report.ok(), "round {rounds}: a history being appended to verifies: {report:?}");
        let summary = region.store.verify_all().await.expect("verifying everything");
        assert_eq!(summary.first_failure, None, "round {rounds}: every history verifies while one grows");
        assert_eq!(summary.appeals_checked, 1 + others.len() as u64, "round {rounds}: appeals checked");
        rounds += 1;
    }
    writer.await.expect("the writer finished");
    assert!(rounds > 0, "verification ran while the notes were written");
    let report = region.store.verify_appeal(appeal.id).await.expect("verifying").expect("the appeal exists");
    assert_eq!((report.ok(), report.events_checked), (true, 151), "the history once the writer is done");
}

/// Verifies one appeal through `store`; the appeal exists.
async fn verify(store: &Store, id: AppealId) -> AuditReport {
    store.verify_appeal(id).await.expect("verifying").expect("the appeal exists")
}

/// `text` quoted for SQL.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// What someone with write access to the database but without the key does:
/// rewrites the note of event `seq` (in its column and its payload), recomputes
/// the plain SHA-256 hash of that event and of every later one, and moves the
/// appeal's anchor to the new last hash.
async fn rewrite_note_and_rechain(region: &Region, appeal: &Appeal, seq: i32, from: &str, to: &str) {
    let mut events: Vec<_> =
        region.store.history(appeal.id).await.expect("history").into_iter().map(|s| s.event).collect();
    let edited = &mut events[(seq - 1) as usize];
    assert_eq!(edited.note.as_deref(), Some(from), "the note being rewritten");
    edited.note = Some(to.to_owned());
    edited.data = edited.data.replace(from, to);
    let mut previous = if seq > 1 { events[(seq - 2) as usize].hash.clone() } else { String::new() };
    for event in events.iter_mut().skip((seq - 1) as usize) {
        event.hash = event.expected_hash(&previous);
        previous = event.hash.clone();
        let statement = format!(
            "UPDATE appeal_event SET note = {}, data = {}, hash = {} WHERE {}",
            event.note.as_deref().map_or_else(|| "NULL".to_owned(), quoted),
            quoted(&event.data),
            quoted(&event.hash),
            self::event(event.seq, &appeal.number)
        );
        assert_eq!(region.execute(&statement).await, 1, "{statement}");
    }
    let anchor =
        format!("UPDATE appeal SET last_event_hash = {} WHERE number = '{}'", quoted(&previous), appeal.number);
    assert_eq!(region.execute(&anchor).await, 1, "{anchor}");
}

async fn an_edit_rechained_with_plain_sha256_fools_the_unkeyed_check_but_not_the_seals(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let region = region.with_audit_key(audit_key(1));
    let appeal = four_events(&region, "Яма у подъезда").await;
    let witness = four_events(&region, "Яма у школы").await;
    let before = verify(&region.store, appeal.id).await;
    assert!(before.ok() && before.sealed, "the sealed history verifies with the key: {before:?}");

    rewrite_note_and_rechain(&region, &appeal, 2, "Позвонили заявителю", "Заявитель отозвал обращение").await;
    let history = region.store.history(appeal.id).await.expect("history");
    assert_eq!(history[1].event.note.as_deref(), Some("Заявитель отозвал обращение"), "the note was rewritten");

    let unkeyed = region.store.clone().without_audit_key();
    let fooled = verify(&unkeyed, appeal.id).await;
    assert!(
        fooled.ok() && !fooled.sealed,
        "without the key the rewritten history passes, as the attack intends: {fooled:?}"
    );
    let caught = verify(&region.store, appeal.id).await;
    assert_eq!(caught.broken.map(|b| (b.seq, b.reason)), Some((2, EVENT_SEAL_BROKEN)), "with the key: at the edit");
    assert!(caught.sealed, "a keyed check");
    let summary = region.store.verify_all().await.expect("verifying everything");
    assert_eq!(summary.first_failure.map(|f| f.appeal_id), Some(appeal.id), "verify_all finds it too");
    assert!(verify(&region.store, witness.id).await.ok(), "the other appeal still verifies");
}

async fn cutting_off_the_last_event_and_rewriting_the_anchor_is_caught_by_the_anchor_seal(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let region = region.with_audit_key(audit_key(1));
    let unkeyed = region.store.clone().without_audit_key();
    // A note changes nothing on the appeal row, so cutting it off leaves a row
    // that replays exactly: only the anchor can tell.
    for (case, anchor_seal) in [("the old seal left in place", None), ("the seal erased", Some("NULL"))] {
        let appeal = region.submit("tomsk", &format!("Шум по ночам: {case}")).await;
        let appeal = region.apply(&region.tomsk_head, &appeal, Command::MarkSeen).await;
        let appeal = region.apply(&region.tomsk_assistant, &appeal, note("Жильцы просят не раскрывать их имена")).await;
        let history = region.store.history(appeal.id).await.expect("history");
        let second = &history[1].event;
        region.execute(&format!("DELETE FROM appeal_event WHERE {}", event(3, &appeal.number))).await;
        let seal = anchor_seal.map_or_else(String::new, |seal| format!(", last_event_seal = {seal}"));
        region
            .execute(&format!(
                "UPDATE appeal SET last_event_seq = 2, last_event_hash = '{}'{seal} WHERE number = '{}'",
                second.hash, appeal.number
            ))
            .await;
        let fooled = verify(&unkeyed, appeal.id).await;
        assert!(fooled.ok(), "{case}: without the key the shortened history passes: {fooled:?}");
        let caught = verify(&region.store, appeal.id).await;
        assert_eq!(caught.broken.map(|b| (b.seq, b.reason)), Some((2, ANCHOR_SEAL_BROKEN)), "{case}: caught");

        // Nor does the next command seal the shortened history as if whole.
        let refused =
            region.store.execute_command(&region.tomsk_assistant, appeal.id, &note("Ещё заметка"), None).await;
        assert!(matches!(refused, Err(StorageError::Corrupt(_))), "{case}: nothing is appended: {refused:?}");
        assert_eq!(region.store.history(appeal.id).await.expect("history").len(), 2, "{case}: nothing appended");
    }
}

async fn a_wrong_key_fails_verification(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let region = region.with_audit_key(audit_key(1));
    let appeal = four_events(&region, "Не вывозят мусор").await;
    assert!(verify(&region.store, appeal.id).await.ok(), "the right key");
    let wrong = region.store.clone().with_audit_key(audit_key(2));
    let report = verify(&wrong, appeal.id).await;
    assert_eq!(
        report.broken.map(|b| (b.seq, b.reason)),
        Some((1, EVENT_SEAL_BROKEN)),
        "another key: at the first event"
    );
    let summary = wrong.verify_all().await.expect("verifying everything");
    assert!(summary.sealed && summary.first_failure.is_some(), "verify_all with another key fails: {summary:?}");
}

async fn configuring_a_key_for_the_first_time_seals_the_history_already_written(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    // Written without a key, as before this change.
    let old = four_events(&region, "Старое обращение").await;
    let older = region.submit("seversk", "Ещё старее").await;
    let tampered = four_events(&region, "Испорченное до ключа").await;
    region.execute(&format!("UPDATE appeal_event SET note = 'подделка' WHERE {}", event(2, &tampered.number))).await;
    let unsealed = "SELECT COUNT(*) FROM appeal_event WHERE seal IS NULL";
    assert_eq!(region.number(unsealed).await, 9, "nothing is sealed yet");
    let keyed = region.store.clone().with_audit_key(audit_key(1));
    let report = verify(&keyed, old.id).await;
    assert_eq!(
        report.broken.map(|b| (b.seq, b.reason)),
        Some((1, EVENT_SEAL_MISSING)),
        "unsealed: a keyed check fails"
    );

    let store = region.store.clone().prepare_audit(Some(audit_key(1))).await.expect("start-up with a key");
    for appeal in [&old, &older] {
        let report = verify(&store, appeal.id).await;
        assert!(
            report.ok() && report.sealed,
            "{}: sealed at start-up and verified with the key: {report:?}",
            appeal.number
        );
    }
    let refused = verify(&store, tampered.id).await;
    let refused = refused.broken.map(|b| (b.seq, b.reason));
    assert_eq!(refused, Some((1, EVENT_SEAL_MISSING)), "a history broken before the key came is not sealed over");
    let unkeyed = verify(&region.store, tampered.id).await;
    assert_eq!(unkeyed.broken.map(|b| b.seq), Some(2), "it breaks where it was edited");
    assert_eq!(region.number(unsealed).await, 4, "only the broken appeal's events are left unsealed");

    // Once: a second start-up seals nothing more; the old appeals are now
    // covered, so an attacker's rechained edit is caught.
    let again = region.store.clone().prepare_audit(Some(audit_key(1))).await.expect("a second start-up");
    assert_eq!(region.number(unsealed).await, 4, "nothing more sealed");
    rewrite_note_and_rechain(&region, &old, 2, "Позвонили заявителю", "Ничего не делали").await;
    let caught = verify(&again, old.id).await;
    assert_eq!(caught.broken.map(|b| (b.seq, b.reason)), Some((2, EVENT_SEAL_BROKEN)), "an old appeal is covered");
    // And a new command on a sealed appeal is sealed as it is written.
    let next = again
        .execute_command(&region.seversk_head, older.id, &Command::MarkSeen, Some(older.version))
        .await
        .expect("seen");
    assert!(next.event.seal.is_some(), "a new event is sealed");
    assert!(verify(&again, older.id).await.ok(), "and verifies");
}

async fn events_written_without_the_key_after_sealing_are_not_sealed_automatically(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let region = region.with_audit_key(audit_key(1));
    let appeal = region.submit("tomsk", "Сломана скамейка").await;
    // A server run without the key writes an unsealed note.
    let unkeyed = region.store.clone().without_audit_key();
    unkeyed
        .execute_command(&region.tomsk_assistant, appeal.id, &note("Записано без ключа"), None)
        .await
        .expect("a note");
    let report = verify(&region.store, appeal.id).await;
    assert_eq!(report.broken.map(|b| (b.seq, b.reason)), Some((2, EVENT_SEAL_MISSING)), "the unsealed event");

    let store = region.store.clone().without_audit_key().prepare_audit(Some(audit_key(1))).await.expect("start-up");
    assert!(!verify(&store, appeal.id).await.ok(), "start-up does not seal once the history was sealed before");
    // Someone looks, and seals deliberately.
    let sealed = store.seal_unsealed_history().await.expect("sealing");
    assert_eq!((sealed.appeals_sealed, sealed.events_sealed, sealed.refused), (1, 1, 0), "what was sealed");
    assert!(verify(&store, appeal.id).await.ok(), "sealed and verified");
}
