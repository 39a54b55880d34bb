//! Reads on a hot standby (PostgreSQL only: SQLite has none). The lists, the
//! searches and the dashboard run on the standby and see every write made
//! before them, through whichever pool; when the standby cannot be reached they
//! run on the primary, and a read URL that is not a standby of the same
//! database is refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use appeals_core::Scope;
use appeals_storage::testing::{Backend, ThrowawayDatabase};
use appeals_storage::{
    AppealFilter, DashboardFilter, PoolSettings, ReadsRouted, StandbyRefused, StandbySettings, Store,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::support::{Region, code, open_store};

/// A region whose store reads from the test standby, waiting up to `max_lag`
/// for it; `None` without PostgreSQL or a standby (outside CI).
async fn region_with_standby(max_lag: Duration) -> Option<(Region, String)> {
    let mut region = Region::open(Backend::Postgres).await?;
    let standby = region.db.on_standby().await?;
    region.store =
        region.store.clone().with_standby(&standby, settings(max_lag)).await.expect("the standby is accepted");
    Some((region, standby))
}

fn settings(max_lag: Duration) -> StandbySettings {
    StandbySettings { pool: PoolSettings::default(), max_lag }
}

fn in_tomsk() -> AppealFilter {
    AppealFilter { municipality_code: Some(code("tomsk")), ..AppealFilter::default() }
}

fn containing(text: &str) -> AppealFilter {
    AppealFilter { text: Some(text.to_owned()), ..AppealFilter::default() }
}

/// Eight writers at once, each submitting and then at once reading back: the
/// list's total, the dashboard's count, a search for the appeal's own word and
/// the page without a total all include it, and every read ran on the standby.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lists_searches_and_dashboards_run_on_the_standby_and_see_every_write_before_them() {
    // A wait long enough that a busy test machine never sends a read to the
    // primary: this test is about where reads run and what they see.
    let Some((region, _)) = region_with_standby(Duration::from_secs(10)).await else { return };
    let region = Arc::new(region);
    let committed = Arc::new(AtomicU64::new(0));
    let mut writers = JoinSet::new();
    for writer in 0..8 {
        let (region, committed) = (Arc::clone(&region), Arc::clone(&committed));
        writers.spawn(async move {
            for round in 0..12 {
                let word = format!("слово{writer}x{round}");
                let appeal = region.submit("tomsk", &format!("Обращение {word}")).await;
                let at_least = committed.fetch_add(1, Ordering::SeqCst) + 1;
                let case = format!("writer {writer}, round {round}");

                let page = region.store.list_appeals(Scope::Everywhere, &in_tomsk(), 5, None).await.expect("a list");
                assert!(page.total_count >= at_least, "{case}: the list's total {} < {at_least}", page.total_count);
                let dashboard =
                    region.store.dashboard(Scope::Everywhere, &DashboardFilter::default()).await.expect("a dashboard");
                assert!(dashboard.counts.total >= at_least, "{case}: the dashboard's total {}", dashboard.counts.total);
                let found = region.store.list_appeals(Scope::Everywhere, &containing(&word), 5, None).await;
                let found = found.expect("a search");
                assert_eq!(found.total_count, 1, "{case}: the search finds the appeal just written");
                assert_eq!(found.appeals.first().map(|found| found.id), Some(appeal.id), "{case}");
                let (uncounted, _) = region
                    .store
                    .list_appeals_uncounted(Scope::Everywhere, &containing(&word), 5, None)
                    .await
                    .expect("a page");
                assert_eq!(uncounted.len(), 1, "{case}: the page without a total has it too");
            }
        });
    }
    while let Some(finished) = writers.join_next().await {
        finished.expect("a writer finished");
    }
    let dashboard = region.store.dashboard(Scope::Everywhere, &DashboardFilter::default()).await.expect("a dashboard");
    assert_eq!(dashboard.counts.total, 96);
    assert_eq!(
        region.store.reads_routed(),
        ReadsRouted { on_standby: 8 * 12 * 4 + 1, on_primary: 0 },
        "every read ran on the standby"
    );
}

/// A TCP forwarder to the standby that can be cut: the standby as the server
/// sees it, until the network between them fails.
struct Forwarder {
    port: u16,
    tasks: JoinSet<()>,
}

impl Forwarder {
    async fn to(target: String) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Forwarder { port, tasks }
    }

    /// Closes the port and every connection through it.
    async fn cut(mut self) {
        self.tasks.shutdown().await;
    }
}

