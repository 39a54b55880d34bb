//! GraphQL over HTTP as its specification and the usual clients expect it: media
//! types, status codes, GET, automatic persisted queries and trusted documents,
//! over real HTTP (and the WebSocket for trusted documents).

use std::path::Path;
use std::time::Duration;

use appeals_api::persisted::{TrustedDocuments, sha256};
use appeals_core::Role;
use appeals_storage::testing::on_both_databases;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::process::{appeals_binary, describe, run_command};
use crate::support::{Backend, TestApp, error_code, spawn_app_with};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

on_both_databases!(
    the_answer_has_the_media_type_the_client_accepts,
    request_errors_are_400_without_data_under_graphql_response_json_and_200_under_json,
    a_malformed_request_is_400_whatever_the_client_accepts,
    a_post_not_declared_json_is_415_and_runs_nothing,
    get_runs_a_query_from_the_urls_parameters,
    get_refuses_mutations_and_subscriptions_with_405,
    graphiql_answers_only_a_browser_asking_for_a_page,
    automatic_persisted_queries_follow_apollos_protocol,
    a_hash_that_is_not_its_documents_is_refused_and_never_stored,
    trusted_documents_run_and_nothing_else_does,
    a_flood_of_registrations_and_headers_is_bounded_and_others_are_served,
);

/// What came back: status, `Content-Type`, and the body as JSON (`Null` when it
/// is not JSON).
struct Answer {
    status: StatusCode,
    content_type: String,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("the server should answer");
    let status = response.status();
    let headers = response.headers().clone();
    let content_type = headers.get("content-type").and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
    let text = response.text().await.unwrap_or_default();
    Answer { status, content_type, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
}

/// A POST of `body` as JSON, with `accept` (none when `None`) and `token`.
async fn post(app: &TestApp, accept: Option<&str>, token: Option<&str>, body: &Value) -> Answer {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    send(request).await
}

/// A GET with `params` in the URL.
async fn get(app: &TestApp, accept: Option<&str>, token: Option<&str>, params: &[(&str, &str)]) -> Answer {
    let mut request = app.client.get(format!("{}/graphql", app.address)).query(params);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    send(request).await
}

async fn app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |config| config.disable_rate_limits()).await
}

async fn the_answer_has_the_media_type_the_client_accepts(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let query = json!({ "query": "{ __typename }" });
    let cases = [
        (None, JSON),
        (Some("*/*"), JSON),
        (Some("application/*"), JSON),
        (Some("application/json"), JSON),
        (Some("application/graphql-response+json"), GRAPHQL_RESPONSE),
        (Some("application/graphql-response+json, application/json;q=0.9"), GRAPHQL_RESPONSE),
        (Some("application/json, application/graphql-response+json;q=0.5"), JSON),
    ];
    for (accept, expected) in cases {
        let answer = post(&app, accept, None, &query).await;
        assert_eq!(answer.status, 200, "Accept: {accept:?}");
        assert!(answer.content_type.starts_with(expected), "Accept: {accept:?} gave {}", answer.content_type);
        assert!(answer.content_type.contains("charset=utf-8"), "{}", answer.content_type);
        assert_eq!(answer.body, json!({ "data": { "__typename": "Query" } }), "Accept: {accept:?}");
    }
    let refused = post(&app, Some("text/html"), None, &query).await;
    assert_eq!(refused.status, 406, "a client that accepts neither type");
    assert_eq!(error_code(&refused.body), Some("VALIDATION"));
}

