//! Every SQL statement as it finishes, for an observer outside this crate: the
//! API turns each into a child span of the request that ran it. The observer is
//! one per process, like the log subscriber, and sees the statement's text with
//! its placeholders (`$1`, `?`), never the values bound to them.

use std::sync::OnceLock;
use std::time::Duration;

use sea_orm::DbBackend;

/// A statement that has just run.
#[derive(Debug, Clone, Copy)]
pub struct ExecutedStatement<'a> {
    /// The SQL as sent, with placeholders where the values go.
    pub sql: &'a str,
    pub database: DatabaseKind,
    /// How long it ran, up to the moment the observer is called.
    pub elapsed: Duration,
    pub failed: bool,
}

/// Which database ran a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

/// Called on the task that ran the statement, right after it finished.
pub type StatementObserver = fn(&ExecutedStatement<'_>);

static OBSERVER: OnceLock<StatementObserver> = OnceLock::new();

/// Installs the process's observer. Returns `false` (and changes nothing) if one
/// is installed already.
pub fn observe(observer: StatementObserver) -> bool {
    OBSERVER.set(observer).is_ok()
}

/// Hands a finished statement to the observer, if there is one.
pub(crate) fn report(info: &sea_orm::metric::Info<'_>) {
    let Some(observer) = OBSERVER.get() else {
        return;
    };
    let database = match info.statement.db_backend {
        DbBackend::Postgres => DatabaseKind::Postgres,
        // MySQL is not compiled in: SQLite is the only other.
        _ => DatabaseKind::Sqlite,
    };
    observer(&ExecutedStatement { sql: &info.statement.sql, database, elapsed: info.elapsed, failed: info.failed });
}
