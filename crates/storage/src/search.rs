//! The two searches over an appeal's text, answered from indexes, and keeping
//! those indexes: the substring search (`text`) and the word search (`search`).
//!
//! The rules are the domain's (`appeals_core::text::fold_for_search`,
//! `appeals_core::search`); this module only says them in each database's
//! terms. Every condition here keeps the plain rule too, or is exact by
//! construction, so an index can only make a search faster, never change what it
//! finds:
//! - `text` is always `text_folded LIKE '%…%'`, narrowed by the trigram index
//!   (`pg_trgm` on PostgreSQL, an FTS5 trigram table on SQLite, where a phrase
//!   of trigrams is an exact substring test) when it has three characters or
//!   more; shorter ones are scanned.
//! - `search` is a match of the query's terms against the terms stored with the
//!   appeal: a `tsvector` match on PostgreSQL (`search_vector`, generated from
//!   `search_terms`), an FTS5 query on SQLite, both over the same terms, which
//!   the same analyser computed.
//!
//! Neither planner can tell a rare word from a common one well enough, so each
//! search first reads its matches from the index alone, up to
//! [`FEW_MATCHES`]: a few are then looked up by id or row number, and their
//! number is the total; many are found by reading the list newest first and
//! testing rows, which soon finds a page.
//!
//! The terms are written with the appeal's row, so the index is in step in the
//! transaction that writes the appeal. Rows stored before the word search
//! existed are analysed right after the migration, and `appeals search
//! reindex` analyses every row again and rebuilds the indexes.

use appeals_core::MunicipalityId;
use appeals_core::search::{QueryTerm, WordQuery, index_terms};
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{CaseStatement, Condition, Expr, ExprTrait, LikeExpr, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement, Value,
};

use crate::Store;
use crate::entity::appeal;
use crate::error::Result;

/// The trigram index needs three characters to narrow anything down.
const TRIGRAM: usize = 3;

/// Appeals analysed per statement when the terms are (re)computed.
const ANALYSIS_BATCH: usize = 500;

/// A search whose index finds at most this many appeals is answered from the
/// index's rows (looked up, then sorted); one that finds more, by reading the
/// list newest first and testing each row, which finds a page after about
/// `page × appeals / matches` rows. Measured on SQLite at 100,000 appeals:
/// looking up and sorting 93,685 matches took 325 ms (3.5 µs a row), while
/// reading newest first found the page of the same word in under 10 ms.
const FEW_MATCHES: i64 = 2_000;

/// The mark of the term that names an appeal's municipality, so that a word
/// search within one municipality is counted by the index alone.
const MUNICIPALITY_MARK: char = '#';

/// The value of `appeal.search_terms` for `text` of an appeal of
/// `municipality`: its terms, and its municipality's, space-separated.
pub fn stored_terms(text: &str, municipality: MunicipalityId) -> String {
    let mut terms = index_terms(text);
    terms.push(municipality_term(municipality));
    terms.join(" ")
}

/// The term of the word index that names `municipality`.
pub fn municipality_term(municipality: MunicipalityId) -> String {
    format!("{MUNICIPALITY_MARK}{}", municipality.as_uuid().simple())
}

/// A search as one database answers it.
pub(crate) struct PlannedSearch {
    /// What a matching row satisfies.
    pub condition: SimpleExpr,
    /// The same, as counting all the matches reads it best, where that differs.
    pub count_condition: Option<SimpleExpr>,
    /// When the search is all there is to count: its number of matches, as
    /// its index alone tells.
    pub index_count: Option<IndexCount>,
}

/// The number of a search's matches, from its index.
pub(crate) enum IndexCount {
    /// Known already: the plan read the matches.
    Known(u64),
    /// Counted by this statement.
    Counted(Statement),
}