async fn request_errors_are_400_without_data_under_graphql_response_json_and_200_under_json(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let request_errors = [
        ("a document that does not parse", json!({ "query": "{" })),
        ("a field that does not exist", json!({ "query": "{ noSuchField }" })),
        (
            "a variable that does not coerce",
            json!({ "query": "query Q($id: ID!) { appeal(id: $id) { id } }", "variables": { "id": null } }),
        ),
        ("an operation the document does not have", json!({ "query": "query A { __typename }", "operationName": "B" })),
        (
            "a document over the nesting limit",
            json!({ "query": format!("{{ a(x: {}1{}) }}", "[".repeat(100), "]".repeat(100)) }),
        ),
        (
            "a document over the cost budget",
            json!({ "query": "{ appeals(first: 100) { edges { node { text history(first: 1000) { note } } } } }" }),
        ),
    ];
    for (case, body) in request_errors {
        let strict = post(&app, Some(GRAPHQL_RESPONSE), None, &body).await;
        assert_eq!(strict.status, 400, "{case}, under {GRAPHQL_RESPONSE}: {}", strict.body);
        assert!(strict.body.get("data").is_none(), "{case}: a request error has no data entry: {}", strict.body);
        assert!(error_code(&strict.body).is_some(), "{case}: every error is coded: {}", strict.body);
        let legacy = post(&app, Some(JSON), None, &body).await;
        assert_eq!(legacy.status, 200, "{case}, under {JSON}: {}", legacy.body);
        assert!(legacy.body.get("data").is_none(), "{case}: {}", legacy.body);
        assert_eq!(legacy.body["errors"], strict.body["errors"], "{case}: the same errors either way");
    }
    // A field error is not a request error: `data` is there (null here), and 200.
    for accept in [GRAPHQL_RESPONSE, JSON] {
        let field_error = post(&app, Some(accept), None, &json!({ "query": "{ me { id } }" })).await;
        assert_eq!(field_error.status, 200, "{accept}");
        assert_eq!(field_error.body["data"], Value::Null, "{accept}: {}", field_error.body);
        assert!(field_error.body.get("data").is_some(), "{accept}: data is present");
        assert_eq!(error_code(&field_error.body), Some("UNAUTHENTICATED"));
        assert_eq!(field_error.body["errors"][0]["path"], json!(["me"]));
    }
}

