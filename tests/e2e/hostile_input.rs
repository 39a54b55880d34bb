//! Hostile and malformed input: bodies that are not JSON or not GraphQL,
//! documents that are too deep or too costly, arguments of the wrong type or out
//! of range, texts that break the rules, and SQL injection attempts. Each is
//! answered with a clear error code (never `INTERNAL`, never HTTP 500), and the
//! server stays healthy after every one.
//!
//! One server per database serves the whole table of cases. A failing case is
//! recorded and the run goes on, so that one run names every failing case.

use std::panic::AssertUnwindSafe;
use std::sync::Mutex;

use appeals_core::Role;
use appeals_storage::testing::on_both_databases;
use futures_util::FutureExt;
use serde_json::{Value, json};

use crate::support::{Backend, TestApp, error_code, spawn_app_with};

const SUBMIT: &str = "mutation($input: SubmitAppealInput!) { submitAppeal(input: $input) { created appeal { id text authorName status version } } }";
const NOTE: &str = "mutation($id: ID!, $text: String!) { addNote(id: $id, text: $text) { event { seq kind note } } }";
const SEE: &str =
    "mutation($id: ID!, $v: Int!) { markSeen(id: $id, expectedVersion: $v) { appeal { status version } } }";
const EXTEND: &str = "mutation($id: ID!, $v: Int!, $days: Int!, $reason: String!) { extendDeadline(id: $id, expectedVersion: $v, days: $days, reason: $reason) { appeal { version deadlineExtended } } }";
const RESOLVE: &str = "mutation($id: ID!, $v: Int!, $input: ResolveAppealInput!) { resolveAppeal(id: $id, expectedVersion: $v, input: $input) { appeal { status version } } }";
const CREATE_USER: &str = "mutation($input: CreateUserInput!) { createUser(input: $input) { user { id name } token } }";
const APPEAL: &str = "query($id: ID!) { appeal(id: $id) { id text status version } }";
const HISTORY: &str =
    "query($id: ID!, $first: Int, $after: Int) { appeal(id: $id) { history(first: $first, after: $after) { seq } } }";
const LIST: &str = "query($filter: AppealFilter, $first: Int, $after: String) { appeals(filter: $filter, first: $first, after: $after) { totalCount edges { node { id text } } } }";

/// The server under attack, the users the cases act as, and the appeals they act on.
struct Target {
    app: TestApp,
    intake: String,
    assistant: String,
    head: String,
    governor: String,
    admin: String,
    /// A tomsk appeal that stays `RECEIVED`.
    received: String,
    /// A tomsk appeal the head has read (version 2).
    seen: String,
    /// The failed cases, each with its assertion's message.
    failures: Mutex<Vec<String>>,
}

impl Target {
    async fn new(app: TestApp) -> Target {
        let intake = app.token(Role::Intake, None).await;
        let assistant = app.token(Role::Assistant, Some("tomsk")).await;
        let head = app.token(Role::Head, Some("tomsk")).await;
        let governor = app.token(Role::GovernorOffice, None).await;
        let admin = app.token(Role::Admin, None).await;
        let received = app.submit(&intake, "tomsk", "Не вывозят мусор").await["id"].as_str().expect("an id").to_owned();
        let seen = app.submit(&intake, "tomsk", "Сломана скамейка").await["id"].as_str().expect("an id").to_owned();
        let marked = app.graphql(Some(&head), SEE, json!({ "id": seen, "v": 1 })).await;
        assert_eq!(marked["data"]["markSeen"]["appeal"]["status"], "SEEN", "setting up: {marked}");
        Target { app, intake, assistant, head, governor, admin, received, seen, failures: Mutex::default() }
    }

