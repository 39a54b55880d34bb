//! The floor: the least the database must do for each scenario's work, sent
//! straight to it. No HTTP, no GraphQL, no token to look up, nothing looked up
//! that never changes (a municipality's id is known to the client), no count the
//! work does not need, and no running totals kept for the dashboard: what the
//! server sends beyond these statements is the price of the API and of its
//! design, and the ratio to this floor is the figure that counts.
//!
//! | scenario | statements |
//! |---|---|
//! | intake | one transaction: take the next number (an upsert that returns it), insert the appeal (with its text folded and its search terms, which the search indexes take in), insert its event |
//! | transitions | one transaction: lock the appeal and read its version and chain end, update it, insert the event |
//! | list pages | one keyset `SELECT` of the page with its municipalities, and the total: from the running totals where they can tell (no filter, or a municipality), else a `COUNT` |
//! | searches | the same, the search answered from its index alone (on SQLite, the FTS5 table counts a region-wide total by itself) |
//! | one appeal | the appeal, and its history with its actors (one join) |
//! | dashboards | `Store::dashboard` itself, on the floor's connection: the running totals and their histograms are the data model, read the one way their format allows |
//!
//! The floor's writes do not keep the dashboard's running totals (that is the
//! server's design, not the least work); so after a run the totals lag by what
//! the floor wrote, and the run deletes them at the end, for the next opening of
//! a kept database to rebuild them exactly.
//!
//! `bench/tests/floor.rs` checks that the floor's reads return what storage's own
//! functions (the API's) return, and that its writes make appeals that read back
//! and verify.
//!
//! This is the one place outside `appeals-storage` that writes to a database: the
//! benchmark's own, thrown away after the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use appeals_core::MunicipalityId;
use appeals_core::appeal::registration_number;
use appeals_core::clock::to_storage_precision;
use appeals_core::events::{EventData, NewEvent};
use appeals_core::search::{QueryTerm, WordQuery};
use appeals_core::text::{AppealText, ExternalId, MunicipalityCode, PersonName, ResponseText, fold_for_search};
use appeals_core::{AppealId, Channel, DeadlinePolicy, Outcome, RecordedEvent, Scope, Status, Submission};
use appeals_storage::search::{fts5_query, fts5_string, municipality_term, tsquery};
use appeals_storage::{Cursor, DashboardFilter, Store};
use chrono::{DateTime, Datelike, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sea_orm::prelude::Uuid;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait, Value,
};

use crate::api::PAGE;
use crate::load::{Sent, Worker};
use crate::region::{UnreadAppeal, pick_weighted};
use crate::scenario::{FOCUS_MUNICIPALITY, SEARCH_TEXT, Scenario, Shared, UnreadQueue, take_unread};
use crate::texts;

const NEXT_NUMBER: &str = r#"INSERT INTO "registration_counter" ("municipality_id", "year", "last_value") VALUES (?, ?, 1) ON CONFLICT ("municipality_id", "year") DO UPDATE SET "last_value" = "registration_counter"."last_value" + 1 RETURNING "last_value""#;

const INSERT_APPEAL: &str = r#"INSERT INTO "appeal" ("id", "number", "municipality_id", "channel", "external_id", "author_name", "text", "text_folded", "search_terms", "status", "priority", "tags", "received_at", "seen_due_at", "due_at", "deadline_extended", "version", "last_event_seq", "last_event_hash") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'NORMAL', '[]', ?, ?, ?, false, 1, 1, ?) ON CONFLICT ("municipality_id", "channel", "external_id") DO NOTHING"#;

/// The event with the next position in commit order, the last statement of its
/// transaction (what subscribers on every replica follow): on PostgreSQL from
/// the counter row, whose lock is held to the commit; on SQLite the highest
/// position plus one, under the only write lock.
const INSERT_EVENT_POSTGRES: &str = r#"WITH "next_position" AS (UPDATE "event_counter" SET "last_position" = "last_position" + 1 RETURNING "last_position") INSERT INTO "appeal_event" ("id", "appeal_id", "seq", "kind", "at", "actor_id", "from_status", "to_status", "note", "data", "hash", "position") SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "last_position" FROM "next_position""#;
const INSERT_EVENT_SQLITE: &str = r#"INSERT INTO "appeal_event" ("id", "appeal_id", "seq", "kind", "at", "actor_id", "from_status", "to_status", "note", "data", "hash", "position") SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, COALESCE(MAX("position"), 0) + 1 FROM "appeal_event""#;

