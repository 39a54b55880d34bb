//! The spec's permission table ("Roles and scope"), every cell, through the real
//! API over HTTP. [`TABLE`] spells out what each role gets on an appeal of its own
//! municipality and on one of another; each role's test walks every row of it on a
//! server of its own, preparing a fresh appeal in the state the operation needs
//! for every case. Then: no token, an unknown one and a revoked user's are
//! `UNAUTHENTICATED`, and every role may read the municipalities.

use appeals_core::Role;
use appeals_storage::testing::on_both_databases;
use serde_json::{Value, json};

use crate::support::{Backend, TestApp, error_code, spawn_app, spawn_app_with};

/// What a role gets when it tries an operation: one half of a cell of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    /// The operation succeeds and has its effect.
    Allowed,
    /// `FORBIDDEN`: the role may never do this.
    Forbidden,
    /// `NOT_FOUND`: the role may, but the appeal is outside its scope.
    NotFound,
    /// A query answers as if the appeal did not exist: `null`, absent from the
    /// list, not counted on the dashboard.
    Null,
}

const OK: Expected = Expected::Allowed;
const FORBIDDEN: Expected = Expected::Forbidden;
const NOT_FOUND: Expected = Expected::NotFound;
const NULL: Expected = Expected::Null;

/// The operations of the table, each tried through its own GraphQL field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    SubmitAppeal,
    Appeal,
    AppealByNumber,
    Appeals,
    Dashboard,
    VerifyAudit,
    TriageAppeal,
    AddNote,
    ExtendDeadline,
    MarkSeen,
    ResolveAppeal,
    ReopenAppeal,
    CreateMunicipality,
    CreateUser,
    RevokeUser,
}

impl Operation {
    /// The operation's root field in the GraphQL schema.
    fn field(self) -> &'static str {
        match self {
            Operation::SubmitAppeal => "submitAppeal",
            Operation::Appeal => "appeal",
            Operation::AppealByNumber => "appealByNumber",
            Operation::Appeals => "appeals",
            Operation::Dashboard => "dashboard",
            Operation::VerifyAudit => "verifyAudit",
            Operation::TriageAppeal => "triageAppeal",
            Operation::AddNote => "addNote",
            Operation::ExtendDeadline => "extendDeadline",
            Operation::MarkSeen => "markSeen",
            Operation::ResolveAppeal => "resolveAppeal",
            Operation::ReopenAppeal => "reopenAppeal",
            Operation::CreateMunicipality => "createMunicipality",
            Operation::CreateUser => "createUser",
            Operation::RevokeUser => "revokeUser",
        }
    }
}

/// The columns of [`TABLE`], in the spec's order.
const ROLES: [Role; 6] = [Role::Intake, Role::Assistant, Role::Head, Role::GovernorOffice, Role::Auditor, Role::Admin];

