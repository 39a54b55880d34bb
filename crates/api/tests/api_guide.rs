//! `docs/API.md`, the guide for the API's clients, fails these tests when it
//! falls behind the code:
//!
//! - every query, mutation and subscription of `schema.graphql` has a section
//!   headed `` ### `name` `` holding a ```` ```graphql ```` example that calls
//!   it, and every such heading names an operation or an error code;
//! - every code of [`ErrorCode::ALL`] has a section headed `` ### `CODE` ``
//!   holding a ```` ```json ```` example with that `extensions.code`;
//! - the roles table is the permission function ([`appeals_core::reach`]),
//!   cell by cell, and lists every operation;
//! - every ```` ```graphql ```` block parses and passes the schema's
//!   validation, depth limit and cost budget (the `QUERY_TOO_COMPLEX` example
//!   excepted, which must exceed the budget by exactly the figure it shows),
//!   and every ```` ```json ```` block is JSON.
//!
//! ```` ```graphql ```` blocks are for executable documents only; variables of
//! an example must be scalars (`ID`, `Int`, `Float`, `String`, `Boolean`,
//! `DateTime`), for which the test makes up values.

use std::collections::{BTreeMap, BTreeSet};

use appeals_api::error::ErrorCode;
use appeals_api::schema::QueryLimits;
use appeals_api::schema::mutation::MutationRoot;
use appeals_api::schema::query::QueryRoot;
use appeals_api::schema::subscription::SubscriptionRoot;
use appeals_core::{Operation, Reach, Role, reach};
use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, OperationType, Selection, TypeKind, TypeSystemDefinition,
};
use async_graphql::{Request, Variables};
use futures_util::StreamExt;
use serde_json::{Value, json};

const GUIDE: &str = include_str!("../../../docs/API.md");
const SCHEMA: &str = include_str!("../../../schema.graphql");

/// A part of the guide, from one heading to the next.
struct Section {
    title: String,
    level: usize,
    /// The section's own text, outside its code blocks.
    text: String,
    blocks: Vec<Block>,
}

impl Section {
    /// `name` for a heading that is exactly `` `name` ``.
    fn code_name(&self) -> Option<&str> {
        let name = self.title.strip_prefix('`')?.strip_suffix('`')?;
        (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(name)
    }

    fn blocks_in<'a>(&'a self, language: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        self.blocks.iter().filter(move |block| block.language == language)
    }
}

/// A fenced code block.
struct Block {
    language: String,
    code: String,
    /// The line of its opening fence, from 1.
    line: usize,
}