/// The substring search for the folded `needle` (non-empty), within
/// `municipality` if there is one.
pub(crate) async fn plan_substring(
    db: &impl ConnectionTrait,
    needle: &str,
    municipality: Option<MunicipalityId>,
) -> std::result::Result<PlannedSearch, DbErr> {
    let pattern = format!("%{}%", escape_like(needle));
    let like: SimpleExpr =
        Expr::col((appeal::Entity, appeal::Column::TextFolded)).like(LikeExpr::new(pattern).escape('\\'));
    let backend = db.get_database_backend();
    if needle.chars().count() < TRIGRAM {
        return Ok(PlannedSearch { condition: like, count_condition: None, index_count: None });
    }
    if backend == DbBackend::Postgres {
        return postgres_plan(db, like, municipality).await;
    }
    let phrase = fts5_string(needle);
    let Some(rows) = few_rows(db, "appeal_text_trigram", &phrase).await? else {
        // The page tests rows newest first; the count takes the index's rows
        // (a phrase of trigrams is an exact substring test) as a set, which
        // the other conditions' index is checked against, `+` keeping SQLite
        // from looking every one of them up.
        let in_index = Expr::cust_with_values(
            r#"+"appeal"."rowid" IN (SELECT "rowid" FROM "appeal_text_trigram" WHERE "appeal_text_trigram" MATCH ?)"#,
            [phrase.clone()],
        );
        let index_count =
            municipality.is_none().then(|| IndexCount::Counted(count_in(backend, "appeal_text_trigram", &phrase)));
        return Ok(PlannedSearch { condition: like, count_condition: Some(in_index), index_count });
    };
    let index_count = municipality.is_none().then_some(IndexCount::Known(rows.len() as u64));
    Ok(PlannedSearch { condition: among(rows).and(like), count_condition: None, index_count })
}