    /// Runs the checks of `case`, recording a failed assertion instead of
    /// unwinding further.
    async fn record(&self, case: &str, checks: impl Future<Output = ()>) {
        if let Err(panic) = AssertUnwindSafe(checks).catch_unwind().await {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|message| (*message).to_owned()))
                .unwrap_or_default();
            self.failures.lock().expect("no check panics while holding the lock").push(format!("[{case}] {message}"));
        }
    }

    /// Fails the test, naming every case that failed.
    fn assert_no_failures(&self) {
        let failures = self.failures.lock().expect("no check panics while holding the lock");
        assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
    }

    /// Sends a GraphQL request that must be refused with `code`.
    async fn refused(&self, case: &str, token: &str, query: &str, variables: Value, code: &str) {
        self.record(case, async {
            let body = json!({ "query": query, "variables": variables });
            let response = self.app.post(Some(token), &body).await;
            let (_, answer) = self.answered(case, response).await;
            let answer = answer.unwrap_or_else(|| panic!("{case}: the answer should be JSON"));
            assert_eq!(error_code(&answer), Some(code), "{case}: {answer}");
            self.assert_healthy(case).await;
        })
        .await;
    }

    /// Sends a GraphQL request that must succeed, and returns its `data`.
    async fn accepted(&self, case: &str, token: &str, query: &str, variables: Value) -> Value {
        let body = json!({ "query": query, "variables": variables });
        let response = self.app.post(Some(token), &body).await;
        let (status, answer) = self.answered(case, response).await;
        let answer = answer.unwrap_or_else(|| panic!("{case}: the answer should be JSON"));
        assert_eq!(status, 200, "{case}: {answer}");
        assert!(answer["errors"].is_null(), "{case}: expected no errors, got {answer}");
        self.assert_healthy(case).await;
        answer["data"].clone()
    }

    /// Posts raw bytes that must be refused with one of the HTTP `statuses` and
    /// with `code`.
    async fn refused_body(&self, case: &str, body: Vec<u8>, statuses: &[u16], code: &str) {
        self.record(case, async {
            let response = self.app.post_raw(Some(&self.governor), body).await;
            let (status, answer) = self.answered(case, response).await;
            assert!(statuses.contains(&status), "{case}: HTTP {status}, expected one of {statuses:?}: {answer:?}");
            let answer = answer.unwrap_or_else(|| panic!("{case}: the answer should be JSON"));
            assert_eq!(error_code(&answer), Some(code), "{case}: {answer}");
            self.assert_healthy(case).await;
        })
        .await;
    }

    /// Reads an answer, failing the case on HTTP 500, on an `INTERNAL` error
    /// anywhere in it, or on a leaked SQL or panic message. Returns the status and
    /// the body as JSON, if it is JSON.
    async fn answered(&self, case: &str, response: reqwest::Response) -> (u16, Option<Value>) {
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_else(|error| panic!("{case}: unreadable answer: {error}"));
        assert!(status < 500, "{case}: HTTP {status}: {text}");
        assert!(!text.contains("\"INTERNAL\""), "{case}: a client's mistake answered INTERNAL: {text}");
        for leak in ["sqlx", "SQLSTATE", "panicked", "stack backtrace"] {
            assert!(!text.contains(leak), "{case}: the answer leaks `{leak}`: {text}");
        }
        (status, serde_json::from_str(&text).ok())
    }

    /// `/healthz` answers 200 and a normal query still works.
    async fn assert_healthy(&self, case: &str) {
        let health = self.app.get("/healthz").await;
        assert_eq!(health.status(), 200, "after {case}: /healthz");
        let normal = self.app.graphql(Some(&self.governor), "{ me { role } appeals { totalCount } }", json!({})).await;
        assert_eq!(normal["data"]["me"]["role"], "GOVERNOR_OFFICE", "after {case}: a normal query fails: {normal}");
    }

    fn submission(&self, text: &str) -> Value {
        json!({ "input": { "municipalityCode": "tomsk", "channel": "TELEGRAM", "text": text } })
    }
}