async fn a_malformed_request_is_400_whatever_the_client_accepts(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let url = format!("{}/graphql", app.address);
    let bodies = [
        ("not JSON", r#"{ "not a JSON"#.to_owned()),
        ("empty", String::new()),
        ("no query", json!({ "notquery": "{ __typename }" }).to_string()),
        ("a number for query", json!({ "query": 0 }).to_string()),
        ("an object for query", json!({ "query": { "obj": "ect" } }).to_string()),
        ("an array for operationName", json!({ "query": "{ __typename }", "operationName": ["a"] }).to_string()),
        ("a string for variables", json!({ "query": "{ __typename }", "variables": "{}" }).to_string()),
        ("a boolean for extensions", json!({ "query": "{ __typename }", "extensions": false }).to_string()),
        ("null", "null".to_owned()),
    ];
    for accept in [GRAPHQL_RESPONSE, JSON] {
        for (case, body) in &bodies {
            let answer = send(
                app.client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("accept", accept)
                    .body(body.clone()),
            )
            .await;
            assert_eq!(answer.status, 400, "{case} under {accept}: {}", answer.body);
            assert!(answer.body.get("data").is_none(), "{case}: {}", answer.body);
            assert_eq!(error_code(&answer.body), Some("VALIDATION"), "{case}");
        }
    }
    // Each parameter may be null.
    for parameter in ["variables", "operationName", "extensions"] {
        let answer =
            post(&app, Some(GRAPHQL_RESPONSE), None, &json!({ "query": "{ __typename }", parameter: null })).await;
        assert_eq!(answer.status, 200, "null {parameter}: {}", answer.body);
        assert!(answer.body.get("errors").is_none(), "null {parameter}: {}", answer.body);
    }
}

async fn a_post_not_declared_json_is_415_and_runs_nothing(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let assistant = app.token(Role::Assistant, Some("tomsk")).await;
    let url = format!("{}/graphql", app.address);
    let submit = json!({
        "query": "mutation($input: SubmitAppealInput!) { submitAppeal(input: $input) { created } }",
        "variables": { "input": { "municipalityCode": "tomsk", "channel": "WEB", "text": "sent as a form" } },
    })
    .to_string();
    // A page on another site can send these without asking the browser first.
    for content_type in
        [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/json; charset=latin1")]
    {
        let mut request = app.client.post(&url).bearer_auth(&assistant).body(submit.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let answer = send(request).await;
        assert_eq!(answer.status, 415, "Content-Type: {content_type:?}: {}", answer.body);
        assert_eq!(error_code(&answer.body), Some("VALIDATION"));
    }
    let count = app.graphql(Some(&assistant), "{ appeals { totalCount } }", json!({})).await;
    assert_eq!(count["data"]["appeals"]["totalCount"], 0, "nothing was submitted: {count}");
    let declared = send(
        app.client
            .post(&url)
            .bearer_auth(&assistant)
            .header("content-type", "application/json; charset=utf-8")
            .body(submit),
    )
    .await;
    assert_eq!(declared.status, 200, "{}", declared.body);
    assert_eq!(declared.body["data"]["submitAppeal"]["created"], true);
}

async fn get_runs_a_query_from_the_urls_parameters(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let assistant = app.token(Role::Assistant, Some("tomsk")).await;
    let appeal = app.submit(&assistant, "tomsk", "Яма на улице Ленина").await;
    let id = appeal["id"].as_str().expect("an id");
    let query = "query One($id: ID!) { appeal(id: $id) { number text status } } query Other { me { role } }";
    let variables = json!({ "id": id }).to_string();
    let params = [("query", query), ("variables", variables.as_str()), ("operationName", "One")];
    let by_get = get(&app, Some(GRAPHQL_RESPONSE), Some(&assistant), &params).await;
    assert_eq!(by_get.status, 200, "{}", by_get.body);
    assert!(by_get.content_type.starts_with(GRAPHQL_RESPONSE));
    let by_post = post(
        &app,
        Some(GRAPHQL_RESPONSE),
        Some(&assistant),
        &json!({ "query": query, "variables": { "id": id }, "operationName": "One" }),
    )
    .await;
    assert_eq!(by_get.body, by_post.body, "GET answers as POST does");
    assert_eq!(by_get.body["data"]["appeal"]["text"], "Яма на улице Ленина");
    let vary = by_get.headers.get("vary").and_then(|value| value.to_str().ok()).unwrap_or_default();
    assert!(vary.contains("Accept") && vary.contains("Authorization"), "Vary: {vary}");

    // No Accept header, as `fetch(url)` sends none of its own: JSON.
    let plain = get(&app, None, None, &[("query", "{ __typename }")]).await;
    assert_eq!(plain.status, 200);
    assert!(plain.content_type.starts_with(JSON), "{}", plain.content_type);
    // Request errors and malformed parameters over GET, as over POST.
    let unknown = get(&app, Some(GRAPHQL_RESPONSE), None, &[("query", "{ noSuchField }")]).await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.body.get("data").is_none());
    let bad_variables = get(&app, Some(JSON), None, &[("query", "{ __typename }"), ("variables", "[1]")]).await;
    assert_eq!(bad_variables.status, 400, "{}", bad_variables.body);
    let Some(small) = spawn_app_with(backend, |config| config.body_limit = 16 * 1024).await else { return };
    let long = format!("{{ __typename }}{}", " ".repeat(20 * 1024));
    let too_long = get(&small, Some(JSON), None, &[("query", long.as_str())]).await;
    assert_eq!(too_long.status, 414, "URL parameters longer than a body may be");
    assert_eq!(error_code(&too_long.body), Some("VALIDATION"));
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200, "the server is still up");
}

async fn get_refuses_mutations_and_subscriptions_with_405(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let assistant = app.token(Role::Assistant, Some("tomsk")).await;
    let mutation =
        "mutation { submitAppeal(input: { municipalityCode: \"tomsk\", channel: WEB, text: \"by GET\" }) { created } }";
    let subscription = "subscription { appealEvents { seq } }";
    let named = "query Read { me { role } } mutation Write { addNote(id: \"x\", text: \"y\") { event { seq } } }";
    for (case, params) in [
        ("a mutation", vec![("query", mutation)]),
        ("a subscription", vec![("query", subscription)]),
        ("the mutation of a document with a query too", vec![("query", named), ("operationName", "Write")]),
    ] {
        for accept in [GRAPHQL_RESPONSE, JSON] {
            let answer = get(&app, Some(accept), Some(&assistant), &params).await;
            assert_eq!(answer.status, 405, "{case}: {}", answer.body);
            let allow = answer.headers.get("allow").and_then(|value| value.to_str().ok());
            assert_eq!(allow, Some("POST"), "{case}");
            assert_eq!(error_code(&answer.body), Some("VALIDATION"), "{case}");
        }
    }
    let read = get(&app, Some(JSON), Some(&assistant), &[("query", named), ("operationName", "Read")]).await;
    assert_eq!(read.status, 200, "the query of the same document runs: {}", read.body);
    let count = app.graphql(Some(&assistant), "{ appeals { totalCount } }", json!({})).await;
    assert_eq!(count["data"]["appeals"]["totalCount"], 0, "no GET submitted anything: {count}");
}

async fn graphiql_answers_only_a_browser_asking_for_a_page(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let page = send(app.client.get(format!("{}/graphql", app.address)).header("accept", browser)).await;
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"), "{}", page.content_type);
    let with_query = get(&app, Some(browser), None, &[("query", "{ __typename }")]).await;
    assert_eq!(with_query.status, 200);
    assert!(
        with_query.content_type.starts_with(JSON),
        "a query is run, even for a browser: {}",
        with_query.content_type
    );
    assert_eq!(with_query.body["data"]["__typename"], "Query");
    let no_query = send(app.client.get(format!("{}/graphql", app.address)).header("accept", "*/*")).await;
    assert_eq!(no_query.status, 400, "no page for a client that does not ask for one: {}", no_query.body);
    assert!(no_query.body["errors"][0]["message"].as_str().unwrap_or_default().contains("no `query`"));
}

fn apq(query: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hex(query) } })
}

