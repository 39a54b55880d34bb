//! The region the benchmarks run on: the 20 seeded municipalities of the Tomsk
//! region, the people who work there, and N appeals received over the past year,
//! each with the history the live path would have recorded for it.
//!
//! Appeals are built with `appeals-core` exactly as the server builds them
//! (`Appeal::receive`, then `Appeal::apply` for each command, each event placed
//! with `NewEvent::record` after the one before), so every hash chain verifies,
//! and loaded through `Store::import_appeals` in large batches. Generation runs on
//! a thread of its own while the previous batch is written.
//!
//! The mix: 15% of appeals are still unread (`RECEIVED`), 25% read (`SEEN`), 55%
//! resolved, and 5% were resolved, reopened, and half of those resolved again.
//! Half are triaged, a fifth carry a note, one in twenty read appeals had its
//! deadline extended. Tomsk itself gets 45% of the appeals.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use appeals_core::clock::to_storage_precision;
use appeals_core::text::{
    AppealText, Category, Contact, ExternalId, MunicipalityCode, NoteText, PersonName, Reason, ResponseText, parse_tags,
};
use appeals_core::{
    Appeal, AppealId, Applied, Channel, Command, DeadlinePolicy, ExtensionDays, Outcome, Priority, Role, Status,
    Submission, UserId,
};
use appeals_storage::import::ImportedAppeal;
use appeals_storage::{Cursor, Municipality, Store};
use chrono::{DateTime, Datelike, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

use crate::texts;

/// Appeals per import call, which is one write transaction.
const IMPORT_BATCH: usize = 2_000;

/// How the year's appeals are spread over the municipalities: Tomsk, Seversk and
/// Strezhevoy by their weight, the rest evenly.
const MUNICIPALITY_SHARES: &[(&str, f64)] = &[("tomsk", 0.45), ("seversk", 0.10), ("strezhevoy", 0.05)];

/// The people of the region, one head and one assistant per municipality, each
/// with a token for the API.
pub struct Cast {
    pub intake: Person,
    pub governor: Person,
    /// By municipality, in the order of [`Region::municipalities`].
    pub heads: Vec<Person>,
    pub assistants: Vec<Person>,
}

/// A user and its API token.
#[derive(Clone)]
pub struct Person {
    pub id: UserId,
    pub token: String,
}

/// An unread appeal, as the transitions scenario needs it.
#[derive(Debug, Clone, Copy)]
pub struct UnreadAppeal {
    pub id: AppealId,
    /// An index into [`Region::municipalities`].
    pub municipality: usize,
    pub version: i32,
}

/// What the scenarios need to know about the loaded region.
pub struct Region {
    /// By code.
    pub municipalities: Vec<Municipality>,
    /// Each municipality's share of the appeals, in the same order.
    pub shares: Vec<f64>,
    pub cast: Cast,
    pub appeals: usize,
    pub events: usize,
    /// Every unread appeal: the transitions scenario reads and resolves them.
    pub unread: Vec<UnreadAppeal>,
    /// Up to [`SAMPLE`] appeals spread over the whole region, for reading one.
    pub sample: Vec<AppealId>,
    /// The position halfway down the list, newest first: the deep page starts there.
    pub middle: Cursor,
    pub load_time: Duration,
}

/// How many appeal ids the region keeps for the single-appeal scenario.
const SAMPLE: usize = 20_000;

impl Region {
    /// The index of the municipality `code`.
    pub fn municipality(&self, code: &str) -> Option<usize> {
        self.municipalities.iter().position(|municipality| municipality.code == code)
    }
}

/// Creates the cast and loads `appeals` appeals, reporting progress on stderr.
pub async fn load(store: &Store, appeals: usize, seed: u64) -> anyhow::Result<Region> {
    let started = Instant::now();
    let municipalities = store.municipalities().await?;
    anyhow::ensure!(!municipalities.is_empty(), "the database has no municipalities");
    let cast = create_cast(store, &municipalities).await?;
    let plan = plan(appeals, &municipalities, seed, to_storage_precision(Utc::now()));
    let middle = plan.slots.get(plan.slots.len() / 2).map(|slot| slot.id);

    let (sender, mut receiver) = mpsc::channel::<Built>(2);
    let builder = {
        let context = BuildContext {
            municipality_ids: municipalities.iter().map(|m| m.id).collect(),
            intake: cast.intake.id,
            heads: cast.heads.iter().map(|person| person.id).collect(),
            assistants: cast.assistants.iter().map(|person| person.id).collect(),
        };
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            for chunk in plan.slots.chunks(IMPORT_BATCH) {
                let built = chunk.iter().map(|slot| build(slot, &context)).collect::<anyhow::Result<Vec<_>>>()?;
                let unread = built
                    .iter()
                    .filter(|imported| imported.appeal.status == Status::Received)
                    .map(|imported| UnreadAppeal {
                        id: imported.appeal.id,
                        municipality: context.index_of(imported.appeal.municipality_id),
                        version: imported.appeal.version,
                    })
                    .collect();
                if sender.blocking_send(Built { appeals: built, unread }).is_err() {
                    break;
                }
            }
            Ok(())
        })
    };

    let mut region = Region {
        shares: municipality_shares(&municipalities),
        municipalities,
        cast,
        appeals: 0,
        events: 0,
        unread: Vec::new(),
        sample: Vec::new(),
        middle: Cursor { received_at: Utc::now(), id: AppealId::generate() },
        load_time: Duration::ZERO,
    };
    let sample_every = appeals.div_ceil(SAMPLE).max(1);
    let mut progress = Progress::new(appeals);
    while let Some(batch) = receiver.recv().await {
        store.import_appeals(&batch.appeals).await.context("importing a batch of appeals")?;
        for imported in &batch.appeals {
            if region.appeals.is_multiple_of(sample_every) {
                region.sample.push(imported.appeal.id);
            }
            if Some(imported.appeal.id) == middle {
                region.middle = Cursor::of(&imported.appeal);
            }
            region.appeals += 1;
            region.events += imported.events.len();
        }
        region.unread.extend(batch.unread);
        progress.report(region.appeals);
    }
    builder.await.context("the appeal builder panicked")??;
    region.load_time = started.elapsed();
    Ok(region)
}

