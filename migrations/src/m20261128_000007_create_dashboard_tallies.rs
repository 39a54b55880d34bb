use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261128_000001_create_municipality::Municipality;
use crate::m20261128_000003_create_appeal::Appeal;

/// The dashboard's running totals, kept up to date by the transactions that
/// write appeals, so that a dashboard reads a few hundred rows instead of every
/// appeal:
/// - `municipality_tally`: per municipality, appeals by status, and histograms of
///   the times to reading and to resolution (bytes, see `appeals_core::tally`);
/// - `deadline_tally`: per deadline (`ANSWER` or `READING`), day and
///   municipality, how many appeals still owe it;
/// - the list's index by municipality and status ends with `id`, as its order does;
/// - on `appeal`, the time to reading and to resolution in microseconds, indexed
///   per municipality, from which the exact medians are read; and partial indexes
///   over the appeals that still owe an answer or a reading, by deadline, for
///   the appeals falling due today.
///
/// The tallies of appeals stored before this migration are built by storage
/// right after it, under the same migration lock.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        for column in [NewAppealColumn::MicrosToSeen, NewAppealColumn::MicrosToResolution] {
            manager
                .alter_table(Table::alter().table(Appeal::Table).add_column(big_integer_null(column)).to_owned())
                .await?;
        }
        let db = manager.get_connection();
        // Partial indexes are written as SQL: sea-query's index builder has no WHERE.
        // The same text runs on both databases, and a query uses such an index
        // only when it repeats the index's condition word for word.
        for sql in [
            // The list filtered by municipality and status takes its order
            // (received_at, id) from the index only when the index ends with id.
            r#"DROP INDEX "appeal_municipality_status_idx""#,
            r#"CREATE INDEX "appeal_municipality_status_received_idx" ON "appeal" ("municipality_id", "status", "received_at", "id")"#,
            r#"CREATE INDEX "appeal_municipality_to_seen_idx" ON "appeal" ("municipality_id", "micros_to_seen") WHERE "micros_to_seen" IS NOT NULL"#,
            r#"CREATE INDEX "appeal_municipality_to_resolution_idx" ON "appeal" ("municipality_id", "micros_to_resolution") WHERE "micros_to_resolution" IS NOT NULL"#,
            // `status` is in them too, so that counting reads the index alone.
            r#"CREATE INDEX "appeal_answer_owed_idx" ON "appeal" ("due_at", "municipality_id", "status") WHERE "status" <> 'RESOLVED'"#,
            r#"CREATE INDEX "appeal_reading_owed_idx" ON "appeal" ("seen_due_at", "municipality_id", "status") WHERE "status" = 'RECEIVED'"#,
        ] {
            db.execute_unprepared(sql).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(MunicipalityTally::Table)
                    .col(pk_uuid(MunicipalityTally::MunicipalityId))
                    .col(big_integer(MunicipalityTally::Received))
                    .col(big_integer(MunicipalityTally::Seen))
                    .col(big_integer(MunicipalityTally::Resolved))
                    .col(blob(MunicipalityTally::ToSeen))
                    .col(blob(MunicipalityTally::ToResolution))
                    .foreign_key(
                        ForeignKey::create()
                            .from(MunicipalityTally::Table, MunicipalityTally::MunicipalityId)
                            .to(Municipality::Table, Municipality::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DeadlineTally::Table)
                    .col(string_len(DeadlineTally::Deadline, 16))
                    .col(integer(DeadlineTally::Day))
                    .col(uuid(DeadlineTally::MunicipalityId))
                    .col(big_integer(DeadlineTally::Owed))
                    // A dashboard reads today's and later days, of every municipality.
                    .primary_key(
                        Index::create()
                            .col(DeadlineTally::Deadline)
                            .col(DeadlineTally::Day)
                            .col(DeadlineTally::MunicipalityId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(DeadlineTally::Table, DeadlineTally::MunicipalityId)
                            .to(Municipality::Table, Municipality::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(DeadlineTally::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(MunicipalityTally::Table).to_owned()).await?;
        let db = manager.get_connection();
        for index in [
            "appeal_municipality_status_received_idx",
            "appeal_municipality_to_seen_idx",
            "appeal_municipality_to_resolution_idx",
            "appeal_answer_owed_idx",
            "appeal_reading_owed_idx",
        ] {
            db.execute_unprepared(&format!(r#"DROP INDEX "{index}""#)).await?;
        }
        db.execute_unprepared(
            r#"CREATE INDEX "appeal_municipality_status_idx" ON "appeal" ("municipality_id", "status", "received_at")"#,
        )
        .await?;
        for column in [NewAppealColumn::MicrosToSeen, NewAppealColumn::MicrosToResolution] {
            manager.alter_table(Table::alter().table(Appeal::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}

/// The columns this migration adds to `appeal`.
#[derive(DeriveIden)]
pub enum NewAppealColumn {
    MicrosToSeen,
    MicrosToResolution,
}

#[derive(DeriveIden)]
pub enum MunicipalityTally {
    Table,
    MunicipalityId,
    Received,
    Seen,
    Resolved,
    ToSeen,
    ToResolution,
}

#[derive(DeriveIden)]
pub enum DeadlineTally {
    Table,
    Deadline,
    Day,
    MunicipalityId,
    Owed,
}
