//! Races through the real API over HTTP: identical submissions arriving at once,
//! commands on the same version, notes beside a versioned command, and
//! registration numbers under simultaneous intake. Every request of a race is a
//! spawned task released by one barrier, so they reach the server together.

use std::collections::BTreeSet;
use std::sync::Arc;

use appeals_core::Role;
use appeals_storage::testing::on_both_databases;
use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::support::{Backend, TestApp, error_code, spawn_app};

const SUBMIT: &str =
    "mutation($input: SubmitAppealInput!) { submitAppeal(input: $input) { created appeal { id number version } } }";
const MARK_SEEN: &str = "mutation($id: ID!, $v: Int!) { markSeen(id: $id, expectedVersion: $v) { appeal { status version } event { seq kind } } }";
const TRIAGE: &str = "mutation($id: ID!, $v: Int!) { triageAppeal(id: $id, expectedVersion: $v, input: { priority: URGENT, tags: [\"дороги\"] }) { appeal { priority version } event { seq kind } } }";
const EXTEND: &str = "mutation($id: ID!, $v: Int!) { extendDeadline(id: $id, expectedVersion: $v, days: 15, reason: \"Запрошены документы\") { appeal { deadlineExtended version } event { seq kind } } }";
const ADD_NOTE: &str =
    "mutation($id: ID!, $text: String!) { addNote(id: $id, text: $text) { appeal { version } event { seq kind } } }";
const HISTORY: &str = "query($id: ID!) { appeal(id: $id) { status version history { seq kind note } } verifyAudit(appealId: $id) { ok eventsChecked brokenAtSeq } }";

/// One request of a race: who sends it, the document and its variables.
type Request = (String, &'static str, Value);

/// Sends every request at once, each from its own task, all released together by
/// a barrier; returns the responses in the order of `requests`.
async fn race(app: &Arc<TestApp>, requests: Vec<Request>) -> Vec<Value> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(token, query, variables)| {
            let app = Arc::clone(app);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                app.graphql(Some(&token), query, variables).await
            })
        })
        .collect();
    join_all(tasks).await.into_iter().map(|joined| joined.expect("a request task should not panic")).collect()
}

/// Submits an appeal to `municipality` as `token` and returns its id.
async fn submitted_appeal(app: &TestApp, token: &str, municipality: &str, text: &str) -> String {
    let appeal = app.submit(token, municipality, text).await;
    appeal["id"].as_str().unwrap_or_else(|| panic!("submitting `{text}`: {appeal}")).to_owned()
}

/// The appeal's status, version, history and audit verdict, as `reader` sees them.
async fn history(app: &TestApp, reader: &str, id: &str) -> Value {
    let response = app.graphql(Some(reader), HISTORY, json!({ "id": id })).await;
    assert!(response["errors"].is_null(), "reading the history of {id}: {response}");
    response["data"].clone()
}

/// The `(root field, response)` pairs of the responses that succeeded, and the
/// error codes of the others.
fn tally<'a>(responses: &'a [Value], fields: &[&'static str]) -> (Vec<(&'static str, &'a Value)>, Vec<String>) {
    let mut successes = Vec::new();
    let mut refusals = Vec::new();
    for (response, field) in responses.iter().zip(fields) {
        if response["errors"].is_null() && !response["data"][field].is_null() {
            successes.push((*field, response));
        } else {
            refusals.push(error_code(response).map_or_else(|| format!("no code in {response}"), str::to_owned));
        }
    }
    (successes, refusals)
}

async fn identical_submissions_arriving_at_once_register_exactly_one_appeal(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let app = Arc::new(app);
    let intake = app.token(Role::Intake, None).await;
    let governor = app.token(Role::GovernorOffice, None).await;
    let input = json!({
        "municipalityCode": "tomsk",
        "channel": "TELEGRAM",
        "externalId": "tg-chat-42-message-100500",
        "authorName": "Иван Петров",
        "text": "Третью неделю не вывозят мусор на Кирова, 12",
    });
    let requests = (0..24).map(|_| (intake.clone(), SUBMIT, json!({ "input": input }))).collect();

    let responses = race(&app, requests).await;

    let failed: Vec<&Value> = responses.iter().filter(|response| !response["errors"].is_null()).collect();
    assert!(failed.is_empty(), "every identical submission succeeds: {failed:?}");
    let ids: BTreeSet<&str> =
        responses.iter().filter_map(|response| response["data"]["submitAppeal"]["appeal"]["id"].as_str()).collect();
    assert_eq!(ids.len(), 1, "all 24 responses name the same appeal: {ids:?}");
    let created = responses.iter().filter(|response| response["data"]["submitAppeal"]["created"] == true).count();
    assert_eq!(created, 1, "exactly one response says it created the appeal");
    let id = *ids.first().expect("one id");

    let listed =
        app.graphql(Some(&governor), "{ appeals { totalCount edges { node { id externalId } } } }", json!({})).await;
    assert_eq!(listed["data"]["appeals"]["totalCount"], 1, "one appeal is registered: {listed}");
    assert_eq!(listed["data"]["appeals"]["edges"][0]["node"]["id"], id, "{listed}");
    let recorded = history(&app, &governor, id).await;
    assert_eq!(recorded["appeal"]["history"].as_array().map(Vec::len), Some(1), "one RECEIVED event: {recorded}");
}