async fn create_cast(store: &Store, municipalities: &[Municipality]) -> anyhow::Result<Cast> {
    let person = async |name: &str, role: Role, municipality: Option<&str>| -> anyhow::Result<Person> {
        let code = municipality.map(MunicipalityCode::parse).transpose()?;
        let (user, token) = store.create_user(PersonName::parse(name)?, role, code.as_ref()).await?;
        Ok(Person { id: user.id, token: token.expose().to_owned() })
    };
    let mut heads = Vec::with_capacity(municipalities.len());
    let mut assistants = Vec::with_capacity(municipalities.len());
    for municipality in municipalities {
        heads.push(person(&format!("Глава: {}", municipality.name), Role::Head, Some(&municipality.code)).await?);
        assistants.push(
            person(&format!("Помощник главы: {}", municipality.name), Role::Assistant, Some(&municipality.code))
                .await?,
        );
    }
    Ok(Cast {
        intake: person("Бот приёма обращений", Role::Intake, None).await?,
        governor: person("Центр управления регионом", Role::GovernorOffice, None).await?,
        heads,
        assistants,
    })
}

/// What became of an appeal by now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Unread,
    Read,
    Resolved,
    /// Resolved, then reopened; resolved again or not.
    Reopened,
}

/// One appeal to build: when and where it arrived, what became of it, and the
/// seed its details are drawn from.
struct Slot {
    id: AppealId,
    number: String,
    municipality: usize,
    received_at: DateTime<Utc>,
    fate: Fate,
    seed: u64,
    external_id: u64,
}

struct Plan {
    /// Oldest first.
    slots: Vec<Slot>,
}

