//! The governor's office dashboard: counts per municipality and status, overdue
//! counts at the time of the query, median hours to reading and to resolution,
//! a row for every municipality in scope, and the window of receipt.

use appeals_core::{Appeal, Command, Outcome, Scope, Status};
use appeals_storage::testing::{Backend, on_both_databases};
use appeals_storage::{AppealFilter, Counts, Dashboard, DashboardFilter, MunicipalityStats};
use chrono::TimeDelta;

use crate::support::{Region, code, days, extend, hours, open_store, outcome, reopen, resolve, t0};

on_both_databases!(
    the_dashboard_counts_appeals_by_municipality_and_status,
    the_dashboard_reports_median_hours_to_reading_and_to_resolution,
    a_municipal_scope_sees_one_row_of_its_own,
    the_dashboard_selects_appeals_by_time_of_receipt,
    the_running_totals_agree_with_a_count_of_the_appeals_as_time_passes,
    running_totals_lost_or_never_built_are_built_again_on_opening,
);

fn row<'a>(dashboard: &'a Dashboard, code: &str) -> &'a MunicipalityStats {
    dashboard
        .municipalities
        .iter()
        .find(|row| row.municipality.code == code)
        .unwrap_or_else(|| panic!("the dashboard has a row for {code}"))
}

fn counts(total: u64, received: u64, seen: u64, resolved: u64, overdue: u64, seen_overdue: u64) -> Counts {
    Counts { total, received, seen, resolved, overdue, seen_overdue }
}

/// The dashboard's total is the sum of its rows.
fn assert_sums(case: &str, dashboard: &Dashboard) {
    let mut sum = Counts::default();
    for row in &dashboard.municipalities {
        sum += row.counts;
    }
    assert_eq!(dashboard.counts, sum, "{case}: the total is the sum of the rows");
}

async fn everywhere(region: &Region, filter: &DashboardFilter) -> Dashboard {
    region.store.dashboard(Scope::Everywhere, filter).await.expect("the dashboard")
}

async fn the_dashboard_counts_appeals_by_municipality_and_status(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let (head, assistant) = (region.tomsk_head, region.tomsk_assistant);
    region.submit("tomsk", "A: не прочитано").await;
    let b = region.submit("tomsk", "B: прочитано").await;
    region.apply(&head, &b, Command::MarkSeen).await;
    let c = region.submit("tomsk", "C: решено").await;
    let c = region.apply(&head, &c, Command::MarkSeen).await;
    region.apply(&assistant, &c, resolve(Outcome::Satisfied, "Сделано")).await;
    let d = region.submit("tomsk", "D: решено и возвращено").await;
    let d = region.apply(&head, &d, Command::MarkSeen).await;
    let d = region.apply(&assistant, &d, resolve(Outcome::Declined, "Отказано")).await;
    region.apply(&head, &d, reopen("Отказ не обоснован")).await;
    region.submit("seversk", "E: не прочитано").await;

    let now = everywhere(&region, &DashboardFilter::default()).await;
    let codes: Vec<&str> = now.municipalities.iter().map(|row| row.municipality.code.as_str()).collect();
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!((codes.len(), &codes), (20, &sorted), "every municipality has a row, by code");
    assert_eq!(row(&now, "tomsk").counts, counts(4, 1, 2, 1, 0, 0), "Tomsk at once");
    assert_eq!(row(&now, "seversk").counts, counts(1, 1, 0, 0, 0, 0), "Seversk at once");
    let kedrovy = row(&now, "kedrovy");
    assert_eq!(kedrovy.counts, Counts::default(), "Kedrovy, without appeals");
    assert_eq!((kedrovy.median_hours_to_seen, kedrovy.median_hours_to_resolve), (None, None), "Kedrovy's medians");
    assert_eq!(now.counts, counts(5, 2, 2, 1, 0, 0), "the region at once");
    assert_sums("at once", &now);

    region.advance(days(3) + hours(1));
    let later = everywhere(&region, &DashboardFilter::default()).await;
    assert_eq!(row(&later, "tomsk").counts, counts(4, 1, 2, 1, 0, 1), "Tomsk after three days");
    assert_eq!(later.counts, counts(5, 2, 2, 1, 0, 2), "the region after three days");

    region.advance(days(27));
    let late = everywhere(&region, &DashboardFilter::default()).await;
    assert_eq!(row(&late, "tomsk").counts, counts(4, 1, 2, 1, 3, 1), "Tomsk after thirty days");
    assert_eq!(row(&late, "seversk").counts, counts(1, 1, 0, 0, 1, 1), "Seversk after thirty days");
    assert_eq!(late.counts, counts(5, 2, 2, 1, 4, 2), "the region after thirty days");
    assert_sums("after thirty days", &late);
    for (flag, expected) in [("overdue", late.counts.overdue), ("seenOverdue", late.counts.seen_overdue)] {
        let filter = AppealFilter {
            overdue: (flag == "overdue").then_some(true),
            seen_overdue: (flag == "seenOverdue").then_some(true),
            ..AppealFilter::default()
        };
        let listed = region.store.list_appeals(Scope::Everywhere, &filter, 100, None).await.expect("list");
        assert_eq!(listed.total_count, expected, "the dashboard and the list agree on {flag}");
    }

    let seversk_only = DashboardFilter { municipality_code: Some(code("seversk")), ..DashboardFilter::default() };
    let seversk = everywhere(&region, &seversk_only).await;
    assert_eq!(seversk.municipalities.len(), 1, "a municipality filter gives one row");
    assert_eq!(
        (seversk.counts, row(&seversk, "seversk").counts),
        (counts(1, 1, 0, 0, 1, 1), seversk.counts),
        "Seversk"
    );
    let unknown = DashboardFilter { municipality_code: Some(code("atlantis")), ..DashboardFilter::default() };
    let result = region.store.dashboard(Scope::Everywhere, &unknown).await;
    assert_eq!(outcome(&result), "Invalid(municipalityCode)", "an unknown municipality");
}