/// `depth` levels of `appeal { history { … } }`, through `AppealEvent.appeal`.
fn nested_history(id: &str, depth: usize) -> String {
    let mut query = String::from("id");
    for _ in 0..depth {
        query = format!("history {{ appeal {{ {query} }} }}");
    }
    format!("{{ appeal(id: \"{id}\") {{ {query} }} }}")
}

/// Introspection `ofType` nested `depth` levels deep.
fn nested_introspection(depth: usize) -> String {
    let mut query = String::from("name");
    for _ in 0..depth {
        query = format!("name ofType {{ {query} }}");
    }
    format!("{{ __type(name: \"Appeal\") {{ fields {{ type {{ {query} }} }} }} }}")
}

/// A hex cursor of the server's form (`micros/id`) for an arbitrary instant.
fn cursor(micros: i64, id: &str) -> String {
    format!("{micros}/{id}").bytes().map(|byte| format!("{byte:02x}")).collect()
}

async fn bodies_that_are_not_graphql_requests(target: &Target) {
    let cases: [(&str, &[u8]); 10] = [
        ("malformed JSON", b"{\"query\": \"{ me { id } }\""),
        ("truncated JSON", b"{\"query\": \"{ me { i"),
        ("an empty body", b""),
        ("a JSON string instead of a request", b"\"{ me { id } }\""),
        ("a number as the query", b"{\"query\": 42}"),
        ("an array of numbers", b"[1, 2, 3]"),
        ("variables that are a string", b"{\"query\": \"{ me { id } }\", \"variables\": \"x\"}"),
        ("invalid UTF-8", b"{\"query\": \"{ me { id } \xff\xfe }\"}"),
        ("a lone UTF-16 surrogate", b"{\"query\": \"{ me { id } }\", \"variables\": {\"x\": \"\\ud800\"}}"),
        (
            "a number beyond f64",
            b"{\"query\": \"query($n: Int) { appeals(first: $n) { totalCount } }\", \"variables\": {\"n\": 1e400}}",
        ),
    ];
    for (case, body) in cases {
        target.refused_body(case, body.to_vec(), &[400], "VALIDATION").await;
    }
    // async-graphql reads `[]` as a request without a query: a GraphQL error.
    target.refused_body("an empty batch", b"[]".to_vec(), &[200, 400], "VALIDATION").await;

    let mut deep_json = String::from("{\"query\": \"{ me { id } }\", \"variables\": {\"x\": ");
    deep_json.push_str(&"[".repeat(100_000));
    deep_json.push_str(&"]".repeat(100_000));
    deep_json.push_str("}}");
    target.refused_body("JSON nested 100,000 levels deep", deep_json.into_bytes(), &[400], "VALIDATION").await;

    let mut huge = b"{\"query\": \"{ me { id } }\", \"variables\": {\"text\": \"".to_vec();
    huge.resize(huge.len() + 20 * 1024 * 1024, b'a');
    huge.extend_from_slice(b"\"}}");
    let response = target
        .app
        .client
        .post(format!("{}/graphql", target.app.address))
        .bearer_auth(&target.governor)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await;
    match response {
        Ok(response) => assert_eq!(response.status(), 413, "a 20 MB body"),
        // The server may answer 413 and close the connection before the client
        // has finished sending; the client then sees the write fail.
        Err(error) => assert!(error.is_request() || error.is_body(), "a 20 MB body: {error}"),
    }
    target.assert_healthy("a 20 MB body").await;
}

