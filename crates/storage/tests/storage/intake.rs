//! Intake: what a submission registers, idempotency on (`channel`, `externalId`)
//! within a municipality, that nothing about appeals elsewhere leaks through it,
//! and registration numbers that stay gap-free however submissions race.

use std::collections::BTreeMap;

use appeals_core::{AppealId, Channel, EventKind, Priority, Scope, Status};
use appeals_storage::AppealFilter;
use appeals_storage::testing::{Backend, on_both_databases};
use chrono::{Datelike, Utc};

use crate::support::{Region, at, code, days, ids, open_store, outcome, race, submission, web};

on_both_databases!(
    a_submission_registers_a_received_appeal_with_its_deadlines_and_first_event,
    a_repeated_submission_returns_the_first_appeal_and_takes_no_number,
    only_those_allowed_may_submit_and_only_to_a_known_municipality,
    concurrent_identical_submissions_create_exactly_one_appeal,
    a_channel_message_known_to_another_municipality_is_a_new_appeal_and_reveals_nothing,
    concurrent_submissions_get_registration_numbers_without_gaps_or_duplicates,
    registration_numbers_start_again_each_year,
);

async fn a_submission_registers_a_received_appeal_with_its_deadlines_and_first_event(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    // The wall clock this time, so that its nanoseconds meet the databases.
    let store = open_store(&region.db).await;
    let before = Utc::now();
    let submitted = store
        .submit(
            &region.intake,
            &code("Tomsk"),
            submission(Channel::Telegram, Some("chat-7/msg-1"), "  Яма на дороге \n"),
        )
        .await
        .expect("a submission to Tomsk");
    let after = Utc::now();
    let appeal = submitted.appeal.clone();
    assert!(submitted.created, "the first submission creates the appeal");
    assert!(before <= appeal.received_at && appeal.received_at <= after, "received now: {}", appeal.received_at);
    assert_eq!(appeal.number, format!("TOMSK-{}-000001", appeal.received_at.year()), "the first number of the year");
    assert_eq!((appeal.status, appeal.version), (Status::Received, 1), "status and version");
    assert_eq!(appeal.seen_due_at, appeal.received_at + days(3), "seenDueAt is three days after receipt");
    assert_eq!(appeal.due_at, appeal.received_at + days(30), "dueAt is thirty days after receipt");
    assert_eq!(appeal.municipality_id, region.tomsk.id, "the municipality");
    assert_eq!(appeal.text.as_str(), "Яма на дороге", "the text, trimmed");
    assert_eq!(appeal.external_id.as_ref().map(|id| id.as_str()), Some("chat-7/msg-1"), "the external id");
    assert_eq!((appeal.priority, appeal.category.clone(), appeal.tags.len()), (Priority::Normal, None, 0), "triage");
    assert_eq!((appeal.seen_at, appeal.resolution.clone(), appeal.deadline_extended), (None, None, false), "the rest");

    let stored_event = submitted.event.clone().expect("a created appeal comes with its RECEIVED event");
    let event = &stored_event.event;
    assert_eq!((event.seq, event.kind, event.appeal_id), (1, EventKind::Received, appeal.id), "the first event");
    assert_eq!((event.from_status, event.to_status), (None, Some(Status::Received)), "the first event's statuses");
    assert_eq!((event.actor_id, event.at), (Some(region.intake.user_id), appeal.received_at), "who and when");
    assert_eq!(event.hash, event.expected_hash(""), "the first hash chains from nothing");

    assert_eq!(store.appeal(appeal.id).await.expect("read"), Some(appeal.clone()), "the appeal read back by id");
    assert_eq!(
        store.appeal_by_number(&appeal.number).await.expect("read"),
        Some(appeal.clone()),
        "the appeal read back by number"
    );
    let history = store.history(appeal.id).await.expect("the history");
    assert_eq!(history, std::slice::from_ref(&stored_event), "the history is that event, row id included");
    let report = store.verify_appeal(appeal.id).await.expect("verifying").expect("the appeal exists");
    assert!(report.ok(), "the new history verifies: {report:?}");
    assert_eq!((report.events_checked, report.number.as_str()), (1, appeal.number.as_str()), "the report");
    assert_eq!(store.verify_appeal(AppealId::generate()).await.expect("verifying"), None, "an unknown appeal");

    let second = region.submit_via(&store, "tomsk", web("Свет в подъезде")).await;
    assert_eq!(second.number, format!("TOMSK-{}-000002", second.received_at.year()), "Tomsk's second number");
    let seversk = region.submit_via(&store, "seversk", web("Свет в подъезде")).await;
    assert_eq!(seversk.number, format!("SEVERSK-{}-000001", seversk.received_at.year()), "Seversk counts alone");
}