/// `HOST:PORT` of a `postgres://USER@HOST:PORT/DB` URL.
fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// The standby's network fails after start: every read still answers, from the
/// primary, with the writes made just before it, and a standby that does not
/// answer costs a read no more than the wait (then nothing, while it rests).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_run_on_the_primary_when_the_standby_cannot_be_reached() {
    let Some(mut region) = Region::open(Backend::Postgres).await else { return };
    let Some(standby) = region.db.on_standby().await else { return };
    let forwarder = Forwarder::to(authority(&standby)).await;
    let through = standby.replace(&authority(&standby), &format!("127.0.0.1:{}", forwarder.port));
    let max_lag = Duration::from_millis(200);
    region.store =
        region.store.clone().with_standby(&through, settings(max_lag)).await.expect("the standby is accepted");

    region.submit("tomsk", "Перед обрывом").await;
    let page = region.store.list_appeals(Scope::Everywhere, &in_tomsk(), 5, None).await.expect("a list");
    assert_eq!(page.total_count, 1);
    assert_eq!(region.store.reads_routed(), ReadsRouted { on_standby: 1, on_primary: 0 });

    forwarder.cut().await;
    for round in 1..=20u64 {
        region.submit("tomsk", &format!("После обрыва {round}")).await;
        let started = Instant::now();
        let page = region.store.list_appeals(Scope::Everywhere, &in_tomsk(), 5, None).await;
        let page = page.unwrap_or_else(|error| panic!("round {round}: the list failed: {error}"));
        assert_eq!(page.total_count, round + 1, "round {round}: the list sees every write");
        let dashboard = region.store.dashboard(Scope::Everywhere, &DashboardFilter::default()).await;
        let dashboard = dashboard.unwrap_or_else(|error| panic!("round {round}: the dashboard failed: {error}"));
        assert_eq!(dashboard.counts.total, round + 1, "round {round}: the dashboard sees every write");
        let took = started.elapsed();
        assert!(took < max_lag * 2 + Duration::from_secs(1), "round {round}: two reads took {took:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let routed = region.store.reads_routed();
    assert_eq!(routed, ReadsRouted { on_standby: 1, on_primary: 40 }, "the reads after the cut ran on the primary");
}

/// A read URL that is not a hot standby of the same database is refused at
/// start, saying why: nothing listening, the primary itself, another database
/// of the standby, and a store on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_url_that_is_not_a_standby_of_the_same_database_is_refused() {
    let Some(database) = ThrowawayDatabase::create(Backend::Postgres).await else { return };
    let Some(standby) = database.on_standby().await else { return };
    let store = open_store(&database).await;
    let refusal = async |url: &str| -> StandbyRefused {
        match store.clone().with_standby(url, settings(Duration::from_millis(100))).await {
            Ok(_) => panic!("{url} was accepted as a standby"),
            Err(refused) => refused,
        }
    };

    let nothing = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.local_addr().expect("an address").port()
    };
    let unreachable = refusal(&format!("postgres://postgres@127.0.0.1:{nothing}/appeals")).await;
    assert!(
        matches!(&unreachable, StandbyRefused::Unreachable(message) if message.contains("refused")),
        "{unreachable:?}"
    );
    let primary = refusal(&database.url).await;
    assert!(
        matches!(&primary, StandbyRefused::NotTheSameDatabase(message) if message.contains("not a hot standby")),
        "{primary:?}"
    );
    let other_database = standby.rsplit_once('/').map(|(base, _)| format!("{base}/postgres")).expect("a URL");
    let other = refusal(&other_database).await;
    assert!(
        matches!(&other, StandbyRefused::NotTheSameDatabase(message) if message.contains("opens the database postgres")),
        "{other:?}"
    );
    let not_postgres = refusal("sqlite://replica.db").await;
    assert!(matches!(not_postgres, StandbyRefused::NotPostgres(_)), "{not_postgres:?}");

    let sqlite = ThrowawayDatabase::create(Backend::Sqlite).await.expect("SQLite is always there");
    let on_sqlite = Store::open(&sqlite.url, PoolSettings::default()).await.expect("the store opens");
    let refused = on_sqlite.with_standby(&standby, settings(Duration::from_millis(100))).await;
    assert!(matches!(refused, Err(StandbyRefused::NotPostgres(_))), "a store on SQLite takes no standby");
}