async fn the_dashboard_reports_median_hours_to_reading_and_to_resolution(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let (head, assistant) = (region.tomsk_head, region.tomsk_assistant);
    let a = region.submit("tomsk", "A").await;
    let b = region.submit("tomsk", "B").await;
    let c = region.submit("tomsk", "C").await;
    region.submit("tomsk", "D: never read").await;
    let s = region.submit("seversk", "S").await;

    region.advance(hours(2));
    let a = region.apply(&head, &a, Command::MarkSeen).await; // read after 2 h
    region.advance(hours(1) + chrono::TimeDelta::minutes(30));
    region.apply(&region.seversk_head, &s, Command::MarkSeen).await; // read after 3.5 h
    region.advance(chrono::TimeDelta::minutes(30));
    let b = region.apply(&head, &b, Command::MarkSeen).await; // read after 4 h
    region.advance(hours(1));
    let c = region.apply(&head, &c, Command::MarkSeen).await; // read after 5 h
    region.advance(hours(5));
    region.apply(&assistant, &a, resolve(Outcome::Satisfied, "Сделано")).await; // resolved after 10 h
    region.advance(hours(10));
    region.apply(&assistant, &b, resolve(Outcome::Explained, "Разъяснено")).await; // resolved after 20 h
    region.advance(hours(4));
    let c = region.apply(&assistant, &c, resolve(Outcome::Declined, "Отказано")).await; // after 24 h…
    let c = region.apply(&head, &c, reopen("Ответ не по существу")).await; // …but reopened

    let dashboard = everywhere(&region, &DashboardFilter::default()).await;
    let tomsk = row(&dashboard, "tomsk");
    assert_eq!(tomsk.median_hours_to_seen, Some(4.0), "Tomsk's median hours to reading: of 2, 4 and 5");
    assert_eq!(tomsk.median_hours_to_resolve, Some(15.0), "Tomsk's median hours to resolution: of 10 and 20");
    let seversk = row(&dashboard, "seversk");
    assert_eq!((seversk.median_hours_to_seen, seversk.median_hours_to_resolve), (Some(3.5), None), "Seversk");
    assert_eq!(row(&dashboard, "kedrovy").median_hours_to_seen, None, "Kedrovy read nothing");

    region.advance(hours(6));
    region.apply(&head, &c, resolve(Outcome::Satisfied, "Сделано со второго раза")).await; // after 30 h
    let dashboard = everywhere(&region, &DashboardFilter::default()).await;
    let tomsk = row(&dashboard, "tomsk");
    assert_eq!(tomsk.median_hours_to_seen, Some(4.0), "reopening does not change when an appeal was read");
    assert_eq!(tomsk.median_hours_to_resolve, Some(20.0), "the current resolutions count: of 10, 20 and 30");
    assert_eq!(tomsk.counts, counts(4, 1, 0, 3, 0, 0), "Tomsk’s counts: D is not yet three days old");
    assert_eq!(region.now(), t0() + hours(30), "the clock moved as the comments say");
}

