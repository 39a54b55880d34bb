//! Reads on a PostgreSQL hot standby: where lists, dashboards and searches run
//! when the server has a read URL, and how they still see every change
//! committed before them.
//!
//! A [`Store`] may hold a second pool, the reader, on a streaming standby of its
//! database. [`Store::read_routed`] is the one place that decides where a read
//! runs; the reads that grow with the data (the list page and its total, the
//! searches' plans, the dashboard) go through it, and everything else (commands,
//! what a command reads in its transaction, one appeal, histories, users)
//! stays on the primary, never asking.
//!
//! **Read-your-writes, for every client, without its help.** Before a routed
//! read, the primary says how far its WAL is flushed (`pg_current_wal_flush_lsn()`,
//! no table touched): every transaction committed before that moment has its
//! commit record at or below this position (a commit is flushed before the
//! client hears of it). The standby is then asked how far it has replayed
//! (`pg_last_wal_replay_lsn()`), a few milliseconds apart, until it has replayed
//! that far; replay is the server's, not a session's, so every snapshot the
//! standby takes from then on sees those commits, and the read's transaction
//! begins only then. If the standby has not caught up within the configured
//! wait ([`StandbySettings::max_lag`]), does not answer, fails the read (a
//! conflict with recovery, a broken connection), or is no longer in recovery,
//! the read runs on the primary instead: slower, never stale, never an error
//! the primary would not have given. Each routed read is counted in
//! `appeals_reads_total{on, why}`, and a read sent back to the primary is
//! warned about in the log at most once every [`WARN_EVERY`].
//!
//! A standby that gives no answer within the wait is left alone for
//! [`RESTING`], so that a standby that is down costs the reads nothing more
//! than that one wait.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, RuntimeErr, Statement};

use crate::Store;
use crate::database::{self, PoolSettings};
use crate::error::{Result, StorageError};

/// How often at most a read sent back to the primary is warned about.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// How long a standby that did not answer within the wait is left alone.
pub const RESTING: Duration = Duration::from_secs(1);

/// The longest pause between two looks at the standby's replay position.
const LONGEST_PAUSE: Duration = Duration::from_millis(8);

/// The reader's pool and how long a read waits for the standby to catch up.
#[derive(Debug, Clone, Copy)]
pub struct StandbySettings {
    pub pool: PoolSettings,
    /// How long a routed read waits for the standby to replay what the primary
    /// had flushed when the read began; beyond it, the read runs on the primary.
    pub max_lag: Duration,
}

/// Why a read URL is refused at start. The server does not start with it.
#[derive(Debug, thiserror::Error)]
pub enum StandbyRefused {
    /// The read URL, or the primary, is not PostgreSQL.
    #[error("{0}")]
    NotPostgres(String),
    /// The standby cannot be opened (the message says why, as for the primary).
    #[error("{0}")]
    Unreachable(String),
    /// The read URL names a server that is not a hot standby of the primary's
    /// cluster, or another database of it.
    #[error("{0}")]
    NotTheSameDatabase(String),
}

/// How many routed reads ran where, since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadsRouted {
    pub on_standby: u64,
    pub on_primary: u64,
}

/// The reader: a pool on the standby, and what it remembers of it.
pub(crate) struct Reader {
    db: DatabaseConnection,
    max_lag: Duration,
    /// Until when the standby is left alone, after it gave no answer.
    resting_until: Mutex<Option<Instant>>,
    /// When a fallback was last warned about, and how many since went unsaid.
    warned: Mutex<(Option<Instant>, u64)>,
    on_standby: AtomicU64,
    on_primary: AtomicU64,
}

/// Why a routed read ran on the primary (the metric's `why`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fallback {
    /// The standby had not replayed far enough within the wait.
    Lagging,
    /// The standby gave no answer within the wait, or is left alone after that.
    Unreachable,
    /// The read failed on the standby (a conflict with recovery, a broken
    /// connection) and ran again on the primary.
    Failed,
    /// The standby is no longer in recovery (promoted): it may have forked.
    NotStandby,
}

