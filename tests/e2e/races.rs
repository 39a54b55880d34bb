//! No lost updates, no double effects: a soak of many clients hammering the same
//! few appeals with every workflow command at once, each acting on the version it
//! last read, and a storm of intake bots retrying the same submissions. Afterwards
//! the histories must hold every accepted command exactly once and nothing else,
//! the versions must have no gaps, and every hash chain must verify.
//!
//! The soak's choices are random; the seed is printed with the figures.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use appeals_core::Role;
use appeals_storage::testing::on_both_databases;
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::{Backend, TestApp, error_code, spawn_app_with};

/// How long the soak's clients keep sending commands.
const SOAK_DURATION: Duration = Duration::from_secs(4);
/// A bound on each client's commands, should the server be very fast.
const SOAK_MAX_COMMANDS_PER_CLIENT: usize = 400;
/// How many appeals the soak's clients share.
const SOAK_APPEALS: usize = 5;

const SUBMIT: &str = "mutation($input: SubmitAppealInput!) { submitAppeal(input: $input) { created appeal { id number version externalId channel municipality { code } } } }";
const MARK_SEEN: &str = "mutation($id: ID!, $v: Int!) { markSeen(id: $id, expectedVersion: $v) { appeal { version } event { seq kind hash } } }";
const TRIAGE: &str = "mutation($id: ID!, $v: Int!, $input: TriageAppealInput!) { triageAppeal(id: $id, expectedVersion: $v, input: $input) { appeal { version } event { seq kind hash } } }";
const RESOLVE: &str = "mutation($id: ID!, $v: Int!, $input: ResolveAppealInput!) { resolveAppeal(id: $id, expectedVersion: $v, input: $input) { appeal { version } event { seq kind hash } } }";
const REOPEN: &str = "mutation($id: ID!, $v: Int!, $reason: String!) { reopenAppeal(id: $id, expectedVersion: $v, reason: $reason) { appeal { version } event { seq kind hash } } }";
const EXTEND: &str = "mutation($id: ID!, $v: Int!, $days: Int!, $reason: String!) { extendDeadline(id: $id, expectedVersion: $v, days: $days, reason: $reason) { appeal { version } event { seq kind hash } } }";
const ADD_NOTE: &str = "mutation($id: ID!, $text: String!) { addNote(id: $id, text: $text) { appeal { version } event { seq kind hash } } }";
const VERSION: &str = "query($id: ID!) { appeal(id: $id) { version } }";
const RECORD: &str = "query($id: ID!, $after: Int) { appeal(id: $id) { number status version history(first: 100, after: $after) { seq kind hash note } } verifyAudit(appealId: $id) { ok eventsChecked brokenAtSeq reason } }";
const LIST: &str = "{ appeals(first: 100) { totalCount edges { node { id number channel externalId } } } }";

/// The workflow commands of the soak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Command {
    MarkSeen,
    Triage,
    Resolve,
    Reopen,
    ExtendDeadline,
    AddNote,
}

impl Command {
    const ALL: [Command; 6] = [
        Command::MarkSeen,
        Command::Triage,
        Command::Resolve,
        Command::Reopen,
        Command::ExtendDeadline,
        Command::AddNote,
    ];

    fn field(self) -> &'static str {
        match self {
            Command::MarkSeen => "markSeen",
            Command::Triage => "triageAppeal",
            Command::Resolve => "resolveAppeal",
            Command::Reopen => "reopenAppeal",
            Command::ExtendDeadline => "extendDeadline",
            Command::AddNote => "addNote",
        }
    }

    /// The kind of the event an accepted command records.
    fn event_kind(self) -> &'static str {
        match self {
            Command::MarkSeen => "SEEN",
            Command::Triage => "TRIAGED",
            Command::Resolve => "RESOLVED",
            Command::Reopen => "REOPENED",
            Command::ExtendDeadline => "DEADLINE_EXTENDED",
            Command::AddNote => "NOTE_ADDED",
        }
    }

    /// The commands the spec lets `role` issue on an appeal of its municipality.
    fn allowed_for(role: Role) -> &'static [Command] {
        match role {
            Role::Head => &Command::ALL,
            Role::Assistant => &[Command::Triage, Command::Resolve, Command::ExtendDeadline, Command::AddNote],
            Role::GovernorOffice => &[Command::Reopen],
            Role::Intake | Role::Auditor | Role::Admin => &[],
        }
    }
}

