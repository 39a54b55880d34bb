//! Delivery to subscribers: many `graphql-transport-ws` connections, each
//! subscribed to every event of the region (as the governor's office watches),
//! while an intake bot submits appeals at a steady rate. An event's delivery
//! time is counted from the moment its mutation's answer arrived to the moment
//! each subscriber receives it; a delivery that beats the answer counts as zero.
//! Commit happens just before the answer is sent, so this is the time from commit
//! to delivery as closely as a client can see it. The time from sending the
//! mutation, an upper bound, is reported beside it.
//!
//! The mixed scenario's subscribers ([`Follower`], [`follow`]) keep every event
//! they receive by its appeal and place, so that [`tally`] can tell, for each of
//! them, which in-scope events committed during the run arrived once, twice,
//! out of order or never.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::api::{GraphqlClient, SUBMIT};
use crate::load::{Latency, Measurement};
use crate::scenario::Shared;
use crate::server::ProcessWatch;
use crate::texts;

const SUBSCRIPTION: &str = "subscription { appealEvents { appealId seq kind } }";

/// How many subscribers connect at once.
const CONNECTING_AT_ONCE: usize = 64;

/// How the delivery scenario is run.
pub struct Delivery {
    pub subscribers: usize,
    pub events_per_second: f64,
    pub duration: Duration,
}

/// Counts shared by the subscribers: how many have received anything (the
/// warm-up event), and how many events were delivered in all.
#[derive(Default)]
struct Counters {
    ready: AtomicUsize,
    delivered: AtomicU64,
}

/// What one subscriber received: each event's appeal id and when it arrived.
type Received = Vec<(String, Instant)>;