impl Fallback {
    fn as_str(self) -> &'static str {
        match self {
            Fallback::Lagging => "lagging",
            Fallback::Unreachable => "unreachable",
            Fallback::Failed => "failed",
            Fallback::NotStandby => "not_standby",
        }
    }
}

/// A WAL position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Lsn(u64);

impl Lsn {
    /// PostgreSQL's text form, `16/B374D848`.
    fn parse(text: &str) -> Option<Lsn> {
        let (high, low) = text.split_once('/')?;
        let high = u64::from_str_radix(high, 16).ok()?;
        let low = u64::from_str_radix(low, 16).ok()?;
        (high <= u64::from(u32::MAX) && low <= u64::from(u32::MAX)).then_some(Lsn(high << 32 | low))
    }
}

impl Store {
    /// This store, with reads routed to the hot standby at `url` (see the
    /// module's documentation). Refused unless both this store's database and
    /// `url` are PostgreSQL, the standby answers, is in recovery, and is a copy
    /// of the same cluster (`pg_control_system().system_identifier`) opened on
    /// the same database. The standby is never migrated.
    pub async fn with_standby(
        mut self,
        url: &str,
        settings: StandbySettings,
    ) -> std::result::Result<Store, StandbyRefused> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StandbyRefused::NotPostgres(
                "the read URL (--database-read-url / APPEALS_DATABASE_READ_URL) must be a postgres:// URL of a hot standby"
                    .to_owned(),
            ));
        }
        if self.db().get_database_backend() != DbBackend::Postgres {
            return Err(StandbyRefused::NotPostgres(
                "a read URL (--database-read-url / APPEALS_DATABASE_READ_URL) needs a PostgreSQL database URL: SQLite has no standby"
                    .to_owned(),
            ));
        }
        let mut reader = match database::connect(url, settings.pool).await {
            Ok(reader) => reader,
            Err(error) => {
                return Err(StandbyRefused::Unreachable(format!(
                    "the read URL: {}",
                    database::diagnose(url, &error).await
                )));
            }
        };
        let refuse = |message: String| {
            StandbyRefused::NotTheSameDatabase(format!("the read URL names {}: {message}", database::describe(url)))
        };
        let unreadable = |error: DbErr| refuse(format!("it cannot be asked what it is ({error})"));
        let primary =
            identify(self.db()).await.map_err(|error| refuse(format!("the primary cannot be asked ({error})")))?;
        let standby = identify(&reader).await.map_err(unreadable)?;
        if !standby.in_recovery {
            let _ = reader.close().await;
            return Err(refuse("it is not a hot standby (pg_is_in_recovery() is false)".to_owned()));
        }
        if standby.system != primary.system {
            let _ = reader.close().await;
            return Err(refuse(format!(
                "it is a standby of another cluster (system identifier {}, the primary's is {})",
                standby.system, primary.system
            )));
        }
        if standby.database != primary.database {
            let _ = reader.close().await;
            return Err(refuse(format!(
                "it opens the database {}, the primary's URL opens {}",
                standby.database, primary.database
            )));
        }
        self.observe_statements(&mut reader);
        self.reader = Some(std::sync::Arc::new(Reader {
            db: reader,
            max_lag: settings.max_lag,
            resting_until: Mutex::new(None),
            warned: Mutex::new((None, 0)),
            on_standby: AtomicU64::new(0),
            on_primary: AtomicU64::new(0),
        }));
        Ok(self)
    }

    /// Whether reads are routed to a standby.
    pub fn has_standby(&self) -> bool {
        self.reader.is_some()
    }

    /// How many routed reads ran on the standby and on the primary (all zero
    /// without a standby).
    pub fn reads_routed(&self) -> ReadsRouted {
        self.reader.as_ref().map_or_else(ReadsRouted::default, |reader| ReadsRouted {
            on_standby: reader.on_standby.load(Ordering::Relaxed),
            on_primary: reader.on_primary.load(Ordering::Relaxed),
        })
    }

    /// Runs `read` on the standby once it has replayed every change committed
    /// before this call, or on the primary (see the module's documentation).
    /// `read` may run twice: on the standby, and, when it fails there for the
    /// standby's own reasons, on the primary.
    ///
    /// `read` is given a handle on the pool (a cheap clone), not a reference:
    /// a closure over a borrowed pool would make a future that is `Send` for
    /// no lifetime the compiler can name, which the API's resolvers need.
    pub(crate) async fn read_routed<T, F>(&self, read: impl Fn(DatabaseConnection) -> F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let Some(reader) = self.reader.as_deref() else { return read(self.db().clone()).await };
        match reader.caught_up(self.db()).await? {
            Ok(()) => match read(reader.db.clone()).await {
                Ok(value) => {
                    reader.on_standby.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("appeals_reads_total", "on" => "standby", "why" => "caught_up").increment(1);
                    Ok(value)
                }
                Err(error) if standby_trouble(&error) => {
                    reader.fell_back(Fallback::Failed, Some(&error));
                    read(self.db().clone()).await
                }
                Err(error) => Err(error),
            },
            Err(fallback) => {
                reader.fell_back(fallback, None);
                read(self.db().clone()).await
            }
        }
    }

    /// How many connections the primary and the standby (if any) let ordinary
    /// users open; `None` on SQLite.
    pub async fn allowed_connections(&self) -> Result<(Option<u32>, Option<u32>)> {
        let primary = database::allowed_connections(self.db()).await?;
        let standby = match &self.reader {
            Some(reader) => database::allowed_connections(&reader.db).await?,
            None => None,
        };
        Ok((primary, standby))
    }

    pub(crate) fn close_standby(&self) -> Option<DatabaseConnection> {
        self.reader.as_ref().map(|reader| reader.db.clone())
    }
}

