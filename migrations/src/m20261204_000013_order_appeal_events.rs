use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// Every event gets its place in one order of the whole database, the order in
/// which the events were committed, so that a reader can follow the events of
/// every appeal with a single number (a subscription's cursor).
///
/// - `appeal_event.position`: 1, 2, 3… over all appeals, with no gaps, unique.
///   A writer takes the next position as the last statement before its commit;
///   on PostgreSQL from the one row of `event_counter`, whose lock it holds until
///   it commits, so that positions are handed out in commit order and a reader
///   that sees position `p` has seen every position before it; on SQLite from
///   the highest position so far, under the database's only write lock.
/// - PostgreSQL announces every statement that inserts events with
///   `NOTIFY appeals_events` (a statement trigger), so that every server
///   following the events wakes at once, whoever wrote them.
///
/// Events stored before this migration are numbered in the order of their time,
/// then appeal, then `seq`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let statements: &[&str] = match db.get_database_backend() {
            DbBackend::Postgres => &[
                r#"ALTER TABLE "appeal_event" ADD COLUMN "position" bigint"#,
                r#"UPDATE "appeal_event" SET "position" = "numbered"."position"
                    FROM (SELECT "id", row_number() OVER (ORDER BY "at", "appeal_id", "seq") AS "position"
                          FROM "appeal_event") AS "numbered"
                    WHERE "appeal_event"."id" = "numbered"."id""#,
                r#"ALTER TABLE "appeal_event" ALTER COLUMN "position" SET NOT NULL"#,
                r#"CREATE UNIQUE INDEX "appeal_event_position_key" ON "appeal_event" ("position")"#,
                r#"CREATE TABLE "event_counter" (
                    "id" smallint PRIMARY KEY CHECK ("id" = 1),
                    "last_position" bigint NOT NULL)"#,
                r#"INSERT INTO "event_counter" ("id", "last_position")
                    SELECT 1, COALESCE(MAX("position"), 0) FROM "appeal_event""#,
                r#"CREATE FUNCTION "appeals_announce_events"() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN
                        PERFORM pg_notify('appeals_events', '');
                        RETURN NULL;
                    END
                    $$"#,
                r#"CREATE TRIGGER "appeal_event_announce" AFTER INSERT ON "appeal_event"
                    FOR EACH STATEMENT EXECUTE FUNCTION "appeals_announce_events"()"#,
            ],
            _ => &[
                r#"ALTER TABLE "appeal_event" ADD COLUMN "position" integer"#,
                r#"UPDATE "appeal_event" SET "position" = "numbered"."position"
                    FROM (SELECT "id", row_number() OVER (ORDER BY "at", "appeal_id", "seq") AS "position"
                          FROM "appeal_event") AS "numbered"
                    WHERE "appeal_event"."id" = "numbered"."id""#,
                r#"CREATE UNIQUE INDEX "appeal_event_position_key" ON "appeal_event" ("position")"#,
            ],
        };
        for statement in statements {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let statements: &[&str] = match db.get_database_backend() {
            DbBackend::Postgres => &[
                r#"DROP TRIGGER "appeal_event_announce" ON "appeal_event""#,
                r#"DROP FUNCTION "appeals_announce_events"()"#,
                r#"DROP TABLE "event_counter""#,
                r#"DROP INDEX "appeal_event_position_key""#,
                r#"ALTER TABLE "appeal_event" DROP COLUMN "position""#,
            ],
            _ => &[r#"DROP INDEX "appeal_event_position_key""#, r#"ALTER TABLE "appeal_event" DROP COLUMN "position""#],
        };
        for statement in statements {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}