async fn a_repeated_submission_returns_the_first_appeal_and_takes_no_number(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let store = &region.store;
    let telegram = || submission(Channel::Telegram, Some("msg-42"), "Не вывозят мусор");
    let first = store.submit(&region.intake, &code("tomsk"), telegram()).await.expect("the first submission");
    assert!(first.created, "the first submission creates");

    region.advance(days(1));
    let again = store.submit(&region.intake, &code("tomsk"), telegram()).await.expect("the repeat");
    assert_eq!((again.created, again.event.clone()), (false, None), "a repeat creates nothing and records no event");
    assert_eq!(again.appeal, first.appeal, "a repeat returns the first appeal as it was registered");
    let retyped = submission(Channel::Telegram, Some("msg-42"), "Другой текст того же сообщения");
    let again = store.submit(&region.tomsk_head, &code("tomsk"), retyped).await.expect("a repeat by another user");
    assert_eq!((again.created, again.appeal.id), (false, first.appeal.id), "the text is not part of the key");

    let vk = store
        .submit(&region.intake, &code("tomsk"), submission(Channel::Vk, Some("msg-42"), "Не вывозят мусор"))
        .await
        .expect("the same external id on another channel");
    assert!(vk.created, "another channel's message with the same id is another appeal");
    assert_eq!(vk.appeal.number, "TOMSK-2026-000002", "repeats took no registration number");
    let plain_a = region.submit("tomsk", "Не вывозят мусор").await;
    let plain_b = region.submit("tomsk", "Не вывозят мусор").await;
    assert_ne!(plain_a.id, plain_b.id, "submissions without an external id never collide");
    let total = store.list_appeals(Scope::Everywhere, &AppealFilter::default(), 100, None).await.expect("the list");
    assert_eq!(total.total_count, 4, "four appeals in all");
    let elsewhere = store.submit(&region.intake, &code("seversk"), telegram()).await.expect("to another municipality");
    assert!(elsewhere.created, "the same message id addressed to another municipality is that one's own appeal");
    assert_eq!(store.history(first.appeal.id).await.expect("history").len(), 1, "repeats added no event");
}

async fn only_those_allowed_may_submit_and_only_to_a_known_municipality(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let cases = [
        ("intake to Tomsk", &region.intake, "tomsk", "Ok"),
        ("intake to Kedrovy", &region.intake, "kedrovy", "Ok"),
        ("the governor's office to Seversk", &region.governor, "seversk", "Ok"),
        ("Tomsk's head to Tomsk", &region.tomsk_head, "tomsk", "Ok"),
        ("Tomsk's assistant to Tomsk", &region.tomsk_assistant, "tomsk", "Ok"),
        ("Tomsk's assistant to Seversk", &region.tomsk_assistant, "seversk", "Access(Forbidden)"),
        ("Seversk's head to Tomsk", &region.seversk_head, "tomsk", "Access(Forbidden)"),
        ("an auditor", &region.auditor, "tomsk", "Access(Forbidden)"),
        ("an administrator", &region.admin, "tomsk", "Access(Forbidden)"),
        ("intake to an unknown municipality", &region.intake, "atlantis", "Invalid(municipalityCode)"),
        ("an auditor to an unknown municipality", &region.auditor, "atlantis", "Access(Forbidden)"),
    ];
    let mut accepted = 0;
    for (case, actor, to, expected) in cases {
        let result = region.store.submit(actor, &code(to), web(case)).await;
        assert_eq!(outcome(&result), expected, "{case}");
        if let Ok(submitted) = result {
            accepted += 1;
            let municipality = region.store.municipality_by_code(&code(to)).await.expect("lookup").expect("known");
            assert_eq!(submitted.appeal.municipality_id, municipality.id, "{case}: the addressed municipality");
            assert_eq!(submitted.event.and_then(|e| e.event.actor_id), Some(actor.user_id), "{case}: the submitter");
        }
    }
    let all = region.store.list_appeals(Scope::Everywhere, &AppealFilter::default(), 100, None).await.expect("list");
    assert_eq!(all.total_count, accepted, "refused submissions registered nothing");
}