/// Connects the subscribers, submits appeals for `duration`, and measures every
/// delivery. `requests` in the result counts deliveries; `errors` counts failed
/// submissions and deliveries that never arrived.
///
/// With several replicas, the subscribers are spread over them round-robin and
/// the intake bot submits through each in turn.
pub async fn measure(
    base_urls: &[String],
    shared: &Shared,
    delivery: &Delivery,
    server: ProcessWatch,
) -> anyhow::Result<Measurement> {
    let counters = Arc::new(Counters::default());
    let (stop, stopped) = watch::channel(false);
    let token = shared.region.cast.governor.token.clone();
    let gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut connecting = Vec::with_capacity(delivery.subscribers);
    for index in 0..delivery.subscribers {
        let ws_url = websocket_url(&base_urls[index % base_urls.len()]);
        let (token, gate) = (token.clone(), Arc::clone(&gate));
        let (counters, stopped) = (Arc::clone(&counters), stopped.clone());
        connecting.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await?;
            let socket = subscribe(&ws_url, &token, SUBSCRIPTION, json!({})).await?;
            drop(permit);
            Ok::<_, anyhow::Error>(tokio::spawn(listen(socket, counters, stopped)))
        }));
    }
    let mut listeners = Vec::with_capacity(connecting.len());
    for task in connecting {
        listeners.push(task.await.context("a subscriber panicked")??);
    }

    // Subscriptions are not acknowledged: an event that every subscriber
    // receives shows they are all listening.
    let clients =
        base_urls.iter().map(|base_url| GraphqlClient::new(base_url, 1)).collect::<anyhow::Result<Vec<_>>>()?;
    let intake = shared.region.cast.intake.token.clone();
    let warm_up_deadline = Instant::now() + Duration::from_secs(30);
    while counters.ready.load(Ordering::Relaxed) < delivery.subscribers {
        anyhow::ensure!(Instant::now() < warm_up_deadline, "not every subscriber received the warm-up event");
        for client in &clients {
            submit(client, &intake, shared, shared.focus, "warm-up").await?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Each submitted appeal's id: when its mutation was sent and answered.
    let mut answered: HashMap<String, (Instant, Instant)> = HashMap::new();
    let mut errors = 0u64;
    let mut first_error = None;
    let delivered_before = counters.delivered.load(Ordering::Relaxed);
    let cpu_before = server.usage()?.cpu_seconds;
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / delivery.events_per_second.max(0.1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while started.elapsed() < delivery.duration {
        ticks.tick().await;
        let sent_at = Instant::now();
        let client = &clients[answered.len() % clients.len()];
        match submit(client, &intake, shared, shared.focus, &answered.len().to_string()).await {
            Ok(id) => {
                answered.insert(id, (sent_at, Instant::now()));
            }
            Err(error) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{error:#}"));
            }
        }
    }
    let elapsed = started.elapsed();
    let cpu = server.usage()?.cpu_seconds - cpu_before;

    // Give stragglers a moment, then stop listening.
    let expected = answered.len() as u64 * delivery.subscribers as u64;
    let grace = Instant::now() + Duration::from_secs(5);
    while counters.delivered.load(Ordering::Relaxed) < delivered_before + expected && Instant::now() < grace {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);

    let mut latencies = Vec::with_capacity(expected as usize);
    let mut from_request = Vec::with_capacity(expected as usize);
    for listener in listeners {
        let received = listener.await.context("a subscriber panicked")?;
        match received {
            Ok(received) => {
                for (id, at) in received {
                    if let Some((sent_at, answered_at)) = answered.get(&id) {
                        latencies.push(at.saturating_duration_since(*answered_at));
                        from_request.push(at.saturating_duration_since(*sent_at));
                    }
                }
            }
            Err(error) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{error:#}"));
            }
        }
    }
    let delivered = latencies.len() as u64;
    let missing = expected.saturating_sub(delivered);
    // As in the mixed scenario: with several replicas, the events committed
    // through another replica arrive only once the server relays them, which
    // comes with `appealEvents(after:)`.
    let losses_are_errors =
        clients.len() == 1 || capabilities(&clients[0], &shared.region.cast.governor.token).await.after;
    if missing > 0 {
        let counted = if losses_are_errors { "" } else { " (not counted as errors: no relay between replicas yet)" };
        first_error.get_or_insert_with(|| format!("{missing} of {expected} deliveries never arrived{counted}"));
    }
    Ok(Measurement {
        requests: delivered,
        errors: errors + if losses_are_errors { missing } else { 0 },
        first_error,
        elapsed,
        exhausted: false,
        latency: Latency::of(latencies),
        latency_from_request: Some(Latency::of(from_request)),
        server_cpu_seconds: Some(cpu),
        answered_in_phase: delivered,
        stretched: false,
        kinds: Vec::new(),
    })
}

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The WebSocket address of the GraphQL endpoint at `base_url`.
pub fn websocket_url(base_url: &str) -> String {
    format!("{}/graphql", base_url.replacen("http", "ws", 1))
}

/// Opens a connection, authenticates in `connection_init` as a browser must, and
/// subscribes with `query`: every event in scope.
async fn subscribe(ws_url: &str, token: &str, query: &str, variables: Value) -> anyhow::Result<Socket> {
    let mut request = ws_url.into_client_request()?;
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    socket.send(Message::text(init.to_string())).await?;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .context("no connection_ack in 30 s")?
            .context("the server closed the connection")??;
        if let Message::Text(text) = message {
            let message: Value = serde_json::from_str(&text)?;
            anyhow::ensure!(message["type"] == "connection_ack", "refused: {message}");
            break;
        }
    }
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } });
    socket.send(Message::text(subscribe.to_string())).await?;
    Ok(socket)
}

/// Records every event until told to stop.
async fn listen(
    mut socket: Socket,
    counters: Arc<Counters>,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<Received> {
    let mut received = Received::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            message = socket.next() => {
                let arrived = Instant::now();
                match message {
                    Some(Ok(Message::Text(text))) => {
                        let message: Value = serde_json::from_str(&text)?;
                        match message["type"].as_str() {
                            Some("next") => {
                                let event = &message["payload"]["data"]["appealEvents"];
                                let id = event["appealId"].as_str().context("an event without its appeal")?;
                                if received.is_empty() {
                                    counters.ready.fetch_add(1, Ordering::Relaxed);
                                }
                                counters.delivered.fetch_add(1, Ordering::Relaxed);
                                received.push((id.to_owned(), arrived));
                            }
                            Some("ping") => socket.send(Message::text(json!({ "type": "pong" }).to_string())).await?,
                            _ => anyhow::bail!("the subscription ended: {message}"),
                        }
                    }
                    Some(Ok(Message::Close(frame))) => anyhow::bail!("the server closed the subscription: {frame:?}"),
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(error.into()),
                    None => anyhow::bail!("the connection ended"),
                }
            }
        }
    }
    let _ = socket.close(None).await;
    Ok(received)
}