/// Decides every appeal's receipt, municipality and fate, then numbers them in
/// order of receipt, per municipality and year, as the live path would have.
fn plan(appeals: usize, municipalities: &[Municipality], seed: u64, now: DateTime<Utc>) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed);
    let shares = municipality_shares(municipalities);
    let mut drafts: Vec<(DateTime<Utc>, usize, Fate, u64)> = (0..appeals)
        .map(|_| {
            let fate = match rng.random_range(0..100) {
                0..15 => Fate::Unread,
                15..40 => Fate::Read,
                40..95 => Fate::Resolved,
                _ => Fate::Reopened,
            };
            let appeal_seed = rng.random();
            let span = Timeline::of(fate, appeal_seed).span();
            let age = (age(&mut rng, fate)).max(span + TimeDelta::minutes(1));
            let municipality = pick_weighted(&mut rng, &shares);
            (to_storage_precision(now - age), municipality, fate, appeal_seed)
        })
        .collect();
    drafts.sort_by_key(|draft| draft.0);

    let mut counters: std::collections::HashMap<(usize, i32), i64> = std::collections::HashMap::new();
    let slots = drafts
        .into_iter()
        .enumerate()
        .map(|(index, (received_at, municipality, fate, seed))| {
            let year = received_at.year();
            let sequence = counters.entry((municipality, year)).or_default();
            *sequence += 1;
            Slot {
                id: AppealId::generate(),
                number: appeals_core::appeal::registration_number(&municipalities[municipality].code, year, *sequence),
                municipality,
                received_at,
                fate,
                seed,
                external_id: index as u64 + 1,
            }
        })
        .collect();
    Plan { slots }
}

/// How long ago an appeal of this fate arrived: unread ones mostly in the last
/// three days (a fifth are an overdue backlog), read ones mostly within the
/// month, resolved ones any time in the year.
fn age(rng: &mut StdRng, fate: Fate) -> TimeDelta {
    let seconds = |days: f64| (days * 86_400.0) as i64;
    let days = match fate {
        Fate::Unread if rng.random_bool(0.8) => rng.random_range(0.0..3.0),
        Fate::Unread => rng.random_range(3.0..60.0),
        Fate::Read if rng.random_bool(0.7) => rng.random_range(0.0..30.0),
        Fate::Read => rng.random_range(30.0..365.0),
        Fate::Resolved | Fate::Reopened => rng.random_range(0.0..365.0),
    };
    TimeDelta::seconds(seconds(days)) + TimeDelta::microseconds(rng.random_range(0..1_000_000))
}

fn municipality_shares(municipalities: &[Municipality]) -> Vec<f64> {
    let named: f64 = MUNICIPALITY_SHARES
        .iter()
        .filter(|(code, _)| municipalities.iter().any(|m| m.code == *code))
        .map(|(_, share)| share)
        .sum();
    let others = municipalities.iter().filter(|m| !MUNICIPALITY_SHARES.iter().any(|(code, _)| m.code == *code)).count();
    municipalities
        .iter()
        .map(|municipality| match MUNICIPALITY_SHARES.iter().find(|(code, _)| municipality.code == *code) {
            Some((_, share)) => *share,
            None => (1.0 - named) / others.max(1) as f64,
        })
        .collect()
}

pub fn pick_weighted(rng: &mut impl Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut point = rng.random_range(0.0..total);
    for (index, weight) in weights.iter().enumerate() {
        if point < *weight {
            return index;
        }
        point -= weight;
    }
    weights.len() - 1
}

/// When each command of an appeal's life happened, counted from its receipt.
#[derive(Debug, Default)]
struct Timeline {
    triaged: Option<TimeDelta>,
    noted: Option<TimeDelta>,
    seen: Option<TimeDelta>,
    extended: Option<TimeDelta>,
    resolved: Option<TimeDelta>,
    reopened: Option<TimeDelta>,
    resolved_again: Option<TimeDelta>,
}

