//! No one sees or does what their role and municipality do not allow, however
//! they ask: beyond the permission table (`permissions.rs`), a head of Tomsk probes
//! for the appeals of Seversk with cursors, ids and registration numbers, batched
//! and mixed operations and the dashboard's filter; an unauthenticated client
//! walks every query field the public schema lists; and an unknown token and a
//! revoked user's are refused alike, down to the SQL statements they cost.
//!
//! Every response a prober gets is searched, as raw text, for the numbers, texts
//! and authors of the appeals it must not see.

use std::collections::BTreeSet;

use appeals_core::Role;
use appeals_storage::testing::on_both_databases;
use serde_json::{Value, json};

use crate::support::{Backend, TestApp, error_code, spawn_app_with};

const OWN: &str = "tomsk";
const OTHER: &str = "seversk";
/// How many appeals each municipality gets.
const APPEALS_EACH: usize = 4;

const SUBMIT: &str = "mutation($input: SubmitAppealInput!) { submitAppeal(input: $input) { appeal { id number } } }";
const PAGE: &str = "query($after: String) { appeals(first: 2, after: $after) { totalCount edges { cursor node { id number text municipality { code } } } pageInfo { hasNextPage endCursor } } }";
const GLOBAL_LIST: &str =
    "{ appeals(first: 100) { totalCount edges { cursor node { id number municipality { code } } } } }";
const SNAPSHOT: &str = "query($id: ID!) { appeal(id: $id) { number status version priority category tags deadlineExtended dueAt seenAt resolution { outcome response } history { seq kind hash note actor { id } } } }";
const APPEAL: &str = "query($id: ID!) { appeal(id: $id) { id number text authorName history { note } } }";
const APPEAL_BY_NUMBER: &str = "query($number: String!) { appealByNumber(number: $number) { id number text } }";
const VERIFY_AUDIT: &str = "query($id: ID!) { verifyAudit(appealId: $id) { ok eventsChecked brokenAtSeq reason } }";
const MARK_SEEN: &str = "mutation($id: ID!, $v: Int!) { markSeen(id: $id, expectedVersion: $v) { appeal { number text status version } event { seq kind } } }";
const TRIAGE: &str = "mutation($id: ID!, $v: Int!) { triageAppeal(id: $id, expectedVersion: $v, input: { priority: URGENT, category: \"проба\" }) { appeal { number text version } } }";
const EXTEND: &str = "mutation($id: ID!, $v: Int!) { extendDeadline(id: $id, expectedVersion: $v, days: 5, reason: \"Проба\") { appeal { number text version } } }";
const RESOLVE: &str = "mutation($id: ID!, $v: Int!, $input: ResolveAppealInput!) { resolveAppeal(id: $id, expectedVersion: $v, input: $input) { appeal { number text status version resolution { outcome duplicateOf { number text } } } } }";
const REOPEN: &str = "mutation($id: ID!, $v: Int!) { reopenAppeal(id: $id, expectedVersion: $v, reason: \"Проба\") { appeal { number text version } } }";
const ADD_NOTE: &str = "mutation($id: ID!, $text: String!) { addNote(id: $id, text: $text) { appeal { number text version } event { kind } } }";
const CREATE_USER: &str = "mutation($input: CreateUserInput!) { createUser(input: $input) { user { id } token } }";
const REVOKE_USER: &str = "mutation($id: ID!) { revokeUser(id: $id) { user { revoked } } }";
const DASHBOARD: &str = "query($code: String, $from: DateTime, $to: DateTime) { dashboard(municipalityCode: $code, from: $from, to: $to) { total received seen resolved overdue seenOverdue municipalities { municipality { code name } total received seen resolved overdue seenOverdue medianHoursToSeen medianHoursToResolve } } }";

/// The standard introspection query, as the GraphQL reference implementation
/// (graphql-js) writes it: `ofType` nested `type_depth` levels deep, 7 in
/// graphql-js 16 (which GraphiQL uses) and 9 in graphql-js 17.
fn introspection_query(type_depth: usize) -> String {
    let of_type = (0..type_depth).fold(String::new(), |inner, _| format!(" ofType {{ kind name{inner} }}"));
    format!(
        "query IntrospectionQuery {{
          __schema {{
            queryType {{ name }}
            mutationType {{ name }}
            subscriptionType {{ name }}
            types {{ ...FullType }}
            directives {{ name description locations args {{ ...InputValue }} }}
          }}
        }}
        fragment FullType on __Type {{
          kind name description
          fields(includeDeprecated: true) {{
            name description args {{ ...InputValue }} type {{ ...TypeRef }} isDeprecated deprecationReason
          }}
          inputFields {{ ...InputValue }}
          interfaces {{ ...TypeRef }}
          enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }}
          possibleTypes {{ ...TypeRef }}
        }}
        fragment InputValue on __InputValue {{ name description type {{ ...TypeRef }} defaultValue }}
        fragment TypeRef on __Type {{ kind name{of_type} }}"
    )
}

/// An appeal as its municipality knows it.
#[derive(Debug, Clone)]
struct Known {
    id: String,
    number: String,
    text: String,
    author: String,
}

/// A server with appeals in Tomsk and Seversk, interleaved in time, and the users
/// who probe them.
struct Region {
    app: TestApp,
    tomsk_head: String,
    tomsk_assistant: String,
    seversk_head: String,
    governor: String,
    auditor: String,
    admin: String,
    tomsk: Vec<Known>,
    seversk: Vec<Known>,
}

