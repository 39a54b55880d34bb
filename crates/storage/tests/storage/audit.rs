//! The tamper-evident history: rows edited or deleted behind the store's back
//! are reported at the event where the history stops being trustworthy, by
//! `verify_appeal` for one appeal and by `verify_all` across every appeal.

use appeals_core::{Appeal, AppealId, Command, Outcome};
use appeals_storage::testing::Backend;

use crate::support::{Region, code, note, race, resolve, web};

on_both_backends!(
    every_kind_of_tampering_is_reported_at_the_event_where_it_happened,
    verify_all_checks_every_appeal_and_stops_at_the_first_broken_one,
    verifying_while_commands_commit_reports_no_false_break,
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
                let result = store.apply(&assistant, appeal.id, &note(&format!("Заметка {i}")), None).await;
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
