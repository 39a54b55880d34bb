//! The floor: each scenario's database work issued straight to the database,
//! without HTTP or GraphQL. The statements and transactions are the ones the
//! server runs for the same request (as `RUST_LOG=appeals_sql=trace` shows
//! them), with the same values bound through sea-orm to sqlx, which prepares each
//! statement once per connection and caches it. The pool is as large as the
//! server's. What the server adds on top of this is the price of the API.
//!
//! Writes and the single appeal are written out here statement by statement. The
//! list and the dashboard call `appeals-storage` itself, on the floor's own
//! connection: which statements they run depends on the filter and on the
//! tallies, and calling the storage function is the one way to run exactly the
//! server's. The same goes for the tallies a write keeps (`dashboard::record`).
//!
//! This is the one place outside `appeals-storage` that writes to a database: the
//! benchmark's own, thrown away after the run.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Context as _;
use appeals_core::appeal::registration_number;
use appeals_core::clock::to_storage_precision;
use appeals_core::events::{EventData, NewEvent};
use appeals_core::text::{AppealText, ExternalId, MunicipalityCode, PersonName, ResponseText, fold_for_search};
use appeals_core::{
    Appeal, AppealId, Channel, DeadlinePolicy, MunicipalityId, Outcome, RecordedEvent, Scope, Status, Submission,
};
use appeals_storage::dashboard::{Contribution, TallyFacts};
use appeals_storage::{AppealFilter, Cursor, DashboardFilter, Store};
use chrono::{DateTime, Datelike, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sea_orm::prelude::Uuid;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, FromQueryResult, Statement, Value};

use crate::api::PAGE;
use crate::load::{Sent, Worker};
use crate::region::{UnreadAppeal, pick_weighted};
use crate::scenario::{FOCUS_MUNICIPALITY, SEARCH_TEXT, Scenario, Shared, UnreadQueue, take_unread};
use crate::texts;

const APPEAL_COLUMNS: &str = r#""appeal"."id", "appeal"."number", "appeal"."municipality_id", "appeal"."channel", "appeal"."external_id", "appeal"."author_name", "appeal"."author_contact", "appeal"."text", "appeal"."text_folded", "appeal"."status", "appeal"."priority", "appeal"."category", "appeal"."tags", "appeal"."received_at", "appeal"."seen_at", "appeal"."resolved_at", "appeal"."seen_due_at", "appeal"."due_at", "appeal"."deadline_extended", "appeal"."version", "appeal"."outcome", "appeal"."response", "appeal"."duplicate_of", "appeal"."resolved_by", "appeal"."last_event_seq", "appeal"."last_event_hash", "appeal"."micros_to_seen", "appeal"."micros_to_resolution""#;

const USER_BY_TOKEN: &str = r#"SELECT "app_user"."id", "app_user"."name", "app_user"."role", "app_user"."municipality_id", "app_user"."token_digest", "app_user"."created_at", "app_user"."revoked_at" FROM "app_user" WHERE "app_user"."token_digest" = ? AND "app_user"."revoked_at" IS NULL LIMIT ?"#;

const USERS_BY_IDS: &str = r#"SELECT "app_user"."id", "app_user"."name", "app_user"."role", "app_user"."municipality_id", "app_user"."token_digest", "app_user"."created_at", "app_user"."revoked_at" FROM "app_user" WHERE "app_user"."id" IN ({ids})"#;

const MUNICIPALITY_BY_CODE: &str = r#"SELECT "municipality"."id", "municipality"."code", "municipality"."name", "municipality"."created_at" FROM "municipality" WHERE "municipality"."code" = ? LIMIT ?"#;

const APPEAL_BY_EXTERNAL_ID: &str =
    r#"SELECT {columns} FROM "appeal" WHERE "appeal"."channel" = ? AND "appeal"."external_id" = ? LIMIT ?"#;

const NEXT_REGISTRATION_NUMBER: &str = r#"INSERT INTO "registration_counter" ("municipality_id", "year", "last_value") VALUES (?, ?, ?) ON CONFLICT ("municipality_id", "year") DO UPDATE SET "last_value" = "registration_counter"."last_value" + ? RETURNING "last_value""#;

