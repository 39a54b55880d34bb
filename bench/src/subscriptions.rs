//! Delivery to subscribers: many `graphql-transport-ws` connections, each
//! subscribed to every event of the region (as the governor's office watches),
//! while an intake bot submits appeals at a steady rate. An event's delivery
//! time is counted from the moment its mutation's answer arrived to the moment
//! each subscriber receives it; a delivery that beats the answer counts as zero.
//! Commit happens just before the answer is sent, so this is the time from commit
//! to delivery as closely as a client can see it. The time from sending the
//! mutation, an upper bound, is reported beside it.

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
pub async fn measure(
    base_url: &str,
    shared: &Shared,
    delivery: &Delivery,
    server: ProcessWatch,
) -> anyhow::Result<Measurement> {
    let counters = Arc::new(Counters::default());
    let (stop, stopped) = watch::channel(false);
    let ws_url = format!("{}/graphql", base_url.replacen("http", "ws", 1));
    let token = shared.region.cast.governor.token.clone();
    let gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut connecting = Vec::with_capacity(delivery.subscribers);
    for _ in 0..delivery.subscribers {
        let (ws_url, token, gate) = (ws_url.clone(), token.clone(), Arc::clone(&gate));
        let (counters, stopped) = (Arc::clone(&counters), stopped.clone());
        connecting.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await?;
            let socket = subscribe(&ws_url, &token).await?;
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
    let client = GraphqlClient::new(base_url, 1)?;
    let intake = shared.region.cast.intake.token.clone();
    let warm_up_deadline = Instant::now() + Duration::from_secs(30);
    while counters.ready.load(Ordering::Relaxed) < delivery.subscribers {
        anyhow::ensure!(Instant::now() < warm_up_deadline, "not every subscriber received the warm-up event");
        submit(&client, &intake, shared, "warm-up").await?;
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
        match submit(&client, &intake, shared, &answered.len().to_string()).await {
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
    if missing > 0 {
        first_error.get_or_insert_with(|| format!("{missing} of {expected} deliveries never arrived"));
    }
    Ok(Measurement {
        requests: delivered,
        errors: errors + missing,
        first_error,
        elapsed,
        exhausted: false,
        latency: Latency::of(latencies),
        latency_from_request: Some(Latency::of(from_request)),
        server_cpu_seconds: Some(cpu),
        answered_in_phase: delivered,
        stretched: false,
    })
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a connection, authenticates in `connection_init` as a browser must, and
/// subscribes to every event in scope.
async fn subscribe(ws_url: &str, token: &str) -> anyhow::Result<Socket> {
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
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": SUBSCRIPTION } });
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

/// Submits one appeal as the intake bot; returns its id.
async fn submit(client: &GraphqlClient, token: &str, shared: &Shared, tag: &str) -> anyhow::Result<String> {
    let input = json!({
        "municipalityCode": shared.region.municipalities[shared.focus].code,
        "channel": "VK",
        "externalId": format!("bench-{}-delivery-{tag}-{}", shared.run, uuid::Uuid::now_v7()),
        "text": texts::appeal_text(&mut rand::rng()),
    });
    let data = client.execute(token, SUBMIT, json!({ "input": input })).await?;
    Ok(data["submitAppeal"]["appeal"]["id"].as_str().context("no appeal id in the answer")?.to_owned())
}