impl Region {
    async fn new(backend: Backend) -> Option<Region> {
        // Probing takes many requests; the rate limit is another test's subject.
        let app = spawn_app_with(backend, |config| config.disable_rate_limits()).await?;
        let intake = app.token(Role::Intake, None).await;
        let mut region = Region {
            tomsk_head: app.token(Role::Head, Some(OWN)).await,
            tomsk_assistant: app.token(Role::Assistant, Some(OWN)).await,
            seversk_head: app.token(Role::Head, Some(OTHER)).await,
            governor: app.token(Role::GovernorOffice, None).await,
            auditor: app.token(Role::Auditor, None).await,
            admin: app.token(Role::Admin, None).await,
            app,
            tomsk: Vec::new(),
            seversk: Vec::new(),
        };
        for n in 1..=APPEALS_EACH {
            for municipality in [OWN, OTHER] {
                let (text, author) = if municipality == OWN {
                    (format!("Томское обращение {n}: яма во дворе"), format!("Томский житель {n}"))
                } else {
                    (format!("Закрытое северское обращение {n}: протечка крыши"), format!("Северский житель {n}"))
                };
                let input = json!({ "municipalityCode": municipality, "channel": "TELEGRAM", "externalId": format!("probe-{municipality}-{n}"), "authorName": author, "authorContact": format!("+7 900 000-00-{n:02}"), "text": text });
                let submitted = region.app.graphql(Some(&intake), SUBMIT, json!({ "input": input })).await;
                let appeal = &submitted["data"]["submitAppeal"]["appeal"];
                let known = Known {
                    id: appeal["id"]
                        .as_str()
                        .unwrap_or_else(|| panic!("submitting to {municipality}: {submitted}"))
                        .into(),
                    number: appeal["number"].as_str().expect("a registration number").to_owned(),
                    text,
                    author,
                };
                if municipality == OWN { region.tomsk.push(known) } else { region.seversk.push(known) }
            }
        }
        Some(region)
    }

    /// What a head of Tomsk must never see: the numbers, texts and authors of
    /// Seversk's appeals, and any Seversk registration number at all.
    fn seversk_secrets(&self) -> Vec<String> {
        let mut secrets = vec!["SEVERSK-".to_owned(), "северск".to_owned(), "Северск".to_owned()];
        for appeal in &self.seversk {
            secrets.extend([appeal.number.clone(), appeal.text.clone(), appeal.author.clone()]);
        }
        secrets
    }

    fn tomsk_secrets(&self) -> Vec<String> {
        let mut secrets = vec!["TOMSK-".to_owned(), "Томск".to_owned()];
        for appeal in &self.tomsk {
            secrets.extend([appeal.number.clone(), appeal.text.clone(), appeal.author.clone()]);
        }
        secrets
    }

    /// The appeal as the auditor sees it: everything a refused command must not
    /// have changed.
    async fn snapshot(&self, id: &str) -> Value {
        let response = self.app.graphql(Some(&self.auditor), SNAPSHOT, json!({ "id": id })).await;
        assert!(response["errors"].is_null() && !response["data"]["appeal"].is_null(), "snapshot of {id}: {response}");
        response["data"]["appeal"].clone()
    }

    /// Runs `query` as `token`, asserts that it succeeds, and returns its data.
    async fn succeed(&self, case: &str, token: &str, query: &str, variables: Value) -> Value {
        let response = self.app.graphql(Some(token), query, variables).await;
        assert!(response["errors"].is_null(), "{case}: {response}");
        response["data"].clone()
    }
}

/// Posts `body` and returns the status and the raw text of the response.
async fn exchange(app: &TestApp, token: Option<&str>, body: &Value) -> (u16, String) {
    let response = app.post(token, body).await;
    let status = response.status().as_u16();
    (status, response.text().await.expect("the response should have a body"))
}

/// The secrets that `raw` contains.
fn leaked<'a>(raw: &str, secrets: &'a [String]) -> Vec<&'a str> {
    secrets.iter().map(String::as_str).filter(|secret| raw.contains(secret)).collect()
}

fn parse(case: &str, raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|error| panic!("{case}: the response is not JSON ({error}): {raw}"))
}

fn hex_encode(text: &str) -> String {
    text.bytes().map(|byte| format!("{byte:02x}")).collect()
}

fn hex_decode(text: &str) -> String {
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("a cursor is hex"))
        .collect();
    String::from_utf8(bytes).expect("a cursor is text")
}

/// One appeal of the governor's list, newest first: what a cursor at it should
/// lead to for each municipality.
struct Listed {
    cursor: String,
    number: String,
    code: String,
}

/// Walks the list from `after` as `token`, two at a time, and returns the numbers
/// it was given, or the problems it saw.
async fn walk(
    app: &TestApp,
    token: &str,
    after: &str,
    own: &str,
    secrets: &[String],
    own_total: usize,
) -> Result<Vec<String>, String> {
    let mut numbers = Vec::new();
    let mut after = Some(after.to_owned());
    for _ in 0..(2 * APPEALS_EACH + 2) {
        let Some(cursor) = after.take() else { return Ok(numbers) };
        let (status, raw) =
            exchange(app, Some(token), &json!({ "query": PAGE, "variables": { "after": cursor } })).await;
        let leaks = leaked(&raw, secrets);
        if status != 200 || !leaks.is_empty() {
            return Err(format!("status {status}, leaked {leaks:?}: {raw}"));
        }
        let response = parse("a page", &raw);
        let page = &response["data"]["appeals"];
        if page.is_null() {
            return Err(format!("no page: {raw}"));
        }
        if page["totalCount"] != own_total {
            return Err(format!("totalCount is not the {own_total} appeals of {own}: {raw}"));
        }
        for edge in page["edges"].as_array().into_iter().flatten() {
            if edge["node"]["municipality"]["code"] != own {
                return Err(format!("an appeal outside {own}: {edge}"));
            }
            numbers.push(edge["node"]["number"].as_str().unwrap_or_default().to_owned());
        }
        if page["pageInfo"]["hasNextPage"] == true {
            after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        }
    }
    Err(format!("the walk did not end: {numbers:?}"))
}