async fn only_one_of_sixteen_simultaneous_mark_seen_calls_wins(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let app = Arc::new(app);
    let intake = app.token(Role::Intake, None).await;
    let head = app.token(Role::Head, Some("tomsk")).await;
    let id = submitted_appeal(&app, &intake, "tomsk", "Во дворе не горит фонарь").await;
    let requests = (0..16).map(|_| (head.clone(), MARK_SEEN, json!({ "id": id, "v": 1 }))).collect();

    let responses = race(&app, requests).await;

    let (successes, refusals) = tally(&responses, &["markSeen"; 16]);
    assert_eq!(successes.len(), 1, "exactly one markSeen wins: {responses:?}");
    assert_eq!(refusals, vec!["VERSION_CONFLICT"; 15], "every other one is a version conflict");
    let (_, winner) = successes[0];
    assert_eq!(winner["data"]["markSeen"]["appeal"], json!({ "status": "SEEN", "version": 2 }), "{winner}");
    let recorded = history(&app, &head, &id).await;
    let kinds: Vec<&str> =
        recorded["appeal"]["history"].as_array().into_iter().flatten().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["RECEIVED", "SEEN"], "the history has exactly two events: {recorded}");
    assert_eq!(recorded["appeal"]["version"], 2, "{recorded}");
}

async fn different_commands_racing_on_one_version_let_exactly_one_through(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let app = Arc::new(app);
    let intake = app.token(Role::Intake, None).await;
    let head = app.token(Role::Head, Some("tomsk")).await;
    let assistant = app.token(Role::Assistant, Some("tomsk")).await;
    // Several rounds, each on a fresh appeal, give the race more than one chance
    // to let two commands through.
    for round in 1..=3 {
        let id = submitted_appeal(&app, &intake, "tomsk", &format!("Гонка команд, раунд {round}")).await;
        let mut requests: Vec<Request> = Vec::new();
        let mut fields = Vec::new();
        for _ in 0..4 {
            requests.push((assistant.clone(), TRIAGE, json!({ "id": id, "v": 1 })));
            fields.push("triageAppeal");
            requests.push((head.clone(), MARK_SEEN, json!({ "id": id, "v": 1 })));
            fields.push("markSeen");
            requests.push((assistant.clone(), EXTEND, json!({ "id": id, "v": 1 })));
            fields.push("extendDeadline");
        }

        let responses = race(&app, requests).await;

        let (successes, refusals) = tally(&responses, &fields);
        assert_eq!(successes.len(), 1, "round {round}: exactly one command wins: {responses:?}");
        assert_eq!(refusals, vec!["VERSION_CONFLICT"; 11], "round {round}: the others are version conflicts");
        let (field, winner) = successes[0];
        assert_eq!(winner["data"][field]["appeal"]["version"], 2, "round {round}: {winner}");
        let recorded = history(&app, &head, &id).await;
        assert_eq!(recorded["appeal"]["version"], 2, "round {round}: the version grew by exactly one: {recorded}");
        let events = recorded["appeal"]["history"].as_array().cloned().unwrap_or_default();
        assert_eq!(events.len(), 2, "round {round}: one event beside RECEIVED: {recorded}");
        assert_eq!(events[1]["kind"], winner["data"][field]["event"]["kind"], "round {round}: the winner's event");
        assert_eq!(recorded["verifyAudit"]["ok"], true, "round {round}: {recorded}");
    }
}

