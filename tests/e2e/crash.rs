//! An acknowledged write survives a crash. The real
//! `appeals` binary serves concurrent clients that submit appeals and move them
//! through `markSeen` and `resolveAppeal`; it is killed with SIGKILL at random
//! moments, several times, and started again on the same database each time.
//! Afterwards every write whose success reached a client is in the database,
//! whole: the appeal under its number, at least the acknowledged version, the
//! acknowledged event at its place in the history, every hash chain intact and
//! every appeal equal to the replay of its history (nothing half-applied), and
//! registration numbers unique and without gaps.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use appeals_core::text::{MunicipalityCode, PersonName};
use appeals_core::{AppealId, Role, Scope};
use appeals_storage::testing::{Backend, ThrowawayDatabase, on_both_databases};
use appeals_storage::{AppealFilter, Cursor, PoolSettings, Store};
use serde_json::{Value, json};

use crate::support::process::{ServerProcess, random_between};

/// How many times the server is killed under load, per database.
const KILLS: usize = 5;
/// How many clients write at once.
const CLIENTS: usize = 8;
/// The whole test, per database, once the binary is built.
const TIME_BOUND: Duration = Duration::from_secs(60);
/// How long a restarted server may take to acknowledge its first write.
const RECOVERY_BOUND: Duration = Duration::from_secs(15);

on_both_databases!(an_acknowledged_write_survives_a_crash);

const SUBMIT: &str = "mutation($input: SubmitAppealInput!) { submitAppeal(input: $input) { created \
                      appeal { id number status version history { id seq kind hash } } } }";
const MARK_SEEN: &str = "mutation($id: ID!, $version: Int!) { markSeen(id: $id, expectedVersion: $version) { \
                         appeal { id number status version } event { id seq kind hash } } }";
const RESOLVE: &str = "mutation($id: ID!, $version: Int!) { resolveAppeal(id: $id, expectedVersion: $version, \
                       input: { outcome: EXPLAINED, response: \"Теплотрассу починили, отопление дали\" }) { \
                       appeal { id number status version } event { id seq kind hash } } }";
const READ: &str = "query($id: ID!) { appeal(id: $id) { id number status version } }";

/// A write whose successful response reached its client.
#[derive(Debug, Clone)]
struct Ack {
    appeal_id: String,
    number: String,
    version: i64,
    status: String,
    event: AckedEvent,
}

/// The event a write's response reported.
#[derive(Debug, Clone)]
struct AckedEvent {
    id: String,
    seq: i64,
    kind: String,
    hash: String,
}

/// An appeal as its client last knew it.
#[derive(Debug, Clone)]
struct Known {
    id: String,
    version: i64,
    status: String,
}