/// `FOR UPDATE` is added on PostgreSQL; SQLite's write transaction already holds
/// the only write lock.
const LOCK_APPEAL: &str =
    r#"SELECT "version", "last_event_seq", "last_event_hash", "received_at" FROM "appeal" WHERE "id" = ?"#;

const MARK_SEEN: &str = r#"UPDATE "appeal" SET "status" = 'SEEN', "seen_at" = ?, "micros_to_seen" = ?, "version" = "version" + 1, "last_event_seq" = ?, "last_event_hash" = ? WHERE "id" = ? AND "version" = ?"#;

const RESOLVE: &str = r#"UPDATE "appeal" SET "status" = 'RESOLVED', "resolved_at" = ?, "micros_to_resolution" = ?, "outcome" = 'EXPLAINED', "response" = ?, "resolved_by" = ?, "version" = "version" + 1, "last_event_seq" = ?, "last_event_hash" = ? WHERE "id" = ? AND "version" = ?"#;

/// The page as the bench's list query shows it: `{where}` is the filter and the
/// keyset condition; one more row than the page says whether another follows.
const PAGE_ROWS: &str = r#"SELECT "appeal"."id", "appeal"."number", "appeal"."status", "appeal"."priority", "appeal"."received_at", "appeal"."due_at", "appeal"."text", "municipality"."code", "municipality"."name" FROM "appeal" JOIN "municipality" ON "municipality"."id" = "appeal"."municipality_id" {where} ORDER BY "appeal"."received_at" DESC, "appeal"."id" DESC LIMIT ?"#;

const TOTAL_FROM_TALLIES: &str =
    r#"SELECT CAST(SUM("received" + "seen" + "resolved") AS BIGINT) FROM "municipality_tally""#;

const RECEIVED_FROM_TALLY: &str = r#"SELECT "received" FROM "municipality_tally" WHERE "municipality_id" = ?"#;

const APPEAL: &str = r#"SELECT "id", "number", "status", "priority", "category", "tags", "text", "received_at", "seen_at", "resolved_at", "due_at", "version", "outcome", "response" FROM "appeal" WHERE "id" = ?"#;

/// The first page of the history, as `Appeal.history` gives it by default.
const HISTORY: &str = r#"SELECT "appeal_event"."seq", "appeal_event"."kind", "appeal_event"."at", "appeal_event"."from_status", "appeal_event"."to_status", "appeal_event"."note", "appeal_event"."hash", "app_user"."name", "app_user"."role" FROM "appeal_event" LEFT JOIN "app_user" ON "app_user"."id" = "appeal_event"."actor_id" WHERE "appeal_event"."appeal_id" = ? AND "appeal_event"."seq" <= 100 ORDER BY "appeal_event"."seq""#;

/// Which list a page is of.
#[derive(Debug, Clone)]
pub enum ListFilter {
    Everything,
    /// One municipality's appeals in one status.
    Unread {
        municipality: Uuid,
    },
    /// Appeals whose text contains `folded` (already folded for search), in
    /// one municipality or all.
    Text {
        folded: String,
        municipality: Option<Uuid>,
    },
    /// Appeals whose text has every word of `query`, in one municipality or all.
    Words {
        query: WordQuery,
        municipality: Option<Uuid>,
    },
}

/// The trigram index narrows a substring search of three characters or more.
const TRIGRAM: usize = 3;

/// A search that finds at most this many appeals is read from its index's
/// rows; one that finds more, by testing rows newest first.
const FEW: u64 = 2_000;

/// A search's condition on the page, and its count, each with its values.
struct SearchSql {
    page: (String, Vec<Value>),
    count: Counted,
}

/// How a search's total is had.
enum Counted {
    /// Known already: the plan read the matching rows.
    Known(u64),
    /// By this statement.
    By(String, Vec<Value>),
}

/// What a list page returned: its appeals' ids, newest first, and the total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageOfIds {
    pub ids: Vec<AppealId>,
    pub has_next_page: bool,
    pub total: u64,
}

/// The floor's connection to the database, counting the statements it sends.
#[derive(Clone)]
pub struct Floor {
    db: DatabaseConnection,
    store: Store,
    statements: Arc<AtomicU64>,
}