/// A small deterministic generator (SplitMix64): the soak needs dice, not
/// cryptography, and a seed it can print.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// One client of the soak.
struct Client {
    label: String,
    role: Role,
    token: String,
}

/// A command the server accepted, and the event its payload named.
#[derive(Debug, Clone)]
struct Accepted {
    client: String,
    appeal: usize,
    command: Command,
    /// The version the client sent (`None` for notes).
    sent_version: Option<i64>,
    /// The appeal's version in the payload.
    version: i64,
    seq: i64,
    kind: String,
    hash: String,
}

impl Accepted {
    /// The command in a few words, for the failure messages.
    fn describe(&self) -> String {
        let version = self.sent_version.map_or_else(|| "no version".to_owned(), |version| format!("version {version}"));
        format!("{}'s {} on {version} (event {} {})", self.client, self.command.field(), self.seq, self.kind)
    }
}

/// What one client did during the soak.
#[derive(Debug, Default)]
struct Tally {
    tried: usize,
    accepted: Vec<Accepted>,
    conflicts: usize,
    invalid_transitions: usize,
    forbidden: usize,
    /// Answers the soak has no place for: a sentence each.
    unexpected: Vec<String>,
}

/// Sends one random command after another as `client` until `deadline`, each on
/// the version the client last read of the appeal.
async fn soak_client(
    app: Arc<TestApp>,
    client: Client,
    appeals: Arc<Vec<String>>,
    seed: u64,
    deadline: Instant,
) -> Tally {
    let mut dice = Dice(seed);
    let mut tally = Tally::default();
    // Every appeal starts at version 1, as submitted.
    let mut last_read: Vec<i64> = vec![1; appeals.len()];
    while Instant::now() < deadline && tally.tried < SOAK_MAX_COMMANDS_PER_CLIENT {
        let allowed = Command::allowed_for(client.role);
        // Now and then a command the role may never issue: it must be refused
        // and leave no trace.
        let command = if dice.chance(10) { *dice.pick(&Command::ALL) } else { *dice.pick(allowed) };
        let index = dice.below(appeals.len());
        let id = appeals[index].as_str();
        let version = last_read[index];
        let n = tally.tried;
        let (query, variables) = match command {
            Command::MarkSeen => (MARK_SEEN, json!({ "id": id, "v": version })),
            Command::Triage => {
                let priority = *dice.pick(&["LOW", "NORMAL", "HIGH", "URGENT"]);
                let category = *dice.pick(&["дороги", "ЖКХ", "транспорт", "благоустройство"]);
                let input =
                    json!({ "priority": priority, "category": category, "tags": [format!("{} {n}", client.label)] });
                (TRIAGE, json!({ "id": id, "v": version, "input": input }))
            }
            Command::Resolve => {
                let outcome = *dice.pick(&["SATISFIED", "EXPLAINED", "DECLINED", "REDIRECTED", "DUPLICATE"]);
                let mut input =
                    json!({ "outcome": outcome, "response": format!("Ответ: {}, команда {n}", client.label) });
                if outcome == "DUPLICATE" {
                    let original = (index + 1 + dice.below(appeals.len() - 1)) % appeals.len();
                    input["duplicateOf"] = json!(appeals[original]);
                }
                (RESOLVE, json!({ "id": id, "v": version, "input": input }))
            }
            Command::Reopen => {
                let reason = format!("Ответ недостаточен: {}, команда {n}", client.label);
                (REOPEN, json!({ "id": id, "v": version, "reason": reason }))
            }
            Command::ExtendDeadline => {
                let reason = format!("Нужна проверка: {}, команда {n}", client.label);
                (EXTEND, json!({ "id": id, "v": version, "days": 1 + dice.below(30), "reason": reason }))
            }
            Command::AddNote => {
                (ADD_NOTE, json!({ "id": id, "text": format!("Заметка: {}, команда {n}", client.label) }))
            }
        };
        let sent_version = (command != Command::AddNote).then_some(version);
        tally.tried += 1;
        let response = app.graphql(Some(&client.token), query, variables).await;
        let case = format!("{} {} #{n} on appeal {index} at version {version}", client.label, command.field());
        match error_code(&response) {
            None => {
                let payload = &response["data"][command.field()];
                let accepted = Accepted {
                    client: client.label.clone(),
                    appeal: index,
                    command,
                    sent_version,
                    version: payload["appeal"]["version"].as_i64().unwrap_or(-1),
                    seq: payload["event"]["seq"].as_i64().unwrap_or(-1),
                    kind: payload["event"]["kind"].as_str().unwrap_or_default().to_owned(),
                    hash: payload["event"]["hash"].as_str().unwrap_or_default().to_owned(),
                };
                if accepted.version < 1 || accepted.seq < 2 || accepted.hash.is_empty() {
                    tally.unexpected.push(format!("{case}: a success without a full payload: {response}"));
                }
                last_read[index] = accepted.version;
                tally.accepted.push(accepted);
            }
            Some("VERSION_CONFLICT") => {
                tally.conflicts += 1;
                let reread = app.graphql(Some(&client.token), VERSION, json!({ "id": id })).await;
                match reread["data"]["appeal"]["version"].as_i64() {
                    Some(current) => last_read[index] = current,
                    None => tally.unexpected.push(format!("{case}: re-reading the version failed: {reread}")),
                }
            }
            Some("INVALID_TRANSITION") => tally.invalid_transitions += 1,
            Some("FORBIDDEN") if !allowed.contains(&command) => tally.forbidden += 1,
            Some(_) => tally.unexpected.push(format!("{case}: {response}")),
        }
    }
    tally
}

