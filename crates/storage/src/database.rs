//! Connecting to SQLite or PostgreSQL from one URL, and migrating safely.

use std::time::Duration;

use appeals_migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    IsolationLevel, RuntimeErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

/// How many connections to keep and how long to wait for one.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a request waits for a free connection (or for the database to
    /// answer a connection attempt) before it fails as unavailable.
    pub acquire_timeout: Duration,
    /// On PostgreSQL, the longest a statement may run before the database
    /// cancels it (`statement_timeout`): a request abandoned by its client or its
    /// own timeout then stops costing the database too. `None` for no limit.
    pub statement_timeout: Option<Duration>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self { max_connections: 16, acquire_timeout: Duration::from_secs(5), statement_timeout: None }
    }
}

/// The most connections one store (one server process) opens, on each server.
///
/// On the primary: the pool; the connection that listens for revocations
/// (`lookups`); and up to [`CANCELLING_CONNECTIONS`] at once, for a moment
/// each, ending abandoned reads (`abandon`). The migration session at start is
/// one more, but only while the pool holds its first connection, so it never
/// adds to a full pool. On the standby: the read pool, and the cancelling
/// connections when the reads they end run there (the limit is the process's,
/// shared by both servers, so each is counted against the server it may hit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionBudget {
    pub pool: u32,
    pub listeners: u32,
    /// The connection the server's event feed reads new events on.
    pub followers: u32,
    pub cancelling: u32,
    /// The read pool on the standby, if there is one.
    pub read_pool: Option<u32>,
}

/// See [`ConnectionBudget`].
pub const CANCELLING_CONNECTIONS: u32 = crate::abandon::CANCELLING_CONNECTIONS;

/// The connections that listen (`LISTEN`) on the primary, each on its own.
pub const LISTENING_CONNECTIONS: u32 = 1;

/// The connections the event feed reads on, outside the pool (see `events`).
pub const FOLLOWING_CONNECTIONS: u32 = 1;

impl ConnectionBudget {
    pub fn new(pool: &PoolSettings, read_pool: Option<&PoolSettings>) -> ConnectionBudget {
        ConnectionBudget {
            pool: pool.max_connections,
            listeners: LISTENING_CONNECTIONS,
            followers: FOLLOWING_CONNECTIONS,
            cancelling: CANCELLING_CONNECTIONS,
            read_pool: read_pool.map(|read_pool| read_pool.max_connections),
        }
    }

    /// The most this process holds on the primary at once.
    pub fn on_primary(&self) -> u32 {
        self.pool + self.listeners + self.followers + self.cancelling
    }

    /// The most this process holds on the standby at once (0 without one).
    pub fn on_standby(&self) -> u32 {
        self.read_pool.map_or(0, |read_pool| read_pool + self.cancelling)
    }
}

/// How many connections a PostgreSQL server lets ordinary users open:
/// `max_connections` less `superuser_reserved_connections`; `None` on SQLite.
pub async fn allowed_connections(db: &DatabaseConnection) -> Result<Option<u32>, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(None);
    }
    let sql = "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int";
    let row = db.query_one_raw(sea_orm::Statement::from_string(DbBackend::Postgres, sql)).await?;
    let allowed = row.map(|row| row.try_get_by_index::<i32>(0)).transpose()?;
    Ok(allowed.map(|allowed| u32::try_from(allowed).unwrap_or(0)))
}

/// Normalizes a database URL: a bare path (`appeals.db`, `/var/lib/appeals.db`)
/// is an SQLite file, and an SQLite file is created when missing.
pub fn normalize_url(url: &str) -> String {
    let url = with_scheme(url);
    if url.starts_with("sqlite:") && !url.contains("mode=") && !url.contains(":memory:") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}mode=rwc")
    } else {
        url
    }
}

/// `url` with its scheme: a string without one is a path to an SQLite file.
fn with_scheme(url: &str) -> String {
    if url.contains("://") || url.starts_with("sqlite:") { url.to_owned() } else { format!("sqlite://{url}") }
}

