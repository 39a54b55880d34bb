//! The two searches over HTTP (README, "Search"): `search` finds words in any of
//! their forms and `text` a piece of the text, within the caller's scope, with
//! the other filters, newest first, in pages, with an exact total; a search
//! that could match nothing useful is `VALIDATION`; and `appeals search
//! reindex` rebuilds the indexes of a database a server is serving.

use appeals_core::Role;
use appeals_storage::testing::{Backend, ThrowawayDatabase, on_both_databases};
use serde_json::{Value, json};

use crate::support::process::{ServerProcess, describe, run_command};
use crate::support::{error_code, spawn_app};

on_both_databases!(
    both_searches_keep_to_the_scope_and_the_filters_and_page_newest_first,
    a_search_that_could_match_nothing_useful_is_validation,
    the_reindex_command_rebuilds_the_indexes_of_a_served_database,
);

const LIST: &str = "query($filter: AppealFilter, $first: Int, $after: String) { \
    appeals(filter: $filter, first: $first, after: $after) { totalCount \
    edges { node { number text status municipality { code } } } pageInfo { hasNextPage endCursor } } }";

/// The texts of the page, in its order, and the total.
fn texts_and_total(response: &Value) -> (Vec<String>, u64) {
    assert!(response["errors"].is_null(), "no errors: {response}");
    let connection = &response["data"]["appeals"];
    let texts = connection["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| edge["node"]["text"].as_str().expect("a text").to_owned())
        .collect();
    (texts, connection["totalCount"].as_u64().expect("a total"))
}

async fn both_searches_keep_to_the_scope_and_the_filters_and_page_newest_first(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let intake = app.token(Role::Intake, None).await;
    let assistant = app.token(Role::Assistant, Some("tomsk")).await;
    let governor = app.token(Role::GovernorOffice, None).await;
    let head = app.token(Role::Head, Some("tomsk")).await;
    let tomsk = [
        "Яма на дороге у дома 5 по улице Ленина",
        "Огромные ЯМЫ во дворе, машины бьются",
        "Не работает освещение в подъезде",
        "Ёлку во дворе не убрали с января",
        "Pothole lights are broken on the road",
    ];
    for text in tomsk {
        app.submit(&intake, "tomsk", text).await;
    }
    app.submit(&intake, "seversk", "Яму засыпали щебнем, но она снова появилась").await;

    let list = |token: &str, filter: Value| {
        let token = token.to_owned();
        let app = &app;
        async move { texts_and_total(&app.graphql(Some(&token), LIST, json!({ "filter": filter })).await) }
    };
    // Inflected forms, newest first; the assistant sees Tomsk only, the
    // governor the region.
    let (found, total) = list(&assistant, json!({ "search": "ямой" })).await;
    assert_eq!(found, [tomsk[1], tomsk[0]], "newest first, in Tomsk only");
    assert_eq!(total, 2);
    let (found, total) = list(&governor, json!({ "search": "яма" })).await;
    assert_eq!(total, 3, "{found:?}");
    // Scope is never widened: Seversk's appeal is the only one with `засыпали`.
    assert_eq!(list(&assistant, json!({ "search": "засыпали" })).await, (vec![], 0));
    assert_eq!(list(&assistant, json!({ "search": "засыпали", "municipalityCode": "seversk" })).await, (vec![], 0));
    assert_eq!(list(&governor, json!({ "search": "засыпали" })).await.1, 1);
    // Every word must occur; ё is е; a prefix; English stems.
    assert_eq!(list(&assistant, json!({ "search": "ямы дорога" })).await.0, [tomsk[0]]);
    assert_eq!(list(&assistant, json!({ "search": "елка" })).await.0, [tomsk[3]]);
    assert_eq!(list(&assistant, json!({ "search": "освещ*" })).await.0, [tomsk[2]]);
    assert_eq!(list(&assistant, json!({ "search": "lighting" })).await.0, [tomsk[4]]);
    // The substring search, as before: a piece of a word, in any case.
    assert_eq!(list(&assistant, json!({ "text": "ЯМ" })).await.1, 2);
    assert_eq!(list(&assistant, json!({ "text": "во дворе" })).await.0, [tomsk[3], tomsk[1]]);

    // With another filter: the head reads one, and it is no longer RECEIVED.
    let seen = app
        .graphql(
            Some(&head),
            "query($filter: AppealFilter) { appeals(filter: $filter) { edges { node { id version } } } }",
            json!({ "filter": { "search": "дорога" } }),
        )
        .await;
    let node = &seen["data"]["appeals"]["edges"][0]["node"];
    let marked = app
        .graphql(
            Some(&head),
            "mutation($id: ID!, $v: Int!) { markSeen(id: $id, expectedVersion: $v) { appeal { status } } }",
            json!({ "id": node["id"], "v": node["version"] }),
        )
        .await;
    assert_eq!(marked["data"]["markSeen"]["appeal"]["status"], "SEEN", "{marked}");
    assert_eq!(list(&assistant, json!({ "search": "ямы", "status": "RECEIVED" })).await.0, [tomsk[1]]);
    assert_eq!(list(&assistant, json!({ "search": "ямы", "status": "SEEN" })).await.0, [tomsk[0]]);

    // Pages of one, by cursor, neither skipping nor repeating.
    let mut after: Option<String> = None;
    let mut paged = Vec::new();
    loop {
        let response = app
            .graphql(Some(&governor), LIST, json!({ "filter": { "search": "ям*" }, "first": 1, "after": after }))
            .await;
        let (texts, total) = texts_and_total(&response);
        assert_eq!(total, 3, "the total on every page");
        paged.extend(texts);
        let info = &response["data"]["appeals"]["pageInfo"];
        if info["hasNextPage"] != true {
            break;
        }
        after = info["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(paged.len(), 3, "{paged:?}");
    assert_eq!(paged, list(&governor, json!({ "search": "ям*" })).await.0, "the pages add up to the list");
}

async fn a_search_that_could_match_nothing_useful_is_validation(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let intake = app.token(Role::Intake, None).await;
    let governor = app.token(Role::GovernorOffice, None).await;
    app.submit(&intake, "tomsk", "Яма на дороге").await;
    let cases = [
        ("", "no words"),
        ("   ", "no words"),
        ("«…» — !", "no words"),
        ("и на не", "common words"),
        ("the and of", "common words"),
        ("я*", "two letters"),
        ("яма дорога свет двор мусор крыша снег лед труба", "8"),
    ];
    let too_long = "я".repeat(201);
    let with_control = "яма\u{7}".to_owned();
    for (search, mentions) in
        cases.iter().map(|(s, m)| (s.to_string(), *m)).chain([(too_long, "200"), (with_control, "control")])
    {
        let response = app.graphql(Some(&governor), LIST, json!({ "filter": { "search": search } })).await;
        assert_eq!(error_code(&response), Some("VALIDATION"), "{search:?}: {response}");
        let message = response["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("search") && message.contains(mentions), "{search:?}: {message}");
        assert!(response["data"].is_null() || response["data"]["appeals"].is_null(), "{response}");
    }
    // The broadest search accepted: 8 prefixes of two letters, over the
    // region, with its total; answered, while a plain list is served beside it.
    let broadest = "по* на* до* ул* пр* ко* ям* св*";
    let (wide, plain) = tokio::join!(
        app.graphql(Some(&governor), LIST, json!({ "filter": { "search": broadest } })),
        app.graphql(Some(&governor), LIST, json!({})),
    );
    assert!(wide["errors"].is_null(), "{wide}");
    assert_eq!(texts_and_total(&plain).1, 1, "{plain}");
    // And the server goes on answering.
    let response = app.graphql(Some(&governor), LIST, json!({ "filter": { "search": "ямы на дороге" } })).await;
    assert_eq!(texts_and_total(&response).1, 1);
}

async fn the_reindex_command_rebuilds_the_indexes_of_a_served_database(backend: Backend) {
    let Some(database) = ThrowawayDatabase::create(backend).await else { return };
    let url = database.url.clone();
    let token = |role: &str, municipality: Option<&str>| {
        let mut args = vec!["user", "add", "--name", "Тест", "--role", role, "--quiet"];
        args.extend(municipality.map(|code| ["--municipality", code]).into_iter().flatten());
        let output = run_command(&url, &args);
        assert!(output.status.success(), "{}", describe(&output));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let migrated = run_command(&url, &["migrate"]);
    assert!(migrated.status.success(), "{}", describe(&migrated));
    let (intake, governor) = (token("intake", None), token("governor-office", None));
    let server = ServerProcess::start(&url, &[]).await;
    let submit = "mutation($text: String!) { submitAppeal(input: { municipalityCode: \"tomsk\", channel: WEB, text: $text }) { created } }";
    for n in 0..30 {
        let text = format!("Обращение {n}: яма на дороге, освещение не работает");
        let response = server.graphql(&intake, submit, json!({ "text": text })).await;
        assert_eq!(response["data"]["submitAppeal"]["created"], true, "{response}");
    }

    let output = run_command(&url, &["search", "reindex"]);
    assert!(output.status.success(), "{}", describe(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("search indexes rebuilt: 30 appeals analysed"), "{printed}");

    // The server, which kept running, finds every appeal by both searches.
    for filter in [json!({ "search": "ямы освещения" }), json!({ "text": "ЯМА НА" })] {
        let response = server.graphql(&governor, LIST, json!({ "filter": filter, "first": 100 })).await;
        assert_eq!(texts_and_total(&response).1, 30, "{filter}");
    }
}
