//! Work a request abandons stops in the database too.
//!
//! A request is abandoned when its client goes away or its time runs out: the
//! server drops its future, and with it the future of the statement it awaits.
//! Dropping a future does not stop the database, though: the statement would run
//! on to its end and hold its connection all the while, so that a handful of
//! abandoned searches could take the whole pool. A read whose cost grows with the
//! data (a search, a count over a filter) therefore runs as a [`CancellableRead`]:
//! a read transaction that knows which database session runs it, and stops that
//! session's statement when it is dropped unfinished.
//!
//! - **PostgreSQL**: the transaction first reads its backend's process id and
//!   start time; when dropped unfinished it asks the database, on a connection
//!   of its own (the pool's may all be taken), to end that backend, but only
//!   while it is still in the same transaction, so whoever uses the connection
//!   next is never hit. Ended, not merely cancelled: after `pg_cancel_backend`
//!   sqlx, which returns the connection to the pool by pinging it, waits on it
//!   for good (seen with sqlx 0.9), and the pool loses the connection; an ended
//!   session fails the ping, and the pool opens another connection.
//! - **SQLite**: each connection of the pool is given a [`Slot`] when it opens,
//!   whose number the connection tells by a collation's name, and a progress
//!   handler that interrupts the running statement once the slot is marked. The
//!   transaction reads its slot's number first; when dropped unfinished it marks
//!   the slot, before the transaction's own rollback is queued; the rollback hook
//!   clears the mark, so it reaches nothing after the abandoned transaction.
//!
//! Beyond this, every statement on PostgreSQL has the request timeout as its
//! `statement_timeout` (`database.rs`), so no statement outlives its request by
//! much, cancellable or not.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use chrono::{DateTime, Utc};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
use sea_orm::sqlx::sqlite::SqliteConnection;
use sea_orm::sqlx::{Connection, Sqlite, pool::PoolOptions};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement};

use crate::database::begin_read;
use crate::error::{Result, StorageError};

/// How many SQLite virtual machine instructions run between two looks at the
/// slot: a few hundred microseconds of work.
const SQLITE_PROGRESS_OPS: i32 = 10_000;

/// A read transaction whose statement the database stops if it is dropped
/// before [`CancellableRead::commit`].
pub(crate) struct CancellableRead {
    // Dropped before `txn`: the mark is set before the rollback is queued.
    abandon: Abandon,
    txn: DatabaseTransaction,
}

/// Cancels its session's statement when dropped, unless emptied first.
struct Abandon(Option<Session>);

/// The database session that runs a cancellable read.
enum Session {
    Postgres { db: DatabaseConnection, pid: i32, transaction_start: DateTime<Utc> },
    Sqlite(Arc<Slot>),
}

impl CancellableRead {
    /// Begins a read transaction and learns which session runs it: one short
    /// statement more than a plain read.
    pub(crate) async fn begin(db: &DatabaseConnection) -> Result<CancellableRead> {
        let txn = begin_read(db).await?;
        let session = match db.get_database_backend() {
            DbBackend::Postgres => {
                let sql = "SELECT pg_backend_pid() AS pid, now() AS transaction_start";
                let row = txn.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await?;
                let row = row.ok_or_else(|| StorageError::Corrupt("no backend id was returned".to_owned()))?;
                let pid = row.try_get::<i32>("", "pid")?;
                let transaction_start = row.try_get::<DateTime<Utc>>("", "transaction_start")?;
                Some(Session::Postgres { db: db.clone(), pid, transaction_start })
            }
            _ => {
                let sql = format!("SELECT name FROM pragma_collation_list WHERE name LIKE '{SLOT_PREFIX}%'");
                let row = txn.query_one_raw(Statement::from_string(DbBackend::Sqlite, sql)).await?;
                let name = row.map(|row| row.try_get::<String>("", "name")).transpose()?;
                let id = name.and_then(|name| name.strip_prefix(SLOT_PREFIX)?.parse::<i64>().ok());
                // A connection opened without a slot (none in this crate) is
                // simply not cancellable.
                id.and_then(Slot::find).map(Session::Sqlite)
            }
        };
        Ok(CancellableRead { abandon: Abandon(session), txn })
    }

    pub(crate) fn txn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// `result`; if it is an error, the read is marked finished first (a
    /// refused input is no abandoned work), so that dropping it on the way
    /// out only rolls it back.
    pub(crate) fn finished_unless<T>(&mut self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.abandon.0 = None;
        }
        result
    }

    /// Ends the read as finished: nothing is cancelled.
    pub(crate) async fn commit(self) -> Result<()> {
        let CancellableRead { mut abandon, txn } = self;
        abandon.0 = None;
        Ok(txn.commit().await?)
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        match self.0.take() {
            None => {}
            Some(Session::Sqlite(slot)) => slot.abandoned.store(true, Ordering::Release),
            Some(Session::Postgres { db, pid, transaction_start }) => {
                // Drop runs on the runtime that dropped the request; without one
                // (a test's runtime shutting down) the statement timeout remains.
                let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
                let options = db.get_postgres_connection_pool().connect_options();
                runtime.spawn(async move {
                    // Beyond a few at once, the rest are left to the statement
                    // timeout, which stops them but, as a cancel does, leaves
                    // sqlx waiting on their connections (seen with a pool of one).
                    let Ok(_turn) = CANCELLING.try_acquire() else { return };
                    if let Err(error) = cancel(&options, pid, transaction_start).await {
                        tracing::warn!(%error, pid, "could not cancel an abandoned statement");
                    }
                });
            }
        }
    }
}

