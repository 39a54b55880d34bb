//! The hostile-string corpus (`tests/e2e/data/hostile-strings.json`: SQL and JSON
//! injection, zero-width and right-to-left marks, combining characters, emoji,
//! NUL and other control characters, oversized texts) sent through every text
//! field and filter of the API. Each answer is a success that stores the string
//! exactly as given (trimmed), or `VALIDATION`; never `INTERNAL`, never a 5xx;
//! no other data changes, every hash chain still verifies, and the server's memory
//! stays bounded.

use appeals_core::Role;
use appeals_storage::testing::on_both_databases;
use serde_json::{Value, json};

use crate::support::{Backend, TestApp, error_code, spawn_app_with};

struct Hostile {
    name: String,
    text: String,
}

fn corpus() -> Vec<Hostile> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/data/hostile-strings.json");
    let raw = std::fs::read_to_string(&path).expect("the corpus is part of the repository");
    let entries: Vec<Value> = serde_json::from_str(&raw).expect("the corpus is a JSON array");
    entries
        .iter()
        .map(|entry| Hostile {
            name: entry["name"].as_str().expect("each entry has a name").to_owned(),
            text: entry["text"].as_str().expect("each entry has a text").to_owned(),
        })
        .collect()
}

/// The peak resident memory of this process (the server runs in it), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

struct Actors {
    intake: String,
    head: String,
    assistant: String,
    admin: String,
    governor: String,
}

/// A fresh tomsk appeal, `SEEN` if asked, and its current version.
async fn fresh_appeal(app: &TestApp, actors: &Actors, seen: bool) -> (String, i64) {
    let appeal = app.submit(&actors.intake, "tomsk", "Подготовленное обращение").await;
    let id = appeal["id"].as_str().expect("a prepared appeal").to_owned();
    if !seen {
        return (id, 1);
    }
    let seen = app
        .graphql(
            Some(&actors.head),
            "mutation($id: ID!) { markSeen(id: $id, expectedVersion: 1) { appeal { version } } }",
            json!({ "id": id }),
        )
        .await;
    (id, seen["data"]["markSeen"]["appeal"]["version"].as_i64().expect("seen"))
}

/// Sends `text` through one field; returns the response and, for fields that
/// store it, the value the server stored.
async fn send(app: &TestApp, actors: &Actors, field: &str, text: &str, index: usize) -> (Value, Option<Value>) {
    let stored = |response: &Value, pointer: &str| response.pointer(pointer).cloned();
    match field {
        "submitAppeal.text" | "submitAppeal.authorName" | "submitAppeal.authorContact" | "submitAppeal.externalId" => {
            let key = field.trim_start_matches("submitAppeal.");
            let mut input = json!({ "municipalityCode": "tomsk", "channel": "WEB", "text": "Обращение" });
            input[key] = json!(text);
            let response = app
                .graphql(
                    Some(&actors.intake),
                    "mutation($input: SubmitAppealInput!) { submitAppeal(input: $input) { appeal { text authorName authorContact externalId } } }",
                    json!({ "input": input }),
                )
                .await;
            let stored = stored(&response, &format!("/data/submitAppeal/appeal/{key}"));
            (response, stored)
        }
        "submitAppeal.municipalityCode" => {
            let input = json!({ "municipalityCode": text, "channel": "WEB", "text": "Обращение" });
            let query = "mutation($input: SubmitAppealInput!) { submitAppeal(input: $input) { appeal { id } } }";
            (app.graphql(Some(&actors.intake), query, json!({ "input": input })).await, None)
        }
        "addNote.text" => {
            let (id, _) = fresh_appeal(app, actors, false).await;
            let query = "mutation($id: ID!, $text: String!) { addNote(id: $id, text: $text) { event { note } } }";
            let response = app.graphql(Some(&actors.assistant), query, json!({ "id": id, "text": text })).await;
            let stored = stored(&response, "/data/addNote/event/note");
            (response, stored)
        }
        "triageAppeal.category" | "triageAppeal.tags" => {
            let (id, version) = fresh_appeal(app, actors, false).await;
            let input =
                if field.ends_with("category") { json!({ "category": text }) } else { json!({ "tags": [text] }) };
            let query = "mutation($id: ID!, $v: Int!, $input: TriageAppealInput!) { triageAppeal(id: $id, expectedVersion: $v, input: $input) { appeal { category tags } } }";
            let response =
                app.graphql(Some(&actors.assistant), query, json!({ "id": id, "v": version, "input": input })).await;
            let pointer = if field.ends_with("category") {
                "/data/triageAppeal/appeal/category"
            } else {
                "/data/triageAppeal/appeal/tags/0"
            };
            let stored = stored(&response, pointer);
            (response, stored)
        }
        "extendDeadline.reason" => {
            let (id, version) = fresh_appeal(app, actors, false).await;
            let query = "mutation($id: ID!, $v: Int!, $reason: String!) { extendDeadline(id: $id, expectedVersion: $v, days: 10, reason: $reason) { event { note } } }";
            let response =
                app.graphql(Some(&actors.assistant), query, json!({ "id": id, "v": version, "reason": text })).await;
            let stored = stored(&response, "/data/extendDeadline/event/note");
            (response, stored)
        }
        "resolveAppeal.response" => {
            let (id, version) = fresh_appeal(app, actors, true).await;
            let query = "mutation($id: ID!, $v: Int!, $response: String!) { resolveAppeal(id: $id, expectedVersion: $v, input: { outcome: EXPLAINED, response: $response }) { appeal { resolution { response } } } }";
            let response =
                app.graphql(Some(&actors.assistant), query, json!({ "id": id, "v": version, "response": text })).await;
            let stored = stored(&response, "/data/resolveAppeal/appeal/resolution/response");
            (response, stored)
        }
        "appeals.filter.text" => {
            let query = "query($text: String!) { appeals(filter: { text: $text }) { totalCount } }";
            (app.graphql(Some(&actors.governor), query, json!({ "text": text })).await, None)
        }
        "appealByNumber" => {
            let query = "query($number: String!) { appealByNumber(number: $number) { id } }";
            (app.graphql(Some(&actors.governor), query, json!({ "number": text })).await, None)
        }
        "appeal.id" => {
            let query = "query($id: ID!) { appeal(id: $id) { id } }";
            (app.graphql(Some(&actors.governor), query, json!({ "id": text })).await, None)
        }
        "dashboard.municipalityCode" => {
            let query = "query($code: String!) { dashboard(municipalityCode: $code) { total } }";
            (app.graphql(Some(&actors.governor), query, json!({ "code": text })).await, None)
        }
        "createMunicipality.name" => {
            let query = "mutation($input: CreateMunicipalityInput!) { createMunicipality(input: $input) { municipality { name } } }";
            let input = json!({ "code": format!("corpus-{index}"), "name": text });
            let response = app.graphql(Some(&actors.admin), query, json!({ "input": input })).await;
            let stored = stored(&response, "/data/createMunicipality/municipality/name");
            (response, stored)
        }
        "createUser.name" => {
            let query = "mutation($input: CreateUserInput!) { createUser(input: $input) { user { name } } }";
            let input = json!({ "name": text, "role": "AUDITOR" });
            let response = app.graphql(Some(&actors.admin), query, json!({ "input": input })).await;
            let stored = stored(&response, "/data/createUser/user/name");
            (response, stored)
        }
        other => panic!("no such field in this test: {other}"),
    }
}

