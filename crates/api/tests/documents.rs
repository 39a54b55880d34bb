//! The project's own GraphQL documents (`documents/`) and the trusted documents'
//! manifest made of them (`persisted-documents.json`):
//! - the manifest is what `appeals documents manifest documents/` prints
//!   (`APPEALS_UPDATE_SCHEMA=1` rewrites it);
//! - every document validates against the schema built from the code;
//! - together they call every root field, so a server that runs only them
//!   can still do everything.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use appeals_api::persisted::{TrustedDocuments, manifest, read_documents};
use appeals_api::schema::QueryLimits;
use appeals_api::schema::mutation::MutationRoot;
use appeals_api::schema::query::QueryRoot;
use appeals_api::schema::subscription::SubscriptionRoot;
use async_graphql::parser::types::{BaseType, ExecutableDocument, Selection, TypeKind, TypeSystemDefinition};
use async_graphql::{Request, Variables};
use futures_util::StreamExt;
use serde_json::{Value, json};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn documents() -> Vec<(PathBuf, String)> {
    let documents = read_documents(&[repository().join("documents")]).expect("documents/ should read and parse");
    assert!(documents.len() >= 20, "only {} documents in documents/", documents.len());
    documents
}

#[test]
fn the_manifest_is_made_of_the_documents_folder() {
    let expected = manifest(documents().iter().map(|(_, document)| document.as_str())) + "\n";
    let path = repository().join("persisted-documents.json");
    if std::env::var_os("APPEALS_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &expected).expect("persisted-documents.json should be written");
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "persisted-documents.json is not made of documents/: run `cargo run -p appeals-api -- documents manifest \
         documents/ > persisted-documents.json` (or this test with APPEALS_UPDATE_SCHEMA=1)"
    );
    let trusted = TrustedDocuments::parse(&actual).expect("the manifest should load as --trusted-documents does");
    assert_eq!(trusted.len(), documents().len(), "one entry per document");
}

/// A value of each input type the documents' variables have.
fn sample(type_name: &str) -> Value {
    match type_name {
        "ID" => json!("0193f0a2-7c4e-7d1a-9b2e-3f5c8a1d2e40"),
        "Int" => json!(1),
        "String" => json!("text"),
        "SubmitAppealInput" => json!({ "municipalityCode": "tomsk", "channel": "WEB", "text": "text" }),
        "TriageAppealInput" => json!({ "priority": "HIGH" }),
        "ResolveAppealInput" => json!({ "outcome": "EXPLAINED", "response": "text" }),
        "CreateMunicipalityInput" => json!({ "code": "tomsk", "name": "Томск" }),
        "CreateUserInput" => json!({ "name": "text", "role": "ASSISTANT", "municipalityCode": "tomsk" }),
        "ConfigureChannelInput" => json!({ "municipalityCode": "tomsk", "channel": "TELEGRAM" }),
        "ConfigureReplyTextsInput" => json!({ "municipalityCode": "tomsk" }),
        other => panic!("no sample value for a required variable of type {other}: add one"),
    }
}

fn variables(document: &ExecutableDocument) -> Variables {
    let mut variables = serde_json::Map::new();
    for (_, operation) in document.operations.iter() {
        for definition in &operation.node.variable_definitions {
            let ty = &definition.node.var_type.node;
            if ty.nullable {
                continue;
            }
            let BaseType::Named(name) = &ty.base else { panic!("a required list variable: add a sample") };
            variables.insert(definition.node.name.node.to_string(), sample(name));
        }
    }
    Variables::from_json(Value::Object(variables))
}

#[tokio::test]
async fn every_document_validates_and_together_they_call_every_root_field() {
    let limits = QueryLimits::default();
    // The served schema's types, depth limit and budget; no store and no user,
    // so a document that passes validation stops at its first resolver with a
    // coded error, while validation's own errors have no code.
    let schema = async_graphql::Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot)
        .extension(limits.budget)
        .limit_depth(limits.max_depth)
        .finish();
    let mut problems = Vec::new();
    let mut called = BTreeSet::new();
    for (path, text) in documents() {
        let document = async_graphql::parser::parse_query(&text).expect("read_documents parsed it");
        let mut operations = document.operations.iter();
        let (Some((_, operation)), None) = (operations.next(), operations.next()) else {
            problems.push(format!("{}: a document holds exactly one operation", path.display()));
            continue;
        };
        for selection in &operation.node.selection_set.node.items {
            if let Selection::Field(field) = &selection.node {
                called.insert(field.node.name.node.to_string());
            }
        }
        let request = Request::new(text.clone()).variables(variables(&document));
        let response = schema.execute_stream(request).next().await.expect("an answer");
        for error in response.errors {
            let coded = error.extensions.as_ref().is_some_and(|extensions| extensions.get("code").is_some());
            let cost = error.extensions.as_ref().and_then(|extensions| extensions.get("cost")).is_some();
            if !coded || cost {
                problems.push(format!("{}: {}", path.display(), error.message));
            }
        }
    }
    let schema = async_graphql::parser::parse_schema(appeals_api::schema::sdl()).expect("the SDL parses");
    let root_fields = schema.definitions.iter().filter_map(|definition| match definition {
        TypeSystemDefinition::Type(definition)
            if ["Query", "Mutation", "Subscription"].contains(&definition.node.name.node.as_str()) =>
        {
            match &definition.node.kind {
                TypeKind::Object(object) => Some(object.fields.iter().map(|field| field.node.name.node.to_string())),
                _ => None,
            }
        }
        _ => None,
    });
    let root_fields: Vec<String> = root_fields.flatten().collect();
    assert!(root_fields.len() >= 20, "the schema's root fields were not found");
    for field in root_fields {
        if !called.contains(&field) {
            problems.push(format!("no document calls `{field}`"));
        }
    }
    assert!(problems.is_empty(), "the documents of documents/:\n- {}", problems.join("\n- "));
}