/// The guide split at its headings; the text before the first heading is a
/// section of level 0.
fn sections() -> Vec<Section> {
    let mut sections = vec![Section { title: String::new(), level: 0, text: String::new(), blocks: Vec::new() }];
    let mut open: Option<Block> = None;
    for (index, line) in GUIDE.lines().enumerate() {
        let section = sections.last_mut().expect("there is always a section");
        if let Some(fence) = line.trim_start().strip_prefix("```") {
            match open.take() {
                None => open = Some(Block { language: fence.trim().to_owned(), code: String::new(), line: index + 1 }),
                Some(block) => section.blocks.push(block),
            }
            continue;
        }
        if let Some(block) = &mut open {
            block.code.push_str(line);
            block.code.push('\n');
            continue;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        if level > 0 && line[level..].starts_with(' ') {
            sections.push(Section {
                title: line[level..].trim().to_owned(),
                level,
                text: String::new(),
                blocks: Vec::new(),
            });
            continue;
        }
        section.text.push_str(line);
        section.text.push('\n');
    }
    if let Some(block) = open {
        panic!("docs/API.md: the code block opened on line {} is never closed", block.line);
    }
    sections
}

/// The fields of the schema's query, mutation and subscription types, read
/// from `schema.graphql`.
fn root_fields() -> Vec<(OperationType, String)> {
    let document = async_graphql::parser::parse_schema(SCHEMA).expect("schema.graphql should parse");
    let mut roots = BTreeMap::new();
    for definition in &document.definitions {
        if let TypeSystemDefinition::Schema(schema) = definition {
            let schema = &schema.node;
            for (ty, name) in [
                (OperationType::Query, &schema.query),
                (OperationType::Mutation, &schema.mutation),
                (OperationType::Subscription, &schema.subscription),
            ] {
                if let Some(name) = name {
                    roots.insert(name.node.to_string(), ty);
                }
            }
        }
    }
    assert_eq!(roots.len(), 3, "schema.graphql should name a query, a mutation and a subscription type");
    let mut fields = Vec::new();
    for definition in &document.definitions {
        let TypeSystemDefinition::Type(definition) = definition else { continue };
        let Some(&ty) = roots.get(definition.node.name.node.as_str()) else { continue };
        let TypeKind::Object(object) = &definition.node.kind else { continue };
        fields.extend(object.fields.iter().map(|field| (ty, field.node.name.node.to_string())));
    }
    for ty in [OperationType::Query, OperationType::Mutation, OperationType::Subscription] {
        assert!(fields.iter().any(|(kind, _)| *kind == ty), "schema.graphql has no {ty} fields: a parsing mistake?");
    }
    fields
}

fn parse_example(block: &Block) -> ExecutableDocument {
    async_graphql::parser::parse_query(&block.code)
        .unwrap_or_else(|error| panic!("docs/API.md line {}: the graphql example does not parse: {error}", block.line))
}

/// The root fields an example's operations of type `ty` select.
fn selected_roots(document: &ExecutableDocument, ty: OperationType) -> BTreeSet<String> {
    let operations: Vec<_> = match &document.operations {
        DocumentOperations::Single(operation) => vec![operation],
        DocumentOperations::Multiple(operations) => operations.values().collect(),
    };
    operations
        .into_iter()
        .filter(|operation| operation.node.ty == ty)
        .flat_map(|operation| operation.node.selection_set.node.items.iter())
        .filter_map(|selection| match &selection.node {
            Selection::Field(field) => Some(field.node.name.node.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn every_operation_has_a_section_with_an_example_that_calls_it() {
    let sections = sections();
    let mut problems = Vec::new();
    for (ty, field) in root_fields() {
        let Some(section) = sections.iter().find(|section| section.level == 3 && section.code_name() == Some(&field))
        else {
            problems.push(format!("{ty} `{field}` has no section headed ### `{field}`"));
            continue;
        };
        let called =
            section.blocks_in("graphql").any(|block| selected_roots(&parse_example(block), ty).contains(&field));
        if !called {
            problems.push(format!("the section of `{field}` has no graphql example of a {ty} that calls it"));
        }
    }
    assert!(problems.is_empty(), "docs/API.md is behind schema.graphql:\n- {}", problems.join("\n- "));
}

#[test]
fn every_code_heading_names_an_operation_or_an_error_code() {
    let mut known: BTreeSet<String> = root_fields().into_iter().map(|(_, field)| field).collect();
    known.extend(ErrorCode::ALL.iter().map(|code| code.as_str().to_owned()));
    let stale: Vec<String> = sections()
        .iter()
        .filter(|section| section.level == 3)
        .filter_map(Section::code_name)
        .filter(|name| !known.contains(*name))
        .map(str::to_owned)
        .collect();
    assert!(stale.is_empty(), "docs/API.md has sections of operations or codes that do not exist: {stale:?}");
}

#[test]
fn every_error_code_has_a_section_with_a_json_example() {
    let sections = sections();
    let mut problems = Vec::new();
    for code in ErrorCode::ALL.iter().map(|code| code.as_str()) {
        let Some(section) = sections.iter().find(|section| section.level == 3 && section.code_name() == Some(code))
        else {
            problems.push(format!("`{code}` has no section headed ### `{code}`"));
            continue;
        };
        let shown = section.blocks_in("json").any(|block| {
            serde_json::from_str::<Value>(&block.code).is_ok_and(|example| {
                example["errors"]
                    .as_array()
                    .is_some_and(|errors| errors.iter().any(|error| error["extensions"]["code"] == code))
            })
        });
        if !shown {
            problems.push(format!("the section of `{code}` has no json example of an error with that code"));
        }
        if section.text.trim().is_empty() {
            problems.push(format!("the section of `{code}` does not say when it happens"));
        }
    }
    assert!(problems.is_empty(), "docs/API.md is behind ErrorCode:\n- {}", problems.join("\n- "));
}

#[test]
fn every_json_example_is_json() {
    for section in sections() {
        for block in section.blocks_in("json") {
            if let Err(error) = serde_json::from_str::<Value>(&block.code) {
                panic!("docs/API.md line {}: the json example is not JSON: {error}", block.line);
            }
        }
    }
}

/// The operation of the permission table whose row names this field.
fn row_key(operation: Operation) -> &'static str {
    match operation {
        Operation::SubmitAppeal => "submitAppeal",
        Operation::ReadAppeals => "appeals",
        Operation::TriageAppeal => "triageAppeal",
        Operation::AddNote => "addNote",
        Operation::ExtendDeadline => "extendDeadline",
        Operation::MarkSeen => "markSeen",
        Operation::ResolveAppeal => "resolveAppeal",
        Operation::ReopenAppeal => "reopenAppeal",
        Operation::ResendReply => "resendReply",
        Operation::ManageDirectory => "createUser",
    }
}

/// The names in backticks in `text`.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

fn cells(line: &str) -> Vec<&str> {
    let line = line.trim();
    line.strip_prefix('|').and_then(|line| line.strip_suffix('|')).unwrap_or(line).split('|').map(str::trim).collect()
}

#[test]
fn the_roles_table_is_the_permission_function() {
    let mut lines = GUIDE.lines().skip_while(|line| !line.starts_with("| operation |"));
    let header = lines.next().expect("docs/API.md should have a roles table starting `| operation |`");
    let roles: Vec<Role> = cells(header)[1..]
        .iter()
        .map(|cell| cell.trim_matches('`').parse().unwrap_or_else(|_| panic!("`{cell}` in the roles table is no role")))
        .collect();
    assert_eq!(
        roles.iter().copied().collect::<BTreeSet<_>>(),
        Role::ALL.iter().copied().collect(),
        "one column per role"
    );
    let rows: Vec<Vec<&str>> = lines.skip(1).take_while(|line| line.starts_with('|')).map(cells).collect::<Vec<_>>();

    let mut problems = Vec::new();
    for &operation in Operation::ALL {
        let key = row_key(operation);
        let matching: Vec<&Vec<&str>> = rows.iter().filter(|row| backticked(row[0]).contains(&key)).collect();
        let [row] = matching.as_slice() else {
            problems.push(format!("{operation:?}: {} rows name `{key}`, one should", matching.len()));
            continue;
        };
        for (role, cell) in roles.iter().zip(&row[1..]) {
            let documented = match *cell {
                "all" => Some(Reach::Everywhere),
                "own" => Some(Reach::OwnMunicipality),
                "—" | "-" => Some(Reach::Never),
                _ => None,
            };
            let actual = reach(*role, operation);
            if documented != Some(actual) {
                problems.push(format!("{operation:?} for {role}: the guide says `{cell}`, the code {actual:?}"));
            }
        }
    }
    let mut listed = BTreeSet::new();
    for row in &rows {
        let names = backticked(row[0]);
        let anyone = row[1..].iter().all(|cell| *cell == "any");
        if !anyone && !Operation::ALL.iter().any(|&operation| names.contains(&row_key(operation))) {
            problems.push(format!("the row `{}` is no operation of the permission function", row[0]));
        }
        for name in names {
            if !listed.insert(name.to_owned()) {
                problems.push(format!("`{name}` is in two rows"));
            }
        }
    }
    for (_, field) in root_fields() {
        if !listed.remove(&field) {
            problems.push(format!("`{field}` is in no row of the roles table"));
        }
    }
    if !listed.is_empty() {
        problems.push(format!("the roles table names what is no operation: {listed:?}"));
    }
    assert!(problems.is_empty(), "the roles table of docs/API.md is not the code's:\n- {}", problems.join("\n- "));
}

/// Values for an example's required variables, of their scalar types.
fn made_up_variables(document: &ExecutableDocument, line: usize) -> Variables {
    let mut variables = serde_json::Map::new();
    for (_, operation) in document.operations.iter() {
        for definition in &operation.node.variable_definitions {
            let definition = &definition.node;
            let ty = &definition.var_type.node;
            if ty.nullable || definition.default_value.is_some() {
                continue;
            }
            let value = match &ty.base {
                BaseType::List(_) => json!([]),
                BaseType::Named(name) => match name.as_str() {
                    "ID" => json!("0193f0a2-7c4e-7d1a-9b2e-3f5c8a1d2e40"),
                    "Int" => json!(1),
                    "Float" => json!(1.5),
                    "String" => json!("text"),
                    "Boolean" => json!(true),
                    "DateTime" => json!("2026-03-01T10:00:00Z"),
                    other => panic!(
                        "docs/API.md line {line}: the variable ${} is of type {other}; use scalar variables in examples",
                        definition.name.node
                    ),
                },
            };
            variables.insert(definition.name.node.to_string(), value);
        }
    }
    Variables::from_json(Value::Object(variables))
}

#[tokio::test]
async fn every_graphql_example_parses_and_validates_against_the_schema() {
    let limits = QueryLimits::default();
    // The served schema's types, depth limit and budget; no store and no
    // user, so an example that passes validation stops at its first resolver,
    // with a coded error. async-graphql's own validation errors carry no code.
    let schema = async_graphql::Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot)
        .extension(limits.budget)
        .limit_depth(limits.max_depth)
        .finish();
    let mut examples = 0;
    let mut problems = Vec::new();
    for section in sections() {
        let demonstrates_the_budget = section.code_name() == Some(ErrorCode::QueryTooComplex.as_str());
        for block in section.blocks_in("graphql") {
            examples += 1;
            let document = parse_example(block);
            let request = Request::new(block.code.clone()).variables(made_up_variables(&document, block.line));
            let response = schema.execute_stream(request).next().await.expect("an answer");
            let mut over_budget = None;
            for error in &response.errors {
                let code = error.extensions.as_ref().and_then(|extensions| extensions.get("code")).cloned();
                let code = code.map(|code| code.into_json().unwrap_or_default());
                match code.as_ref().and_then(Value::as_str) {
                    None => problems.push(format!("line {}: {}", block.line, error.message)),
                    Some("QUERY_TOO_COMPLEX") => {
                        let extensions = error.extensions.as_ref().expect("extensions");
                        over_budget = extensions.get("cost").map(|cost| cost.clone().into_json().unwrap_or_default());
                    }
                    Some(_) => {}
                }
            }
            match (demonstrates_the_budget, over_budget) {
                (false, None) => {}
                (false, Some(cost)) => {
                    problems.push(format!("line {}: the example costs {cost}, over the budget", block.line));
                }
                (true, None) => problems.push(format!("line {}: the example should exceed the budget", block.line)),
                (true, Some(cost)) => {
                    let shown = section.blocks_in("json").any(|json| {
                        serde_json::from_str::<Value>(&json.code)
                            .is_ok_and(|example| example["errors"][0]["extensions"]["cost"] == cost)
                    });
                    if !shown {
                        problems.push(format!("the QUERY_TOO_COMPLEX example costs {cost}; its json should say so"));
                    }
                }
            }
        }
    }
    assert!(examples >= 20, "only {examples} graphql examples found in docs/API.md");
    assert!(problems.is_empty(), "graphql examples of docs/API.md are invalid:\n- {}", problems.join("\n- "));
}
