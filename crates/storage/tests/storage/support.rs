//! What every test starts from: a migrated throwaway database, a store whose
//! clock stands still until a test moves it, and a cast of users: the heads and
//! assistants of Tomsk and Seversk, and the region-wide roles. Plus small
//! builders for submissions and commands, raw SQL for the tests that tamper with
//! rows, and a helper that starts tasks at the same instant.

use std::future::Future;
use std::sync::Arc;

use appeals_core::text::{
    AppealText, Category, ExternalId, MunicipalityCode, NoteText, PersonName, Reason, ResponseText,
};
use appeals_core::{
    AccessDenied, Actor, Appeal, AppealId, AuditKey, Channel, Command, CommandError, DeadlinePolicy, ExtensionDays,
    ManualClock, Outcome, Priority, Role, Submission,
};
use appeals_storage::testing::{Backend, ThrowawayDatabase};
use appeals_storage::{AppealPage, Municipality, PoolSettings, StorageError, Store};
use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use tokio::sync::Barrier;

/// Where the manual clock starts: a Monday morning in Tomsk's 2026.
pub fn t0() -> DateTime<Utc> {
    at("2026-03-02T09:00:00Z")
}

pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).expect("a test timestamp parses").to_utc()
}

pub fn hours(n: i64) -> TimeDelta {
    TimeDelta::hours(n)
}

pub fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

pub fn code(raw: &str) -> MunicipalityCode {
    MunicipalityCode::parse(raw).expect("a test municipality code parses")
}

pub fn name(raw: &str) -> PersonName {
    PersonName::parse(raw).expect("a test name parses")
}

/// A fresh database with everyone a test needs. Fields drop in order: the store
/// (and its pool) before the database file it points at.
pub struct Region {
    pub store: Store,
    pub clock: Arc<ManualClock>,
    pub db: ThrowawayDatabase,
    pub tomsk: Municipality,
    pub intake: Actor,
    pub tomsk_head: Actor,
    pub tomsk_assistant: Actor,
    pub seversk_head: Actor,
    pub seversk_assistant: Actor,
    pub governor: Actor,
    pub auditor: Actor,
    pub admin: Actor,
}

impl Region {
    /// `None` when the backend is not available here (PostgreSQL without
    /// `APPEALS_TEST_POSTGRES_URL`, outside CI): the test then returns at once.
    pub async fn open(backend: Backend) -> Option<Region> {
        let db = ThrowawayDatabase::create(backend).await?;
        let clock = Arc::new(ManualClock::new(t0()));
        let store = open_store(&db).await.with_clock(clock.clone());
        let tomsk = store
            .municipality_by_code(&code("tomsk"))
            .await
            .expect("municipalities can be read")
            .expect("the migrations seed Tomsk");
        let user = async |who: &str, role: Role, at: Option<&str>| {
            let (user, _token) = store
                .create_user(name(who), role, at.map(code).as_ref())
                .await
                .unwrap_or_else(|error| panic!("creating {who} ({role}) failed: {error}"));
            user.actor()
        };
        Some(Region {
            intake: user("Бот приёма обращений", Role::Intake, None).await,
            tomsk_head: user("Глава Томска", Role::Head, Some("tomsk")).await,
            tomsk_assistant: user("Помощник главы Томска", Role::Assistant, Some("tomsk")).await,
            seversk_head: user("Глава Северска", Role::Head, Some("seversk")).await,
            seversk_assistant: user("Помощник главы Северска", Role::Assistant, Some("seversk")).await,
            governor: user("Центр управления регионом", Role::GovernorOffice, None).await,
            auditor: user("Аудитор", Role::Auditor, None).await,
            admin: user("Администратор", Role::Admin, None).await,
            tomsk,
            store,
            clock,
            db,
        })
    }

    /// The same region, its store sealing with `key` from now on.
    pub fn with_audit_key(mut self, key: AuditKey) -> Region {
        self.store = self.store.clone().with_audit_key(key);
        self
    }

    /// Creates a user and returns it as an actor.
    pub async fn user(&self, who: &str, role: Role, municipality: Option<&str>) -> Actor {
        let (user, _token) = self
            .store
            .create_user(name(who), role, municipality.map(code).as_ref())
            .await
            .unwrap_or_else(|error| panic!("creating {who} ({role}) failed: {error}"));
        user.actor()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.store.now()
    }

    pub fn advance(&self, by: TimeDelta) {
        self.clock.advance(by);
    }

    /// Submits `text` to the municipality `to` through the web form, with no
    /// external id, so that every call registers a new appeal.
    pub async fn submit(&self, to: &str, text: &str) -> Appeal {
        self.submit_via(&self.store, to, web(text)).await
    }

    pub async fn submit_via(&self, store: &Store, to: &str, submission: Submission) -> Appeal {
        let submitted = store
            .submit(&self.intake, &code(to), submission)
            .await
            .unwrap_or_else(|error| panic!("submitting to {to} failed: {error}"));
        assert!(submitted.created, "a submission without an external id always creates an appeal");
        submitted.appeal
    }

    /// Applies `command` on behalf of `actor` to the appeal as the caller last saw
    /// it, with that version (none for notes); the command must be accepted.
    pub async fn apply(&self, actor: &Actor, appeal: &Appeal, command: Command) -> Appeal {
        let version = command.changes_version().then_some(appeal.version);
        self.store
            .execute_command(actor, appeal.id, &command, version)
            .await
            .unwrap_or_else(|error| panic!("{command:?} on {} by {:?} failed: {error}", appeal.number, actor.role))
            .appeal
    }