async fn a_municipal_scope_sees_one_row_of_its_own(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let a = region.submit("tomsk", "A").await;
    region.submit("tomsk", "B").await;
    region.submit("seversk", "C").await;
    region.advance(hours(3));
    region.apply(&region.tomsk_head, &a, Command::MarkSeen).await;

    let tomsk = Scope::Municipality(region.tomsk.id);
    let own = region.store.dashboard(tomsk, &DashboardFilter::default()).await.expect("Tomsk's dashboard");
    let codes: Vec<&str> = own.municipalities.iter().map(|row| row.municipality.code.as_str()).collect();
    assert_eq!(codes, ["tomsk"], "a municipal scope has its own row only");
    assert_eq!(own.counts, counts(2, 1, 1, 0, 0, 0), "Tomsk's totals, without Seversk's appeal");
    assert_eq!(row(&own, "tomsk").median_hours_to_seen, Some(3.0), "Tomsk's median hours to reading");

    let named = DashboardFilter { municipality_code: Some(code("tomsk")), ..DashboardFilter::default() };
    let own_named = region.store.dashboard(tomsk, &named).await.expect("Tomsk's dashboard by name");
    assert_eq!(own_named, own, "naming one's own municipality changes nothing");
    let foreign = DashboardFilter { municipality_code: Some(code("seversk")), ..DashboardFilter::default() };
    let outside = region.store.dashboard(tomsk, &foreign).await.expect("Seversk asked from Tomsk");
    assert_eq!(
        (outside.municipalities.len(), outside.counts),
        (0, Counts::default()),
        "a municipality out of scope shows nothing"
    );
}

async fn the_dashboard_selects_appeals_by_time_of_receipt(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    region.submit("tomsk", "day one").await;
    region.advance(days(1));
    region.submit("tomsk", "day two").await;
    region.submit("seversk", "day two").await;
    region.advance(days(1));
    region.submit("tomsk", "day three").await;

    let window = |from: Option<i64>, to: Option<i64>| DashboardFilter {
        from: from.map(|d| t0() + days(d)),
        to: to.map(|d| t0() + days(d)),
        ..DashboardFilter::default()
    };
    let cases = [
        ("no window", window(None, None), 3, 1),
        ("from day two, inclusive", window(Some(1), None), 2, 1),
        ("to day two, exclusive", window(None, Some(1)), 1, 0),
        ("day two alone", window(Some(1), Some(2)), 1, 1),
        ("before everything", window(None, Some(0)), 0, 0),
        ("after everything", window(Some(3), None), 0, 0),
    ];
    for (case, filter, tomsk, seversk) in cases {
        let dashboard = everywhere(&region, &filter).await;
        assert_eq!(dashboard.municipalities.len(), 20, "{case}: every municipality keeps its row");
        assert_eq!(
            (row(&dashboard, "tomsk").counts.total, row(&dashboard, "seversk").counts.total),
            (tomsk, seversk),
            "{case}: Tomsk's and Seversk's totals"
        );
        assert_eq!(dashboard.counts.total, tomsk + seversk, "{case}: the region's total");
        assert_sums(case, &dashboard);
    }
}

/// The dashboard over all time comes from running totals; over a range of
/// receipt it is counted from the appeals. Over a range that holds every appeal
/// the two must agree exactly, medians included.
async fn assert_totals_agree(case: &str, region: &Region) {
    let tallied = everywhere(region, &DashboardFilter::default()).await;
    let window =
        DashboardFilter { from: Some(t0() - days(3650)), to: Some(region.now() + days(3650)), ..Default::default() };
    let counted = everywhere(region, &window).await;
    assert_eq!(tallied, counted, "{case}: the running totals and a count of the appeals");
    assert_sums(case, &tallied);
    // The list's totalCount comes from the same totals when it filters by
    // municipality and status only.
    for status in [None, Some(Status::Received), Some(Status::Seen), Some(Status::Resolved)] {
        for place in [None, Some("tomsk"), Some("kedrovy")] {
            let filter = AppealFilter { status, municipality_code: place.map(code), ..Default::default() };
            let page = region.store.list_appeals(Scope::Everywhere, &filter, 100, None).await.expect("the list");
            assert!(!page.has_next_page, "{case}: a walk stays under a page of 100");
            assert_eq!(page.total_count, page.appeals.len() as u64, "{case}: totalCount of {status:?} in {place:?}");
        }
    }
}

