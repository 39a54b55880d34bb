use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::m20261128_000003_create_appeal::Appeal;

/// The indexes of the two searches over an appeal's text.
///
/// - `appeal.search_terms`: the word search's terms of the text (stems, and the
///   folded words marked for prefixes), space-separated, as the domain's analyser
///   computes them. `NULL` means "not analysed yet": the rows stored before this
///   migration are analysed by storage right after it, under the same migration
///   lock (this crate does not depend on the domain), found through a partial
///   index over the `NULL`s.
/// - PostgreSQL: a trigram GIN index over `text_folded` (extension `pg_trgm`),
///   which answers `LIKE '%…%'` for three characters or more, and a GIN index
///   over the terms as a stored, generated `tsvector` column, `search_vector`
///   (`array_to_tsvector` keeps each term as it is, with no parser or
///   dictionary of PostgreSQL's in between).
/// - SQLite: two FTS5 tables over `appeal`'s own columns (external content, so
///   the text is not stored twice), kept in step by triggers in the writing
///   transaction: `appeal_text_trigram` (the trigram tokenizer, case-sensitive,
///   since `text_folded` is folded already) and `appeal_search_term` (the
///   `ascii` tokenizer, which keeps every non-ASCII character in a term, with
///   the word mark `>` and the municipality mark `#` as term characters). The trigram index is built here
///   from the stored texts; the terms' index fills as storage analyses them.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Appeal::Table)
                    .add_column(ColumnDef::new(SearchColumn::SearchTerms).text().null())
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        let statements: &[&str] = match db.get_database_backend() {
            DbBackend::Postgres => &[
                r#"CREATE INDEX "appeal_unanalysed_idx" ON "appeal" ("id") WHERE "search_terms" IS NULL"#,
                // Trusted since PostgreSQL 13: the database's owner may create it.
                r#"CREATE EXTENSION IF NOT EXISTS pg_trgm"#,
                r#"CREATE INDEX "appeal_text_trigram_idx" ON "appeal" USING gin ("text_folded" gin_trgm_ops)"#,
                // The terms as a stored `tsvector`: ANALYZE then keeps its
                // lexemes' frequencies for the planner, and testing a row
                // reads the vector instead of splitting the terms again
                // (15 µs a row).
                r#"ALTER TABLE "appeal" ADD COLUMN "search_vector" tsvector
                    GENERATED ALWAYS AS (array_to_tsvector(string_to_array("search_terms", ' '))) STORED"#,
                r#"CREATE INDEX "appeal_search_vector_idx" ON "appeal" USING gin ("search_vector")"#,
            ],
            _ => &[
                r#"CREATE INDEX "appeal_unanalysed_idx" ON "appeal" ("id") WHERE "search_terms" IS NULL"#,
                r#"CREATE VIRTUAL TABLE "appeal_text_trigram" USING fts5("text_folded", content='appeal', content_rowid='rowid', tokenize='trigram case_sensitive 1')"#,
                r#"CREATE VIRTUAL TABLE "appeal_search_term" USING fts5("search_terms", content='appeal', content_rowid='rowid', tokenize="ascii tokenchars '>#'", detail='none')"#,
                r#"INSERT INTO "appeal_text_trigram"("appeal_text_trigram") VALUES ('rebuild')"#,
                // Every row gets its (empty) entry, which its analysis replaces.
                r#"INSERT INTO "appeal_search_term"("appeal_search_term") VALUES ('rebuild')"#,
                r#"CREATE TRIGGER "appeal_search_insert" AFTER INSERT ON "appeal" BEGIN
                    INSERT INTO "appeal_text_trigram"("rowid", "text_folded") VALUES (new."rowid", new."text_folded");
                    INSERT INTO "appeal_search_term"("rowid", "search_terms") VALUES (new."rowid", new."search_terms");
                END"#,
                r#"CREATE TRIGGER "appeal_search_delete" AFTER DELETE ON "appeal" BEGIN
                    INSERT INTO "appeal_text_trigram"("appeal_text_trigram", "rowid", "text_folded") VALUES ('delete', old."rowid", old."text_folded");
                    INSERT INTO "appeal_search_term"("appeal_search_term", "rowid", "search_terms") VALUES ('delete', old."rowid", old."search_terms");
                END"#,
                // A transition rewrites the row without changing its text: the
                // WHEN keeps the indexes untouched then.
                r#"CREATE TRIGGER "appeal_text_trigram_update" AFTER UPDATE OF "text_folded" ON "appeal"
                    WHEN old."text_folded" IS NOT new."text_folded" BEGIN
                    INSERT INTO "appeal_text_trigram"("appeal_text_trigram", "rowid", "text_folded") VALUES ('delete', old."rowid", old."text_folded");
                    INSERT INTO "appeal_text_trigram"("rowid", "text_folded") VALUES (new."rowid", new."text_folded");
                END"#,
                r#"CREATE TRIGGER "appeal_search_term_update" AFTER UPDATE OF "search_terms" ON "appeal"
                    WHEN old."search_terms" IS NOT new."search_terms" BEGIN
                    INSERT INTO "appeal_search_term"("appeal_search_term", "rowid", "search_terms") VALUES ('delete', old."rowid", old."search_terms");
                    INSERT INTO "appeal_search_term"("rowid", "search_terms") VALUES (new."rowid", new."search_terms");
                END"#,
            ],
        };
        for sql in statements {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let statements: &[&str] = match db.get_database_backend() {
            DbBackend::Postgres => &[
                r#"DROP INDEX "appeal_search_vector_idx""#,
                r#"ALTER TABLE "appeal" DROP COLUMN "search_vector""#,
                r#"DROP INDEX "appeal_text_trigram_idx""#,
                r#"DROP INDEX "appeal_unanalysed_idx""#,
            ],
            _ => &[
                r#"DROP TRIGGER "appeal_search_term_update""#,
                r#"DROP TRIGGER "appeal_text_trigram_update""#,
                r#"DROP TRIGGER "appeal_search_delete""#,
                r#"DROP TRIGGER "appeal_search_insert""#,
                r#"DROP TABLE "appeal_search_term""#,
                r#"DROP TABLE "appeal_text_trigram""#,
                r#"DROP INDEX "appeal_unanalysed_idx""#,
            ],
        };
        for sql in statements {
            db.execute_unprepared(sql).await?;
        }
        manager.alter_table(Table::alter().table(Appeal::Table).drop_column(SearchColumn::SearchTerms).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum SearchColumn {
    SearchTerms,
}