/// Submits one appeal to `municipality` as the intake bot; returns its id.
pub async fn submit(
    client: &GraphqlClient,
    token: &str,
    shared: &Shared,
    municipality: usize,
    tag: &str,
) -> anyhow::Result<String> {
    let input = json!({
        "municipalityCode": shared.region.municipalities[municipality].code,
        "channel": "VK",
        "externalId": format!("bench-{}-delivery-{tag}-{}", shared.run, uuid::Uuid::now_v7()),
        "text": texts::appeal_text(&mut rand::rng()),
    });
    let data = client.execute(token, SUBMIT, json!({ "input": input })).await?;
    Ok(data["submitAppeal"]["appeal"]["id"].as_str().context("no appeal id in the answer")?.to_owned())
}

/// What the server's `appealEvents` offers beyond the events themselves, read
/// from its schema: `AppealEvent.cursor`, and the `after` argument that replays
/// what a reconnecting subscriber missed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Capabilities {
    pub cursor: bool,
    pub after: bool,
}

const CAPABILITIES: &str = "{ event: __type(name: \"AppealEvent\") { fields { name } } \
    subscription: __type(name: \"Subscription\") { fields { name args { name } } } }";

/// Asks the server's schema what its subscriptions offer; a server that does not
/// answer introspection offers nothing more.
pub async fn capabilities(client: &GraphqlClient, token: &str) -> Capabilities {
    let Ok(schema) = client.execute(token, CAPABILITIES, json!({})).await else { return Capabilities::default() };
    let names = |fields: &Value| -> Vec<String> {
        fields.as_array().into_iter().flatten().filter_map(|field| field["name"].as_str().map(str::to_owned)).collect()
    };
    let cursor = names(&schema["event"]["fields"]).iter().any(|name| name == "cursor");
    let after = schema["subscription"]["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|field| field["name"] == "appealEvents")
        .any(|field| names(&field["args"]).iter().any(|name| name == "after"));
    Capabilities { cursor, after: cursor && after }
}

/// One subscriber of the mixed scenario: which replica it talks to, as whom,
/// and what it must therefore receive.
#[derive(Clone)]
pub struct Follower {
    /// Every replica's WebSocket address.
    pub urls: Arc<[String]>,
    pub replica: usize,
    pub token: String,
    /// `None`: every event of the region (the governor's office); `Some(m)`:
    /// those of municipality `m` (its head, whose scope it is).
    pub scope: Option<usize>,
    /// How long after the measured time starts to drop the connection and come
    /// back on the next replica with `after`, when the server offers it.
    pub reconnect_after: Option<Duration>,
    pub capabilities: Capabilities,
}

/// Where the followers are in the run, sent to all of them at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Connecting, and the warm-up events.
    Warming,
    /// The measured time, from this instant.
    Measuring(Instant),
    Stopped,
}

/// The most events one subscriber keeps track of; past it, events are counted
/// as overflowed and not checked.
pub const MOST_TRACKED_PER_SUBSCRIBER: usize = 200_000;

/// One event as a subscriber received it.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// How many times it arrived: 1 when all is well.
    pub copies: u32,
    /// Its place among the subscriber's events (1, 2, 3…), for the order check.
    pub ordinal: u32,
    /// When it first arrived.
    pub arrived: Instant,
    /// From the event's `at` to its first arrival, by the wall clock.
    pub since_event: Option<Duration>,
}

/// An event by its appeal (as a number, [`id_key`]) and its place in the
/// appeal's history.
pub type EventKey = (u128, i64);

/// Every event a subscriber received.
#[derive(Debug, Default)]
pub struct Arrivals {
    pub events: HashMap<EventKey, Arrival>,
    pub overflowed: u64,
    next_ordinal: u32,
}

impl Arrivals {
    /// Records one arrival of event `id`; returns whether it was the first.
    pub fn record(&mut self, id: EventKey, arrived: Instant, since_event: Option<Duration>) -> bool {
        self.next_ordinal += 1;
        if let Some(known) = self.events.get_mut(&id) {
            known.copies += 1;
            return false;
        }
        if self.events.len() >= MOST_TRACKED_PER_SUBSCRIBER {
            self.overflowed += 1;
            return false;
        }
        self.events.insert(id, Arrival { copies: 1, ordinal: self.next_ordinal, arrived, since_event });
        true
    }
}

/// What a follower received, and why it stopped early if it did.
pub struct Followed {
    pub scope: Option<usize>,
    pub arrivals: Arrivals,
    pub reconnected: bool,
    pub error: Option<String>,
}