async fn notes_from_several_users_never_make_a_versioned_command_stale(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let app = Arc::new(app);
    let intake = app.token(Role::Intake, None).await;
    let head = app.token(Role::Head, Some("tomsk")).await;
    let assistant = app.token(Role::Assistant, Some("tomsk")).await;
    let colleague = app.token(Role::Assistant, Some("tomsk")).await;
    let auditor = app.token(Role::Auditor, None).await;
    let id = submitted_appeal(&app, &intake, "tomsk", "Прорвало трубу в подвале").await;
    let mut requests: Vec<Request> = Vec::new();
    let mut fields = Vec::new();
    for note in 1..=8 {
        for (author, token) in [("помощник", &assistant), ("коллега", &colleague), ("глава", &head)]
        {
            requests.push((token.clone(), ADD_NOTE, json!({ "id": id, "text": format!("Заметка {note}: {author}") })));
            fields.push("addNote");
        }
    }
    // The versioned command goes in the middle of the notes.
    requests.insert(12, (assistant.clone(), TRIAGE, json!({ "id": id, "v": 1 })));
    fields.insert(12, "triageAppeal");

    let responses = race(&app, requests).await;

    let (successes, refusals) = tally(&responses, &fields);
    assert!(refusals.is_empty(), "every note and the triage succeed, got {refusals:?}: {responses:?}");
    assert_eq!(successes.len(), 25);
    let triaged = &responses[12]["data"]["triageAppeal"]["appeal"];
    assert_eq!(*triaged, json!({ "priority": "URGENT", "version": 2 }), "the notes did not make version 1 stale");

    let seen = app.graphql(Some(&head), MARK_SEEN, json!({ "id": id, "v": 2 })).await;
    assert_eq!(seen["data"]["markSeen"]["appeal"]["version"], 3, "24 notes later, version 2 is current: {seen}");
    let recorded = history(&app, &auditor, &id).await;
    let events = recorded["appeal"]["history"].as_array().cloned().unwrap_or_default();
    let seqs: Vec<i64> = events.iter().filter_map(|event| event["seq"].as_i64()).collect();
    assert_eq!(seqs, (1..=27).collect::<Vec<i64>>(), "seq numbers have no gaps: {recorded}");
    let notes = events.iter().filter(|event| event["kind"] == "NOTE_ADDED").count();
    assert_eq!(notes, 24, "every note is in the history: {recorded}");
    assert_eq!(recorded["verifyAudit"], json!({ "ok": true, "eventsChecked": 27, "brokenAtSeq": null }), "{recorded}");
}

async fn simultaneous_submissions_to_one_municipality_get_consecutive_registration_numbers(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let app = Arc::new(app);
    let intake = app.token(Role::Intake, None).await;
    let tomsk_head = app.token(Role::Head, Some("tomsk")).await;
    // Eight submissions to another municipality race alongside: each municipality
    // counts on its own.
    let mut requests: Vec<Request> = Vec::new();
    for n in 1..=24 {
        let token = if n % 3 == 0 { &tomsk_head } else { &intake };
        let input = json!({ "municipalityCode": "tomsk", "channel": "VK", "externalId": format!("vk-{n}"), "text": format!("Обращение {n}") });
        requests.push((token.clone(), SUBMIT, json!({ "input": input })));
    }
    for n in 1..=8 {
        let input =
            json!({ "municipalityCode": "seversk", "channel": "WEB", "text": format!("Обращение в Северск {n}") });
        requests.push((intake.clone(), SUBMIT, json!({ "input": input })));
    }

    let responses = race(&app, requests).await;

    let failed: Vec<&Value> = responses.iter().filter(|response| !response["errors"].is_null()).collect();
    assert!(failed.is_empty(), "every submission succeeds: {failed:?}");
    assert!(responses.iter().all(|response| response["data"]["submitAppeal"]["created"] == true), "{responses:?}");
    let numbers: Vec<&str> =
        responses.iter().filter_map(|response| response["data"]["submitAppeal"]["appeal"]["number"].as_str()).collect();
    let (tomsk, seversk) = numbers.split_at(24);
    for (municipality, numbers, count) in [("TOMSK", tomsk, 24), ("SEVERSK", seversk, 8)] {
        let distinct: BTreeSet<&str> = numbers.iter().copied().collect();
        assert_eq!(distinct.len(), count, "{municipality}: distinct numbers: {numbers:?}");
        assert!(numbers.iter().all(|number| number.starts_with(&format!("{municipality}-"))), "{numbers:?}");
        let mut sequences: Vec<&str> =
            numbers.iter().filter_map(|number| number.rsplit_once('-').map(|(_, sequence)| sequence)).collect();
        sequences.sort_unstable();
        let expected: Vec<String> = (1..=count).map(|n| format!("{n:06}")).collect();
        assert_eq!(sequences, expected, "{municipality}: numbers end in 000001..{count:06}: {numbers:?}");
    }
}

on_both_databases!(
    identical_submissions_arriving_at_once_register_exactly_one_appeal,
    only_one_of_sixteen_simultaneous_mark_seen_calls_wins,
    different_commands_racing_on_one_version_let_exactly_one_through,
    notes_from_several_users_never_make_a_versioned_command_stale,
    simultaneous_submissions_to_one_municipality_get_consecutive_registration_numbers,
);
