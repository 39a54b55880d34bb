use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261128_000003_create_appeal::Appeal;

/// The append-only history of appeals. `data` is the event's payload as the exact
/// JSON text that was hashed (TEXT, not JSON/JSONB, so that no database rewrites it).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AppealEvent::Table)
                    .if_not_exists()
                    .col(pk_uuid(AppealEvent::Id))
                    .col(uuid(AppealEvent::AppealId))
                    .col(integer(AppealEvent::Seq))
                    .col(string_len(AppealEvent::Kind, 32))
                    .col(timestamp_with_time_zone(AppealEvent::At))
                    .col(uuid_null(AppealEvent::ActorId))
                    .col(string_len_null(AppealEvent::FromStatus, 16))
                    .col(string_len_null(AppealEvent::ToStatus, 16))
                    .col(text_null(AppealEvent::Note))
                    .col(text(AppealEvent::Data))
                    .col(string_len(AppealEvent::Hash, 64))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AppealEvent::Table, AppealEvent::AppealId)
                            .to(Appeal::Table, Appeal::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // One event per position in each appeal's chain; also the history's order.
        manager
            .create_index(
                Index::create()
                    .name("appeal_event_appeal_seq_key")
                    .table(AppealEvent::Table)
                    .col(AppealEvent::AppealId)
                    .col(AppealEvent::Seq)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AppealEvent::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
pub enum AppealEvent {
    Table,
    Id,
    AppealId,
    Seq,
    Kind,
    At,
    ActorId,
    FromStatus,
    ToStatus,
    Note,
    Data,
    Hash,
}