/// The SQLite file `url` names, as an absolute path; `None` for PostgreSQL or
/// an in-memory database.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let url = with_scheme(url);
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    let path = std::path::Path::new(path);
    Some(if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir().map(|dir| dir.join(path)).unwrap_or_else(|_| path.to_owned())
    })
}

/// What `url` names, for a message: the SQLite file's absolute path, or
/// PostgreSQL's host, port, database and user, never the password.
pub fn describe(url: &str) -> String {
    if let Some(file) = sqlite_file(url) {
        return format!("the SQLite file {}", file.display());
    }
    let url = with_scheme(url);
    match url.split_once("://") {
        Some((scheme, rest)) if scheme.starts_with("postgres") => {
            let rest = rest.split('?').next().unwrap_or_default();
            let (credentials, location) = rest.rsplit_once('@').map_or(("", rest), |(user, at)| (user, at));
            let user = credentials.split(':').next().unwrap_or_default();
            let (host, database) = location.split_once('/').unwrap_or((location, ""));
            let host = if host.is_empty() { "localhost" } else { host };
            let host =
                if host.contains(':') && !host.starts_with('[') { host.to_owned() } else { format!("{host}:5432") };
            let database = if database.is_empty() { "(the user's default database)" } else { database };
            match user {
                "" => format!("PostgreSQL at {host}, database {database}"),
                user => format!("PostgreSQL at {host}, database {database}, as {user}"),
            }
        }
        Some((scheme, _)) => format!("a `{scheme}` database, which is not supported (use sqlite:// or postgres://)"),
        None => "an unreadable database URL".to_owned(),
    }
}

/// As [`explain`]; when the pool only says it gave up waiting, one direct
/// connection attempt finds out why (refused, unknown host, wrong password).
pub async fn diagnose(url: &str, error: &DbErr) -> String {
    let timed_out = matches!(error, DbErr::ConnectionAcquire(_))
        || matches!(error, DbErr::Conn(RuntimeErr::SqlxError(error)) if matches!(error.as_ref(), sea_orm::sqlx::Error::PoolTimedOut));
    if timed_out && sqlite_file(url).is_none() {
        use sea_orm::sqlx::Connection;
        let attempt = sea_orm::sqlx::PgConnection::connect(&with_scheme(url));
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Err(cause)) => return explain(url, &DbErr::Conn(RuntimeErr::SqlxError(cause.into()))),
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
            }
            Err(_) => return format!("cannot reach {}: no answer within 5 s (is the address right?)", describe(url)),
        }
    }
    explain(url, error)
}

/// One line saying why opening `url` failed and what to do, naming what was
/// tried (the password never) and none of the driver's internals.
pub fn explain(url: &str, error: &DbErr) -> String {
    let what = describe(url);
    let sqlx = match error {
        DbErr::Conn(RuntimeErr::SqlxError(error))
        | DbErr::Exec(RuntimeErr::SqlxError(error))
        | DbErr::Query(RuntimeErr::SqlxError(error)) => Some(error.as_ref()),
        DbErr::ConnectionAcquire(_) => {
            return format!("cannot open {what}: no connection within the timeout (is it up and reachable?)");
        }
        _ => None,
    };
    let postgres = sqlite_file(url).is_none();
    match sqlx {
        Some(sea_orm::sqlx::Error::Io(io)) if postgres => {
            let reason = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    "the connection was refused: is PostgreSQL running there?".to_owned()
                }
                std::io::ErrorKind::TimedOut => "the connection timed out: is the address right?".to_owned(),
                _ => first_line(&io.to_string()),
            };
            format!("cannot reach {what}: {reason}")
        }
        Some(sea_orm::sqlx::Error::Database(database)) => {
            let code = database.code().map(|code| code.into_owned()).unwrap_or_default();
            let message = first_line(database.message());
            match code.as_str() {
                "3D000" => format!(
                    "cannot open {what}: the database does not exist; create it (`createdb`) or pass another --database-url / APPEALS_DATABASE_URL"
                ),
                "28P01" | "28000" => format!(
                    "cannot open {what}: {message}; check the user and password in --database-url / APPEALS_DATABASE_URL"
                ),
                "14" => format!(
                    "cannot open {what}: the file cannot be opened or created (does its folder exist, and may this user write there?)"
                ),
                _ => format!("cannot open {what}: {message}"),
            }
        }
        Some(sea_orm::sqlx::Error::Configuration(cause)) => {
            format!(
                "cannot open {what}: the database URL is not valid ({}); write sqlite://FILE, a path, or postgres://USER@HOST:PORT/DB",
                first_line(&cause.to_string())
            )
        }
        Some(other) => format!("cannot open {what}: {}", first_line(&other.to_string())),
        None => format!("cannot open {what}: {}", first_line(&error.to_string())),
    }
}

