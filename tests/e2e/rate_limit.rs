//! A per-token rate limit answers `RATE_LIMITED` (HTTP 429) to the caller who
//! exceeds it, and only to that caller.

use appeals_api::rate_limit::RateLimit;
use appeals_core::Role;
use serde_json::json;

use crate::support::{Backend, error_code, spawn_app_with};

const ME: &str = "{ me { role } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_flooding_bot_is_limited_while_an_assistant_is_still_served() {
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.caller_limits.per_user = Some(RateLimit { per_second: 1, burst: 5 });
    })
    .await
    .expect("SQLite needs no setup");
    let bot = app.token(Role::Intake, None).await;
    let assistant = app.token(Role::Assistant, Some("tomsk")).await;

    let mut served = 0;
    let mut limited = 0;
    for _ in 0..20 {
        let response = app.post(Some(&bot), &json!({ "query": ME })).await;
        match response.status().as_u16() {
            200 => served += 1,
            429 => {
                assert!(response.headers().get("retry-after").is_some(), "a 429 says when to retry");
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
                let message = body["errors"][0]["message"].as_str().unwrap_or_default();
                assert!(message.contains("more than 1 operations per second"), "the limit is named: {message}");
                limited += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!((5..=7).contains(&served), "the burst of 5 (plus what a second refills) is served: {served}");
    assert_eq!(served + limited, 20);

    let assistant_view = app.graphql(Some(&assistant), ME, json!({})).await;
    assert_eq!(assistant_view["data"]["me"]["role"], "ASSISTANT", "another caller is unaffected: {assistant_view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_without_a_valid_token_are_limited_by_address_however_many_tokens_are_made_up() {
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.caller_limits.per_address = Some(RateLimit { per_second: 1, burst: 3 });
    })
    .await
    .expect("SQLite needs no setup");
    let assistant = app.token(Role::Assistant, Some("tomsk")).await;
    assert_eq!(app.post(Some(&assistant), &json!({ "query": ME })).await.status(), 200, "a known user, before");
    let statements_before = app.store.statements_executed();
    let mut statuses = Vec::new();
    for attempt in 0..20 {
        let made_up = format!("made-up-token-{attempt}");
        let token = if attempt % 2 == 0 { None } else { Some(made_up.as_str()) };
        statuses.push(app.post(token, &json!({ "query": ME })).await.status().as_u16());
    }
    let limited = statuses.iter().filter(|status| **status == 429).count();
    assert!(limited >= 15, "anonymous and made-up-token floods share the address's budget: {statuses:?}");
    let looked_up = app.store.statements_executed() - statements_before;
    assert!(looked_up <= 6, "refused requests cost the database nothing ({looked_up} statements for 20 requests)");
    let served = app.post(Some(&assistant), &json!({ "query": ME })).await;
    assert_eq!(served.status(), 200, "a known user from the same address is still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_counts_each_of_its_operations() {
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.caller_limits.per_user = Some(RateLimit { per_second: 1, burst: 5 });
    })
    .await
    .expect("SQLite needs no setup");
    let bot = app.token(Role::Intake, None).await;
    let batch = |size: usize| json!((0..size).map(|_| json!({ "query": ME })).collect::<Vec<_>>());
    assert_eq!(app.post(Some(&bot), &batch(4)).await.status(), 200, "a batch within the burst is served");
    let over = app.post(Some(&bot), &batch(4)).await;
    assert_eq!(over.status(), 429, "the next batch of 4 exceeds what is left of the burst");
    let too_big = app.post(Some(&app.token(Role::Intake, None).await), &batch(6)).await;
    assert_eq!(too_big.status(), 429, "a batch larger than the burst never passes");
}