fn hex(document: &str) -> String {
    hex::encode(sha256(document))
}

async fn automatic_persisted_queries_follow_apollos_protocol(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let assistant = app.token(Role::Assistant, Some("tomsk")).await;
    let head = app.token(Role::Head, Some("tomsk")).await;
    app.submit(&assistant, "tomsk", "Не горит фонарь").await;
    let query = "query Inbox { appeals { totalCount edges { node { text } } } }";

    // An unknown hash: Apollo's message and code; 200 under JSON, 400 under the new type.
    for (accept, status) in [(JSON, 200), (GRAPHQL_RESPONSE, 400)] {
        let unknown = post(&app, Some(accept), Some(&assistant), &json!({ "extensions": apq(query) })).await;
        assert_eq!(unknown.status, status, "{accept}: {}", unknown.body);
        assert_eq!(unknown.body["errors"][0]["message"], "PersistedQueryNotFound");
        assert_eq!(error_code(&unknown.body), Some("PERSISTED_QUERY_NOT_FOUND"));
        assert!(unknown.body.get("data").is_none());
    }
    // The query with its hash runs and registers it.
    let registered = post(&app, None, Some(&assistant), &json!({ "query": query, "extensions": apq(query) })).await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    assert_eq!(registered.body["data"]["appeals"]["totalCount"], 1);
    // Now the hash alone runs it, over POST and over GET, for any caller.
    let by_hash = post(&app, None, Some(&head), &json!({ "extensions": apq(query) })).await;
    assert_eq!(by_hash.body, registered.body, "the head sees the same appeal");
    let extensions = apq(query).to_string();
    let by_get = get(&app, None, Some(&assistant), &[("extensions", extensions.as_str())]).await;
    assert_eq!(by_get.status, 200);
    assert_eq!(by_get.body, registered.body);
    // A registration by GET works the same way.
    let other = "query Who { me { role } }";
    let other_extensions = apq(other).to_string();
    let missing = get(&app, None, Some(&head), &[("extensions", other_extensions.as_str())]).await;
    assert_eq!(error_code(&missing.body), Some("PERSISTED_QUERY_NOT_FOUND"));
    let both = get(&app, None, Some(&head), &[("query", other), ("extensions", other_extensions.as_str())]).await;
    assert_eq!(both.body["data"]["me"]["role"], "HEAD");
    let then = get(&app, None, Some(&head), &[("extensions", other_extensions.as_str())]).await;
    assert_eq!(then.body, both.body);

    // With APQ turned off, a hash alone is not supported; a full query still runs.
    let Some(off) = spawn_app_with(backend, |config| {
        config.disable_rate_limits();
        config.persisted.apq_cache_bytes = 0;
    })
    .await
    else {
        return;
    };
    let token = off.token(Role::Assistant, Some("tomsk")).await;
    let refused = post(&off, None, Some(&token), &json!({ "extensions": apq(query) })).await;
    assert_eq!(error_code(&refused.body), Some("PERSISTED_QUERY_NOT_SUPPORTED"), "{}", refused.body);
    let plain = post(&off, None, Some(&token), &json!({ "query": query })).await;
    assert!(plain.body.get("errors").is_none(), "{}", plain.body);
}