const INSERT_APPEAL: &str = r#"INSERT INTO "appeal" ("id", "number", "municipality_id", "channel", "external_id", "author_name", "author_contact", "text", "text_folded", "status", "priority", "category", "tags", "received_at", "seen_at", "resolved_at", "seen_due_at", "due_at", "deadline_extended", "version", "outcome", "response", "duplicate_of", "resolved_by", "last_event_seq", "last_event_hash", "micros_to_seen", "micros_to_resolution") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT ("municipality_id", "channel", "external_id") DO NOTHING"#;

const INSERT_EVENT: &str = r#"INSERT INTO "appeal_event" ("id", "appeal_id", "seq", "kind", "at", "actor_id", "from_status", "to_status", "note", "data", "hash") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"#;

/// `FOR UPDATE` is appended on PostgreSQL, as sea-orm's `lock_exclusive` does.
const APPEAL_BY_ID: &str = r#"SELECT {columns} FROM "appeal" WHERE "appeal"."id" = ? LIMIT ?"#;

const UPDATE_APPEAL: &str = r#"UPDATE "appeal" SET "id" = ?, "number" = ?, "municipality_id" = ?, "channel" = ?, "external_id" = ?, "author_name" = ?, "author_contact" = ?, "text" = ?, "text_folded" = ?, "status" = ?, "priority" = ?, "category" = ?, "tags" = ?, "received_at" = ?, "seen_at" = ?, "resolved_at" = ?, "seen_due_at" = ?, "due_at" = ?, "deadline_extended" = ?, "version" = ?, "outcome" = ?, "response" = ?, "duplicate_of" = ?, "resolved_by" = ?, "last_event_seq" = ?, "last_event_hash" = ?, "micros_to_seen" = ?, "micros_to_resolution" = ? WHERE "appeal"."id" = ? AND "appeal"."version" = ? AND "appeal"."last_event_seq" = ?"#;

const APPEALS_BY_IDS: &str = r#"SELECT {columns} FROM "appeal" WHERE "appeal"."id" IN (?)"#;

const HISTORIES: &str = r#"SELECT "appeal_event"."id", "appeal_event"."appeal_id", "appeal_event"."seq", "appeal_event"."kind", "appeal_event"."at", "appeal_event"."actor_id", "appeal_event"."from_status", "appeal_event"."to_status", "appeal_event"."note", "appeal_event"."data", "appeal_event"."hash" FROM "appeal_event" WHERE "appeal_event"."appeal_id" IN (?) ORDER BY "appeal_event"."appeal_id" ASC, "appeal_event"."seq" ASC"#;

/// The appeal row as the server reads and writes it, column for column.
#[derive(Debug, Clone, FromQueryResult)]
struct AppealRow {
    id: Uuid,
    number: String,
    municipality_id: Uuid,
    channel: String,
    external_id: Option<String>,
    author_name: Option<String>,
    author_contact: Option<String>,
    text: String,
    text_folded: String,
    status: String,
    priority: String,
    category: Option<String>,
    tags: String,
    received_at: DateTime<Utc>,
    seen_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    seen_due_at: DateTime<Utc>,
    due_at: DateTime<Utc>,
    deadline_extended: bool,
    version: i32,
    outcome: Option<String>,
    response: Option<String>,
    duplicate_of: Option<Uuid>,
    resolved_by: Option<Uuid>,
    last_event_seq: i32,
    last_event_hash: String,
    micros_to_seen: Option<i64>,
    micros_to_resolution: Option<i64>,
}