/// The selection of the mixed scenario's subscription: the event's id and time,
/// and its cursor where the server offers one.
fn follow_query(capabilities: Capabilities) -> &'static str {
    if capabilities.after {
        "subscription Follow($after: String) { appealEvents(after: $after) { appealId seq at cursor } }"
    } else if capabilities.cursor {
        "subscription Follow { appealEvents { appealId seq at cursor } }"
    } else {
        "subscription Follow { appealEvents { appealId seq at } }"
    }
}

/// Connects a follower (at most [`CONNECTING_AT_ONCE`] connect at a time).
pub async fn connect(follower: &Follower, gate: &Semaphore) -> anyhow::Result<Socket> {
    let _permit = gate.acquire().await?;
    subscribe(&follower.urls[follower.replica], &follower.token, follow_query(follower.capabilities), json!({})).await
}

/// Records every event `socket` delivers until the stage is [`Stage::Stopped`];
/// at its planned moment, drops the connection and subscribes again on the next
/// replica with `after` set to the last cursor it saw.
pub async fn follow(
    follower: Follower,
    mut socket: Socket,
    counters: Arc<FollowCounters>,
    mut stage: watch::Receiver<Stage>,
) -> Followed {
    let mut arrivals = Arrivals::default();
    let mut last_cursor: Option<String> = None;
    let mut reconnect_at: Option<Instant> = None;
    let mut reconnected = false;
    let mut stage_open = true;
    let error = loop {
        if let (None, Some(after), Stage::Measuring(from)) =
            (reconnect_at, follower.reconnect_after.filter(|_| !reconnected), *stage.borrow())
        {
            reconnect_at = Some(from + after);
        }
        let reconnect = async {
            match reconnect_at {
                Some(at) if !reconnected => tokio::time::sleep_until(at.into()).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = stage.changed(), if stage_open => {
                stage_open = changed.is_ok();
                if !stage_open || *stage.borrow() == Stage::Stopped {
                    break None;
                }
            }
            () = reconnect => {
                reconnected = true;
                counters.reconnected.fetch_add(1, Ordering::Relaxed);
                let _ = socket.close(None).await;
                let replica = (follower.replica + 1) % follower.urls.len();
                let variables = json!({ "after": last_cursor });
                let query = follow_query(follower.capabilities);
                match subscribe(&follower.urls[replica], &follower.token, query, variables).await {
                    Ok(again) => socket = again,
                    Err(error) => break Some(format!("reconnecting: {error:#}")),
                }
            }
            message = socket.next() => {
                let arrived = Instant::now();
                match message {
                    Some(Ok(Message::Text(text))) => {
                        let message: Value = match serde_json::from_str(&text) {
                            Ok(message) => message,
                            Err(error) => break Some(format!("an unreadable message: {error}")),
                        };
                        match message["type"].as_str() {
                            Some("next") => {
                                let event = &message["payload"]["data"]["appealEvents"];
                                let (Some(appeal), Some(seq)) = (event["appealId"].as_str(), event["seq"].as_i64()) else {
                                    break Some(format!("an event without its appeal and place: {message}"));
                                };
                                let id = (id_key(appeal), seq);
                                let since_event = event["at"]
                                    .as_str()
                                    .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                                    .and_then(|at| (chrono::Utc::now() - at.to_utc()).to_std().ok());
                                if let Some(cursor) = event["cursor"].as_str() {
                                    last_cursor = Some(cursor.to_owned());
                                }
                                if arrivals.events.is_empty() && arrivals.overflowed == 0 {
                                    counters.ready.fetch_add(1, Ordering::Relaxed);
                                }
                                counters.delivered.fetch_add(1, Ordering::Relaxed);
                                arrivals.record(id, arrived, since_event);
                            }
                            Some("ping") => {
                                if let Err(error) = socket.send(Message::text(json!({ "type": "pong" }).to_string())).await {
                                    break Some(format!("answering a ping: {error}"));
                                }
                            }
                            _ => break Some(format!("the subscription ended: {message}")),
                        }
                    }
                    Some(Ok(Message::Close(frame))) => break Some(format!("the server closed the subscription: {frame:?}")),
                    Some(Ok(_)) => {}
                    Some(Err(error)) => break Some(format!("{error}")),
                    None => break Some("the connection ended".to_owned()),
                }
            }
        }
    };
    let _ = socket.close(None).await;
    Followed { scope: follower.scope, arrivals, reconnected, error }
}

/// Counts shared by the followers while they run.
#[derive(Default)]
pub struct FollowCounters {
    /// Followers that have received at least one event.
    pub ready: AtomicUsize,
    /// Deliveries, all followers together.
    pub delivered: AtomicU64,
    pub reconnected: AtomicUsize,
}

/// An id as a number: the UUID's, or a hash of another kind of id.
pub fn id_key(id: &str) -> u128 {
    match uuid::Uuid::parse_str(id) {
        Ok(uuid) => uuid.as_u128(),
        Err(_) => {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            id.hash(&mut hasher);
            u128::from(hasher.finish())
        }
    }
}

/// An event a writer committed during the measured run, as its answer told.
#[derive(Debug, Clone, Copy)]
pub struct Committed {
    pub appeal: u128,
    pub seq: i64,
    /// An index into the region's municipalities.
    pub municipality: usize,
    /// When the writer had the answer: the commit, as closely as a client sees it.
    pub answered_at: Instant,
}

/// Whether every follower received every in-scope committed event exactly
/// once, and how long each took.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryTally {
    pub subscribers: usize,
    /// Events the writers committed and recorded.
    pub committed: u64,
    /// Deliveries owed: each follower times the committed events in its scope.
    pub expected: u64,
    /// Owed deliveries that arrived exactly once.
    pub once: u64,
    /// Owed deliveries that arrived more than once (each counted once here).
    pub duplicated: u64,
    /// The extra copies of those.
    pub extra_copies: u64,
    /// Owed deliveries that never arrived.
    pub missing: u64,
    /// Events of one appeal that arrived at a follower out of their order.
    pub out_of_order: u64,
    /// Events in scope that arrived but were not among those recorded as
    /// committed in the run: the warm-up's, or a write whose answer was lost.
    pub other: u64,
    /// Events a follower received outside its scope.
    pub out_of_scope: u64,
    /// Events a follower could not keep track of ([`MOST_TRACKED_PER_SUBSCRIBER`]).
    pub overflowed: u64,
    /// Followers whose connection failed before the end.
    pub failed: u64,
    /// Followers that reconnected with `after` during the run.
    pub reconnected: u64,
}