async fn a_hash_that_is_not_its_documents_is_refused_and_never_stored(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let victim = app.token(Role::Assistant, Some("tomsk")).await;
    let attacker = app.token(Role::Assistant, Some("tomsk")).await;
    let wanted = "query Inbox { appeals { totalCount } }";
    let planted = "query Inbox { me { name } }";
    // The attacker sends another document under the hash the victim will use.
    let poison = json!({ "query": planted, "extensions": apq(wanted) });
    for accept in [JSON, GRAPHQL_RESPONSE] {
        let refused = post(&app, Some(accept), Some(&attacker), &poison).await;
        assert_eq!(error_code(&refused.body), Some("VALIDATION"), "{}", refused.body);
        assert!(refused.body["errors"][0]["message"].as_str().unwrap_or_default().contains("not the SHA-256"));
        assert!(refused.body.get("data").is_none(), "nothing ran");
    }
    let extensions = apq(wanted).to_string();
    let poisoned_by_get =
        get(&app, None, Some(&attacker), &[("query", planted), ("extensions", extensions.as_str())]).await;
    assert_eq!(error_code(&poisoned_by_get.body), Some("VALIDATION"));
    // The victim's hash is still unknown, and then registers what it should.
    let victims = post(&app, None, Some(&victim), &json!({ "extensions": apq(wanted) })).await;
    assert_eq!(error_code(&victims.body), Some("PERSISTED_QUERY_NOT_FOUND"), "{}", victims.body);
    let registered = post(&app, None, Some(&victim), &json!({ "query": wanted, "extensions": apq(wanted) })).await;
    assert_eq!(registered.body["data"]["appeals"]["totalCount"], 0);
    let later = post(&app, None, Some(&victim), &json!({ "extensions": apq(wanted) })).await;
    assert_eq!(later.body, registered.body);
    // A hash that is not hex, and a version that is not 1.
    let bad = json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "zz" } } });
    assert_eq!(error_code(&post(&app, None, Some(&victim), &bad).await.body), Some("VALIDATION"));
    let version = json!({ "extensions": { "persistedQuery": { "version": 2, "sha256Hash": hex(wanted) } } });
    assert_eq!(error_code(&post(&app, None, Some(&victim), &version).await.body), Some("VALIDATION"));
}