impl AppealRow {
    /// The row of a new appeal, anchored at its first event.
    fn received(appeal: &Appeal, event: &RecordedEvent) -> AppealRow {
        AppealRow {
            id: appeal.id.as_uuid(),
            number: appeal.number.clone(),
            municipality_id: appeal.municipality_id.as_uuid(),
            channel: appeal.channel.as_str().to_owned(),
            external_id: appeal.external_id.as_ref().map(|value| value.as_str().to_owned()),
            author_name: appeal.author_name.as_ref().map(|value| value.as_str().to_owned()),
            author_contact: appeal.author_contact.as_ref().map(|value| value.as_str().to_owned()),
            text: appeal.text.as_str().to_owned(),
            text_folded: fold_for_search(appeal.text.as_str()),
            status: appeal.status.as_str().to_owned(),
            priority: appeal.priority.as_str().to_owned(),
            category: None,
            tags: "[]".to_owned(),
            received_at: appeal.received_at,
            seen_at: None,
            resolved_at: None,
            seen_due_at: appeal.seen_due_at,
            due_at: appeal.due_at,
            deadline_extended: false,
            version: appeal.version,
            outcome: None,
            response: None,
            duplicate_of: None,
            resolved_by: None,
            last_event_seq: event.seq,
            last_event_hash: event.hash.clone(),
            micros_to_seen: None,
            micros_to_resolution: None,
        }
    }

    /// What the dashboard's tallies know of the appeal; its durations follow.
    fn tally_facts(&mut self) -> anyhow::Result<TallyFacts> {
        let facts = TallyFacts {
            status: self.status.parse()?,
            received_at: self.received_at,
            seen_at: self.seen_at,
            resolved_at: self.resolved_at,
            seen_due_at: self.seen_due_at,
            due_at: self.due_at,
        };
        (self.micros_to_seen, self.micros_to_resolution) = (facts.micros_to_seen(), facts.micros_to_resolution());
        Ok(facts)
    }

    /// The values of every column, in the order of [`INSERT_APPEAL`] and
    /// [`UPDATE_APPEAL`].
    fn values(&self) -> Vec<Value> {
        let row = self.clone();
        vec![
            row.id.into(),
            row.number.into(),
            row.municipality_id.into(),
            row.channel.into(),
            row.external_id.into(),
            row.author_name.into(),
            row.author_contact.into(),
            row.text.into(),
            row.text_folded.into(),
            row.status.into(),
            row.priority.into(),
            row.category.into(),
            row.tags.into(),
            row.received_at.into(),
            row.seen_at.into(),
            row.resolved_at.into(),
            row.seen_due_at.into(),
            row.due_at.into(),
            row.deadline_extended.into(),
            row.version.into(),
            row.outcome.into(),
            row.response.into(),
            row.duplicate_of.into(),
            row.resolved_by.into(),
            row.last_event_seq.into(),
            row.last_event_hash.into(),
            row.micros_to_seen.into(),
            row.micros_to_resolution.into(),
        ]
    }
}

fn event_values(event: &RecordedEvent) -> Vec<Value> {
    vec![
        Uuid::now_v7().into(),
        event.appeal_id.as_uuid().into(),
        event.seq.into(),
        event.kind.as_str().into(),
        event.at.into(),
        event.actor_id.map(|id| id.as_uuid()).into(),
        event.from_status.map(|status| status.as_str().to_owned()).into(),
        event.to_status.map(|status| status.as_str().to_owned()).into(),
        event.note.clone().into(),
        event.data.clone().into(),
        event.hash.clone().into(),
    ]
}

/// One client of the database in a scenario.
pub struct FloorWorker {
    scenario: Scenario,
    shared: Arc<Shared>,
    db: DatabaseConnection,
    index: usize,
    sent: u64,
    rng: StdRng,
    unread: Option<UnreadQueue>,
    seen: Option<UnreadAppeal>,
    store: Store,
}

impl FloorWorker {
    pub fn new(
        scenario: Scenario,
        shared: Arc<Shared>,
        db: DatabaseConnection,
        index: usize,
        unread: Option<UnreadQueue>,
    ) -> FloorWorker {
        let rng = StdRng::seed_from_u64(index as u64 + 1_000);
        let store = Store::new(db.clone());
        FloorWorker { scenario, shared, db, index, sent: 0, rng, unread, seen: None, store }
    }

    fn statement(&self, sql: &str, values: Vec<Value>) -> Statement {
        let backend = self.db.get_database_backend();
        Statement::from_sql_and_values(backend, for_backend(backend, sql), values)
    }