impl Timeline {
    /// The same appeal seed always gives the same timeline, so that the plan can
    /// size an appeal's age before the appeal is built.
    fn of(fate: Fate, seed: u64) -> Timeline {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x7469_6d65);
        let hours = |rng: &mut StdRng, from: i64, to: i64| TimeDelta::minutes(rng.random_range(from * 60..to * 60));
        let mut timeline = Timeline {
            triaged: rng.random_bool(0.5).then(|| hours(&mut rng, 0, 24)),
            noted: rng.random_bool(0.2).then(|| hours(&mut rng, 1, 48)),
            ..Timeline::default()
        };
        if fate == Fate::Unread {
            return timeline;
        }
        // Most heads read within the three days; some are late.
        let seen = hours(&mut rng, 1, 100);
        timeline.seen = Some(seen);
        timeline.extended = rng.random_bool(0.05).then(|| seen + hours(&mut rng, 1, 120));
        if fate == Fate::Read {
            return timeline;
        }
        let resolved = seen + hours(&mut rng, 121, 28 * 24);
        timeline.resolved = Some(resolved);
        if fate == Fate::Reopened {
            let reopened = resolved + hours(&mut rng, 24, 10 * 24);
            timeline.reopened = Some(reopened);
            timeline.resolved_again = rng.random_bool(0.5).then(|| reopened + hours(&mut rng, 24, 7 * 24));
        }
        timeline
    }

    /// From receipt to the last command.
    fn span(&self) -> TimeDelta {
        [self.triaged, self.noted, self.seen, self.extended, self.resolved, self.reopened, self.resolved_again]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or_default()
    }
}

/// The users and municipalities appeals are built with.
struct BuildContext {
    municipality_ids: Vec<appeals_core::MunicipalityId>,
    intake: UserId,
    heads: Vec<UserId>,
    assistants: Vec<UserId>,
}

impl BuildContext {
    fn index_of(&self, id: appeals_core::MunicipalityId) -> usize {
        self.municipality_ids.iter().position(|candidate| *candidate == id).unwrap_or_default()
    }
}

struct Built {
    appeals: Vec<ImportedAppeal>,
    unread: Vec<UnreadAppeal>,
}

/// Builds one appeal and its history through `appeals-core`.
fn build(slot: &Slot, context: &BuildContext) -> anyhow::Result<ImportedAppeal> {
    let mut rng = StdRng::seed_from_u64(slot.seed);
    let channel = texts::pick(
        &mut rng,
        &[
            Channel::Telegram,
            Channel::Telegram,
            Channel::Telegram,
            Channel::Telegram,
            Channel::Vk,
            Channel::Vk,
            Channel::Web,
            Channel::Web,
            Channel::Email,
            Channel::Phone,
        ],
    );
    let external_id = match channel {
        Channel::Telegram => Some(ExternalId::parse(&format!("tg-{}", slot.external_id))?),
        Channel::Vk => Some(ExternalId::parse(&format!("vk-{}", slot.external_id))?),
        _ => None,
    };
    let submission = Submission {
        channel,
        external_id,
        author_name: rng.random_bool(0.9).then(|| PersonName::parse(&texts::author_name(&mut rng))).transpose()?,
        author_contact: rng.random_bool(0.5).then(|| Contact::parse(&texts::contact(&mut rng))).transpose()?,
        text: AppealText::parse(&texts::appeal_text(&mut rng))?,
    };
    let municipality_id = context.municipality_ids[slot.municipality];
    let Applied { appeal, event } = Appeal::receive(
        slot.id,
        slot.number.clone(),
        municipality_id,
        submission,
        Some(context.intake),
        slot.received_at,
        &DeadlinePolicy::default(),
    );
    let mut events = vec![event.record(appeal.id, 1, "")];
    let head = context.heads[slot.municipality];
    let assistant = context.assistants[slot.municipality];
    let timeline = Timeline::of(slot.fate, slot.seed);
    let mut steps: Vec<(TimeDelta, Command, UserId)> = Vec::new();
    if let Some(at) = timeline.triaged {
        let tags: Vec<&str> = (0..rng.random_range(0..3)).map(|_| texts::pick(&mut rng, texts::TAGS)).collect();
        let priorities = [Priority::Low, Priority::Normal, Priority::Normal, Priority::High, Priority::Urgent];
        let command = Command::Triage {
            priority: Some(texts::pick(&mut rng, &priorities)),
            category: Some(Category::parse(texts::pick(&mut rng, texts::CATEGORIES))?),
            tags: Some(parse_tags(&tags)?),
        };
        steps.push((at, command, assistant));
    }
    if let Some(at) = timeline.noted {
        steps.push((at, Command::AddNote { text: NoteText::parse(texts::note(&mut rng))? }, assistant));
    }
    if let Some(at) = timeline.seen {
        steps.push((at, Command::MarkSeen, head));
    }
    if let Some(at) = timeline.extended {
        let days = ExtensionDays::parse(rng.random_range(5..=30), &DeadlinePolicy::default())?;
        steps.push((at, Command::ExtendDeadline { days, reason: Reason::parse(texts::reason(&mut rng))? }, assistant));
    }
    for at in [timeline.resolved, timeline.resolved_again].into_iter().flatten() {
        let outcome = texts::pick(
            &mut rng,
            &[
                Outcome::Satisfied,
                Outcome::Satisfied,
                Outcome::Explained,
                Outcome::Explained,
                Outcome::Declined,
                Outcome::Redirected,
            ],
        );
        let response = ResponseText::parse(texts::response(&mut rng))?;
        steps.push((at, Command::Resolve { outcome, response, duplicate_of: None }, assistant));
    }
    if let Some(at) = timeline.reopened {
        steps.push((at, Command::Reopen { reason: Reason::parse(texts::reason(&mut rng))? }, head));
    }
    steps.sort_by_key(|(at, _, _)| *at);

    let mut appeal = appeal;
    for (offset, command, actor) in steps {
        let Applied { appeal: next, event } = appeal
            .apply(&command, actor, slot.received_at + offset, None)
            .with_context(|| format!("building the history of {}", appeal.number))?;
        let previous = events.last().map(|event| event.hash.as_str()).unwrap_or_default();
        let seq = events.len() as i32 + 1;
        events.push(event.record(appeal.id, seq, previous));
        appeal = next;
    }
    Ok(ImportedAppeal { appeal, events })
}