/// The worst a client can send these parts: a thousand distinct documents to
/// register, and an `Accept` header of thousands of media ranges.
async fn a_flood_of_registrations_and_headers_is_bounded_and_others_are_served(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.disable_rate_limits();
        config.persisted.apq_cache_bytes = 4 * 1024;
    })
    .await
    else {
        return;
    };
    let flooder = app.token(Role::Assistant, Some("tomsk")).await;
    let other = app.token(Role::Head, Some("tomsk")).await;
    let documents: Vec<String> = (0..1_000).map(|n| format!("query Flood{n} {{ me {{ id }} }}")).collect();
    for document in &documents {
        let registered =
            post(&app, None, Some(&flooder), &json!({ "query": document, "extensions": apq(document) })).await;
        assert!(registered.body.get("errors").is_none(), "{}", registered.body);
    }
    // 4 KiB holds the last hundred or so: the first ones were dropped.
    let first = post(&app, None, Some(&flooder), &json!({ "extensions": apq(&documents[0]) })).await;
    assert_eq!(error_code(&first.body), Some("PERSISTED_QUERY_NOT_FOUND"), "{}", first.body);
    let last = post(&app, None, Some(&flooder), &json!({ "extensions": apq(&documents[999]) })).await;
    assert!(last.body.get("errors").is_none(), "the latest registration is kept: {}", last.body);

    let ranges = vec!["text/x-flood;q=0.1"; 5_000].join(",");
    let flooded = send(
        app.client
            .post(format!("{}/graphql", app.address))
            .header("content-type", "application/json")
            .header("accept", format!("{ranges},application/json"))
            .body(json!({ "query": "{ __typename }" }).to_string()),
    )
    .await;
    assert!(
        [StatusCode::OK, StatusCode::NOT_ACCEPTABLE, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE]
            .contains(&flooded.status),
        "a flooded Accept header is answered: {}",
        flooded.status
    );
    let served = post(&app, Some(GRAPHQL_RESPONSE), Some(&other), &json!({ "query": "{ me { role } }" })).await;
    assert_eq!(served.body["data"]["me"]["role"], "HEAD", "another client is served: {}", served.body);
}

fn manifest_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("persisted-documents.json")
}

fn shipped_document(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("documents").join(format!("{name}.graphql"));
    std::fs::read_to_string(path).expect("a shipped document")
}