async fn concurrent_identical_submissions_create_exactly_one_appeal(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    // Sixteen copies of one message to Tomsk, and eight of the same message id
    // to Seversk, all at once: one appeal in each municipality.
    let municipality_of = |i: usize| if i < 16 { "tomsk" } else { "seversk" };
    let results = race(24, |i| {
        let (store, intake, to) = (region.store.clone(), region.intake, municipality_of(i));
        async move {
            let message = submission(Channel::Telegram, Some("chat-1/msg-100500"), "Прорвало трубу на Ленина, 5");
            store.submit(&intake, &code(to), message).await
        }
    })
    .await;
    let submitted: Vec<_> = results
        .into_iter()
        .enumerate()
        .map(|(i, result)| result.unwrap_or_else(|error| panic!("submission {i} failed: {error}")))
        .collect();
    let mut winners = Vec::new();
    for (to, range) in [("tomsk", 0..16), ("seversk", 16..24)] {
        let these = &submitted[range];
        let winner = these.iter().find(|s| s.created).expect("one submission created the appeal").appeal.clone();
        assert_eq!(these.iter().filter(|s| s.created).count(), 1, "{to}: exactly one caller created the appeal");
        for (i, s) in these.iter().enumerate() {
            assert_eq!(s.appeal.id, winner.id, "{to}: caller {i} got the same appeal");
            assert_eq!(s.event.is_some(), s.created, "{to}: caller {i}: only the creator gets an event");
        }
        assert_eq!(region.store.history(winner.id).await.expect("history").len(), 1, "{to}: one RECEIVED event");
        winners.push(winner);
    }
    assert_eq!(winners[0].number, "TOMSK-2026-000001", "Tomsk's appeal's number");
    assert_eq!(winners[1].number, "SEVERSK-2026-000001", "Seversk's appeal's number");
    let all = region.store.list_appeals(Scope::Everywhere, &AppealFilter::default(), 100, None).await.expect("list");
    let mut expected = vec![winners[0].id, winners[1].id];
    let mut got = ids(&all);
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "one appeal per municipality in the database");
    let next = region.submit("tomsk", "Следующее обращение").await;
    assert_eq!(next.number, "TOMSK-2026-000002", "the losers gave their numbers back");
}

async fn a_channel_message_known_to_another_municipality_is_a_new_appeal_and_reveals_nothing(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let message = |text: &str| submission(Channel::Vk, Some("club1/wall-7_42"), text);
    let tomsk = region.store.submit(&region.intake, &code("tomsk"), message("Яма у школы №5")).await.expect("Tomsk");
    let tomsk_history = region.store.history(tomsk.appeal.id).await.expect("Tomsk's history");

    // Seversk's head submits the same channel message id to Seversk, as a
    // Seversk bot that saw the same id would: a new appeal of Seversk's own.
    let seversk = region
        .store
        .submit(&region.seversk_head, &code("seversk"), message("Не горят фонари"))
        .await
        .expect("a message id known elsewhere is no error");
    assert!(seversk.created, "a new appeal");
    let appeal = &seversk.appeal;
    assert_ne!(appeal.id, tomsk.appeal.id, "not Tomsk's appeal");
    assert_eq!(appeal.number, "SEVERSK-2026-000001", "Seversk's first number: nothing else counted");
    assert_eq!(appeal.text.as_str(), "Не горят фонари", "its own text, nothing of Tomsk's");
    assert_eq!(
        appeal.municipality_id,
        region.seversk_head.municipality_id.expect("a head has a municipality"),
        "Seversk"
    );
    assert_eq!(appeal.version, 1, "a fresh appeal");
    let event = seversk.event.clone().expect("the RECEIVED event");
    assert_eq!(event.event.seq, 1, "its history starts at 1");
    assert!(!event.event.data.contains("Яма") && !event.event.data.contains("TOMSK"), "no trace of Tomsk's appeal");

    // A repeat in Seversk is Seversk's appeal, whatever Tomsk holds.
    let again = region.store.submit(&region.intake, &code("seversk"), message("Повтор")).await.expect("a repeat");
    assert_eq!((again.created, again.appeal.id), (false, appeal.id), "a repeat returns Seversk's own appeal");
    let scope = Scope::Municipality(appeal.municipality_id);
    let seen = region.store.list_appeals(scope, &AppealFilter::default(), 100, None).await.expect("Seversk's list");
    assert_eq!(ids(&seen), [appeal.id], "Seversk sees only its appeal");

    // Tomsk's appeal is untouched.
    assert_eq!(region.fetch(tomsk.appeal.id).await, tomsk.appeal, "Tomsk's appeal unchanged");
    assert_eq!(region.store.history(tomsk.appeal.id).await.expect("history"), tomsk_history, "and its history");
}