/// Loading progress on stderr, every few seconds.
struct Progress {
    total: usize,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(total: usize) -> Progress {
        let now = Instant::now();
        Progress { total, started: now, last: now }
    }

    fn report(&mut self, done: usize) {
        if self.last.elapsed() < Duration::from_secs(3) && done < self.total {
            return;
        }
        self.last = Instant::now();
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = done as f64 / elapsed.max(1e-3);
        let left = (self.total - done) as f64 / rate.max(1e-3);
        eprintln!(
            "  loaded {done:>9} / {} appeals ({:>3.0}%), {rate:>7.0} appeals/s, {left:>4.0} s to go",
            self.total,
            100.0 * done as f64 / self.total.max(1) as f64
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn municipalities() -> Vec<Municipality> {
        ["aleksandrovsky", "seversk", "tomsk", "strezhevoy", "kedrovy"]
            .iter()
            .map(|code| Municipality {
                id: appeals_core::MunicipalityId::generate(),
                code: (*code).to_owned(),
                name: code.to_uppercase(),
            })
            .collect()
    }

    #[test]
    fn the_plan_numbers_appeals_in_order_of_receipt_per_municipality_and_year() {
        let municipalities = municipalities();
        let plan = plan(2_000, &municipalities, 1, Utc::now());
        assert!(plan.slots.windows(2).all(|pair| pair[0].received_at <= pair[1].received_at));
        let tomsk = plan.slots.iter().filter(|slot| municipalities[slot.municipality].code == "tomsk").count();
        assert!((700..1100).contains(&tomsk), "Tomsk got {tomsk} of 2000");
        let mut seen = std::collections::HashSet::new();
        assert!(plan.slots.iter().all(|slot| seen.insert(slot.number.clone())), "numbers are unique");
    }

    #[test]
    fn every_fate_is_in_the_mix_and_every_timeline_fits_in_the_past() {
        let now = Utc::now();
        let plan = plan(5_000, &municipalities(), 2, now);
        for fate in [Fate::Unread, Fate::Read, Fate::Resolved, Fate::Reopened] {
            let count = plan.slots.iter().filter(|slot| slot.fate == fate).count();
            assert!(count > 100, "{fate:?}: {count}");
        }
        for slot in &plan.slots {
            assert!(slot.received_at + Timeline::of(slot.fate, slot.seed).span() < now, "{}", slot.number);
        }
    }
}