async fn trusted_documents_run_and_nothing_else_does(backend: Backend) {
    let trusted = TrustedDocuments::load(&manifest_path()).expect("the shipped manifest loads");
    let Some(app) = spawn_app_with(backend, |config| {
        config.disable_rate_limits();
        config.persisted.trusted_documents = Some(trusted);
    })
    .await
    else {
        return;
    };
    let assistant = app.token(Role::Assistant, Some("tomsk")).await;
    let me = shipped_document("Me");
    let submit = shipped_document("SubmitAppeal");
    let input = json!({ "input": { "municipalityCode": "tomsk", "channel": "WEB", "text": "Течёт крыша" } });

    // By documentId, by the APQ hash, and in full: each runs.
    let by_id = post(&app, None, Some(&assistant), &json!({ "documentId": format!("sha256:{}", hex(&me)) })).await;
    assert_eq!(by_id.body["data"]["me"]["role"], "ASSISTANT", "{}", by_id.body);
    let by_hash = post(&app, None, Some(&assistant), &json!({ "extensions": apq(&me) })).await;
    assert_eq!(by_hash.body, by_id.body);
    let in_full = post(&app, None, Some(&assistant), &json!({ "query": submit, "variables": input })).await;
    assert_eq!(in_full.body["data"]["submitAppeal"]["created"], true, "{}", in_full.body);
    let id = format!("sha256:{}", hex(&me));
    let by_get = get(&app, None, Some(&assistant), &[("documentId", id.as_str())]).await;
    assert_eq!(by_get.body, by_id.body);

    // Anything else is a 400 with its own code, whatever the client accepts; nothing registers.
    let arbitrary = "{ appeals { totalCount } }";
    for accept in [JSON, GRAPHQL_RESPONSE] {
        for body in [json!({ "query": arbitrary }), json!({ "query": arbitrary, "extensions": apq(arbitrary) })] {
            let refused = post(&app, Some(accept), Some(&assistant), &body).await;
            assert_eq!(refused.status, 400, "{accept}: {}", refused.body);
            assert_eq!(error_code(&refused.body), Some("PERSISTED_QUERY_NOT_IN_LIST"), "{}", refused.body);
        }
    }
    let still_unknown = post(&app, None, Some(&assistant), &json!({ "extensions": apq(arbitrary) })).await;
    assert_eq!(error_code(&still_unknown.body), Some("PERSISTED_QUERY_NOT_FOUND"), "{}", still_unknown.body);
    let unknown_id =
        post(&app, None, Some(&assistant), &json!({ "documentId": format!("sha256:{}", hex(arbitrary)) })).await;
    assert_eq!(error_code(&unknown_id.body), Some("PERSISTED_QUERY_NOT_FOUND"));
    let introspection = post(&app, None, None, &json!({ "query": "{ __schema { types { name } } }" })).await;
    assert_eq!(error_code(&introspection.body), Some("PERSISTED_QUERY_NOT_IN_LIST"), "introspection too");

    // Over the WebSocket too: the shipped subscription runs, another is refused.
    let mut socket = app.websocket(Some(&assistant), None).await.expect("a socket");
    socket.subscribe("other", "subscription { appealEvents { seq } }", json!({})).await;
    let refusal = socket.next_message(Duration::from_secs(5)).await.expect("an answer");
    assert_eq!(refusal["id"], "other", "{refusal}");
    assert_eq!(refusal["payload"]["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_IN_LIST", "{refusal}");
    socket.subscribe("shipped", &shipped_document("AppealEvents"), json!({})).await;
    // The subscription starts as its message arrives: submit until an event comes.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut delivered = None;
    while delivered.is_none() && std::time::Instant::now() < deadline {
        let again = post(&app, None, Some(&assistant), &json!({ "query": submit, "variables": input })).await;
        assert!(again.body.get("errors").is_none(), "{}", again.body);
        while let Some(message) = socket.next_message(Duration::from_millis(500)).await {
            if message["id"] == "shipped" {
                delivered = Some(message);
                break;
            }
        }
    }
    let event = delivered.expect("the shipped subscription delivers events");
    assert_eq!(event["type"], "next", "{event}");
    assert_eq!(event["payload"]["data"]["appealEvents"]["kind"], "RECEIVED", "{event}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_whose_hash_is_not_its_documents_stops_the_start() {
    let directory = std::env::temp_dir().join(format!("appeals-manifest-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&directory).expect("a folder");
    let manifest = directory.join("persisted-documents.json");
    std::fs::write(&manifest, json!({ "0".repeat(64): "{ me { id } }" }).to_string()).expect("written");
    let database = format!("sqlite://{}", directory.join("appeals.db").display());
    let output = run_command(
        &database,
        &["serve", "--listen", "127.0.0.1:0", "--trusted-documents", &manifest.display().to_string()],
    );
    let _ = std::fs::remove_dir_all(&directory);
    assert_eq!(output.status.code(), Some(2), "a usage error: {}", describe(&output));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("not the SHA-256 of its document"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_manifest_is_what_documents_manifest_prints() {
    let documents = Path::new(env!("CARGO_MANIFEST_DIR")).join("documents");
    let output = std::process::Command::new(appeals_binary())
        .args(["documents", "manifest", &documents.display().to_string()])
        .output()
        .expect("the binary should start");
    assert!(output.status.success(), "{}", describe(&output));
    let shipped = std::fs::read_to_string(manifest_path()).expect("the manifest");
    assert_eq!(String::from_utf8_lossy(&output.stdout), shipped);
}