/// How many cancellations may be under way at once in the process, each on a
/// connection of its own to the server of the read it cancels (the primary, or
/// the standby).
pub(crate) const CANCELLING_CONNECTIONS: u32 = 4;

static CANCELLING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CANCELLING_CONNECTIONS as usize);

/// Ends backend `pid`, and its statement, while it is still in the transaction
/// that began at `transaction_start`. On a connection of its own, not one of the
/// pool's, which abandoned statements may all be holding.
async fn cancel(
    options: &PgConnectOptions,
    pid: i32,
    transaction_start: DateTime<Utc>,
) -> std::result::Result<(), sea_orm::sqlx::Error> {
    let mut connection = PgConnection::connect_with(options).await?;
    sea_orm::sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE pid = $1 AND xact_start = $2 AND state = 'active'",
    )
    .bind(pid)
    .bind(transaction_start)
    .execute(&mut connection)
    .await?;
    connection.close().await
}

/// An SQLite connection tells its slot's number by the name of a collation that
/// it alone has (never used to compare anything): a temporary table would give
/// every connection a temporary database, and the process some 2 MiB of memory
/// more per connection under load (seen: 16 concurrent searches peaked at
/// 87 MiB with a table, 51 MiB without).
const SLOT_PREFIX: &str = "appeals_slot_";

/// What an SQLite connection's progress handler looks at.
#[derive(Debug)]
struct Slot {
    /// Set when the read running on the connection is abandoned; cleared when
    /// its transaction rolls back.
    abandoned: AtomicBool,
}

/// The slots of the process's open SQLite connections, by number. A slot lives
/// as long as its connection's handlers.
static SLOTS: LazyLock<Mutex<HashMap<i64, Weak<Slot>>>> = LazyLock::new(Mutex::default);

static NEXT_SLOT: AtomicI64 = AtomicI64::new(1);

impl Slot {
    fn find(id: i64) -> Option<Arc<Slot>> {
        SLOTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&id).and_then(Weak::upgrade)
    }

    fn register() -> (i64, Arc<Slot>) {
        let id = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot { abandoned: AtomicBool::new(false) });
        let mut slots = SLOTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        slots.retain(|_, slot| slot.strong_count() > 0);
        slots.insert(id, Arc::downgrade(&slot));
        (id, slot)
    }
}

/// Gives every connection of an SQLite pool its slot.
pub(crate) fn with_sqlite_slots(options: PoolOptions<Sqlite>) -> PoolOptions<Sqlite> {
    options.after_connect(|connection, _| Box::pin(give_slot(connection)))
}

async fn give_slot(connection: &mut SqliteConnection) -> std::result::Result<(), sea_orm::sqlx::Error> {
    let (id, slot) = Slot::register();
    let mut handle = connection.lock_handle().await?;
    handle.create_collation(&format!("{SLOT_PREFIX}{id}"), str::cmp)?;
    let watched = Arc::clone(&slot);
    handle.set_progress_handler(SQLITE_PROGRESS_OPS, move || !watched.abandoned.load(Ordering::Acquire));
    handle.set_rollback_hook(move || slot.abandoned.store(false, Ordering::Release));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    use super::CancellableRead;
    use crate::PoolSettings;
    use crate::testing::{Backend, ThrowawayDatabase};

    crate::on_both_databases!(an_abandoned_read_frees_its_connection_and_nothing_after_it_is_stopped);

    /// A statement that runs about `seconds` on PostgreSQL, and counts to
    /// `count_to` on SQLite (ten billion: minutes; 300,000: long enough for the
    /// progress handler to look at the slot many times).
    fn running(backend: DbBackend, seconds: f64, count_to: u64) -> Statement {
        let sql = match backend {
            DbBackend::Postgres => format!("SELECT pg_sleep({seconds})"),
            _ => format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count_to}) \
                 SELECT count(*) FROM n"
            ),
        };
        Statement::from_string(backend, sql)
    }

    fn endless(backend: DbBackend) -> Statement {
        running(backend, 600.0, 10_000_000_000)
    }

    fn long(backend: DbBackend) -> Statement {
        running(backend, 0.3, 300_000)
    }

    /// With one connection in the pool, a read abandoned in the middle of an
    /// endless statement gives its connection back at once, and the statements
    /// that use the connection next, long ones included, run to their end.
    async fn an_abandoned_read_frees_its_connection_and_nothing_after_it_is_stopped(backend: Backend) {
        let Some(database) = ThrowawayDatabase::create(backend).await else { return };
        let settings =
            PoolSettings { max_connections: 1, acquire_timeout: Duration::from_secs(20), statement_timeout: None };
        let db = crate::database::connect(&database.url, settings).await.expect("the pool opens");
        let kind = db.get_database_backend();

        for round in 0..3 {
            let abandoned = async {
                let read = CancellableRead::begin(&db).await.expect("a read begins");
                read.txn().query_one_raw(endless(kind)).await
            };
            let outcome = tokio::time::timeout(Duration::from_millis(300), abandoned).await;
            assert!(outcome.is_err(), "round {round}: the endless statement was still running when abandoned");

            let started = Instant::now();
            db.query_one_raw(long(kind)).await.expect("the next statement runs to its end");
            let read = CancellableRead::begin(&db).await.expect("a read begins");
            read.txn().query_one_raw(long(kind)).await.expect("a finished read is not stopped");
            read.commit().await.expect("and commits");
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "round {round}: the connection came back after {:?}",
                started.elapsed()
            );
        }
    }
}
