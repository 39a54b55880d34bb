//! The mixed load: everything the service does at once, spread over the
//! replicas. For the measured time, at the same moment:
//! - **intake**: the bot submits appeals (`submitAppeal`), and
//! - **transitions**: heads triage, mark seen and resolve unread appeals, each
//!   with `expectedVersion`; together a fixed rate of events
//!   (`--events-per-second`, half each), paced rather than as fast as answered;
//! - **lists** (`appeals` with filters and `totalCount`) and **dashboards**, by
//!   `--concurrency` closed-loop clients;
//! - **subscribers** (`appealEvents` over `graphql-transport-ws`), half of them
//!   the governor's office (every event of the region), half heads (their
//!   municipality's), each checked for every in-scope event committed by the
//!   writers during the run, exactly once, in order per appeal.
//!
//! Every client, writer, reader or subscriber, keeps to one replica, round-robin.
//! With several replicas, a subscriber receives the events committed through
//! other replicas only where the server relays them (PostgreSQL LISTEN/NOTIFY).
//! Where the server offers `appealEvents(after:)`, one subscriber in
//! [`RECONNECT_ONE_IN`] drops its connection once during the run and comes back
//! on the next replica with the last cursor it saw, and must still miss nothing.
//!
//! The readers of the `lists` scenario ([`Reader`]) are the same, with the word
//! search added.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use crate::api::{GraphqlClient, PAGE};
use crate::load::{self, Latency, Measurement, Sent, Worker};
use crate::region::{UnreadAppeal, pick_weighted};
use crate::scenario::{FOCUS_MUNICIPALITY, Shared, UnreadQueue, take_unread};
use crate::server::ProcessWatch;
use crate::subscriptions::{
    self, Capabilities, Committed, DeliveryTally, EventKey, FollowCounters, Followed, Follower, Stage, id_key,
};
use crate::texts;

const SUBMIT: &str = "mutation Submit($input: SubmitAppealInput!) { \
    submitAppeal(input: $input) { appeal { id version } } }";

const TRIAGE: &str = "mutation Triage($id: ID!, $version: Int!) { \
    triageAppeal(id: $id, expectedVersion: $version, input: { priority: HIGH }) { \
    appeal { id version } event { seq } } }";

const MARK_SEEN: &str = "mutation MarkSeen($id: ID!, $version: Int!) { \
    markSeen(id: $id, expectedVersion: $version) { appeal { id version } event { seq } } }";

const RESOLVE: &str = "mutation Resolve($id: ID!, $version: Int!, $response: String!) { \
    resolveAppeal(id: $id, expectedVersion: $version, input: { outcome: EXPLAINED, response: $response }) { \
    appeal { id version } event { seq } } }";

const LIST: &str = "query List($first: Int, $filter: AppealFilter) { \
    appeals(first: $first, filter: $filter) { totalCount \
    edges { cursor node { id number status priority receivedAt dueAt overdue text municipality { code name } } } \
    pageInfo { hasNextPage endCursor } } }";

const DASHBOARD: &str = "query Dashboard($code: String) { dashboard(municipalityCode: $code) { \
    total received seen resolved overdue seenOverdue \
    municipalities { municipality { code name } total received seen resolved overdue seenOverdue \
    medianHoursToSeen medianHoursToResolve } } }";

/// Writers of each kind: a multiple of 1, 2 and 3 replicas, so that each
/// replica gets the same share of the writes.
pub const WRITERS_PER_KIND: usize = 6;

/// One subscriber in this many reconnects with `after` during the run, where
/// the server offers it.
pub const RECONNECT_ONE_IN: usize = 10;

/// The most committed events recorded for the check; past it, writes go on
/// but are not checked.
pub const MOST_RECORDED: usize = 1_000_000;

/// How long the subscribers have to show they are listening.
const WARM_UP_LIMIT: Duration = Duration::from_secs(60);

/// After the writers stop, how long the deliveries may go quiet before the
/// subscribers are stopped, and the longest wait for them.
const QUIET: Duration = Duration::from_secs(1);
const STRAGGLERS_LIMIT: Duration = Duration::from_secs(10);

/// The kinds of request, in the order of the report.
pub const KINDS: &[&str] = &["intake", "transitions", "lists", "search", "dashboards"];

