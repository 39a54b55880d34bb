//! The whole life of an appeal through the API: submitted by an intake bot, read
//! by the head, resolved by an assistant, reopened, resolved again; its history
//! and hash chain, the list, and the dashboard.

use appeals_core::Role;
use appeals_storage::testing::on_both_databases;
use serde_json::json;

use crate::support::{Backend, error_code, spawn_app};

const SEE: &str = "mutation($id: ID!, $v: Int!) { markSeen(id: $id, expectedVersion: $v) { appeal { status version seenAt } event { seq kind fromStatus toStatus } } }";
const RESOLVE: &str = "mutation($id: ID!, $v: Int!, $input: ResolveAppealInput!) { resolveAppeal(id: $id, expectedVersion: $v, input: $input) { appeal { status version resolvedAt resolution { outcome response resolvedBy { role } } } } }";
const REOPEN: &str = "mutation($id: ID!, $v: Int!, $reason: String!) { reopenAppeal(id: $id, expectedVersion: $v, reason: $reason) { appeal { status version resolution { outcome } resolvedAt } } }";
const HISTORY: &str = "query($id: ID!) { appeal(id: $id) { status version history { seq kind fromStatus toStatus note hash actor { role } } } verifyAudit(appealId: $id) { ok eventsChecked brokenAtSeq } }";

async fn an_appeal_lives_from_receipt_to_resolution(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let intake = app.token(Role::Intake, None).await;
    let head = app.token(Role::Head, Some("tomsk")).await;
    let assistant = app.token(Role::Assistant, Some("tomsk")).await;
    let auditor = app.token(Role::Auditor, None).await;

    let appeal = app.submit(&intake, "tomsk", "Яма на дороге у дома 5").await;
    let id = appeal["id"].as_str().expect("an id").to_owned();
    assert_eq!(appeal["status"], "RECEIVED");
    assert_eq!(appeal["version"], 1);
    assert!(appeal["number"].as_str().unwrap().starts_with("TOMSK-"), "{appeal}");

    let premature = app
        .graphql(
            Some(&assistant),
            RESOLVE,
            json!({ "id": id, "v": 1, "input": { "outcome": "SATISFIED", "response": "Готово" } }),
        )
        .await;
    assert_eq!(error_code(&premature), Some("INVALID_TRANSITION"), "{premature}");

    let by_assistant = app.graphql(Some(&assistant), SEE, json!({ "id": id, "v": 1 })).await;
    assert_eq!(error_code(&by_assistant), Some("FORBIDDEN"), "{by_assistant}");

    let seen = app.graphql(Some(&head), SEE, json!({ "id": id, "v": 1 })).await;
    assert_eq!(seen["data"]["markSeen"]["appeal"]["status"], "SEEN", "{seen}");
    assert_eq!(seen["data"]["markSeen"]["appeal"]["version"], 2);
    assert_eq!(
        seen["data"]["markSeen"]["event"],
        json!({ "seq": 2, "kind": "SEEN", "fromStatus": "RECEIVED", "toStatus": "SEEN" })
    );

    let stale = app.graphql(Some(&head), SEE, json!({ "id": id, "v": 1 })).await;
    assert_eq!(error_code(&stale), Some("VERSION_CONFLICT"), "{stale}");

    let resolved = app
        .graphql(
            Some(&assistant),
            RESOLVE,
            json!({ "id": id, "v": 2, "input": { "outcome": "SATISFIED", "response": "  Яму заделали  " } }),
        )
        .await;
    let resolution = &resolved["data"]["resolveAppeal"]["appeal"];
    assert_eq!(resolution["status"], "RESOLVED", "{resolved}");
    assert_eq!(resolution["resolution"]["response"], "Яму заделали");
    assert_eq!(resolution["resolution"]["resolvedBy"]["role"], "ASSISTANT");

    let reopened = app.graphql(Some(&head), REOPEN, json!({ "id": id, "v": 3, "reason": "Заделали плохо" })).await;
    let reopened = &reopened["data"]["reopenAppeal"]["appeal"];
    assert_eq!(reopened["status"], "SEEN");
    assert_eq!(reopened["resolution"], json!(null));
    assert_eq!(reopened["resolvedAt"], json!(null));

    let again = app
        .graphql(
            Some(&head),
            RESOLVE,
            json!({ "id": id, "v": 4, "input": { "outcome": "EXPLAINED", "response": "Переделали" } }),
        )
        .await;
    assert_eq!(again["data"]["resolveAppeal"]["appeal"]["version"], 5, "{again}");

    let history = app.graphql(Some(&auditor), HISTORY, json!({ "id": id })).await;
    let events = history["data"]["appeal"]["history"].as_array().expect("a history").clone();
    let kinds: Vec<&str> = events.iter().map(|event| event["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["RECEIVED", "SEEN", "RESOLVED", "REOPENED", "RESOLVED"]);
    let seqs: Vec<i64> = events.iter().map(|event| event["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(events[2]["note"], "Яму заделали", "the first resolution stays in the history");
    assert!(events.iter().all(|event| event["hash"].as_str().is_some_and(|hash| hash.len() == 64)));
    assert_eq!(history["data"]["verifyAudit"], json!({ "ok": true, "eventsChecked": 5, "brokenAtSeq": null }));
}

async fn the_list_and_the_dashboard_see_every_committed_change(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let intake = app.token(Role::Intake, None).await;
    let head = app.token(Role::Head, Some("seversk")).await;
    let governor = app.token(Role::GovernorOffice, None).await;
    let first = app.submit(&intake, "seversk", "Нет света в подъезде").await;
    app.submit(&intake, "seversk", "Яма во дворе").await;
    app.submit(&intake, "tomsk", "ЯМА на Ленина").await;
    app.graphql(Some(&head), SEE, json!({ "id": first["id"], "v": 1 })).await;

    let query = "{ appeals(filter: { text: \"яма\" }) { totalCount edges { node { text municipality { code } } } } dashboard { total received seen municipalities { municipality { code } total received seen medianHoursToSeen } } }";
    let governor_view = app.graphql(Some(&governor), query, json!({})).await;
    assert_eq!(governor_view["data"]["appeals"]["totalCount"], 2, "{governor_view}");
    let dashboard = &governor_view["data"]["dashboard"];
    assert_eq!(
        (dashboard["total"].as_i64(), dashboard["received"].as_i64(), dashboard["seen"].as_i64()),
        (Some(3), Some(2), Some(1))
    );
    let rows = dashboard["municipalities"].as_array().unwrap();
    assert_eq!(rows.len(), 20, "every municipality has a row, the empty ones too");
    let seversk = rows.iter().find(|row| row["municipality"]["code"] == "seversk").unwrap();
    assert_eq!((seversk["total"].as_i64(), seversk["seen"].as_i64()), (Some(2), Some(1)));
    assert!(seversk["medianHoursToSeen"].as_f64().is_some());

    let head_view = app.graphql(Some(&head), query, json!({})).await;
    assert_eq!(head_view["data"]["appeals"]["totalCount"], 1, "a head sees only their own municipality: {head_view}");
    assert_eq!(head_view["data"]["dashboard"]["municipalities"].as_array().unwrap().len(), 1);
}

on_both_databases!(an_appeal_lives_from_receipt_to_resolution, the_list_and_the_dashboard_see_every_committed_change);
