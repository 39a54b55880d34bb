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