/// How the mixed scenario is run.
pub struct Mix {
    pub subscribers: usize,
    pub events_per_second: f64,
    pub readers: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// What the mixed scenario measured.
pub struct Mixed {
    /// Every request, with each kind's share in `kinds`.
    pub requests: Measurement,
    pub delivery: DeliveryReport,
}

/// The subscribers' side of the mixed scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryReport {
    pub replicas: usize,
    /// Subscribers to the whole region (the governor's office).
    pub region_subscribers: usize,
    /// Subscribers to one municipality (its head).
    pub municipality_subscribers: usize,
    /// The writers' rate asked for: events per second, half intake, half transitions.
    pub events_per_second: f64,
    pub capabilities: Capabilities,
    pub tally: DeliveryTally,
    /// From the writer's answer to the arrival.
    pub from_answer_ms: Latency,
    /// From the event's `at` to the arrival.
    pub from_event_ms: Latency,
    /// From the start of the writes to the last delivery waited for.
    pub seconds: f64,
    /// The servers' CPU time over the whole scenario, warm-up included.
    pub server_cpu_seconds: f64,
    /// Whether missing, extra or unordered deliveries fail the run: with one
    /// replica always; with several only once the server offers `after` (the
    /// spec's several-replica delivery, which comes with it).
    pub losses_are_errors: bool,
}

