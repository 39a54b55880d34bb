//! The scenarios, each measured twice in the same run: through the API, and as
//! the floor (the same statements straight to the database); and what their
//! workers share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use appeals_storage::directory::token_digest;
use clap::ValueEnum;
use rand::{Rng, SeedableRng};

use crate::region::{Region, UnreadAppeal};
use crate::texts;

/// What the governor's office, the heads and the intake bots do most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// `submitAppeal` from an intake bot, to municipalities as the region's
    /// appeals are spread.
    Intake,
    /// `markSeen` by the head, then `resolveAppeal`, on unread appeals.
    Transitions,
    /// The newest 20 appeals of the region, with their municipality.
    ListFirst,
    /// 20 appeals halfway down the region's list, by cursor.
    ListDeep,
    /// The unread appeals of Tomsk: a filter on municipality and status.
    ListFiltered,
    /// The substring search (`text`), each client drawing from the
    /// [`SearchMix`]: rare and common words, two-word phrases, the start of a
    /// word; over the region or one municipality; with `totalCount`.
    ListSearch,
    /// The word search (`search`) with the same mix: inflected words, two
    /// words that must both occur, prefixes (`освещ*`).
    ListWords,
    /// `list-first` while one of the clients runs the slowest query the API
    /// accepts (the region's text search with its total) in a loop; only the
    /// other clients' pages are measured.
    ListBesideSearch,
    /// One appeal with its whole history and who did what.
    Appeal,
    /// The governor's dashboard over the whole region.
    DashboardRegion,
    /// The dashboard of Tomsk alone.
    DashboardMunicipality,
    /// Events delivered over `graphql-transport-ws` to many subscribers.
    Subscriptions,
    /// Everything at once, over the replicas: intake and transitions at a fixed
    /// rate, lists and dashboards, and the subscribers, each checked for every
    /// event in its scope exactly once (see [`crate::mixed`]).
    Mixed,
    /// The reads a standby serves: lists with filters, the word search and
    /// dashboards, mixed; with `--database-read-url`, measured on the primary and
    /// then on the standby.
    Lists,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Intake => "intake",
            Scenario::Transitions => "transitions",
            Scenario::ListFirst => "list-first",
            Scenario::ListDeep => "list-deep",
            Scenario::ListFiltered => "list-filtered",
            Scenario::ListSearch => "list-search",
            Scenario::ListWords => "list-words",
            Scenario::ListBesideSearch => "list-beside-search",
            Scenario::Appeal => "appeal",
            Scenario::DashboardRegion => "dashboard-region",
            Scenario::DashboardMunicipality => "dashboard-municipality",
            Scenario::Subscriptions => "subscriptions",
            Scenario::Mixed => "mixed",
            Scenario::Lists => "lists",
        }
    }

    /// Whether the scenario has a floor: delivery to subscribers has no database
    /// counterpart, and the mixes are measured against each other (one replica
    /// and three, primary and standby).
    pub fn has_floor(self) -> bool {
        !matches!(self, Scenario::Subscriptions | Scenario::Mixed | Scenario::Lists)
    }
}

/// The municipality the filtered list and the one-municipality dashboard show.
pub const FOCUS_MUNICIPALITY: &str = "tomsk";

/// The text the search beside `list-first` looks for.
pub const SEARCH_TEXT: &str = "яма";

/// What the searching clients type, drawn from the region's own texts: rare
/// words (one appeal in [`texts::RARE_ONE_IN`] holds one), the ten most common
/// words of the texts, two words, the start of a word; half over the region,
/// half within [`FOCUS_MUNICIPALITY`].
pub struct SearchMix {
    common: Vec<String>,
}

/// One search a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawnSearch {
    /// What the client types: for `search`, words (`*` for a prefix); for
    /// `text`, the same without the `*`.
    pub words: String,
    /// Within [`FOCUS_MUNICIPALITY`] rather than over the region.
    pub in_focus: bool,
}

/// The starts of words a prefix search types.
const PREFIXES: &[&str] = &["освещ", "подъезд", "дорог", "заявк", "ремонт", "комисси"];