async fn a_cursor_from_another_municipality_never_reveals_its_appeals(backend: Backend) {
    let Some(region) = Region::new(backend).await else { return };
    let app = &region.app;
    let global = region.succeed("the governor's list", &region.governor, GLOBAL_LIST, json!({})).await;
    let listed: Vec<Listed> = global["appeals"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|edge| Listed {
            cursor: edge["cursor"].as_str().unwrap_or_default().to_owned(),
            number: edge["node"]["number"].as_str().unwrap_or_default().to_owned(),
            code: edge["node"]["municipality"]["code"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    assert_eq!(listed.len(), 2 * APPEALS_EACH, "the governor lists every appeal: {global}");

    // Cursors as each head obtains them (the end of their own first page), built
    // from every appeal (the other municipality's included), and crafted in the
    // server's format: past the newest appeal (the whole list follows) and at the
    // epoch (nothing follows). Each comes with its position in the global order
    // when it is not that of an appeal of the governor's list.
    let mut cursors: Vec<(String, String, Option<usize>)> = Vec::new();
    for (head, token) in [("the head of tomsk", &region.tomsk_head), ("the head of seversk", &region.seversk_head)] {
        let page = region.succeed(&format!("{head}'s first page"), token, PAGE, json!({ "after": null })).await;
        let cursor = page["appeals"]["pageInfo"]["endCursor"].as_str().expect("a first page has an end").to_owned();
        cursors.push((format!("the endCursor of {head}'s first page"), cursor, None));
    }
    for appeal in &listed {
        cursors.push((format!("a cursor built from {} ({})", appeal.number, appeal.code), appeal.cursor.clone(), None));
    }
    let newest = hex_decode(&listed[0].cursor);
    let (newest_micros, _) = newest.split_once('/').expect("a cursor is `micros/id`");
    let later = newest_micros.parse::<i64>().expect("a cursor starts with microseconds") + 3_600_000_000;
    let past_the_newest = hex_encode(&format!("{later}/ffffffff-ffff-ffff-ffff-ffffffffffff"));
    cursors.push(("a crafted cursor an hour past the newest appeal".to_owned(), past_the_newest, Some(0)));
    let epoch = hex_encode("0/00000000-0000-0000-0000-000000000000");
    cursors.push(("a crafted cursor at the epoch".to_owned(), epoch, Some(listed.len())));

    let mut failures = Vec::new();
    let mut walked = 0;
    for (own, token, secrets) in
        [(OWN, &region.tomsk_head, region.seversk_secrets()), (OTHER, &region.seversk_head, region.tomsk_secrets())]
    {
        for (name, cursor, position) in &cursors {
            let case = format!("the head of {own} with {name}");
            // What the cursor should lead to: the caller's own appeals after its
            // position in the one global order, newest first.
            let position =
                position.or_else(|| listed.iter().position(|appeal| &appeal.cursor == cursor).map(|at| at + 1));
            let Some(position) = position else {
                failures.push(format!("{case}: the cursor is none of the governor's list"));
                continue;
            };
            let expected: Vec<String> = listed[position..]
                .iter()
                .filter(|appeal| appeal.code == own)
                .map(|appeal| appeal.number.clone())
                .collect();
            match walk(app, token, cursor, own, &secrets, APPEALS_EACH).await {
                Ok(numbers) if numbers == expected => walked += numbers.len(),
                Ok(numbers) => failures.push(format!("{case}: got {numbers:?}, expected {expected:?}")),
                Err(problem) => failures.push(format!("{case}: {problem}")),
            }
        }
    }
    assert!(failures.is_empty(), "{} cursor probe(s) failed:\n{}", failures.len(), failures.join("\n"));
    assert!(walked > 0, "the walks returned the callers' own appeals");
}

/// Tries every workflow mutation on `id` at `version` as `token`: each one's
/// root field and response.
async fn every_mutation(app: &TestApp, token: &str, id: &str, version: i64) -> Vec<(&'static str, Value)> {
    let resolve = json!({ "outcome": "EXPLAINED", "response": "Проба" });
    let attempts = [
        ("markSeen", MARK_SEEN, json!({ "id": id, "v": version })),
        ("triageAppeal", TRIAGE, json!({ "id": id, "v": version })),
        ("extendDeadline", EXTEND, json!({ "id": id, "v": version })),
        ("resolveAppeal", RESOLVE, json!({ "id": id, "v": version, "input": resolve })),
        ("reopenAppeal", REOPEN, json!({ "id": id, "v": version })),
        ("addNote", ADD_NOTE, json!({ "id": id, "text": "Проба чужого обращения" })),
    ];
    let mut responses = Vec::new();
    for (field, query, variables) in attempts {
        responses.push((field, app.graphql(Some(token), query, variables).await));
    }
    responses
}

async fn an_appeal_of_another_municipality_is_out_of_reach_by_its_id_and_number(backend: Backend) {
    let Some(region) = Region::new(backend).await else { return };
    let app = &region.app;
    let secrets = region.seversk_secrets();
    let target = region.seversk[0].clone();
    let nowhere = uuid::Uuid::new_v4().to_string();
    let mut failures = Vec::new();

    // Reads: the appeal answers as if it did not exist.
    for number in [target.number.clone(), format!("  {}  ", target.number), target.number.to_lowercase()] {
        let body = json!({ "query": APPEAL_BY_NUMBER, "variables": { "number": number } });
        let (_, raw) = exchange(app, Some(&region.tomsk_head), &body).await;
        let response = parse("appealByNumber", &raw);
        if response != json!({ "data": { "appealByNumber": null } }) || !leaked(&raw, &secrets).is_empty() {
            failures.push(format!("appealByNumber({number:?}): {raw}"));
        }
    }
    let (_, raw) =
        exchange(app, Some(&region.tomsk_head), &json!({ "query": APPEAL, "variables": { "id": target.id } })).await;
    if parse("appeal", &raw) != json!({ "data": { "appeal": null } }) || !leaked(&raw, &secrets).is_empty() {
        failures.push(format!("appeal(id): {raw}"));
    }
    let audited = app.graphql(Some(&region.tomsk_head), VERIFY_AUDIT, json!({ "id": target.id })).await;
    let audited_nowhere = app.graphql(Some(&region.tomsk_head), VERIFY_AUDIT, json!({ "id": nowhere })).await;
    if error_code(&audited) != Some("NOT_FOUND") || audited != audited_nowhere {
        failures.push(format!("verifyAudit: {audited}, for a nonexistent id: {audited_nowhere}"));
    }

    // Every mutation, at the right version and at wrong ones, in each status the
    // appeal goes through (so that each command would be a valid step): NOT_FOUND,
    // exactly as for an id that exists nowhere — never a version conflict or an
    // invalid transition, which would tell that the appeal exists.
    let stages = [
        ("RECEIVED", None),
        ("SEEN", Some((MARK_SEEN, json!({})))),
        ("RESOLVED", Some((RESOLVE, json!({ "outcome": "SATISFIED", "response": "Крышу починили" })))),
    ];
    let mut version = 1;
    for (status, step) in stages {
        if let Some((query, input)) = step {
            let variables = json!({ "id": target.id, "v": version, "input": input });
            region
                .succeed(
                    &format!("the head of seversk brings the appeal to {status}"),
                    &region.seversk_head,
                    query,
                    variables,
                )
                .await;
            version += 1;
        }
        let before = region.snapshot(&target.id).await;
        // An assistant may never mark seen or reopen: FORBIDDEN, before any lookup.
        let probers: [(&str, &String, &[&str]); 2] = [
            ("the head of tomsk", &region.tomsk_head, &[]),
            ("an assistant of tomsk", &region.tomsk_assistant, &["markSeen", "reopenAppeal"]),
        ];
        for (prober, token, forbidden) in probers {
            for tried_version in [version, version + 1, 0] {
                let probed = every_mutation(app, token, &target.id, tried_version).await;
                let nowhere_answers = every_mutation(app, token, &nowhere, tried_version).await;
                for ((field, response), (_, nowhere_answer)) in probed.iter().zip(&nowhere_answers) {
                    let case =
                        format!("{prober}: {field} at version {tried_version} on the {status} appeal of seversk");
                    let expected = if forbidden.contains(field) { "FORBIDDEN" } else { "NOT_FOUND" };
                    if error_code(response) != Some(expected) || response != nowhere_answer {
                        failures.push(format!(
                            "{case}: expected {expected} as for a nonexistent id, got {response}; \
                             for a nonexistent id: {nowhere_answer}"
                        ));
                    }
                    if !leaked(&response.to_string(), &secrets).is_empty() {
                        failures.push(format!("{case}: the answer leaks the appeal: {response}"));
                    }
                }
            }
        }
        let after = region.snapshot(&target.id).await;
        if after != before {
            failures
                .push(format!("the probes changed the {status} appeal of seversk:\nbefore {before}\nafter {after}"));
        }
    }

    // `duplicateOf` naming the other municipality's appeal is the same
    // VALIDATION as naming no appeal, and reveals nothing.
    let own = &region.tomsk[0];
    region
        .succeed("the head of tomsk reads an appeal", &region.tomsk_head, MARK_SEEN, json!({ "id": own.id, "v": 1 }))
        .await;
    let before = region.snapshot(&own.id).await;
    let duplicate_of = |original: &str| json!({ "id": own.id, "v": 2, "input": { "outcome": "DUPLICATE", "response": "Повтор", "duplicateOf": original } });
    let (_, raw) =
        exchange(app, Some(&region.tomsk_head), &json!({ "query": RESOLVE, "variables": duplicate_of(&target.id) }))
            .await;
    let (_, raw_nowhere) =
        exchange(app, Some(&region.tomsk_head), &json!({ "query": RESOLVE, "variables": duplicate_of(&nowhere) }))
            .await;
    let response = parse("duplicateOf", &raw);
    if error_code(&response) != Some("VALIDATION")
        || raw.replace(&target.id, "<id>") != raw_nowhere.replace(&nowhere, "<id>")
    {
        failures.push(format!(
            "resolveAppeal with duplicateOf the seversk appeal: {raw}, for a nonexistent id: {raw_nowhere}"
        ));
    }
    if !leaked(&raw, &secrets).is_empty() {
        failures.push(format!("resolveAppeal with duplicateOf the seversk appeal leaks it: {raw}"));
    }
    if region.snapshot(&own.id).await != before {
        failures.push("the refused duplicate resolution changed the tomsk appeal".to_owned());
    }
    // The same command naming an appeal of one's own goes through, so the refusal
    // above is about scope.
    let resolved = region
        .succeed("a duplicate of an own appeal", &region.tomsk_head, RESOLVE, duplicate_of(&region.tomsk[1].id))
        .await;
    assert_eq!(
        resolved["resolveAppeal"]["appeal"]["resolution"]["duplicateOf"]["number"], region.tomsk[1].number,
        "the head of tomsk may mark an appeal a duplicate of another tomsk appeal: {resolved}"
    );
    assert!(failures.is_empty(), "{} probe(s) reached the seversk appeal:\n{}", failures.len(), failures.join("\n"));
}

/// The named type under `NON_NULL` and `LIST` wrappers.
fn named_type(type_ref: &Value) -> &str {
    let mut current = type_ref;
    while current["name"].is_null() && !current["ofType"].is_null() {
        current = &current["ofType"];
    }
    current["name"].as_str().unwrap_or_default()
}

/// Whether a field can be called without arguments: none of them is a non-null
/// type without a default.
fn needs_no_arguments(field: &Value) -> bool {
    field["args"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|arg| arg["type"]["kind"] != "NON_NULL" || !arg["defaultValue"].is_null())
}

/// A selection of `type_name` built from the schema: every field that needs no
/// arguments, objects `depth` levels down; empty for scalars and enums.
fn selection(types: &[Value], type_name: &str, depth: usize) -> String {
    let Some(described) = types.iter().find(|candidate| candidate["name"] == type_name) else { return String::new() };
    if described["kind"] != "OBJECT" {
        return String::new();
    }
    let mut fields = vec!["__typename".to_owned()];
    for field in described["fields"].as_array().into_iter().flatten().filter(|field| needs_no_arguments(field)) {
        let name = field["name"].as_str().unwrap_or_default();
        let inner = named_type(&field["type"]);
        let is_object = types.iter().any(|candidate| candidate["name"] == inner && candidate["kind"] == "OBJECT");
        match (is_object, depth) {
            (false, _) => fields.push(name.to_owned()),
            (true, 0) => {}
            (true, _) => fields.push(format!("{name} {}", selection(types, inner, depth - 1))),
        }
    }
    format!("{{ {} }}", fields.join(" "))
}

async fn an_unauthenticated_client_reads_the_schema_but_no_query_field_it_lists(backend: Backend) {
    let Some(region) = Region::new(backend).await else { return };
    let app = &region.app;
    let mut secrets = region.seversk_secrets();
    secrets.extend(region.tomsk_secrets());
    secrets.extend(["Город Томск".to_owned(), "ЗАТО Северск".to_owned()]);

    let mut schema = Value::Null;
    for (client, type_depth) in [("graphql-js 16 and GraphiQL", 7), ("graphql-js 17", 9)] {
        let (status, raw) = exchange(app, None, &json!({ "query": introspection_query(type_depth) })).await;
        let response = parse("introspection", &raw);
        assert!(
            status == 200 && response["errors"].is_null() && !response["data"]["__schema"].is_null(),
            "the schema is public: the introspection query of {client} answers without a token: {raw}"
        );
        schema = response;
    }
    let types = schema["data"]["__schema"]["types"].as_array().cloned().unwrap_or_default();
    let query_type = schema["data"]["__schema"]["queryType"]["name"].as_str().expect("a query type").to_owned();
    let query_fields = types
        .iter()
        .find(|candidate| candidate["name"] == query_type.as_str())
        .and_then(|described| described["fields"].as_array())
        .cloned()
        .unwrap_or_default();

    let mut probed = BTreeSet::new();
    let mut failures = Vec::new();
    for field in query_fields.iter().filter(|field| needs_no_arguments(field)) {
        let name = field["name"].as_str().unwrap_or_default().to_owned();
        let document = format!("{{ {name} {} }}", selection(&types, named_type(&field["type"]), 2));
        let (status, raw) = exchange(app, None, &json!({ "query": document })).await;
        let response = parse(&name, &raw);
        let data_is_empty = response["data"].is_null() || response["data"][&name].is_null();
        if error_code(&response) != Some("UNAUTHENTICATED") || !data_is_empty || status != 200 {
            failures.push(format!("{document}: expected UNAUTHENTICATED without data, got {status} {raw}"));
        }
        let leaks = leaked(&raw, &secrets);
        if !leaks.is_empty() {
            failures.push(format!("{document}: leaks {leaks:?}: {raw}"));
        }
        probed.insert(name);
    }
    println!("introspection on {backend:?}: probed {probed:?} unauthenticated");
    for expected in ["me", "municipalities", "appeals", "dashboard"] {
        assert!(
            probed.contains(expected),
            "the schema lists `{expected}` among the fields without required arguments: {probed:?}"
        );
    }
    assert!(failures.is_empty(), "{} unauthenticated probe(s) got through:\n{}", failures.len(), failures.join("\n"));
}

async fn batched_and_mixed_operations_answer_only_what_the_caller_may_see(backend: Backend) {
    let Some(region) = Region::new(backend).await else { return };
    let app = &region.app;
    let secrets = region.seversk_secrets();
    let (own, other) = (&region.tomsk[0], &region.seversk[0]);
    let other_before = region.snapshot(&other.id).await;
    let mut failures = Vec::new();

    // A head's batch: allowed operations and probes of the other municipality.
    let batch = json!([
        { "query": "{ appeals(first: 100) { totalCount edges { node { number text municipality { code } } } } }" },
        { "query": APPEAL, "variables": { "id": other.id } },
        { "query": APPEAL_BY_NUMBER, "variables": { "number": other.number } },
        { "query": "mutation($id: ID!) { markSeen(id: $id, expectedVersion: 1) { appeal { number text } } }", "variables": { "id": other.id } },
        { "query": VERIFY_AUDIT, "variables": { "id": other.id } },
        { "query": ADD_NOTE, "variables": { "id": other.id, "text": "Чужая заметка" } },
        { "query": ADD_NOTE, "variables": { "id": own.id, "text": "Своя заметка из пакета" } },
        { "query": "{ me { role municipality { code } } }" },
    ]);
    let (status, raw) = exchange(app, Some(&region.tomsk_head), &batch).await;
    let answers = parse("the head's batch", &raw).as_array().cloned().unwrap_or_default();
    assert_eq!((status, answers.len()), (200, 8), "the head's batch is answered operation by operation: {raw}");
    let listed = &answers[0]["data"]["appeals"];
    let codes: BTreeSet<&str> = listed["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|edge| edge["node"]["municipality"]["code"].as_str())
        .collect();
    if listed["totalCount"] != APPEALS_EACH || codes != BTreeSet::from([OWN]) {
        failures.push(format!("batch: the list is not the head's own appeals: {}", answers[0]));
    }
    for (index, expected) in
        [(1, json!({ "data": { "appeal": null } })), (2, json!({ "data": { "appealByNumber": null } }))]
    {
        if answers[index] != expected {
            failures.push(format!("batch: operation {index} is not null: {}", answers[index]));
        }
    }
    for index in [3, 4, 5] {
        if error_code(&answers[index]) != Some("NOT_FOUND") || !answers[index]["data"].is_null() {
            failures.push(format!("batch: operation {index} is not NOT_FOUND: {}", answers[index]));
        }
    }
    if answers[6]["data"]["addNote"]["event"]["kind"] != "NOTE_ADDED" {
        failures.push(format!("batch: the note on the head's own appeal was not added: {}", answers[6]));
    }
    if answers[7]["data"]["me"] != json!({ "role": "HEAD", "municipality": { "code": OWN } }) {
        failures.push(format!("batch: `me` is not the head: {}", answers[7]));
    }
    let leaks = leaked(&raw, &secrets);
    if !leaks.is_empty() {
        failures.push(format!("batch: the response leaks {leaks:?}: {raw}"));
    }

    // An assistant's batch: operations the role may never do are FORBIDDEN, on
    // any appeal, while the allowed one takes effect.
    let batch = json!([
        { "query": ADD_NOTE, "variables": { "id": own.id, "text": "Заметка помощника из пакета" } },
        { "query": MARK_SEEN, "variables": { "id": own.id, "v": 1 } },
        { "query": MARK_SEEN, "variables": { "id": other.id, "v": 1 } },
        { "query": REOPEN, "variables": { "id": other.id, "v": 1 } },
        { "query": APPEAL, "variables": { "id": other.id } },
    ]);
    let (_, raw) = exchange(app, Some(&region.tomsk_assistant), &batch).await;
    let answers = parse("the assistant's batch", &raw).as_array().cloned().unwrap_or_default();
    assert_eq!(answers.len(), 5, "the assistant's batch is answered operation by operation: {raw}");
    let codes: Vec<Option<&str>> = answers.iter().map(error_code).collect();
    if codes != [None, Some("FORBIDDEN"), Some("FORBIDDEN"), Some("FORBIDDEN"), None]
        || answers[0]["data"]["addNote"]["event"]["kind"] != "NOTE_ADDED"
        || answers[4] != json!({ "data": { "appeal": null } })
    {
        failures.push(format!("the assistant's batch: {raw}"));
    }
    let leaks = leaked(&raw, &secrets);
    if !leaks.is_empty() {
        failures.push(format!("the assistant's batch leaks {leaks:?}: {raw}"));
    }

    // One query mixing allowed and out-of-scope fields: the allowed ones answer,
    // the others are null or empty.
    let mixed = r#"query($own: ID!, $other: ID!, $otherNumber: String!, $secret: String!) {
        me { role }
        own: appeal(id: $own) { number }
        other: appeal(id: $other) { number text authorName history { note } }
        otherByNumber: appealByNumber(number: $otherNumber) { id text }
        mine: appeals(first: 100) { totalCount edges { node { number municipality { code } } } }
        theirs: appeals(first: 100, filter: { municipalityCode: "seversk" }) { totalCount edges { node { number } } }
        searched: appeals(filter: { text: $secret }) { totalCount edges { node { number } } }
        dashboard(municipalityCode: "seversk") { total municipalities { municipality { code } total } }
    }"#;
    let variables =
        json!({ "own": own.id, "other": other.id, "otherNumber": other.number, "secret": "протечка крыши" });
    let (_, raw) = exchange(app, Some(&region.tomsk_head), &json!({ "query": mixed, "variables": variables })).await;
    let response = parse("the mixed query", &raw);
    let data = &response["data"];
    let mine: BTreeSet<&str> = data["mine"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|edge| edge["node"]["municipality"]["code"].as_str())
        .collect();
    let expected_parts = [
        ("errors", response["errors"].clone(), Value::Null),
        ("me", data["me"].clone(), json!({ "role": "HEAD" })),
        ("own", data["own"].clone(), json!({ "number": own.number })),
        ("other", data["other"].clone(), Value::Null),
        ("otherByNumber", data["otherByNumber"].clone(), Value::Null),
        ("mine.totalCount", data["mine"]["totalCount"].clone(), json!(APPEALS_EACH)),
        ("theirs", data["theirs"].clone(), json!({ "totalCount": 0, "edges": [] })),
        ("searched", data["searched"].clone(), json!({ "totalCount": 0, "edges": [] })),
        ("dashboard", data["dashboard"].clone(), json!({ "total": 0, "municipalities": [] })),
    ];
    for (part, got, expected) in expected_parts {
        if got != expected {
            failures.push(format!("the mixed query: `{part}` is {got}, expected {expected}"));
        }
    }
    if mine != BTreeSet::from([OWN]) {
        failures.push(format!("the mixed query: `mine` lists {mine:?}"));
    }
    let leaks = leaked(&raw, &secrets);
    if !leaks.is_empty() {
        failures.push(format!("the mixed query leaks {leaks:?}: {raw}"));
    }

    // A refused non-null field takes the whole `data` with it (GraphQL's null
    // propagation), but the refusal says only NOT_FOUND.
    let mixed = "query($own: ID!, $other: ID!) { own: appeal(id: $own) { number } audit: verifyAudit(appealId: $other) { ok eventsChecked } }";
    let (_, raw) = exchange(
        app,
        Some(&region.tomsk_head),
        &json!({ "query": mixed, "variables": { "own": own.id, "other": other.id } }),
    )
    .await;
    let response = parse("the query with verifyAudit", &raw);
    if error_code(&response) != Some("NOT_FOUND")
        || response["errors"][0]["path"] != json!(["audit"])
        || !leaked(&raw, &secrets).is_empty()
    {
        failures.push(format!("the query with verifyAudit of the other appeal: {raw}"));
    }
    // A mutation document runs its fields in order: the note on the own appeal
    // is recorded, the command on the other one is NOT_FOUND.
    let mixed = "mutation($own: ID!, $other: ID!) { note: addNote(id: $own, text: \"Заметка перед пробой\") { event { kind } } seen: markSeen(id: $other, expectedVersion: 1) { appeal { number text } } }";
    let (_, raw) = exchange(
        app,
        Some(&region.tomsk_head),
        &json!({ "query": mixed, "variables": { "own": own.id, "other": other.id } }),
    )
    .await;
    let response = parse("the mixed mutation", &raw);
    if error_code(&response) != Some("NOT_FOUND")
        || response["errors"][0]["path"] != json!(["seen"])
        || !leaked(&raw, &secrets).is_empty()
    {
        failures.push(format!("the mixed mutation: {raw}"));
    }

    let notes: Vec<String> = region.snapshot(&own.id).await["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| event["note"].as_str().map(str::to_owned))
        .collect();
    let expected_notes = ["Своя заметка из пакета", "Заметка помощника из пакета", "Заметка перед пробой"];
    if notes != expected_notes {
        failures.push(format!("the allowed notes on the own appeal: {notes:?}, expected {expected_notes:?}"));
    }
    let other_after = region.snapshot(&other.id).await;
    if other_after != other_before {
        failures.push(format!("the seversk appeal changed:\nbefore {other_before}\nafter {other_after}"));
    }
    assert!(failures.is_empty(), "{} mixed probe(s) failed:\n{}", failures.len(), failures.join("\n"));
}

async fn a_heads_dashboard_narrowed_to_another_municipality_counts_nothing(backend: Backend) {
    let Some(region) = Region::new(backend).await else { return };
    let app = &region.app;
    // Give Seversk's row something to show: a read appeal and a resolved one, so
    // that its medians would not be null.
    for (n, appeal) in region.seversk.iter().take(2).enumerate() {
        region
            .succeed("the head of seversk reads", &region.seversk_head, MARK_SEEN, json!({ "id": appeal.id, "v": 1 }))
            .await;
        if n == 0 {
            let input = json!({ "outcome": "SATISFIED", "response": "Сделано" });
            region
                .succeed(
                    "the head of seversk resolves",
                    &region.seversk_head,
                    RESOLVE,
                    json!({ "id": appeal.id, "v": 2, "input": input }),
                )
                .await;
        }
    }
    let seversk =
        region.succeed("the governor's seversk dashboard", &region.governor, DASHBOARD, json!({ "code": OTHER })).await;
    assert_eq!(
        seversk["dashboard"]["total"], APPEALS_EACH,
        "the governor's office counts Seversk's appeals: {seversk}"
    );
    let own_view =
        region.succeed("the seversk head's dashboard", &region.seversk_head, DASHBOARD, json!({ "code": OTHER })).await;
    assert_eq!(own_view["dashboard"], seversk["dashboard"], "the head of Seversk sees what the governor's office sees");

    let zero = json!({ "total": 0, "received": 0, "seen": 0, "resolved": 0, "overdue": 0, "seenOverdue": 0, "municipalities": [] });
    let names = ["seversk".to_owned(), "Северск".to_owned()];
    let mut failures = Vec::new();
    let windows = [
        json!({}),
        json!({ "from": "2000-01-01T00:00:00Z", "to": "2999-01-01T00:00:00Z" }),
        json!({ "to": "2999-01-01T00:00:00Z" }),
    ];
    for code in ["seversk", "SEVERSK", " seversk "] {
        for window in &windows {
            let mut variables = window.clone();
            variables["code"] = json!(code);
            let (status, raw) =
                exchange(app, Some(&region.tomsk_head), &json!({ "query": DASHBOARD, "variables": variables })).await;
            let response = parse("the dashboard", &raw);
            if status != 200 || response != json!({ "data": { "dashboard": zero } }) || !leaked(&raw, &names).is_empty()
            {
                failures.push(format!("dashboard({variables}) of the head of tomsk: {raw}"));
            }
        }
    }
    let whole = region.succeed("the tomsk head's dashboard", &region.tomsk_head, DASHBOARD, json!({})).await;
    let rows: Vec<&str> = whole["dashboard"]["municipalities"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| row["municipality"]["code"].as_str())
        .collect();
    if rows != [OWN] || whole["dashboard"]["total"] != APPEALS_EACH {
        failures.push(format!("the head of tomsk's own dashboard is not Tomsk's alone: {whole}"));
    }
    assert!(failures.is_empty(), "{} dashboard probe(s) failed:\n{}", failures.len(), failures.join("\n"));
}

/// Sends `body` with `token` and returns the status, the body and how many SQL
/// statements the server ran for it.
async fn costed(app: &TestApp, token: &str, body: &Value) -> (u16, String, u64) {
    let before = app.store.statements_executed();
    let (status, raw) = exchange(app, Some(token), body).await;
    (status, raw, app.store.statements_executed() - before)
}

async fn an_unknown_token_and_a_revoked_users_token_are_refused_alike(backend: Backend) {
    let Some(region) = Region::new(backend).await else { return };
    let app = &region.app;
    let input = json!({ "name": "Глава на время", "role": "HEAD", "municipalityCode": OWN });
    let created = region.succeed("creating a head", &region.admin, CREATE_USER, json!({ "input": input })).await;
    let revoked = created["createUser"]["token"].as_str().expect("a token").to_owned();
    let user_id = created["createUser"]["user"]["id"].as_str().expect("a user id").to_owned();
    let works = app.graphql(Some(&revoked), "{ me { role } }", json!({})).await;
    assert_eq!(works["data"]["me"]["role"], "HEAD", "the token works before the revocation: {works}");
    region.succeed("revoking the head", &region.admin, REVOKE_USER, json!({ "id": user_id })).await;
    // An unknown token of the same form and length as an issued one.
    let unknown = format!("apl_{}", uuid::Uuid::new_v4().simple().to_string().repeat(2));
    assert_eq!(unknown.len(), revoked.len(), "the unknown token looks like an issued one");

    let own = &region.tomsk[0];
    let probes = [
        ("me", json!({ "query": "{ me { id role } }" })),
        ("appeals", json!({ "query": "{ appeals { totalCount edges { node { number } } } }" })),
        ("appeal", json!({ "query": APPEAL, "variables": { "id": own.id } })),
        ("dashboard", json!({ "query": DASHBOARD, "variables": {} })),
        ("markSeen", json!({ "query": MARK_SEEN, "variables": { "id": own.id, "v": 1 } })),
        ("a batch", json!([{ "query": "{ me { id } }" }, { "query": VERIFY_AUDIT, "variables": { "id": own.id } }])),
        ("introspection", json!({ "query": "{ __schema { queryType { name } } }" })),
    ];
    let mut failures = Vec::new();
    for (name, body) in &probes {
        let (unknown_status, unknown_raw, unknown_cost) = costed(app, &unknown, body).await;
        let (revoked_status, revoked_raw, revoked_cost) = costed(app, &revoked, body).await;
        println!(
            "{name} on {backend:?}: {unknown_cost} SQL statement(s) for an unknown token, {revoked_cost} for a revoked one"
        );
        if (unknown_status, &unknown_raw, unknown_cost) != (revoked_status, &revoked_raw, revoked_cost) {
            failures.push(format!(
                "{name}: an unknown token got {unknown_status} after {unknown_cost} statement(s): {unknown_raw}\n\
                 a revoked user's got {revoked_status} after {revoked_cost} statement(s): {revoked_raw}"
            ));
        }
        if *name != "introspection" && !unknown_raw.contains("UNAUTHENTICATED") {
            failures.push(format!("{name}: the unknown token is not UNAUTHENTICATED: {unknown_raw}"));
        }
        if !leaked(&revoked_raw, &region.tomsk_secrets()).is_empty() {
            failures.push(format!("{name}: the revoked user's token reads Tomsk's appeals: {revoked_raw}"));
        }
    }
    // Subscriptions authenticate once, on the connection: refused alike too.
    for (how, header) in [("in the connection_init payload", false), ("in the upgrade header", true)] {
        let mut answers = Vec::new();
        for token in [&unknown, &revoked] {
            let before = app.store.statements_executed();
            let (header_token, payload_token) =
                if header { (Some(token.as_str()), None) } else { (None, Some(token.as_str())) };
            let refusal = match app.websocket(header_token, payload_token).await {
                Ok(_) => "accepted".to_owned(),
                Err(refusal) => refusal,
            };
            answers.push((refusal, app.store.statements_executed() - before));
        }
        if answers[0] != answers[1] || answers[0].0 == "accepted" {
            failures
                .push(format!("a WebSocket with the token {how}: unknown {:?}, revoked {:?}", answers[0], answers[1]));
        }
    }
    assert!(failures.is_empty(), "{} request(s) told the tokens apart:\n{}", failures.len(), failures.join("\n"));
}

on_both_databases!(
    a_cursor_from_another_municipality_never_reveals_its_appeals,
    an_appeal_of_another_municipality_is_out_of_reach_by_its_id_and_number,
    an_unauthenticated_client_reads_the_schema_but_no_query_field_it_lists,
    batched_and_mixed_operations_answer_only_what_the_caller_may_see,
    a_heads_dashboard_narrowed_to_another_municipality_counts_nothing,
    an_unknown_token_and_a_revoked_users_token_are_refused_alike,
);