/// Runs the mixed scenario against `base_urls` (one per replica).
pub async fn measure(
    base_urls: &[String],
    shared: &Arc<Shared>,
    mix: &Mix,
    watch: ProcessWatch,
) -> anyhow::Result<Mixed> {
    let replicas = base_urls.len();
    let clients = base_urls
        .iter()
        .map(|url| GraphqlClient::new(url, mix.readers.div_ceil(replicas) + 2 * WRITERS_PER_KIND))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cast = &shared.region.cast;
    let capabilities = subscriptions::capabilities(&clients[0], &cast.governor.token).await;
    let cpu_before = watch.usage()?.cpu_seconds;

    // The subscribers: even ones the governor's office, odd ones a head each.
    let urls: Arc<[String]> = base_urls.iter().map(|url| subscriptions::websocket_url(url)).collect();
    let municipalities = shared.region.municipalities.len();
    let mut rng = StdRng::seed_from_u64(7);
    let followers: Vec<Follower> = (0..mix.subscribers)
        .map(|index| {
            let scope = (index % 2 == 1).then_some((index / 2) % municipalities);
            let token = scope.map_or(&cast.governor.token, |municipality| &cast.heads[municipality].token).clone();
            let reconnect_after = (capabilities.after && index % RECONNECT_ONE_IN == RECONNECT_ONE_IN - 1)
                .then(|| mix.duration.mul_f64(rng.random_range(0.1..0.9)));
            Follower { urls: Arc::clone(&urls), replica: index % replicas, token, scope, reconnect_after, capabilities }
        })
        .collect();
    let counters = Arc::new(FollowCounters::default());
    let (stage, staged) = watch::channel(Stage::Warming);
    let gate = Arc::new(Semaphore::new(64));
    let mut connecting = Vec::with_capacity(followers.len());
    for follower in &followers {
        let (follower, gate) = (follower.clone(), Arc::clone(&gate));
        let (counters, staged) = (Arc::clone(&counters), staged.clone());
        connecting.push(tokio::spawn(async move {
            let socket = subscriptions::connect(&follower, &gate).await?;
            anyhow::Ok(tokio::spawn(subscriptions::follow(follower, socket, counters, staged)))
        }));
    }
    let mut listening = Vec::with_capacity(connecting.len());
    for task in connecting {
        listening.push(task.await.context("a subscriber panicked")?.context("connecting a subscriber")?);
    }

    // Subscriptions are not acknowledged: an event that every subscriber receives
    // shows that it listens. Each replica gets an appeal in each municipality its
    // subscribers watch, so that this holds without relaying between replicas.
    let mut watched: Vec<(usize, usize)> =
        followers.iter().map(|follower| (follower.replica, follower.scope.unwrap_or(shared.focus))).collect();
    watched.sort_unstable();
    watched.dedup();
    let intake = &cast.intake.token;
    let warm_up_until = Instant::now() + WARM_UP_LIMIT;
    while counters.ready.load(std::sync::atomic::Ordering::Relaxed) < mix.subscribers {
        anyhow::ensure!(
            Instant::now() < warm_up_until,
            "only {} of {} subscribers received a warm-up event",
            counters.ready.load(std::sync::atomic::Ordering::Relaxed),
            mix.subscribers
        );
        for &(replica, municipality) in &watched {
            subscriptions::submit(&clients[replica], intake, shared, municipality, "warm-up").await?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The writers and the readers, all at once.
    let registry = Arc::new(Registry::default());
    let unread = shared.take_unread();
    let rate_per_writer = mix.events_per_second / 2.0 / WRITERS_PER_KIND as f64;
    let period = Duration::from_secs_f64(1.0 / rate_per_writer);
    let mut workers = Vec::with_capacity(2 * WRITERS_PER_KIND + mix.readers);
    for index in 0..WRITERS_PER_KIND {
        // Staggered, so that the writes are spread over each period.
        let offset = period.mul_f64(index as f64 / WRITERS_PER_KIND as f64);
        for (offset, job) in [(offset, Job::Intake), (offset + period / 2, Job::Transitions(None))] {
            workers.push(MixedWorker::Writer(Writer {
                client: clients[index % replicas].clone(),
                shared: Arc::clone(shared),
                registry: Arc::clone(&registry),
                unread: Arc::clone(&unread),
                rng: StdRng::seed_from_u64(100 + workers.len() as u64),
                pace: tokio::time::interval_at((Instant::now() + offset).into(), period),
                job,
                sent: 0,
                index: workers.len(),
            }));
        }
    }
    for index in 0..mix.readers {
        let reader = Reader::new(Arc::clone(shared), clients[index % replicas].clone(), index, ReadMix::Mixed);
        workers.push(MixedWorker::Reader(reader));
    }
    for worker in &mut workers {
        if let MixedWorker::Writer(writer) = worker {
            writer.pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
    }
    let started = Instant::now();
    let _ = stage.send(Stage::Measuring(started));
    let mut requests = load::drive(workers, mix.warmup, mix.duration, Some(watch.clone())).await;
    requests.kinds.sort_by_key(|(kind, _)| KINDS.iter().position(|known| known == kind));

    // Let the last deliveries arrive: until none has come for a moment.
    let writes_ended = Instant::now();
    let mut last_count = counters.delivered.load(std::sync::atomic::Ordering::Relaxed);
    let mut last_change = Instant::now();
    while last_change.elapsed() < QUIET && writes_ended.elapsed() < STRAGGLERS_LIMIT {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let count = counters.delivered.load(std::sync::atomic::Ordering::Relaxed);
        if count != last_count {
            (last_count, last_change) = (count, Instant::now());
        }
    }
    let seconds = last_change.saturating_duration_since(started).as_secs_f64();
    let _ = stage.send(Stage::Stopped);
    let mut followed: Vec<Followed> = Vec::with_capacity(listening.len());
    for task in listening {
        followed.push(task.await.context("a subscriber panicked")?);
    }
    let server_cpu_seconds = watch.usage()?.cpu_seconds - cpu_before;

    let committed = registry.committed.lock().map(|committed| committed.clone()).unwrap_or_default();
    let (mut tally, times) = subscriptions::tally(&committed, &followed);
    tally.overflowed += registry.overflowed.load(std::sync::atomic::Ordering::Relaxed);
    if let Some(error) = followed.iter().find_map(|followed| followed.error.as_ref()) {
        eprintln!("  a subscriber stopped early: {error}");
    }
    let delivery = DeliveryReport {
        replicas,
        region_subscribers: followers.iter().filter(|follower| follower.scope.is_none()).count(),
        municipality_subscribers: followers.iter().filter(|follower| follower.scope.is_some()).count(),
        events_per_second: mix.events_per_second,
        capabilities,
        tally,
        from_answer_ms: Latency::of(times.from_answer),
        from_event_ms: Latency::of(times.from_event),
        seconds,
        server_cpu_seconds,
        losses_are_errors: replicas == 1 || capabilities.after,
    };
    Ok(Mixed { requests, delivery })
}

/// The events the writers committed, by id.
#[derive(Default)]
struct Registry {
    committed: Mutex<HashMap<EventKey, Committed>>,
    overflowed: std::sync::atomic::AtomicU64,
}

impl Registry {
    /// Records the event of a command's answer: `payload` holds `appeal` and
    /// `event`, or only the `appeal` of a submission, whose event is the first.
    fn record(&self, payload: &Value, municipality: usize, answered_at: Instant) -> anyhow::Result<()> {
        let appeal = payload["appeal"]["id"].as_str().context("no appeal id in the answer")?;
        let seq = match payload.get("event") {
            Some(event) => event["seq"].as_i64().context("no event seq in the answer")?,
            None => 1,
        };
        let event = Committed { appeal: id_key(appeal), seq, municipality, answered_at };
        let mut committed = self.committed.lock().map_err(|_| anyhow::anyhow!("the registry is poisoned"))?;
        if committed.len() < MOST_RECORDED {
            committed.insert((event.appeal, seq), event);
        } else {
            self.overflowed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }
}

/// A writer or a reader of the mixed load.
enum MixedWorker {
    Writer(Writer),
    Reader(Reader),
}

impl Worker for MixedWorker {
    async fn request(&mut self) -> anyhow::Result<Sent> {
        match self {
            MixedWorker::Writer(writer) => writer.write().await,
            MixedWorker::Reader(reader) => reader.read().await,
        }
    }

    fn kind(&self) -> Option<&'static str> {
        match self {
            MixedWorker::Writer(writer) => Some(match writer.job {
                Job::Intake => "intake",
                Job::Transitions(_) => "transitions",
            }),
            MixedWorker::Reader(reader) => Some(reader.kind),
        }
    }

    async fn pace(&mut self) {
        if let MixedWorker::Writer(writer) = self {
            writer.pace.tick().await;
        }
    }
}

/// What a writer does.
enum Job {
    Intake,
    /// The appeal being worked through (triage, markSeen, resolve) and what was
    /// done to it last.
    Transitions(Option<(UnreadAppeal, Step)>),
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Triaged,
    Seen,
}

/// Sends writes at its pace and records the events they commit.
struct Writer {
    client: GraphqlClient,
    shared: Arc<Shared>,
    registry: Arc<Registry>,
    unread: UnreadQueue,
    rng: StdRng,
    pace: tokio::time::Interval,
    job: Job,
    sent: u64,
    index: usize,
}

impl Writer {
    async fn write(&mut self) -> anyhow::Result<Sent> {
        self.sent += 1;
        match &mut self.job {
            Job::Intake => {
                let region = &self.shared.region;
                let municipality = pick_weighted(&mut self.rng, &region.shares);
                let input = json!({
                    "municipalityCode": region.municipalities[municipality].code,
                    "channel": "TELEGRAM",
                    "externalId": format!("bench-{}-mixed-{}-{}", self.shared.run, self.index, self.sent),
                    "authorName": texts::author_name(&mut self.rng),
                    "text": texts::appeal_text(&mut self.rng),
                });
                let data = self.client.execute(&region.cast.intake.token, SUBMIT, json!({ "input": input })).await?;
                let answered_at = Instant::now();
                let payload = &data["submitAppeal"];
                self.registry.record(payload, municipality, answered_at)?;
                // The new appeal is there for the transitions writers, so that
                // they never run out however long the run.
                let id = payload["appeal"]["id"].as_str().context("no appeal id in the answer")?.parse()?;
                let version = payload["appeal"]["version"].as_i64().context("no version in the answer")? as i32;
                if let Ok(mut unread) = self.unread.lock() {
                    unread.push(UnreadAppeal { id, municipality, version });
                }
                Ok(Sent::Answered)
            }
            Job::Transitions(current) => {
                let (appeal, done) = match current.take() {
                    Some((appeal, step)) => (appeal, Some(step)),
                    None => match take_unread(&self.unread) {
                        Some(appeal) => (appeal, None),
                        // Nothing sent: this turn waits for the intake writers.
                        None => return Ok(Sent::Beside),
                    },
                };
                let mut variables = json!({ "id": appeal.id.to_string(), "version": appeal.version });
                let (query, field, next) = match done {
                    None => (TRIAGE, "triageAppeal", Some(Step::Triaged)),
                    Some(Step::Triaged) => (MARK_SEEN, "markSeen", Some(Step::Seen)),
                    Some(Step::Seen) => {
                        variables["response"] = json!(texts::response(&mut self.rng));
                        (RESOLVE, "resolveAppeal", None)
                    }
                };
                let head = &self.shared.region.cast.heads[appeal.municipality].token;
                let data = self.client.execute(head, query, variables).await?;
                let answered_at = Instant::now();
                self.registry.record(&data[field], appeal.municipality, answered_at)?;
                let version = data[field]["appeal"]["version"].as_i64().context("no version in the answer")? as i32;
                *current = next.map(|step| (UnreadAppeal { version, ..appeal }, step));
                Ok(Sent::Answered)
            }
        }
    }
}

/// Which reads a [`Reader`] draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMix {
    /// Lists 3 in 4, dashboards 1 in 4: the mixed load's readers.
    Mixed,
    /// Lists half the time, the word search and dashboards a quarter each: the
    /// `lists` scenario, as a standby would serve it.
    WithSearch,
}

/// A closed-loop reader as the governor's office reads: lists with filters and
/// their totals, the word search, dashboards.
pub struct Reader {
    shared: Arc<Shared>,
    client: GraphqlClient,
    rng: StdRng,
    mix: ReadMix,
    kind: &'static str,
}

impl Reader {
    pub fn new(shared: Arc<Shared>, client: GraphqlClient, index: usize, mix: ReadMix) -> Reader {
        let rng = StdRng::seed_from_u64(1_000 + index as u64);
        Reader { shared, client, rng, mix, kind: "lists" }
    }

    /// One list with a filter drawn from what the console offers.
    fn list_filter(&mut self) -> Value {
        let region = &self.shared.region;
        let municipality = &region.municipalities[pick_weighted(&mut self.rng, &region.shares)].code;
        match self.rng.random_range(0..6) {
            0 => json!({}),
            1 => json!({ "municipalityCode": municipality }),
            2 => json!({ "municipalityCode": municipality, "status": "RECEIVED" }),
            3 => json!({ "status": "SEEN" }),
            4 => json!({ "municipalityCode": municipality, "overdue": true }),
            _ => json!({ "priority": "HIGH" }),
        }
    }

    async fn read(&mut self) -> anyhow::Result<Sent> {
        let draw = self.rng.random_range(0..4);
        let (query, variables) = match (self.mix, draw) {
            (_, 0) => {
                self.kind = "dashboards";
                let code = self.rng.random_bool(0.5).then_some(FOCUS_MUNICIPALITY);
                (DASHBOARD, json!({ "code": code }))
            }
            (ReadMix::WithSearch, 1) => {
                self.kind = "search";
                let drawn = self.shared.searches.draw(&mut self.rng);
                let mut filter = json!({ "search": drawn.words });
                if drawn.in_focus {
                    filter["municipalityCode"] = json!(FOCUS_MUNICIPALITY);
                }
                (LIST, json!({ "first": PAGE, "filter": filter }))
            }
            _ => {
                self.kind = "lists";
                (LIST, json!({ "first": PAGE, "filter": self.list_filter() }))
            }
        };
        self.client.execute(&self.shared.region.cast.governor.token, query, variables).await?;
        Ok(Sent::Answered)
    }
}

impl Worker for Reader {
    async fn request(&mut self) -> anyhow::Result<Sent> {
        self.read().await
    }

    fn kind(&self) -> Option<&'static str> {
        Some(self.kind)
    }
}

impl DeliveryReport {
    /// Whether every subscriber received every in-scope event exactly once, in
    /// order per appeal.
    pub fn exactly_once(&self) -> bool {
        let tally = &self.tally;
        tally.missing == 0 && tally.duplicated == 0 && tally.out_of_order == 0 && tally.overflowed == 0
    }

    /// The lost, repeated or unordered deliveries, when they fail the run.
    pub fn errors(&self) -> u64 {
        let tally = &self.tally;
        if self.losses_are_errors { tally.missing + tally.extra_copies + tally.out_of_order + tally.failed } else { 0 }
    }

    /// A few lines under the table.
    pub fn describe(&self) -> String {
        let tally = &self.tally;
        let verdict = if self.exactly_once() {
            "yes".to_owned()
        } else if self.losses_are_errors {
            "NO (counted as errors)".to_owned()
        } else {
            "NO (not counted as errors: the server offers no `after`, so no relay between replicas is expected yet)"
                .to_owned()
        };
        let resumption = match (self.capabilities.after, tally.reconnected) {
            (true, reconnected) => format!("{reconnected} reconnected once on the next replica with `after`"),
            (false, _) => "the server offers no `appealEvents(after:)`: none reconnected".to_owned(),
        };
        let latency =
            |l: &Latency| format!("p50 {:.1}, p95 {:.1}, p99 {:.1}, max {:.1} ms", l.p50, l.p95, l.p99, l.max);
        format!(
            "mixed/delivery: {} subscribers ({} to the region, {} to one municipality) over {} replica(s); \
             writers paced at {} events/s (half intake, half transitions)\n\
             \x20 {} events committed by the writers; {} deliveries owed: {} once, {} more than once ({} extra \
             copies), {} missing, {} out of order per appeal; {} other events (the warm-up's), {} out of scope, \
             {} untracked; {} subscriber(s) failed; {resumption}\n\
             \x20 every in-scope event to every subscriber exactly once: {verdict}\n\
             \x20 delivery from the writer's answer: {}; from the event's `at`: {}\n\
             \x20 the servers' CPU: {:.1} s in {:.1} s of writes and deliveries\n",
            tally.subscribers,
            self.region_subscribers,
            self.municipality_subscribers,
            self.replicas,
            self.events_per_second,
            tally.committed,
            tally.expected,
            tally.once,
            tally.duplicated,
            tally.extra_copies,
            tally.missing,
            tally.out_of_order,
            tally.other,
            tally.out_of_scope,
            tally.overflowed,
            tally.failed,
            latency(&self.from_answer_ms),
            latency(&self.from_event_ms),
            self.server_cpu_seconds,
            self.seconds,
        )
    }
}