/// The soak's checks on one appeal's recorded history against the commands the
/// server accepted on it; returns a sentence per problem.
fn check_appeal(index: usize, record: &Value, accepted: &[&Accepted]) -> Vec<String> {
    let mut problems = Vec::new();
    let appeal = &record["appeal"];
    let name = format!("appeal {index} ({})", appeal["number"].as_str().unwrap_or("?"));
    let history = appeal["history"].as_array().cloned().unwrap_or_default();
    let version = appeal["version"].as_i64().unwrap_or(-1);

    let seqs: Vec<i64> = history.iter().map(|event| event["seq"].as_i64().unwrap_or(-1)).collect();
    let expected_seqs: Vec<i64> = (1..=history.len() as i64).collect();
    if seqs != expected_seqs {
        problems.push(format!("{name}: the history's seqs are not 1..={}: {seqs:?}", history.len()));
    }
    if history.first().map(|event| &event["kind"]) != Some(&json!("RECEIVED")) {
        problems.push(format!("{name}: the history does not start with RECEIVED"));
    }

    // Every accepted command's event is in the history exactly once.
    let key = |seq: i64, kind: &str, hash: &str| (seq, kind.to_owned(), hash.to_owned());
    let mut in_history: BTreeMap<(i64, String, String), usize> = BTreeMap::new();
    for event in &history {
        let seq = event["seq"].as_i64().unwrap_or(-1);
        let kind = event["kind"].as_str().unwrap_or_default();
        *in_history.entry(key(seq, kind, event["hash"].as_str().unwrap_or_default())).or_default() += 1;
    }
    let mut accepted_keys: BTreeMap<(i64, String, String), &Accepted> = BTreeMap::new();
    for command in accepted {
        let command_key = key(command.seq, &command.kind, &command.hash);
        if command.kind != command.command.event_kind() {
            problems.push(format!("{name}: {} recorded a {} event", command.describe(), command.kind));
        }
        match in_history.get(&command_key) {
            Some(1) => {}
            Some(count) => problems.push(format!("{name}: {} is in the history {count} times", command.describe())),
            None => problems.push(format!("{name}: the accepted {} is not in the history (lost)", command.describe())),
        }
        if let Some(other) = accepted_keys.insert(command_key, command) {
            problems.push(format!(
                "{name}: two accepted commands name one event: {} and {}",
                other.describe(),
                command.describe()
            ));
        }
        if let Some(sent) = command.sent_version
            && command.version != sent + 1
        {
            problems.push(format!(
                "{name}: {} answered version {}, not {}",
                command.describe(),
                command.version,
                sent + 1
            ));
        }
    }
    // Nothing is in the history that was not accepted, but the RECEIVED event.
    for event in history.iter().skip(1) {
        let seq = event["seq"].as_i64().unwrap_or(-1);
        let event_key =
            key(seq, event["kind"].as_str().unwrap_or_default(), event["hash"].as_str().unwrap_or_default());
        if !accepted_keys.contains_key(&event_key) {
            problems.push(format!("{name}: event {event} is in the history but no command was told it succeeded"));
        }
    }

    // Versions: 1 + one per event that changes the version, with no gaps; each
    // version from 2 on was answered to exactly one accepted command.
    let changes = history.iter().skip(1).filter(|event| event["kind"] != "NOTE_ADDED").count() as i64;
    if version != 1 + changes {
        problems.push(format!("{name}: version {version}, but 1 + {changes} version-changing events"));
    }
    let mut versions: Vec<i64> =
        accepted.iter().filter(|command| command.command != Command::AddNote).map(|command| command.version).collect();
    versions.sort_unstable();
    let expected_versions: Vec<i64> = (2..=version).collect();
    if versions != expected_versions {
        problems.push(format!("{name}: accepted versions {versions:?}, expected 2..={version} each once"));
    }
    // Each accepted command's answered version is the appeal's version just after
    // its event.
    for command in accepted {
        let changes_up_to = history
            .iter()
            .skip(1)
            .filter(|event| event["seq"].as_i64().unwrap_or(i64::MAX) <= command.seq && event["kind"] != "NOTE_ADDED")
            .count() as i64;
        if command.version != 1 + changes_up_to {
            problems.push(format!(
                "{name}: {} answered version {}, the history says {}",
                command.describe(),
                command.version,
                1 + changes_up_to
            ));
        }
    }

    let audit = &record["verifyAudit"];
    if audit["ok"] != true || audit["eventsChecked"].as_u64() != Some(history.len() as u64) {
        problems.push(format!("{name}: the audit does not verify all {} events: {audit}", history.len()));
    }
    problems
}