impl Reader {
    /// `Ok(Ok(()))` once the standby has replayed what the primary had flushed
    /// when this was called; `Ok(Err(why))` when the read should run on the
    /// primary; `Err` when the primary cannot say where its WAL is (the
    /// primary is in trouble: so would the read be, there).
    async fn caught_up(&self, primary: &DatabaseConnection) -> Result<std::result::Result<(), Fallback>> {
        if self.resting() {
            return Ok(Err(Fallback::Unreachable));
        }
        let target = flushed(primary).await?;
        let deadline = tokio::time::Instant::now() + self.max_lag;
        let mut pause = Duration::from_millis(1);
        let mut answered = false;
        loop {
            match tokio::time::timeout_at(deadline, replayed(&self.db)).await {
                Err(_) if answered => return Ok(Err(Fallback::Lagging)),
                Err(_) => {
                    self.rest();
                    return Ok(Err(Fallback::Unreachable));
                }
                Ok(Err(_)) => {
                    self.rest();
                    return Ok(Err(Fallback::Unreachable));
                }
                Ok(Ok(None)) => return Ok(Err(Fallback::NotStandby)),
                Ok(Ok(Some(position))) if position >= target => return Ok(Ok(())),
                Ok(Ok(Some(_))) => answered = true,
            }
            if tokio::time::Instant::now() + pause >= deadline {
                return Ok(Err(Fallback::Lagging));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }

    fn resting(&self) -> bool {
        let mut until = self.resting_until.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match *until {
            Some(instant) if Instant::now() < instant => true,
            Some(_) => {
                *until = None;
                false
            }
            None => false,
        }
    }

    fn rest(&self) {
        *self.resting_until.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now() + RESTING);
    }

    /// Counts a read sent to the primary, and warns about it unless it did
    /// within [`WARN_EVERY`].
    fn fell_back(&self, why: Fallback, error: Option<&StorageError>) {
        self.on_primary.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("appeals_reads_total", "on" => "primary", "why" => why.as_str()).increment(1);
        let unsaid = {
            let mut warned = self.warned.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match warned.0 {
                Some(last) if last.elapsed() < WARN_EVERY => {
                    warned.1 += 1;
                    return;
                }
                _ => {
                    let unsaid = warned.1;
                    *warned = (Some(Instant::now()), 0);
                    unsaid
                }
            }
        };
        let why = why.as_str();
        match error {
            Some(error) => tracing::warn!(why, %error, unsaid, "a read ran on the primary: it failed on the standby"),
            None => tracing::warn!(why, max_lag = ?self.max_lag, unsaid, "a read ran on the primary, not the standby"),
        }
    }
}

/// What a server says it is.
struct Identity {
    in_recovery: bool,
    system: String,
    database: String,
}

async fn identify(db: &DatabaseConnection) -> std::result::Result<Identity, DbErr> {
    let sql = "SELECT pg_is_in_recovery() AS in_recovery, \
               (SELECT system_identifier FROM pg_control_system())::text AS system, \
               current_database()::text AS database";
    let row = db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await?;
    let row = row.ok_or_else(|| DbErr::Custom("no row".to_owned()))?;
    Ok(Identity {
        in_recovery: row.try_get("", "in_recovery")?,
        system: row.try_get("", "system")?,
        database: row.try_get("", "database")?,
    })
}

/// How far the primary's WAL is flushed.
async fn flushed(primary: &DatabaseConnection) -> Result<Lsn> {
    let sql = "SELECT pg_current_wal_flush_lsn()::text AS flushed";
    let row = primary.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await?;
    let text: String =
        row.ok_or_else(|| StorageError::Corrupt("no WAL position".to_owned()))?.try_get("", "flushed")?;
    Lsn::parse(&text).ok_or_else(|| StorageError::Corrupt(format!("an unreadable WAL position {text}")))
}

/// How far the standby has replayed; `None` when it is not in recovery.
async fn replayed(standby: &DatabaseConnection) -> std::result::Result<Option<Lsn>, DbErr> {
    let sql = "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END AS replayed";
    let row = standby.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await?;
    let text: Option<String> = row.map(|row| row.try_get("", "replayed")).transpose()?.flatten();
    // An unreadable position counts as not far enough: the read waits, then
    // runs on the primary.
    Ok(text.map(|text| Lsn::parse(&text).unwrap_or(Lsn(0))))
}

/// Whether a read failed for the standby's own reasons, so that the primary
/// may answer it instead: the connection broke or could not be had, recovery
/// cancelled the statement (SQLSTATE 40001) or ended the session (57P01,
/// 57P04), or the standby is starting or stopping (57P03). A statement that
/// ran out of time (57014) is not tried again.
fn standby_trouble(error: &StorageError) -> bool {
    let error = match error {
        StorageError::Unavailable(_) => return true,
        StorageError::Database(error) => error,
        _ => return false,
    };
    let (DbErr::Exec(RuntimeErr::SqlxError(error)) | DbErr::Query(RuntimeErr::SqlxError(error))) = error else {
        return false;
    };
    match error.as_ref() {
        sea_orm::sqlx::Error::Io(_) | sea_orm::sqlx::Error::PoolTimedOut | sea_orm::sqlx::Error::PoolClosed => true,
        sea_orm::sqlx::Error::Database(database) => {
            matches!(database.code().as_deref(), Some("40001" | "57P01" | "57P03" | "57P04"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    use super::{Lsn, StandbySettings};
    use crate::abandon::CancellableRead;
    use crate::testing::{Backend, ThrowawayDatabase};
    use crate::{PoolSettings, ReadsRouted, Store};

    #[test]
    fn wal_positions_are_read_as_postgresql_writes_them() {
        assert_eq!(Lsn::parse("0/0"), Some(Lsn(0)));
        assert_eq!(Lsn::parse("16/B374D848"), Some(Lsn(0x16_B374_D848)));
        assert!(Lsn::parse("0/3000028") > Lsn::parse("0/3000000"));
        assert!(Lsn::parse("1/0") > Lsn::parse("0/FFFFFFFF"));
        for unreadable in ["", "0", "x/1", "1/2/3", "100000000/0"] {
            assert_eq!(Lsn::parse(unreadable), None, "{unreadable:?}");
        }
    }

    /// A store on a fresh PostgreSQL database whose reads go to the test
    /// standby with a read pool of `read_pool` connections; `None` without
    /// PostgreSQL or a standby (outside CI).
    async fn store_with_standby(
        read_pool: u32,
        statement_timeout: Option<Duration>,
    ) -> Option<(Store, ThrowawayDatabase)> {
        let database = ThrowawayDatabase::create(Backend::Postgres).await?;
        let standby = database.on_standby().await?;
        let store = Store::open(&database.url, PoolSettings::default()).await.expect("the store opens");
        let pool =
            PoolSettings { max_connections: read_pool, acquire_timeout: Duration::from_secs(5), statement_timeout };
        let settings = StandbySettings { pool, max_lag: Duration::from_secs(5) };
        let store = store.with_standby(&standby, settings).await.expect("the standby is accepted");
        Some((store, database))
    }

    fn sql(text: &str) -> Statement {
        Statement::from_string(DbBackend::Postgres, text)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_routed_read_runs_on_a_server_in_recovery_and_other_reads_on_the_primary() {
        let Some((store, _database)) = store_with_standby(2, None).await else { return };
        let in_recovery = async |db: sea_orm::DatabaseConnection| -> crate::error::Result<bool> {
            let row = db.query_one_raw(sql("SELECT pg_is_in_recovery()")).await?.expect("a row");
            Ok(row.try_get_by_index::<bool>(0)?)
        };
        assert!(store.read_routed(in_recovery).await.expect("the read runs"), "a routed read runs on the standby");
        assert!(
            !in_recovery(store.db().clone()).await.expect("the read runs"),
            "the store's own pool is the primary's"
        );
        assert_eq!(store.reads_routed(), ReadsRouted { on_standby: 1, on_primary: 0 });
    }

    /// With one connection in the read pool, a read abandoned on the standby in
    /// the middle of an endless statement is ended there (its cancelling
    /// connection goes to the standby), so the next routed reads find the
    /// connection free and still run on the standby; and a statement that
    /// outlives the statement timeout fails, on the standby, without being run
    /// again on the primary.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn abandoned_and_timed_out_reads_stop_on_the_standby() {
        let Some((store, _database)) = store_with_standby(1, Some(Duration::from_millis(1500))).await else { return };
        for round in 0..3 {
            let abandoned = store.read_routed(async |db| {
                let read = CancellableRead::begin(&db).await?;
                read.txn().query_one_raw(sql("SELECT pg_sleep(600)")).await?;
                read.commit().await
            });
            let outcome = tokio::time::timeout(Duration::from_millis(300), abandoned).await;
            assert!(outcome.is_err(), "round {round}: the endless statement was still running when abandoned");
            let started = Instant::now();
            store
                .read_routed(async |db| Ok(db.query_one_raw(sql("SELECT 1")).await?))
                .await
                .expect("the next read runs");
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "round {round}: the connection came back after {:?}",
                started.elapsed()
            );
        }
        let timed_out = store.read_routed(async |db| Ok(db.query_one_raw(sql("SELECT pg_sleep(3)")).await?)).await;
        assert!(timed_out.is_err(), "a statement beyond the statement timeout fails");
        assert_eq!(store.reads_routed().on_primary, 0, "every read ran on the standby: {:?}", store.reads_routed());
    }
}
