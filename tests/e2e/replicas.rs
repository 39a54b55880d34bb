//! Several `appeals serve` replicas on one PostgreSQL database, as the real
//! binary behind a load balancer: started at the same moment on a database
//! nobody migrated; appeals moved through all of them in turn with version
//! checks; a subscriber on each replica hears every in-scope event committed
//! through any of them, exactly once, in commit order; a revocation closes the
//! user's socket on another replica; a replica killed with SIGKILL mid-load
//! loses nothing, and its subscriber resumes from its cursor on another one;
//! each reply to a resident is sent once, whichever replica's worker claims it.
//! And, on both databases, a subscriber that drops out during a burst of writes
//! resumes from its cursor with no gap and no duplicate.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use appeals_core::Role;
use appeals_storage::events::{decode_cursor, encode_cursor};
use appeals_storage::testing::{Backend, ThrowawayDatabase, on_both_databases};
use appeals_storage::{PoolSettings, Store};
use serde_json::{Value, json};

use crate::channels::telegram_message;
use crate::support::platforms::FakePlatforms;
use crate::support::process::{ServerProcess, describe, run_command, run_command_within};
use crate::support::{WsClient, error_code, spawn_app_with, websocket};

on_both_databases!(
    a_subscriber_that_drops_out_during_a_burst_resumes_from_its_cursor_with_no_gap_and_no_duplicate,
    a_replica_older_than_the_schema_refuses_to_start_naming_both_versions,
);

mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn three_replicas_started_at_once_serve_one_database_and_every_subscriber_hears_every_event_once() {
        super::three_replicas_started_at_once_serve_one_database_and_every_subscriber_hears_every_event_once().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_replica_killed_mid_load_loses_nothing_and_its_subscriber_resumes_on_another() {
        super::a_replica_killed_mid_load_loses_nothing_and_its_subscriber_resumes_on_another().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn each_reply_is_sent_once_whichever_replica_claims_it() {
        super::each_reply_is_sent_once_whichever_replica_claims_it().await
    }
}

const EVENTS: &str = "subscription($after: String, $code: String) { \
                      appealEvents(after: $after, municipalityCode: $code) { cursor appealId seq kind } }";
const SUBMIT: &str = "mutation($code: String!, $text: String!) { submitAppeal(input: { municipalityCode: $code, \
                      channel: WEB, text: $text }) { appeal { id version } } }";
const MARK_SEEN: &str =
    "mutation($id: ID!, $v: Int!) { markSeen(id: $id, expectedVersion: $v) { appeal { version } } }";
const RESOLVE: &str = "mutation($id: ID!, $v: Int!) { resolveAppeal(id: $id, expectedVersion: $v, \
                       input: { outcome: EXPLAINED, response: \"Яму заделали\" }) { appeal { version status } } }";

/// What the replicas are started with: a small pool each, so that three fit
/// beside the rest of the suite in `max_connections`, and no per-caller limits.
const REPLICA_ARGS: [&str; 4] = ["--database-pool-size", "6", "--rate-limit", "0"];

/// Creates a user with `appeals user add` and returns its token.
fn user(url: &str, name: &str, role: &str, municipality: Option<&str>) -> String {
    let mut args = vec!["user", "add", "--name", name, "--role", role];
    if let Some(code) = municipality {
        args.extend(["--municipality", code]);
    }
    let output = run_command(url, &args);
    assert!(output.status.success(), "user add: {}", describe(&output));
    String::from_utf8_lossy(&output.stdout).lines().last().unwrap_or_default().to_owned()
}

/// Posts a GraphQL request to the server at `address`; `None` when no answer
/// came (the replica is gone).
async fn post(client: &reqwest::Client, address: &str, token: &str, query: &str, variables: Value) -> Option<Value> {
    let response = client
        .post(format!("{address}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("a client")
}

/// One event as a subscriber received it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Heard {
    appeal: String,
    seq: i64,
    kind: String,
    position: i64,
}

/// A subscription to `appealEvents`, and what it has heard.
struct Subscriber {
    socket: WsClient,
    heard: Vec<Heard>,
    /// The first message that was not an event (an error, a close).
    other: Option<Value>,
}

impl Subscriber {
    async fn open(address: &str, token: &str, after: Option<&str>) -> Subscriber {
        let mut socket = websocket(address, None, Some(token)).await.expect("a socket");
        socket.subscribe("1", EVENTS, json!({ "after": after })).await;
        Subscriber { socket, heard: Vec::new(), other: None }
    }

    fn cursor(&self) -> Option<String> {
        self.heard.last().map(|heard| encode_cursor(heard.position))
    }

    /// Reads events until `done` holds or `within` passes, or the stream ends;
    /// returns whether `done` holds.
    async fn read_until(&mut self, within: Duration, done: impl Fn(&[Heard]) -> bool) -> bool {
        let deadline = Instant::now() + within;
        while !done(&self.heard) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let Some(message) = self.socket.next_message(left).await else { return done(&self.heard) };
            let event = &message["payload"]["data"]["appealEvents"];
            if message["type"] == "next" && event.is_object() {
                let cursor = event["cursor"].as_str().expect("every event has its cursor");
                self.heard.push(Heard {
                    appeal: event["appealId"].as_str().expect("an appeal id").to_owned(),
                    seq: event["seq"].as_i64().expect("a seq"),
                    kind: event["kind"].as_str().expect("a kind").to_owned(),
                    position: decode_cursor(cursor).expect("a cursor the server issued"),
                });
            } else {
                self.other.get_or_insert_with(|| message.clone());
                if message["type"] == "close" || message["type"] == "complete" {
                    return done(&self.heard);
                }
            }
        }
        true
    }

    /// Whether it heard `appeal`'s event `seq`.
    fn has(&self, appeal: &str, seq: i64) -> bool {
        self.heard.iter().any(|heard| heard.appeal == appeal && heard.seq == seq)
    }
}

/// Every event in the database, in order of position.
async fn stored_events(url: &str) -> Vec<Heard> {
    let store = Store::open(url, PoolSettings { max_connections: 2, ..PoolSettings::default() })
        .await
        .expect("a store on the test database");
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events_after(after, None, 1000).await.expect("events can be read");
        let Some(last) = page.last() else { break };
        after = last.event.position;
        events.extend(page.into_iter().map(|followed| Heard {
            appeal: followed.event.event.appeal_id.to_string(),
            seq: i64::from(followed.event.event.seq),
            kind: followed.event.event.kind.as_str().to_uppercase(),
            position: followed.event.position,
        }));
    }
    let _ = store.close().await;
    events
}

