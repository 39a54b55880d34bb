//! The indexes on `appeal` that the dashboard's statements were written for
//! (migration `m20261128_000007_create_dashboard_tallies`), and the conditions
//! those statements repeat. A partial index serves a query only when the query
//! states the index's condition, which both databases recognise by comparing
//! expressions, so the query uses the index's predicate as the migration wrote
//! it. The migration is append-only and cannot import these; the tests below
//! compare the stored index definitions with them and read the query plans.

use super::contribution::Deadline;
use super::histogram::Measure;
use crate::entity::appeal;

impl Deadline {
    /// The column that says when this deadline falls due.
    pub(super) fn due_column(self) -> appeal::Column {
        match self {
            Deadline::Answer => appeal::Column::DueAt,
            Deadline::Reading => appeal::Column::SeenDueAt,
        }
    }

    /// The partial index over the appeals that still owe this deadline, by when
    /// it falls due, then municipality and status (so that counting reads the
    /// index alone). Only the plan test needs its name.
    #[cfg(test)]
    fn owed_index(self) -> &'static str {
        match self {
            Deadline::Answer => "appeal_answer_owed_idx",
            Deadline::Reading => "appeal_reading_owed_idx",
        }
    }

    /// The condition of the deadline's partial index, word for word as the
    /// migration wrote it: the statuses that still owe the deadline
    /// ([`Deadline::is_owed_in`]).
    pub(super) fn owing_predicate(self) -> &'static str {
        match self {
            Deadline::Answer => r#""status" <> 'RESOLVED'"#,
            Deadline::Reading => r#""status" = 'RECEIVED'"#,
        }
    }
}