/// The first line of a driver's message, without a trailing source position.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    match line.rfind(" at line ") {
        Some(at) => line[..at].trim_end().to_owned(),
        None => line.to_owned(),
    }
}

/// Each SQLite connection's page cache, in KiB when negative: 1 MiB rather than
/// SQLite's default 2 MiB, so that a full pool of connections scanning at once
/// stays within a few megabytes (the operating system caches the file anyway).
const SQLITE_CACHE_SIZE: &str = "-1024";

/// How long an SQLite connection waits for another one's lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a pool on `url` (`sqlite://…` or `postgres://…`). SQLite runs in WAL mode
/// with `synchronous = NORMAL` (a committed write survives a crash of the process;
/// the last moments before a power loss may not), a busy timeout and foreign keys.
///
/// Switching a fresh SQLite file to WAL takes an exclusive lock, and SQLite answers
/// "database is locked" at once, without waiting, to a connection that would
/// deadlock on it; so pools opening one fresh file at the same moment retry for as
/// long as the busy timeout. Once the file is in WAL mode, no connection needs that lock.
pub async fn connect(url: &str, settings: PoolSettings) -> Result<DatabaseConnection, DbErr> {
    let started = std::time::Instant::now();
    loop {
        match open_pool(url, settings).await {
            Err(error) if is_sqlite_busy(&error) && started.elapsed() < SQLITE_BUSY_TIMEOUT => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            opened => return opened,
        }
    }
}

/// Whether `error` is SQLite's SQLITE_BUSY (primary result code 5).
fn is_sqlite_busy(error: &DbErr) -> bool {
    let (DbErr::Conn(RuntimeErr::SqlxError(error)) | DbErr::Exec(RuntimeErr::SqlxError(error))) = error else {
        return false;
    };
    let Some(database) = error.as_database_error() else { return false };
    database.try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>().is_some()
        && database.code().and_then(|code| code.parse::<i32>().ok()).is_some_and(|code| code & 0xff == 5)
}

async fn open_pool(url: &str, settings: PoolSettings) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(normalize_url(url));
    options
        .max_connections(settings.max_connections)
        .min_connections(1)
        .acquire_timeout(settings.acquire_timeout)
        .connect_timeout(settings.acquire_timeout)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|sqlite| {
            sqlite
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
                .pragma("cache_size", SQLITE_CACHE_SIZE)
        })
        .map_sqlx_sqlite_pool_opts(crate::abandon::with_sqlite_slots);
    if let Some(timeout) = settings.statement_timeout {
        let milliseconds = timeout.as_millis().max(1).to_string();
        options.map_sqlx_postgres_opts(move |postgres| postgres.options([("statement_timeout", milliseconds.clone())]));
    }
    Database::connect(options).await
}

/// Applies pending migrations. On PostgreSQL an advisory lock, held on one
/// dedicated connection, makes replicas that start at once migrate one at a time
/// (sea-orm-migration takes no lock of its own). On SQLite every pending migration
/// runs in one IMMEDIATE transaction: a second process or pool opening the same
/// file waits for the write lock and then finds nothing pending (unlocked, both
/// would apply the migrations and one would fail on `seaql_migrations`), and a
/// migration that fails leaves nothing half-applied, since SQLite's DDL is
/// transactional. The dashboard's tallies that are missing are then built under
/// the same lock.
pub async fn migrate(db: &DatabaseConnection, url: &str) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        let txn = begin_write(db).await?;
        refuse_a_newer_schema(&txn).await?;
        Migrator::up(&txn, None).await?;
        build_missing_tallies(&txn).await?;
        analyse_missing_texts(&txn).await?;
        return txn.commit().await;
    }
    const MIGRATION_LOCK: i64 = 0x0a99_ea15;
    let mut options = ConnectOptions::new(normalize_url(url));
    options.max_connections(1).min_connections(1).sqlx_logging(false);
    let session = Database::connect(options).await?;
    session.execute_unprepared(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})")).await?;
    let up = async {
        refuse_a_newer_schema(&session).await?;
        Migrator::up(&session, None).await
    };
    let migrated = match up.await {
        Ok(()) => match build_missing_tallies_in_transaction(&session).await {
            Ok(()) => analyse_missing_texts(&session).await,
            Err(error) => Err(error),
        },
        Err(error) => Err(error),
    };
    let unlocked = session.execute_unprepared(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")).await;
    session.close().await?;
    migrated.and(unlocked.map(|_| ()))
}