/// Each heard event once, each appeal's in the order of its history, positions
/// ascending.
fn assert_once_in_order(who: &str, heard: &[Heard]) {
    let distinct: HashSet<(&str, i64)> = heard.iter().map(|heard| (heard.appeal.as_str(), heard.seq)).collect();
    assert_eq!(distinct.len(), heard.len(), "{who}: an event heard twice: {heard:?}");
    assert!(heard.windows(2).all(|pair| pair[0].position < pair[1].position), "{who}: out of commit order: {heard:?}");
    let mut last_seq = std::collections::HashMap::new();
    for event in heard {
        let previous = last_seq.insert(event.appeal.as_str(), event.seq);
        assert!(previous.is_none_or(|previous| previous < event.seq), "{who}: an appeal's events out of order");
    }
}

async fn three_replicas_started_at_once_serve_one_database_and_every_subscriber_hears_every_event_once() {
    let Some(database) = ThrowawayDatabase::create(Backend::Postgres).await else { return };
    let url = database.url.clone();
    // At the same moment, on a database nobody has migrated.
    let (a, b, c) = tokio::join!(
        ServerProcess::start(&url, &REPLICA_ARGS),
        ServerProcess::start(&url, &REPLICA_ARGS),
        ServerProcess::start(&url, &REPLICA_ARGS),
    );
    let replicas = [&a, &b, &c];
    let migrated = run_command(&url, &["migrate"]);
    assert!(migrated.status.success(), "the database was migrated whole: {}", describe(&migrated));

    let intake = user(&url, "Бот приёма", "intake", None);
    let governor = user(&url, "Центр управления регионом", "governor_office", None);
    let admin = user(&url, "Администратор", "admin", None);
    let heads =
        [user(&url, "Глава Томска", "head", Some("tomsk")), user(&url, "Глава Северска", "head", Some("seversk"))];
    let assistants = [
        user(&url, "Помощник главы Томска", "assistant", Some("tomsk")),
        user(&url, "Помощник главы Северска", "assistant", Some("seversk")),
    ];
    let codes = ["tomsk", "seversk"];

    let mut everyone: Vec<Subscriber> = Vec::new();
    for replica in replicas {
        everyone.push(Subscriber::open(&replica.address(), &governor, None).await);
    }
    // Tomsk's assistant, on the second replica: Tomsk's events only.
    let mut tomsk_only = Subscriber::open(&b.address(), &assistants[0], None).await;

    // A first appeal, through the third replica, heard by every subscriber:
    // from here on every subscription is known to be running.
    let client = client();
    let first = post(&client, &c.address(), &intake, SUBMIT, json!({ "code": "tomsk", "text": "Первое обращение" }))
        .await
        .expect("an answer");
    let first_id = first["data"]["submitAppeal"]["appeal"]["id"].as_str().expect("an appeal").to_owned();
    for (index, subscriber) in everyone.iter_mut().chain(std::iter::once(&mut tomsk_only)).enumerate() {
        let heard = subscriber.read_until(Duration::from_secs(10), |heard| !heard.is_empty()).await;
        assert!(heard, "subscriber {index} heard the first appeal: {:?}", subscriber.other);
        assert_eq!(subscriber.heard[0].appeal, first_id);
    }

    // Nine appeals at once, each registered through one replica, read through
    // the next and resolved through the third, with a stale version refused.
    let moved = futures_util::future::join_all((0..9usize).map(|i| {
        let client = client.clone();
        let addresses: Vec<String> = replicas.iter().map(|replica| replica.address()).collect();
        let (intake, head, assistant, code) =
            (intake.clone(), heads[i % 2].clone(), assistants[i % 2].clone(), codes[i % 2]);
        async move {
            let at = |step: usize| addresses[(i + step) % 3].clone();
            let text = format!("Обращение {i}: не вывозят мусор");
            let submitted = post(&client, &at(0), &intake, SUBMIT, json!({ "code": code, "text": text })).await;
            let submitted = submitted.expect("an answer");
            let id = submitted["data"]["submitAppeal"]["appeal"]["id"].as_str().expect("an appeal").to_owned();
            let seen = post(&client, &at(1), &head, MARK_SEEN, json!({ "id": id, "v": 1 })).await.expect("an answer");
            assert_eq!(seen["data"]["markSeen"]["appeal"]["version"], 2, "{seen}");
            let stale =
                post(&client, &at(2), &assistant, RESOLVE, json!({ "id": id, "v": 1 })).await.expect("an answer");
            assert_eq!(error_code(&stale), Some("VERSION_CONFLICT"), "a stale version on another replica: {stale}");
            let resolved = post(&client, &at(2), &assistant, RESOLVE, json!({ "id": id, "v": 2 })).await;
            let resolved = resolved.expect("an answer");
            assert_eq!(resolved["data"]["resolveAppeal"]["appeal"]["version"], 3, "{resolved}");
            (id, code)
        }
    }))
    .await;

    let mut expected: Vec<(String, i64)> = vec![(first_id.clone(), 1)];
    for (id, _) in &moved {
        expected.extend((1..=3).map(|seq| (id.clone(), seq)));
    }
    let tomsk_expected: Vec<(String, i64)> = expected
        .iter()
        .filter(|(id, _)| *id == first_id || moved.iter().any(|(moved, code)| moved == id && *code == "tomsk"))
        .cloned()
        .collect();
    let stored = stored_events(&url).await;
    assert_eq!(stored.len(), expected.len(), "every event is stored once");
    for (index, subscriber) in everyone.iter_mut().enumerate() {
        let count = expected.len();
        subscriber.read_until(Duration::from_secs(15), |heard| heard.len() >= count).await;
        assert_once_in_order(&format!("subscriber on replica {index}"), &subscriber.heard);
        assert_eq!(subscriber.heard, stored, "subscriber on replica {index} heard every event, in commit order");
    }
    let count = tomsk_expected.len();
    tomsk_only.read_until(Duration::from_secs(15), |heard| heard.len() >= count).await;
    assert_once_in_order("Tomsk's assistant", &tomsk_only.heard);
    let heard: Vec<(String, i64)> = tomsk_only.heard.iter().map(|heard| (heard.appeal.clone(), heard.seq)).collect();
    let mut wanted = tomsk_expected.clone();
    wanted.sort_by_key(|(id, seq)| stored.iter().position(|event| &event.appeal == id && event.seq == *seq));
    assert_eq!(heard, wanted, "Tomsk's events, and only those");
    // Nothing more arrives: no duplicate trails in late.
    tomsk_only.read_until(Duration::from_millis(500), |heard| heard.len() > count).await;
    assert_eq!(tomsk_only.heard.len(), count, "no event heard twice");
    for (id, seq) in &tomsk_expected {
        assert!(tomsk_only.has(id, *seq));
    }

    // Revoked through the first replica, the assistant's socket on the second
    // closes.
    let me = post(&client, &a.address(), &assistants[0], "{ me { id } }", json!({})).await.expect("an answer");
    let id = me["data"]["me"]["id"].as_str().expect("the user's id").to_owned();
    let revoked = post(
        &client,
        &a.address(),
        &admin,
        "mutation($id: ID!) { revokeUser(id: $id) { user { id } } }",
        json!({ "id": id }),
    )
    .await
    .expect("an answer");
    assert!(revoked["errors"].is_null(), "{revoked}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut closed = None;
    while Instant::now() < deadline {
        match tomsk_only.socket.next_message(Duration::from_secs(1)).await {
            Some(message) if message["type"] == "close" => {
                closed = message["code"].as_u64();
                break;
            }
            Some(_) | None => {}
        }
    }
    assert_eq!(closed, Some(4403), "the revoked user's socket on another replica closes");
    drop((a, b, c));
}

async fn a_replica_killed_mid_load_loses_nothing_and_its_subscriber_resumes_on_another() {
    let Some(database) = ThrowawayDatabase::create(Backend::Postgres).await else { return };
    let url = database.url.clone();
    let migrated = run_command(&url, &["migrate"]);
    assert!(migrated.status.success(), "{}", describe(&migrated));
    let (a, b, mut c) = tokio::join!(
        ServerProcess::start(&url, &REPLICA_ARGS),
        ServerProcess::start(&url, &REPLICA_ARGS),
        ServerProcess::start(&url, &REPLICA_ARGS),
    );
    let intake = user(&url, "Бот приёма", "intake", None);
    let governor = user(&url, "Центр управления регионом", "governor_office", None);

    // The subscriber that will lose its replica, and one that will not.
    let mut moving = Subscriber::open(&c.address(), &governor, None).await;
    let mut staying = Subscriber::open(&a.address(), &governor, None).await;
    let client = client();
    post(&client, &b.address(), &intake, SUBMIT, json!({ "code": "tomsk", "text": "Первое обращение" }))
        .await
        .expect("an answer");
    for subscriber in [&mut moving, &mut staying] {
        assert!(
            subscriber.read_until(Duration::from_secs(10), |heard| !heard.is_empty()).await,
            "{:?}",
            subscriber.other
        );
    }

    // Four writers, each sending to the three replicas in turn; a write to the
    // killed replica fails and is simply not acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let addresses = Arc::new([a.address(), b.address(), c.address()]);
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (client, intake, stop, addresses) = (client.clone(), intake.clone(), stop.clone(), addresses.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut turn = writer;
                while !stop.load(Ordering::Relaxed) {
                    let text = format!("Обращение {writer}-{turn}: нет отопления");
                    let address = &addresses[turn % 3];
                    turn += 1;
                    let answer =
                        post(&client, address, &intake, SUBMIT, json!({ "code": "seversk", "text": text })).await;
                    if let Some(id) =
                        answer.as_ref().and_then(|answer| answer["data"]["submitAppeal"]["appeal"]["id"].as_str())
                    {
                        acknowledged.push(id.to_owned());
                    }
                }
                acknowledged
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.kill();
    // The subscriber hears whatever its replica passed on, then the socket ends.
    moving.read_until(Duration::from_secs(10), |_| false).await;
    let before_the_kill = moving.heard.len();
    let cursor = moving.cursor().expect("it heard events before the kill");
    let mut resumed = Subscriber::open(&a.address(), &governor, Some(&cursor)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("a writer"));
    }

    let stored = stored_events(&url).await;
    let stored_appeals: HashSet<&str> = stored.iter().map(|event| event.appeal.as_str()).collect();
    for id in &acknowledged {
        assert!(stored_appeals.contains(id.as_str()), "an acknowledged appeal {id} is stored");
    }
    let rest = stored.len() - before_the_kill;
    resumed.read_until(Duration::from_secs(20), |heard| heard.len() >= rest).await;
    let mut heard = moving.heard.clone();
    heard.extend(resumed.heard.iter().cloned());
    assert_once_in_order("the subscriber that moved", &heard);
    assert_eq!(heard, stored, "before the kill and after resuming, every event once, none missing");
    let count = stored.len();
    staying.read_until(Duration::from_secs(20), |heard| heard.len() >= count).await;
    assert_eq!(staying.heard, stored, "the subscriber on a surviving replica heard every event");
    assert!(acknowledged.len() > 20, "the load went on: {} appeals acknowledged", acknowledged.len());
    drop((a, b, c));
}

async fn each_reply_is_sent_once_whichever_replica_claims_it() {
    const SECRET: &str = "tg-webhook-Secret-Replicas-1";
    const TOKEN: &str = "7000000002:AAH-telegram-bot-token-Replicas";
    let Some(database) = ThrowawayDatabase::create(Backend::Postgres).await else { return };
    let url = database.url.clone();
    let fake = FakePlatforms::start().await;
    fake.accept_token(TOKEN);
    let migrated = run_command(&url, &["migrate"]);
    assert!(migrated.status.success(), "{}", describe(&migrated));
    let set = run_command(
        &url,
        &[
            "channel",
            "set",
            "--municipality",
            "tomsk",
            "--channel",
            "telegram",
            "--webhook-secret",
            SECRET,
            "--bot-token",
            TOKEN,
        ],
    );
    assert!(set.status.success(), "{}", describe(&set));
    let mut args = REPLICA_ARGS.to_vec();
    args.extend(["--telegram-api-url", &fake.url]);
    let (a, b, c) = tokio::join!(
        ServerProcess::start(&url, &args),
        ServerProcess::start(&url, &args),
        ServerProcess::start(&url, &args),
    );
    let replicas = [&a, &b, &c];
    let client = client();
    const RESIDENTS: i64 = 12;
    for resident in 0..RESIDENTS {
        let replica = replicas[(resident % 3) as usize];
        let message = telegram_message(900 + resident, 7_700 + resident, 1, "Во дворе не горят фонари");
        let answer = client
            .post(format!("{}/hooks/telegram/tomsk", replica.address()))
            .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
            .json(&message)
            .send()
            .await
            .expect("the webhook answers");
        assert!(answer.status().is_success(), "{}", answer.status());
    }
    let delivered = fake.wait_for_delivered(RESIDENTS as usize, Duration::from_secs(30)).await;
    assert_eq!(delivered.len(), RESIDENTS as usize, "every acknowledgement is delivered");
    // Three workers poll the same outbox: give a duplicate every chance to come.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let delivered = fake.delivered();
    let chats: Vec<String> = delivered.iter().map(|call| call.body["chat_id"].to_string()).collect();
    let distinct: HashSet<&String> = chats.iter().collect();
    assert_eq!(chats.len(), RESIDENTS as usize, "each reply sent once: {chats:?}");
    assert_eq!(distinct.len(), RESIDENTS as usize, "one reply to each resident");
    drop((a, b, c));
}

async fn a_subscriber_that_drops_out_during_a_burst_resumes_from_its_cursor_with_no_gap_and_no_duplicate(
    backend: Backend,
) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.disable_rate_limits();
        config.subscription_replay_limit = 30;
    })
    .await
    else {
        return;
    };
    let intake = app.token(Role::Intake, None).await;
    let governor = app.token(Role::GovernorOffice, None).await;
    let mut first = Subscriber::open(&app.address, &governor, None).await;
    app.submit(&intake, "tomsk", "Первое обращение").await;
    assert!(first.read_until(Duration::from_secs(10), |heard| !heard.is_empty()).await, "{:?}", first.other);

    // A burst of thirty appeals, eight writers at once.
    let burst = {
        let (client, address, intake) = (client(), app.address.clone(), intake.clone());
        tokio::spawn(async move {
            futures_util::future::join_all((0..8).map(|writer| {
                let (client, address, intake) = (client.clone(), address.clone(), intake.clone());
                async move {
                    for n in 0..4 {
                        let text = format!("Обращение {writer}-{n}: разбита дорога");
                        let answer =
                            post(&client, &address, &intake, SUBMIT, json!({ "code": "tomsk", "text": text })).await;
                        assert!(answer.is_some_and(|answer| answer["errors"].is_null()), "a submission in the burst");
                    }
                }
            }))
            .await
        })
    };
    // Drops out after a few events, while the burst goes on.
    first.read_until(Duration::from_secs(10), |heard| heard.len() >= 6).await;
    let cursor = first.cursor().expect("a cursor");
    drop(first.socket);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut resumed = Subscriber::open(&app.address, &governor, Some(&cursor)).await;
    burst.await.expect("the burst");
    let total = 1 + 32;
    let rest = total - first.heard.len();
    resumed.read_until(Duration::from_secs(15), |heard| heard.len() >= rest).await;
    let mut heard = first.heard.clone();
    heard.extend(resumed.heard.iter().cloned());
    assert_once_in_order("the subscriber that dropped out", &heard);
    let stored: Vec<(String, i64)> = {
        let mut stored = Vec::new();
        let mut after = 0;
        loop {
            let page = app.store.events_after(after, None, 100).await.expect("events");
            let Some(last) = page.last() else { break };
            after = last.event.position;
            stored.extend(page.iter().map(|e| (e.event.event.appeal_id.to_string(), i64::from(e.event.event.seq))));
        }
        stored
    };
    let heard_pairs: Vec<(String, i64)> = heard.iter().map(|heard| (heard.appeal.clone(), heard.seq)).collect();
    assert_eq!(heard_pairs, stored, "every event once, in commit order, across the reconnection");
    resumed.read_until(Duration::from_millis(500), |heard| heard.len() > rest).await;
    assert_eq!(resumed.heard.len(), rest, "nothing heard twice after catching up");

    // Cursors the server did not issue, from the future, or too old.
    for (after, code) in [
        ("not-a-cursor".to_owned(), "VALIDATION"),
        (encode_cursor(1_000_000), "VALIDATION"),
        (encode_cursor(0), "CURSOR_EXPIRED"),
    ] {
        let mut refused = Subscriber::open(&app.address, &governor, Some(&after)).await;
        refused.read_until(Duration::from_secs(5), |_| false).await;
        let message = refused.other.clone().unwrap_or_default();
        assert_eq!(message["payload"]["errors"][0]["extensions"]["code"], code, "after {after:?}: {message}");
    }
    // And the server still serves.
    let me = app.graphql(Some(&governor), "{ me { role } }", json!({})).await;
    assert_eq!(me["data"]["me"]["role"], "GOVERNOR_OFFICE", "{me}");
}

async fn a_replica_older_than_the_schema_refuses_to_start_naming_both_versions(backend: Backend) {
    use sea_orm::ConnectionTrait;
    let Some(database) = ThrowawayDatabase::create(backend).await else { return };
    let url = database.url.clone();
    let migrated = run_command(&url, &["migrate"]);
    assert!(migrated.status.success(), "{}", describe(&migrated));
    // As if a newer binary had migrated the database since.
    let newer = "m20991231_000099_a_later_change";
    let connection = sea_orm::Database::connect(url.as_str()).await.expect("a connection");
    connection
        .execute_unprepared(&format!("INSERT INTO seaql_migrations (version, applied_at) VALUES ('{newer}', 0)"))
        .await
        .expect("the newer version is recorded");
    let _ = connection.close().await;
    let refused = run_command_within(&url, &["serve", "--listen", "127.0.0.1:0"], Duration::from_secs(60))
        .expect("the older replica exits instead of serving");
    let said = describe(&refused);
    assert_eq!(refused.status.code(), Some(3), "the database's exit status: {said}");
    let ours = appeals_storage::database::schema_version();
    assert!(said.contains(newer) && said.contains(&ours), "both versions named: {said}");
}