async fn documents_that_are_not_valid_graphql(target: &Target) {
    let token = &target.governor;
    let received = &target.received;
    let cases = [
        ("a syntax error", "{ me { id ".to_owned(), json!({})),
        ("an empty document", String::new(), json!({})),
        ("an unknown field", "{ me { id password } }".to_owned(), json!({})),
        ("an unknown root field", "{ users { id token } }".to_owned(), json!({})),
        ("a string for an Int argument", "{ appeals(first: \"ten\") { totalCount } }".to_owned(), json!({})),
        ("an Int beyond 32 bits", "{ appeals(first: 2147483648) { totalCount } }".to_owned(), json!({})),
        ("an object for an ID argument", "{ appeal(id: { id: 1 }) { id } }".to_owned(), json!({})),
        ("an unknown enum value", "{ appeals(filter: { channel: FAX }) { totalCount } }".to_owned(), json!({})),
        ("an unknown filter field", "{ appeals(filter: { deleted: true }) { totalCount } }".to_owned(), json!({})),
        ("a missing required argument", "{ appeal { id } }".to_owned(), json!({})),
        ("a variable of the wrong type", APPEAL.to_owned(), json!({ "id": ["a", "list"] })),
        ("a missing required variable", APPEAL.to_owned(), json!({})),
        ("a string for a version", SEE.to_owned(), json!({ "id": received, "v": "1" })),
        ("a date that is not RFC 3339", LIST.to_owned(), json!({ "filter": { "receivedFrom": "yesterday" } })),
        (
            "a fragment cycle",
            "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }".to_owned(),
            json!({}),
        ),
        ("an undefined fragment", "query { ...Missing }".to_owned(), json!({})),
        ("a selection on a scalar", "{ me { id { value } } }".to_owned(), json!({})),
        ("a mutation through a query operation", "query { submitAppeal { created } }".to_owned(), json!({})),
        ("a subscription over HTTP POST", "subscription { appealEvents { seq } }".to_owned(), json!({})),
        ("two anonymous operations", "{ me { id } } { me { name } }".to_owned(), json!({})),
    ];
    for (case, query, variables) in cases {
        target.refused(case, token, &query, variables, "VALIDATION").await;
    }
}

async fn queries_too_deep_or_too_costly(target: &Target) {
    let token = &target.governor;
    let received = &target.received;
    target
        .refused("history nested 10 levels deep", token, &nested_history(received, 10), json!({}), "VALIDATION")
        .await;
    target
        .refused("introspection nested 50 levels deep", token, &nested_introspection(50), json!({}), "VALIDATION")
        .await;

    let parser_bomb = format!("{}id{}", "{ me ".repeat(5_000), " }".repeat(5_000));
    target.refused("selections nested 5,000 levels deep", token, &parser_bomb, json!({}), "VALIDATION").await;
    let list_bomb = format!("query($f: AppealFilter = {}) {{ me {{ id }} }}", "[".repeat(5_000) + &"]".repeat(5_000));
    target.refused("a default value nested 5,000 levels deep", token, &list_bomb, json!({}), "VALIDATION").await;

    let aliases: String = (0..500)
        .map(|index| format!("a{index}: appeal(id: \"{received}\") {{ id number text status version }} "))
        .collect();
    target
        .refused("500 aliases of appeal(id:)", token, &format!("{{ {aliases} }}"), json!({}), "QUERY_TOO_COMPLEX")
        .await;

    let mut fragments = String::from("fragment F0 on Query { me { id } } ");
    for level in 1..=40 {
        fragments.push_str(&format!("fragment F{level} on Query {{ ...F{} ...F{} }} ", level - 1, level - 1));
    }
    let fragment_bomb = format!("query {{ ...F40 }} {fragments}");
    let started = std::time::Instant::now();
    target.refused("fragments that double 40 times", token, &fragment_bomb, json!({}), "VALIDATION").await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "fragments that double 40 times took {:?}",
        started.elapsed()
    );

    let directives = "@skip(if: false) ".repeat(100);
    target
        .refused(
            "100 directives on one field",
            token,
            &format!("{{ me {directives} {{ id }} }}"),
            json!({}),
            "VALIDATION",
        )
        .await;
}