/// What the clients share.
struct Shared {
    address: String,
    intake: String,
    head: String,
    assistant: String,
    /// Makes this run's external ids unique.
    run: String,
    stop: AtomicBool,
    acks: Mutex<Vec<Ack>>,
    /// Answers no correct server gives, whatever happens to it.
    unexpected: Mutex<Vec<String>>,
    /// Requests whose outcome never reached the client (the server died, or was
    /// not up yet); these are the writes that may or may not have happened.
    unacknowledged: AtomicUsize,
    /// Distinct (`channel`, `externalId`) submissions tried.
    submissions_tried: AtomicUsize,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn acknowledged(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    fn record(&self, ack: Ack) {
        self.acks.lock().unwrap().push(ack);
    }

    fn unexpected(&self, what: String) {
        self.unexpected.lock().unwrap().push(what);
    }
}

/// How a request ended, as its client sees it.
enum Answer {
    /// A successful response: the payload of the requested field.
    Done(Value),
    /// A refusal the server gave on purpose (its error code, or the HTTP status).
    Refused(String, String),
    /// No answer, a cut one, or a server-side failure: the write is not
    /// acknowledged, and may or may not have happened.
    Unknown,
}

async fn post(
    http: &reqwest::Client,
    shared: &Shared,
    token: &str,
    query: &str,
    variables: Value,
    field: &str,
) -> Answer {
    let sent = http
        .post(format!("{}/graphql", shared.address))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await;
    let Ok(response) = sent else { return Answer::Unknown };
    let status = response.status();
    if status.is_server_error() || status == reqwest::StatusCode::REQUEST_TIMEOUT {
        return Answer::Unknown;
    }
    // A body cut short by the kill is no answer.
    let Ok(body) = response.json::<Value>().await else { return Answer::Unknown };
    if !status.is_success() {
        return Answer::Refused(format!("HTTP {status}"), body.to_string());
    }
    if let Some(code) = body["errors"][0]["extensions"]["code"].as_str() {
        return if code == "INTERNAL" || code == "SERVICE_UNAVAILABLE" {
            Answer::Unknown
        } else {
            Answer::Refused(code.to_owned(), body.to_string())
        };
    }
    match &body["data"][field] {
        payload @ Value::Object(_) => Answer::Done(payload.clone()),
        _ => Answer::Refused("no data".to_owned(), body.to_string()),
    }
}

fn acked_event(event: &Value) -> AckedEvent {
    AckedEvent {
        id: event["id"].as_str().unwrap_or_default().to_owned(),
        seq: event["seq"].as_i64().unwrap_or_default(),
        kind: event["kind"].as_str().unwrap_or_default().to_owned(),
        hash: event["hash"].as_str().unwrap_or_default().to_owned(),
    }
}

fn known(appeal: &Value) -> Known {
    Known {
        id: appeal["id"].as_str().unwrap_or_default().to_owned(),
        version: appeal["version"].as_i64().unwrap_or_default(),
        status: appeal["status"].as_str().unwrap_or_default().to_owned(),
    }
}

fn ack(appeal: &Value, event: &Value) -> Ack {
    Ack {
        appeal_id: appeal["id"].as_str().unwrap_or_default().to_owned(),
        number: appeal["number"].as_str().unwrap_or_default().to_owned(),
        version: appeal["version"].as_i64().unwrap_or_default(),
        status: appeal["status"].as_str().unwrap_or_default().to_owned(),
        event: acked_event(event),
    }
}

/// One client: submits appeals, one after another, and drives each to
/// `RESOLVED`. A request that gets no answer is retried (a submission with the
/// same external id, which is idempotent) or, for a transition, the appeal is
/// read again to learn whether it happened.
async fn client(shared: Arc<Shared>, index: usize) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("a client");
    let mut sequence = 0;
    while !shared.stopped() {
        sequence += 1;
        let external_id = format!("{}-{index}-{sequence}", shared.run);
        shared.submissions_tried.fetch_add(1, Ordering::SeqCst);
        let Some(appeal) = submit(&http, &shared, &external_id).await else { continue };
        drive_to_resolution(&http, &shared, appeal).await;
    }
}

