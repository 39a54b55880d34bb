//! Persistence of Appeals on SQLite (the embedded default) and PostgreSQL (the
//! production database), through sea-orm. The same code serves both.
//!
//! This crate is the only writer of the database. It keeps sea-orm inside itself:
//! entities map to and from `appeals-core` values, and every command is one
//! transaction (lock and load the appeal, ask `core`, update it, append the chained
//! event). It knows nothing of HTTP or GraphQL.
//!
//! Layout, in reading order:
//! - [`database`]: connecting from one URL, SQLite pragmas, migrating under a lock,
//!   write and read transactions.
//! - [`Store`]: the handle everything below hangs off, with the deadline policy and
//!   the clock.
//! - [`directory`]: municipalities, users, tokens; `lookups` (private) remembers
//!   them between requests.
//! - [`appeals`]: idempotent intake, registration numbers, commands.
//! - [`channels`]: Telegram, VK and MAX: settings, residents' messages taken in
//!   from webhooks, and the outbox of replies to them.
//! - [`queries`]: one appeal, the filtered list page, histories.
//! - [`events`]: every event's place in commit order, and following them;
//!   `announcements` (private) hears what other stores on the database did.
//! - [`standby`]: the lists, searches and dashboards sent to a hot standby,
//!   once it has replayed every change committed before them.
//! - [`search`]: the substring and word searches in each database's terms, and
//!   keeping their indexes.
//! - [`dashboard`]: counts, overdue counts and medians per municipality: the
//!   running totals every writer keeps, and how the dashboard is read from them
//!   (or counted, over a range).
//! - [`audit`]: verifying hash chains and their keyed seals, and sealing a
//!   history written without a key.
//! - [`import`]: bulk loading of appeals built elsewhere, with their histories.
//! - [`statements`]: every SQL statement as it finishes, for the API's traces.
//! - [`testing`]: throwaway databases for tests, and `on_both_databases!`.
//! - `entity`, `records` (private): rows, and their mapping to domain values.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use appeals_core::{AuditKey, Clock, DeadlinePolicy, SystemClock};
use chrono::{DateTime, FixedOffset, Utc};
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

mod abandon;
mod announcements;
pub mod appeals;
pub mod audit;
pub mod channels;
pub mod dashboard;
pub mod database;
pub mod directory;
mod entity;
pub mod error;
pub mod events;
pub mod import;
mod lookups;
pub mod queries;
mod records;
pub mod search;
pub mod standby;
pub mod statements;
pub mod testing;

pub use announcements::Revocation;
pub use appeals::{Changed, Submitted};
pub use audit::{AuditReport, AuditSummary, SealingReport};
pub use channels::{ChannelChange, ChannelSettings, DueReply, Intake, Reply, ReplyStatus, WebhookGate};
pub use dashboard::{Counts, Dashboard, DashboardFilter, MunicipalityStats};
pub use database::PoolSettings;
pub use directory::{Municipality, Token, User};
pub use error::StorageError;
pub use events::FollowedEvent;
pub use queries::{AppealFilter, AppealPage, Cursor, HistoryWindow};
pub use records::StoredEvent;
pub use standby::{ReadsRouted, StandbyRefused, StandbySettings};

/// The Tomsk region's offset from UTC, where the product began.
pub const DEFAULT_LOCAL_OFFSET: FixedOffset = match FixedOffset::east_opt(7 * 3600) {
    Some(offset) => offset,
    None => panic!("+07:00 is a valid offset"),
};

/// The database, the deadline policy new appeals are held to, the clock, and
/// the audit key, if any. Cheap to clone: clones share one connection pool
/// (and the standby's, when reads are routed there).
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    policy: DeadlinePolicy,
    clock: Arc<dyn Clock>,
    statements: Arc<AtomicU64>,
    /// With a key, every writer seals what it writes and verification checks
    /// the seals (see [`audit`]).
    audit_key: Option<AuditKey>,
    /// The offset dates are written in for residents (a reply's due date).
    local_offset: FixedOffset,
    /// Woken when a reply is queued, so the delivery worker need not wait for
    /// its next poll.
    outbox_signal: Arc<Notify>,
    /// Municipalities and users by token, remembered between requests.
    lookups: Arc<lookups::Lookups>,
    /// Events committed and users revoked, by this store or any other.
    announcements: Arc<announcements::Announcements>,
    /// The event feed's own connection, opened when first used (see `events`).
    follower: Arc<std::sync::OnceLock<DatabaseConnection>>,
    /// The pool on a hot standby that lists, searches and dashboards are read
    /// from, if the server has one (see [`standby`]).
    reader: Option<Arc<standby::Reader>>,
}

impl Store {
    /// Connects to `url` and applies pending migrations.
    pub async fn open(url: &str, pool: PoolSettings) -> Result<Store, sea_orm::DbErr> {
        let db = database::connect(url, pool).await?;
        database::migrate(&db, url).await?;
        Ok(Store::new(db))
    }