impl SearchMix {
    /// The ten words in most of `SAMPLE` generated texts (by the analyser's
    /// reading: a word counts once per text, stop words not at all).
    pub fn new() -> SearchMix {
        const SAMPLE: usize = 2_000;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut in_texts: HashMap<String, usize> = HashMap::new();
        for _ in 0..SAMPLE {
            for term in appeals_core::search::index_terms(&texts::appeal_text(&mut rng)) {
                if let Some(word) = term.strip_prefix(appeals_core::search::WORD_MARK) {
                    *in_texts.entry(word.to_owned()).or_default() += 1;
                }
            }
        }
        let mut ranked: Vec<(String, usize)> = in_texts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        SearchMix { common: ranked.into_iter().take(10).map(|(word, _)| word).collect() }
    }

    /// The ten most common words.
    pub fn common(&self) -> &[String] {
        &self.common
    }

    /// The next search: 30% a rare word, 30% a common one, 25% two words (a
    /// common one and a rare one, or two common ones), 15% the start of a word.
    pub fn draw(&self, rng: &mut impl Rng) -> DrawnSearch {
        let (rare, common) = (texts::RARE_WORDS, &self.common.iter().map(String::as_str).collect::<Vec<_>>());
        let words = match rng.random_range(0..100) {
            0..30 => texts::pick(rng, rare).to_owned(),
            30..60 => texts::pick(rng, common).to_owned(),
            60..75 => format!("{} {}", texts::pick(rng, common), texts::pick(rng, rare)),
            75..85 => format!("{} {}", texts::pick(rng, common), texts::pick(rng, common)),
            _ => format!("{}*", texts::pick(rng, PREFIXES)),
        };
        DrawnSearch { words, in_focus: rng.random_bool(0.5) }
    }
}

impl Default for SearchMix {
    fn default() -> Self {
        SearchMix::new()
    }
}

impl DrawnSearch {
    /// As the substring search's text: what the client types, without `*`.
    pub fn as_text(&self) -> String {
        self.words.replace('*', "")
    }
}

/// What every worker of a run reads, and the queue of unread appeals that the
/// intake scenario fills and the transitions scenario drains.
pub struct Shared {
    pub region: Region,
    /// A tag unique to this run, for the external ids of submitted appeals.
    pub run: String,
    pub focus: usize,
    pub searches: SearchMix,
    unread: Mutex<Vec<UnreadAppeal>>,
}

/// A queue of unread appeals for one phase of the transitions scenario.
pub type UnreadQueue = Arc<Mutex<Vec<UnreadAppeal>>>;

impl Shared {
    pub fn new(mut region: Region) -> anyhow::Result<Shared> {
        let focus = region
            .municipality(FOCUS_MUNICIPALITY)
            .ok_or_else(|| anyhow::anyhow!("the region has no municipality `{FOCUS_MUNICIPALITY}`"))?;
        let unread = Mutex::new(std::mem::take(&mut region.unread));
        let run = format!("{:08x}", rand::rng().random::<u32>());
        Ok(Shared { region, run, focus, searches: SearchMix::new(), unread })
    }

    pub fn add_unread(&self, appeal: UnreadAppeal) {
        if let Ok(mut unread) = self.unread.lock() {
            unread.push(appeal);
        }
    }

    /// Every unread appeal left, as one queue (the mixed scenario's, which its
    /// own intake fills again).
    pub fn take_unread(&self) -> UnreadQueue {
        let all = self.unread.lock().map(|mut unread| std::mem::take(&mut *unread)).unwrap_or_default();
        Arc::new(Mutex::new(all))
    }

    /// Splits the unread appeals in two queues of equal size, one for the API and
    /// one for the floor, so that neither phase starves the other.
    pub fn split_unread(&self) -> (UnreadQueue, UnreadQueue) {
        let mut all = self.unread.lock().map(|mut unread| std::mem::take(&mut *unread)).unwrap_or_default();
        let second = all.split_off(all.len() / 2);
        (Arc::new(Mutex::new(all)), Arc::new(Mutex::new(second)))
    }

    /// The SHA-256 digest of a token, as the server looks users up by.
    pub fn digest(token: &str) -> String {
        token_digest(token)
    }
}

/// The next unread appeal of `queue`, if any is left.
pub fn take_unread(queue: &UnreadQueue) -> Option<UnreadAppeal> {
    queue.lock().ok().and_then(|mut unread| unread.pop())
}