/// The version of the schema this binary writes: its newest migration's name.
pub fn schema_version() -> String {
    Migrator::migrations().last().map(|migration| migration.name().to_owned()).unwrap_or_default()
}

/// Refuses a database whose schema has migrations this binary does not know:
/// a newer binary migrated it, and this one would misread it. The message
/// names both versions (the newest migration of each).
pub async fn refuse_a_newer_schema(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let known: Vec<String> = Migrator::migrations().iter().map(|migration| migration.name().to_owned()).collect();
    let applied = Migrator::get_migration_models(db).await?;
    let unknown: Vec<&str> = applied
        .iter()
        .map(|model| model.version.as_str())
        .filter(|version| !known.iter().any(|k| k == version))
        .collect();
    match (unknown.iter().max(), known.last()) {
        (Some(newest_applied), Some(newest_known)) => Err(DbErr::Custom(format!(
            "the database's schema is at version {newest_applied}, newer than this binary's {newest_known} \
             ({} migration(s) it does not know); run a binary at least as new as the one that migrated it",
            unknown.len()
        ))),
        _ => Ok(()),
    }
}

/// The dashboard's tallies of municipalities that have none yet: right after the
/// migration that created them, those of every municipality.
async fn build_missing_tallies(txn: &DatabaseTransaction) -> Result<(), DbErr> {
    crate::dashboard::build_missing(txn).await.map_err(|error| match error {
        crate::error::StorageError::Database(error) | crate::error::StorageError::Unavailable(error) => error,
        other => DbErr::Custom(other.to_string()),
    })
}

/// The word search's terms of the appeals stored before it existed, with the
/// progress logged for a large table. On PostgreSQL each batch commits on its
/// own, so a start interrupted half-way resumes where it stopped.
async fn analyse_missing_texts(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let mut logged = std::time::Instant::now();
    let analysed = crate::search::analyse_missing(db, &mut |progress: crate::search::AnalysisProgress| {
        if logged.elapsed() >= Duration::from_secs(2) || progress.analysed == progress.total {
            tracing::info!(
                analysed = progress.analysed,
                total = progress.total,
                "analysing the texts of stored appeals for the word search"
            );
            logged = std::time::Instant::now();
        }
    })
    .await?;
    if analysed > 0 {
        tracing::info!(analysed, "the stored appeals' texts are analysed for the word search");
    }
    Ok(())
}

async fn build_missing_tallies_in_transaction(db: &DatabaseConnection) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    build_missing_tallies(&txn).await?;
    txn.commit().await
}

/// Begins a write transaction. On SQLite it begins IMMEDIATE, taking the write
/// lock at once: a deferred transaction that reads and then writes can find the
/// lock taken and fail with "database is locked" instead of waiting its turn.
pub(crate) async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        isolation_level: None,
        access_mode: None,
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
    })
    .await
}

/// Begins a read-only transaction that sees one consistent snapshot, so that
/// several queries answering one request (a page and its total) agree.
pub(crate) async fn begin_read(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let postgres = db.get_database_backend() == DbBackend::Postgres;
    db.begin_with_options(TransactionOptions {
        isolation_level: postgres.then_some(IsolationLevel::RepeatableRead),
        access_mode: postgres.then_some(AccessMode::ReadOnly),
        sqlite_transaction_mode: None,
    })
    .await
}