async fn arguments_out_of_range(target: &Target) {
    let governor = &target.governor;
    let assistant = &target.assistant;
    let received = &target.received;
    let unknown_uuid = "0190a5a0-0000-7000-8000-000000000000";
    let cases = [
        ("an appeal id that is not a UUID", governor, APPEAL, json!({ "id": "not-a-uuid" })),
        ("an empty appeal id", governor, APPEAL, json!({ "id": "" })),
        ("a numeric appeal id", governor, "{ appeal(id: 42) { id } }", json!({})),
        ("an appeal id with SQL", governor, APPEAL, json!({ "id": "1' OR '1'='1" })),
        ("a command on an id that is not a UUID", assistant, NOTE, json!({ "id": "not-a-uuid", "text": "x" })),
        ("an audit of an id that is not a UUID", governor, "{ verifyAudit(appealId: \"zzz\") { ok } }", json!({})),
        ("first: 101", governor, LIST, json!({ "first": 101 })),
        ("first: -1", governor, LIST, json!({ "first": -1 })),
        ("a garbage after cursor", governor, LIST, json!({ "after": "garbage" })),
        ("a hex cursor of garbage", governor, LIST, json!({ "after": "deadbeef" })),
        ("an after cursor with SQL", governor, LIST, json!({ "after": "'; DROP TABLE appeal; --" })),
        (
            "a filter on a malformed municipality code",
            governor,
            LIST,
            json!({ "filter": { "municipalityCode": "tomsk' OR 1=1 --" } }),
        ),
        (
            "a filter on an unknown municipality",
            governor,
            LIST,
            json!({ "filter": { "municipalityCode": "atlantis" } }),
        ),
        ("a search text over 200 characters", governor, LIST, json!({ "filter": { "text": "я".repeat(201) } })),
        ("history(first: 1001)", governor, HISTORY, json!({ "id": received, "first": 1001 })),
        ("history(first: -1)", governor, HISTORY, json!({ "id": received, "first": -1 })),
        ("history(after: -1)", governor, HISTORY, json!({ "id": received, "after": -1 })),
        ("history(first: 2147483648)", governor, HISTORY, json!({ "id": received, "first": 2_147_483_648_i64 })),
    ];
    for (case, token, query, variables) in cases {
        target.refused(case, token, query, variables, "VALIDATION").await;
    }

    target
        .refused(
            "a note on an unknown appeal",
            assistant,
            NOTE,
            json!({ "id": unknown_uuid, "text": "x" }),
            "NOT_FOUND",
        )
        .await;
    let missing = target.accepted("an unknown appeal", governor, APPEAL, json!({ "id": unknown_uuid })).await;
    assert_eq!(missing["appeal"], Value::Null, "an unknown appeal is null");
    let far = target
        .accepted("history after the last seq", governor, HISTORY, json!({ "id": received, "after": i32::MAX }))
        .await;
    assert_eq!(far["appeal"]["history"], json!([]), "a window past the end is empty, not an overflow: {far}");
    let page = target.accepted("first: 100", governor, LIST, json!({ "first": 100 })).await;
    assert!(page["appeals"]["totalCount"].as_i64().is_some(), "first: 100 is the largest page: {page}");

    // Instants that chrono can represent but PostgreSQL's timestamps (4713 BC to
    // 294276 AD) cannot: a page (or an empty one) or VALIDATION, never INTERNAL.
    let dashboard = "query($from: DateTime, $to: DateTime) { dashboard(from: $from, to: $to) { total } }";
    let extreme_instants = [
        (
            "a cursor 100,000 years before the epoch",
            LIST,
            json!({ "after": cursor(-3_155_760_000_000_000_000, received) }),
        ),
        (
            "a cursor 250,000 years after the epoch",
            LIST,
            json!({ "after": cursor(7_889_400_000_000_000_000, received) }),
        ),
        ("receivedFrom in 5000 BC", LIST, json!({ "filter": { "receivedFrom": "-5000-01-01T00:00:00Z" } })),
        ("receivedTo in 300000 AD", LIST, json!({ "filter": { "receivedTo": "+300000-01-01T00:00:00Z" } })),
        ("a dashboard from 5000 BC", dashboard, json!({ "from": "-5000-01-01T00:00:00Z" })),
        ("a dashboard to 300000 AD", dashboard, json!({ "to": "+300000-01-01T00:00:00Z" })),
    ];
    for (case, query, variables) in extreme_instants {
        target
            .record(case, async {
                let answer = target.app.graphql(Some(governor), query, variables).await;
                let code = error_code(&answer);
                assert!(
                    code.is_none() || code == Some("VALIDATION"),
                    "{case}: expected data or VALIDATION, got {answer}"
                );
                target.assert_healthy(case).await;
            })
            .await;
    }
}