/// A seeded walk through the life of appeals in three municipalities: intake,
/// reading, resolution, reopening, extension, as the clock moves by minutes to
/// days, so that appeals cross their deadlines while open, and are read and
/// resolved before, on and after the day they fall due.
async fn walk(region: &Region, steps: usize, seed: u64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut appeals: Vec<Appeal> = Vec::new();
    let places = ["tomsk", "seversk", "kedrovy"];
    for step in 0..steps {
        match rng.random_range(0..10) {
            0..=2 => {
                let place = places[rng.random_range(0..places.len())];
                appeals.push(region.submit(place, &format!("Обращение {step}")).await);
            }
            _ if appeals.is_empty() => {}
            choice => {
                let index = rng.random_range(0..appeals.len());
                let appeal = region.fetch(appeals[index].id).await;
                let (head, assistant) = match places
                    .iter()
                    .position(|p| *p == appeal.number.split('-').next().unwrap_or("").to_lowercase())
                {
                    Some(0) => (&region.tomsk_head, &region.tomsk_assistant),
                    Some(1) => (&region.seversk_head, &region.seversk_assistant),
                    _ => (&region.governor, &region.governor),
                };
                let command = match (appeal.status, choice) {
                    (Status::Received, _) => Some(Command::MarkSeen),
                    (Status::Seen, 3..=6) => Some(resolve(Outcome::Explained, "Разъяснено")),
                    (Status::Seen, _) if !appeal.deadline_extended => {
                        Some(extend(rng.random_range(1..=30), "Нужна экспертиза"))
                    }
                    (Status::Resolved, 3..=5) => Some(reopen("Проблема осталась")),
                    _ => None,
                };
                if let Some(command) = command {
                    // Kedrovy has no head here: the governor's office may read and
                    // resolve nothing, so its appeals stay as they are.
                    if head.role != appeals_core::Role::GovernorOffice {
                        let actor = if matches!(command, Command::MarkSeen | Command::Reopen { .. }) {
                            head
                        } else {
                            assistant
                        };
                        appeals[index] = region.apply(actor, &appeal, command).await;
                    }
                }
            }
        }
        let jump = match rng.random_range(0..4) {
            0 => TimeDelta::minutes(rng.random_range(1..120)),
            1 => hours(rng.random_range(1..30)),
            2 => days(rng.random_range(1..5)),
            _ => TimeDelta::zero(),
        };
        region.advance(jump);
        if step % 10 == 9 {
            assert_totals_agree(&format!("seed {seed}, step {step}"), region).await;
        }
    }
}

async fn the_running_totals_agree_with_a_count_of_the_appeals_as_time_passes(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    walk(&region, 120, 7).await;
    // Then nothing is written, and the open appeals fall due one after another.
    for _ in 0..8 {
        region.advance(days(5));
        assert_totals_agree("after the writes", &region).await;
    }
    let dashboard = everywhere(&region, &DashboardFilter::default()).await;
    assert!(
        dashboard.counts.overdue > 0 && dashboard.counts.resolved > 0,
        "the walk left appeals of every kind: {dashboard:?}"
    );
}

async fn running_totals_lost_or_never_built_are_built_again_on_opening(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    walk(&region, 60, 11).await;
    let before = everywhere(&region, &DashboardFilter::default()).await;
    // As a database written before the totals existed: no tallies, no durations.
    region.execute("DELETE FROM deadline_tally").await;
    region.execute("DELETE FROM municipality_tally").await;
    region.execute("UPDATE appeal SET micros_to_seen = NULL, micros_to_resolution = NULL").await;
    let reopened = open_store(&region.db).await.with_clock(region.clock.clone());
    let after = reopened.dashboard(Scope::Everywhere, &DashboardFilter::default()).await.expect("the dashboard");
    assert_eq!(after, before, "the totals built on opening are the ones kept while writing");
    assert_eq!(
        region.number("SELECT COUNT(*) FROM appeal WHERE micros_to_seen IS NULL AND seen_at IS NOT NULL").await,
        0
    );
}