    /// The statement that authenticates every request.
    async fn authenticate(&self, db: &impl ConnectionTrait, token: &str) -> anyhow::Result<()> {
        let found = db.query_one_raw(self.statement(USER_BY_TOKEN, vec![Shared::digest(token).into(), one()])).await?;
        anyhow::ensure!(found.is_some(), "the token's user is missing");
        Ok(())
    }

    async fn municipality_by_code(&self, code: &str) -> anyhow::Result<Uuid> {
        let row = self
            .db
            .query_one_raw(self.statement(MUNICIPALITY_BY_CODE, vec![code.into(), one()]))
            .await?
            .with_context(|| format!("no municipality {code}"))?;
        Ok(row.try_get_by_index(0)?)
    }

    /// `Store::submit`: look up the municipality and the channel message, then in
    /// one write transaction take the next number, insert the appeal and its event.
    async fn submit(&mut self) -> anyhow::Result<Sent> {
        let shared = Arc::clone(&self.shared);
        let region = &shared.region;
        self.authenticate(&self.db, &region.cast.intake.token).await?;
        let municipality = pick_weighted(&mut self.rng, &region.shares);
        let code = &region.municipalities[municipality].code;
        let municipality_id = self.municipality_by_code(code).await?;
        let external_id = format!("bench-{}-floor-{}-{}", shared.run, self.index, self.sent);
        let submission = Submission {
            channel: Channel::Telegram,
            external_id: Some(ExternalId::parse(&external_id)?),
            author_name: Some(PersonName::parse(&texts::author_name(&mut self.rng))?),
            author_contact: None,
            text: AppealText::parse(&texts::appeal_text(&mut self.rng))?,
        };
        let existing = self
            .db
            .query_one_raw(self.statement(
                &with_columns(APPEAL_BY_EXTERNAL_ID),
                vec![Channel::Telegram.as_str().into(), external_id.into(), one()],
            ))
            .await?;
        anyhow::ensure!(existing.is_none(), "the channel message was already registered");

        let received_at = to_storage_precision(Utc::now());
        let txn = appeals_storage::database::begin_write(&self.db).await?;
        let counter = txn
            .query_one_raw(self.statement(
                NEXT_REGISTRATION_NUMBER,
                vec![municipality_id.into(), received_at.year().into(), 1i64.into(), 1i64.into()],
            ))
            .await?
            .context("the registration counter returned no row")?;
        let sequence: i64 = counter.try_get_by_index(0)?;
        let applied = Appeal::receive(
            AppealId::generate(),
            registration_number(code, received_at.year(), sequence),
            municipality_id.into(),
            submission,
            Some(region.cast.intake.id),
            received_at,
            &DeadlinePolicy::default(),
        );
        let event = applied.event.record(applied.appeal.id, 1, "");
        let row = AppealRow::received(&applied.appeal, &event);
        let inserted = txn.execute_raw(self.statement(INSERT_APPEAL, row.values())).await?;
        anyhow::ensure!(inserted.rows_affected() == 1, "the appeal was not inserted");
        txn.execute_raw(self.statement(INSERT_EVENT, event_values(&event))).await?;
        let received = Contribution::of(&TallyFacts::of(&applied.appeal));
        appeals_storage::dashboard::record(&txn, applied.appeal.municipality_id, &received).await?;
        txn.commit().await?;
        shared.add_unread(UnreadAppeal { id: applied.appeal.id, municipality, version: applied.appeal.version });
        Ok(Sent::Answered)
    }