    /// The appeal as stored now.
    pub async fn fetch(&self, id: AppealId) -> Appeal {
        self.store.appeal(id).await.expect("an appeal can be read").expect("the appeal exists")
    }

    /// Runs a raw statement on the database behind the store's back; returns the
    /// number of rows it changed.
    pub async fn execute(&self, sql: &str) -> u64 {
        let connection = self.raw().await;
        let result = connection.execute_unprepared(sql).await.unwrap_or_else(|error| panic!("{sql}: {error}"));
        let _ = connection.close().await;
        result.rows_affected()
    }

    /// The first column of every row `sql` returns, as text.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        let connection = self.raw().await;
        let statement = Statement::from_string(connection.get_database_backend(), sql);
        let rows = connection.query_all_raw(statement).await.unwrap_or_else(|error| panic!("{sql}: {error}"));
        let _ = connection.close().await;
        rows.iter().map(|row| row.try_get_by_index::<String>(0).expect("a text column")).collect()
    }

    /// The single number `sql` returns.
    pub async fn number(&self, sql: &str) -> i64 {
        let connection = self.raw().await;
        let statement = Statement::from_string(connection.get_database_backend(), sql);
        let row = connection
            .query_one_raw(statement)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
            .unwrap_or_else(|| panic!("{sql}: no row"));
        let _ = connection.close().await;
        row.try_get_by_index::<i64>(0).expect("an integer column")
    }

    async fn raw(&self) -> DatabaseConnection {
        Database::connect(self.db.url.as_str()).await.expect("a raw connection to the test database")
    }
}

pub async fn open_store(db: &ThrowawayDatabase) -> Store {
    Store::open(&db.url, PoolSettings::default()).await.unwrap_or_else(|error| panic!("opening {}: {error}", db.url))
}

/// An audit key for tests; `n` picks one of several distinct keys.
pub fn audit_key(n: u8) -> AuditKey {
    let bytes: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(31).wrapping_add(n)).collect();
    AuditKey::from_bytes(&bytes).expect("a test key is long enough")
}

pub fn submission(channel: Channel, external_id: Option<&str>, text: &str) -> Submission {
    Submission {
        channel,
        external_id: external_id.map(|id| ExternalId::parse(id).expect("a test external id parses")),
        author_name: Some(name("Иванова Мария Петровна")),
        author_contact: None,
        text: AppealText::parse(text).expect("a test appeal text parses"),
    }
}

pub fn web(text: &str) -> Submission {
    submission(Channel::Web, None, text)
}

pub fn note(text: &str) -> Command {
    Command::AddNote { text: NoteText::parse(text).expect("a test note parses") }
}

pub fn resolve(outcome: Outcome, response: &str) -> Command {
    Command::Resolve {
        outcome,
        response: ResponseText::parse(response).expect("a test response parses"),
        duplicate_of: None,
    }
}

pub fn duplicate_of(original: AppealId) -> Command {
    Command::Resolve {
        outcome: Outcome::Duplicate,
        response: ResponseText::parse("Ответ дан по первому обращению").expect("a test response parses"),
        duplicate_of: Some(original),
    }
}

pub fn reopen(reason: &str) -> Command {
    Command::Reopen { reason: Reason::parse(reason).expect("a test reason parses") }
}

pub fn prioritize(priority: Priority) -> Command {
    Command::Triage { priority: Some(priority), category: None, tags: None }
}

pub fn categorize(category: &str) -> Command {
    Command::Triage {
        priority: None,
        category: Some(Category::parse(category).expect("a test category parses")),
        tags: None,
    }
}

pub fn extend(days: i64, reason: &str) -> Command {
    Command::ExtendDeadline {
        days: ExtensionDays::parse(days, &DeadlinePolicy::default()).expect("a test extension is within the policy"),
        reason: Reason::parse(reason).expect("a test reason parses"),
    }
}

/// The variant of a storage result, as the API would tell it apart.
pub fn outcome<T>(result: &Result<T, StorageError>) -> String {
    let Err(error) = result else { return "Ok".to_owned() };
    match error {
        StorageError::Access(AccessDenied::Forbidden) => "Access(Forbidden)".to_owned(),
        StorageError::Access(AccessDenied::NotFound) => "Access(NotFound)".to_owned(),
        StorageError::NotFound => "NotFound".to_owned(),
        StorageError::Invalid(invalid) => format!("Invalid({})", invalid.field),
        StorageError::Command(CommandError::InvalidTransition { .. }) => "Command(InvalidTransition)".to_owned(),
        StorageError::Command(CommandError::AlreadyExtended) => "Command(AlreadyExtended)".to_owned(),
        StorageError::Command(CommandError::VersionConflict { .. }) => "Command(VersionConflict)".to_owned(),
        StorageError::Command(CommandError::Invalid(invalid)) => format!("Command(Invalid({}))", invalid.field),
        other => format!("unexpected: {other}"),
    }
}

/// The ids on a page, in order.
pub fn ids(page: &AppealPage) -> Vec<AppealId> {
    page.appeals.iter().map(|appeal| appeal.id).collect()
}

/// Starts `n` tasks, each `task(i)`, on the runtime's worker threads, releases
/// them together through a barrier, and returns their results in order of `i`.
pub async fn race<T, F, Fut>(n: usize, task: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let work = task(i);
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for handle in handles {
        results.push(handle.await.expect("a racing task panicked"));
    }
    results
}