/// Delivery latencies of the owed deliveries that arrived, from the writer's
/// answer (zero when the event beat it) and from the event's `at`.
#[derive(Debug, Default)]
pub struct DeliveryTimes {
    pub from_answer: Vec<Duration>,
    pub from_event: Vec<Duration>,
}

/// Checks each follower's arrivals against what was committed in its scope.
pub fn tally(committed: &HashMap<EventKey, Committed>, followed: &[Followed]) -> (DeliveryTally, DeliveryTimes) {
    let mut tally =
        DeliveryTally { subscribers: followed.len(), committed: committed.len() as u64, ..DeliveryTally::default() };
    let mut times = DeliveryTimes::default();
    let mut owed_by_scope: HashMap<Option<usize>, u64> = HashMap::new();
    for event in committed.values() {
        *owed_by_scope.entry(None).or_default() += 1;
        *owed_by_scope.entry(Some(event.municipality)).or_default() += 1;
    }
    for follower in followed {
        let in_scope = |municipality: usize| follower.scope.is_none_or(|only| only == municipality);
        tally.expected += owed_by_scope.get(&follower.scope).copied().unwrap_or_default();
        tally.overflowed += follower.arrivals.overflowed;
        tally.failed += u64::from(follower.error.is_some());
        tally.reconnected += u64::from(follower.reconnected);
        let mut received_here = 0;
        // (appeal, seq, ordinal) of each owed event that arrived, for the order check.
        let mut order: Vec<(u128, i64, u32)> = Vec::new();
        for (id, arrival) in &follower.arrivals.events {
            let Some(event) = committed.get(id) else {
                tally.other += 1;
                continue;
            };
            if !in_scope(event.municipality) {
                tally.out_of_scope += 1;
                continue;
            }
            received_here += 1;
            if arrival.copies == 1 {
                tally.once += 1;
            } else {
                tally.duplicated += 1;
                tally.extra_copies += u64::from(arrival.copies - 1);
            }
            times.from_answer.push(arrival.arrived.saturating_duration_since(event.answered_at));
            if let Some(since_event) = arrival.since_event {
                times.from_event.push(since_event);
            }
            order.push((event.appeal, event.seq, arrival.ordinal));
        }
        tally.missing += owed_by_scope.get(&follower.scope).copied().unwrap_or_default().saturating_sub(received_here);
        order.sort_unstable();
        tally.out_of_order +=
            order.windows(2).filter(|pair| pair[0].0 == pair[1].0 && pair[0].2 > pair[1].2).count() as u64;
    }
    (tally, times)
}