    /// `Store::apply` for `markSeen`, then for `resolveAppeal`: in one write
    /// transaction, lock and read the appeal, update it, append the event.
    async fn transition(&mut self) -> anyhow::Result<Sent> {
        let (appeal, resolving) = match self.seen.take() {
            Some(appeal) => (appeal, true),
            None => match self.unread.as_ref().and_then(take_unread) {
                Some(appeal) => (appeal, false),
                None => return Ok(Sent::Exhausted),
            },
        };
        let shared = Arc::clone(&self.shared);
        let head = &shared.region.cast.heads[appeal.municipality];
        self.authenticate(&self.db, &head.token).await?;
        let txn = appeals_storage::database::begin_write(&self.db).await?;
        let mut select = with_columns(APPEAL_BY_ID);
        if self.db.get_database_backend() == DbBackend::Postgres {
            select.push_str(" FOR UPDATE");
        }
        let found = txn.query_one_raw(self.statement(&select, vec![appeal.id.as_uuid().into(), one()])).await?;
        let mut row = AppealRow::from_query_result(&found.context("the appeal vanished")?, "")?;
        anyhow::ensure!(row.version == appeal.version, "version {} instead of {}", row.version, appeal.version);
        let (previous_version, previous_seq) = (row.version, row.last_event_seq);
        let before = row.tally_facts()?;
        let now = to_storage_precision(Utc::now());
        let event = if resolving {
            let response = ResponseText::parse(texts::response(&mut self.rng))?;
            row.status = Status::Resolved.as_str().to_owned();
            row.resolved_at = Some(now);
            row.outcome = Some(Outcome::Explained.as_str().to_owned());
            row.response = Some(response.as_str().to_owned());
            row.resolved_by = Some(head.id.as_uuid());
            NewEvent {
                at: now,
                actor_id: Some(head.id),
                from_status: Some(Status::Seen),
                to_status: Some(Status::Resolved),
                note: Some(response.as_str().to_owned()),
                data: EventData::Resolved { outcome: Outcome::Explained, response, duplicate_of: None },
            }
        } else {
            row.status = Status::Seen.as_str().to_owned();
            row.seen_at = Some(now);
            NewEvent {
                at: now,
                actor_id: Some(head.id),
                from_status: Some(Status::Received),
                to_status: Some(Status::Seen),
                note: None,
                data: EventData::Seen,
            }
        }
        .record(appeal.id, previous_seq + 1, &row.last_event_hash);
        row.version += 1;
        row.last_event_seq = event.seq;
        row.last_event_hash = event.hash.clone();
        let after = row.tally_facts()?;
        let mut values = row.values();
        values.extend([row.id.into(), previous_version.into(), previous_seq.into()]);
        let updated = txn.execute_raw(self.statement(UPDATE_APPEAL, values)).await?;
        anyhow::ensure!(updated.rows_affected() == 1, "the appeal was not updated");
        txn.execute_raw(self.statement(INSERT_EVENT, event_values(&event))).await?;
        let change = Contribution::change(&before, &after);
        appeals_storage::dashboard::record(&txn, row.municipality_id.into(), &change).await?;
        txn.commit().await?;
        if !resolving {
            self.seen = Some(UnreadAppeal { version: appeal.version + 1, ..appeal });
        }
        Ok(Sent::Answered)
    }

    /// `Store::list_appeals` itself (which statements it runs depends on the
    /// filter: the total comes from the dashboard's tallies when they can tell),
    /// then the municipalities the page names, as the API's loader fetches them.
    async fn list(&self, filter: AppealFilter, after: Option<Cursor>) -> anyhow::Result<Sent> {
        let page = self.store.list_appeals(Scope::Everywhere, &filter, PAGE, after).await?;
        let municipalities: BTreeSet<MunicipalityId> =
            page.appeals.iter().map(|appeal| appeal.municipality_id).collect();
        if !municipalities.is_empty() {
            let ids: Vec<MunicipalityId> = municipalities.into_iter().collect();
            self.store.municipalities_by_ids(&ids).await?;
        }
        Ok(Sent::Answered)
    }

    /// The appeal, its history and the users who acted, as the API's loaders
    /// fetch them.
    async fn appeal(&mut self) -> anyhow::Result<Sent> {
        let id = texts::pick(&mut self.rng, &self.shared.region.sample);
        let appeal = self.db.query_all_raw(self.statement(&with_columns(APPEALS_BY_IDS), vec![id.as_uuid().into()]));
        anyhow::ensure!(!appeal.await?.is_empty(), "no appeal {id}");
        let events = self.db.query_all_raw(self.statement(HISTORIES, vec![id.as_uuid().into()])).await?;
        let actors: BTreeSet<Uuid> =
            events.iter().filter_map(|row| row.try_get::<Option<Uuid>>("", "actor_id").ok().flatten()).collect();
        let ids: Vec<Value> = actors.into_iter().map(Value::from).collect();
        self.db.query_all_raw(self.statement(&with_ids(USERS_BY_IDS, ids.len()), ids)).await?;
        Ok(Sent::Answered)
    }

