//! The governor's office dashboard, in one place: how its running totals are
//! kept and how it is read. Per municipality in the caller's scope it says how
//! many appeals there are by status, how many are overdue, and how fast heads
//! read and resolve them, from every change committed before the query, with
//! overdue judged at the time of the query.
//!
//! What lives where, in reading order:
//! - this file: the figures the dashboard reports ([`Counts`],
//!   [`MunicipalityStats`], [`Dashboard`]) and the one definition of each count
//!   (`Counts::add_in_status`, `Counts::add_past_due`), through which both ways
//!   of reading below go.
//! - `contribution`: pure arithmetic: what one appeal adds to the running
//!   totals ([`Contribution`]), which deadlines it still owes ([`Deadline`]), and
//!   on which UTC day they fall.
//! - `histogram`: pure arithmetic: the histograms of durations the medians are
//!   found from, their buckets, and their byte format in `municipality_tally`.
//!   The format is this crate's concern, so it lives here, not in `core`.
//! - `totals`: keeping the running totals (`municipality_tally`,
//!   `deadline_tally`) in step, in the transaction of every write (on
//!   PostgreSQL, a registration's in the statement that inserts the appeal), and
//!   building those that are missing.
//! - `all_time`: the dashboard over all time, and the list's `totalCount`, read
//!   from the running totals.
//! - `range`: the dashboard over a `from`/`to` range, counted from the appeals.
//! - `indexes`: the indexes those statements were written for, and the
//!   conditions they repeat word for word; a test reads the query plans.
//!
//! Two ways of reading stay, on purpose: over all time the dashboard must cost
//! the same whatever the number of appeals, which only the running totals give;
//! a range of receipt cannot be read from totals kept for all time. Both build
//! their [`Counts`] through the same two definitions, and a seeded walk in the
//! storage suite checks that they agree exactly, medians included.
//!
//! `core` keeps the domain's facts only: which deadlines a status still owes
//! ([`Status::owes_answer`], [`Status::owes_reading`]).

use std::collections::HashMap;

use appeals_core::text::MunicipalityCode;
use appeals_core::{MunicipalityId, Scope, Status};
use chrono::{DateTime, Utc};

use crate::Store;
use crate::directory::Municipality;
use crate::error::Result;

mod all_time;
mod contribution;
mod histogram;
mod indexes;
mod range;
mod totals;

pub(crate) use all_time::count;
pub(crate) use contribution::{Contribution, Deadline, TallyFacts};
pub(crate) use totals::{TALLY_UPDATED, has_a_row, record, record_in_new_row, record_when};
pub(crate) use totals::{build_missing, record_all};

/// Appeal counts of one municipality or of the whole scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    pub received: u64,
    pub seen: u64,
    pub resolved: u64,
    /// Appeals past their answer deadline (`dueAt`) and not resolved.
    pub overdue: u64,
    /// Appeals past their reading deadline (`seenDueAt`) and still unread.
    pub seen_overdue: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MunicipalityStats {
    pub municipality: Municipality,
    pub counts: Counts,
    /// The median time from receipt to the head's reading; `None` if none was read.
    pub median_hours_to_seen: Option<f64>,
    /// The median time from receipt to the current resolution; `None` if none.
    pub median_hours_to_resolve: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    pub counts: Counts,
    /// Every municipality in scope, empty ones too, by code.
    pub municipalities: Vec<MunicipalityStats>,
}

/// Which appeals the dashboard counts.
#[derive(Debug, Clone, Default)]
pub struct DashboardFilter {
    pub municipality_code: Option<MunicipalityCode>,
    /// Appeals received at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Appeals received before this time.
    pub to: Option<DateTime<Utc>>,
}

impl Counts {
    /// Counts `appeals` more appeals in `status`: in the total and in their status.
    fn add_in_status(&mut self, status: Status, appeals: u64) {
        self.total += appeals;
        match status {
            Status::Received => self.received += appeals,
            Status::Seen => self.seen += appeals,
            Status::Resolved => self.resolved += appeals,
        }
    }

    /// Counts `appeals` more appeals past `deadline` that still owe it.
    fn add_past_due(&mut self, deadline: Deadline, appeals: u64) {
        match deadline {
            Deadline::Answer => self.overdue += appeals,
            Deadline::Reading => self.seen_overdue += appeals,
        }
    }
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.total += other.total;
        self.received += other.received;
        self.seen += other.seen;
        self.resolved += other.resolved;
        self.overdue += other.overdue;
        self.seen_overdue += other.seen_overdue;
    }
}

/// What either way of reading finds for one municipality.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    counts: Counts,
    median_hours_to_seen: Option<f64>,
    median_hours_to_resolve: Option<f64>,
}

impl Store {
    /// The dashboard of `scope`. Over all time it is read from the running totals
    /// that every write keeps: a few hundred rows whatever the number of appeals,
    /// judged against the time of the query. Over a `from`/`to` range it is
    /// counted from the appeals received in the range.
    pub async fn dashboard(&self, scope: Scope, filter: &DashboardFilter) -> Result<Dashboard> {
        let mut municipalities = match &filter.municipality_code {
            Some(code) => vec![self.known_municipality(code).await?],
            None => self.municipalities().await?,
        };
        municipalities.retain(|municipality| scope.contains(municipality.id));
        // The figures are read on the standby when there is one (see
        // `crate::standby`); the municipalities are remembered from the primary.
        let figures: HashMap<MunicipalityId, Figures> = self
            .read_routed(|db| {
                let municipalities = &municipalities;
                async move {
                    if filter.from.is_none() && filter.to.is_none() {
                        all_time::figures(self, &db, municipalities).await
                    } else {
                        range::figures(self, &db, municipalities, filter).await
                    }
                }
            })
            .await?;
        let mut dashboard = Dashboard { counts: Counts::default(), municipalities: Vec::new() };
        for municipality in municipalities {
            let Figures { counts, median_hours_to_seen, median_hours_to_resolve } =
                figures.get(&municipality.id).copied().unwrap_or_default();
            dashboard.counts += counts;
            dashboard.municipalities.push(MunicipalityStats {
                municipality,
                counts,
                median_hours_to_seen,
                median_hours_to_resolve,
            });
        }
        Ok(dashboard)
    }
}