/// The word search `query`, within `municipality` if there is one.
pub(crate) async fn plan_words(
    db: &impl ConnectionTrait,
    query: &WordQuery,
    municipality: Option<MunicipalityId>,
) -> std::result::Result<PlannedSearch, DbErr> {
    let backend = db.get_database_backend();
    if backend == DbBackend::Postgres {
        // sea-query's placeholder in custom SQL is PostgreSQL's own `$1`.
        let condition = Expr::cust_with_values(r#""appeal"."search_vector" @@ CAST($1 AS tsquery)"#, [tsquery(query)]);
        return postgres_plan(db, condition, municipality).await;
    }
    let mut terms = vec![fts5_query(query)];
    terms.extend(municipality.map(|municipality| fts5_string(&municipality_term(municipality))));
    let fts_query = terms.join(" AND ");
    let Some(rows) = few_rows(db, "appeal_search_term", &fts_query).await? else {
        return Ok(many_words(backend, query, &fts_query));
    };
    let index_count = Some(IndexCount::Known(rows.len() as u64));
    Ok(PlannedSearch { condition: among(rows), count_condition: None, index_count })
}

/// A word search whose FTS5 query `fts_query` matches more than
/// [`FEW_MATCHES`] rows.
fn many_words(backend: DbBackend, query: &WordQuery, fts_query: &str) -> PlannedSearch {
    let index_count = Some(IndexCount::Counted(count_in(backend, "appeal_search_term", fts_query)));
    let in_index = Expr::cust_with_values(
        r#"+"appeal"."rowid" IN (SELECT "rowid" FROM "appeal_search_term" WHERE "appeal_search_term" MATCH ?)"#,
        [fts_query.to_owned()],
    );
    // Many match: each row's own terms are tested, as the index would. Terms
    // are separated by single spaces and hold none, so a term is a whole one
    // between spaces, and a prefix starts right after one.
    let mut condition = Condition::all();
    for term in query.terms() {
        condition = condition.add(match term {
            QueryTerm::Exact(stem) => {
                Expr::cust_with_values(r#"instr(' ' || "appeal"."search_terms" || ' ', ?) > 0"#, [format!(" {stem} ")])
            }
            QueryTerm::Prefix(prefix) => {
                Expr::cust_with_values(r#"instr(' ' || "appeal"."search_terms", ?) > 0"#, [format!(" {prefix}")])
            }
        });
    }
    PlannedSearch { condition: condition.into(), count_condition: Some(in_index), index_count }
}

/// On PostgreSQL, a search's `condition` as the database answers it best. Its
/// planner cannot tell a rare word from a common one well (a word outside the
/// lexemes ANALYZE keeps is guessed at 0.5% of the rows, which at a million
/// appeals makes it read the list newest first and test rows for seconds), so
/// the matching ids are read first, from the index alone (a bitmap of the GIN
/// index: its cost does not depend on the guess), up to [`FEW_MATCHES`]: a few
/// become the condition, and their number the total; for many, the planner
/// chooses, rightly, to read the list newest first.
async fn postgres_plan(
    db: &impl ConnectionTrait,
    condition: SimpleExpr,
    municipality: Option<MunicipalityId>,
) -> std::result::Result<PlannedSearch, DbErr> {
    let mut probe = Query::select();
    probe.column((appeal::Entity, appeal::Column::Id)).from(appeal::Entity).and_where(condition.clone());
    if let Some(municipality) = municipality {
        probe.and_where(Expr::col((appeal::Entity, appeal::Column::MunicipalityId)).eq(municipality.as_uuid()));
    }
    probe.limit(FEW_MATCHES as u64 + 1);
    // Only bitmap scans are left to the probe; `SET LOCAL` lasts to the end of
    // the read's transaction, so the planner's choices are given back after.
    db.execute_unprepared("SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off").await?;
    let found = db.query_all(&probe).await;
    db.execute_unprepared("SET LOCAL enable_seqscan = on; SET LOCAL enable_indexscan = on").await?;
    let found = found?;
    if found.len() as i64 > FEW_MATCHES {
        return Ok(PlannedSearch { condition, count_condition: None, index_count: None });
    }
    let ids = found.iter().map(|row| row.try_get_by_index::<Uuid>(0)).collect::<std::result::Result<Vec<_>, _>>()?;
    let count = ids.len() as u64;
    let condition = Expr::col((appeal::Entity, appeal::Column::Id)).is_in(ids);
    Ok(PlannedSearch { condition, count_condition: None, index_count: Some(IndexCount::Known(count)) })
}

/// The rows of `table` that the FTS5 query `fts_query` matches, if there are
/// at most [`FEW_MATCHES`]; it stops reading past them.
async fn few_rows(
    db: &impl ConnectionTrait,
    table: &str,
    fts_query: &str,
) -> std::result::Result<Option<Vec<i64>>, DbErr> {
    let sql = format!(r#"SELECT "rowid" FROM "{table}" WHERE "{table}" MATCH ? LIMIT {}"#, FEW_MATCHES + 1);
    let found = db
        .query_all_raw(Statement::from_sql_and_values(db.get_database_backend(), sql, [Value::from(fts_query)]))
        .await?;
    if found.len() as i64 > FEW_MATCHES {
        return Ok(None);
    }
    found.iter().map(|row| row.try_get_by_index::<i64>(0)).collect::<std::result::Result<_, _>>().map(Some)
}

/// The appeals whose SQLite row numbers are `rows`.
fn among(rows: Vec<i64>) -> SimpleExpr {
    Expr::cust(r#""appeal"."rowid""#).is_in(rows)
}

/// `SELECT COUNT(*)` of the rows of `table` that `fts_query` matches.
fn count_in(backend: DbBackend, table: &str, fts_query: &str) -> Statement {
    let sql = format!(r#"SELECT COUNT(*) FROM "{table}" WHERE "{table}" MATCH ?"#);
    Statement::from_sql_and_values(backend, sql, [Value::from(fts_query)])
}

/// `query` in tsquery's own syntax, every term required, each quoted: terms
/// are letters and digits (and the word mark), so no quote occurs inside one.
pub fn tsquery(query: &WordQuery) -> String {
    query
        .terms()
        .iter()
        .map(|term| match term {
            QueryTerm::Exact(stem) => format!("'{stem}'"),
            QueryTerm::Prefix(prefix) => format!("'{prefix}':*"),
        })
        .collect::<Vec<_>>()
        .join(" & ")
}

/// `query` in FTS5's syntax: every term required, a prefix marked `*`.
pub fn fts5_query(query: &WordQuery) -> String {
    query
        .terms()
        .iter()
        .map(|term| match term {
            QueryTerm::Exact(stem) => fts5_string(stem),
            QueryTerm::Prefix(prefix) => format!("{} *", fts5_string(prefix)),
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// `text` as an FTS5 string: in double quotes, each inner one doubled.
pub fn fts5_string(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// Escapes LIKE's wildcards so that a search for `100%` finds a literal `100%`.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// How far an analysis of the stored appeals has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnalysisProgress {
    pub analysed: u64,
    pub total: u64,
}

/// Which stored appeals an analysis goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Analysed {
    /// Those with no terms yet (stored before the word search existed).
    Missing,
    /// Every appeal.
    All,
}

/// Analyses the appeals that have no terms yet, in batches, calling `progress`
/// after each; on `db`, which may be a transaction. Returns how many were analysed.
pub(crate) async fn analyse_missing(
    db: &impl ConnectionTrait,
    progress: &mut impl FnMut(AnalysisProgress),
) -> std::result::Result<u64, DbErr> {
    let total = appeal::Entity::find().filter(appeal::Column::SearchTerms.is_null()).count(db).await?;
    let mut analysed = 0;
    while let Some((_, read)) = analyse_batch(db, Analysed::Missing, None).await? {
        analysed += read;
        progress(AnalysisProgress { analysed: std::cmp::min(analysed, total), total });
    }
    Ok(analysed)
}

/// Analyses one batch of appeals after `after` (by id), writing the terms that
/// differ from the stored ones. Returns the last id read and how many were
/// read, or `None` when there were none.
async fn analyse_batch(
    db: &impl ConnectionTrait,
    which: Analysed,
    after: Option<Uuid>,
) -> std::result::Result<Option<(Uuid, u64)>, DbErr> {
    let mut select = appeal::Entity::find()
        .select_only()
        .columns([
            appeal::Column::Id,
            appeal::Column::Text,
            appeal::Column::SearchTerms,
            appeal::Column::MunicipalityId,
        ])
        .order_by_asc(appeal::Column::Id)
        .limit(ANALYSIS_BATCH as u64);
    select = match (which, after) {
        (Analysed::Missing, _) => select.filter(appeal::Column::SearchTerms.is_null()),
        (Analysed::All, None) => select,
        (Analysed::All, Some(after)) => select.filter(appeal::Column::Id.gt(after)),
    };
    let rows: Vec<(Uuid, String, Option<String>, Uuid)> = select.into_tuple().all(db).await?;
    let Some(&(last, ..)) = rows.last() else { return Ok(None) };
    let mut changed = Vec::new();
    for (id, text, stored, municipality) in &rows {
        let terms = stored_terms(text, MunicipalityId::from_uuid(*municipality));
        if stored.as_deref() != Some(terms.as_str()) {
            changed.push((*id, terms));
        }
    }
    if !changed.is_empty() {
        write_terms(db, &changed).await?;
    }
    Ok(Some((last, rows.len() as u64)))
}

/// Sets `search_terms` of each `(id, terms)` in one statement.
async fn write_terms(db: &impl ConnectionTrait, batch: &[(Uuid, String)]) -> std::result::Result<(), DbErr> {
    let mut terms = CaseStatement::new();
    for (id, value) in batch {
        terms = terms.case(Expr::col(appeal::Column::Id).eq(*id), value.clone());
    }
    appeal::Entity::update_many()
        .col_expr(appeal::Column::SearchTerms, terms.into())
        .filter(appeal::Column::Id.is_in(batch.iter().map(|(id, _)| *id)))
        .exec(db)
        .await?;
    Ok(())
}

impl Store {
    /// Analyses every appeal's text again, writing the terms that changed, and
    /// rebuilds both search indexes: for a database whose terms an older
    /// analyser wrote, or whose SQLite file was `VACUUM`ed (which may renumber
    /// the rows the FTS5 indexes point at). Each batch is its own transaction,
    /// so the service keeps serving meanwhile; on SQLite the final rebuild of
    /// the FTS5 tables holds the write lock while it runs.
    pub async fn reindex_search(&self, mut progress: impl FnMut(AnalysisProgress)) -> Result<u64> {
        let db = self.db();
        let total = appeal::Entity::find().count(db).await?;
        let (mut analysed, mut after) = (0, None);
        loop {
            let txn = crate::database::begin_write(db).await?;
            let batch = analyse_batch(&txn, Analysed::All, after).await?;
            txn.commit().await?;
            let Some((last, read)) = batch else { break };
            (analysed, after) = (analysed + read, Some(last));
            progress(AnalysisProgress { analysed: std::cmp::min(analysed, total), total });
        }
        let rebuild: &[&str] = match db.get_database_backend() {
            DbBackend::Postgres => &[
                r#"REINDEX INDEX CONCURRENTLY "appeal_text_trigram_idx""#,
                r#"REINDEX INDEX CONCURRENTLY "appeal_search_vector_idx""#,
            ],
            // The FTS5 tables read the rows' own columns back: rebuilt from
            // them, they point at the rows' current numbers.
            _ => &[
                r#"INSERT INTO "appeal_text_trigram"("appeal_text_trigram") VALUES ('rebuild')"#,
                r#"INSERT INTO "appeal_search_term"("appeal_search_term") VALUES ('rebuild')"#,
            ],
        };
        for sql in rebuild {
            db.execute_unprepared(sql).await?;
        }
        Ok(analysed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts5_strings_double_their_quotes() {
        assert_eq!(fts5_string(r#"say "hi""#), r#""say ""hi""""#);
    }
}