/// The appeal and its audit as [`RECORD`] reads them, with its whole history:
/// a history is read 100 events a page (a larger page costs more than the
/// server's budget for this query), and the soak writes more than 100 to an appeal.
async fn whole_record(app: &TestApp, auditor: &str, id: &str) -> Value {
    let mut record = app.graphql(Some(auditor), RECORD, json!({ "id": id })).await;
    assert!(record["errors"].is_null(), "reading appeal {id} after the soak: {record}");
    loop {
        let history = record["data"]["appeal"]["history"].as_array().cloned().unwrap_or_default();
        let Some(last) = history.last().filter(|_| history.len() % 100 == 0) else { return record };
        let after = last["seq"].clone();
        let page = app.graphql(Some(auditor), RECORD, json!({ "id": id, "after": after })).await;
        assert!(page["errors"].is_null(), "reading appeal {id}'s history after {after}: {page}");
        let more = page["data"]["appeal"]["history"].as_array().cloned().unwrap_or_default();
        if more.is_empty() {
            return record;
        }
        record["data"]["appeal"]["history"] = Value::Array(history.into_iter().chain(more).collect());
    }
}

async fn a_soak_of_concurrent_commands_loses_no_update_and_doubles_no_effect(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |config| config.disable_rate_limits()).await else { return };
    let app = Arc::new(app);
    let intake = app.token(Role::Intake, None).await;
    let auditor = app.token(Role::Auditor, None).await;
    let mut appeals = Vec::new();
    for n in 1..=SOAK_APPEALS {
        let appeal = app.submit(&intake, "tomsk", &format!("Обращение для нагрузочной проверки №{n}")).await;
        appeals.push(appeal["id"].as_str().unwrap_or_else(|| panic!("submitting appeal {n}: {appeal}")).to_owned());
    }
    let appeals = Arc::new(appeals);
    let mut clients = Vec::new();
    for (role, count, municipality) in
        [(Role::Head, 3, Some("tomsk")), (Role::Assistant, 6, Some("tomsk")), (Role::GovernorOffice, 3, None)]
    {
        for n in 1..=count {
            let token = app.token(role, municipality).await;
            clients.push(Client { label: format!("{role} {n}"), role, token });
        }
    }
    let seed = uuid::Uuid::new_v4().as_u64_pair().0;
    let deadline = Instant::now() + SOAK_DURATION;

    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, client)| {
            let client_seed = seed.wrapping_add(n as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
            tokio::spawn(soak_client(Arc::clone(&app), client, Arc::clone(&appeals), client_seed, deadline))
        })
        .collect();
    let tallies: Vec<Tally> =
        join_all(tasks).await.into_iter().map(|joined| joined.expect("a soak client should not panic")).collect();

    let tried: usize = tallies.iter().map(|tally| tally.tried).sum();
    let accepted: Vec<&Accepted> = tallies.iter().flat_map(|tally| &tally.accepted).collect();
    let conflicts: usize = tallies.iter().map(|tally| tally.conflicts).sum();
    let invalid: usize = tallies.iter().map(|tally| tally.invalid_transitions).sum();
    let forbidden: usize = tallies.iter().map(|tally| tally.forbidden).sum();
    let notes = accepted.iter().filter(|command| command.command == Command::AddNote).count();
    let mut by_command: BTreeMap<Command, usize> = BTreeMap::new();
    for command in &accepted {
        *by_command.entry(command.command).or_default() += 1;
    }
    println!(
        "soak on {backend:?} (seed {seed:#x}): {tried} commands tried, {} accepted ({notes} notes; {by_command:?}), \
         {conflicts} version conflicts, {invalid} invalid transitions, {forbidden} forbidden",
        accepted.len()
    );
    let unexpected: Vec<&String> = tallies.iter().flat_map(|tally| &tally.unexpected).collect();
    assert!(unexpected.is_empty(), "the soak got {} unexpected answer(s):\n{unexpected:#?}", unexpected.len());
    assert!(conflicts > 0, "the soak raced: some commands met a version conflict ({tried} tried)");
    let changes = accepted.len() - notes;
    assert!(changes >= SOAK_APPEALS, "the soak changed the appeals: {changes} versioned commands accepted");

    let mut problems = Vec::new();
    let mut events = 0;
    for (index, id) in appeals.iter().enumerate() {
        let record = whole_record(&app, &auditor, id).await;
        events += record["data"]["appeal"]["history"].as_array().map_or(0, Vec::len);
        let on_this: Vec<&Accepted> = accepted.iter().copied().filter(|command| command.appeal == index).collect();
        problems.extend(check_appeal(index, &record["data"], &on_this));
    }
    println!("soak on {backend:?}: {events} events recorded on {SOAK_APPEALS} appeals");
    assert!(
        problems.is_empty(),
        "{} problem(s) after the soak (seed {seed:#x}):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// A submission the bots keep retrying: its channel, external id and addressee.
struct Message {
    channel: &'static str,
    external_id: &'static str,
    municipality: &'static str,
}

/// The storm's five messages. Two share an external id on different channels:
/// the idempotency key is the pair, so they are two appeals.
const MESSAGES: [Message; 5] = [
    Message { channel: "TELEGRAM", external_id: "storm-1", municipality: "tomsk" },
    Message { channel: "VK", external_id: "storm-1", municipality: "tomsk" },
    Message { channel: "TELEGRAM", external_id: "storm-2", municipality: "seversk" },
    Message { channel: "EMAIL", external_id: "storm-3", municipality: "tomsk" },
    Message { channel: "WEB", external_id: "storm-4", municipality: "seversk" },
];
const BOTS: usize = 10;
const RETRIES: usize = 5;

async fn a_storm_of_retried_submissions_registers_each_message_exactly_once(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |config| config.disable_rate_limits()).await else { return };
    let app = Arc::new(app);
    let governor = app.token(Role::GovernorOffice, None).await;
    let mut bots = Vec::new();
    for _ in 0..BOTS {
        bots.push(app.token(Role::Intake, None).await);
    }
    let seed = uuid::Uuid::new_v4().as_u64_pair().0;
    let mut dice = Dice(seed);
    let mut tasks = Vec::new();
    for (bot, token) in bots.iter().enumerate() {
        for attempt in 0..RETRIES {
            for (message_index, message) in MESSAGES.iter().enumerate() {
                let app = Arc::clone(&app);
                let token = token.clone();
                let delay = Duration::from_millis(dice.below(40) as u64);
                let input = json!({
                    "municipalityCode": message.municipality,
                    "channel": message.channel,
                    "externalId": message.external_id,
                    "authorName": "Пётр Сидоров",
                    "text": format!("Сообщение {} из канала {}", message.external_id, message.channel),
                });
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let response = app.graphql(Some(&token), SUBMIT, json!({ "input": input })).await;
                    (message_index, bot, attempt, response)
                }));
            }
        }
    }
    let responses: Vec<(usize, usize, usize, Value)> =
        join_all(tasks).await.into_iter().map(|joined| joined.expect("a bot should not panic")).collect();

    let mut failures = Vec::new();
    let mut ids_by_message: Vec<BTreeSet<String>> = vec![BTreeSet::new(); MESSAGES.len()];
    let mut created_by_message = vec![0; MESSAGES.len()];
    let mut numbers: HashMap<String, String> = HashMap::new();
    for (message_index, bot, attempt, response) in &responses {
        let message = &MESSAGES[*message_index];
        let case = format!("bot {bot}, attempt {attempt}, {} {}", message.channel, message.external_id);
        let payload = &response["data"]["submitAppeal"];
        let appeal = &payload["appeal"];
        let (Some(id), true) = (appeal["id"].as_str(), response["errors"].is_null()) else {
            failures.push(format!("{case}: the submission failed: {response}"));
            continue;
        };
        if appeal["channel"] != message.channel
            || appeal["externalId"] != message.external_id
            || appeal["municipality"]["code"] != message.municipality
            || appeal["version"] != 1
        {
            failures.push(format!("{case}: the answer is not the message's appeal at version 1: {appeal}"));
        }
        ids_by_message[*message_index].insert(id.to_owned());
        if payload["created"] == true {
            created_by_message[*message_index] += 1;
        }
        numbers.insert(id.to_owned(), appeal["number"].as_str().unwrap_or_default().to_owned());
    }
    let created_total: usize = created_by_message.iter().sum();
    println!(
        "retry storm on {backend:?} (seed {seed:#x}): {} submissions by {BOTS} bots, {created_total} created, {} repeats",
        responses.len(),
        responses.len() - created_total
    );
    assert!(failures.is_empty(), "{} submission(s) of the storm went wrong:\n{}", failures.len(), failures.join("\n"));
    for (message, (ids, created)) in MESSAGES.iter().zip(ids_by_message.iter().zip(&created_by_message)) {
        let name = format!("{} {}", message.channel, message.external_id);
        assert_eq!(ids.len(), 1, "{name}: every response names the same appeal: {ids:?}");
        assert_eq!(*created, 1, "{name}: exactly one response says `created: true`");
    }
    let distinct: BTreeSet<&String> = ids_by_message.iter().flatten().collect();
    assert_eq!(distinct.len(), MESSAGES.len(), "each message is an appeal of its own: {ids_by_message:?}");

    let listed = app.graphql(Some(&governor), LIST, json!({})).await;
    assert_eq!(listed["data"]["appeals"]["totalCount"], MESSAGES.len(), "exactly five appeals exist: {listed}");
    let listed_ids: BTreeSet<&str> = listed["data"]["appeals"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|edge| edge["node"]["id"].as_str())
        .collect();
    let submitted_ids: BTreeSet<&str> = distinct.iter().map(|id| id.as_str()).collect();
    assert_eq!(listed_ids, submitted_ids, "the list holds exactly the appeals the bots were told of");

    // A retry that lost the race rolls its registration number back: numbers have
    // no gaps within a municipality.
    for (prefix, count) in [("TOMSK", 3), ("SEVERSK", 2)] {
        let mut sequences: Vec<&str> = numbers
            .values()
            .filter(|number| number.starts_with(&format!("{prefix}-")))
            .filter_map(|number| number.rsplit_once('-').map(|(_, sequence)| sequence))
            .collect();
        sequences.sort_unstable();
        let expected: Vec<String> = (1..=count).map(|n| format!("{n:06}")).collect();
        assert_eq!(sequences, expected, "{prefix}: registration numbers without gaps: {numbers:?}");
    }
    for id in distinct {
        let record = app.graphql(Some(&governor), RECORD, json!({ "id": id })).await;
        let kinds: Vec<&str> = record["data"]["appeal"]["history"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|event| event["kind"].as_str())
            .collect();
        assert_eq!(kinds, ["RECEIVED"], "appeal {id} was received once: {record}");
        assert_eq!(record["data"]["verifyAudit"]["ok"], true, "appeal {id}: the audit verifies: {record}");
    }
}

on_both_databases!(
    a_soak_of_concurrent_commands_loses_no_update_and_doubles_no_effect,
    a_storm_of_retried_submissions_registers_each_message_exactly_once,
);