const FIELDS: &[&str] = &[
    "submitAppeal.text",
    "submitAppeal.authorName",
    "submitAppeal.authorContact",
    "submitAppeal.externalId",
    "submitAppeal.municipalityCode",
    "addNote.text",
    "triageAppeal.category",
    "triageAppeal.tags",
    "extendDeadline.reason",
    "resolveAppeal.response",
    "appeals.filter.text",
    "appealByNumber",
    "appeal.id",
    "dashboard.municipalityCode",
    "createMunicipality.name",
    "createUser.name",
];

async fn every_hostile_string_in_every_field_gets_a_clear_answer_and_changes_nothing_else(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |config| config.disable_rate_limits()).await else { return };
    let actors = Actors {
        intake: app.token(Role::Intake, None).await,
        head: app.token(Role::Head, Some("tomsk")).await,
        assistant: app.token(Role::Assistant, Some("tomsk")).await,
        admin: app.token(Role::Admin, None).await,
        governor: app.token(Role::GovernorOffice, None).await,
    };
    let witness_query = "query($id: ID!) { appeal(id: $id) { text version status history { hash } } }";
    let witness = app.submit(&actors.intake, "seversk", "Свидетель: это обращение не должно меняться").await;
    let witness_before = app.graphql(Some(&actors.governor), witness_query, json!({ "id": witness["id"] })).await;
    let rss_before = peak_rss_kib();

    let mut tried = 0;
    let mut accepted = 0;
    let mut failures = Vec::new();
    for (index, hostile) in corpus().iter().enumerate() {
        for field in FIELDS {
            tried += 1;
            let (response, stored) = send(&app, &actors, field, &hostile.text, index).await;
            let case = format!("{} in {field}", hostile.name);
            match error_code(&response) {
                None => {
                    accepted += 1;
                    if let Some(stored) = stored {
                        // Optional fields left blank are absent, by design (see the README).
                        let optional = ["authorName", "authorContact", "externalId"].iter().any(|f| field.ends_with(f));
                        let trimmed = hostile.text.trim();
                        let expected = if optional && trimmed.is_empty() { json!(null) } else { json!(trimmed) };
                        if stored != expected {
                            failures.push(format!("{case}: stored {stored} instead of {expected}"));
                        }
                    }
                }
                Some("VALIDATION") => {}
                Some(other) => failures.push(format!("{case}: answered {other}: {response}")),
            }
        }
    }
    let witness_after = app.graphql(Some(&actors.governor), witness_query, json!({ "id": witness["id"] })).await;
    let audit = app.store.verify_all().await.expect("the audit runs");
    let rss_growth_mib = peak_rss_kib().saturating_sub(rss_before) / 1024;
    println!(
        "{backend:?}: {tried} hostile inputs tried, {accepted} accepted, {} refused with VALIDATION; {} appeals audited; peak memory grew {rss_growth_mib} MiB",
        tried - accepted,
        audit.appeals_checked
    );

    assert!(failures.is_empty(), "{} cases went wrong:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(witness_after, witness_before, "another municipality's appeal changed");
    assert!(audit.first_failure.is_none(), "a hash chain broke: {:?}", audit.first_failure);
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert!(rss_growth_mib < 256, "memory grew by {rss_growth_mib} MiB over the corpus");
}

on_both_databases!(every_hostile_string_in_every_field_gets_a_clear_answer_and_changes_nothing_else);