async fn inputs_that_break_the_rules(target: &Target) {
    let (intake, assistant, head, admin) = (&target.intake, &target.assistant, &target.head, &target.admin);
    let (received, seen) = (&target.received, &target.seen);
    let submission = |text: &str| target.submission(text);
    let cases = [
        ("an empty appeal text", intake, SUBMIT, submission("")),
        ("a whitespace-only appeal text", intake, SUBMIT, submission(" \n\t  ")),
        ("an appeal text of 20,001 characters", intake, SUBMIT, submission(&"я".repeat(20_001))),
        ("a NUL byte in an appeal text", intake, SUBMIT, submission("Яма\0на дороге")),
        ("an escape sequence in an appeal text", intake, SUBMIT, submission("Яма \u{1b}[2J на дороге")),
        (
            "an author name of 201 characters",
            intake,
            SUBMIT,
            json!({ "input": { "municipalityCode": "tomsk", "channel": "WEB", "text": "Яма", "authorName": "Ж".repeat(201) } }),
        ),
        (
            "a NUL byte in an external id",
            intake,
            SUBMIT,
            json!({ "input": { "municipalityCode": "tomsk", "channel": "VK", "text": "Яма", "externalId": "42\u{0}" } }),
        ),
        (
            "an unknown municipality",
            intake,
            SUBMIT,
            json!({ "input": { "municipalityCode": "atlantis", "channel": "WEB", "text": "Яма" } }),
        ),
        (
            "a municipality code with SQL",
            intake,
            SUBMIT,
            json!({ "input": { "municipalityCode": "tomsk'; DROP TABLE appeal; --", "channel": "WEB", "text": "Яма" } }),
        ),
        ("a note of 5,001 characters", assistant, NOTE, json!({ "id": received, "text": "n".repeat(5_001) })),
        ("an empty note", assistant, NOTE, json!({ "id": received, "text": "   " })),
        ("a NUL byte in a note", assistant, NOTE, json!({ "id": received, "text": "\u{0}" })),
        (
            "a user name of 201 characters",
            admin,
            CREATE_USER,
            json!({ "input": { "name": "Ю".repeat(201), "role": "AUDITOR" } }),
        ),
        ("a head without a municipality", admin, CREATE_USER, json!({ "input": { "name": "Глава", "role": "HEAD" } })),
        ("an extension by 0 days", assistant, EXTEND, json!({ "id": received, "v": 1, "days": 0, "reason": "Запрос" })),
        (
            "an extension by 31 days",
            assistant,
            EXTEND,
            json!({ "id": received, "v": 1, "days": 31, "reason": "Запрос" }),
        ),
        (
            "an extension by -5 days",
            assistant,
            EXTEND,
            json!({ "id": received, "v": 1, "days": -5, "reason": "Запрос" }),
        ),
        (
            "an extension without a reason",
            assistant,
            EXTEND,
            json!({ "id": received, "v": 1, "days": 5, "reason": " " }),
        ),
        (
            "DUPLICATE without duplicateOf",
            head,
            RESOLVE,
            json!({ "id": seen, "v": 2, "input": { "outcome": "DUPLICATE", "response": "Повтор" } }),
        ),
        (
            "duplicateOf that is not a UUID",
            head,
            RESOLVE,
            json!({ "id": seen, "v": 2, "input": { "outcome": "DUPLICATE", "response": "Повтор", "duplicateOf": "x" } }),
        ),
        (
            "duplicateOf with another outcome",
            head,
            RESOLVE,
            json!({ "id": seen, "v": 2, "input": { "outcome": "SATISFIED", "response": "Да", "duplicateOf": received } }),
        ),
        (
            "an appeal as its own duplicate",
            head,
            RESOLVE,
            json!({ "id": seen, "v": 2, "input": { "outcome": "DUPLICATE", "response": "Повтор", "duplicateOf": seen } }),
        ),
        (
            "an empty response",
            head,
            RESOLVE,
            json!({ "id": seen, "v": 2, "input": { "outcome": "EXPLAINED", "response": "" } }),
        ),
    ];
    for (case, token, query, variables) in cases {
        target.refused(case, token, query, variables, "VALIDATION").await;
    }

    let longest =
        target.accepted("an appeal text of 20,000 characters", intake, SUBMIT, submission(&"я".repeat(20_000))).await;
    let stored = longest["submitAppeal"]["appeal"]["text"].as_str().map(|text| text.chars().count());
    assert_eq!(stored, Some(20_000), "an appeal text of exactly 20,000 characters is kept whole");
    let padded = target
        .accepted(
            "a padded appeal text of 20,000 characters",
            intake,
            SUBMIT,
            submission(&format!("  {}  ", "ё".repeat(20_000))),
        )
        .await;
    assert_eq!(padded["submitAppeal"]["appeal"]["text"].as_str().map(|text| text.chars().count()), Some(20_000));
    target
        .accepted("a note of 5,000 characters", assistant, NOTE, json!({ "id": received, "text": "n".repeat(5_000) }))
        .await;

    let extended = target
        .accepted(
            "an extension by 30 days",
            assistant,
            EXTEND,
            json!({ "id": received, "v": 1, "days": 30, "reason": "Запрос в ведомство" }),
        )
        .await;
    assert_eq!(extended["extendDeadline"]["appeal"]["deadlineExtended"], true, "the first extension: {extended}");
    let version = extended["extendDeadline"]["appeal"]["version"].clone();
    let again = json!({ "id": received, "v": version, "days": 1, "reason": "Ещё раз" });
    target.refused("a second extension", assistant, EXTEND, again, "INVALID_TRANSITION").await;
}