async fn concurrent_submissions_get_registration_numbers_without_gaps_or_duplicates(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    // 24 distinct messages to Tomsk, 12 to Seversk, and 8 repeats of Tomsk's
    // messages, all at once: repeats roll their numbers back, so none is lost.
    let plan: Vec<(&'static str, String)> = (0..24)
        .map(|i| ("tomsk", format!("tomsk-{i}")))
        .chain((0..12).map(|i| ("seversk", format!("seversk-{i}"))))
        .chain((0..8).map(|i| ("tomsk", format!("tomsk-{}", i * 3))))
        .collect();
    let results = race(plan.len(), |i| {
        let (store, intake) = (region.store.clone(), region.intake);
        let (to, external_id) = plan[i].clone();
        async move {
            let message = submission(Channel::Vk, Some(&external_id), &format!("Обращение {external_id}"));
            (to, store.submit(&intake, &code(to), message).await)
        }
    })
    .await;
    let mut numbers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut ids_by_number: BTreeMap<String, AppealId> = BTreeMap::new();
    for (i, (to, result)) in results.into_iter().enumerate() {
        let submitted = result.unwrap_or_else(|error| panic!("submission {i} to {to} failed: {error}"));
        if let Some(id) = ids_by_number.insert(submitted.appeal.number.clone(), submitted.appeal.id) {
            assert_eq!(id, submitted.appeal.id, "the number {} was given to two appeals", submitted.appeal.number);
        }
        if submitted.created {
            numbers.entry(to).or_default().push(submitted.appeal.number);
        }
    }
    for (to, count) in [("tomsk", 24), ("seversk", 12)] {
        let mut got = numbers.remove(to).unwrap_or_default();
        got.sort();
        let expected: Vec<String> = (1..=count).map(|n| format!("{}-2026-{n:06}", to.to_ascii_uppercase())).collect();
        assert_eq!(got, expected, "the numbers of {to}: 1..={count}, each once");
    }
    let all = region.store.list_appeals(Scope::Everywhere, &AppealFilter::default(), 100, None).await.expect("list");
    assert_eq!(all.total_count, 36, "one appeal per distinct message");
}

async fn registration_numbers_start_again_each_year(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    region.clock.set(at("2026-12-31T23:59:59.999999Z"));
    let december = [region.submit("tomsk", "Декабрь 1").await, region.submit("tomsk", "Декабрь 2").await];
    region.clock.set(at("2027-01-01T00:00:00Z"));
    let january = [region.submit("tomsk", "Январь 1").await, region.submit("seversk", "Январь 1").await];
    let numbers: Vec<&str> = december.iter().chain(&january).map(|appeal| appeal.number.as_str()).collect();
    assert_eq!(
        numbers,
        ["TOMSK-2026-000001", "TOMSK-2026-000002", "TOMSK-2027-000001", "SEVERSK-2027-000001"],
        "each municipality's year counts from one"
    );
}