    /// `Store::dashboard` itself: its statements are built from the tallies at
    /// run time (which municipalities and medians), so the floor issues them
    /// through the same function, on its own connection, without the API.
    async fn dashboard(&self, one_municipality: bool) -> anyhow::Result<Sent> {
        let filter = DashboardFilter {
            municipality_code: one_municipality.then(|| MunicipalityCode::parse(FOCUS_MUNICIPALITY)).transpose()?,
            ..DashboardFilter::default()
        };
        self.store.dashboard(Scope::Everywhere, &filter).await?;
        Ok(Sent::Answered)
    }
}

impl Worker for FloorWorker {
    async fn request(&mut self) -> anyhow::Result<Sent> {
        self.sent += 1;
        if !matches!(self.scenario, Scenario::Intake | Scenario::Transitions) {
            self.authenticate(&self.db, &self.shared.region.cast.governor.token).await?;
        }
        let focus = || self.shared.region.municipalities[self.shared.focus].code.as_str();
        match self.scenario {
            Scenario::Intake => self.submit().await,
            Scenario::Transitions => self.transition().await,
            Scenario::ListFirst => self.list(AppealFilter::default(), None).await,
            Scenario::ListDeep => self.list(AppealFilter::default(), Some(self.shared.region.middle)).await,
            Scenario::ListFiltered => {
                let filter = AppealFilter {
                    municipality_code: Some(MunicipalityCode::parse(focus())?),
                    status: Some(Status::Received),
                    ..AppealFilter::default()
                };
                self.list(filter, None).await
            }
            Scenario::ListSearch => {
                self.list(AppealFilter { text: Some(SEARCH_TEXT.to_owned()), ..AppealFilter::default() }, None).await
            }
            Scenario::Appeal => self.appeal().await,
            Scenario::DashboardRegion => self.dashboard(false).await,
            Scenario::DashboardMunicipality => self.dashboard(true).await,
            Scenario::Subscriptions => anyhow::bail!("subscriptions have no floor"),
        }
    }
}

/// `LIMIT 1`, bound as sea-query binds it.
fn one() -> Value {
    Value::BigUnsigned(Some(1))
}

fn with_columns(sql: &str) -> String {
    sql.replace("{columns}", APPEAL_COLUMNS)
}

/// `sql` with `{ids}` replaced by `count` placeholders.
fn with_ids(sql: &str, count: usize) -> String {
    sql.replace("{ids}", &vec!["?"; count].join(", "))
}

/// `sql` as sea-query writes it for `backend`: PostgreSQL numbers its
/// placeholders (`?` becomes `$1`, `$2`…; no statement here has a `?` inside a
/// literal) and writes the LIKE escape as `E'\\'`.
fn for_backend(backend: DbBackend, sql: &str) -> String {
    if backend != DbBackend::Postgres {
        return sql.to_owned();
    }
    let sql = sql.replace(r"ESCAPE '\'", r"ESCAPE E'\\'");
    let mut numbered = String::with_capacity(sql.len() + 32);
    let mut next = 0;
    for c in sql.chars() {
        if c == '?' {
            next += 1;
            numbered.push_str(&format!("${next}"));
        } else {
            numbered.push(c);
        }
    }
    numbered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_written_as_sea_query_writes_them_for_each_backend() {
        assert_eq!(for_backend(DbBackend::Postgres, "a = ? AND b IN (?, ?)"), "a = $1 AND b IN ($2, $3)");
        assert_eq!(for_backend(DbBackend::Sqlite, "a = ?"), "a = ?");
        assert_eq!(for_backend(DbBackend::Postgres, r"LIKE ? ESCAPE '\'"), r"LIKE $1 ESCAPE E'\\'");
        assert_eq!(for_backend(DbBackend::Sqlite, r"LIKE ? ESCAPE '\'"), r"LIKE ? ESCAPE '\'");
        assert_eq!(with_ids("IN ({ids})", 3), "IN (?, ?, ?)");
    }
}