/// The spec's permission table, one row per operation and one cell per role of
/// [`ROLES`]: (on an appeal of the caller's own municipality, on one of another).
/// A submission is addressed to that municipality; a created or revoked user
/// belongs to it. Roles without a municipality reach all or nothing, so both
/// halves of their cells agree.
#[rustfmt::skip]
const TABLE: &[(Operation, [(Expected, Expected); 6])] = &[
    //                               INTAKE                  ASSISTANT               HEAD                    GOVERNOR_OFFICE         AUDITOR                 ADMIN
    (Operation::SubmitAppeal,       [(OK, OK),               (OK, FORBIDDEN),        (OK, FORBIDDEN),        (OK, OK),               (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN)]),
    (Operation::Appeal,             [(FORBIDDEN, FORBIDDEN), (OK, NULL),             (OK, NULL),             (OK, OK),               (OK, OK),               (FORBIDDEN, FORBIDDEN)]),
    (Operation::AppealByNumber,     [(FORBIDDEN, FORBIDDEN), (OK, NULL),             (OK, NULL),             (OK, OK),               (OK, OK),               (FORBIDDEN, FORBIDDEN)]),
    (Operation::Appeals,            [(FORBIDDEN, FORBIDDEN), (OK, NULL),             (OK, NULL),             (OK, OK),               (OK, OK),               (FORBIDDEN, FORBIDDEN)]),
    (Operation::Dashboard,          [(FORBIDDEN, FORBIDDEN), (OK, NULL),             (OK, NULL),             (OK, OK),               (OK, OK),               (FORBIDDEN, FORBIDDEN)]),
    (Operation::VerifyAudit,        [(FORBIDDEN, FORBIDDEN), (OK, NOT_FOUND),        (OK, NOT_FOUND),        (OK, OK),               (OK, OK),               (FORBIDDEN, FORBIDDEN)]),
    (Operation::TriageAppeal,       [(FORBIDDEN, FORBIDDEN), (OK, NOT_FOUND),        (OK, NOT_FOUND),        (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN)]),
    (Operation::AddNote,            [(FORBIDDEN, FORBIDDEN), (OK, NOT_FOUND),        (OK, NOT_FOUND),        (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN)]),
    (Operation::ExtendDeadline,     [(FORBIDDEN, FORBIDDEN), (OK, NOT_FOUND),        (OK, NOT_FOUND),        (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN)]),
    (Operation::MarkSeen,           [(FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (OK, NOT_FOUND),        (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN)]),
    (Operation::ResolveAppeal,      [(FORBIDDEN, FORBIDDEN), (OK, NOT_FOUND),        (OK, NOT_FOUND),        (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN)]),
    (Operation::ReopenAppeal,       [(FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (OK, NOT_FOUND),        (OK, OK),               (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN)]),
    (Operation::CreateMunicipality, [(FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (OK, OK)]),
    (Operation::CreateUser,         [(FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (OK, OK)]),
    (Operation::RevokeUser,         [(FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (FORBIDDEN, FORBIDDEN), (OK, OK)]),
];

/// The municipality of the assistant and the head under test.
const OWN_MUNICIPALITY: &str = "tomsk";
/// Another municipality.
const OTHER_MUNICIPALITY: &str = "seversk";

const SUBMIT: &str = "mutation($input: SubmitAppealInput!) { submitAppeal(input: $input) { created appeal { id number status version municipality { code } } } }";
const APPEAL: &str = "query($id: ID!) { appeal(id: $id) { id } }";
const APPEAL_BY_NUMBER: &str = "query($number: String!) { appealByNumber(number: $number) { id } }";
const APPEALS: &str = "query($text: String!) { appeals(filter: { text: $text }) { totalCount edges { node { id } } } }";
const DASHBOARD: &str = "{ dashboard { total municipalities { municipality { code } total } } }";
const VERIFY_AUDIT: &str = "query($id: ID!) { verifyAudit(appealId: $id) { ok eventsChecked } }";
const TRIAGE: &str = "mutation($id: ID!, $v: Int!) { triageAppeal(id: $id, expectedVersion: $v, input: { priority: HIGH, category: \"roads\" }) { appeal { priority category version } } }";
const ADD_NOTE: &str =
    "mutation($id: ID!) { addNote(id: $id, text: \"Позвонили заявителю\") { appeal { version } event { kind } } }";
const EXTEND: &str = "mutation($id: ID!, $v: Int!) { extendDeadline(id: $id, expectedVersion: $v, days: 10, reason: \"Нужна выездная проверка\") { appeal { deadlineExtended version } } }";
const MARK_SEEN: &str =
    "mutation($id: ID!, $v: Int!) { markSeen(id: $id, expectedVersion: $v) { appeal { status version } } }";
const RESOLVE: &str = "mutation($id: ID!, $v: Int!) { resolveAppeal(id: $id, expectedVersion: $v, input: { outcome: EXPLAINED, response: \"Разъяснили порядок\" }) { appeal { status version } } }";
const REOPEN: &str = "mutation($id: ID!, $v: Int!) { reopenAppeal(id: $id, expectedVersion: $v, reason: \"Ответ неполный\") { appeal { status version } } }";
const CREATE_MUNICIPALITY: &str =
    "mutation($input: CreateMunicipalityInput!) { createMunicipality(input: $input) { municipality { code name } } }";
const CREATE_USER: &str = "mutation($input: CreateUserInput!) { createUser(input: $input) { user { id role revoked municipality { code } } token } }";
const REVOKE_USER: &str = "mutation($id: ID!) { revokeUser(id: $id) { user { id revoked } } }";
const ME: &str = "{ me { id role } }";
const SNAPSHOT: &str = "query($id: ID!) { appeal(id: $id) { status version history { seq } } }";

/// Whether a case acts on the caller's own municipality or on another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Own,
    Other,
}

impl Side {
    fn municipality(self) -> &'static str {
        match self {
            Side::Own => OWN_MUNICIPALITY,
            Side::Other => OTHER_MUNICIPALITY,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Side::Own => "own",
            Side::Other => "other",
        }
    }
}

/// What a case actually got.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Observed {
    /// The operation succeeded and had its effect.
    Allowed,
    /// The query answered as if the appeal did not exist.
    Null,
    /// An error with this `extensions.code` (or `"<no code>"`).
    Error(String),
    /// Something the table has no word for, described.
    Unexpected(String),
}

impl Observed {
    fn is(&self, expected: Expected) -> bool {
        match (expected, self) {
            (Expected::Allowed, Observed::Allowed) | (Expected::Null, Observed::Null) => true,
            (Expected::Forbidden, Observed::Error(code)) => code == "FORBIDDEN",
            (Expected::NotFound, Observed::Error(code)) => code == "NOT_FOUND",
            _ => false,
        }
    }

    fn is_refusal(&self) -> bool {
        matches!(self, Observed::Error(_))
    }
}

/// An appeal prepared for one case.
struct Prepared {
    id: String,
    number: String,
    version: i64,
    status: String,
    events: usize,
}

/// One server with the role under test and the users that prepare its cases.
struct Bench {
    app: TestApp,
    role: Role,
    /// The role under test; an assistant or a head belongs to [`OWN_MUNICIPALITY`].
    actor: String,
    intake: String,
    own_head: String,
    other_head: String,
    auditor: String,
    admin: String,
    /// Numbers the cases, so that each one's texts and codes are its own.
    case: usize,
}

impl Bench {
    async fn new(app: TestApp, role: Role) -> Bench {
        let actor_municipality = role_municipality(role);
        let actor = app.token(role, actor_municipality).await;
        let intake = app.token(Role::Intake, None).await;
        let own_head = app.token(Role::Head, Some(OWN_MUNICIPALITY)).await;
        let other_head = app.token(Role::Head, Some(OTHER_MUNICIPALITY)).await;
        let auditor = app.token(Role::Auditor, None).await;
        let admin = app.token(Role::Admin, None).await;
        Bench { app, role, actor, intake, own_head, other_head, auditor, admin, case: 0 }
    }

    fn head_of(&self, municipality: &str) -> &str {
        if municipality == OWN_MUNICIPALITY { &self.own_head } else { &self.other_head }
    }

    /// Submits an appeal to `municipality` as the intake service and brings it to
    /// `status` as that municipality's head.
    async fn prepare_appeal(&self, municipality: &str, status: &str, text: &str) -> Prepared {
        let input = json!({ "municipalityCode": municipality, "channel": "WEB", "text": text });
        let submitted = self.app.graphql(Some(&self.intake), SUBMIT, json!({ "input": input })).await;
        let appeal = &submitted["data"]["submitAppeal"]["appeal"];
        let id = appeal["id"].as_str().unwrap_or_else(|| panic!("preparing `{text}`: {submitted}")).to_owned();
        let number = appeal["number"].as_str().expect("a registration number").to_owned();
        let head = self.head_of(municipality);
        let mut version = 1;
        let mut steps: Vec<(&str, Value)> = Vec::new();
        if status != "RECEIVED" {
            steps.push((MARK_SEEN, json!({ "id": id, "v": 1 })));
        }
        if status == "RESOLVED" {
            steps.push((RESOLVE, json!({ "id": id, "v": 2 })));
        }
        for (query, variables) in steps {
            let response = self.app.graphql(Some(head), query, variables).await;
            assert!(response["errors"].is_null(), "preparing `{text}` as the head of {municipality}: {response}");
            version += 1;
        }
        Prepared { id, number, version, status: status.to_owned(), events: version as usize }
    }

    /// A user of `municipality`, created by the administrator: its id and token.
    async fn prepare_user(&self, municipality: &str) -> (String, String) {
        let input = json!({ "name": "Помощник для отзыва", "role": "ASSISTANT", "municipalityCode": municipality });
        let created = self.app.graphql(Some(&self.admin), CREATE_USER, json!({ "input": input })).await;
        let payload = &created["data"]["createUser"];
        let id = payload["user"]["id"].as_str().unwrap_or_else(|| panic!("preparing a user: {created}"));
        (id.to_owned(), payload["token"].as_str().expect("a token").to_owned())
    }

    /// Tries `operation` as the role under test on `side`, returns what happened
    /// and, when that is not what the table says, a sentence naming the row.
    async fn check(&mut self, operation: Operation, side: Side, expected: Expected) -> Option<String> {
        self.case += 1;
        let municipality = side.municipality();
        let marker =
            format!("Проверка прав, случай {:03}: {} {} {}", self.case, self.role, operation.field(), side.label());
        let (observed, response, effect_check) = match operation {
            Operation::SubmitAppeal => self.try_submit(municipality, &marker).await,
            Operation::CreateMunicipality => self.try_create_municipality(side).await,
            Operation::CreateUser => self.try_create_user(municipality).await,
            Operation::RevokeUser => self.try_revoke_user(municipality).await,
            _ => self.try_on_appeal(operation, municipality, &marker).await,
        };
        let row = format!("{} {} on the {} municipality ({municipality})", self.role, operation.field(), side.label());
        if !observed.is(expected) {
            return Some(format!("{row}: expected {expected:?}, got {observed:?}; response: {response}"));
        }
        effect_check.map(|problem| format!("{row}: {problem}"))
    }

    /// Submits as the role under test. Returns what happened, the response and,
    /// for a refused submission that registered an appeal anyway, the problem.
    async fn try_submit(&self, municipality: &str, marker: &str) -> (Observed, Value, Option<String>) {
        let input = json!({ "municipalityCode": municipality, "channel": "WEB", "text": marker });
        let response = self.app.graphql(Some(&self.actor), SUBMIT, json!({ "input": input })).await;
        let observed = observe(&response, Operation::SubmitAppeal.field(), |payload| {
            if payload["created"] == true && payload["appeal"]["municipality"]["code"] == municipality {
                Observed::Allowed
            } else {
                Observed::Unexpected(format!("not a new appeal of {municipality}"))
            }
        });
        let mut problem = None;
        if observed.is_refusal() {
            let listed = self.app.graphql(Some(&self.auditor), APPEALS, json!({ "text": marker })).await;
            if listed["data"]["appeals"]["totalCount"] != 0 {
                problem = Some(format!("the refused submission was registered: {listed}"));
            }
        }
        (observed, response, problem)
    }

    async fn try_create_municipality(&self, side: Side) -> (Observed, Value, Option<String>) {
        let code = format!("created-by-{}-{}", self.role.as_str().to_ascii_lowercase().replace('_', "-"), side.label());
        let input = json!({ "code": code, "name": format!("Новое поселение {}", self.case) });
        let response = self.app.graphql(Some(&self.actor), CREATE_MUNICIPALITY, json!({ "input": input })).await;
        let observed = observe(&response, Operation::CreateMunicipality.field(), |payload| {
            if payload["municipality"]["code"] == code.as_str() {
                Observed::Allowed
            } else {
                Observed::Unexpected(format!("no municipality `{code}` in the payload"))
            }
        });
        let listed = self.app.graphql(Some(&self.auditor), "{ municipalities { code } }", json!({})).await;
        let exists = listed["data"]["municipalities"].as_array().is_some_and(|municipalities| {
            municipalities.iter().any(|municipality| municipality["code"] == code.as_str())
        });
        let problem = match (&observed, exists) {
            (Observed::Allowed, false) => Some(format!("`{code}` was reported created but is not listed: {listed}")),
            (Observed::Error(_), true) => Some(format!("the refused `{code}` was created anyway: {listed}")),
            _ => None,
        };
        (observed, response, problem)
    }

    async fn try_create_user(&self, municipality: &str) -> (Observed, Value, Option<String>) {
        let input = json!({ "name": "Новый помощник", "role": "ASSISTANT", "municipalityCode": municipality });
        let response = self.app.graphql(Some(&self.actor), CREATE_USER, json!({ "input": input })).await;
        let observed = observe(&response, Operation::CreateUser.field(), |payload| {
            let user = &payload["user"];
            let token_shown = payload["token"].as_str().is_some_and(|token| !token.is_empty());
            if user["role"] == "ASSISTANT" && user["municipality"]["code"] == municipality && token_shown {
                Observed::Allowed
            } else {
                Observed::Unexpected("not the requested assistant with a token".to_owned())
            }
        });
        let mut problem = None;
        if let Some(token) = response["data"]["createUser"]["token"].as_str() {
            let me = self.app.graphql(Some(token), ME, json!({})).await;
            if me["data"]["me"]["role"] != "ASSISTANT" {
                problem = Some(format!("the new user's token does not work: {me}"));
            }
        }
        (observed, response, problem)
    }

    async fn try_revoke_user(&self, municipality: &str) -> (Observed, Value, Option<String>) {
        let (id, token) = self.prepare_user(municipality).await;
        let response = self.app.graphql(Some(&self.actor), REVOKE_USER, json!({ "id": id })).await;
        let observed = observe(&response, Operation::RevokeUser.field(), |payload| {
            if payload["user"]["id"] == id.as_str() && payload["user"]["revoked"] == true {
                Observed::Allowed
            } else {
                Observed::Unexpected("the payload does not show the user revoked".to_owned())
            }
        });
        let me = self.app.graphql(Some(&token), ME, json!({})).await;
        let problem = match (&observed, error_code(&me)) {
            (Observed::Allowed, code) if code != Some("UNAUTHENTICATED") => {
                Some(format!("the revoked user's token still works: {me}"))
            }
            (Observed::Error(_), Some(code)) => {
                Some(format!("a refused revocation broke the user's token ({code}): {me}"))
            }
            _ => None,
        };
        (observed, response, problem)
    }

    /// Prepares an appeal of `municipality` in the state `operation` needs, tries
    /// the operation, and checks that a refusal left the appeal as it was.
    async fn try_on_appeal(
        &self,
        operation: Operation,
        municipality: &str,
        marker: &str,
    ) -> (Observed, Value, Option<String>) {
        let status = match operation {
            Operation::ResolveAppeal => "SEEN",
            Operation::ReopenAppeal => "RESOLVED",
            _ => "RECEIVED",
        };
        let appeal = self.prepare_appeal(municipality, status, marker).await;
        let (id, v) = (appeal.id.as_str(), appeal.version);
        let (query, variables) = match operation {
            Operation::Appeal => (APPEAL, json!({ "id": id })),
            Operation::AppealByNumber => (APPEAL_BY_NUMBER, json!({ "number": appeal.number })),
            Operation::Appeals => (APPEALS, json!({ "text": marker })),
            Operation::Dashboard => (DASHBOARD, json!({})),
            Operation::VerifyAudit => (VERIFY_AUDIT, json!({ "id": id })),
            Operation::TriageAppeal => (TRIAGE, json!({ "id": id, "v": v })),
            Operation::AddNote => (ADD_NOTE, json!({ "id": id })),
            Operation::ExtendDeadline => (EXTEND, json!({ "id": id, "v": v })),
            Operation::MarkSeen => (MARK_SEEN, json!({ "id": id, "v": v })),
            Operation::ResolveAppeal => (RESOLVE, json!({ "id": id, "v": v })),
            Operation::ReopenAppeal => (REOPEN, json!({ "id": id, "v": v })),
            Operation::SubmitAppeal | Operation::CreateMunicipality | Operation::CreateUser | Operation::RevokeUser => {
                unreachable!("{operation:?} does not act on a prepared appeal")
            }
        };
        let response = self.app.graphql(Some(&self.actor), query, variables).await;
        let observed = observe(&response, operation.field(), |data| effect(operation, &appeal, municipality, data));
        let mut problem = None;
        if observed.is_refusal() {
            let snapshot = self.app.graphql(Some(&self.auditor), SNAPSHOT, json!({ "id": id })).await;
            let now = &snapshot["data"]["appeal"];
            let events = now["history"].as_array().map_or(0, Vec::len);
            if now["version"] != appeal.version || now["status"] != appeal.status.as_str() || events != appeal.events {
                problem = Some(format!("the refused {} changed the appeal: {snapshot}", operation.field()));
            }
        }
        (observed, response, problem)
    }
}

/// Reads a response to the operation whose root field is `field`: an error's code,
/// `null`, or what `judge` makes of the field's value.
fn observe(response: &Value, field: &str, judge: impl FnOnce(&Value) -> Observed) -> Observed {
    if !response["errors"].is_null() {
        return Observed::Error(error_code(response).unwrap_or("<no code>").to_owned());
    }
    match &response["data"][field] {
        Value::Null => Observed::Null,
        data => judge(data),
    }
}

/// Judges the answer to an operation on `appeal`: did it have its effect, or did
/// it answer as if the appeal did not exist?
fn effect(operation: Operation, appeal: &Prepared, municipality: &str, data: &Value) -> Observed {
    let v = appeal.version;
    let seen = match operation {
        Operation::Appeal | Operation::AppealByNumber => {
            return if data["id"] == appeal.id.as_str() {
                Observed::Allowed
            } else {
                Observed::Unexpected(format!("another appeal: {data}"))
            };
        }
        Operation::Appeals => {
            let edges = data["edges"].as_array().cloned().unwrap_or_default();
            return match (data["totalCount"].as_i64(), edges.as_slice()) {
                (Some(1), [edge]) if edge["node"]["id"] == appeal.id.as_str() => Observed::Allowed,
                (Some(0), []) => Observed::Null,
                _ => Observed::Unexpected(format!("a list that is neither the appeal nor empty: {data}")),
            };
        }
        Operation::Dashboard => {
            let rows = data["municipalities"].as_array().cloned().unwrap_or_default();
            let counted: i64 = rows.iter().filter_map(|row| row["total"].as_i64()).sum();
            return match rows.iter().find(|row| row["municipality"]["code"] == municipality) {
                None if data["total"].as_i64() == Some(counted) => Observed::Null,
                None => Observed::Unexpected(format!("a total beyond the rows in scope: {data}")),
                Some(row) if row["total"].as_i64() >= Some(1) => Observed::Allowed,
                Some(row) => Observed::Unexpected(format!("a row that does not count the appeal: {row}")),
            };
        }
        Operation::VerifyAudit => data["ok"] == true && data["eventsChecked"] == appeal.events,
        Operation::TriageAppeal => {
            data["appeal"]["priority"] == "HIGH"
                && data["appeal"]["category"] == "roads"
                && data["appeal"]["version"] == v + 1
        }
        Operation::AddNote => data["event"]["kind"] == "NOTE_ADDED" && data["appeal"]["version"] == v,
        Operation::ExtendDeadline => data["appeal"]["deadlineExtended"] == true && data["appeal"]["version"] == v + 1,
        Operation::MarkSeen | Operation::ReopenAppeal => {
            data["appeal"]["status"] == "SEEN" && data["appeal"]["version"] == v + 1
        }
        Operation::ResolveAppeal => data["appeal"]["status"] == "RESOLVED" && data["appeal"]["version"] == v + 1,
        Operation::SubmitAppeal | Operation::CreateMunicipality | Operation::CreateUser | Operation::RevokeUser => {
            unreachable!("{operation:?} is judged where it is tried")
        }
    };
    if seen { Observed::Allowed } else { Observed::Unexpected(format!("succeeded without its effect: {data}")) }
}

/// The municipality a user of `role` belongs to in these tests.
fn role_municipality(role: Role) -> Option<&'static str> {
    role.belongs_to_municipality().then_some(OWN_MUNICIPALITY)
}

/// Walks every row of [`TABLE`] for `role`, on both sides, and fails naming every
/// cell that the API does not honour.
async fn the_table_holds_for(backend: Backend, role: Role) {
    let Some(app) = spawn_app(backend).await else { return };
    let column = ROLES.iter().position(|candidate| *candidate == role).expect("every role has a column");
    let mut bench = Bench::new(app, role).await;
    let mut failures = Vec::new();
    for (operation, cells) in TABLE {
        let (own, other) = cells[column];
        for (side, expected) in [(Side::Own, own), (Side::Other, other)] {
            if let Some(failure) = bench.check(*operation, side, expected).await {
                failures.push(failure);
            }
        }
    }
    assert_eq!(bench.case, TABLE.len() * 2, "every row is tried on both sides");
    assert!(failures.is_empty(), "{} cell(s) of the permission table fail:\n{}", failures.len(), failures.join("\n"));
}

async fn an_intake_service_gets_exactly_what_the_permission_table_gives_it(backend: Backend) {
    the_table_holds_for(backend, Role::Intake).await;
}

async fn an_assistant_gets_exactly_what_the_permission_table_gives_them(backend: Backend) {
    the_table_holds_for(backend, Role::Assistant).await;
}

async fn a_head_gets_exactly_what_the_permission_table_gives_them(backend: Backend) {
    the_table_holds_for(backend, Role::Head).await;
}

async fn the_governor_office_gets_exactly_what_the_permission_table_gives_it(backend: Backend) {
    the_table_holds_for(backend, Role::GovernorOffice).await;
}

async fn an_auditor_gets_exactly_what_the_permission_table_gives_them(backend: Backend) {
    the_table_holds_for(backend, Role::Auditor).await;
}

async fn an_admin_gets_exactly_what_the_permission_table_gives_them(backend: Backend) {
    the_table_holds_for(backend, Role::Admin).await;
}

async fn no_token_an_unknown_token_and_a_revoked_users_token_are_unauthenticated(backend: Backend) {
    // Thirty refusals in a row from one address: the per-address limit is not what this tries.
    let Some(app) = spawn_app_with(backend, |config| config.disable_rate_limits()).await else { return };
    let intake = app.token(Role::Intake, None).await;
    let admin = app.token(Role::Admin, None).await;
    let appeal = app.submit(&intake, OWN_MUNICIPALITY, "Не горят фонари").await;
    let id = appeal["id"].as_str().expect("an appeal id").to_owned();

    let input = json!({ "name": "Глава на время", "role": "HEAD", "municipalityCode": OWN_MUNICIPALITY });
    let created = app.graphql(Some(&admin), CREATE_USER, json!({ "input": input })).await;
    let user_id = created["data"]["createUser"]["user"]["id"].as_str().expect("a user id").to_owned();
    let revoked_token = created["data"]["createUser"]["token"].as_str().expect("a token").to_owned();
    let before = app.graphql(Some(&revoked_token), ME, json!({})).await;
    assert_eq!(before["data"]["me"]["role"], "HEAD", "the token works before the revocation: {before}");
    let revoked = app.graphql(Some(&admin), REVOKE_USER, json!({ "id": user_id })).await;
    assert_eq!(revoked["data"]["revokeUser"]["user"]["revoked"], true, "{revoked}");

    let unknown_token = format!("apl_{}", "0".repeat(64));
    let submission =
        json!({ "input": { "municipalityCode": OWN_MUNICIPALITY, "channel": "WEB", "text": "Без пропуска" } });
    let user = json!({ "input": { "name": "Самозванец", "role": "ADMIN" } });
    let probes: [(&str, &str, Value); 10] = [
        ("me", ME, json!({})),
        ("municipalities", "{ municipalities { code } }", json!({})),
        ("appeal", APPEAL, json!({ "id": id })),
        ("appeals", "{ appeals { totalCount } }", json!({})),
        ("dashboard", DASHBOARD, json!({})),
        ("verifyAudit", VERIFY_AUDIT, json!({ "id": id })),
        ("submitAppeal", SUBMIT, submission),
        ("markSeen", MARK_SEEN, json!({ "id": id, "v": 1 })),
        ("addNote", ADD_NOTE, json!({ "id": id })),
        ("createUser", CREATE_USER, user),
    ];
    let mut failures = Vec::new();
    for (caller, token) in [
        ("no token", None),
        ("an unknown token", Some(unknown_token.as_str())),
        ("a revoked user's token", Some(revoked_token.as_str())),
    ] {
        for (operation, query, variables) in &probes {
            let response = app.graphql(token, query, variables.clone()).await;
            if error_code(&response) != Some("UNAUTHENTICATED") {
                failures.push(format!("{operation} with {caller}: expected UNAUTHENTICATED, got {response}"));
            }
        }
    }
    assert!(failures.is_empty(), "requests without a valid token got through:\n{}", failures.join("\n"));

    let untouched = app.graphql(Some(&admin), "{ me { role } }", json!({})).await;
    assert_eq!(untouched["data"]["me"]["role"], "ADMIN", "the administrator's own token still works: {untouched}");
    let auditor = app.token(Role::Auditor, None).await;
    let snapshot = app.graphql(Some(&auditor), SNAPSHOT, json!({ "id": id })).await;
    assert_eq!(snapshot["data"]["appeal"]["version"], 1, "no unauthenticated command changed the appeal: {snapshot}");
    let listed = app.graphql(Some(&auditor), "{ appeals { totalCount } }", json!({})).await;
    assert_eq!(listed["data"]["appeals"]["totalCount"], 1, "no unauthenticated submission was registered: {listed}");
}

async fn every_authenticated_role_may_read_the_municipalities(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let query = "{ municipalities { id code name } }";
    let mut lists = Vec::new();
    for role in ROLES {
        let token = app.token(role, role_municipality(role)).await;
        let response = app.graphql(Some(&token), query, json!({})).await;
        let municipalities = response["data"]["municipalities"].as_array().cloned();
        let codes: Vec<&str> =
            municipalities.iter().flatten().filter_map(|municipality| municipality["code"].as_str()).collect();
        assert!(
            codes.contains(&OWN_MUNICIPALITY) && codes.contains(&OTHER_MUNICIPALITY),
            "{role} reads the municipalities, its own and the others: {response}"
        );
        lists.push((role, response["data"]["municipalities"].clone()));
    }
    let (first_role, first_list) = &lists[0];
    for (role, list) in &lists[1..] {
        assert_eq!(list, first_list, "{role} reads the same municipalities as {first_role}");
    }
}

on_both_databases!(
    an_intake_service_gets_exactly_what_the_permission_table_gives_it,
    an_assistant_gets_exactly_what_the_permission_table_gives_them,
    a_head_gets_exactly_what_the_permission_table_gives_them,
    the_governor_office_gets_exactly_what_the_permission_table_gives_it,
    an_auditor_gets_exactly_what_the_permission_table_gives_them,
    an_admin_gets_exactly_what_the_permission_table_gives_them,
    no_token_an_unknown_token_and_a_revoked_users_token_are_unauthenticated,
    every_authenticated_role_may_read_the_municipalities,
);