    /// A store on an open, migrated connection, with the default policy and the
    /// system clock. Every SQL statement it runs is counted (see
    /// [`Store::statements_executed`]), timed in the `appeals_sql_*` metrics and
    /// shown to the process's [`statements`] observer.
    pub fn new(mut db: DatabaseConnection) -> Store {
        let statements = Arc::new(AtomicU64::new(0));
        observe_statements(&mut db, Arc::clone(&statements));
        // PostgreSQL may have other stores revoking users: this one keeps users
        // only while it hears their revocations (see `lookups`).
        let postgres = db.get_database_backend() == sea_orm::DbBackend::Postgres;
        let lookups = Arc::new(lookups::Lookups::new(!postgres));
        Store {
            db,
            policy: DeadlinePolicy::default(),
            clock: Arc::new(SystemClock),
            statements,
            audit_key: None,
            local_offset: DEFAULT_LOCAL_OFFSET,
            outbox_signal: Arc::new(Notify::new()),
            lookups,
            announcements: Arc::new(announcements::Announcements::new()),
            follower: Arc::default(),
            reader: None,
        }
    }

    /// Counts, times and reports the statements `db` runs as this store's own
    /// (the standby's pool, too).
    fn observe_statements(&self, db: &mut DatabaseConnection) {
        observe_statements(db, Arc::clone(&self.statements));
    }

    /// How many SQL statements this store (and its clones) has run so far for
    /// requests and commands; the reads of a server's event feed, which follow
    /// every write in the background, are left out (see [`events::following`]).
    pub fn statements_executed(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    pub fn with_policy(mut self, policy: DeadlinePolicy) -> Store {
        self.policy = policy;
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Store {
        self.clock = clock;
        self
    }

    /// Seals every event and anchor this store writes with `key`, and makes
    /// verification require valid seals. The history written before is sealed
    /// by [`Store::seal_unsealed_history`] (see [`Store::start_sealing`]).
    pub fn with_audit_key(mut self, key: AuditKey) -> Store {
        self.audit_key = Some(key);
        self
    }

    /// The same store without its audit key: it writes unsealed events and
    /// checks hashes only, as a server run without the key would.
    pub fn without_audit_key(mut self) -> Store {
        self.audit_key = None;
        self
    }

    /// Writes the dates residents read (a reply's due date) at `offset` from UTC.
    pub fn with_local_offset(mut self, offset: FixedOffset) -> Store {
        self.local_offset = offset;
        self
    }

    pub fn local_offset(&self) -> FixedOffset {
        self.local_offset
    }

    /// Notified whenever a reply is queued.
    pub fn outbox_signal(&self) -> &Notify {
        &self.outbox_signal
    }

    /// The audit key, if this store seals.
    pub fn audit_key(&self) -> Option<&AuditKey> {
        self.audit_key.as_ref()
    }

    pub fn policy(&self) -> &DeadlinePolicy {
        &self.policy
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.db.ping().await.map_err(StorageError::Unavailable)
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(self) -> Result<(), StorageError> {
        if let Some(reader) = self.close_standby() {
            reader.close().await.map_err(StorageError::from)?;
        }
        if let Some(follower) = self.follower.get() {
            follower.clone().close().await.map_err(StorageError::from)?;
        }
        self.db.close().await.map_err(StorageError::from)
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub(crate) fn lookups(&self) -> &lookups::Lookups {
        &self.lookups
    }

    /// The lookups of users by token. On PostgreSQL the first of them starts
    /// listening for announcements (see `announcements`).
    pub(crate) fn user_lookups(&self) -> &lookups::Lookups {
        self.listen();
        &self.lookups
    }

    /// The event feed's own connection, opened the first time it is asked for.
    pub(crate) fn follower(&self) -> DatabaseConnection {
        self.follower
            .get_or_init(|| {
                let mut follower = events::follower_connection(&self.db);
                observe_statements(&mut follower, Arc::clone(&self.statements));
                follower
            })
            .clone()
    }

    pub(crate) fn announcements(&self) -> &announcements::Announcements {
        &self.announcements
    }

    /// Starts listening for announcements, once (PostgreSQL).
    pub(crate) fn listen(&self) {
        announcements::listen_once(&self.db, &self.lookups, &self.announcements);
    }

    /// Every revocation from now on, by this store or, on PostgreSQL, any other
    /// on the same database.
    pub fn revocations(&self) -> tokio::sync::broadcast::Receiver<Revocation> {
        self.listen();
        self.announcements.revocations()
    }
}

/// Counts every statement `db` runs in `counter`, times it in the
/// `appeals_sql_*` metrics and shows it to the process's [`statements`] observer.
fn observe_statements(db: &mut DatabaseConnection, counter: Arc<AtomicU64>) {
    db.set_metric_callback(move |info| {
        if !events::is_following() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        // The SQL text only: its values may hold appeal texts, which stay out of logs.
        tracing::trace!(target: "appeals_sql", elapsed = ?info.elapsed, failed = info.failed, sql = %info.statement.sql);
        metrics::counter!("appeals_sql_statements_total", "failed" => if info.failed { "true" } else { "false" })
            .increment(1);
        metrics::histogram!("appeals_sql_statement_duration_seconds").record(info.elapsed.as_secs_f64());
        crate::statements::report(info);
    });
}
