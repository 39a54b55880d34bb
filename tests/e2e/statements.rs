//! A page of 100 appeals with their municipality, history and the users in it
//! costs a handful of SQL statements, not hundreds: related objects are batched by
//! the request's loaders.

use appeals_core::text::{AppealText, MunicipalityCode};
use appeals_core::{Channel, Command, Role, Submission};
use appeals_storage::testing::on_both_databases;
use serde_json::json;

use crate::support::{Backend, spawn_app};

const PAGE: &str = "{ appeals(first: 100) { totalCount edges { cursor node { id number status municipality { code name } resolution { outcome resolvedBy { name } } history { seq kind hash actor { name role municipality { code } } } } } pageInfo { hasNextPage endCursor } } }";

async fn a_page_of_a_hundred_appeals_with_history_costs_a_handful_of_statements(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let governor = app.token(Role::GovernorOffice, None).await;
    let (intake, _) =
        app.store.create_user(appeals_core::text::PersonName::parse("bot").unwrap(), Role::Intake, None).await.unwrap();
    let codes = ["tomsk", "seversk", "kedrovy", "strezhevoy"];
    let mut heads = Vec::new();
    for code in codes {
        let parsed = MunicipalityCode::parse(code).unwrap();
        let name = appeals_core::text::PersonName::parse(&format!("head of {code}")).unwrap();
        heads.push((app.store.create_user(name, Role::Head, Some(&parsed)).await.unwrap().0, parsed));
    }
    for index in 0..100 {
        let (head, code) = &heads[index % heads.len()];
        let submission = Submission {
            channel: Channel::Web,
            external_id: None,
            author_name: None,
            author_contact: None,
            text: AppealText::parse(&format!("Обращение {index}")).unwrap(),
        };
        let appeal = app.store.submit(&intake.actor(), code, submission).await.unwrap().appeal;
        app.store.execute_command(&head.actor(), appeal.id, &Command::MarkSeen, Some(1)).await.unwrap();
    }

    let before = app.store.statements_executed();
    let page = app.graphql(Some(&governor), PAGE, json!({})).await;
    let statements = app.store.statements_executed() - before;

    let edges = page["data"]["appeals"]["edges"].as_array().unwrap_or_else(|| panic!("a page: {page}"));
    assert_eq!(edges.len(), 100);
    assert!(edges.iter().all(|edge| edge["node"]["history"].as_array().is_some_and(|h| h.len() == 2)));
    println!("{backend:?}: one page of 100 appeals with history cost {statements} SQL statements");
    // Batched perfectly, the page costs at most 6 statements on SQLite and 7 on
    // PostgreSQL: the token (its first use), the page, its count, the histories,
    // the users and the municipalities (unless remembered already). A loader's batch closes 1 ms after its first key, and
    // in a debug build on a busy machine the hundred histories do not all join
    // it: 10 to 18 statements are seen. The bound leaves room for that; one query
    // per appeal (N+1) would cost well over 200.
    assert!(statements <= 30, "{statements} statements for one page");
}

/// What a list page costs once the caller's token and the municipalities are
/// known: the page alone when `totalCount` is not asked for.
async fn a_page_that_does_not_ask_for_its_total_is_one_statement(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let assistant = app.token(Role::Assistant, Some("tomsk")).await;
    for index in 0..30 {
        app.submit(&assistant, "tomsk", &format!("Обращение {index}")).await;
    }
    let uncounted = "{ appeals(first: 20, filter: { municipalityCode: \"tomsk\" }) { edges { node { id number \
                     municipality { code name } } } pageInfo { hasNextPage endCursor } } }";
    let counted =
        "{ appeals(first: 20, filter: { municipalityCode: \"tomsk\" }) { totalCount edges { node { id } } } }";
    let cost = async |query: &str| {
        let before = app.store.statements_executed();
        let page = app.graphql(Some(&assistant), query, json!({})).await;
        assert!(page.get("errors").is_none(), "{page}");
        (app.store.statements_executed() - before, page)
    };
    // The first request reads the token's user and the municipalities.
    cost(uncounted).await;
    let (statements, page) = cost(uncounted).await;
    assert_eq!(page["data"]["appeals"]["edges"].as_array().map(Vec::len), Some(20));
    assert_eq!(page["data"]["appeals"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(page["data"]["appeals"]["edges"][0]["node"]["municipality"]["code"], "tomsk");
    assert_eq!(statements, 1, "a page without its total is its one SELECT");
    let (statements, page) = cost(counted).await;
    assert_eq!(page["data"]["appeals"]["totalCount"], 30);
    assert!(statements > 1, "the total costs a statement of its own (and a transaction): {statements}");
}

/// What registering an appeal costs once the caller's token and the
/// municipality are known: the next registration number, then the appeal, its
/// first event and the dashboard's tallies. On PostgreSQL those are one
/// statement; SQLite, which allows no writes in a `WITH`, takes one for each of
/// the appeal, the event, the deadlines owed and the status counts (`BEGIN` and
/// `COMMIT` are not counted). A message with an external id costs the same, as
/// nothing is looked up before the write; its retry costs the number (given
/// back), the insert that conflicts, and the read of the appeal registered first.
async fn intake_is_the_number_then_one_statement_on_postgresql_and_four_on_sqlite(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let intake = app.token(Role::Intake, None).await;
    let mutation = "mutation($input: SubmitAppealInput!) { submitAppeal(input: $input) { created appeal { id } } }";
    let cost = async |external_id: Option<&str>| {
        let input = json!({ "municipalityCode": "tomsk", "channel": "TELEGRAM", "externalId": external_id,
                            "text": "Не горит фонарь у школы" });
        let before = app.store.statements_executed();
        let response = app.graphql(Some(&intake), mutation, json!({ "input": input })).await;
        let submitted = &response["data"]["submitAppeal"];
        assert!(submitted["created"].is_boolean(), "{response}");
        (app.store.statements_executed() - before, submitted["created"] == true, submitted["appeal"]["id"].clone())
    };
    // The first submission reads the token's user and the municipalities; on
    // PostgreSQL the user is remembered once the revocation listener is up.
    cost(None).await;
    let started = std::time::Instant::now();
    loop {
        let before = app.store.statements_executed();
        app.store.user_by_token(&intake).await.expect("a lookup").expect("the intake user");
        if app.store.statements_executed() == before {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "the token's user is never remembered");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let registration = match backend {
        Backend::Postgres => 2,
        Backend::Sqlite => 5,
    };
    let (statements, created, _) = cost(None).await;
    assert_eq!((statements, created), (registration, true), "{backend:?}: a submission without an external id");
    let (statements, created, first) = cost(Some("chat-7/msg-1")).await;
    assert_eq!((statements, created), (registration, true), "{backend:?}: a new message with an external id");
    let (statements, created, again) = cost(Some("chat-7/msg-1")).await;
    assert_eq!((statements, created, again), (3, false, first), "{backend:?}: the message's retry");
}

on_both_databases!(
    a_page_of_a_hundred_appeals_with_history_costs_a_handful_of_statements,
    a_page_that_does_not_ask_for_its_total_is_one_statement,
    intake_is_the_number_then_one_statement_on_postgresql_and_four_on_sqlite,
);