impl Floor {
    pub fn new(mut db: DatabaseConnection) -> Floor {
        let statements = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&statements);
        db.set_metric_callback(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        let store = Store::new(db.clone());
        Floor { db, store, statements }
    }

    /// Statements sent so far (`BEGIN` and `COMMIT` not counted, as the server's
    /// count does not count them either), the dashboard's through storage included.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed) + self.store.statements_executed()
    }

    fn insert_event(&self) -> &'static str {
        match self.db.get_database_backend() {
            DbBackend::Postgres => INSERT_EVENT_POSTGRES,
            _ => INSERT_EVENT_SQLITE,
        }
    }

    fn statement(&self, sql: &str, values: Vec<Value>) -> Statement {
        let backend = self.db.get_database_backend();
        Statement::from_sql_and_values(backend, for_backend(backend, sql), values)
    }

    /// Registers an appeal: three statements in one transaction.
    pub async fn submit(
        &self,
        municipality: (Uuid, &str),
        submission: Submission,
        intake: appeals_core::UserId,
    ) -> anyhow::Result<(AppealId, i32)> {
        let (municipality_id, code) = municipality;
        let received_at = to_storage_precision(Utc::now());
        let txn = self.db.begin_with_options(write_transaction()).await?;
        let counter = txn
            .query_one_raw(self.statement(NEXT_NUMBER, vec![municipality_id.into(), received_at.year().into()]))
            .await?
            .context("the registration counter returned no row")?;
        let sequence: i64 = counter.try_get_by_index(0)?;
        let applied = appeals_core::Appeal::receive(
            AppealId::generate(),
            registration_number(code, received_at.year(), sequence),
            municipality_id.into(),
            submission,
            Some(intake),
            received_at,
            &DeadlinePolicy::default(),
        );
        let appeal = &applied.appeal;
        let event = applied.event.record(appeal.id, 1, "");
        let values = vec![
            appeal.id.as_uuid().into(),
            appeal.number.clone().into(),
            municipality_id.into(),
            appeal.channel.as_str().into(),
            appeal.external_id.as_ref().map(|value| value.as_str().to_owned()).into(),
            appeal.author_name.as_ref().map(|value| value.as_str().to_owned()).into(),
            appeal.text.as_str().into(),
            fold_for_search(appeal.text.as_str()).into(),
            appeals_storage::search::stored_terms(appeal.text.as_str(), appeal.municipality_id).into(),
            appeal.status.as_str().into(),
            appeal.received_at.into(),
            appeal.seen_due_at.into(),
            appeal.due_at.into(),
            event.hash.clone().into(),
        ];
        let inserted = txn.execute_raw(self.statement(INSERT_APPEAL, values)).await?;
        anyhow::ensure!(inserted.rows_affected() == 1, "the appeal was not inserted");
        txn.execute_raw(self.statement(self.insert_event(), event_values(&event))).await?;
        txn.commit().await?;
        Ok((appeal.id, appeal.version))
    }

    /// Reads (`resolve` false) or resolves (`resolve` true) an appeal the head
    /// last saw at `version`: three statements in one transaction.
    pub async fn transition(
        &self,
        id: AppealId,
        version: i32,
        head: appeals_core::UserId,
        response: Option<ResponseText>,
    ) -> anyhow::Result<()> {
        let txn = self.db.begin_with_options(write_transaction()).await?;
        let mut lock = LOCK_APPEAL.to_owned();
        if self.db.get_database_backend() == DbBackend::Postgres {
            lock.push_str(" FOR UPDATE");
        }
        let row = txn.query_one_raw(self.statement(&lock, vec![id.as_uuid().into()])).await?.context("no appeal")?;
        let (current, last_seq, last_hash, received_at): (i32, i32, String, DateTime<Utc>) =
            (row.try_get_by_index(0)?, row.try_get_by_index(1)?, row.try_get_by_index(2)?, row.try_get_by_index(3)?);
        anyhow::ensure!(current == version, "version {current} instead of {version}");
        let now = to_storage_precision(Utc::now());
        let micros = (now - received_at).num_microseconds();
        let (event, update, values) = match response {
            None => {
                let event = NewEvent {
                    at: now,
                    actor_id: Some(head),
                    from_status: Some(Status::Received),
                    to_status: Some(Status::Seen),
                    note: None,
                    data: EventData::Seen,
                }
                .record(id, last_seq + 1, &last_hash);
                let values = vec![
                    now.into(),
                    micros.into(),
                    event.seq.into(),
                    event.hash.clone().into(),
                    id.as_uuid().into(),
                    version.into(),
                ];
                (event, MARK_SEEN, values)
            }
            Some(response) => {
                let event = NewEvent {
                    at: now,
                    actor_id: Some(head),
                    from_status: Some(Status::Seen),
                    to_status: Some(Status::Resolved),
                    note: Some(response.as_str().to_owned()),
                    data: EventData::Resolved {
                        outcome: Outcome::Explained,
                        response: response.clone(),
                        duplicate_of: None,
                    },
                }
                .record(id, last_seq + 1, &last_hash);
                let values = vec![
                    now.into(),
                    micros.into(),
                    response.as_str().into(),
                    head.as_uuid().into(),
                    event.seq.into(),
                    event.hash.clone().into(),
                    id.as_uuid().into(),
                    version.into(),
                ];
                (event, RESOLVE, values)
            }
        };
        let updated = txn.execute_raw(self.statement(update, values)).await?;
        anyhow::ensure!(updated.rows_affected() == 1, "the appeal was not updated");
        txn.execute_raw(self.statement(self.insert_event(), event_values(&event))).await?;
        txn.commit().await?;
        Ok(())
    }

    /// A list page, newest first, after `after`: one keyset `SELECT`, and the
    /// total.
    pub async fn page(&self, filter: &ListFilter, after: Option<&Cursor>) -> anyhow::Result<PageOfIds> {
        let search = match filter {
            ListFilter::Text { .. } | ListFilter::Words { .. } => Some(self.search_sql(filter).await?),
            ListFilter::Everything | ListFilter::Unread { .. } => None,
        };
        let mut conditions: Vec<String> = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        match filter {
            ListFilter::Everything => {}
            ListFilter::Unread { municipality } => {
                conditions.push(r#""appeal"."municipality_id" = ? AND "appeal"."status" = 'RECEIVED'"#.to_owned());
                values.push((*municipality).into());
            }
            ListFilter::Text { .. } | ListFilter::Words { .. } => {
                let (condition, bound) = search.as_ref().map(|search| search.page.clone()).unwrap_or_default();
                conditions.push(condition);
                values.extend(bound);
            }
        }
        if let Some(after) = after {
            conditions.push(r#"("appeal"."received_at", "appeal"."id") < (?, ?)"#.to_owned());
            values.extend([after.received_at.into(), after.id.as_uuid().into()]);
        }
        let condition =
            if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        values.push((PAGE as i64 + 1).into());
        let rows = self.db.query_all_raw(self.statement(&PAGE_ROWS.replace("{where}", &condition), values)).await?;
        let has_next_page = rows.len() as u64 > PAGE;
        let ids = rows
            .iter()
            .take(PAGE as usize)
            .map(|row| row.try_get_by_index::<Uuid>(0).map(AppealId::from_uuid))
            .collect::<Result<Vec<_>, _>>()?;
        let total = match filter {
            ListFilter::Everything => self.number(TOTAL_FROM_TALLIES, vec![]).await?,
            ListFilter::Unread { municipality } => {
                self.number(RECEIVED_FROM_TALLY, vec![(*municipality).into()]).await?
            }
            ListFilter::Text { .. } | ListFilter::Words { .. } => match search.map(|search| search.count) {
                Some(Counted::Known(count)) => count,
                Some(Counted::By(sql, bound)) => self.number(&sql, bound).await?,
                None => 0,
            },
        };
        Ok(PageOfIds { ids, has_next_page, total })
    }

    /// A search's condition on the page (with its values) and the statement
    /// that counts its matches, each as the database answers it with the
    /// least work. PostgreSQL's planner chooses between the index and the
    /// list's order by itself. On SQLite a few matches (at most [`FEW`]) are
    /// taken from the FTS5 index, many by testing rows newest first (the
    /// substring with `LIKE`, words against the row's stored terms); the
    /// total comes from the FTS5 table alone where it can tell.
    async fn search_sql(&self, filter: &ListFilter) -> anyhow::Result<SearchSql> {
        let postgres = self.db.get_database_backend() == DbBackend::Postgres;
        let (municipality, in_municipality) = match filter {
            ListFilter::Text { municipality, .. } | ListFilter::Words { municipality, .. } => {
                (*municipality, municipality.map(Value::from).into_iter().collect::<Vec<_>>())
            }
            ListFilter::Everything | ListFilter::Unread { .. } => (None, Vec::new()),
        };
        let and_municipality = if municipality.is_some() { r#" AND "appeal"."municipality_id" = ?"# } else { "" };
        let counted = |condition: &str, mut values: Vec<Value>| {
            values.extend(in_municipality.clone());
            Counted::By(format!(r#"SELECT COUNT(*) FROM "appeal" WHERE {condition}{and_municipality}"#), values)
        };
        let paged = |condition: &str, mut values: Vec<Value>| {
            values.extend(in_municipality.clone());
            (format!("{condition}{and_municipality}"), values)
        };
        const LIKE: &str = r#""appeal"."text_folded" LIKE ? ESCAPE '\'"#;
        const TRIGRAMS: &str = r#"SELECT "rowid" FROM "appeal_text_trigram" WHERE "appeal_text_trigram" MATCH ?"#;
        const TERMS: &str = r#"SELECT "rowid" FROM "appeal_search_term" WHERE "appeal_search_term" MATCH ?"#;
        Ok(match filter {
            ListFilter::Text { folded, .. } if postgres || folded.chars().count() < TRIGRAM => {
                let value = || vec![Value::from(like_pattern(folded))];
                SearchSql { page: paged(LIKE, value()), count: counted(LIKE, value()) }
            }
            ListFilter::Text { folded, .. } => {
                let phrase = fts5_string(folded);
                match self.few_rows(TRIGRAMS, &phrase).await? {
                    Some(rows) => {
                        let among = among(&rows);
                        let count = match municipality {
                            None => Counted::Known(rows.len() as u64),
                            Some(_) => counted(&among, Vec::new()),
                        };
                        SearchSql { page: paged(&among, Vec::new()), count }
                    }
                    None => {
                        let count = match municipality {
                            None => Counted::By(format!("SELECT COUNT(*) FROM ({TRIGRAMS})"), vec![phrase.into()]),
                            Some(_) => counted(&format!(r#"+"appeal"."rowid" IN ({TRIGRAMS})"#), vec![phrase.into()]),
                        };
                        SearchSql { page: paged(LIKE, vec![like_pattern(folded).into()]), count }
                    }
                }
            }
            ListFilter::Words { query, .. } if postgres => {
                let condition = r#""appeal"."search_vector" @@ CAST(? AS tsquery)"#;
                let tsquery = tsquery(query);
                SearchSql {
                    page: paged(condition, vec![tsquery.clone().into()]),
                    count: counted(condition, vec![tsquery.into()]),
                }
            }
            ListFilter::Words { query, .. } => {
                let mut fts_query = fts5_query(query);
                if let Some(municipality) = municipality {
                    let term = municipality_term(MunicipalityId::from_uuid(municipality));
                    fts_query = format!("{fts_query} AND {}", fts5_string(&term));
                }
                match self.few_rows(TERMS, &fts_query).await? {
                    Some(rows) => {
                        SearchSql { page: (among(&rows), Vec::new()), count: Counted::Known(rows.len() as u64) }
                    }
                    None => {
                        let mut tests = Vec::new();
                        let mut values = Vec::new();
                        for term in query.terms() {
                            match term {
                                QueryTerm::Exact(stem) => {
                                    tests.push(r#"instr(' ' || "appeal"."search_terms" || ' ', ?) > 0"#);
                                    values.push(Value::from(format!(" {stem} ")));
                                }
                                QueryTerm::Prefix(prefix) => {
                                    tests.push(r#"instr(' ' || "appeal"."search_terms", ?) > 0"#);
                                    values.push(Value::from(format!(" {prefix}")));
                                }
                            }
                        }
                        let count = Counted::By(format!("SELECT COUNT(*) FROM ({TERMS})"), vec![fts_query.into()]);
                        SearchSql { page: paged(&tests.join(" AND "), values), count }
                    }
                }
            }
            ListFilter::Everything | ListFilter::Unread { .. } => {
                SearchSql { page: ("TRUE".to_owned(), Vec::new()), count: Counted::Known(0) }
            }
        })
    }

    /// The rows of `rows` (an FTS5 `SELECT "rowid"` of one `MATCH ?`) if there
    /// are at most [`FEW`]; it stops reading past them.
    async fn few_rows(&self, rows: &str, fts_query: &str) -> anyhow::Result<Option<Vec<i64>>> {
        let sql = format!("{rows} LIMIT {}", FEW + 1);
        let found = self.db.query_all_raw(self.statement(&sql, vec![fts_query.into()])).await?;
        if found.len() as u64 > FEW {
            return Ok(None);
        }
        Ok(Some(found.iter().map(|row| row.try_get_by_index::<i64>(0)).collect::<Result<_, _>>()?))
    }

    async fn number(&self, sql: &str, values: Vec<Value>) -> anyhow::Result<u64> {
        let row = self.db.query_one_raw(self.statement(sql, values)).await?.context("no row")?;
        Ok(u64::try_from(row.try_get_by_index::<Option<i64>>(0)?.unwrap_or(0))?)
    }

    /// One appeal and the first page of its history with the actors' names:
    /// the history's `seq`s.
    pub async fn appeal(&self, id: AppealId) -> anyhow::Result<Vec<i32>> {
        let found = self.db.query_one_raw(self.statement(APPEAL, vec![id.as_uuid().into()])).await?;
        anyhow::ensure!(found.is_some(), "no appeal {id}");
        let events = self.db.query_all_raw(self.statement(HISTORY, vec![id.as_uuid().into()])).await?;
        Ok(events.iter().map(|row| row.try_get_by_index::<i32>(0)).collect::<Result<_, _>>()?)
    }

    /// The dashboard, through storage's own function on the floor's connection.
    pub async fn dashboard(&self, municipality: Option<&str>) -> anyhow::Result<appeals_storage::Dashboard> {
        let filter = DashboardFilter {
            municipality_code: municipality.map(MunicipalityCode::parse).transpose()?,
            ..DashboardFilter::default()
        };
        Ok(self.store.dashboard(Scope::Everywhere, &filter).await?)
    }

    /// Deletes the dashboard's running totals, which the floor's writes did not
    /// keep: the next opening of the database rebuilds them from the appeals.
    pub async fn forget_running_totals(&self) -> anyhow::Result<()> {
        self.db.execute_unprepared(r#"DELETE FROM "deadline_tally""#).await?;
        self.db.execute_unprepared(r#"DELETE FROM "municipality_tally""#).await?;
        Ok(())
    }
}

/// The appeals whose SQLite row numbers are `rows`, written out: they are
/// numbers the database gave.
fn among(rows: &[i64]) -> String {
    let listed: Vec<String> = rows.iter().map(i64::to_string).collect();
    format!(r#""appeal"."rowid" IN ({})"#, listed.join(", "))
}

/// SQLite's write transactions begin IMMEDIATE, as the server's do: a deferred
/// one that reads and then writes fails under concurrency instead of waiting.
fn write_transaction() -> TransactionOptions {
    TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() }
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

/// `%text%`, with LIKE's wildcards in `text` escaped.
fn like_pattern(folded: &str) -> String {
    let mut pattern = String::with_capacity(folded.len() + 2);
    pattern.push('%');
    for c in folded.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// One client of the database in a scenario.
pub struct FloorWorker {
    scenario: Scenario,
    shared: Arc<Shared>,
    floor: Floor,
    index: usize,
    sent: u64,
    rng: StdRng,
    unread: Option<UnreadQueue>,
    seen: Option<UnreadAppeal>,
}

impl FloorWorker {
    pub fn new(
        scenario: Scenario,
        shared: Arc<Shared>,
        floor: Floor,
        index: usize,
        unread: Option<UnreadQueue>,
    ) -> FloorWorker {
        let rng = StdRng::seed_from_u64(index as u64 + 1_000);
        FloorWorker { scenario, shared, floor, index, sent: 0, rng, unread, seen: None }
    }

    async fn submit(&mut self) -> anyhow::Result<Sent> {
        let shared = Arc::clone(&self.shared);
        let region = &shared.region;
        let index = pick_weighted(&mut self.rng, &region.shares);
        let municipality = &region.municipalities[index];
        let external_id = format!("bench-{}-floor-{}-{}", shared.run, self.index, self.sent);
        let submission = Submission {
            channel: Channel::Telegram,
            external_id: Some(ExternalId::parse(&external_id)?),
            author_name: Some(PersonName::parse(&texts::author_name(&mut self.rng))?),
            author_contact: None,
            text: AppealText::parse(&texts::appeal_text(&mut self.rng))?,
        };
        let (id, version) = self
            .floor
            .submit((municipality.id.as_uuid(), &municipality.code), submission, region.cast.intake.id)
            .await?;
        shared.add_unread(UnreadAppeal { id, municipality: index, version });
        Ok(Sent::Answered)
    }

    async fn transition(&mut self) -> anyhow::Result<Sent> {
        let (appeal, resolving) = match self.seen.take() {
            Some(appeal) => (appeal, true),
            None => match self.unread.as_ref().and_then(take_unread) {
                Some(appeal) => (appeal, false),
                None => return Ok(Sent::Exhausted),
            },
        };
        let head = self.shared.region.cast.heads[appeal.municipality].id;
        let response = resolving.then(|| ResponseText::parse(texts::response(&mut self.rng))).transpose()?;
        self.floor.transition(appeal.id, appeal.version, head, response).await?;
        if !resolving {
            self.seen = Some(UnreadAppeal { version: appeal.version + 1, ..appeal });
        }
        Ok(Sent::Answered)
    }
}

impl Worker for FloorWorker {
    async fn request(&mut self) -> anyhow::Result<Sent> {
        self.sent += 1;
        let focus = &self.shared.region.municipalities[self.shared.focus];
        match self.scenario {
            Scenario::Intake => self.submit().await,
            Scenario::Transitions => self.transition().await,
            Scenario::ListFirst => self.floor.page(&ListFilter::Everything, None).await.map(|_| Sent::Answered),
            Scenario::ListDeep => {
                self.floor.page(&ListFilter::Everything, Some(&self.shared.region.middle)).await.map(|_| Sent::Answered)
            }
            Scenario::ListFiltered => {
                let filter = ListFilter::Unread { municipality: focus.id.as_uuid() };
                self.floor.page(&filter, None).await.map(|_| Sent::Answered)
            }
            Scenario::ListSearch | Scenario::ListWords => {
                let drawn = self.shared.searches.draw(&mut self.rng);
                let municipality = drawn.in_focus.then(|| focus.id.as_uuid());
                let filter = if self.scenario == Scenario::ListSearch {
                    ListFilter::Text { folded: fold_for_search(drawn.as_text().trim()), municipality }
                } else {
                    ListFilter::Words { query: WordQuery::parse(&drawn.words)?, municipality }
                };
                self.floor.page(&filter, None).await.map(|_| Sent::Answered)
            }
            Scenario::ListBesideSearch if self.index == 0 => {
                let filter = ListFilter::Text { folded: fold_for_search(SEARCH_TEXT), municipality: None };
                self.floor.page(&filter, None).await.map(|_| Sent::Beside)
            }
            Scenario::ListBesideSearch => self.floor.page(&ListFilter::Everything, None).await.map(|_| Sent::Answered),
            Scenario::Appeal => {
                let id = texts::pick(&mut self.rng, &self.shared.region.sample);
                self.floor.appeal(id).await.map(|_| Sent::Answered)
            }
            Scenario::DashboardRegion => self.floor.dashboard(None).await.map(|_| Sent::Answered),
            Scenario::DashboardMunicipality => {
                self.floor.dashboard(Some(FOCUS_MUNICIPALITY)).await.map(|_| Sent::Answered)
            }
            Scenario::Subscriptions | Scenario::Mixed | Scenario::Lists => {
                anyhow::bail!("{} has no floor", self.scenario.name())
            }
        }
    }
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
    fn statements_are_written_for_each_backend() {
        assert_eq!(for_backend(DbBackend::Postgres, "a = ? AND b IN (?, ?)"), "a = $1 AND b IN ($2, $3)");
        assert_eq!(for_backend(DbBackend::Sqlite, "a = ?"), "a = ?");
        assert_eq!(for_backend(DbBackend::Postgres, r"LIKE ? ESCAPE '\'"), r"LIKE $1 ESCAPE E'\\'");
        assert_eq!(like_pattern("100%_\\"), r"%100\%\_\\%");
    }
}