async fn injection_attempts_are_stored_and_searched_literally(target: &Target) {
    let (intake, governor) = (&target.intake, &target.governor);
    let before = target.accepted("counting before injection", governor, LIST, json!({})).await;
    let appeals_before = before["appeals"]["totalCount"].as_i64().expect("a count");

    let attacks = [
        "'; DROP TABLE appeal; --",
        "Robert'); DROP TABLE app_user;--",
        "1' OR '1'='1",
        "\"; DELETE FROM appeal_event WHERE 1=1; --",
        "100% готово_ \\ конец",
    ];
    for attack in attacks {
        let data = target.accepted(attack, intake, SUBMIT, target.submission(attack)).await;
        assert_eq!(data["submitAppeal"]["appeal"]["text"], attack, "stored literally");
    }
    let named = json!({ "input": { "municipalityCode": "seversk", "channel": "WEB", "text": "Жалоба", "authorName": attacks[1] } });
    let data = target.accepted("an author name with SQL", intake, SUBMIT, named).await;
    assert_eq!(data["submitAppeal"]["appeal"]["authorName"], attacks[1]);

    for attack in &attacks[..4] {
        let found = target.accepted(attack, governor, LIST, json!({ "filter": { "text": attack } })).await;
        assert_eq!(found["appeals"]["totalCount"], 1, "searching for {attack:?} finds exactly it: {found}");
        assert_eq!(found["appeals"]["edges"][0]["node"]["text"], *attack);
    }
    for (pattern, expected) in [("%", 1), ("_", 3), ("\\", 1), ("%%", 0), ("dr_p", 0), ("' OR '' = '", 0)] {
        let found = target.accepted(pattern, governor, LIST, json!({ "filter": { "text": pattern } })).await;
        assert_eq!(found["appeals"]["totalCount"], expected, "the search for {pattern:?} is literal: {found}");
    }
    for (case, variables) in [
        ("a NUL byte in the search text", json!({ "filter": { "text": "яма\u{0}" } })),
        ("a control character in the search text", json!({ "filter": { "text": "\u{7}" } })),
    ] {
        target
            .record(case, async {
                let response = target.app.graphql(Some(governor), LIST, variables).await;
                let code = error_code(&response);
                assert!(
                    code == Some("VALIDATION") || response["data"]["appeals"]["totalCount"] == 0,
                    "{case}: expected VALIDATION or no match, got {response}"
                );
                target.assert_healthy(case).await;
            })
            .await;
    }
    let case = "a NUL byte in a registration number";
    target
        .record(case, async {
            let query = "query($n: String!) { appealByNumber(number: $n) { id } }";
            let by_number = target.app.graphql(Some(governor), query, json!({ "n": "TOMSK\u{0}" })).await;
            let code = error_code(&by_number);
            assert!(
                code == Some("VALIDATION") || (code.is_none() && by_number["data"]["appealByNumber"].is_null()),
                "{case}: expected VALIDATION or null, got {by_number}"
            );
            target.assert_healthy(case).await;
        })
        .await;

    let after = target.accepted("counting after injection", governor, LIST, json!({})).await;
    let expected = appeals_before + i64::try_from(attacks.len()).expect("a few") + 1;
    assert_eq!(after["appeals"]["totalCount"], expected, "every appeal is still there");
    let municipalities =
        target.accepted("municipalities after injection", governor, "{ municipalities { code } }", json!({})).await;
    assert_eq!(
        municipalities["municipalities"].as_array().map(Vec::len),
        Some(20),
        "every municipality is still there"
    );
    let history = target
        .accepted(
            "a history after injection",
            governor,
            "query($id: ID!) { appeal(id: $id) { history { seq } } verifyAudit(appealId: $id) { ok } }",
            json!({ "id": target.seen }),
        )
        .await;
    assert_eq!(history["appeal"]["history"].as_array().map(Vec::len), Some(2), "the events are still there");
    assert_eq!(history["verifyAudit"]["ok"], true);
}