impl Measure {
    /// The appeal's column that holds this duration, in microseconds.
    pub(super) fn column(self) -> &'static str {
        match self {
            Measure::ToSeen => "micros_to_seen",
            Measure::ToResolution => "micros_to_resolution",
        }
    }

    /// The partial index on (`municipality_id`, the duration) over the appeals
    /// that have it, from which the middle durations of a median are read. Only
    /// the plan test needs its name.
    #[cfg(test)]
    fn index(self) -> &'static str {
        match self {
            Measure::ToSeen => "appeal_municipality_to_seen_idx",
            Measure::ToResolution => "appeal_municipality_to_resolution_idx",
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each statement of the dashboard that was written for an index is planned
    //! on both databases, and its plan must name that index: `EXPLAIN QUERY PLAN`
    //! on SQLite, `EXPLAIN (FORMAT JSON)` on PostgreSQL. The test database is
    //! nearly empty, and PostgreSQL rightly reads a tiny table from start to end
    //! instead; the check runs inside a transaction with `SET LOCAL
    //! enable_seqscan = off`, which leaves the planner every index it would use
    //! on a full table and takes the sequential scan away.

    use appeals_core::{MunicipalityId, Status};
    use chrono::{TimeDelta, Utc};
    use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, QueryTrait, Statement, TransactionTrait};

    use super::super::all_time::{self, MedianLookup};
    use super::super::contribution::{Contribution, Deadline, day_of};
    use super::super::histogram::{Measure, MedianProbe};
    use super::super::totals;
    use crate::testing::{Backend, ThrowawayDatabase};
    use crate::{PoolSettings, Store};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_dashboard_statement_uses_the_index_it_was_written_for_on_sqlite() {
        each_statement_uses_the_index_it_was_written_for(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_dashboard_statement_uses_the_index_it_was_written_for_on_postgresql() {
        each_statement_uses_the_index_it_was_written_for(Backend::Postgres).await;
    }

    /// The predicate each partial index was created with, as SQLite keeps it
    /// (PostgreSQL rewrites the text, and is covered by the plans), and which
    /// statuses it lets through: those that owe the deadline in the domain.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_owing_predicates_are_the_migrations_word_for_word_and_the_domains() {
        let database = ThrowawayDatabase::create(Backend::Sqlite).await.expect("SQLite is always available");
        let store = Store::open(&database.url, PoolSettings::default()).await.expect("the database opens");
        for deadline in Deadline::ALL {
            for status in Status::ALL.iter().copied() {
                let sql = format!(
                    r#"SELECT CASE WHEN {} THEN 1 ELSE 0 END AS "owed" FROM (SELECT ? AS "status")"#,
                    deadline.owing_predicate()
                );
                let statement = Statement::from_sql_and_values(DbBackend::Sqlite, sql, [status.as_str().into()]);
                let row = store.db().query_one_raw(statement).await.expect("the predicate evaluates");
                let owed: i32 = row.expect("one row").try_get("", "owed").expect("a flag");
                assert_eq!(owed == 1, deadline.is_owed_in(status), "{deadline:?} owed by {status}");
            }
            let statement = Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?",
                [deadline.owed_index().into()],
            );
            let row = store.db().query_one_raw(statement).await.expect("sqlite_master is readable");
            let sql: String = row.expect("the index exists").try_get("", "sql").expect("its text");
            assert!(
                sql.ends_with(&format!("WHERE {}", deadline.owing_predicate())),
                "{deadline:?}: `{sql}` ends with the predicate the dashboard states"
            );
        }
    }

    async fn each_statement_uses_the_index_it_was_written_for(backend: Backend) {
        let Some(database) = ThrowawayDatabase::create(backend).await else { return };
        let store = Store::open(&database.url, PoolSettings::default()).await.expect("the database opens");
        let municipalities = store.municipalities().await.expect("the municipalities");
        let ids: Vec<_> = municipalities.iter().map(|municipality| municipality.id.as_uuid()).collect();
        let one = MunicipalityId::from_uuid(ids[0]);
        let db_backend = store.db().get_database_backend();
        let primary_key = |table: &str| match backend {
            Backend::Sqlite => format!("sqlite_autoindex_{table}_1"),
            Backend::Postgres => format!("{table}_pkey"),
        };
        let now = Utc::now();
        let today = day_of(now);
        let probe = MedianProbe { from_micros: 0, offset: 0, middle: 2 };
        let change = Contribution { received: 1, ..Contribution::default() };

        let mut statements: Vec<(String, Statement, String)> = vec![
            (
                "the tally rows".to_owned(),
                all_time::tally_rows(ids.clone()).build(db_backend),
                primary_key("municipality_tally"),
            ),
            (
                "the deadlines owed from today on".to_owned(),
                all_time::owed_from_today(ids.clone(), today).build(db_backend),
                primary_key("deadline_tally"),
            ),
            (
                "the list's totalCount from the tallies".to_owned(),
                all_time::summed_counts(vec![ids[0]], Some(Status::Seen)).build(db_backend),
                primary_key("municipality_tally"),
            ),
            (
                "a write's change of the counts".to_owned(),
                totals::increment_counts(ids[0], &change).build(db_backend),
                primary_key("municipality_tally"),
            ),
        ];
        for deadline in Deadline::ALL {
            statements.push((
                format!("the appeals owing {deadline:?} that fell due earlier today"),
                all_time::due_earlier_today(deadline, today, now - TimeDelta::minutes(1)).build(db_backend),
                deadline.owed_index().to_owned(),
            ));
        }
        for measure in [Measure::ToSeen, Measure::ToResolution] {
            let lookups = [MedianLookup { municipality: one, measure, probe }];
            statements.push((
                format!("the middle durations of {measure:?}"),
                all_time::middle_durations_statement(db_backend, &lookups),
                measure.index().to_owned(),
            ));
        }

        let txn = store.db().begin().await.expect("a transaction");
        if backend == Backend::Postgres {
            txn.execute_unprepared("SET LOCAL enable_seqscan = off").await.expect("the setting");
        }
        for (what, statement, index) in statements {
            let used = indexes_in_plan(&txn, statement).await;
            assert!(used.contains(&index), "{what} on {backend:?}: the plan uses `{index}`, not only {used:?}");
        }
        txn.rollback().await.expect("the rollback");
    }

    /// The names of the indexes the plan of `statement` reads.
    async fn indexes_in_plan(txn: &DatabaseTransaction, statement: Statement) -> Vec<String> {
        let backend = txn.get_database_backend();
        let prefix = match backend {
            DbBackend::Postgres => "EXPLAIN (FORMAT JSON) ",
            _ => "EXPLAIN QUERY PLAN ",
        };
        let explain = Statement { sql: format!("{prefix}{}", statement.sql), ..statement };
        let rows = txn.query_all_raw(explain).await.expect("the statement can be planned");
        let mut names = Vec::new();
        for row in rows {
            match backend {
                DbBackend::Postgres => {
                    let plan: serde_json::Value = row.try_get_by_index(0).expect("a JSON plan");
                    collect_index_names(&plan, &mut names);
                }
                _ => {
                    // e.g. "SEARCH appeal USING COVERING INDEX appeal_answer_owed_idx (due_at>? AND due_at<?)"
                    let detail: String = row.try_get("", "detail").expect("a plan line");
                    let words: Vec<&str> = detail.split_whitespace().collect();
                    names.extend(words.windows(2).filter(|pair| pair[0] == "INDEX").map(|pair| pair[1].to_owned()));
                }
            }
        }
        names
    }

    fn collect_index_names(plan: &serde_json::Value, names: &mut Vec<String>) {
        match plan {
            serde_json::Value::Object(fields) => {
                for (key, value) in fields {
                    match (key.as_str(), value) {
                        ("Index Name", serde_json::Value::String(name)) => names.push(name.clone()),
                        _ => collect_index_names(value, names),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| collect_index_names(item, names)),
            _ => {}
        }
    }
}
