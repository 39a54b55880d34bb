//! The scenarios, each measured twice in the same run: through the API, and as
//! the floor (the same statements straight to the database); and what their
//! workers share.

use std::sync::{Arc, Mutex};

use appeals_storage::directory::token_digest;
use clap::ValueEnum;
use rand::Rng;

use crate::region::{Region, UnreadAppeal};

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
    /// A case-insensitive Cyrillic text search over the region.
    ListSearch,
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
            Scenario::ListBesideSearch => "list-beside-search",
            Scenario::Appeal => "appeal",
            Scenario::DashboardRegion => "dashboard-region",
            Scenario::DashboardMunicipality => "dashboard-municipality",
            Scenario::Subscriptions => "subscriptions",
        }
    }

    /// Whether the scenario has a floor: delivery to subscribers has no database
    /// counterpart.
    pub fn has_floor(self) -> bool {
        self != Scenario::Subscriptions
    }
}

/// The municipality the filtered list and the one-municipality dashboard show.
pub const FOCUS_MUNICIPALITY: &str = "tomsk";

/// The text the search looks for.
pub const SEARCH_TEXT: &str = "яма";

/// What every worker of a run reads, and the queue of unread appeals that the
/// intake scenario fills and the transitions scenario drains.
pub struct Shared {
    pub region: Region,
    /// A tag unique to this run, for the external ids of submitted appeals.
    pub run: String,
    pub focus: usize,
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
        Ok(Shared { region, run, focus, unread })
    }

    pub fn add_unread(&self, appeal: UnreadAppeal) {
        if let Ok(mut unread) = self.unread.lock() {
            unread.push(appeal);
        }
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