async fn submit(http: &reqwest::Client, shared: &Shared, external_id: &str) -> Option<Known> {
    let input = json!({ "input": {
        "municipalityCode": "tomsk",
        "channel": "TELEGRAM",
        "externalId": external_id,
        "authorName": "Житель Томска",
        "text": format!("Нет отопления в доме, сообщение {external_id}"),
    } });
    while !shared.stopped() {
        match post(http, shared, &shared.intake, SUBMIT, input.clone(), "submitAppeal").await {
            Answer::Done(payload) => {
                let appeal = &payload["appeal"];
                shared.record(ack(appeal, &appeal["history"][0]));
                return Some(known(appeal));
            }
            Answer::Unknown => {
                shared.unacknowledged.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Answer::Refused(code, body) => {
                shared.unexpected(format!("submitAppeal {external_id}: {code}: {body}"));
                return None;
            }
        }
    }
    None
}

async fn drive_to_resolution(http: &reqwest::Client, shared: &Shared, mut appeal: Known) {
    // Whether a transition of this appeal went unanswered since the last success:
    // only then may the appeal have moved on without its client knowing.
    let mut unanswered = false;
    while appeal.status != "RESOLVED" && !shared.stopped() {
        let variables = json!({ "id": appeal.id, "version": appeal.version });
        let answer = match appeal.status.as_str() {
            "RECEIVED" => post(http, shared, &shared.head, MARK_SEEN, variables, "markSeen").await,
            "SEEN" => post(http, shared, &shared.assistant, RESOLVE, variables, "resolveAppeal").await,
            other => {
                shared.unexpected(format!("appeal {} is {other}, which no client caused", appeal.id));
                return;
            }
        };
        match answer {
            Answer::Done(payload) => {
                shared.record(ack(&payload["appeal"], &payload["event"]));
                appeal = known(&payload["appeal"]);
                unanswered = false;
            }
            Answer::Unknown => {
                shared.unacknowledged.fetch_add(1, Ordering::SeqCst);
                unanswered = true;
                tokio::time::sleep(Duration::from_millis(25)).await;
                match reread(http, shared, &appeal.id).await {
                    Some(current) => appeal = current,
                    None => return,
                }
            }
            Answer::Refused(code, _) if unanswered && (code == "VERSION_CONFLICT" || code == "INVALID_TRANSITION") => {
                match reread(http, shared, &appeal.id).await {
                    Some(current) => appeal = current,
                    None => return,
                }
            }
            Answer::Refused(code, body) => {
                shared.unexpected(format!(
                    "{} of appeal {} at version {}: {code}: {body}",
                    appeal.status, appeal.id, appeal.version
                ));
                return;
            }
        }
    }
}

/// The appeal as the server has it now, read as the head, retried until the
/// server answers; `None` when the run stops first or the appeal is missing.
async fn reread(http: &reqwest::Client, shared: &Shared, id: &str) -> Option<Known> {
    while !shared.stopped() {
        match post(http, shared, &shared.head, READ, json!({ "id": id }), "appeal").await {
            Answer::Done(appeal) => return Some(known(&appeal)),
            Answer::Unknown => tokio::time::sleep(Duration::from_millis(25)).await,
            Answer::Refused(code, body) => {
                shared.unexpected(format!("reading the acknowledged appeal {id}: {code}: {body}"));
                return None;
            }
        }
    }
    None
}

async fn token(store: &Store, role: Role, name: &str, municipality: Option<&str>) -> String {
    let code = municipality.map(|code| MunicipalityCode::parse(code).expect("a valid code"));
    let name = PersonName::parse(name).expect("a valid name");
    let (_, token) = store.create_user(name, role, code.as_ref()).await.expect("the user should be created");
    token.expose().to_owned()
}

async fn an_acknowledged_write_survives_a_crash(backend: Backend) {
    let Some(database) = ThrowawayDatabase::create(backend).await else {
        println!("{backend:?}: skipped, {} is not set", appeals_storage::testing::POSTGRES_URL_VARIABLE);
        return;
    };
    // Building the binary is not part of the bound.
    tokio::task::block_in_place(crate::support::process::appeals_binary);
    let started = Instant::now();
    if tokio::time::timeout(TIME_BOUND, crash_and_check(backend, &database.url)).await.is_err() {
        panic!("{backend:?}: the crash test did not finish within {TIME_BOUND:?}");
    }
    println!("{backend:?}: the crash test took {:.1?}", started.elapsed());
}

async fn crash_and_check(backend: Backend, url: &str) {
    let setup = Store::open(url, PoolSettings::default()).await.expect("the database should open");
    let intake = token(&setup, Role::Intake, "Телеграм-бот приёма", None).await;
    let head = token(&setup, Role::Head, "Глава города Томска", Some("tomsk")).await;
    let assistant = token(&setup, Role::Assistant, "Помощник главы", Some("tomsk")).await;
    setup.close().await.expect("the setup store should close");

    let mut server = ServerProcess::start(url, &["--rate-limit", "0"]).await;
    let shared = Arc::new(Shared {
        address: server.address(),
        intake,
        head,
        assistant,
        run: format!("crash-{}", uuid::Uuid::new_v4().simple()),
        stop: AtomicBool::new(false),
        acks: Mutex::new(Vec::new()),
        unexpected: Mutex::new(Vec::new()),
        unacknowledged: AtomicUsize::new(0),
        submissions_tried: AtomicUsize::new(0),
    });
    let clients: Vec<_> = (0..CLIENTS).map(|index| tokio::spawn(client(Arc::clone(&shared), index))).collect();

    for kill in 1..=KILLS {
        // The (re)started server must acknowledge writes before it is killed again,
        // so that every kill lands on a server at work.
        wait_for_progress(&shared, &server, shared.acknowledged()).await;
        tokio::time::sleep(random_between(Duration::from_millis(200), Duration::from_millis(1500))).await;
        let acknowledged = shared.acknowledged();
        server.kill();
        println!("{backend:?}: kill {kill}/{KILLS} (SIGKILL) after {acknowledged} acknowledged writes");
        server.restart().await;
    }
    // The last restart serves too; then the clients stop.
    wait_for_progress(&shared, &server, shared.acknowledged()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    shared.stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.expect("a client should not panic");
    }
    // Released without a graceful shutdown, as it lived.
    server.kill();

    let unexpected = shared.unexpected.lock().unwrap().clone();
    assert!(unexpected.is_empty(), "{backend:?}: answers no client should get:\n{}", unexpected.join("\n"));
    let acks = shared.acks.lock().unwrap().clone();
    let store = Store::open(url, PoolSettings::default()).await.expect("the database should open after the crashes");
    let checked = check_acknowledged(backend, &store, &acks).await;

    // Nothing is half-applied: every chain verifies, against its anchor, and
    // replays to the stored appeal (status and version agree with the last event).
    let audit = store.verify_all().await.expect("the audit should run");
    assert!(audit.first_failure.is_none(), "{backend:?}: the audit fails: {:?}", audit.first_failure);

    let numbers = all_numbers(&store).await;
    assert_eq!(audit.appeals_checked, numbers.len() as u64, "{backend:?}: the audit should check every appeal");
    check_numbers(backend, &numbers);
    let tried = shared.submissions_tried.load(Ordering::SeqCst);
    assert!(numbers.len() >= checked.appeals, "{backend:?}: fewer appeals stored than acknowledged");
    assert!(numbers.len() <= tried, "{backend:?}: {} appeals stored from {tried} distinct submissions", numbers.len());
    assert!(
        checked.resolutions > 0 && checked.seen > 0,
        "{backend:?}: the clients should have acknowledged transitions, not only submissions: {checked:?}"
    );
    store.close().await.expect("the store should close");

    println!(
        "{backend:?}: survived {KILLS} kills; acknowledged and checked: {} appeals, {} markSeen, {} resolutions \
         ({} writes); {} requests went unanswered; {} appeals stored ({} distinct submissions tried), \
         {} events verified, numbers unique and gap-free",
        checked.appeals,
        checked.seen,
        checked.resolutions,
        acks.len(),
        shared.unacknowledged.load(Ordering::SeqCst),
        numbers.len(),
        tried,
        audit.events_checked,
    );
}

/// Waits until a write is acknowledged beyond the first `before`, failing the
/// test (with the server's log) if none is within [`RECOVERY_BOUND`].
async fn wait_for_progress(shared: &Shared, server: &ServerProcess, before: usize) {
    let deadline = Instant::now() + RECOVERY_BOUND;
    while shared.acknowledged() <= before {
        let unexpected = shared.unexpected.lock().unwrap().clone();
        assert!(unexpected.is_empty(), "answers no client should get:\n{}", unexpected.join("\n"));
        assert!(
            Instant::now() < deadline,
            "the server (start {}) acknowledged no write within {RECOVERY_BOUND:?}; its log ends:\n{}",
            server.starts(),
            server.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Debug, Default)]
struct Checked {
    appeals: usize,
    seen: usize,
    resolutions: usize,
}

fn status_rank(status: &str) -> u8 {
    match status {
        "RECEIVED" => 0,
        "SEEN" => 1,
        "RESOLVED" => 2,
        other => panic!("an unknown status {other}"),
    }
}

/// Every acknowledged write is in the database: the appeal exists under its
/// number, its version and status are at least those acknowledged, and the
/// acknowledged event is in its history at its place, with the same id, kind
/// and hash.
async fn check_acknowledged(backend: Backend, store: &Store, acks: &[Ack]) -> Checked {
    let mut by_appeal: HashMap<&str, Vec<&Ack>> = HashMap::new();
    for ack in acks {
        by_appeal.entry(ack.appeal_id.as_str()).or_default().push(ack);
    }
    let mut checked = Checked { appeals: by_appeal.len(), ..Checked::default() };
    for (id, acks) in by_appeal {
        let appeal_id: AppealId = id.parse().unwrap_or_else(|_| panic!("{backend:?}: an acknowledged id {id:?}"));
        let appeal = store.appeal(appeal_id).await.expect("the appeal should load");
        let appeal = appeal.unwrap_or_else(|| panic!("{backend:?}: the acknowledged appeal {id} is missing"));
        let history = store.history(appeal_id).await.expect("the history should load");
        for ack in acks {
            let what = format!(
                "{backend:?}: the acknowledged {} of {} ({id}) at version {}",
                ack.event.kind, ack.number, ack.version
            );
            assert_eq!(appeal.number, ack.number, "{what}: the registration number");
            assert!(i64::from(appeal.version) >= ack.version, "{what}: the appeal is at version {}", appeal.version);
            assert!(
                status_rank(appeal.status.as_str()) >= status_rank(&ack.status),
                "{what}: the appeal is {} after {} was acknowledged",
                appeal.status.as_str(),
                ack.status
            );
            // No notes are written here, so every event changes the version by one.
            assert_eq!(ack.event.seq, ack.version, "{what}: the event's seq");
            let stored = usize::try_from(ack.event.seq - 1).ok().and_then(|at| history.get(at));
            let stored = stored.unwrap_or_else(|| panic!("{what}: no event at seq {} in {history:?}", ack.event.seq));
            assert_eq!(i64::from(stored.event.seq), ack.event.seq, "{what}: the history's order");
            assert_eq!(stored.id.to_string(), ack.event.id, "{what}: the event at seq {}", ack.event.seq);
            assert_eq!(stored.event.kind.as_str(), ack.event.kind, "{what}: the event's kind");
            assert_eq!(stored.event.hash, ack.event.hash, "{what}: the event's hash");
            match ack.event.kind.as_str() {
                "SEEN" => checked.seen += 1,
                "RESOLVED" => checked.resolutions += 1,
                _ => {}
            }
        }
    }
    checked
}

/// The registration number of every stored appeal.
async fn all_numbers(store: &Store) -> Vec<String> {
    let mut numbers = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_appeals(Scope::Everywhere, &AppealFilter::default(), 100, after)
            .await
            .expect("the list should load");
        numbers.extend(page.appeals.iter().map(|appeal| appeal.number.clone()));
        match page.appeals.last() {
            Some(last) if page.has_next_page => after = Some(Cursor::of(last)),
            _ => return numbers,
        }
    }
}

/// Registration numbers are unique, and each municipality's year counts 1, 2, 3…
/// without a gap: a submission killed before its commit gave its number back.
fn check_numbers(backend: Backend, numbers: &[String]) {
    let mut seen = HashSet::new();
    let mut by_series: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for number in numbers {
        assert!(seen.insert(number), "{backend:?}: the registration number {number} is given twice");
        let (series, count) = number.rsplit_once('-').unwrap_or_else(|| panic!("{backend:?}: a number {number}"));
        let count = count.parse().unwrap_or_else(|_| panic!("{backend:?}: a number {number}"));
        by_series.entry(series).or_default().push(count);
    }
    for (series, mut counts) in by_series {
        counts.sort_unstable();
        let expected: Vec<u64> = (1..=counts.len() as u64).collect();
        assert_eq!(
            counts,
            expected,
            "{backend:?}: the numbers of {series} should run 1..={} without gaps",
            counts.len()
        );
    }
}