async fn hostile_input_is_refused_with_a_clear_code_and_the_server_stays_healthy(backend: Backend) {
    // The cases and the health checks after each come faster than the per-token
    // rate limit allows; what is tested here is the answer to each request.
    let Some(app) = spawn_app_with(backend, |config| config.disable_rate_limits()).await else { return };
    let target = Target::new(app).await;
    target.record("bodies", bodies_that_are_not_graphql_requests(&target)).await;
    target.record("documents", documents_that_are_not_valid_graphql(&target)).await;
    target.record("costly queries", queries_too_deep_or_too_costly(&target)).await;
    target.record("arguments", arguments_out_of_range(&target)).await;
    target.record("rules", inputs_that_break_the_rules(&target)).await;
    target.record("injection", injection_attempts_are_stored_and_searched_literally(&target)).await;
    target.record("tokens", hostile_tokens_are_unauthenticated(&target)).await;
    target.assert_no_failures();
}

async fn hostile_tokens_are_unauthenticated(target: &Target) {
    let long_token = "x".repeat(8_000);
    for (case, token) in [("a token with SQL", "' OR 1=1 --"), ("an 8,000-character token", long_token.as_str())] {
        let unauthenticated = target.app.graphql(Some(token), "{ me { id } }", json!({})).await;
        assert_eq!(error_code(&unauthenticated), Some("UNAUTHENTICATED"), "{case}: {unauthenticated}");
        target.assert_healthy(case).await;
    }
}

on_both_databases!(hostile_input_is_refused_with_a_clear_code_and_the_server_stays_healthy);
