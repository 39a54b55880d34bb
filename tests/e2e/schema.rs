//! `schema.graphql` at the repository root is exactly the SDL the server serves.
//! Run with `APPEALS_UPDATE_SCHEMA=1` to rewrite the file after changing the schema.

#[test]
fn schema_graphql_is_the_served_sdl() {
    let served = appeals_api::schema::sdl();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    if std::env::var_os("APPEALS_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &served).expect("schema.graphql should be writable");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == served,
        "schema.graphql differs from the served schema; rerun with APPEALS_UPDATE_SCHEMA=1 to rewrite it"
    );
}

/// What introspection serves of every scalar's `specifiedByURL` is in
/// `schema.graphql` as `@specifiedBy`, so the file is the served schema,
/// directives included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_graphql_carries_the_directives_introspection_serves() {
    let Some(app) = crate::support::spawn_app(crate::support::Backend::Sqlite).await else { return };
    let answer = app.graphql(None, "{ __schema { types { name kind specifiedByURL } } }", serde_json::json!({})).await;
    let committed = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql"))
        .expect("schema.graphql");
    let types = answer["data"]["__schema"]["types"].as_array().expect("the types");
    let mut specified = 0;
    for scalar in types.iter().filter(|t| t["kind"] == "SCALAR" && !t["specifiedByURL"].is_null()) {
        let name = scalar["name"].as_str().expect("a name");
        let url = scalar["specifiedByURL"].as_str().expect("a URL");
        let line = format!("scalar {name} @specifiedBy(url: \"{url}\")");
        assert!(committed.contains(&line), "schema.graphql lacks `{line}`");
        specified += 1;
    }
    assert!(specified >= 1, "DateTime is specified by RFC 3339: {answer}");
}

/// The root fields of an answer come back in the order the query asked for
/// them, whichever part of the schema serves each and whichever finishes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_fields_come_back_in_the_order_they_were_asked_for() {
    let Some(app) = crate::support::spawn_app(crate::support::Backend::Sqlite).await else { return };
    let governor = app.token(appeals_core::Role::GovernorOffice, None).await;
    let query = "{ dashboard { total } z: me { name id } appeals(first: 1) { totalCount } a: municipalities { name code } me { id } }";
    let response = app.post(Some(&governor), &serde_json::json!({ "query": query })).await;
    let text = response.text().await.expect("a body");
    let keys: Vec<usize> = ["\"dashboard\"", "\"z\"", "\"appeals\"", "\"a\"", "\"me\""]
        .iter()
        .map(|key| text.find(key).unwrap_or_else(|| panic!("{key} in {text}")))
        .collect();
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "the root fields in the request's order: {text}");
    let name = text.find("\"name\"").expect("a name");
    let id = text.find("\"id\"").expect("an id");
    assert!(name < id, "the fields of `z` in the request's order: {text}");
}
